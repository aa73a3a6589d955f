//! mcpgate as an OAuth 2.1 resource server against a real, independent authorization server:
//! panva's `oidc-provider` (`tests/node/authorization-server.mjs`) issues the tokens, and the
//! official TypeScript SDK's OAuth client (`tests/node/sdk-oauth-client.mjs`) signs in on its own
//! (401 challenge → Protected Resource Metadata → authorization server metadata → dynamic
//! registration → authorize with PKCE and `resource` → token) and then lists and calls tools.
//! The official Python SDK calls with a token the same server issued (`tests/python`).
//!
//! mcpgate is given only the issuer and discovers its keys. The backend records each request, so
//! the test can tell that the caller's token never reaches it.
//!
//! Node and the packages come from `tests/node`, as for `tests/clients.rs`: without them these
//! tests skip, unless `MCPGATE_REQUIRE_NODE` is set, when they fail.

// Tests read their own switches from the environment, as `tests/corpus.rs` does.
#![allow(clippy::disallowed_methods)]

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tempfile::TempDir;

#[path = "support/app.rs"]
mod app;
#[path = "support/harness.rs"]
mod harness;
// Only the authorization server is used here.
#[allow(dead_code)]
#[path = "support/parties.rs"]
mod parties;

use app::{Backend, Seen};
use harness::{Gate, Node, Python, toml_string};
use parties::AuthorizationServer;

/// What these tests run besides Node itself.
const PACKAGES: [&str; 2] =
    ["node_modules/@modelcontextprotocol/sdk/package.json", "node_modules/oidc-provider/package.json"];

/// Reading pets needs `pets:read`, adding one `pets:write`; the flow named in the document is not
/// the one the test's authorization server uses: mcpgate reads only the scopes.
const DOCUMENT: &str = r##"
openapi: 3.0.3
info: {title: Pets, version: "1"}
components:
  schemas:
    Pet: {type: object, required: [id, name], properties: {id: {type: integer}, name: {type: string}}}
  securitySchemes:
    oauth:
      type: oauth2
      flows:
        authorizationCode:
          authorizationUrl: https://idp.example.com/authorize
          tokenUrl: https://idp.example.com/token
          scopes: {pets:read: read pets, pets:write: add pets}
paths:
  /pets/{petId}:
    get:
      operationId: getPet
      security: [{oauth: [pets:read]}]
      parameters: [{name: petId, in: path, required: true, schema: {type: integer}}]
      responses:
        "200": {description: ok, content: {application/json: {schema: {$ref: "#/components/schemas/Pet"}}}}
  /pets:
    post:
      operationId: addPet
      security: [{oauth: [pets:write]}]
      requestBody:
        required: true
        content: {application/json: {schema: {type: object, required: [name], properties: {name: {type: string}}}}}
      responses:
        "201": {description: created, content: {application/json: {schema: {$ref: "#/components/schemas/Pet"}}}}
"##;

#[test]
fn typescript_sdk_signs_in_with_a_real_authorization_server_and_calls_tools() {
    let Some(node) = Node::find(&PACKAGES) else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let issuer = AuthorizationServer::start(&node, None);
    let backend = runtime.block_on(Backend::start(answer));
    let (gate, _spec) = gate(&issuer, &backend);
    let url = gate.mcp_url("pets");
    let metadata_url = format!("http://{}/.well-known/oauth-protected-resource/mcp/pets", gate.addr);

    // Without a token: 401 and the challenge that starts the client's flow.
    let response =
        runtime.block_on(mcp_post(&url, None, &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})));
    assert_eq!(response.status, 401, "{response:?}");
    assert_eq!(response.challenge, format!("Bearer resource_metadata=\"{metadata_url}\""), "{response:?}");

    // The metadata names the exact resource and the real issuer, in both well-known forms.
    for at in [metadata_url.clone(), format!("http://{}/.well-known/oauth-protected-resource", gate.addr)] {
        let document = runtime.block_on(get_json(&at));
        assert_eq!(document["resource"], url, "{at}: {document}");
        assert_eq!(document["authorization_servers"], json!([issuer.url]), "{at}: {document}");
        assert_eq!(document["scopes_supported"], json!(["pets:read", "pets:write"]), "{at}: {document}");
    }

    // The SDK signs in on its own and reads a pet.
    let run = node.run(&["sdk-oauth-client.mjs", &url, "getPet", r#"{"petId": 7}"#]);
    assert_eq!(run.code, Some(0), "{run}\n--- mcpgate\n{}\n--- AS\n{}", gate.log_text(), issuer.log());
    let summary = run.stdout_json();
    assert_eq!(summary["tools"], json!(["getPet", "addPet"]), "{run}");
    assert_eq!(summary["result"]["isError"], false, "{run}");
    assert_eq!(summary["result"]["structuredContent"], json!({"id": 7, "name": "pet 7"}), "{run}");
    // The token is the authorization server's, for exactly this hosted server, for the user.
    let claims = &summary["claims"];
    assert_eq!(claims["aud"], url, "{run}");
    assert_eq!(claims["iss"], issuer.url, "{run}");
    assert_eq!(claims["sub"], "alice", "{run}");
    assert_eq!(claims["scope"], "pets:read pets:write", "{run}");
    assert_eq!(claims["client_id"], summary["client_id"], "a dynamically registered client: {run}");
    let authorization = &summary["authorization"];
    assert_eq!(authorization["code_challenge_method"], "S256", "{run}");
    assert_eq!(authorization["resource"], url, "{run}");
    // The genuine MCP flow, in this order (other requests in between are the login pages).
    let exchanges = strings(&summary["exchanges"]);
    let expected = [
        format!("POST {url} -> 401"),
        format!("GET {metadata_url} -> 200"),
        format!("GET {}/.well-known/oauth-authorization-server -> 200", issuer.url),
        format!("POST {}/reg -> 201", issuer.url),
        format!("GET {}/auth?", issuer.url),
        format!("POST {}/token -> 200", issuer.url),
        format!("POST {url} -> 200"),
    ];
    let mut rest = exchanges.iter();
    for step in &expected {
        assert!(rest.any(|it| it.starts_with(step.as_str())), "no `{step}` in order in {exchanges:#?}");
    }
    assert!(
        exchanges
            .iter()
            .filter(|it| it.starts_with(&format!("POST {url}")))
            .skip(1)
            .all(|it| !it.ends_with("401")),
        "a request with the token was refused: {exchanges:#?}"
    );
    let seen = backend.take();
    assert_eq!(seen.iter().map(Seen::line).collect::<Vec<_>>(), ["GET /pets/7"]);
    assert_no_credentials(&seen);

    // Writing needs `pets:write`, which this sign-in grants too.
    let run = node.run(&["sdk-oauth-client.mjs", &url, "addPet", r#"{"name": "rex"}"#]);
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(run.stdout_json()["result"]["structuredContent"], json!({"id": 8, "name": "rex"}), "{run}");
    let seen = backend.take();
    assert_eq!(seen.iter().map(Seen::line).collect::<Vec<_>>(), ["POST /pets"]);
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap_or(Value::Null);
    assert_eq!(body, json!({"name": "rex"}));
    assert_no_credentials(&seen);
}

/// A token the same authorization server issued with `pets:read` only: it reads, sees only the
/// tools it may call, and adding a pet gets 403 `insufficient_scope` asking for `pets:write` along
/// with the scope it has. A token it issued for another hosted server is refused outright.
#[test]
fn narrower_and_foreign_tokens_from_the_real_authorization_server() {
    let Some(node) = Node::find(&PACKAGES) else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let issuer = AuthorizationServer::start(&node, None);
    let backend = runtime.block_on(Backend::start(answer));
    let (gate, _spec) = gate(&issuer, &backend);
    let url = gate.mcp_url("pets");
    let metadata_url = format!("http://{}/.well-known/oauth-protected-resource/mcp/pets", gate.addr);

    let reader = runtime.block_on(client_credentials_token(&issuer, &url, "pets:read"));
    let call = |name: &str, arguments: Value| json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}});

    let response = runtime.block_on(mcp_post(&url, Some(&reader), &call("addPet", json!({"name": "rex"}))));
    assert_eq!(response.status, 403, "{response:?}");
    assert_eq!(
        response.challenge,
        format!(
            "Bearer error=\"insufficient_scope\", resource_metadata=\"{metadata_url}\", scope=\"pets:read pets:write\", error_description=\"addPet needs more scopes\""
        ),
        "{response:?}"
    );
    assert_eq!(response.body["error"], "insufficient_scope", "{response:?}");
    assert_eq!(backend.take().len(), 0, "a refused call reached the backend");

    let response = runtime.block_on(mcp_post(&url, Some(&reader), &call("getPet", json!({"petId": 3}))));
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.body["result"]["structuredContent"],
        json!({"id": 3, "name": "pet 3"}),
        "{response:?}"
    );
    let seen = backend.take();
    assert_eq!(seen.iter().map(Seen::line).collect::<Vec<_>>(), ["GET /pets/3"]);
    assert_no_credentials(&seen);

    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let response = runtime.block_on(mcp_post(&url, Some(&reader), &list));
    assert_eq!(response.status, 200, "{response:?}");
    let names: Vec<&Value> =
        response.body["result"]["tools"].as_array().unwrap().iter().map(|it| &it["name"]).collect();
    assert_eq!(names, [&json!("getPet")], "{response:?}");

    // Issued by the trusted issuer, with every scope, but for another resource.
    let foreign =
        runtime.block_on(client_credentials_token(&issuer, &gate.mcp_url("other"), "pets:read pets:write"));
    let response = runtime.block_on(mcp_post(&url, Some(&foreign), &list));
    assert_eq!(response.status, 401, "{response:?}");
    assert!(response.challenge.starts_with("Bearer error=\"invalid_token\""), "{response:?}");
    assert_eq!(backend.take().len(), 0);
}

/// The official Python SDK with a token of the real authorization server, in a session and in
/// 2026-07-28: it sees only the tool the token's scope allows and calls it; the backend gets no
/// credential. Without a token it is refused.
#[test]
fn the_python_sdk_calls_with_a_token_from_the_real_authorization_server() {
    let Some(node) = Node::find(&PACKAGES) else { return };
    let Some(python) = Python::find() else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let issuer = AuthorizationServer::start(&node, None);
    let backend = runtime.block_on(Backend::start(answer));
    let (gate, dir) = gate(&issuer, &backend);
    let url = gate.mcp_url("pets");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, runtime.block_on(client_credentials_token(&issuer, &url, "pets:read")))
        .unwrap();
    let token = format!("--token-file={}", token_file.display());

    for (mode, version) in [("--mode=legacy", "2025-11-25"), ("--mode=auto", "2026-07-28")] {
        let run = python.run(&["sdk_client.py", mode, &token, &url, "getPet", r#"{"petId": 3}"#]);
        assert_eq!(run.code, Some(0), "{run}");
        let summary = run.stdout_json();
        assert_eq!(summary["protocolVersion"], version, "{run}");
        assert_eq!(summary["tools"], json!(["getPet"]), "only what `pets:read` allows: {run}");
        assert_eq!(summary["result"]["structuredContent"], json!({"id": 3, "name": "pet 3"}), "{run}");
        let seen = backend.take();
        assert_eq!(seen.iter().map(Seen::line).collect::<Vec<_>>(), ["GET /pets/3"]);
        assert_no_credentials(&seen);
    }
    // Without one, the 401 ends the SDK's handshake (it reports "Server returned an error
    // response"): nothing is listed.
    let run = python.run(&["sdk_client.py", &url]);
    assert_eq!((run.code, run.stdout.as_str()), (Some(1), ""), "{run}");
    assert!(run.stderr.contains("MCPError"), "{run}");
    assert_eq!(backend.take().len(), 0);
}

/// Starts mcpgate in auth mode `jwt` trusting `issuer` (its keys discovered, not configured),
/// hosting [`DOCUMENT`] as `pets` in front of `backend`.
fn gate(issuer: &AuthorizationServer, backend: &Backend) -> (Gate, TempDir) {
    let dir = TempDir::new().unwrap();
    let spec = dir.path().join("pets.yaml");
    std::fs::write(&spec, DOCUMENT).unwrap();
    let auth = format!("mode = \"jwt\"\n\n[[auth.issuers]]\nissuer = \"{}\"", issuer.url);
    let servers = format!(
        "[[servers]]\nslug = \"pets\"\nspec = {}\nbackend_url = \"{}\"\n",
        toml_string(&spec),
        backend.url
    );
    (Gate::start_with_auth(&auth, &servers), dir)
}

/// An access token for `resource` with `scope`, from the `client_credentials` grant of the
/// pre-registered test client (the token endpoint found through the metadata).
async fn client_credentials_token(issuer: &AuthorizationServer, resource: &str, scope: &str) -> String {
    let metadata = get_json(&format!("{}/.well-known/oauth-authorization-server", issuer.url)).await;
    let token_endpoint = metadata["token_endpoint"].as_str().expect("a token endpoint");
    let form = [("grant_type", "client_credentials"), ("scope", scope), ("resource", resource)];
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let response = reqwest::Client::new()
        .post(token_endpoint)
        .basic_auth("step-up-client", Some("step-up-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "token endpoint: {answer}\n{}", issuer.log());
    assert_eq!(answer["scope"], scope, "{answer}");
    answer["access_token"].as_str().expect("an access token").to_owned()
}

#[derive(Debug)]
struct McpResponse {
    status: u16,
    challenge: String,
    body: Value,
}

/// One JSON-RPC request to mcpgate, with `token` as the bearer token if given.
async fn mcp_post(url: &str, token: Option<&str>, message: &Value) -> McpResponse {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .body(message.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|it| it.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    McpResponse { status, challenge, body }
}

async fn get_json(url: &str) -> Value {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response.json().await.unwrap()
}

/// How the pets backend (recording every request) answers: `GET /pets/{id}` and `POST /pets`.
async fn answer(seen: Seen) -> Response {
    let body: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
    let path = seen.path();
    let id = path.strip_prefix("/pets/").and_then(|it| it.parse::<i64>().ok());
    match (seen.method.as_str(), id) {
        ("GET", Some(id)) => Json(json!({"id": id, "name": format!("pet {id}")})).into_response(),
        ("POST", None) if path == "/pets" => {
            (StatusCode::CREATED, Json(json!({"id": 8, "name": body["name"]}))).into_response()
        }
        _ => (StatusCode::NOT_FOUND, Json(json!({"message": "not found"}))).into_response(),
    }
}

/// The caller's token must never transit to the backend: no `Authorization` header, and no header
/// carrying a JWT or a bearer token under another name.
#[track_caller]
fn assert_no_credentials(seen: &[Seen]) {
    for request in seen {
        for (name, value) in &request.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            assert_ne!(name, "authorization", "the backend got the caller's credentials: {request:?}");
            assert!(
                !value.contains("eyJ") && !value.to_ascii_lowercase().starts_with("bearer"),
                "the backend got a token in `{name}`: {request:?}"
            );
        }
    }
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().expect("an array").iter().map(|it| it.as_str().expect("a string").to_owned()).collect()
}
