//! The admin UI (`/admin`, server-rendered) and admin API (`/admin/api`, JSON, described by the
//! OpenAPI document it serves at `/admin/api/openapi.json`). Both act through the
//! [`Workspace`]; `access` says who may, `signin` signs administrators in.
//!
//! Invariants: every route but sign-in needs an administrator; every state-changing request from
//! a browser session carries the session's CSRF token and, when it has an `Origin`, mcpgate's
//! own; every change is in the audit log.

mod access;
mod api;
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
    let access =
        Access::new(config.admin.bootstrap_token.clone(), config.admin.session_key.as_ref(), secure)?;
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
        .with_state(state))
}

/// Refuses requests without an administrator, and browser requests that change state without
/// the CSRF token or from another origin.
async fn require_admin(State(state): State<AdminState>, mut request: Request, next: Next) -> Response {
    let Some(admin) = state.access.admin(request.headers()) else {
        return api::ApiError::new(
            StatusCode::UNAUTHORIZED,
            "sign in at /admin/login, or send the bootstrap token",
        )
        .into_response();
    };
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes && admin.csrf.is_some() {
        let origin = request.headers().get(header::ORIGIN).and_then(|it| it.to_str().ok());
        if origin.is_some_and(|it| it != state.origin) {
            return api::ApiError::new(StatusCode::FORBIDDEN, "cross-origin request refused").into_response();
        }
        let token = request.headers().get("x-csrf-token").and_then(|it| it.to_str().ok());
        if !Access::csrf_ok(&admin, token) {
            return api::ApiError::new(StatusCode::FORBIDDEN, "missing or wrong CSRF token (X-CSRF-Token)")
                .into_response();
        }
    }
    request.extensions_mut().insert(admin);
    next.run(request).await
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
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
