//! `/admin/api`: the admin operations as JSON.

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::workspace::{Curate, Document, Export, Settings};
use super::{Admin, AdminState};

/// The OpenAPI document of this API.
const DESCRIPTION: &str = include_str!("admin-api.openapi.json");

pub fn router() -> axum::Router<AdminState> {
    Router::new()
        .route("/openapi.json", get(description))
        .route("/me", get(me))
        .route("/servers", get(list).post(create))
        .route("/servers/{slug}", get(read).delete(delete))
        .route("/servers/{slug}/document", post(import))
        .route("/servers/{slug}/operations", patch(curate))
        .route("/servers/{slug}/settings", patch(configure))
        .route("/servers/{slug}/publish", post(publish))
        .route("/servers/{slug}/export", get(export))
        .route("/restore", post(restore))
        .route("/audit", get(audit))
}

/// An error as every admin endpoint gives it: `{"error": "..."}`.
pub fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

async fn description() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DESCRIPTION).into_response()
}

async fn me(Extension(admin): Extension<Admin>) -> Response {
    Json(json!({"name": admin.name, "csrf_token": admin.csrf})).into_response()
}

async fn list(State(state): State<AdminState>) -> Response {
    match state.workspace.list() {
        Ok(servers) => Json(json!({"servers": servers})).into_response(),
        Err(err) => err.into_response(),
    }
}

/// A document as JSON: `{"url": "..."}` or `{"text": "..."}`, with `slug` when creating.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Source {
    slug: Option<String>,
    url: Option<Url>,
    text: Option<String>,
    /// A name for pasted text, shown as the document's origin.
    name: Option<String>,
}

/// The slug and document of a request: JSON ([`Source`]) or multipart (`slug`, and `file` or
/// `url` or `text`).
async fn document(
    headers: &HeaderMap,
    request: axum::extract::Request,
) -> Result<(Option<String>, Document), Response> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|it| it.to_str().ok()).unwrap_or_default();
    let bad = |message: &str| error(StatusCode::BAD_REQUEST, message);
    let mut source = Source { slug: None, url: None, text: None, name: None };
    let mut file: Option<(String, Vec<u8>)> = None;
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = <Multipart as axum::extract::FromRequest<()>>::from_request(request, &())
            .await
            .map_err(|err| bad(&err.body_text()))?;
        while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
            let name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let bytes = field.bytes().await.map_err(multipart_error)?;
            let text = || {
                let text = String::from_utf8(bytes.to_vec()).ok();
                text.ok_or_else(|| Box::new(bad(&format!("`{name}` is not text"))))
            };
            match name.as_str() {
                "file" => file = Some((file_name.unwrap_or_else(|| "upload".to_owned()), bytes.to_vec())),
                "slug" => source.slug = Some(text().map_err(|it| *it)?.trim().to_owned()),
                "url" if !bytes.is_empty() => {
                    let text = text().map_err(|it| *it)?;
                    source.url = Some(Url::parse(text.trim()).map_err(|err| bad(&format!("url: {err}")))?)
                }
                "text" if !bytes.is_empty() => source.text = Some(text().map_err(|it| *it)?),
                _ => {}
            }
        }
    } else {
        let bytes = axum::body::to_bytes(request.into_body(), super::MAX_UPLOAD_BYTES)
            .await
            .map_err(|_| error(StatusCode::PAYLOAD_TOO_LARGE, "the document is too large"))?;
        source = serde_json::from_slice(&bytes).map_err(|err| bad(&format!("invalid JSON: {err}")))?;
    }
    let document = match (file, source.url, source.text) {
        (Some((name, bytes)), None, None) => Document::Bytes { name: format!("upload:{name}"), bytes },
        (None, Some(url), None) => Document::Url(url),
        (None, None, Some(text)) => Document::Bytes {
            name: format!("pasted:{}", source.name.as_deref().unwrap_or("document")),
            bytes: text.into_bytes(),
        },
        _ => return Err(bad("give exactly one of a file, a url or a text")),
    };
    Ok((source.slug, document))
}

// axum words a body over the limit "Request payload is too large"; its status is what tells.
fn multipart_error(err: axum::extract::multipart::MultipartError) -> Response {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        error(StatusCode::PAYLOAD_TOO_LARGE, "the document is too large")
    } else {
        error(StatusCode::BAD_REQUEST, &err.body_text())
    }
}

/// A JSON body that could not be read: too large (413), else malformed (400).
fn json_error(err: &axum::extract::rejection::JsonRejection) -> Response {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        error(StatusCode::PAYLOAD_TOO_LARGE, "the request is too large")
    } else {
        error(StatusCode::BAD_REQUEST, &err.body_text())
    }
}

async fn create(
    State(state): State<AdminState>,
    Extension(admin): Extension<Admin>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Response {
    let (slug, document) = match document(&headers, request).await {
        Ok(it) => it,
        Err(response) => return response,
    };
    let Some(slug) = slug else { return error(StatusCode::BAD_REQUEST, "`slug` is required") };
    match state.workspace.create(&admin.name, &slug, document).await {
        Ok(imported) => (StatusCode::CREATED, Json(imported)).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn import(
    State(state): State<AdminState>,
    Extension(admin): Extension<Admin>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Response {
    let (_, document) = match document(&headers, request).await {
        Ok(it) => it,
        Err(response) => return response,
    };
    match state.workspace.import(&admin.name, &slug, document).await {
        Ok(imported) => Json(imported).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn read(State(state): State<AdminState>, Path(slug): Path<String>) -> Response {
    match state.workspace.draft(&slug) {
        Ok(draft) => Json(draft).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn delete(
    State(state): State<AdminState>,
    Extension(admin): Extension<Admin>,
    Path(slug): Path<String>,
) -> Response {
    match state.workspace.delete(&admin.name, &slug) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => err.into_response(),
    }
}

async fn curate(
    State(state): State<AdminState>,
    Extension(admin): Extension<Admin>,
    Path(slug): Path<String>,
    body: Result<Json<Vec<Curate>>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(changes) = match body {
        Ok(it) => it,
        Err(err) => return json_error(&err),
    };
    match state.workspace.curate(&admin.name, &slug, &changes) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => err.into_response(),
    }
}

async fn configure(
    State(state): State<AdminState>,
    Extension(admin): Extension<Admin>,
    Path(slug): Path<String>,
    body: Result<Json<Settings>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(settings) = match body {
        Ok(it) => it,
        Err(err) => return json_error(&err),
    };
    match state.workspace.configure(&admin.name, &slug, settings) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => err.into_response(),
    }
}

async fn publish(
    State(state): State<AdminState>,
    Extension(admin): Extension<Admin>,
    Path(slug): Path<String>,
) -> Response {
    match state.workspace.publish(&admin.name, &slug) {
        Ok(tools) => Json(json!({"published": slug, "tools": tools})).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn export(
    State(state): State<AdminState>,
    Extension(admin): Extension<Admin>,
    Path(slug): Path<String>,
) -> Response {
    match state.workspace.export(&admin.name, &slug) {
        Ok(export) => Json(export).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn restore(
    State(state): State<AdminState>,
    Extension(admin): Extension<Admin>,
    body: Result<Json<Export>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(export) = match body {
        Ok(it) => it,
        Err(err) => return json_error(&err),
    };
    match state.workspace.restore(&admin.name, export) {
        Ok(imported) => (StatusCode::CREATED, Json(imported)).into_response(),
        Err(err) => err.into_response(),
    }
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn audit(
    State(state): State<AdminState>,
    query: Result<Query<Limit>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(limit) = match query {
        Ok(it) => it,
        Err(err) => return error(StatusCode::BAD_REQUEST, &err.body_text()),
    };
    match state.workspace.audit_log(limit.limit.unwrap_or(100).min(1000)) {
        Ok(entries) => Json(json!({"entries": entries})).into_response(),
        Err(err) => err.into_response(),
    }
}
