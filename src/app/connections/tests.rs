//! The accept loop on loopback sockets, spoken to in raw HTTP/1.1 so that a test decides exactly
//! when each byte is sent.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};

use super::{accept, serve};

/// Far longer than the server takes on a loaded machine.
const CLOSED_WITHIN: Duration = Duration::from_secs(2);

fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }).post(|body: Bytes| async move { format!("{} bytes", body.len()) }))
        .route("/peer", get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }))
        .route(
            "/slow",
            get(|| async {
                sleep(Duration::from_millis(300)).await;
                "slow"
            }),
        )
}

/// The accept loop serving [`router`] on a loopback port: its address, what shuts it down, and
/// the task, which ends when serving has.
struct Served {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

async fn start() -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, router(), async {
        let _ = stopped.await;
    }));
    Served { addr, stop, task }
}

/// Reads until the server closes the connection: what it sent, and whether it closed within
/// `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut received = Vec::new();
    let closed = timeout(limit, async {
        let mut buffer = [0u8; 1024];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&received).into_owned(), closed)
}

/// Reads one response whose body ends with `last`.
async fn read_response(stream: &mut TcpStream, last: &str) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    timeout(CLOSED_WITHIN, async {
        while !String::from_utf8_lossy(&received).ends_with(last) {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "the connection closed: {}", String::from_utf8_lossy(&received));
            received.extend_from_slice(&buffer[..n]);
        }
    })
    .await
    .expect("a response");
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn accepted_sockets_send_small_writes_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (stream, peer) = accept(&listener).await;
    assert!(stream.nodelay().unwrap(), "TCP_NODELAY is set");
    assert_eq!(peer, client.local_addr().unwrap());
}

#[tokio::test]
async fn requests_carry_their_peer_address() {
    let served = start().await;
    let mut stream = TcpStream::connect(served.addr).await.unwrap();
    let local = stream.local_addr().unwrap();
    stream.write_all(b"GET /peer HTTP/1.1\r\nhost: test\r\n\r\n").await.unwrap();
    let response = read_response(&mut stream, &local.to_string()).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test]
async fn shutdown_finishes_responses_and_closes_idle_connections() {
    let served = start().await;
    let mut idle = TcpStream::connect(served.addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n").await.unwrap();
    read_response(&mut idle, "ok").await;
    let mut busy = TcpStream::connect(served.addr).await.unwrap();
    busy.write_all(b"GET /slow HTTP/1.1\r\nhost: test\r\n\r\n").await.unwrap();
    sleep(Duration::from_millis(100)).await;

    served.stop.send(()).unwrap();
    let (response, closed) = read_until_closed(&mut busy, CLOSED_WITHIN).await;
    assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("slow"), "{response}");
    assert!(closed, "the connection closes after its response");
    let (_, closed) = read_until_closed(&mut idle, CLOSED_WITHIN).await;
    assert!(closed, "an idle connection closes at once");
    timeout(CLOSED_WITHIN, served.task).await.expect("serving ends").unwrap();
    assert!(TcpStream::connect(served.addr).await.is_err(), "the listener is closed");
}
