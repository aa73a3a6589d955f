//! `source::fetch::fetch` against real HTTP servers on 127.0.0.1: bodies come back byte for
//! byte, and every refusal (non-public address, redirect to one, size cap, deadline, error
//! status, scheme) is its own error variant, reached without contacting servers it must not.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mcpgate::source::fetch::{self, Error, Policy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// What a test server does with each connection once it has read the request head.
#[derive(Clone)]
enum Answer {
    /// Writes these bytes, then closes the connection.
    Close(Vec<u8>),
    /// Writes these bytes (possibly none), then keeps the connection open without a word more.
    Hold(Vec<u8>),
}

/// A hand-written HTTP/1.1 responder on a loopback port, counting the connections it accepts.
struct Server {
    url: Url,
    connections: Arc<AtomicUsize>,
}

impl Server {
    async fn start(answer: Answer) -> Server {
        let listener = TcpListener::bind((LOOPBACK, 0)).await.unwrap();
        let url = Url::parse(&format!("http://{}/openapi.json", listener.local_addr().unwrap())).unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(respond(stream, answer.clone()));
            }
        });
        Server { url, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn respond(mut stream: TcpStream, answer: Answer) {
    // The request is read in full first: closing a socket with unread input resets the connection,
    // and the client would see a transport error instead of the answer.
    read_request_head(&mut stream).await;
    match answer {
        Answer::Close(bytes) => {
            // The client may hang up early (size cap); the server has nothing to do about it.
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        Answer::Hold(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.flush().await;
            std::future::pending::<()>().await;
        }
    }
}

async fn read_request_head(stream: &mut TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0; 1024];
    while !head.windows(4).any(|it| it == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

fn response(status_line: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut bytes = format!("HTTP/1.1 {status_line}\r\n").into_bytes();
    for header in headers {
        bytes.extend_from_slice(format!("{header}\r\n").as_bytes());
    }
    bytes.extend_from_slice(b"connection: close\r\n\r\n");
    bytes.extend_from_slice(body);
    bytes
}

fn ok_with_length(body: &[u8]) -> Vec<u8> {
    response("200 OK", &[&format!("content-length: {}", body.len())], body)
}

fn policy(allow_private_origin: bool) -> Policy {
    Policy { max_bytes: 1024, timeout: Duration::from_secs(10), allow_private_origin }
}

/// Every byte value, so that no decoding or re-encoding of the body could go unnoticed.
fn all_bytes() -> Vec<u8> {
    (0..=255).chain(b"\r\n{\"openapi\": \"3.1.0\"}\r\n".iter().copied()).collect()
}

#[tokio::test]
async fn returns_the_body_byte_for_byte() {
    let body = all_bytes();
    let server = Server::start(Answer::Close(ok_with_length(&body))).await;
    let fetched = fetch::fetch(&server.url, &policy(true)).await.unwrap();
    assert_eq!(fetched, body);
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn returns_a_close_delimited_body_byte_for_byte() {
    let body = all_bytes();
    let server = Server::start(Answer::Close(response("200 OK", &[], &body))).await;
    assert_eq!(fetch::fetch(&server.url, &policy(true)).await.unwrap(), body);
}

#[tokio::test]
async fn returns_a_body_of_exactly_the_limit() {
    let body = vec![b'x'; 1024];
    let server = Server::start(Answer::Close(ok_with_length(&body))).await;
    assert_eq!(fetch::fetch(&server.url, &policy(true)).await.unwrap(), body);
}

#[tokio::test]
async fn refuses_a_loopback_origin_that_is_not_allowed_without_connecting() {
    let server = Server::start(Answer::Close(ok_with_length(b"{}"))).await;
    match fetch::fetch(&server.url, &policy(false)).await {
        Err(Error::PrivateAddress { host, addr }) => {
            assert_eq!(host, "127.0.0.1");
            assert_eq!(addr, LOOPBACK);
        }
        other => panic!("expected PrivateAddress, got {other:?}"),
    }
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn refuses_a_redirect_to_another_loopback_server_even_when_the_origin_may_be_private() {
    let target = Server::start(Answer::Close(ok_with_length(b"{}"))).await;
    let location = format!("location: {}", target.url);
    let origin =
        Server::start(Answer::Close(response("302 Found", &[&location, "content-length: 0"], b""))).await;
    match fetch::fetch(&origin.url, &policy(true)).await {
        Err(Error::PrivateAddress { host, addr }) => {
            assert_eq!(host, "127.0.0.1");
            assert_eq!(addr, LOOPBACK);
        }
        other => panic!("expected PrivateAddress, got {other:?}"),
    }
    assert_eq!(origin.connections(), 1);
    assert_eq!(target.connections(), 0);
}

#[tokio::test]
async fn refuses_a_relative_redirect_back_to_the_loopback_origin() {
    let server = Server::start(Answer::Close(response(
        "301 Moved Permanently",
        &["location: /elsewhere.json", "content-length: 0"],
        b"",
    )))
    .await;
    match fetch::fetch(&server.url, &policy(true)).await {
        Err(Error::PrivateAddress { host, .. }) => assert_eq!(host, "127.0.0.1"),
        other => panic!("expected PrivateAddress, got {other:?}"),
    }
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn refuses_a_redirect_to_a_name_that_resolves_to_loopback() {
    let target = Server::start(Answer::Close(ok_with_length(b"{}"))).await;
    let port = target.url.port().unwrap();
    let location = format!("location: http://localhost:{port}/openapi.json");
    let origin = Server::start(Answer::Close(response(
        "307 Temporary Redirect",
        &[&location, "content-length: 0"],
        b"",
    )))
    .await;
    match fetch::fetch(&origin.url, &policy(true)).await {
        Err(Error::PrivateAddress { host, addr }) => {
            assert_eq!(host, "localhost");
            assert!(addr.is_loopback(), "{addr}");
        }
        other => panic!("expected PrivateAddress, got {other:?}"),
    }
    assert_eq!(target.connections(), 0);
}

#[tokio::test]
async fn refuses_a_body_whose_content_length_exceeds_the_limit() {
    let body = vec![b'x'; 1025];
    let server = Server::start(Answer::Close(ok_with_length(&body))).await;
    match fetch::fetch(&server.url, &policy(true)).await {
        Err(Error::TooLarge { url, limit }) => {
            assert_eq!(url, server.url.as_str());
            assert_eq!(limit, 1024);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn refuses_a_chunked_body_that_grows_past_the_limit() {
    // Three chunks of 500 bytes: the first two fit, the third crosses the limit of 1024.
    let chunk = format!("1f4\r\n{}\r\n", "x".repeat(500));
    let body = format!("{chunk}{chunk}{chunk}0\r\n\r\n");
    let server =
        Server::start(Answer::Close(response("200 OK", &["transfer-encoding: chunked"], body.as_bytes())))
            .await;
    match fetch::fetch(&server.url, &policy(true)).await {
        Err(Error::TooLarge { limit, .. }) => assert_eq!(limit, 1024),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn refuses_a_close_delimited_body_that_grows_past_the_limit() {
    let body = vec![b'x'; 4096];
    let server = Server::start(Answer::Close(response("200 OK", &[], &body))).await;
    match fetch::fetch(&server.url, &policy(true)).await {
        Err(Error::TooLarge { limit, .. }) => assert_eq!(limit, 1024),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn gives_up_on_a_server_that_never_answers_within_the_timeout() {
    let server = Server::start(Answer::Hold(Vec::new())).await;
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let result = fetch::fetch(&server.url, &Policy { timeout, ..policy(true) }).await;
    let elapsed = started.elapsed();
    match result {
        Err(Error::Timeout { url, timeout: reported }) => {
            assert_eq!(url, server.url.as_str());
            assert_eq!(reported, timeout);
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(elapsed >= timeout, "gave up after {elapsed:?}");
    assert!(elapsed < timeout + Duration::from_secs(2), "gave up only after {elapsed:?}");
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn gives_up_on_a_body_that_stalls_within_the_timeout() {
    // The deadline covers the whole fetch, not only the response head.
    let head = response("200 OK", &["content-length: 100"], b"{\"openapi\":");
    let server = Server::start(Answer::Hold(head)).await;
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    match fetch::fetch(&server.url, &Policy { timeout, ..policy(true) }).await {
        Err(Error::Timeout { .. }) => {}
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(
        started.elapsed() < timeout + Duration::from_secs(2),
        "gave up only after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn reports_an_error_status() {
    let server =
        Server::start(Answer::Close(response("404 Not Found", &["content-length: 9"], b"not found"))).await;
    match fetch::fetch(&server.url, &policy(true)).await {
        Err(Error::Status { url, status: 404 }) => assert_eq!(url, server.url.as_str()),
        other => panic!("expected Status 404, got {other:?}"),
    }
}

#[tokio::test]
async fn refuses_schemes_other_than_http_and_https() {
    for (url, scheme) in [("ftp://127.0.0.1/x", "ftp"), ("file:///etc/passwd", "file")] {
        match fetch::fetch(&Url::parse(url).unwrap(), &policy(true)).await {
            Err(Error::Scheme(found)) => assert_eq!(found, scheme),
            other => panic!("expected Scheme for {url}, got {other:?}"),
        }
    }
}
