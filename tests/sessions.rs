//! Sessions end to end: a client that initializes gets a session, whose GET stream hears
//! `notifications/tools/list_changed` when the server's document is published anew (the
//! TypeScript SDK in `tests/node/sdk-listen.mjs`, and raw HTTP); a session belongs to the subject
//! that opened it (auth mode `jwt`); requests without a session stay stateless; a 2026-07-28
//! client hears of changes on `subscriptions/listen`; one server's sessions are capped per
//! subject and in all, a new session ending the least recently used one of whoever holds too
//! many, so that no subject can keep another from opening one; a session never used after its
//! `initialize` ends soon; sessions end when the server is removed.
//!
//! mcpgate runs in-process (`support/app.rs`). Where a test changes the catalog, it publishes
//! through the `Hosting` that `app::build` assembled, as the admin API does.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use mcpgate::mcp::SessionLimits;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[path = "support/app.rs"]
mod app;
#[path = "support/harness.rs"]
mod harness;
#[path = "../src/auth/testing.rs"]
#[allow(dead_code)] // The shared fixtures offer more than these tests use.
mod testing;

use app::{Events, McpClient, Setup, TestApp, VERSION, content_type, names};
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

const LIST_CHANGED: &str = "notifications/tools/list_changed";

/// mcpgate in-process with auth mode `none`, serving [`BEFORE`] as `pets`.
async fn start() -> TestApp {
    Setup::new().server("pets", BEFORE, "http://127.0.0.1:9", "").start().await
}

#[test]
fn typescript_sdk_hears_that_the_tool_list_changed() {
    let Some(node) = Node::find(&["node_modules/@modelcontextprotocol/sdk/package.json"]) else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let app = Arc::new(runtime.block_on(start()));
    // The script asks for the change here once it has listed the tools.
    let trigger = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let trigger_url = format!("http://{}/publish", trigger.local_addr().unwrap());
    let publisher = app.clone();
    let router = axum::Router::new().route(
        "/publish",
        axum::routing::post(move || {
            publisher.publish("pets", AFTER);
            async { "published" }
        }),
    );
    runtime.spawn(async move { axum::serve(trigger, router).await });

    let run = node.run(&["sdk-listen.mjs", &app.mcp_url("pets"), &trigger_url]);
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
    let app = start().await;
    let client = app.mcp("pets");
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
    app.publish("pets", AFTER);
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
    app.publish("pets", BEFORE);
    events.until(LIST_CHANGED).await;
    let mut later = Events::new(client.get(Some(&quiet)).await);
    later.until(LIST_CHANGED).await;
    assert_eq!(client.list_in_session(&quiet).await, ["listPets", "getPet"]);
}

#[tokio::test]
async fn requests_without_a_session_stay_stateless() {
    let app = start().await;
    let client = app.mcp("pets");
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
    let app = start().await;
    let client = app.mcp("pets");
    let session = client.open_session().await;
    let mut events = Events::new(client.get(Some(&session)).await);
    assert_eq!(client.delete(Some(&session)).await.status(), 204);
    assert_eq!(events.next().await, None, "the GET stream ends with the session");
    let after = client.post(Some(&session), json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    assert_eq!(after.await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_client_hears_of_changes_on_subscriptions_listen() {
    let app = start().await;
    let version = "2026-07-28";
    let listen = json!({"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen", "params": {
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": version,
            "io.modelcontextprotocol/clientCapabilities": {},
        },
        "notifications": {"toolsListChanged": true, "promptsListChanged": true},
    }});
    let response = reqwest::Client::new()
        .post(app.mcp_url("pets"))
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
    app.publish("pets", AFTER);
    let notification = events.until(LIST_CHANGED).await;
    assert_eq!(
        notification["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], 1,
        "{notification}"
    );
}

/// Sets the session limits of `pets`, so that a test reaches them with a few sessions.
fn limit_sessions(app: &TestApp, limits: SessionLimits) {
    app.hosting.get("pets").expect("pets is hosted").service.set_session_limits(limits);
}

/// A client of `pets` whose connections come from `ip`, a loopback address (Linux routes all of
/// 127.0.0.0/8 to the loopback interface): in auth mode `none`, another subject.
fn client_from(app: &TestApp, ip: [u8; 4]) -> McpClient {
    let http = reqwest::Client::builder().local_address(IpAddr::from(ip)).build().unwrap();
    McpClient::new(http, app.mcp_url("pets"))
}

/// Whether `session` still exists (a request in it counts as its use).
async fn exists(client: &McpClient, session: &str) -> bool {
    let response = client.post(Some(session), json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).await;
    match response.status() {
        StatusCode::OK => true,
        StatusCode::NOT_FOUND => false,
        status => panic!("ping in a session: {status}"),
    }
}

#[tokio::test]
async fn a_subject_at_its_cap_loses_its_least_recently_used_session() {
    let app = start().await;
    limit_sessions(&app, SessionLimits { per_subject: 3, ..SessionLimits::DEFAULT });
    let client = app.mcp("pets");
    let first = client.open_session().await;
    let oldest = client.open_session().await;
    let mut stream = Events::new(client.get(Some(&oldest)).await);
    let third = client.open_session().await;
    // Used since: `oldest`, whose stream was opened before, is now the least recently used.
    assert_eq!(client.list_in_session(&first).await, ["listPets", "getPet"]);

    let fourth = client.open_session().await;
    assert_eq!(stream.next().await, None, "the least recently used session ended, and its stream");
    assert!(!exists(&client, &oldest).await);
    for session in [&first, &third, &fourth] {
        assert!(exists(&client, session).await);
    }

    // Another address is another subject, with its own cap.
    let other = client_from(&app, [127, 0, 0, 2]);
    for _ in 0..5 {
        other.open_session().await;
    }
    for session in [&first, &third, &fourth] {
        assert!(exists(&client, session).await, "another subject's sessions end none of these");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_server_cap_the_subject_holding_most_makes_room() {
    let app = start().await;
    limit_sessions(&app, SessionLimits { per_subject: 4, per_server: 6, ..SessionLimits::DEFAULT });
    let (a, b, c) = (
        client_from(&app, [127, 0, 0, 1]),
        client_from(&app, [127, 0, 0, 2]),
        client_from(&app, [127, 0, 0, 3]),
    );
    let mut held_by_a = Vec::new();
    for _ in 0..4 {
        held_by_a.push(a.open_session().await);
    }
    let held_by_b = [b.open_session().await, b.open_session().await];

    // The server is at its cap: `c` is served, and `a`, which holds the most, makes room.
    let (opened_by_c, _) = c.initialize().await;
    assert!(!exists(&a, &held_by_a[0]).await, "a's least recently used session ended");
    for session in &held_by_a[1..] {
        assert!(exists(&a, session).await);
    }
    // However many more `a` opens, it ends only its own sessions.
    for _ in 0..10 {
        a.open_session().await;
    }
    for session in &held_by_b {
        assert!(exists(&b, session).await);
    }
    assert!(exists(&c, &opened_by_c).await);
    // Requests without a session are never affected.
    assert_eq!(c.list_stateless().await.0, 200);
}

#[tokio::test]
async fn a_session_that_never_came_back_ends() {
    let app = start().await;
    limit_sessions(&app, SessionLimits { unused: Duration::from_millis(300), ..SessionLimits::DEFAULT });
    let client = app.mcp("pets");
    let (unused, _) = client.initialize().await;
    let used = client.open_session().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!exists(&client, &unused).await, "a session without a request after initialize ended");
    assert!(exists(&client, &used).await, "a session its client came back to lives on");
}

#[tokio::test]
async fn removing_a_server_ends_its_sessions() {
    let app = start().await;
    let client = app.mcp("pets");
    let session = client.open_session().await;
    let mut events = Events::new(client.get(Some(&session)).await);
    assert!(app.hosting.remove("pets"));
    assert_eq!(events.next().await, None, "the GET stream ends");
    let gone = client.post(Some(&session), json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    assert_eq!(gone.await.status(), 404);
}

/// mcpgate with auth mode `jwt` trusting two issuers, and a way to mint their tokens.
struct Protected {
    client: McpClient,
    issuers: [(FakeIssuer, TestKey); 2],
    _app: TestApp,
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
        let origins: Vec<&str> = issuers.iter().map(|(it, _)| it.origin()).collect();
        let app = Setup::new().jwt(&origins).server("pets", BEFORE, "http://127.0.0.1:9", "").start().await;
        Protected { client: app.mcp("pets"), issuers, _app: app }
    }

    /// A client with a token of `issuer` (0 or 1) for `subject`.
    fn as_subject(&self, issuer: usize, subject: &str) -> McpClient {
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
    assert_eq!(refreshed.delete(Some(&session)).await.status(), 204);
    let ended = alice.post(Some(&session), json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    assert_eq!(ended.await.status(), 404);
}

/// The attack of the hardening review: one user initializing in a loop held every session of
/// the server, and everyone else's `initialize` was refused for an hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_opening_sessions_in_a_loop_cannot_lock_out_another() {
    let app = Protected::start().await;
    let limits = SessionLimits::DEFAULT;
    let mallory = Arc::new(app.as_subject(0, "mallory"));
    let mut opening = tokio::task::JoinSet::new();
    let mut opened = Vec::new();
    for _ in 0..limits.per_server {
        if opening.len() >= 16 {
            opened.push(opening.join_next().await.unwrap().unwrap());
        }
        let mallory = mallory.clone();
        // `initialize` asserts that it is answered 200, with a session.
        opening.spawn(async move { mallory.initialize().await.0 });
    }
    opened.extend(opening.join_all().await);
    let mut kept = Vec::new();
    for _ in 0..limits.per_subject {
        kept.push(mallory.open_session().await);
    }
    assert!(!exists(&mallory, &opened[0]).await, "her oldest sessions ended");
    for session in &kept {
        assert!(exists(&mallory, session).await, "her newest sessions, as many as one subject holds");
    }

    let alice = app.as_subject(0, "alice");
    let session = alice.open_session().await;
    assert_eq!(alice.list_in_session(&session).await, ["listPets", "getPet"]);
}

#[tokio::test]
async fn shutdown_ends_open_session_streams() {
    let mut app = start().await;
    let client = app.mcp("pets");
    let session = client.open_session().await;
    let mut events = Events::new(client.get(Some(&session)).await);
    let server = app.shutdown();
    let stopped = tokio::time::timeout(Duration::from_secs(10), server).await;
    assert!(stopped.is_ok(), "graceful shutdown waited for the open GET stream");
    assert_eq!(events.next().await, None);
}

/// Two replicas behind one address (one `public_url`), sharing the store's keys, as a load
/// balancer spreads a client's requests: a session opened on one is served by the other (its
/// listings and calls, its GET stream, which hears the other replica's changes, and its other
/// messages), for its subject alone; a replica with other keys does not know it; the replica
/// that opened it ends it.
#[tokio::test]
async fn a_session_opened_on_one_replica_is_served_by_another() {
    const PUBLIC: &str = "http://gateway.test";
    let issuer = FakeIssuer::start().await;
    let key = TestKey::rsa();
    issuer.json("/jwks", &testing::jwks(&[key.jwk("k1")]));
    let replica = |secret: &'static str| {
        Setup::new()
            .http(&format!("public_url = \"{PUBLIC}\""))
            .store(&format!("secret_keys = [{{ id = \"k1\", key = \"{secret}\" }}]"))
            .jwt(&[issuer.origin()])
            .server("pets", BEFORE, "http://127.0.0.1:9", "")
            .start()
    };
    const SHARED: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    let (a, b) = (replica(SHARED).await, replica(SHARED).await);
    let other_keys = replica("CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=").await;
    let as_subject = |app: &TestApp, subject: &str| {
        let claims = json!({"iss": issuer.origin(), "sub": subject, "aud": format!("{PUBLIC}/mcp/pets"),
            "exp": unix_now() + 300, "iat": unix_now()});
        app.mcp("pets").with_token(key.sign(json!({"kid": "k1", "typ": "at+jwt"}), &claims))
    };
    let (alice_a, alice_b) = (as_subject(&a, "alice"), as_subject(&b, "alice"));
    let session = alice_a.open_session().await;

    assert_eq!(alice_b.list_in_session(&session).await, ["listPets", "getPet"]);
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "listPets"}});
    let called = alice_b.post(Some(&session), call).await;
    assert_eq!(called.status(), 200);
    let called: Value = called.json().await.unwrap();
    assert_eq!(called["result"]["isError"], true, "the backend is unreachable: {called}");
    let ping = alice_b.post(Some(&session), json!({"jsonrpc": "2.0", "id": 3, "method": "ping"})).await;
    assert_eq!(ping.status(), 200, "other messages are served too");
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(alice_b.post(Some(&session), initialized).await.status(), 202);

    let stream = alice_b.get(Some(&session)).await;
    assert_eq!(stream.status(), 200);
    assert_eq!(content_type(&stream), "text/event-stream");
    let mut events = Events::new(stream);
    b.publish("pets", AFTER);
    assert_eq!(events.until(LIST_CHANGED).await["method"], LIST_CHANGED);

    let bob_b = as_subject(&b, "bob");
    let foreign =
        bob_b.post(Some(&session), json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"})).await;
    assert_eq!(foreign.status(), 404, "another subject");
    assert_eq!(bob_b.get(Some(&session)).await.status(), 404);
    let elsewhere = as_subject(&other_keys, "alice");
    let unknown =
        elsewhere.post(Some(&session), json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"})).await;
    assert_eq!(unknown.status(), 404, "a replica with other keys");

    assert_eq!(alice_a.delete(Some(&session)).await.status(), 204);
    let ended =
        alice_a.post(Some(&session), json!({"jsonrpc": "2.0", "id": 6, "method": "tools/list"})).await;
    assert_eq!(ended.status(), 404, "ended where it was opened");
}
