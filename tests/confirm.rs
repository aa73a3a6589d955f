//! Confirmation of destructive calls end to end: DELETE operations wait for the user's
//! confirmation, asked through the official TypeScript SDK's elicitation handler in a 2025-11-25
//! session, and through `InputRequiredResult` with a sealed `requestState` for raw 2026-07-28
//! requests (a tampered, replayed or re-targeted state is refused). A recording backend shows
//! that nothing unconfirmed reaches it. On replicas sharing a PostgreSQL store, a state used on
//! one is refused by the others.
//!
//! The SDK comes from `tests/node`: without it the SDK test skips, unless `MCPGATE_REQUIRE_NODE`
//! is set, when it fails; without PostgreSQL the replicas' test skips, unless
//! `MCPGATE_REQUIRE_POSTGRES` is set.

#![allow(clippy::disallowed_methods)]

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[path = "support/app.rs"]
mod app;
#[path = "support/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "support/postgres.rs"]
mod postgres;

use app::{Backend, Seen, Setup, TestApp};
use harness::Node;

const PACKAGES: [&str; 1] = ["node_modules/@modelcontextprotocol/sdk/package.json"];
const NEXT: &str = "2026-07-28";

const DOCUMENT: &str = r##"
openapi: 3.0.3
info: {title: Tickets, version: "1"}
paths:
  /tickets/{id}:
    get:
      operationId: getTicket
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
    delete:
      operationId: deleteTicket
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: gone}}
"##;

async fn answer(seen: Seen) -> Response {
    Json(json!({"path": seen.path()})).into_response()
}

async fn start() -> (TestApp, Backend) {
    let backend = Backend::start(answer).await;
    let app = Setup::new().server("tickets", DOCUMENT, &backend.url, "").start().await;
    (app, backend)
}

/// `tools/call` as a 2026-07-28 client declaring form elicitation, with `extra` params
/// (`requestState`, `inputResponses`): the result.
async fn call(app: &TestApp, tool: &str, arguments: Value, extra: Value) -> Value {
    call_at(&app.mcp_url("tickets"), tool, arguments, extra).await
}

/// [`call`] to the server at `url`.
async fn call_at(url: &str, tool: &str, arguments: Value, extra: Value) -> Value {
    let mut params = json!({"name": tool, "arguments": arguments, "_meta": {
        "io.modelcontextprotocol/protocolVersion": NEXT,
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}},
    }});
    if let Value::Object(extra) = extra {
        params.as_object_mut().unwrap().extend(extra);
    }
    let message = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params});
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", NEXT)
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .body(message.to_string())
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"));
    body["result"].clone()
}

fn text(result: &Value) -> String {
    result["content"][0]["text"].as_str().unwrap_or_default().to_owned()
}

/// A 2026-07-28 client is asked with an `InputRequiredResult`; its retry with the user's
/// acceptance and the state runs the call once. A changed state, a state for other arguments, a
/// replay and a declined question never reach the backend.
#[tokio::test]
async fn a_2026_client_confirms_with_a_sealed_request_state() {
    let (app, backend) = start().await;
    let id = json!({"id": "7"});
    let accept = json!({"confirm": {"action": "accept", "content": {}}});

    // Each tool carries a stable digest of its definition.
    let hashes = |list: &Value| -> Vec<String> {
        let tools = list["result"]["tools"].as_array().unwrap();
        tools
            .iter()
            .map(|it| it["_meta"]["mcpgate/definitionHash"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let first = hashes(&app.mcp("tickets").rpc("tools/list", json!({})).await);
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|it| it.starts_with("sha256-")) && first[0] != first[1], "{first:?}");
    assert_eq!(hashes(&app.mcp("tickets").rpc("tools/list", json!({})).await), first);

    // Reading needs no confirmation.
    assert_eq!(call(&app, "getTicket", id.clone(), Value::Null).await["isError"], false);
    assert_eq!(backend.take_lines(), ["GET /tickets/7"]);

    let asked = call(&app, "deleteTicket", id.clone(), Value::Null).await;
    assert_eq!(asked["resultType"], "input_required", "{asked}");
    let question = &asked["inputRequests"]["confirm"];
    assert_eq!(question["method"], "elicitation/create", "{asked}");
    assert_eq!(question["params"]["mode"], "form", "{asked}");
    let state = asked["requestState"].as_str().expect("a request state").to_owned();
    assert!(backend.take().is_empty(), "an unconfirmed call reached the backend");

    // Tampered: one character changed.
    let mut tampered = state.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let refused =
        call(&app, "deleteTicket", id.clone(), json!({"requestState": tampered, "inputResponses": accept}))
            .await;
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(text(&refused).contains("invalid or has expired"), "{refused}");

    // The state of another call's arguments.
    let other = call(
        &app,
        "deleteTicket",
        json!({"id": "8"}),
        json!({"requestState": state, "inputResponses": accept}),
    )
    .await;
    assert_eq!(other["isError"], true, "{other}");
    assert!(text(&other).contains("another call"), "{other}");
    assert!(backend.take().is_empty());

    // Accepted: runs, once.
    let asked = call(&app, "deleteTicket", id.clone(), Value::Null).await;
    let state = asked["requestState"].as_str().unwrap().to_owned();
    let done =
        call(&app, "deleteTicket", id.clone(), json!({"requestState": state, "inputResponses": accept}))
            .await;
    assert_eq!(done["isError"], false, "{done}");
    assert_eq!(backend.take_lines(), ["DELETE /tickets/7"]);
    let replayed =
        call(&app, "deleteTicket", id.clone(), json!({"requestState": state, "inputResponses": accept}))
            .await;
    assert_eq!(replayed["isError"], true, "{replayed}");
    assert!(text(&replayed).contains("used already"), "{replayed}");

    // Declined.
    let asked = call(&app, "deleteTicket", id.clone(), Value::Null).await;
    let state = asked["requestState"].as_str().unwrap().to_owned();
    let decline = json!({"confirm": {"action": "decline"}});
    let declined =
        call(&app, "deleteTicket", id.clone(), json!({"requestState": state, "inputResponses": decline}))
            .await;
    assert_eq!(declined["isError"], true, "{declined}");
    assert!(text(&declined).contains("did not confirm"), "{declined}");
    assert!(backend.take().is_empty());

    // A client that cannot ask (no session, 2025-11-25) is told so.
    let plain = app.mcp("tickets").call("deleteTicket", id).await;
    assert_eq!(plain["isError"], true, "{plain}");
    assert!(text(&plain).contains("cannot ask"), "{plain}");
    assert!(backend.take().is_empty());
}

/// Two replicas sharing a PostgreSQL store and its keys, as behind a load balancer: a state
/// asked for on one and used on the other is refused on the first, and on the second again; a
/// tampered one is refused by both; only the one accepted call reaches the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_state_used_on_one_replica_is_refused_on_another() {
    let Some(cluster) = postgres::Cluster::start() else { return };
    let url = cluster.database("confirm");
    let backend = Backend::start(answer).await;
    let replica = || {
        Setup::new()
            .store(&format!(
                "url = \"{url}\"\nsecret_keys = [{{ id = \"k1\", key = \"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\" }}]"
            ))
            .server("tickets", DOCUMENT, &backend.url, "")
            .start()
    };
    let (a, b) = (replica().await, replica().await);
    let (on_a, on_b) = (a.mcp_url("tickets"), b.mcp_url("tickets"));
    let id = json!({"id": "7"});
    let accept = json!({"confirm": {"action": "accept", "content": {}}});

    let asked = call_at(&on_a, "deleteTicket", id.clone(), Value::Null).await;
    let state = asked["requestState"].as_str().expect("a request state").to_owned();
    let retry = json!({"requestState": state, "inputResponses": accept});

    let mut tampered = state.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = json!({"requestState": String::from_utf8(tampered).unwrap(), "inputResponses": accept});
    for url in [&on_a, &on_b] {
        let refused = call_at(url, "deleteTicket", id.clone(), tampered.clone()).await;
        assert!(text(&refused).contains("invalid or has expired"), "{refused}");
    }

    let done = call_at(&on_b, "deleteTicket", id.clone(), retry.clone()).await;
    assert_eq!(done["isError"], false, "another replica resumes the call: {done}");
    assert_eq!(backend.take_lines(), ["DELETE /tickets/7"]);
    for url in [&on_a, &on_b] {
        let replayed = call_at(url, "deleteTicket", id.clone(), retry.clone()).await;
        assert_eq!(replayed["isError"], true, "{replayed}");
        assert!(text(&replayed).contains("used already"), "{replayed}");
    }
    assert!(backend.take().is_empty(), "a replayed state reached the backend");
}

/// The TypeScript SDK's elicitation handler confirms (the call runs) or declines (it does not).
#[test]
fn the_typescript_sdk_confirms_through_elicitation() {
    let Some(node) = Node::find(&PACKAGES) else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (app, backend) = runtime.block_on(start());
    let url = app.mcp_url("tickets");

    let run = node.run(&["sdk-confirm-client.mjs", &url, "deleteTicket", r#"{"id":"9"}"#, "accept"]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let out: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(out["result"]["isError"], false, "{out}");
    assert_eq!(out["elicitations"].as_array().map(Vec::len), Some(1), "{out}");
    assert!(out["elicitations"][0]["message"].as_str().unwrap().contains("deleteTicket"), "{out}");
    assert_eq!(backend.take_lines(), ["DELETE /tickets/9"]);

    let run = node.run(&["sdk-confirm-client.mjs", &url, "deleteTicket", r#"{"id":"9"}"#, "decline"]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let out: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(out["result"]["isError"], true, "{out}");
    assert!(backend.take().is_empty(), "a declined call reached the backend");
}
