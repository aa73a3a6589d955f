//! Catalog mode end to end: a server served as three meta-tools (search, describe, call) in auth
//! mode `jwt`, in front of a recording backend. What a caller may not call is never found,
//! described nor called; a call through the meta-tool is checked against the real tool's schema.

#![allow(dead_code)] // The shared fixtures offer more than these tests use.

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

    // Checked against getPet's own schema: never sent.
    let call = json!({"name": "getPet", "arguments": {"id": "not a number"}});
    let (text, is_error) = app.meta(scope, "call_operation", call).await;
    assert!(is_error && text.contains("Invalid arguments for getPet"), "{text}");
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
