//! Test fixtures for outbound clients: a hand-written HTTP/1.1 server on a loopback port that
//! records every request line (standing in for a backend, an identity provider or a proxy), and
//! one test run in a child process whose environment names a proxy.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

/// What a [`Stub`] does once it has read a request.
pub(crate) enum Reply {
    /// Writes these bytes, then closes the connection.
    Close(Vec<u8>),
    /// Writes these bytes, then keeps the connection open without a word more.
    Hold(Vec<u8>),
}

/// A loopback server answering each request by a function of its request line.
pub(crate) struct Stub {
    pub(crate) addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

type Answer = dyn Fn(&str) -> Reply + Send + Sync;

impl Stub {
    /// Answers with `answer(request line)`: `GET /x HTTP/1.1`, or `GET http://host/x HTTP/1.1`
    /// and `CONNECT host:443 HTTP/1.1` when asked as a proxy.
    pub(crate) async fn start(answer: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Stub {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<Answer> = Arc::new(answer);
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, answer.clone(), record.clone()));
            }
        });
        Stub { addr, seen }
    }

    pub(crate) fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{path}", self.addr)).unwrap()
    }

    /// The request lines received so far, in order.
    pub(crate) fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve(mut stream: TcpStream, answer: Arc<Answer>, seen: Arc<Mutex<Vec<String>>>) {
    // The request is read in full first: closing a socket with unread input resets the
    // connection, and the client would see a transport error instead of the answer.
    let mut request = Vec::new();
    let Some(head_end) = read_head(&mut stream, &mut request).await else { return };
    let mut buf = [0; 4096];
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|it| it.to_ascii_lowercase().strip_prefix("content-length:").map(|it| it.trim().to_owned()))
        .and_then(|it| it.parse().ok())
        .unwrap_or(0);
    while request.len() < head_end + length {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let line = head.lines().next().unwrap_or_default().to_owned();
    seen.lock().unwrap().push(line.clone());
    match answer(&line) {
        Reply::Close(bytes) => {
            // The client may hang up early (a size cap); nothing to do about it.
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        Reply::Hold(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.flush().await;
            std::future::pending::<()>().await;
        }
    }
}

/// Reads from `stream` until `read` holds a request's head: the head's length, `None` when the
/// connection ends first.
pub(crate) async fn read_head(stream: &mut TcpStream, read: &mut Vec<u8>) -> Option<usize> {
    let mut buf = [0; 4096];
    loop {
        if let Some(at) = read.windows(4).position(|it| it == b"\r\n\r\n") {
            return Some(at + 4);
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => read.extend_from_slice(&buf[..n]),
        }
    }
}

/// An HTTP/1.1 answer; `headers` are whole lines such as `content-length: 2`.
pub(crate) fn response(status: u16, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut bytes = format!("HTTP/1.1 {status} Stub\r\n").into_bytes();
    for header in headers {
        bytes.extend_from_slice(format!("{header}\r\n").as_bytes());
    }
    bytes.extend_from_slice(b"connection: close\r\n\r\n");
    bytes.extend_from_slice(body);
    bytes
}

/// A JSON answer with its length, closing the connection.
pub(crate) fn json(status: u16, body: &serde_json::Value) -> Reply {
    let body = body.to_string();
    let length = format!("content-length: {}", body.len());
    Reply::Close(response(status, &["content-type: application/json", &length], body.as_bytes()))
}

/// Runs the test `name` (its whole path) of this test binary alone, in a child process whose
/// environment names a recording proxy for every scheme, and asserts that the test ran and
/// passed and that nothing asked the proxy for anything.
pub(crate) async fn assert_passes_ignoring_env_proxy(name: &'static str) {
    let proxy = Stub::start(|_| Reply::Close(response(502, &["content-length: 0"], b""))).await;
    let proxy_url = format!("http://{}", proxy.addr);
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args([name, "--exact", "--test-threads=1"]).env("RUST_BACKTRACE", "0");
    for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
        command.env(var, &proxy_url);
    }
    // Either would switch the proxies off: `NO_PROXY` for the hosts it names, `REQUEST_METHOD`
    // (the mark of a CGI request) for all.
    for var in ["NO_PROXY", "no_proxy", "REQUEST_METHOD"] {
        command.env_remove(var);
    }
    let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(" 1 passed;"),
        "{name} failed with HTTP_PROXY={proxy_url}:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(proxy.seen(), Vec::<String>::new(), "{name} went through the environment's proxy");
}
