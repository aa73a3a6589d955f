//! Rate limits and the call audit end to end: mcpgate in-process in auth mode `jwt` (tokens
//! signed here, keys served by a loopback issuer) in front of a recording backend on loopback.
//! Time is tokio's, paused between calls to let buckets refill; the calls themselves run on the
//! real clock, since a paused clock would advance through the sockets' timeouts.

#![allow(dead_code)] // The shared fixtures offer more than these tests use.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::response::IntoResponse;
use reqwest::Method;
use serde_json::{Value, json};

#[path = "support/app.rs"]
mod app;
#[path = "support/harness.rs"]
mod harness;
#[path = "../src/auth/testing.rs"]
mod testing;

use app::{Backend, McpClient, Reply, Setup, TestApp};
use testing::{FakeIssuer, TestKey, unix_now};

const DOCUMENT: &str = r#"
openapi: 3.0.3
info: {title: Pets, version: "1"}
components:
  securitySchemes:
    oauth:
      type: oauth2
      flows:
        clientCredentials:
          tokenUrl: https://idp.example.com/token
          scopes: {pets:write: write}
paths:
  /pets:
    get:
      operationId: listPets
      responses: {"200": {description: ok, content: {application/json: {schema: {type: array}}}}}
    post:
      operationId: addPet
      security: [{oauth: [pets:write]}]
      requestBody: {content: {application/json: {schema: {type: object, properties: {name: {type: string}}}}}}
      responses: {"201": {description: created}}
  /pets/{id}:
    get:
      operationId: getPet
      parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
      responses: {"200": {description: ok, content: {application/json: {schema: {type: object}}}}}
"#;

const BOOTSTRAP_TOKEN: &str = "governance-bootstrap-token-0123456789";

/// Read-only tools get 60 calls a minute per user here; tools that are not read-only keep the
/// lower default (30); `getPet` has rates of its own.
const LIMITS: &str = "[servers.rate_limits]\nper_user = 60\nper_tool = 1000\n\
                      [servers.rate_limits.tools]\ngetPet = { per_user = 2, per_tool = 3 }";

struct App {
    app: TestApp,
    mcp_url: String,
    issuer: FakeIssuer,
    key: TestKey,
    backend: Backend,
}

impl App {
    /// mcpgate serving [`DOCUMENT`] as `slug`.
    async fn spawn(slug: &str) -> App {
        call_audit_log();
        let issuer = FakeIssuer::start().await;
        let key = TestKey::rsa();
        issuer.json("/jwks", &testing::jwks(&[key.jwk("k1")]));
        let backend = Backend::start(|_| async { axum::Json(json!({"name": "rex"})).into_response() }).await;
        let app = Setup::new()
            .jwt(&[issuer.origin()])
            .bootstrap_token(BOOTSTRAP_TOKEN)
            .server(slug, DOCUMENT, &backend.url, LIMITS)
            .start()
            .await;
        App { mcp_url: app.mcp_url(slug), app, issuer, key, backend }
    }

    fn token(&self, subject: &str, scope: &str) -> String {
        let claims = json!({
            "iss": self.issuer.origin(), "sub": subject, "aud": self.mcp_url, "scope": scope,
            "client_id": "agent-1", "exp": unix_now() + 3600, "iat": unix_now(),
        });
        self.key.sign(json!({"kid": "k1", "typ": "at+jwt"}), &claims)
    }

    /// `tools/call` of `tool` by `subject` (with the scope `pets:write`).
    async fn call(&self, subject: &str, tool: &str, arguments: Value) -> Reply {
        self.call_with(&self.token(subject, "pets:write"), tool, arguments).await
    }

    async fn call_with(&self, token: &str, tool: &str, arguments: Value) -> Reply {
        let client = McpClient::new(self.app.http.clone(), self.mcp_url.clone()).with_token(token.to_owned());
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}});
        self.app.oneshot(client.send(Method::POST, None).json(&body)).await
    }

    /// `GET /admin{path}` with the bootstrap token.
    async fn admin(&self, path: &str) -> Reply {
        let url = format!("{}/admin{path}", self.app.base);
        self.app.oneshot(self.app.http.get(url).bearer_auth(BOOTSTRAP_TOKEN)).await
    }
}

/// The tool result of a `tools/call` answered 200.
#[track_caller]
fn result(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["result"].clone()
}

fn allowed(reply: &Reply) -> bool {
    result(reply)["isError"] == false
}

/// The seconds a rate-limited result says to wait, checked to be the same in words and in `_meta`.
#[track_caller]
fn retry_after(reply: &Reply) -> u64 {
    let result = result(reply);
    assert_eq!(result["isError"], true, "{result}");
    let text = result["content"][0]["text"].as_str().unwrap_or_default().to_owned();
    assert!(text.starts_with("Rate limit reached"), "{text}");
    let secs = result["_meta"]["mcpgate/retryAfterSeconds"].as_u64().expect("a retry hint");
    assert!(text.contains(&format!("Try again in {secs} seconds.")), "{text}");
    secs
}

async fn wait(secs: u64) {
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(secs)).await;
    tokio::time::resume();
}

#[tokio::test]
async fn calls_over_a_rate_limit_are_tool_errors_saying_when_to_retry() {
    let app = App::spawn("pets").await;
    let pet = json!({"id": 1});

    // Per user: `getPet` allows each user two calls a minute.
    assert!(allowed(&app.call("alice", "getPet", pet.clone()).await));
    assert!(allowed(&app.call("alice", "getPet", pet.clone()).await));
    let refused = app.call("alice", "getPet", pet.clone()).await;
    assert!((29..=30).contains(&retry_after(&refused)), "{}", refused.text());
    assert!(
        result(&refused)["content"][0]["text"].as_str().unwrap().contains("2 times a minute by each user")
    );
    assert_eq!(app.backend.take().len(), 2, "a refused call reaches no backend");

    // Per tool: three calls a minute from all users together; bob's is the third.
    assert!(allowed(&app.call("bob", "getPet", pet.clone()).await));
    let refused = app.call("carol", "getPet", pet.clone()).await;
    assert!((19..=20).contains(&retry_after(&refused)), "{}", refused.text());
    assert!(result(&refused)["content"][0]["text"].as_str().unwrap().contains("by all users together"));
    // Other tools have buckets of their own.
    assert!(allowed(&app.call("alice", "listPets", json!({})).await));

    // Refill: after the hinted wait, alice may call again (the tool's bucket has refilled too).
    wait(30).await;
    assert!(allowed(&app.call("alice", "getPet", pet.clone()).await));
    assert!(app.call("alice", "getPet", pet.clone()).await.json()["result"]["isError"] == true);
    app.backend.take();

    // Tools that are not read-only get the lower default: 30 calls a minute per user, where
    // read-only `listPets` gets this server's 60.
    for n in 0..30 {
        assert!(allowed(&app.call("dave", "addPet", json!({"name": format!("p{n}")})).await), "call {n}");
    }
    let refused = app.call("dave", "addPet", json!({"name": "one too many"})).await;
    assert_eq!(retry_after(&refused), 2, "one call every two seconds");
    for n in 0..31 {
        assert!(allowed(&app.call("dave", "listPets", json!({})).await), "call {n}");
    }
    wait(2).await;
    assert!(allowed(&app.call("dave", "addPet", json!({"name": "after the wait"})).await));

    // Each refusal is counted in the metrics, by tool.
    let metrics = app.app.http.get(format!("{}/metrics", app.app.base)).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    for (tool, refused) in [("getPet", 3), ("addPet", 1)] {
        let line = format!(r#"mcpgate_rate_limited_calls_total{{server="pets",tool="{tool}"}} {refused}"#);
        assert!(text.lines().any(|it| it == line), "no `{line}` in:\n{text}");
    }
}

/// What this test binary logs under `mcpgate::audit::call`, as JSON lines. One subscriber for
/// the whole process, set before any test's mcpgate logs: tracing caches whether an event is
/// wanted, so a subscriber set for one test's thread alone would miss events first seen
/// elsewhere.
fn call_audit_log() -> Arc<Mutex<Vec<u8>>> {
    static LINES: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LINES
        .get_or_init(|| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let writer = lines.clone();
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_env_filter(tracing_subscriber::EnvFilter::new("mcpgate::audit::call=info"))
                .with_writer(move || Writer(writer.clone()))
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
            lines
        })
        .clone()
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log's text and the records of `server`'s calls.
fn logged(server: &str) -> (String, Vec<Value>) {
    let text = String::from_utf8(call_audit_log().lock().unwrap().clone()).unwrap();
    let records = text
        .lines()
        .map(|it| serde_json::from_str::<Value>(it).unwrap()["fields"].clone())
        .filter(|it| it["server"] == server)
        .collect();
    (text, records)
}

#[tokio::test]
async fn every_call_leaves_an_audit_record_in_the_log_and_the_admin_api() {
    let app = App::spawn("audited").await;
    let secret_argument = "argument-value-never-recorded";
    let token = app.token("alice", "pets:write");
    let reply = app.call_with(&token, "addPet", json!({"name": secret_argument})).await;
    assert!(allowed(&reply));
    // Refused at the edge: the token lacks `pets:write` (403 with a challenge to step up).
    let weak = app.token("bob", "");
    let reply = app.call_with(&weak, "addPet", json!({"name": secret_argument})).await;
    assert_eq!(reply.status, 403);
    // Refused in the gateway: invalid arguments, then over the rate limit.
    assert_eq!(result(&app.call("alice", "getPet", json!({"id": "one"})).await)["isError"], true);
    for _ in 0..3 {
        app.call("carol", "getPet", json!({"id": 2})).await;
    }

    let (text, records) = logged("audited");
    assert!(!text.contains(secret_argument) && !text.contains(&token) && !text.contains(&weak), "{text}");
    let decisions: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|it| {
            (it["tool"].as_str().unwrap(), it["subject"].as_str().unwrap(), it["decision"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        decisions,
        [
            ("addPet", "alice", "allowed"),
            ("addPet", "bob", "insufficient_scope"),
            ("getPet", "alice", "invalid_arguments"),
            ("getPet", "carol", "allowed"),
            ("getPet", "carol", "allowed"),
            ("getPet", "carol", "rate_limited"),
        ]
    );
    let first = &records[0];
    assert_eq!(first["message"], "tool call");
    assert_eq!(first["client_id"], "agent-1");
    assert_eq!((&first["issuer"], &first["backend_status"]), (&json!(app.issuer.origin()), &json!(200)));
    assert!(first["duration_ms"].is_u64(), "{first}");
    assert!(records[1].get("backend_status").is_none(), "nothing was sent: {}", records[1]);

    // The admin API: newest first, filtered and paged.
    let page = app.admin("/api/servers/audited/calls").await;
    assert_eq!(page.status, 200, "{}", page.text());
    let body = page.text();
    assert!(!body.contains(secret_argument) && !body.contains(&token), "{body}");
    let page = page.json();
    let calls = page["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 6);
    assert_eq!((&calls[0]["decision"], &calls[5]["decision"]), (&json!("rate_limited"), &json!("allowed")));
    assert_eq!(calls[5]["backend_status"], 200);
    assert_eq!(calls[5]["subject"], "alice");
    let refused = app.admin("/api/servers/audited/calls?decision=insufficient_scope").await.json();
    assert_eq!(refused["calls"].as_array().unwrap().len(), 1);
    assert_eq!((&refused["calls"][0]["subject"], &refused["next"]), (&json!("bob"), &Value::Null));
    let carol = app.admin("/api/servers/audited/calls?subject=carol&tool=getPet&limit=2").await.json();
    assert_eq!(carol["calls"].as_array().unwrap().len(), 2);
    let next = carol["next"].as_u64().expect("a next page");
    let rest = app.admin(&format!("/api/servers/audited/calls?subject=carol&before={next}")).await.json();
    assert_eq!((rest["calls"].as_array().unwrap().len(), &rest["next"]), (1, &Value::Null));
    assert_eq!(app.admin("/api/servers/nope/calls").await.status, 404);
    assert_eq!(app.admin("/api/servers/audited/calls?decision=maybe").await.status, 400);

    // The admin UI's page of recent calls shows them, filtered like the API.
    let html = app.admin("/servers/audited/calls?decision=rate_limited").await;
    assert_eq!(html.status, 200);
    let html = html.text();
    assert!(html.contains("decision-rate_limited") && html.contains("carol"), "{html}");
    assert!(!html.contains("decision-allowed"), "only the rate-limited call is shown: {html}");
}
