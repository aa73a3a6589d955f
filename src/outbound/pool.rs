//! The forwarder's HTTP client: kept-alive HTTP/1.1 connections to one backend's origin, over
//! TCP or TLS. A call drives its connection itself, in its own task, from writing the request to
//! reading the answer's last byte: no connection task, no channel between tasks, no other thread
//! woken per call. reqwest's per-request layers cost a call more than the rest of its exchange
//! with the backend (its redirect policy parses each request's URL, its response parses it once
//! more), so the forwarder follows redirects itself (`upstream::forward`) and sends through this.
//!
//! The exchange itself, from the request's bytes to the answer's last, is `http1`'s.
//!
//! Invariants: connections go to the pool's origin alone, never through a proxy (none is read
//! from the environment); TLS certificates are verified against the system's roots; a
//! connection is kept for another request only once its answer was read whole.

use std::future::poll_fn;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use url::{Host, Url};

use super::Capped;
use super::http1::{self, Answer, Connection, Stream};

pub use super::http1::{Head, Request};

/// Kept-alive connections to one origin; as many as requests were in flight at once, which the
/// backend's concurrency limit bounds.
pub struct Pool {
    /// Where every connection goes.
    address: Address,
    /// The server's name for TLS (`https`), `None` for plain TCP.
    tls: Option<ServerName<'static>>,
    /// The `Host` header of every request.
    host: String,
    connect_timeout: Duration,
    /// How long an unused connection stays open (`IDLE`).
    idle: Duration,
    /// The most recently used last.
    kept: Mutex<Vec<Kept>>,
}

/// The backend's address: resolved at each connection when it is a name.
enum Address {
    Ip(SocketAddr),
    Name(String, u16),
}

impl Address {
    /// The name a TLS server's certificate must carry.
    fn server_name(&self) -> Result<ServerName<'static>, String> {
        match self {
            Address::Ip(address) => Ok(ServerName::from(address.ip())),
            Address::Name(name, _) => ServerName::try_from(name.clone())
                .map_err(|_| "the backend's host is not a valid TLS server name".to_owned()),
        }
    }
}

struct Kept {
    connection: Connection,
    since: Instant,
}

/// How long an unused connection stays open.
const IDLE: Duration = Duration::from_secs(90);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Http(#[from] http1::Error),
}

impl Pool {
    /// A pool of connections to the origin of `url`, each made within `connect_timeout`.
    pub fn new(url: &Url, connect_timeout: Duration) -> Result<Pool, String> {
        let port = url.port_or_known_default().ok_or("the backend URL has no port")?;
        let address = match url.host().ok_or("the backend URL has no host")? {
            Host::Ipv4(ip) => Address::Ip(SocketAddr::new(IpAddr::V4(ip), port)),
            Host::Ipv6(ip) => Address::Ip(SocketAddr::new(IpAddr::V6(ip), port)),
            Host::Domain(domain) => Address::Name(domain.to_owned(), port),
        };
        let tls = match url.scheme() {
            "https" => {
                tls_config()?;
                Some(address.server_name()?)
            }
            "http" => None,
            _ => return Err("the backend URL is neither http nor https".to_owned()),
        };
        // As clients write it: the port only when it is not the scheme's own.
        let host = url.host_str().ok_or("the backend URL has no host")?;
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        if !host.bytes().all(|it| it.is_ascii_graphic()) {
            return Err("the backend's host is not a valid Host header".to_owned());
        }
        Ok(Pool { address, tls, host, connect_timeout, idle: IDLE, kept: Mutex::new(Vec::new()) })
    }

    /// The same pool, closing connections unused for `idle`.
    #[cfg(test)]
    pub fn idle_for(self, idle: Duration) -> Pool {
        Pool { idle, ..self }
    }

    /// How many connections are kept.
    #[cfg(test)]
    pub fn kept(&self) -> usize {
        lock(&self.kept).len()
    }

    /// Sends `request`: the answer's head, and the connection that carries its body.
    pub async fn send(&self, request: &Request<'_>) -> Result<Exchange<'_>, Error> {
        loop {
            let (mut connection, reused) = match poll_fn(|cx| Poll::Ready(self.checkout(cx))).await {
                Some(connection) => (connection, true),
                // Boxed: connecting's state is kilobytes, which the calls on kept connections
                // would carry (and copy) too.
                None => (Box::pin(self.connect()).await?, false),
            };
            match connection.send(&self.host, request).await {
                Ok(answer) => return Ok(Exchange { pool: self, connection, answer }),
                // A kept connection the backend closed as it was taken: the request did not
                // arrive whole, or, unanswered, is one that may be sent twice (RFC 9110 §9.2.2).
                Err(http1::Error::Send(_)) if reused => continue,
                Err(http1::Error::NoAnswer(_)) if reused && request.method.is_idempotent() => continue,
                Err(err) => return Err(Error::Http(err)),
            }
        }
    }

    /// A kept connection still open and quiet, if there is one.
    fn checkout(&self, cx: &mut Context<'_>) -> Option<Connection> {
        loop {
            let Kept { mut connection, since } = lock(&self.kept).pop()?;
            if since.elapsed() <= self.idle && connection.is_idle(cx) {
                return Some(connection);
            }
        }
    }

    fn keep(&self, connection: Connection) {
        let outlived: Vec<Kept> = {
            let mut kept = lock(&self.kept);
            // Read under the lock, so that the list stays in the order of `since`.
            let now = Instant::now();
            // Kept in the order they were last used (taken from the end, put back at the end):
            // those that outlived `idle` are the first ones, and all of them close now, so that the
            // pool shrinks as soon as a burst is over, not by one connection per call.
            let outlived = kept.partition_point(|it| now.duration_since(it.since) > self.idle);
            let outlived = kept.drain(..outlived).collect();
            kept.push(Kept { connection, since: now });
            outlived
        };
        // Closed once the lock is released.
        drop(outlived);
    }

    async fn connect(&self) -> Result<Connection, Error> {
        let connecting = async {
            let tcp = match &self.address {
                Address::Ip(address) => TcpStream::connect(address).await?,
                Address::Name(name, port) => TcpStream::connect((name.as_str(), *port)).await?,
            };
            // Requests are written whole; Nagle's algorithm would hold their last segment back.
            tcp.set_nodelay(true)?;
            let Some(name) = &self.tls else { return Ok(Stream::Tcp(tcp)) };
            let connector = tokio_rustls::TlsConnector::from(tls_config().map_err(std::io::Error::other)?);
            Ok::<_, std::io::Error>(Stream::Tls(Box::new(connector.connect(name.clone(), tcp).await?)))
        };
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(stream)) => Ok(Connection::new(stream)),
            Ok(Err(err)) => Err(Error::Connect(Box::new(err))),
            Err(_) => Err(Error::Connect(format!("no connection within {:?}", self.connect_timeout).into())),
        }
    }
}

fn lock(kept: &Mutex<Vec<Kept>>) -> MutexGuard<'_, Vec<Kept>> {
    // The list stays whole whatever panicked while it was held.
    kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An answer's head, and the connection its body is still to come on.
pub struct Exchange<'a> {
    pool: &'a Pool,
    connection: Connection,
    answer: Answer,
}

impl Exchange<'_> {
    pub fn head(&self) -> &Head {
        &self.answer.head
    }

    /// Reads the body, stopping once it is longer than `max_bytes`. A connection whose answer was
    /// read whole is kept for another request; any other closes.
    pub async fn read_capped(self, max_bytes: u64) -> Result<(Head, Capped), http1::Error> {
        let Exchange { pool, mut connection, answer } = self;
        let (capped, reusable) = connection.read_body(&answer, max_bytes).await?;
        if reusable {
            pool.keep(connection);
        }
        Ok((answer.head, capped))
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

/// The innermost cause of `err` alone; the pool's errors never carry the request's URL.
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    super::innermost(err).to_string()
}
