//! The forwarder's HTTP client: hyper's pooled HTTP/1.1 client over TCP or TLS, and nothing
//! between it and the call. reqwest's per-request layers cost a call more than the rest of its
//! exchange with the backend (its redirect policy parses each request's URL, its response parses
//! it once more), so the forwarder follows redirects itself (`upstream::forward`) and sends
//! through this.
//!
//! Invariants: connections go where the request's URL says, never through a proxy (none is read
//! from the environment); TLS certificates are verified against the system's roots.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, Error};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::Capped;

pub type Request = http::Request<Full<Bytes>>;
pub type Response = http::Response<Incoming>;

/// Pooled keep-alive connections to the hosts of the requests sent through it.
#[derive(Clone)]
pub struct Pool {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// How long an unused connection stays open.
const IDLE: Duration = Duration::from_secs(90);

impl Pool {
    /// A pool whose connections are made within `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Result<Pool, String> {
        let mut tcp = HttpConnector::new();
        // Requests are written whole; Nagle's algorithm would hold their last segment back.
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(connect_timeout));
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config()?.as_ref().clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE)
            .build(tls);
        Ok(Pool { client })
    }

    /// Sends `request`: the response's head, its body still to read.
    pub async fn send(&self, request: Request) -> Result<Response, Error> {
        self.client.request(request).await
    }
}

/// The TLS client configuration, made once: loading the system's roots takes milliseconds, and
/// every publication makes a new pool.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|err| format!("TLS roots: {err}"))?;
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|err| format!("TLS: {err}"))?
                .dangerous()
                // The platform verifier is the full WebPKI check (chain, names, expiry) with the
                // system's roots; "dangerous" is only rustls' name for a verifier of one's choosing.
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

/// Reads `body`, stopping once it is longer than `max_bytes`.
pub async fn read_capped(mut body: Incoming, max_bytes: u64) -> Result<Capped, hyper::Error> {
    let mut capped = Capped { body: Vec::new(), cut: false };
    while let Some(frame) = body.frame().await {
        if let Ok(chunk) = frame?.into_data()
            && !capped.push(&chunk, max_bytes)
        {
            break;
        }
    }
    Ok(capped)
}

/// The innermost cause of `err` alone; hyper's errors never carry the request's URL.
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    super::innermost(err).to_string()
}
