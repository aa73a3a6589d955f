//! The accept loop on loopback sockets, with limits short enough for tests, spoken to in raw
//! HTTP/1.1 so that a test decides exactly when each byte is sent.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::routing::get;
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep, sleep, timeout};

use super::{Limits, accept, serve};

const SHORT: Limits =
    Limits { header_read: Duration::from_millis(400), body: Duration::from_millis(400), max_connections: 64 };

/// Longer than every short limit with room for a loaded machine, far shorter than the 5 s a
/// dripping client would keep a connection open without them.
const CLOSED_WITHIN: Duration = Duration::from_secs(2);

fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }).post(|body: Bytes| async move { format!("{} bytes", body.len()) }))
        .route("/peer", get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }))
        .route("/ticks", get(|| async { Body::new(Ticks { left: 5, next: None }) }))
        .route(
            "/slow",
            get(|| async {
                sleep(Duration::from_millis(300)).await;
                "slow"
            }),
        )
}

/// A response body of five `tick` lines, 200 ms apart: a stream longer than the short deadlines,
/// as a session's GET stream is longer than the real ones.
struct Ticks {
    left: u32,
    next: Option<Pin<Box<Sleep>>>,
}

impl hyper::body::Body for Ticks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let next = self.next.get_or_insert_with(|| Box::pin(sleep(Duration::from_millis(200))));
        ready!(next.as_mut().poll(cx));
        self.next = None;
        self.left -= 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"tick\n")))))
    }
}

/// The accept loop serving [`router`] on a loopback port: its address, what shuts it down, and
/// the task, which ends when serving has.
struct Served {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

async fn start(limits: Limits) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, router(), limits, async {
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

/// Sends `head`, then `lines` one at a time, `every` apart, until the server closes the
/// connection or they run out: how long the server kept the connection (at least as long as the
/// lines last when it never closed it).
async fn drip(
    stream: TcpStream,
    head: &str,
    lines: impl Iterator<Item = String>,
    every: Duration,
) -> Duration {
    let started = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let writing = async {
        writer.write_all(head.as_bytes()).await.unwrap();
        for line in lines {
            sleep(every).await;
            if writer.write_all(line.as_bytes()).await.is_err() {
                // Closed: the read side sees it too.
                std::future::pending::<()>().await;
            }
        }
    };
    let reading = async {
        let mut buffer = [0u8; 1024];
        while let Ok(n) = reader.read(&mut buffer).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        () = writing => {}
        () = reading => {}
    }
    started.elapsed()
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
    let served = start(SHORT).await;
    let mut stream = TcpStream::connect(served.addr).await.unwrap();
    let local = stream.local_addr().unwrap();
    stream.write_all(b"GET /peer HTTP/1.1\r\nhost: test\r\n\r\n").await.unwrap();
    let response = read_response(&mut stream, &local.to_string()).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    let served = start(SHORT).await;
    let mut stream = TcpStream::connect(served.addr).await.unwrap();
    let (_, closed) = read_until_closed(&mut stream, CLOSED_WITHIN).await;
    assert!(closed, "closed after the header deadline");
}

#[tokio::test]
async fn a_request_head_sent_slowly_is_cut_off() {
    let served = start(SHORT).await;
    let stream = TcpStream::connect(served.addr).await.unwrap();
    let lines = (0..50).map(|n| format!("x-drip-{n}: 1\r\n"));
    let kept = drip(stream, "GET / HTTP/1.1\r\nhost: test\r\n", lines, Duration::from_millis(100)).await;
    assert!(kept < CLOSED_WITHIN, "the connection was kept {kept:?} while its head dripped in");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let served = start(SHORT).await;
    let mut stream = TcpStream::connect(served.addr).await.unwrap();
    for _ in 0..2 {
        stream.write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n").await.unwrap();
        let response = read_response(&mut stream, "ok").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    let (rest, closed) = read_until_closed(&mut stream, CLOSED_WITHIN).await;
    assert!(closed, "closed after the header deadline");
    assert_eq!(rest, "");
}

#[tokio::test]
async fn a_response_may_stream_for_longer_than_the_deadlines() {
    let served = start(SHORT).await;
    let mut stream = TcpStream::connect(served.addr).await.unwrap();
    stream.write_all(b"GET /ticks HTTP/1.1\r\nhost: test\r\n\r\n").await.unwrap();
    // The chunked body's end.
    let response = read_response(&mut stream, "0\r\n\r\n").await;
    assert_eq!(response.matches("tick").count(), 5, "{response}");
}

#[tokio::test]
async fn a_body_sent_slowly_is_cut_off() {
    let served = start(SHORT).await;
    let stream = TcpStream::connect(served.addr).await.unwrap();
    let head = "POST / HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\n";
    let kept = drip(stream, head, (0..100).map(|_| "z".to_owned()), Duration::from_millis(100)).await;
    assert!(kept < CLOSED_WITHIN, "the connection was kept {kept:?} while its body dripped in");

    // A body sent at once is read.
    let mut stream = TcpStream::connect(served.addr).await.unwrap();
    let body = "z".repeat(100);
    stream.write_all(format!("{head}{body}").as_bytes()).await.unwrap();
    let response = read_response(&mut stream, "100 bytes").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let limits = Limits { header_read: Duration::from_secs(10), max_connections: 2, ..SHORT };
    let served = start(limits).await;
    let first = TcpStream::connect(served.addr).await.unwrap();
    let mut second = TcpStream::connect(served.addr).await.unwrap();
    second.write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n").await.unwrap();
    read_response(&mut second, "ok").await;

    let mut third = TcpStream::connect(served.addr).await.unwrap();
    third.write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n").await.unwrap();
    let mut buffer = [0u8; 64];
    let early = timeout(Duration::from_millis(300), third.read(&mut buffer)).await;
    assert!(early.is_err(), "a third connection is not served while two are open");
    drop(first);
    let response = read_response(&mut third, "ok").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test]
async fn shutdown_finishes_responses_and_closes_idle_connections() {
    let limits = Limits { header_read: Duration::from_secs(10), ..SHORT };
    let served = start(limits).await;
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
    assert!(closed, "an idle connection closes at once, not after the header deadline");
    timeout(CLOSED_WITHIN, served.task).await.expect("serving ends").unwrap();
    assert!(TcpStream::connect(served.addr).await.is_err(), "the listener is closed");
}
