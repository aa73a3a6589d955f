//! The forwarder's HTTP client: kept-alive HTTP/1.1 connections to one backend's origin, over
//! TCP or TLS. A call drives its connection itself, in its own task, from writing the request to
//! reading the answer's last byte: no connection task, no channel between tasks, no other thread
//! woken per call. reqwest's per-request layers cost a call more than the rest of its exchange
//! with the backend (its redirect policy parses each request's URL, its response parses it once
//! more), so the forwarder follows redirects itself (`upstream::forward`) and sends through this.
//!
//! Invariants: connections go to the pool's origin alone, never through a proxy (none is read
//! from the environment); TLS certificates are verified against the system's roots; a
//! connection is kept for another request only once its answer was read whole.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::{HOST, HeaderValue};
use http::{HeaderMap, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::ServiceExt;
use url::Url;

use super::Capped;

pub type Request = http::Request<Full<Bytes>>;

/// Boxed: its state (hyper's buffers, a TLS session) is 1.7 KB, which every move of a call's
/// future would copy.
type Connection = Pin<Box<http1::Connection<MaybeHttpsStream<TokioIo<TcpStream>>, Full<Bytes>>>>;

/// Kept-alive connections to one origin; as many as requests were in flight at once, which the
/// backend's concurrency limit bounds.
pub struct Pool {
    /// Where every connection goes: the backend's scheme, host and port.
    origin: Uri,
    /// The `Host` header of every request.
    host: HeaderValue,
    connector: HttpsConnector<HttpConnector>,
    /// The most recently used last.
    kept: Mutex<Vec<Kept>>,
}

/// An open connection: what sends a request on it, and what reads and writes it.
struct Open {
    sender: http1::SendRequest<Full<Bytes>>,
    connection: Connection,
}

struct Kept {
    open: Open,
    since: Instant,
}

/// How long an unused connection stays open.
const IDLE: Duration = Duration::from_secs(90);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

impl Pool {
    /// A pool of connections to the origin of `url`, each made within `connect_timeout`.
    pub fn new(url: &Url, connect_timeout: Duration) -> Result<Pool, String> {
        let host = url.host_str().ok_or("the backend URL has no host")?;
        let port = url.port_or_known_default().ok_or("the backend URL has no port")?;
        let origin = Uri::builder()
            .scheme(url.scheme())
            .authority(format!("{host}:{port}"))
            .path_and_query("/")
            .build()
            .map_err(|err| format!("the backend URL: {err}"))?;
        // As clients write it: the port only when it is not the scheme's own.
        let host = match url.port() {
            Some(port) => HeaderValue::from_str(&format!("{host}:{port}")),
            None => HeaderValue::from_str(host),
        }
        .map_err(|_| "the backend's host is not a valid Host header")?;
        let mut tcp = HttpConnector::new();
        // Requests are written whole; Nagle's algorithm would hold their last segment back.
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config()?.as_ref().clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        Ok(Pool { origin, host, connector, kept: Mutex::new(Vec::new()) })
    }

    /// Sends `request`, whose URI is its path and query: the answer's head, and the connection
    /// that carries its body.
    pub async fn send(&self, mut request: Request) -> Result<Exchange<'_>, Error> {
        request.headers_mut().insert(HOST, self.host.clone());
        loop {
            let (open, reused) = match poll_fn(|cx| Poll::Ready(self.checkout(cx))).await {
                Some(open) => (open, true),
                // Boxed: connecting's state is kilobytes, which the calls on kept connections
                // would carry (and copy) too.
                None => (Box::pin(self.connect()).await?, false),
            };
            let Open { mut sender, connection } = open;
            let mut connection = Some(connection);
            match driving(&mut connection, sender.try_send_request(request)).await {
                Ok(response) => return Ok(Exchange { pool: self, sender, connection, response }),
                Err(mut err) => match err.take_message() {
                    // A kept connection the backend closed as it was taken: nothing was sent.
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(Error::Http(err.into_error())),
                },
            }
        }
    }

    /// A kept connection still open and ready for a request, if there is one.
    fn checkout(&self, cx: &mut Context<'_>) -> Option<Open> {
        loop {
            let Kept { mut open, since } = lock(&self.kept).pop()?;
            if since.elapsed() > IDLE {
                continue;
            }
            // Reads what came while it was kept: the backend's closing ends it here.
            if open.connection.as_mut().poll(cx).is_pending() && open.sender.is_ready() {
                return Some(open);
            }
        }
    }

    fn keep(&self, open: Open) {
        let mut kept = lock(&self.kept);
        // The least recently used is the first to outlive `IDLE`.
        if kept.first().is_some_and(|it| it.since.elapsed() > IDLE) {
            kept.remove(0);
        }
        kept.push(Kept { open, since: Instant::now() });
    }

    async fn connect(&self) -> Result<Open, Error> {
        let io = self.connector.clone().oneshot(self.origin.clone()).await.map_err(Error::Connect)?;
        let (sender, connection) = http1::handshake(io).await?;
        Ok(Open { sender, connection: Box::pin(connection) })
    }
}

fn lock(kept: &Mutex<Vec<Kept>>) -> MutexGuard<'_, Vec<Kept>> {
    // The list stays whole whatever panicked while it was held.
    kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Polls `future` and, while it waits, the connection that serves it, until the connection ends.
async fn driving<F: Future>(connection: &mut Option<Connection>, future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    poll_fn(|cx| {
        if let Some(open) = connection
            && open.as_mut().poll(cx).is_ready()
        {
            // Ended or failed: what it delivered stays readable, and `future` learns the rest.
            *connection = None;
        }
        future.as_mut().poll(cx)
    })
    .await
}

/// A response's head, and the connection its body is still to come on.
pub struct Exchange<'a> {
    pool: &'a Pool,
    sender: http1::SendRequest<Full<Bytes>>,
    connection: Option<Connection>,
    response: http::Response<Incoming>,
}

impl Exchange<'_> {
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    pub fn headers(&self) -> &HeaderMap {
        self.response.headers()
    }

    /// Reads the body, stopping once it is longer than `max_bytes`. A connection whose answer was
    /// read whole is kept for another request; any other closes.
    pub async fn read_capped(self, max_bytes: u64) -> Result<(http::response::Parts, Capped), hyper::Error> {
        let Exchange { pool, sender, mut connection, response } = self;
        let (head, mut body) = response.into_parts();
        let mut capped = Capped { body: Vec::new(), cut: false };
        while let Some(frame) = driving(&mut connection, body.frame()).await {
            if let Ok(chunk) = frame?.into_data()
                && !capped.push(&chunk, max_bytes)
            {
                return Ok((head, capped));
            }
        }
        if let Some(connection) = connection {
            pool.keep(Open { sender, connection });
        }
        Ok((head, capped))
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

/// The innermost cause of `err` alone; hyper's errors never carry the request's URL.
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    super::innermost(err).to_string()
}
