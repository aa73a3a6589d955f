//! Clients built from policies, the forwarder's pool, and capped reads, against loopback
//! servers: which proxy a request goes through, that redirects are answers, where a body is
//! cut, which connections the pool keeps, and what an error description leaves out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::json;
use url::Url;

use super::testing::{Reply, Stub, assert_passes_ignoring_env_proxy, json, read_head, response};
use super::*;

fn ok(body: &str) -> Reply {
    Reply::Close(response(200, &[&format!("content-length: {}", body.len())], body.as_bytes()))
}

fn redirect(location: &str) -> Reply {
    Reply::Close(response(302, &[&format!("location: {location}"), "content-length: 0"], b""))
}

/// A server whose one answer is `reply`.
async fn serving(reply: impl Fn() -> Reply + Send + Sync + 'static) -> Stub {
    Stub::start(move |_| reply()).await
}

async fn get(policy: &Policy, url: &str) -> reqwest::Result<reqwest::Response> {
    client(policy).unwrap().get(url).send().await
}

#[tokio::test]
async fn a_direct_client_reaches_the_server_itself() {
    let server = serving(|| ok("direct")).await;
    let response = get(&Policy::direct(), server.url("/x").as_str()).await.unwrap();
    assert_eq!(response.text().await.unwrap(), "direct");
    assert_eq!(server.seen(), ["GET /x HTTP/1.1"]);
}

#[tokio::test]
async fn a_direct_client_ignores_proxies_named_by_the_environment() {
    assert_passes_ignoring_env_proxy("outbound::tests::a_direct_client_reaches_the_server_itself").await;
}

#[tokio::test]
async fn a_configured_proxy_carries_every_request() {
    let proxy =
        Stub::start(|line| if line.starts_with("CONNECT ") { json(502, &json!({})) } else { ok("proxied") })
            .await;
    let policy = Policy { proxy: Some(proxy.url("/")), ..Policy::direct() };
    // Neither host resolves (RFC 6761), so only the proxy can have answered.
    let response = get(&policy, "http://backend.invalid/x?q=1").await.unwrap();
    assert_eq!(response.text().await.unwrap(), "proxied");
    let _ = get(&policy, "https://idp.invalid/token").await.unwrap_err();
    assert_eq!(
        proxy.seen(),
        ["GET http://backend.invalid/x?q=1 HTTP/1.1", "CONNECT idp.invalid:443 HTTP/1.1"]
    );
}

#[test]
fn refuses_a_proxy_it_would_not_use() {
    for url in ["socks5://user:hunter2@proxy.example:1080", "file:///tmp/proxy"] {
        let policy = Policy { proxy: Some(Url::parse(url).unwrap()), ..Policy::direct() };
        let err = client(&policy).unwrap_err();
        assert!(matches!(err, Error::Proxy { .. }), "{url}: {err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

#[tokio::test]
async fn a_pinned_host_connects_to_its_address_and_never_through_a_proxy() {
    let server = serving(|| ok("pinned")).await;
    let pin = Some(("pinned.invalid".to_owned(), server.addr));
    let policy = Policy { pin: pin.clone(), ..Policy::direct() };
    let url = format!("http://pinned.invalid:{}/doc", server.addr.port());
    assert_eq!(get(&policy, &url).await.unwrap().text().await.unwrap(), "pinned");
    assert_eq!(server.seen(), ["GET /doc HTTP/1.1"]);

    let proxied = Policy { pin, proxy: Some(server.url("/")), ..Policy::direct() };
    assert!(matches!(client(&proxied), Err(Error::PinnedThroughProxy)));
}

#[tokio::test]
async fn redirects_none_answers_with_the_redirect() {
    let server = serving(|| redirect("/elsewhere")).await;
    let response = get(&Policy::direct(), server.url("/").as_str()).await.unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn a_policy_timeout_bounds_the_whole_request() {
    let server = serving(|| Reply::Hold(Vec::new())).await;
    let timeout = Duration::from_millis(200);
    let policy = Policy { timeout: Some(timeout), ..Policy::direct() };
    let started = Instant::now();
    let err = get(&policy, server.url("/").as_str()).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < timeout + Duration::from_secs(2), "after {:?}", started.elapsed());
}

async fn read(reply: impl Fn() -> Reply + Send + Sync + 'static, max_bytes: u64) -> Capped {
    let server = serving(reply).await;
    let mut response = get(&Policy::direct(), server.url("/").as_str()).await.unwrap();
    read_capped(&mut response, max_bytes).await.unwrap()
}

#[tokio::test]
async fn a_body_of_exactly_the_cap_is_whole() {
    let capped = read(|| ok("0123456789"), 10).await;
    assert_eq!((capped.body.as_slice(), capped.cut), (b"0123456789".as_slice(), false));
}

#[tokio::test]
async fn a_longer_body_is_cut_at_the_cap() {
    let capped = read(|| ok("0123456789x"), 10).await;
    assert_eq!((capped.body.as_slice(), capped.cut), (b"0123456789".as_slice(), true));

    // Chunked: the first chunk fits, the second crosses the cap and is cut inside.
    let chunked = || {
        Reply::Close(response(
            200,
            &["transfer-encoding: chunked"],
            b"6\r\n012345\r\n6\r\n6789ab\r\n0\r\n\r\n",
        ))
    };
    let capped = read(chunked, 10).await;
    assert_eq!((capped.body.as_slice(), capped.cut), (b"0123456789".as_slice(), true));

    // Close-delimited, no length given.
    let capped = read(|| Reply::Close(response(200, &[], &[b'x'; 4096])), 1024).await;
    assert_eq!((capped.body.len(), capped.cut), (1024, true));
}

/// A pool to the origin of `url`.
fn pooled(url: &Url) -> pool::Pool {
    pool::Pool::new(url, Duration::from_secs(5)).unwrap()
}

/// A GET of `target`.
fn get_of(target: &str) -> pool::Request<'_> {
    static NO_HEADERS: std::sync::LazyLock<http::HeaderMap> = std::sync::LazyLock::new(http::HeaderMap::new);
    pool::Request { method: &http::Method::GET, target, headers: &NO_HEADERS, body: b"" }
}

#[tokio::test]
async fn the_pool_reaches_the_server_itself() {
    let server = serving(|| ok("pooled")).await;
    let pool = pooled(&server.url("/x"));
    let exchange = pool.send(&get_of("/x")).await.unwrap();
    assert_eq!(exchange.head().status, 200);
    let (_, capped) = exchange.read_capped(1024).await.unwrap();
    assert_eq!((capped.body.as_slice(), capped.cut), (b"pooled".as_slice(), false));
    assert_eq!(server.seen(), ["GET /x HTTP/1.1"]);
}

#[tokio::test]
async fn the_pool_ignores_proxies_named_by_the_environment() {
    assert_passes_ignoring_env_proxy("outbound::tests::the_pool_reaches_the_server_itself").await;
}

#[tokio::test]
async fn the_pool_answers_a_redirect_with_the_redirect() {
    let server = serving(|| redirect("/elsewhere")).await;
    let pool = pooled(&server.url("/"));
    let exchange = pool.send(&get_of("/")).await.unwrap();
    assert_eq!(exchange.head().status, 302);
    assert_eq!(exchange.head().location.as_deref(), Some("/elsewhere"));
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn a_pooled_read_stops_at_the_cap_without_waiting_for_the_rest() {
    // The server promises 100 bytes, sends 20 and stalls: the cap of 10 is reached first.
    let stalled = || Reply::Hold(response(200, &["content-length: 100"], &[b'x'; 20]));
    let server = serving(stalled).await;
    let pool = pooled(&server.url("/"));
    let read = pool.send(&get_of("/")).await.unwrap().read_capped(10);
    let (_, capped) = tokio::time::timeout(Duration::from_secs(30), read).await.unwrap().unwrap();
    assert_eq!((capped.body.len(), capped.cut), (10, true));
}

#[tokio::test]
async fn error_descriptions_leave_the_url_out() {
    // A port nothing listens on: bound, then released.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("http://{addr}/tools?api_key=hunter2");
    let err = get(&Policy::direct(), &url).await.unwrap_err();
    assert!(err.to_string().contains("hunter2"), "reqwest's own words name the URL: {err}");
    let described = describe(&err);
    assert!(described.starts_with("error sending request: "), "{described}");
    assert!(!described.contains("hunter2") && !described.contains("/tools"), "{described}");
    let cause = root_cause(&err);
    assert!(!cause.is_empty() && described.ends_with(&cause), "{cause} / {described}");
    assert!(!cause.contains("hunter2"), "{cause}");
}

/// A keep-alive server: answers every GET on a connection with `body`, then closes the connection
/// after `per_connection` answers. Counts the connections it accepted.
async fn keeping_alive(body: &'static str, per_connection: usize) -> (Url, Arc<AtomicUsize>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut read = Vec::new();
                for _ in 0..per_connection {
                    if read_head(&mut stream, &mut read).await.is_none() {
                        return;
                    }
                    read.clear();
                    let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, accepted)
}

async fn get_whole(pool: &pool::Pool, max_bytes: u64) -> Capped {
    pool.send(&get_of("/")).await.unwrap().read_capped(max_bytes).await.unwrap().1
}

#[tokio::test]
async fn a_connection_whose_answer_was_read_whole_carries_the_next_request() {
    let (url, accepted) = keeping_alive("kept", usize::MAX).await;
    let pool = pool::Pool::new(&url, Duration::from_secs(5)).unwrap();
    for _ in 0..3 {
        assert_eq!(get_whole(&pool, 1024).await.body, b"kept");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn connections_unused_for_the_idle_time_close_together() {
    let (url, accepted) = keeping_alive("kept", usize::MAX).await;
    // Wide margins: the connection used last must stay within `idle` however slow the machine.
    let idle = Duration::from_millis(1200);
    let pool = pool::Pool::new(&url, Duration::from_secs(5)).unwrap().idle_for(idle);
    // A burst of three calls at once leaves three connections.
    tokio::join!(get_whole(&pool, 1024), get_whole(&pool, 1024), get_whole(&pool, 1024));
    assert_eq!((pool.kept(), accepted.load(Ordering::SeqCst)), (3, 3));
    // Then one call at a time, on the connection used last.
    tokio::time::sleep(idle / 2).await;
    get_whole(&pool, 1024).await;
    assert_eq!(pool.kept(), 3);
    tokio::time::sleep(idle * 7 / 12).await;
    // The two left since the burst outlived `idle`: both close as the next call ends.
    get_whole(&pool, 1024).await;
    assert_eq!((pool.kept(), accepted.load(Ordering::SeqCst)), (1, 3));
}

#[tokio::test]
async fn a_kept_connection_the_backend_closed_is_replaced() {
    // One answer per connection, then the server hangs up, as an idle timeout would.
    let (url, accepted) = keeping_alive("once", 1).await;
    let pool = pool::Pool::new(&url, Duration::from_secs(5)).unwrap();
    assert_eq!(get_whole(&pool, 1024).await.body, b"once");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get_whole(&pool, 1024).await.body, b"once");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_connection_whose_answer_was_cut_is_not_reused() {
    // The rest of a cut answer would be read as the next one's beginning.
    let (url, accepted) = keeping_alive("0123456789", usize::MAX).await;
    let pool = pool::Pool::new(&url, Duration::from_secs(5)).unwrap();
    let cut = get_whole(&pool, 4).await;
    assert_eq!((cut.body.as_slice(), cut.cut), (b"0123".as_slice(), true));
    assert_eq!(get_whole(&pool, 1024).await.body, b"0123456789");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

/// What a [`scripted`] server does with a request.
#[derive(Clone)]
enum Step {
    /// Writes these pieces, a moment apart, so that the client reads them one at a time.
    Answer(Vec<&'static [u8]>),
    /// Closes the connection without answering.
    HangUp,
}

/// A server that follows `script` on each connection, one step per request, then closes it.
/// Records the request lines it read, and counts the connections.
async fn scripted(script: Vec<Step>) -> (Url, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let (accepted, seen) = (Arc::new(AtomicUsize::new(0)), Arc::new(std::sync::Mutex::new(Vec::new())));
    let (counted, recorded) = (accepted.clone(), seen.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let (script, recorded) = (script.clone(), recorded.clone());
            tokio::spawn(async move {
                let mut read = Vec::new();
                for step in script {
                    let Some(head_end) = read_head(&mut stream, &mut read).await else { return };
                    let head = String::from_utf8_lossy(&read[..head_end]).into_owned();
                    recorded.lock().unwrap().push(head.lines().next().unwrap_or_default().to_owned());
                    read.drain(..head_end);
                    let Step::Answer(pieces) = step else { return };
                    for piece in pieces {
                        if stream.write_all(piece).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            });
        }
    });
    (url, accepted, seen)
}

async fn exchange_on(pool: &pool::Pool, method: &http::Method) -> Result<(pool::Head, Capped), String> {
    let request = pool::Request { method, ..get_of("/") };
    let exchange = pool.send(&request).await.map_err(|err| pool::root_cause(&err))?;
    exchange.read_capped(1 << 20).await.map_err(|err| err.to_string())
}

#[tokio::test]
async fn a_chunked_answer_is_read_across_reads_and_its_connection_kept() {
    let chunked = Step::Answer(vec![
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: application/json\r\n\r\n5\r\n{\"a\":",
        b"\r\n3;ext=1\r\n12}\r",
        b"\n0\r\nx-trailer: 1\r\n",
        b"\r\n",
    ]);
    let (url, accepted, _) = scripted(vec![chunked.clone(), chunked]).await;
    let pool = pooled(&url);
    for _ in 0..2 {
        let (head, capped) = exchange_on(&pool, &http::Method::GET).await.unwrap();
        assert_eq!((head.status.as_u16(), head.content_type.as_deref()), (200, Some("application/json")));
        assert_eq!((capped.body.as_slice(), capped.cut), (b"{\"a\":12}".as_slice(), false));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_interim_answer_is_skipped_and_a_body_to_the_end_ends_its_connection() {
    let answer =
        Step::Answer(vec![b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\nto the", b" end"]);
    let (url, accepted, _) = scripted(vec![answer]).await;
    let pool = pooled(&url);
    for _ in 0..2 {
        let (head, capped) = exchange_on(&pool, &http::Method::GET).await.unwrap();
        assert_eq!((head.status.as_u16(), capped.body.as_slice()), (200, b"to the end".as_slice()));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_answer_shorter_than_its_length_or_with_a_huge_head_is_an_error() {
    let short = Step::Answer(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345"]);
    let (url, _, _) = scripted(vec![short]).await;
    let err = exchange_on(&pooled(&url), &http::Method::GET).await.unwrap_err();
    assert_eq!(err, "the connection closed before the answer ended");

    let field: &'static [u8] =
        Box::leak(format!("x-padding: {}\r\n", "x".repeat(1000)).into_bytes().into_boxed_slice());
    let mut pieces: Vec<&'static [u8]> = vec![b"HTTP/1.1 200 OK\r\n"];
    pieces.extend(std::iter::repeat_n(field, 70));
    let (url, _, _) = scripted(vec![Step::Answer(pieces)]).await;
    let err = exchange_on(&pooled(&url), &http::Method::GET).await.unwrap_err();
    assert!(err.contains("head is longer than"), "{err}");
}

#[tokio::test]
async fn an_unanswered_request_on_a_kept_connection_is_sent_again_only_when_idempotent() {
    let ok = Step::Answer(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]);
    // Each connection answers once, then reads the next request and hangs up, as a backend
    // closing an idle connection just as a request arrives.
    let (url, accepted, seen) = scripted(vec![ok, Step::HangUp]).await;
    let pool = pooled(&url);
    assert!(exchange_on(&pool, &http::Method::GET).await.is_ok());
    let (_, again) = exchange_on(&pool, &http::Method::GET).await.unwrap();
    assert_eq!(again.body, b"ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    assert_eq!(seen.lock().unwrap().len(), 3, "the GET was sent twice");

    let err = exchange_on(&pool, &http::Method::POST).await.unwrap_err();
    assert_eq!(err, "the connection closed without an answer");
    assert_eq!(seen.lock().unwrap().last().map(String::as_str), Some("POST / HTTP/1.1"));
    assert_eq!(seen.lock().unwrap().len(), 4, "the POST was sent once");
}

#[tokio::test]
async fn a_backend_over_tls_must_show_a_certificate_the_system_trusts() {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    // A self-signed certificate for localhost, which no root of the system's vouches for.
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (Debian's package openssl) makes the test certificate");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let certs = CertificateDer::pem_file_iter(&cert).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, PrivateKeyDer::from_pem_file(&key).unwrap())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor.accept(tcp).await.map(|_| ())
    });
    let pool = pooled(&Url::parse(&format!("https://localhost:{port}/")).unwrap());
    let Err(err) = pool.send(&get_of("/")).await else { panic!("an untrusted certificate was accepted") };
    assert!(matches!(err, pool::Error::Connect(_)), "{err:?}");
    assert!(pool::root_cause(&err).contains("certificate"), "{}", pool::root_cause(&err));
    // The handshake broke off on the server too: the client refused the certificate.
    assert!(handshakes.await.unwrap().is_err());
}
