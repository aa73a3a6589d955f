//! Sessions end to end: a client that initializes gets a session, whose GET stream hears
//! `notifications/tools/list_changed` when the server's document is published anew (the
//! TypeScript SDK in `tests/node/sdk-listen.mjs`, and raw HTTP); a session belongs to the subject
//! that opened it (auth mode `jwt`); requests without a session stay stateless; a 2026-07-28
//! client hears of changes on `subscriptions/listen`; one server's sessions are capped, and end
//! when the server is removed.
//!
//! mcpgate runs in-process. Where a test changes the catalog, mcpgate is assembled as `app::run`
//! assembles it (`hosting::provision`, `app::router`) so that the test holds the `Hosting` and
//! publishes through it, as the admin API will.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mcpgate::app::{self, AppState};
use mcpgate::config::{Config, ServerSettings};
use mcpgate::hosting::{self, Hosting};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[path = "support/harness.rs"]
mod harness;
#[path = "../src/auth/testing.rs"]
#[allow(dead_code)] // The shared fixtures offer more than these tests use.
mod testing;

use harness::Node;
use testing::{FakeIssuer, TestKey, unix_now};

const BEFORE: &str = r#"
openapi: 3.0.3
info: {title: Pets, version: "1"}
paths:
  /pets:
    get: {operationId: listPets, responses: {"204": {description: none}}}
  /pets/{id}:
    get:
      operationId: getPet
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses: {"204": {description: none}}
"#;

const AFTER: &str = r#"
openapi: 3.0.3
info: {title: Pets, version: "2"}
paths:
  /pets:
    get: {operationId: listPets, responses: {"204": {description: none}}}
  /pets/{id}/adopt:
    post:
      operationId: adoptPet
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses: {"204": {description: none}}
"#;

const VERSION: &str = "2025-11-25";
const LIST_CHANGED: &str = "notifications/tools/list_changed";

/// mcpgate in-process with auth mode `none`, serving [`BEFORE`] as `pets`.
struct Gate {
    addr: SocketAddr,
    hosting: Hosting,
    settings: ServerSettings,
    _data: tempfile::TempDir,
}

impl Gate {
    async fn start() -> Gate {
        let data = tempfile::tempdir().unwrap();
        let spec = data.path().join("pets.yaml");
        std::fs::write(&spec, BEFORE).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = format!(
            "[http]\nlisten = \"{addr}\"\n[store]\ndata_dir = {}\n[auth]\nmode = \"none\"\n\
             [[servers]]\nslug = \"pets\"\nspec = {}\nbackend_url = \"http://127.0.0.1:9\"\n",
            toml_string(&data.path().join("store")),
            toml_string(&spec),
        );
        let config = Config::parse(&config, &[]).expect("the test configuration is valid");
        // As `app::run` does, less the warnings and the development routes.
        let keyring =
            mcpgate::secrets::Keyring::configured_or_local(&config.store.secret_keys, &config.store.data_dir)
                .unwrap();
        let store = mcpgate::store::Store::open(&config.store.data_dir).unwrap();
        let hosting = hosting::provision(&config, &store, Arc::new(keyring), None).await;
        let state = AppState { hosting: hosting.clone(), max_request_bytes: config.http.max_request_bytes };
        let router = app::router(state);
        tokio::spawn(async move { axum::serve(listener, router).await });
        Gate { addr, hosting, settings: config.servers[0].clone(), _data: data }
    }

    fn url(&self) -> String {
        format!("http://{}/mcp/pets", self.addr)
    }

    fn client(&self) -> Client {
        Client { http: reqwest::Client::new(), url: self.url(), token: None }
    }

    /// Serves `document` from now on, as the admin API will when a new version is published.
    fn publish(&self, document: &str) {
        let spec = mcpgate::source::ingest(&self.settings.spec, document.as_bytes()).unwrap();
        self.hosting.publish(self.settings.clone(), spec).expect("the document is published");
    }
}

fn toml_string(path: &std::path::Path) -> String {
    toml::Value::String(path.display().to_string()).to_string()
}

/// An MCP client speaking raw HTTP, with a bearer token or without.
struct Client {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Client {
    fn with_token(&self, token: String) -> Client {
        Client { http: self.http.clone(), url: self.url.clone(), token: Some(token) }
    }

    fn send(&self, method: Method, session: Option<&str>) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, &self.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", VERSION);
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    async fn post(&self, session: Option<&str>, body: Value) -> reqwest::Response {
        self.send(Method::POST, session).json(&body).send().await.expect("mcpgate answers")
    }

    async fn get(&self, session: Option<&str>) -> reqwest::Response {
        self.send(Method::GET, session).header("accept", "text/event-stream").send().await.unwrap()
    }

    async fn delete(&self, session: Option<&str>) -> reqwest::Response {
        self.send(Method::DELETE, session).send().await.unwrap()
    }

    /// `initialize`: the session id and the result.
    async fn initialize(&self) -> (String, Value) {
        let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
        let response = self.http_initialize(body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            content_type(&response),
            "text/event-stream",
            "rmcp answers a session's requests with SSE"
        );
        let session = response.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        let message = Events::new(response).next().await.expect("the initialize response");
        (session, message["result"].clone())
    }

    async fn http_initialize(&self, body: Value) -> reqwest::Response {
        // `initialize` names its version in the body; clients send the header only afterwards.
        let mut request =
            self.http.post(&self.url).header("accept", "application/json, text/event-stream").json(&body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("mcpgate answers")
    }

    /// `initialize` then `notifications/initialized`: a session ready to hear of changes.
    async fn open_session(&self) -> String {
        let (session, _) = self.initialize().await;
        let initialized =
            self.post(Some(&session), json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
        assert_eq!(initialized.status(), 202);
        session
    }

    /// `tools/list` within `session`: the tool names.
    async fn list_in_session(&self, session: &str) -> Vec<String> {
        let response =
            self.post(Some(session), json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"})).await;
        assert_eq!(response.status(), 200);
        let mut events = Events::new(response);
        loop {
            let message = events.next().await.expect("the tools/list response");
            if message["id"] == 5 {
                return names(&message);
            }
        }
    }

    /// `tools/list` without a session: the status and the JSON-RPC response.
    async fn list_stateless(&self) -> (StatusCode, String, Value) {
        let response = self.post(None, json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await;
        let status = response.status();
        assert!(response.headers().get("mcp-session-id").is_none(), "no session is made");
        let kind = content_type(&response);
        (status, kind, response.json().await.unwrap_or(Value::Null))
    }
}

fn content_type(response: &reqwest::Response) -> String {
    let value = response.headers().get("content-type").map_or("", |it| it.to_str().unwrap());
    value.split(';').next().unwrap().trim().to_owned()
}

fn names(response: &Value) -> Vec<String> {
    let tools = response["result"]["tools"].as_array().unwrap_or_else(|| panic!("no tools: {response}"));
    tools.iter().map(|it| it["name"].as_str().unwrap().to_owned()).collect()
}

/// The JSON-RPC messages of an SSE response, as they come.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    fn new(response: reqwest::Response) -> Events {
        Events { response, buffer: String::new() }
    }

    /// The next message, skipping priming events and keep-alive comments; `None` when the
    /// stream ends. Waits at most 10 s.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: Vec<&str> =
                    event.lines().filter_map(|it| it.strip_prefix("data:")).map(str::trim_start).collect();
                let data = data.join("\n");
                if data.trim().is_empty() {
                    continue;
                }
                return Some(serde_json::from_str(&data).unwrap_or_else(|err| panic!("{err}: {data}")));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("an event within 10 s")
                .expect("the stream reads")?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }

    /// Messages until one with `method`, which is returned.
    async fn until(&mut self, method: &str) -> Value {
        loop {
            let message = self.next().await.unwrap_or_else(|| panic!("the stream ended before {method}"));
            if message["method"] == method {
                return message;
            }
        }
    }
}

#[test]
fn typescript_sdk_hears_that_the_tool_list_changed() {
    let Some(node) = Node::find(&["node_modules/@modelcontextprotocol/sdk/package.json"]) else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let gate = Arc::new(runtime.block_on(Gate::start()));
    // The script asks for the change here once it has listed the tools.
    let trigger = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let trigger_url = format!("http://{}/publish", trigger.local_addr().unwrap());
    let publisher = gate.clone();
    let router = axum::Router::new().route(
        "/publish",
        axum::routing::post(move || {
            publisher.publish(AFTER);
            async { "published" }
        }),
    );
    runtime.spawn(async move { axum::serve(trigger, router).await });

    let run = node.run(&["sdk-listen.mjs", &gate.url(), &trigger_url]);
    assert_eq!(run.code, Some(0), "{run}");
    let summary = run.stdout_json();
    assert!(summary["sessionId"].as_str().is_some_and(|it| !it.is_empty()), "a session: {run}");
    assert_eq!(summary["protocolVersion"], VERSION, "{run}");
    assert_eq!(summary["capabilities"]["tools"], json!({"listChanged": true}), "{run}");
    assert_eq!(summary["before"], json!(["listPets", "getPet"]), "{run}");
    assert!(summary["notifications"].as_u64().is_some_and(|it| it >= 1), "{run}");
    assert_eq!(summary["after"], json!(["listPets", "adoptPet"]), "{run}");
    assert_eq!(summary["terminated"], true, "the session was ended with DELETE: {run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_hears_on_its_get_stream_that_the_tool_list_changed() {
    let gate = Gate::start().await;
    let client = gate.client();
    let (session, result) = client.initialize().await;
    assert_eq!(result["capabilities"]["tools"], json!({"listChanged": true}));
    assert_eq!(result["protocolVersion"], VERSION);
    let initialized =
        client.post(Some(&session), json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    assert_eq!(initialized.status(), 202);
    assert_eq!(client.list_in_session(&session).await, ["listPets", "getPet"]);

    let stream = client.get(Some(&session)).await;
    assert_eq!(stream.status(), 200);
    assert_eq!(content_type(&stream), "text/event-stream");
    let mut events = Events::new(stream);
    gate.publish(AFTER);
    let notification = events.until(LIST_CHANGED).await;
    assert_eq!(notification, json!({"jsonrpc": "2.0", "method": LIST_CHANGED}));

    // The session and stateless requests both see the new tools at once.
    assert_eq!(client.list_in_session(&session).await, ["listPets", "adoptPet"]);
    let (status, _, listed) = client.list_stateless().await;
    assert_eq!(status, 200);
    assert_eq!(names(&listed), ["listPets", "adoptPet"]);

    // A session without a stream open keeps the notification until it opens one.
    let quiet = client.open_session().await;
    assert_eq!(client.list_in_session(&quiet).await, ["listPets", "adoptPet"]);
    gate.publish(BEFORE);
    events.until(LIST_CHANGED).await;
    let mut later = Events::new(client.get(Some(&quiet)).await);
    later.until(LIST_CHANGED).await;
    assert_eq!(client.list_in_session(&quiet).await, ["listPets", "getPet"]);
}

#[tokio::test]
async fn requests_without_a_session_stay_stateless() {
    let gate = Gate::start().await;
    let client = gate.client();
    let (status, kind, listed) = client.list_stateless().await;
    assert_eq!((status, kind.as_str()), (StatusCode::OK, "application/json"));
    assert_eq!(names(&listed), ["listPets", "getPet"]);

    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "nope", "arguments": {}}});
    let called: Value = client.post(None, call).await.json().await.unwrap();
    assert_eq!(called["error"]["code"], -32602, "{called}");
    let notification =
        client.post(None, json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    assert_eq!(notification.status(), 202);

    // No session, no stream to open and none to end.
    assert_eq!(client.get(None).await.status(), 405);
    assert_eq!(client.delete(None).await.status(), 405);
    // An id mcpgate never gave is unknown.
    let unknown =
        client.post(Some("no-such-session"), json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    assert_eq!(unknown.await.status(), 404);
    assert_eq!(client.get(Some("no-such-session")).await.status(), 404);
}

#[tokio::test]
async fn a_session_ends_with_delete() {
    let gate = Gate::start().await;
    let client = gate.client();
    let session = client.open_session().await;
    let mut events = Events::new(client.get(Some(&session)).await);
    assert_eq!(client.delete(Some(&session)).await.status(), 202);
    assert_eq!(events.next().await, None, "the GET stream ends with the session");
    let after = client.post(Some(&session), json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    assert_eq!(after.await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_client_hears_of_changes_on_subscriptions_listen() {
    let gate = Gate::start().await;
    let version = "2026-07-28";
    let listen = json!({"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen", "params": {
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": version,
            "io.modelcontextprotocol/clientCapabilities": {},
        },
        "notifications": {"toolsListChanged": true, "promptsListChanged": true},
    }});
    let response = reqwest::Client::new()
        .post(gate.url())
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", version)
        .header("mcp-method", "subscriptions/listen")
        .json(&listen)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("mcp-session-id").is_none(), "2026-07-28 has no sessions");
    let mut events = Events::new(response);
    let acknowledged = events.until("notifications/subscriptions/acknowledged").await;
    assert_eq!(
        acknowledged["params"]["notifications"],
        json!({"toolsListChanged": true}),
        "only what mcpgate offers is accepted: {acknowledged}"
    );
    gate.publish(AFTER);
    let notification = events.until(LIST_CHANGED).await;
    assert_eq!(
        notification["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], 1,
        "{notification}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_one_server_are_capped() {
    let gate = Gate::start().await;
    let client = Arc::new(gate.client());
    let mut opening = tokio::task::JoinSet::new();
    let mut sessions = Vec::new();
    for _ in 0..mcpgate::mcp::MAX_SESSIONS {
        if opening.len() >= 16 {
            sessions.push(opening.join_next().await.unwrap().unwrap());
        }
        let client = client.clone();
        opening.spawn(async move { client.initialize().await.0 });
    }
    sessions.extend(opening.join_all().await);
    assert_eq!(sessions.iter().collect::<std::collections::BTreeSet<_>>().len(), mcpgate::mcp::MAX_SESSIONS);

    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "initialize", "params": {
        "protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let refused = client.http_initialize(body.clone()).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().get("mcp-session-id").is_none());
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["id"], 9, "{refused}");
    assert_eq!(refused["error"]["code"], -32000, "{refused}");

    // Requests without a session are not affected; ending a session makes room for another.
    assert_eq!(client.list_stateless().await.0, 200);
    assert_eq!(client.delete(Some(&sessions[0])).await.status(), 202);
    assert_eq!(client.http_initialize(body).await.status(), 200);
}

#[tokio::test]
async fn removing_a_server_ends_its_sessions() {
    let gate = Gate::start().await;
    let client = gate.client();
    let session = client.open_session().await;
    let mut events = Events::new(client.get(Some(&session)).await);
    assert!(gate.hosting.remove("pets"));
    assert_eq!(events.next().await, None, "the GET stream ends");
    let gone = client.post(Some(&session), json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    assert_eq!(gone.await.status(), 404);
}

/// mcpgate with auth mode `jwt` trusting two issuers, and a way to mint their tokens.
struct Protected {
    client: Client,
    issuers: [(FakeIssuer, TestKey); 2],
    _data: tempfile::TempDir,
}

impl Protected {
    async fn start() -> Protected {
        let mut issuers = Vec::new();
        for _ in 0..2 {
            let issuer = FakeIssuer::start().await;
            let key = TestKey::rsa();
            issuer.json("/jwks", &testing::jwks(&[key.jwk("k1")]));
            issuers.push((issuer, key));
        }
        let issuers: [(FakeIssuer, TestKey); 2] = issuers.try_into().ok().unwrap();
        let data = tempfile::tempdir().unwrap();
        let spec = data.path().join("pets.yaml");
        std::fs::write(&spec, BEFORE).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let trusted: String = issuers
            .iter()
            .map(|(it, _)| {
                format!("[[auth.issuers]]\nissuer = \"{0}\"\njwks_uri = \"{0}/jwks\"\n", it.origin())
            })
            .collect();
        let config = format!(
            "[http]\nlisten = \"{addr}\"\n[store]\ndata_dir = {}\n[auth]\nmode = \"jwt\"\n{trusted}\
             [[servers]]\nslug = \"pets\"\nspec = {}\nbackend_url = \"http://127.0.0.1:9\"\n",
            toml_string(&data.path().join("store")),
            toml_string(&spec),
        );
        let config = Config::parse(&config, &[]).unwrap();
        tokio::spawn(app::run(config, listener, std::future::pending()));
        let client =
            Client { http: reqwest::Client::new(), url: format!("http://{addr}/mcp/pets"), token: None };
        wait_until_served(&client).await;
        Protected { client, issuers, _data: data }
    }

    /// A client with a token of `issuer` (0 or 1) for `subject`.
    fn as_subject(&self, issuer: usize, subject: &str) -> Client {
        let (issuer, key) = &self.issuers[issuer];
        let claims = json!({
            "iss": issuer.origin(),
            "sub": subject,
            "aud": self.client.url,
            "exp": unix_now() + 300,
            "iat": unix_now(),
        });
        self.client.with_token(key.sign(json!({"kid": "k1", "typ": "at+jwt"}), &claims))
    }
}

async fn wait_until_served(client: &Client) {
    for _ in 0..200 {
        if client.post(None, json!({})).await.status() == 401 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("mcpgate did not serve within 5 s");
}

#[tokio::test]
async fn sessions_belong_to_the_subject_that_opened_them() {
    let app = Protected::start().await;
    let alice = app.as_subject(0, "alice");
    let session = alice.open_session().await;
    assert_eq!(alice.list_in_session(&session).await, ["listPets", "getPet"]);

    // Another subject, and the same `sub` from another issuer, are told the session does not
    // exist, whatever they try; the session is unharmed.
    for (name, other) in
        [("bob", app.as_subject(0, "bob")), ("alice of another issuer", app.as_subject(1, "alice"))]
    {
        let post =
            other.post(Some(&session), json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await;
        assert_eq!(post.status(), 404, "{name}: POST");
        assert_eq!(
            post.text().await.unwrap(),
            "Not Found: Session not found",
            "{name}: as for an unknown session"
        );
        assert_eq!(other.get(Some(&session)).await.status(), 404, "{name}: GET");
        assert_eq!(other.delete(Some(&session)).await.status(), 404, "{name}: DELETE");
        // Their own requests, without the session, are served.
        let (status, _, listed) = other.list_stateless().await;
        assert_eq!(status, 200, "{name}");
        assert_eq!(names(&listed), ["listPets", "getPet"], "{name}");
    }
    let without_token =
        app.client.post(Some(&session), json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    assert_eq!(without_token.await.status(), 401);

    // A new token of the same subject, as after a refresh, keeps the session.
    let refreshed = app.as_subject(0, "alice");
    assert_eq!(refreshed.list_in_session(&session).await, ["listPets", "getPet"]);
    assert_eq!(refreshed.get(Some(&session)).await.status(), 200);
    assert_eq!(refreshed.delete(Some(&session)).await.status(), 202);
    let ended = alice.post(Some(&session), json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    assert_eq!(ended.await.status(), 404);
}

#[tokio::test]
async fn shutdown_ends_open_session_streams() {
    let data = tempfile::tempdir().unwrap();
    let spec = data.path().join("pets.yaml");
    std::fs::write(&spec, BEFORE).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = format!(
        "[http]\nlisten = \"{addr}\"\n[store]\ndata_dir = {}\n[auth]\nmode = \"none\"\n\
         [[servers]]\nslug = \"pets\"\nspec = {}\nbackend_url = \"http://127.0.0.1:9\"\n",
        toml_string(&data.path().join("store")),
        toml_string(&spec),
    );
    let config = Config::parse(&config, &[]).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app::run(config, listener, async {
        let _ = stopped.await;
    }));
    let client = Client { http: reqwest::Client::new(), url: format!("http://{addr}/mcp/pets"), token: None };
    for _ in 0..200 {
        if client.list_stateless().await.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let session = client.open_session().await;
    let mut events = Events::new(client.get(Some(&session)).await);
    let _ = stop.send(());
    let stopped = tokio::time::timeout(Duration::from_secs(10), server).await;
    assert!(stopped.is_ok(), "graceful shutdown waited for the open GET stream");
    assert_eq!(events.next().await, None);
}
