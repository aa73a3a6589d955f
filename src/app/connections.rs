//! The accept loop: every connection mcpgate serves is accepted here and served by hyper's
//! HTTP/1 connection, within [`Limits`], so that no client holds a connection (a file
//! descriptor, a task and their buffers) longer than its requests need.
//!
//! Invariants: every accepted socket has `TCP_NODELAY` set; at most [`Limits::max_connections`]
//! connections are open at once; a connection that does not send a request's head within
//! [`Limits::header_read`] (counted from when it opened or its previous response ended, so an
//! idle keep-alive connection too) is closed; a request's body that has not arrived whole within
//! [`Limits::body`] of its head fails to read. Each request carries its peer's address as
//! `ConnectInfo<SocketAddr>`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tower_http::timeout::DeadlineBody;

use super::entry::Entry;
use super::self_wakes;

/// What answers a connection's requests: the whole application ([`Entry`]), or a router of its
/// own (`/metrics` on `http.metrics_listen`).
pub(super) trait Handler: Send + Sync + 'static {
    fn handle(&self, request: Request) -> impl Future<Output = Response> + Send;
}

impl Handler for Entry {
    fn handle(&self, request: Request) -> impl Future<Output = Response> + Send {
        Entry::handle(self, request)
    }
}

impl Handler for Router {
    fn handle(&self, request: Request) -> impl Future<Output = Response> + Send {
        let router = self.clone();
        async move { router.oneshot(request).await.unwrap_or_else(|err| match err {}) }
    }
}

/// What bounds the connections of one [`serve`].
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    /// To send a request's head: from when the connection opens, and again from the end of each
    /// response. A head fits in one packet, and clients keep idle connections for seconds (Node's
    /// fetch 4 s, httpx 5 s), so 10 s cuts off only clients that drip their requests.
    pub header_read: Duration,
    /// To send a request's whole body, from its head: 4 MiB, the default body limit, at about
    /// 0.5 Mbit/s.
    pub body: Duration,
    /// Beyond this, the listener waits until a connection closes: new clients wait in the
    /// kernel's backlog rather than exhaust the process's file descriptors.
    pub max_connections: usize,
}

impl Limits {
    pub(super) const DEFAULT: Limits =
        Limits { header_read: Duration::from_secs(10), body: Duration::from_secs(60), max_connections: 4096 };
}

/// Serves `handler` on `listener` until `shutdown` completes, then stops accepting, lets the
/// connections finish the responses they are sending (idle ones close at once) and returns once
/// every one has closed.
pub(super) async fn serve(
    listener: TcpListener,
    handler: impl Handler,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read);
    let graceful = GracefulShutdown::new();
    let handler = Arc::new(handler);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit,
            () = &mut shutdown => break,
        };
        // The semaphore is never closed.
        let Ok(permit) = permit else { break };
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = &mut shutdown => break,
        };
        let handler = handler.clone();
        let body_deadline = limits.body;
        let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            // The deadline runs from the head, whenever the handler reads the body.
            let request = request.map(|body| Body::new(DeadlineBody::new(body_deadline, body)));
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(handler.handle(request).await) }
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = self_wakes::absorbing(connection).await {
                // A client that went away, or was too slow: theirs to know, not an operator's.
                tracing::debug!(%peer, "connection ended: {err}");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The next connection on `listener`, with `TCP_NODELAY` set: a session's answer is an SSE event
/// written after the headers, and with Nagle's algorithm that small second write waits for the
/// client's delayed ACK of the first, about 40 ms per call.
async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if let Err(err) = stream.set_nodelay(true) {
                    tracing::debug!(%peer, "TCP_NODELAY not set: {err}");
                }
                return (stream, peer);
            }
            // The client gave up before it was accepted: nothing to serve.
            Err(err) if is_connection_error(&err) => {}
            Err(err) => {
                // Out of file descriptors, most likely: connections may close meanwhile. Retrying
                // at once would spin.
                tracing::error!("cannot accept connections: {err}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests;
