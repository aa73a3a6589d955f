//! The HTTP application: state, router, and `run` with graceful shutdown.
//!
//! `entry` takes every request: the `Host` check, then `/mcp/{slug}` to that hosted server's
//! endpoint and anything else to the router; `/healthz` says the process runs, `/readyz` that
//! every configured server is provisioned and the store usable. The accept loop, with its
//! deadlines and connection cap, is `connections`.

mod connections;
mod entry;
mod self_wakes;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header, uri::Authority};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;

use crate::auth::{self, IssuerConfig, Verifier, VerifierConfig};
use crate::config::{AuthMode, Config, DevConfig};
use crate::devidp::DevIdp;
use crate::hosting::Hosting;
use crate::store::Store;
pub use entry::Entry;
use entry::not_found;

#[derive(Clone)]
pub struct AppState {
    pub hosting: Hosting,
    pub max_request_bytes: usize,
    /// Read by `/readyz`: a store that cannot be used makes mcpgate not ready.
    pub store: Store,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/.well-known/oauth-protected-resource/mcp/{slug}", get(resource_metadata))
        .route("/.well-known/oauth-protected-resource", get(root_resource_metadata))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/", get(|| async { axum::response::Redirect::to("/admin") }))
        .fallback(unknown_path)
        .with_state(state)
}

/// Any other path: a 404 that says where the hosted servers are, for a client pointed at the
/// wrong URL (such as `/mcp` or a trailing slash).
async fn unknown_path(State(state): State<AppState>) -> Response {
    let servers: Vec<String> = state.hosting.slugs().iter().map(|slug| format!("/mcp/{slug}")).collect();
    let body = json!({
        "error": "no such path: MCP servers are at /mcp/{slug}, administration at /admin",
        "servers": servers,
    });
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

/// RFC 9728 metadata of one hosted server, at the path-suffixed well-known URL.
async fn resource_metadata(State(state): State<AppState>, Path(slug): Path<String>) -> Response {
    let snapshot = state.hosting.get(&slug).map(|it| it.host.current());
    match snapshot.as_ref().and_then(|it| it.access.as_ref()) {
        Some(guard) => axum::Json(guard.resource.metadata()).into_response(),
        None => not_found(),
    }
}

/// The root form of the metadata URL names one resource; with one protected server, it is that
/// server's; with several, clients must use the path-suffixed form (or the challenge's URL).
async fn root_resource_metadata(State(state): State<AppState>) -> Response {
    let servers: Vec<_> = state
        .hosting
        .slugs()
        .iter()
        .filter_map(|slug| state.hosting.get(slug))
        .map(|it| it.host.current())
        .collect();
    let mut guarded = servers.iter().filter_map(|it| it.access.as_ref());
    match (guarded.next(), guarded.next()) {
        (Some(guard), None) => axum::Json(guard.resource.metadata()).into_response(),
        _ => not_found(),
    }
}

/// The router of `/metrics` alone: merged into the main one, or served on `http.metrics_listen`.
///
/// Open to whoever reaches it, as Prometheus scrapers expect: it names hosted servers and their
/// tools and counts calls, never a user, a client or an address. On the main address it sits
/// behind the `Host` check like every route; an operator who would rather not publish it there
/// sets `http.metrics_listen` to an address only the scraper reaches.
fn metrics_router(hosting: Hosting) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(hosting)
}

async fn metrics(State(hosting): State<Hosting>) -> Response {
    let mut servers = Vec::new();
    for slug in hosting.slugs() {
        let Some(hosted) = hosting.get(&slug) else { continue };
        servers.push(crate::metrics::ServerState {
            sessions: hosted.service.open_sessions().await,
            generation: hosted.host.generation(),
            tools: hosted.host.current().catalog.tools.len(),
            server: slug,
        });
    }
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], crate::metrics::render(&servers)).into_response()
}

/// Counts only: anyone may ask, and the reasons name internal URLs and connection errors. They
/// are in the log (at provisioning) and in the admin API's server list (`failure`). `loading`
/// counts the servers still being built at start-up, while the port is already open.
async fn ready(State(state): State<AppState>) -> Response {
    let failed = state.hosting.failed().len();
    let loading = state.hosting.loading();
    let store_up = state.store.is_usable();
    // A shared database's outage is every replica's: they serve on from memory rather than all
    // leave the rotation at once, unless the operator wants otherwise.
    let store_ok = store_up || !state.hosting.config().store.required_for_readiness();
    let ready = failed == 0 && loading == 0 && store_ok;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let servers = state.hosting.slugs().len();
    let store = if store_up { "up" } else { "down" };
    let body =
        json!({"ready": ready, "servers": servers, "failed": failed, "loading": loading, "store": store});
    (status, axum::Json(body)).into_response()
}

/// The `Host` values requests may name: `host` or `host:port` entries, an entry without a port
/// accepting any port (as rmcp reads the same list).
#[derive(Debug, Clone)]
struct AcceptedHosts(Arc<[(String, Option<u16>)]>);

impl AcceptedHosts {
    fn new(entries: &[String]) -> AcceptedHosts {
        AcceptedHosts(entries.iter().map(|it| authority(it)).collect())
    }

    fn accept(&self, host: &str) -> bool {
        let Ok(named) = host.trim().parse::<Authority>() else { return false };
        let (name, port) = (bare(named.host()), named.port_u16());
        self.0.iter().any(|(host, only)| *host == name && only.is_none_or(|it| Some(it) == port))
    }
}

/// An entry of `http.allowed_hosts`: `example.com`, `example.com:8443`, `::1`, `[::1]:8080`.
fn authority(entry: &str) -> (String, Option<u16>) {
    match entry.trim().parse::<Authority>() {
        Ok(it) => (bare(it.host()), it.port_u16()),
        // A bare IPv6 address is no authority.
        Err(_) => (bare(entry.trim()), None),
    }
}

fn bare(host: &str) -> String {
    host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase()
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(
        "store.secret_keys must be set when replicas share PostgreSQL (store.url): they must all open what each seals"
    )]
    SharedKeys,
    #[error("authorization server: {0}")]
    Auth(#[from] crate::auth::Error),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::Error),
    #[error("admin: {0}")]
    Admin(String),
    #[error("development mode: {0}")]
    Dev(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
}

/// The token verifier for the configured issuers; an issuer without a `jwks_uri` is asked for its
/// metadata now, so a misconfigured issuer stops start-up rather than every request.
async fn verifier(config: &Config) -> Result<Verifier, Error> {
    let mut issuers = Vec::new();
    for it in &config.auth.issuers {
        let jwks_uri = match &it.jwks_uri {
            Some(uri) => uri.clone(),
            None => auth::discover_through(&it.issuer, config.http.outbound_proxy.as_ref())
                .await?
                .signing_keys()?,
        };
        issuers.push(IssuerConfig {
            issuer: it.issuer.clone(),
            jwks_uri: Some(jwks_uri),
            shared_secret: None,
        });
    }
    // Each hosted server narrows the audience to its own URL (`Verifier::with_audiences`).
    let mut verifier_config = VerifierConfig::new(issuers, vec![config.public_url().to_owned()]);
    verifier_config.clock_skew = std::time::Duration::from_secs(config.auth.clock_skew_secs);
    if !config.auth.algorithms.is_empty() {
        verifier_config.algorithms = config
            .auth
            .algorithms
            .iter()
            .map(|name| {
                name.parse::<jsonwebtoken::Algorithm>()
                    .map_err(|_| Error::Config(format!("auth.algorithms: unknown algorithm `{name}`")))
            })
            .collect::<Result<_, _>>()?;
    }
    verifier_config.required_type = config.auth.required_token_type.clone();
    verifier_config.jwks.proxy = config.http.outbound_proxy.clone();
    Ok(Verifier::new(&verifier_config)?)
}

/// What `serve --dev` adds on the same port: the development identity provider, which the
/// configuration names as the one issuer, and the sample backend. Development only.
fn development(config: &Config, dev: &DevConfig, hosting: &Hosting) -> Result<Router, Error> {
    let mut scopes: Vec<String> = Vec::new();
    for slug in hosting.slugs() {
        let snapshot = hosting.get(&slug).map(|it| it.host.current());
        if let Some(guard) = snapshot.as_ref().and_then(|it| it.access.as_ref()) {
            scopes.extend(
                guard
                    .resource
                    .scopes_supported
                    .iter()
                    .filter(|it| !scopes.contains(it))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
    }
    let issuer = format!("{}/dev-idp", config.public_url());
    let idp = DevIdp::new(issuer, dev.user.clone(), scopes, dev.idp_dir.clone())
        .map_err(|err| Error::Dev(err.to_string()))?;
    Ok(idp.router().merge(crate::sample_backend::router()))
}

/// mcpgate assembled and not yet serving: every hosted server provisioned, every route behind
/// one entry. Tests serve it on their own listener or hand requests straight to [`App::entry`].
pub struct App {
    pub entry: Entry,
    /// `/metrics` alone, for `http.metrics_listen` when it is set (the main router then does not
    /// serve it).
    pub metrics: Option<Router>,
    /// The hosted servers, which the admin API publishes through and shutdown closes.
    pub hosting: Hosting,
    public_url: String,
}

/// Provisions the hosted servers and assembles the routes: the MCP endpoints, the admin API
/// and UI, and under `serve --dev` the development identity provider and sample backend.
/// Returns once every server is provisioned or has failed.
pub async fn build(config: &Config) -> Result<App, Error> {
    let (app, loading) = assemble(config).await?;
    loading.await;
    Ok(app)
}

/// The routes, with the servers still loading: the second value completes once they are.
async fn assemble(config: &Config) -> Result<(App, impl Future<Output = ()> + Send + 'static), Error> {
    let data_dir = &config.store.data_dir;
    if config.store.secret_keys.is_empty() && config.dev.is_none() {
        tracing::warn!(
            "no store.secret_keys configured: stored secrets are sealed with {}, kept beside the data",
            data_dir.join("secret.key").display()
        );
    }
    let store = match config.store.postgres() {
        Some(postgres) => {
            // Each replica would otherwise seal with a key of its own, which the others cannot open.
            if config.store.secret_keys.is_empty() && config.dev.is_none() {
                return Err(Error::SharedKeys);
            }
            Store::connect(postgres).await?
        }
        None => Store::open(data_dir)?,
    };
    let keyring = crate::secrets::Keyring::configured_or_local(&config.store.secret_keys, data_dir)?;
    let verifier = match config.auth.mode {
        AuthMode::None => {
            tracing::warn!(
                "auth mode is `none`: anyone who can reach {} can list and call every tool",
                config.public_url()
            );
            None
        }
        AuthMode::Jwt => Some(verifier(config).await?),
    };
    let hosting = Hosting::new(config, &store, std::sync::Arc::new(keyring), verifier.as_ref());
    let loader = hosting.clone();
    let public_url = config.public_url().to_owned();
    let followed = store.clone();
    let loading = tokio::spawn(async move {
        loader.load().await;
        for slug in loader.slugs() {
            tracing::info!("serving {public_url}/mcp/{slug}");
        }
        // Once loaded, what other replicas publish (a shared store) is followed.
        crate::hosting::follow(&loader, &followed);
    });
    // The development identity provider offers the scopes of the servers: they must be loaded.
    // A handle awaited once must not be awaited again (tokio panics), so it is then dropped.
    let loading = if config.dev.is_some() {
        let _ = loading.await;
        None
    } else {
        Some(loading)
    };
    let dev = config.dev.as_ref().map(|dev| development(config, dev, &hosting)).transpose()?;
    let admin = crate::admin::router(config, hosting.clone(), store.clone()).await.map_err(Error::Admin)?;
    let state =
        AppState { hosting: hosting.clone(), max_request_bytes: config.http.max_request_bytes, store };
    let mut router = router(state).merge(admin).merge(crate::connect::router(hosting.clone()));
    let mut metrics = Some(metrics_router(hosting.clone()));
    if config.http.metrics_listen.is_none() {
        router = router.merge(metrics.take().unwrap_or_default());
    }
    if let Some(dev) = dev {
        router = router.merge(dev);
    }
    let hosts = AcceptedHosts::new(&config.http.accepted_hosts());
    let entry = Entry::new(router, hosting.clone(), hosts);
    let app = App { entry, metrics, hosting, public_url: config.public_url().to_owned() };
    // A load that panicked has left its servers out, which `/readyz` counts.
    Ok((app, async move {
        if let Some(loading) = loading {
            let _ = loading.await;
        }
    }))
}

impl App {
    /// Serves on `listener` until `shutdown` completes and every connection has closed, each
    /// connection within the deadlines and the cap of `connections::Limits::DEFAULT`.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let App { entry, hosting, public_url, .. } = self;
        tracing::info!("listening on {public_url}; administration at {public_url}/admin");
        let shutdown = async move {
            shutdown.await;
            hosting.stop();
            // Sessions' GET streams never end by themselves, and graceful shutdown waits for them.
            for slug in hosting.slugs() {
                if let Some(hosted) = hosting.get(&slug) {
                    hosted.service.close();
                }
            }
        };
        connections::serve(listener, entry, connections::Limits::DEFAULT, shutdown).await;
        Ok(())
    }
}

/// Provisions the hosted servers and serves until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    // The port opens before the servers are built: probes and the admin UI answer meanwhile,
    // and `/readyz` counts the servers still loading.
    let (app, loading) = assemble(&config).await?;
    tokio::spawn(loading);
    if let (Some(address), Some(router)) = (config.http.metrics_listen, app.metrics.clone()) {
        let listener = TcpListener::bind(address).await.map_err(|err| {
            Error::Config(format!("http.metrics_listen: cannot listen on {address}: {err}"))
        })?;
        tracing::info!("metrics at http://{address}/metrics");
        // Scrapes are short; the task ends with the process.
        tokio::spawn(connections::serve(
            listener,
            router,
            connections::Limits::DEFAULT,
            std::future::pending(),
        ));
    }
    app.serve(listener, shutdown).await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::Request;
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn hosts_are_matched_by_name_and_by_port_when_one_is_given() {
        let hosts =
            AcceptedHosts::new(&["MCP.example.com".into(), "::1".into(), "admin.example.com:8443".into()]);
        for host in ["mcp.example.com", "mcp.example.com:443", "MCP.EXAMPLE.COM", "[::1]:8080", "[::1]"] {
            assert!(hosts.accept(host), "{host}");
        }
        assert!(hosts.accept("admin.example.com:8443"));
        for host in ["admin.example.com", "admin.example.com:443", "example.com", "mcp.example.com.evil", ""]
        {
            assert!(!hosts.accept(host), "{host}");
        }
        assert!(!hosts.accept("user@evil.example") && !hosts.accept("mcp.example.com/x"));
    }

    #[test]
    fn the_default_hosts_are_the_public_urls_and_the_loopback_names() {
        let parse =
            |http: &str| Config::parse(&format!("[http]\n{http}\n[store]\n[auth]\nmode = \"none\""), &[]);
        let config = parse("public_url = \"https://mcp.example.com/base\"").unwrap();
        assert_eq!(config.http.accepted_hosts(), ["localhost", "127.0.0.1", "::1", "mcp.example.com"]);
        let config = parse("allowed_hosts = [\"gate.internal:8080\"]").unwrap();
        assert_eq!(config.http.accepted_hosts(), ["gate.internal:8080"]);
    }

    #[tokio::test]
    async fn not_ready_while_the_store_is_unusable() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::parse("[http]\n[store]\n[auth]\nmode = \"none\"", &[]).unwrap();
        let keyring = Arc::new(crate::secrets::Keyring::configured_or_local(&[], dir.path()).unwrap());
        let store = Store::open(dir.path()).unwrap();
        let hosting = crate::hosting::provision(&config, &store, keyring, None).await;
        for (store, status, ready) in [(store, 200, true), (Store::unusable(), 503, false)] {
            let state = AppState { hosting: hosting.clone(), max_request_bytes: 1024, store };
            let request = Request::get("/readyz").body(Body::empty()).unwrap();
            let response = router(state).oneshot(request).await.unwrap();
            assert_eq!(response.status(), status);
            let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let store = if ready { "up" } else { "down" };
            assert_eq!(
                body,
                json!({"ready": ready, "servers": 0, "failed": 0, "loading": 0, "store": store})
            );
        }
    }
}
