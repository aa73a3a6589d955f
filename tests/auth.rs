//! mcpgate as an OAuth resource server (auth mode `jwt`): Protected Resource Metadata, the
//! 401/403 challenges, a bad-token matrix, scope checks per tool and scope-filtered `tools/list`.
//! Tokens are signed here with test keys whose JWKS a loopback issuer serves; nothing is mocked
//! inside mcpgate. The requests go straight to mcpgate's router (`TestApp::oneshot`): what is
//! checked here needs no connection; but the official Rust SDK, as a client, connects.

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
          scopes: {pets:read: read, pets:write: write}
security: [{oauth: [pets:read]}]
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
"#;

/// mcpgate hosting [`DOCUMENT`] as `pets` in auth mode `jwt`, the issuer whose key signs the
/// tokens, and a backend that answers every request with one pet.
struct App {
    app: TestApp,
    base: String,
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
        let backend =
            Backend::start(|_| async { axum::Json(json!([{"name": "rex"}])).into_response() }).await;
        let app =
            Setup::new().jwt(&[issuer.origin()]).server("pets", DOCUMENT, &backend.url, "").start().await;
        App { base: app.base.clone(), mcp_url: app.mcp_url("pets"), app, issuer, key, backend }
    }

    fn claims(&self, scope: &str) -> Value {
        json!({
            "iss": self.issuer.origin(),
            "sub": "alice",
            "aud": self.mcp_url,
            "scope": scope,
            "exp": unix_now() + 300,
            "iat": unix_now(),
        })
    }

    fn token(&self, claims: &Value) -> String {
        self.key.sign(json!({"kid": "k1", "typ": "at+jwt"}), claims)
    }

    async fn post(&self, token: Option<&str>, url: &str, body: Value) -> Reply {
        let mut client = McpClient::new(self.app.http.clone(), url.to_owned());
        if let Some(token) = token {
            client = client.with_token(token.to_owned());
        }
        self.app.oneshot(client.send(Method::POST, None).json(&body)).await
    }

    async fn list(&self, token: Option<&str>) -> Reply {
        self.post(
            token,
            &self.mcp_url,
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}),
        )
        .await
    }

    async fn call(&self, token: &str, tool: &str) -> Reply {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}});
        self.post(Some(token), &self.mcp_url, body).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.app.oneshot(self.app.http.get(format!("{}{path}", self.base))).await
    }
}

fn challenge(response: &Reply) -> String {
    response.headers["www-authenticate"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn protected_resource_metadata_names_the_exact_resource() {
    let app = App::spawn().await;
    let expected = json!({
        "resource": app.mcp_url,
        "authorization_servers": [app.issuer.origin()],
        "scopes_supported": ["pets:read", "pets:write"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Pets",
    });
    for path in ["/.well-known/oauth-protected-resource/mcp/pets", "/.well-known/oauth-protected-resource"] {
        let metadata: Value = app.get(path).await.json();
        assert_eq!(metadata, expected, "{path}");
    }
    let unknown = app.get("/.well-known/oauth-protected-resource/mcp/other").await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn no_token_gets_a_challenge_pointing_at_the_metadata() {
    let app = App::spawn().await;
    let response = app.list(None).await;
    assert_eq!(response.status, 401);
    assert_eq!(
        challenge(&response),
        format!("Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp/pets\"", app.base)
    );
}

#[tokio::test]
async fn bad_tokens_are_refused_with_invalid_token() {
    let app = App::spawn().await;
    let now = unix_now();
    let good = app.claims("pets:read");
    let with = |key: &str, value: Value| {
        let mut claims = good.clone();
        claims[key] = value;
        claims
    };
    let cases = [
        ("expired", app.token(&with("exp", json!(now - 600)))),
        ("not yet valid", app.token(&with("nbf", json!(now + 600)))),
        ("wrong issuer", app.token(&with("iss", json!("https://evil.example.com")))),
        ("another resource", app.token(&with("aud", json!(format!("{}/mcp/other", app.base))))),
        ("the backend's audience", app.token(&with("aud", json!("https://api.example.com")))),
        ("unknown key", app.key.sign(json!({"kid": "k9"}), &good)),
        ("foreign key under a known kid", TestKey::foreign_rsa().sign(json!({"kid": "k1"}), &good)),
        (
            "alg none",
            format!("{}.{}.", testing::encode_part(&json!({"alg": "none"})), testing::encode_part(&good)),
        ),
        (
            "HS256 signed with the RSA public key",
            TestKey::hmac(testing::RSA_A_PUBLIC_PEM.as_bytes()).sign(json!({"kid": "k1"}), &good),
        ),
        ("malformed", "not.a.jwt".to_owned()),
    ];
    for (case, token) in cases {
        let response = app.list(Some(&token)).await;
        assert_eq!(response.status, 401, "{case}");
        let header = challenge(&response);
        assert!(header.starts_with("Bearer error=\"invalid_token\""), "{case}: {header}");
        assert!(!header.contains(&token), "{case}: the token is echoed");
    }
    assert_eq!(app.backend.count(), 0);
}

#[tokio::test]
async fn tokens_in_the_query_string_are_refused() {
    let app = App::spawn().await;
    let token = app.token(&app.claims("pets:read"));
    let url = format!("{}?access_token={token}", app.mcp_url);
    let response = app.post(None, &url, json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await;
    assert_eq!(response.status, 400);
    assert!(challenge(&response).starts_with("Bearer error=\"invalid_request\""));
}

#[tokio::test]
async fn tools_are_listed_and_called_by_scope_with_step_up() {
    let app = App::spawn().await;
    let reader = app.token(&app.claims("pets:read"));
    let listed: Value = app.list(Some(&reader)).await.json();
    let names: Vec<&str> =
        listed["result"]["tools"].as_array().unwrap().iter().map(|it| it["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["listPets"], "tools the token's scopes do not allow are hidden");

    let called: Value = app.call(&reader, "listPets").await.json();
    assert_eq!(called["result"]["structuredContent"], json!({"result": [{"name": "rex"}]}));

    let denied = app.call(&reader, "addPet").await;
    assert_eq!(denied.status, 403);
    assert_eq!(
        challenge(&denied),
        format!(
            "Bearer error=\"insufficient_scope\", resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp/pets\", scope=\"pets:read pets:write\", error_description=\"addPet needs more scopes\"",
            app.base
        )
    );
    assert_eq!(app.backend.count(), 1, "the denied call sent nothing");

    let writer = app.token(&app.claims("pets:read pets:write"));
    let added: Value = app.call(&writer, "addPet").await.json();
    assert_eq!(added["result"]["isError"], false, "{added}");
    let all: Value = app.list(Some(&writer)).await.json();
    assert_eq!(all["result"]["tools"].as_array().unwrap().len(), 2);
}

/// The official Rust SDK (rmcp's client) as the caller: without a token it hears the challenge;
/// with one it opens a session, sees and calls what the token's scopes allow, and hears the
/// step-up challenge for the rest.
#[tokio::test]
async fn the_rust_sdk_meets_the_challenges_and_calls_with_its_token() {
    use rmcp::model::CallToolRequestParams;
    use rmcp::service::ServiceExt;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    let app = App::spawn().await;
    let connect = |token: Option<String>| {
        let mut config = StreamableHttpClientTransportConfig::with_uri(app.mcp_url.as_str());
        if let Some(token) = token {
            config = config.auth_header(token);
        }
        ().serve(StreamableHttpClientTransport::from_config(config))
    };
    let refused = format!("{:?}", connect(None).await.expect_err("no token, no session"));
    assert!(refused.contains("AuthRequired") && refused.contains("oauth-protected-resource"), "{refused}");

    let client = connect(Some(app.token(&app.claims("pets:read")))).await.expect("the SDK connects");
    let tools = client.list_all_tools().await.expect("the SDK lists");
    let names: Vec<&str> = tools.iter().map(|it| it.name.as_ref()).collect();
    assert_eq!(names, ["listPets"], "tools the token's scopes do not allow are hidden");
    let listed =
        client.call_tool(CallToolRequestParams::new("listPets")).await.expect("the call is answered");
    assert_eq!(listed.structured_content, Some(json!({"result": [{"name": "rex"}]})));
    let denied = client.call_tool(CallToolRequestParams::new("addPet")).await.expect_err("a step-up");
    let denied = format!("{denied:?}");
    assert!(denied.contains("InsufficientScope") && denied.contains("pets:write"), "{denied}");
    assert_eq!(app.backend.count(), 1, "the denied call sent nothing");
}
