//! A publication replaces a hosted server whole: calls racing with it see either the old
//! backend with the old credential or the new backend with the new one, never a mix.

use axum::response::IntoResponse;
use serde_json::{Value, json};

#[path = "support/app.rs"]
mod app;
#[path = "support/harness.rs"]
mod harness;

use app::{Backend, Seen, Setup};

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

/// A backend that answers every call; it records the API key of each request.
async fn backend() -> Backend {
    Backend::start(|_: Seen| async { axum::Json(json!({"id": "1"})).into_response() }).await
}

fn keys(backend: &Backend) -> Vec<String> {
    let key = |it: &Seen| {
        it.headers.get("x-api-key").and_then(|it| it.to_str().ok()).unwrap_or("(none)").to_owned()
    };
    backend.take().iter().map(key).collect()
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
        // One client making every call: no rate limit may refuse one.
        "rate_limits": {"per_user": 1_000_000, "per_tool": 1_000_000},
        "credentials": {"mode": "static", "scheme": "header", "name": "X-Api-Key", "value": key},
    });
    admin(client, base, reqwest::Method::PATCH, "/servers/pets/settings", settings).await;
    admin(client, base, reqwest::Method::POST, "/servers/pets/publish", Value::Null).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_racing_a_publication_never_mix_old_and_new_settings() {
    let (old, new) = (backend().await, backend().await);
    let (old_url, new_url) = (format!("{}/v1", old.url), format!("{}/v1", new.url));
    let app = Setup::new().bootstrap_token(BOOTSTRAP_TOKEN).start().await;
    let base = app.base.clone();

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
    while old.count() < CALLS / 10 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    publish(&client, &base, &new_url, "new-key").await;
    // And some that surely start after it.
    let after: Vec<_> = (CALLS..CALLS + 100).map(|n| tokio::spawn(call(n))).collect();
    for it in calls.into_iter().chain(after) {
        it.await.unwrap();
    }

    let (old, new) = (keys(&old), keys(&new));
    assert_eq!(old.len() + new.len(), CALLS + 100);
    assert!(old.iter().all(|it| it == "old-key"), "the old backend got another key");
    assert!(new.iter().all(|it| it == "new-key"), "the new backend got another key");
    assert!(!new.is_empty(), "no call ran after the publication");
}
