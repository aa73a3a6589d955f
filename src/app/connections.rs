//! The accept loop: every connection mcpgate serves is accepted here and served by hyper's
//! HTTP/1 connection.
//!
//! Invariants: every accepted socket has `TCP_NODELAY` set. Each request carries its peer's
//! address as `ConnectInfo<SocketAddr>`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting, lets the
/// connections finish the responses they are sending (idle ones close at once) and returns once
/// every one has closed.
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let builder = http1::Builder::new();
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request.map(Body::new))
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                // A client that went away: theirs to know, not an operator's.
                tracing::debug!(%peer, "connection ended: {err}");
            }
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
