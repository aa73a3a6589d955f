//! The admin UI (`/admin`, server-rendered) and admin API (`/admin/api`, JSON, described by the
//! OpenAPI document it serves at `/admin/api/openapi.json`). Both act through the
//! [`Workspace`]; `access` says who may, `signin` signs administrators in.
//!
//! Invariants: every route but sign-in needs an administrator; every state-changing request from
//! a browser session, signing out included, carries the session's CSRF token and, when it has an
//! `Origin`, mcpgate's own; a signed-out session is refused on every route until it expires;
//! every change is in the audit log.

mod access;
mod api;
mod changes;
mod curation;
mod policies;
mod signin;
mod ui;
mod workspace;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

pub use access::{Access, Admin};
pub use workspace::{Document, Workspace};

use crate::config::Config;
use crate::hosting::Hosting;
use crate::store::Store;

/// The largest document an administrator may upload.
pub const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

#[derive(Clone)]
pub struct AdminState {
    pub workspace: Workspace,
    pub access: Arc<Access>,
    pub signin: Arc<signin::SignIn>,
    /// mcpgate's own origin: state-changing browser requests must come from it.
    pub origin: String,
}

/// The `/admin` routes.
pub async fn router(config: &Config, hosting: Hosting, store: Store) -> Result<Router, String> {
    let public = config.http.public_url.clone().ok_or("no public URL")?;
    let secure = public.scheme() == "https";
    let access = Access::new(
        config.admin.bootstrap_token.clone(),
        config.admin.session_key.as_ref(),
        secure,
        store.clone(),
    )?;
    let signin = signin::SignIn::new(config).await?;
    let state = AdminState {
        workspace: Workspace::new(hosting, store),
        access: Arc::new(access),
        signin: Arc::new(signin),
        origin: public.origin().ascii_serialization(),
    };
    let protected = api::router()
        .layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    Ok(Router::new()
        .nest("/admin/api", protected)
        .merge(signin::router())
        .merge(ui::router()?)
        .layer(middleware::from_fn(security_headers))
        // The server page and the draft of a large document are megabytes of text, which gzip
        // makes a tenth of that.
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
        .with_state(state))
}

/// Refuses requests without an administrator, and browser requests that change state without
/// the CSRF token or from another origin.
async fn require_admin(State(state): State<AdminState>, mut request: Request, next: Next) -> Response {
    let admin = match state.access.admin(request.headers()).await {
        Ok(Some(admin)) => admin,
        Ok(None) => {
            return api::ApiError::new(
                StatusCode::UNAUTHORIZED,
                "sign in at /admin/login, or send the bootstrap token",
            )
            .into_response();
        }
        Err(err) => return api::ApiError::from(workspace::Error::from(err)).into_response(),
    };
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes {
        let token = request.headers().get("x-csrf-token").and_then(|it| it.to_str().ok());
        if let Err(reason) = may_change(&state, &admin, request.headers(), token) {
            return api::ApiError::new(StatusCode::FORBIDDEN, reason).into_response();
        }
    }
    request.extensions_mut().insert(admin);
    next.run(request).await
}

/// Whether `admin` may change state with this request: a browser session only from mcpgate's
/// own origin (when the browser names one) and with its CSRF token; the bootstrap token always.
fn may_change(
    state: &AdminState,
    admin: &Admin,
    headers: &axum::http::HeaderMap,
    csrf_token: Option<&str>,
) -> Result<(), &'static str> {
    if admin.csrf.is_none() {
        return Ok(());
    }
    let origin = headers.get(header::ORIGIN).and_then(|it| it.to_str().ok());
    if origin.is_some_and(|it| it != state.origin) {
        return Err("cross-origin request refused");
    }
    if !Access::csrf_ok(admin, csrf_token) {
        return Err("missing or wrong CSRF token (X-CSRF-Token)");
    }
    Ok(())
}

/// A strict Content-Security-Policy and friends on every admin response.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // Not `no-referrer`: under it a browser sends `Origin: null` with a form POST (signing
        // out), which the origin check refuses. Other sites still get no referrer.
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
