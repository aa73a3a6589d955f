//! Large documents: publishing and start-up stay linear in the number of tools and run off the
//! async workers, so the process keeps answering (health probes, other servers) meanwhile; a
//! stop is honoured during a publication; the port opens before the servers are built.
//!
//! Timings are printed (`--nocapture`) for `docs/benchmarks.md`, never asserted.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "support/app.rs"]
mod app;
#[path = "support/harness.rs"]
mod harness;

use app::Setup;

const TOKEN: &str = "boot-big-api-7d41c2";

/// A document of `n` small operations, as JSON.
fn document(n: usize) -> String {
    let mut paths = serde_json::Map::new();
    for idx in 0..n {
        let operation = json!({
            "operationId": format!("getThing{idx}"),
            "summary": format!("Get thing {idx}"),
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}}
        });
        paths.insert(format!("/things{idx}/{{id}}"), json!({"get": operation}));
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Big", "version": "1"},
        "servers": [{"url": "http://127.0.0.1:9/v1"}],
        "paths": paths,
    })
    .to_string()
}

async fn admin(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Value {
    let response = http
        .request(method, format!("{base}/admin/api{path}"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Imports a document of `n` operations as `big`, with every one exposed.
async fn import_exposed(http: &reqwest::Client, base: &str, n: usize) {
    let started = Instant::now();
    admin(http, base, reqwest::Method::POST, "/servers", json!({"slug": "big", "text": document(n)})).await;
    let changes: Vec<Value> =
        (0..n).map(|idx| json!({"key": format!("getThing{idx}"), "exposed": true})).collect();
    admin(http, base, reqwest::Method::PATCH, "/servers/big/operations", Value::Array(changes)).await;
    eprintln!("{n} operations imported and exposed in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_while_ten_thousand_tools_are_published() {
    const TOOLS: usize = 12_000;
    let app = Setup::new().bootstrap_token(TOKEN).start().await;
    let http = reqwest::Client::new();
    import_exposed(&http, &app.base, TOOLS).await;

    let started = Instant::now();
    let publish = {
        let (http, base) = (http.clone(), app.base.clone());
        tokio::spawn(async move {
            admin(&http, &base, reqwest::Method::POST, "/servers/big/publish", Value::Null).await
        })
    };
    // The publication runs on a blocking thread: the async workers answer probes meanwhile.
    let mut answered_during = 0;
    let mut slowest = Duration::ZERO;
    while !publish.is_finished() {
        let asked = Instant::now();
        let health = http.get(format!("{}/healthz", app.base)).timeout(Duration::from_secs(30)).send().await;
        assert_eq!(health.map(|it| it.status().as_u16()).ok(), Some(200));
        slowest = slowest.max(asked.elapsed());
        if !publish.is_finished() {
            answered_during += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let published = publish.await.unwrap();
    eprintln!(
        "{TOOLS} tools published in {:?}; /healthz answered {answered_during} times meanwhile, the slowest in {slowest:?}",
        started.elapsed()
    );
    assert_eq!(published["tools"], TOOLS);
    assert!(answered_during > 0, "no probe was answered during the publication");

    let list = app.mcp("big").rpc("tools/list", json!({})).await;
    assert_eq!(list["result"]["tools"].as_array().map(Vec::len), Some(100), "{list}");
    assert!(list["result"]["nextCursor"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_a_publication_is_not_held_by_it() {
    const TOOLS: usize = 20_000;
    let mut app = Setup::new().bootstrap_token(TOKEN).start().await;
    let http = reqwest::Client::new();
    import_exposed(&http, &app.base, TOOLS).await;

    let publish = {
        let (http, base) = (http.clone(), app.base.clone());
        tokio::spawn(async move {
            let response = http
                .post(format!("{base}/admin/api/servers/big/publish"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap_or_default())
        })
    };
    // Under way: the request has reached mcpgate, which builds the catalog.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!publish.is_finished(), "the publication ended before the stop: make the document larger");
    let stopped = Instant::now();
    app.stop().await;
    let (status, body) = publish.await.unwrap();
    eprintln!("stopped {:?} after the stop was asked for, during a publication", stopped.elapsed());
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("stopping"), "{body}");
}

/// The port opens at once; `/readyz` counts the servers still loading, then says ready.
#[test]
fn the_port_opens_while_servers_load_and_a_stop_is_honoured() {
    const TOOLS: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("big.json");
    std::fs::write(&spec, document(TOOLS)).unwrap();
    let tables = format!("[[servers]]\nslug = \"big\"\nspec = {}\n", harness::toml_string(&spec));
    let run = |addr: std::net::SocketAddr, data: &str| {
        let config = dir.path().join(format!("{data}.toml"));
        std::fs::write(
            &config,
            harness::config_text(addr, &dir.path().join(data), "mode = \"none\"", &tables),
        )
        .unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_mcpgate"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };

    // Loaded to the end: `loading` counts down to ready.
    let addr = harness::free_port();
    let mut child = run(addr, "first");
    let started = Instant::now();
    let mut seen_loading = false;
    let ready = loop {
        assert!(started.elapsed() < Duration::from_secs(120), "not ready within 120 s");
        if let Some((status, body)) = harness::http_get(addr, "/readyz") {
            let body: Value = serde_json::from_str(&body).unwrap();
            if body["loading"] == 1 {
                assert_eq!((status, &body["ready"]), (503, &json!(false)), "{body}");
                seen_loading = true;
            } else if status == 200 {
                break body;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("{TOOLS} tools ready {:?} after the start", started.elapsed());
    assert_eq!(ready, json!({"ready": true, "servers": 1, "failed": 0, "loading": 0, "store": "up"}));
    assert!(seen_loading, "/readyz never answered while the server was loading");
    let _ = child.kill();
    let _ = child.wait();

    // Stopped while loading: the process ends without waiting for the server.
    let addr = harness::free_port();
    let mut child = run(addr, "second");
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(60), "the port did not open");
        if let Some((_, body)) = harness::http_get(addr, "/readyz") {
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["loading"], 1, "loaded before it could be stopped: make the document larger");
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let term = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let stopped = Instant::now();
    let status = harness::wait_or_kill(&mut child, Duration::from_secs(30));
    eprintln!("stopped {:?} after SIGTERM, while loading", stopped.elapsed());
    assert!(status.is_some_and(|it| it.success()), "{status:?}");
    assert!(harness::http_get(addr, "/readyz").is_none());
}
