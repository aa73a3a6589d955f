//! The HTTP application: state, router, and `run` with graceful shutdown.
//!
//! `/mcp/{slug}` hands each request to that hosted server's rmcp service; `/healthz` says the
//! process runs, `/readyz` that every configured server is provisioned.

use std::future::Future;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::json;
use tokio::net::TcpListener;

use crate::config::{AuthMode, Config};
use crate::hosting::{self, Hosting};
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub hosting: Hosting,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/mcp/{slug}", any(mcp))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(state)
}

async fn mcp(State(state): State<AppState>, Path(slug): Path<String>, request: Request) -> Response {
    let Some(hosted) = state.hosting.get(&slug) else {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"error": "no hosted server with this name"})))
            .into_response();
    };
    hosted.service.handle(request).await.map(Body::new)
}

async fn ready(State(state): State<AppState>) -> Response {
    let failed: Vec<_> =
        state.hosting.failed.iter().map(|(slug, reason)| json!({"server": slug, "reason": reason})).collect();
    let status = if failed.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let servers: Vec<&str> = state.hosting.slugs().collect();
    (status, axum::Json(json!({"servers": servers, "failed": failed}))).into_response()
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
}

/// Provisions the hosted servers and serves until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let store = Store::open(&config.store.data_dir)?;
    match config.auth.mode {
        AuthMode::None => tracing::warn!(
            "auth mode is `none`: anyone who can reach {} can list and call every tool",
            config.public_url()
        ),
    }
    let hosting = hosting::provision(&config, &store).await;
    for slug in hosting.slugs() {
        tracing::info!("serving {}/mcp/{slug}", config.public_url());
    }
    let app = router(AppState { hosting });
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    Ok(())
}
