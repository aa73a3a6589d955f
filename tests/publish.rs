//! A publication replaces a hosted server whole: calls racing with it see either the old
//! backend with the old credential or the new backend with the new one, never a mix.

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use serde_json::{Value, json};

const BOOTSTRAP_TOKEN: &str = "boot-publish-race-3c9e1f";
const CALLS: usize = 1000;

const DOCUMENT: &str = r#"
openapi: 3.0.3
info: {title: Pets, version: "1"}
paths:
  /pets/{id}:
    get:
      operationId: getPet
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
      responses:
        "200":
          description: ok
          content: {application/json: {schema: {type: object}}}
"#;

/// A backend that records the API key of every request it gets.
async fn recording_backend() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let key = headers.get("x-api-key").and_then(|it| it.to_str().ok()).unwrap_or("(none)").to_owned();
        recorder.lock().unwrap().push(key);
        async { axum::Json(json!({"id": "1"})) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), seen)
}

async fn admin(client: &reqwest::Client, base: &str, method: reqwest::Method, path: &str, body: Value) {
    let response = client
        .request(method, format!("{base}/admin/api{path}"))
        .bearer_auth(BOOTSTRAP_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert!(status.is_success(), "{path}: {status} {}", response.text().await.unwrap());
}

async fn publish(client: &reqwest::Client, base: &str, backend_url: &str, key: &str) {
    let settings = json!({
        "backend_url": backend_url,
        "max_concurrency": CALLS * 2,
        "credentials": {"mode": "static", "scheme": "header", "name": "X-Api-Key", "value": key},
    });
    admin(client, base, reqwest::Method::PATCH, "/servers/pets/settings", settings).await;
    admin(client, base, reqwest::Method::POST, "/servers/pets/publish", Value::Null).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_racing_a_publication_never_mix_old_and_new_settings() {
    let (old_url, old_seen) = recording_backend().await;
    let (new_url, new_seen) = recording_backend().await;
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = format!(
        "[http]\nlisten = \"{}\"\n[store]\ndata_dir = {:?}\n[auth]\nmode = \"none\"\n[admin]\nbootstrap_token = \"{BOOTSTRAP_TOKEN}\"\n",
        listener.local_addr().unwrap(),
        dir.path().join("store").display().to_string(),
    );
    let config = mcpgate::config::Config::parse(&config, &[]).unwrap();
    tokio::spawn(mcpgate::app::run(config, listener, std::future::pending()));

    let client = reqwest::Client::new();
    admin(&client, &base, reqwest::Method::POST, "/servers", json!({"slug": "pets", "text": DOCUMENT})).await;
    let exposed = json!([{"key": "getPet", "exposed": true}]);
    admin(&client, &base, reqwest::Method::PATCH, "/servers/pets/operations", exposed).await;
    publish(&client, &base, &old_url, "old-key").await;

    let call = |n: usize| {
        let client = client.clone();
        let url = format!("{base}/mcp/pets");
        async move {
            let body = json!({
                "jsonrpc": "2.0", "id": n, "method": "tools/call",
                "params": {"name": "getPet", "arguments": {"id": n.to_string()}},
            });
            let response = client
                .post(url)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2025-11-25")
                .json(&body)
                .send()
                .await
                .unwrap();
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["result"]["isError"], false, "{answer}");
        }
    };
    let calls: Vec<_> = (0..CALLS).map(|n| tokio::spawn(call(n))).collect();
    // Publish once calls are under way, so that some run before it and some after.
    while old_seen.lock().unwrap().len() < CALLS / 10 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    publish(&client, &base, &new_url, "new-key").await;
    // And some that surely start after it.
    let after: Vec<_> = (CALLS..CALLS + 100).map(|n| tokio::spawn(call(n))).collect();
    for it in calls.into_iter().chain(after) {
        it.await.unwrap();
    }

    let old = old_seen.lock().unwrap().clone();
    let new = new_seen.lock().unwrap().clone();
    assert_eq!(old.len() + new.len(), CALLS + 100);
    assert!(old.iter().all(|it| it == "old-key"), "the old backend got another key");
    assert!(new.iter().all(|it| it == "new-key"), "the new backend got another key");
    assert!(!new.is_empty(), "no call ran after the publication");
}
