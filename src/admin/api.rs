//! `/admin/api`: the admin operations as JSON.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use url::Url;

use super::curation;
use super::workspace::{self, Curate, Document, Export, Settings};
use super::{Admin, AdminState};
use crate::calls::{self, Decision};

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
        .route("/servers/{slug}/calls", get(calls))
        .route("/servers/{slug}/connections", get(connections).delete(revoke_connection))
        .route("/servers/{slug}/policies/try", post(try_policies))
        .route("/restore", post(restore))
        .route("/audit", get(audit))
        .route("/servers/{slug}/generations", get(generations))
        .route("/servers/{slug}/generations/{number}", get(generation))
        .route("/servers/{slug}/changes", get(changes))
        .route("/servers/{slug}/operations", get(operations))
        .route("/servers/{slug}/operation", get(operation))
        .route("/servers/{slug}/operations/bulk", post(bulk))
        .route("/servers/{slug}/report", get(report))
        .route("/servers/{slug}/budget/preview", post(preview_budget))
}

/// What an admin endpoint answers when it does not succeed: `{"error": "..."}` with a status.
/// Every handler returns `Result<_, ApiError>`; this is where failures become answers.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// With a 409 for a stale change: the server's version now.
    version: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), version: None }
    }

    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self.version {
            Some(version) => {
                let body = Json(json!({"error": self.message, "version": version}));
                (self.status, [(header::ETAG, etag(version))], body).into_response()
            }
            None => (self.status, Json(json!({"error": self.message}))).into_response(),
        }
    }
}

impl From<workspace::Error> for ApiError {
    fn from(err: workspace::Error) -> ApiError {
        use workspace::Error;
        let status = match &err {
            Error::NotFound(_) | Error::NoGeneration { .. } => StatusCode::NOT_FOUND,
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::Exists(_) => StatusCode::CONFLICT,
            Error::Provisioned(_) => StatusCode::FORBIDDEN,
            Error::Stopping => StatusCode::SERVICE_UNAVAILABLE,
            Error::Store(crate::store::Error::Conflict { current }) => {
                let message = "the server was changed meanwhile: reload it, and make the change again";
                return ApiError { version: Some(*current), ..ApiError::new(StatusCode::CONFLICT, message) };
            }
            Error::Store(crate::store::Error::Unavailable(reason)) => {
                tracing::error!(%reason, "admin: store");
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the store cannot be reached now; nothing was changed. Try again in a moment",
                );
            }
            Error::Store(err) => {
                // The cause is for the operator's log, not the client.
                tracing::error!(%err, "admin: store");
                return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the store failed; see the log");
            }
        };
        ApiError::new(status, err.to_string())
    }
}

/// An entity tag of a server's version.
fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// The version `If-Match` names (`"12"`, or weak `W/"12"`); none for `*` or no header.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let value = value.to_str().unwrap_or_default().trim();
    if value == "*" {
        return Ok(None);
    }
    let tag = value.strip_prefix("W/").unwrap_or(value).trim_matches('"');
    tag.parse().map(Some).map_err(|_| {
        ApiError::new(StatusCode::PRECONDITION_FAILED, "If-Match must be a version this API gave (an ETag)")
    })
}

/// The workspace for a change made on the version the request names.
fn editing(state: &AdminState, headers: &HeaderMap) -> Result<workspace::Workspace, ApiError> {
    Ok(state.workspace.expecting(if_match(headers)?))
}

/// A JSON body that could not be read: too large (413), else malformed (400).
impl From<JsonRejection> for ApiError {
    fn from(err: JsonRejection) -> ApiError {
        if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "the request is too large")
        } else {
            ApiError::bad(err.body_text())
        }
    }
}

// axum words a body over the limit "Request payload is too large"; its status is what tells.
impl From<axum::extract::multipart::MultipartError> for ApiError {
    fn from(err: axum::extract::multipart::MultipartError) -> ApiError {
        if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "the document is too large")
        } else {
            ApiError::bad(err.body_text())
        }
    }
}

/// A JSON body whose rejection is an [`ApiError`].
struct AppJson<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<T>::from_request(request, state).await?;
        Ok(AppJson(value))
    }
}

async fn description() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DESCRIPTION).into_response()
}

async fn me(Extension(admin): Extension<Admin>) -> Response {
    Json(json!({"name": admin.name, "csrf_token": admin.csrf})).into_response()
}

async fn list(State(state): State<AdminState>) -> Result<Response, ApiError> {
    let servers = state.workspace.list().await?;
    Ok(Json(json!({"servers": servers})).into_response())
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
async fn document(headers: &HeaderMap, request: Request) -> Result<(Option<String>, Document), ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|it| it.to_str().ok()).unwrap_or_default();
    let bad = |message: &str| ApiError::bad(message);
    let mut source = Source { slug: None, url: None, text: None, name: None };
    let mut file: Option<(String, Vec<u8>)> = None;
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = <Multipart as axum::extract::FromRequest<()>>::from_request(request, &())
            .await
            .map_err(|err| bad(&err.body_text()))?;
        while let Some(field) = multipart.next_field().await? {
            let name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let bytes = field.bytes().await?;
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
            .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "the document is too large"))?;
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

async fn create(
    State(state): State<AdminState>,
    Extension(admin): Extension<Admin>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let (slug, document) = document(&headers, request).await?;
    let slug = slug.ok_or_else(|| ApiError::bad("`slug` is required"))?;
    let imported = state.workspace.create(&admin.name, &slug, document).await?;
    opened_next(&state, &admin, &imported.slug);
    Ok((StatusCode::CREATED, Json(imported)).into_response())
}

async fn import(
    State(state): State<AdminState>,
    Extension(admin): Extension<Admin>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let workspace = editing(&state, &headers)?;
    let (_, document) = document(&headers, request).await?;
    let imported = workspace.import(&admin.name, &slug, document).await?;
    opened_next(&state, &admin, &imported.slug);
    Ok(Json(imported).into_response())
}

async fn read(State(state): State<AdminState>, Path(slug): Path<String>) -> Result<Response, ApiError> {
    let draft = state.workspace.draft(&slug).await?;
    Ok(([(header::ETAG, etag(draft.version))], Json(draft)).into_response())
}

async fn delete(
    State(state): State<AdminState>,
    Extension(admin): Extension<Admin>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    editing(&state, &headers)?.delete(&admin.name, &slug).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn curate(
    State(state): State<AdminState>,
    Extension(admin): Extension<Admin>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    AppJson(changes): AppJson<Vec<Curate>>,
) -> Result<Response, ApiError> {
    let curated = editing(&state, &headers)?.curate(&admin.name, &slug, &changes).await?;
    let tag = [(header::ETAG, etag(curated.version))];
    // `Prefer: return=representation` (RFC 7240) asks for what changed: the changed rows and
    // the new totals, never the whole draft.
    if wants_representation(&headers) {
        let view = match &curated.view {
            Some(view) => view.clone(),
            None => state.workspace.view(&slug).await?,
        };
        return Ok((tag, Json(curated.answer(&view, CHANGED_ROWS))).into_response());
    }
    Ok((StatusCode::NO_CONTENT, tag).into_response())
}

async fn configure(
    State(state): State<AdminState>,
    Extension(admin): Extension<Admin>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    AppJson(settings): AppJson<Settings>,
) -> Result<Response, ApiError> {
    let version = editing(&state, &headers)?.configure(&admin.name, &slug, settings).await?;
    Ok((StatusCode::NO_CONTENT, [(header::ETAG, etag(version))]).into_response())
}

async fn publish(
    State(state): State<AdminState>,
    Extension(admin): Extension<Admin>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let published = editing(&state, &headers)?.publish(&admin.name, &slug).await?;
    Ok(Json(json!({"published": slug, "tools": published.tools, "generation": published.generation}))
        .into_response())
}

async fn try_policies(
    State(state): State<AdminState>,
    Path(slug): Path<String>,
    AppJson(trial): AppJson<super::policies::Trial>,
) -> Result<Response, ApiError> {
    Ok(Json(state.workspace.try_policies(&slug, trial)?).into_response())
}

async fn export(
    State(state): State<AdminState>,
    Extension(admin): Extension<Admin>,
    Path(slug): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(state.workspace.export(&admin.name, &slug).await?).into_response())
}

async fn restore(
    State(state): State<AdminState>,
    Extension(admin): Extension<Admin>,
    headers: HeaderMap,
    AppJson(export): AppJson<Export>,
) -> Result<Response, ApiError> {
    let imported = editing(&state, &headers)?.restore(&admin.name, export).await?;
    opened_next(&state, &admin, &imported.slug);
    Ok((StatusCode::CREATED, Json(imported)).into_response())
}

async fn connections(
    State(state): State<AdminState>,
    Path(slug): Path<String>,
) -> Result<Response, ApiError> {
    let connections = state.workspace.connections(&slug).await?;
    Ok(Json(json!({"connections": connections})).into_response())
}

#[derive(Deserialize)]
struct ConnectionUser {
    issuer: String,
    subject: String,
}

async fn revoke_connection(
    State(state): State<AdminState>,
    Extension(admin): Extension<Admin>,
    Path(slug): Path<String>,
    query: Result<Query<ConnectionUser>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let Query(user) = query.map_err(|err| ApiError::bad(err.body_text()))?;
    match state.workspace.revoke_connection(&admin.name, &slug, &user.issuer, &user.subject).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::new(StatusCode::NOT_FOUND, "no such connection")),
    }
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn audit(
    State(state): State<AdminState>,
    query: Result<Query<Limit>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(limit) = query.map_err(|err| ApiError::bad(err.body_text()))?;
    let entries = state.workspace.audit_log(limit.limit.unwrap_or(100).min(1000)).await?;
    Ok(Json(json!({"entries": entries})).into_response())
}

/// The filters and cursor of `GET /servers/{slug}/calls`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallsQuery {
    tool: Option<String>,
    subject: Option<String>,
    decision: Option<Decision>,
    before: Option<u64>,
    limit: Option<usize>,
}

async fn calls(
    State(state): State<AdminState>,
    Path(slug): Path<String>,
    query: Result<Query<CallsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::bad(err.body_text()))?;
    let query = calls::Query {
        // An empty filter, as a form sends it, filters nothing.
        tool: query.tool.filter(|it| !it.is_empty()),
        subject: query.subject.filter(|it| !it.is_empty()),
        decision: query.decision,
        before: query.before,
        limit: query.limit.unwrap_or(100).clamp(1, 1000),
    };
    Ok(Json(state.workspace.calls(&slug, &query)?).into_response())
}

async fn generations(
    State(state): State<AdminState>,
    Path(slug): Path<String>,
) -> Result<Response, ApiError> {
    let generations = state.workspace.history(&slug).await?;
    Ok(Json(json!({"generations": generations, "kept": crate::store::GENERATIONS_KEPT})).into_response())
}

async fn generation(
    State(state): State<AdminState>,
    Path((slug, number)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let number = number.parse().map_err(|_| ApiError::bad("a generation is a number"))?;
    Ok(Json(state.workspace.generation(&slug, number).await?).into_response())
}

/// The sides of `GET /servers/{slug}/changes`: generations' numbers, `published` or `draft`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sides {
    from: Option<String>,
    to: Option<String>,
}

async fn changes(
    State(state): State<AdminState>,
    Path(slug): Path<String>,
    query: Result<Query<Sides>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(sides) = query.map_err(|err| ApiError::bad(err.body_text()))?;
    let side = |it: Option<String>, default| it.map_or(Ok(default), |it| workspace::Side::parse(&it));
    let from = side(sides.from, workspace::Side::Published)?;
    let to = side(sides.to, workspace::Side::Draft)?;
    Ok(Json(state.workspace.changes(&slug, from, to).await?).into_response())
}

/// The most changed rows a change answers with; beyond, only their number.
const CHANGED_ROWS: usize = curation::MAX_PAGE;

fn wants_representation(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|it| it.to_str().ok())
        .flat_map(|it| it.split(','))
        .any(|it| it.trim().eq_ignore_ascii_case("return=representation"))
}

/// A page of a server's operations: `GET /servers/{slug}/operations`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OperationsQuery {
    #[serde(default, deserialize_with = "curation::query")]
    q: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    state: curation::Shown,
    offset: Option<usize>,
    limit: Option<usize>,
}

async fn operations(
    State(state): State<AdminState>,
    Path(slug): Path<String>,
    query: Result<Query<OperationsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::bad(err.body_text()))?;
    let view = state.workspace.view(&slug).await?;
    let filter = curation::Filter { q: query.q, method: query.method, tag: query.tag, state: query.state };
    let page = view.page(&filter, query.offset.unwrap_or(0), query.limit.unwrap_or(curation::DEFAULT_PAGE));
    Ok(([(header::ETAG, etag(view.version))], Json(page)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OperationQuery {
    key: String,
}

/// One operation whole, its tool definition included: `GET /servers/{slug}/operation?key=`.
async fn operation(
    State(state): State<AdminState>,
    Path(slug): Path<String>,
    query: Result<Query<OperationQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::bad(err.body_text()))?;
    let view = state.workspace.view(&slug).await?;
    let detail = view
        .detail(&query.key)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no operation `{}`", query.key)))?;
    Ok(([(header::ETAG, etag(view.version))], Json(detail)).into_response())
}

async fn bulk(
    State(state): State<AdminState>,
    Extension(admin): Extension<Admin>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    AppJson(bulk): AppJson<workspace::Bulk>,
) -> Result<Response, ApiError> {
    let answer = editing(&state, &headers)?.bulk(&admin.name, &slug, &bulk).await?;
    let version = answer["totals"]["version"].as_u64().unwrap_or_default();
    Ok(([(header::ETAG, etag(version))], Json(answer)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    kind: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

/// The conversion report, grouped by kind, a page at a time: `GET /servers/{slug}/report`.
async fn report(
    State(state): State<AdminState>,
    Path(slug): Path<String>,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::bad(err.body_text()))?;
    let view = state.workspace.view(&slug).await?;
    let kind = query.kind.as_deref().filter(|it| !it.is_empty());
    let report = view.report(kind, query.offset.unwrap_or(0), query.limit.unwrap_or(curation::DEFAULT_PAGE));
    Ok(Json(report).into_response())
}

async fn preview_budget(
    State(state): State<AdminState>,
    Path(slug): Path<String>,
    AppJson(trial): AppJson<workspace::BudgetTrial>,
) -> Result<Response, ApiError> {
    Ok(Json(state.workspace.preview_budget(&slug, trial).await?).into_response())
}

/// After an import in the browser (a session, not the bootstrap token of automation), the
/// server's page is opened next: its view is built meanwhile.
fn opened_next(state: &AdminState, admin: &Admin, slug: &str) {
    if admin.csrf.is_some() {
        state.workspace.warm(slug);
    }
}
