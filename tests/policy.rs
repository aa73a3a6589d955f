//! Cedar policies end to end: tokens from a real authorization server (`oidc-provider`, whose
//! `finance-client` and `support-client` tokens carry `groups` and `tenant` claims), mcpgate
//! in-process deciding `tools/list` and `tools/call` with them, a recording backend that shows
//! what got through, and the admin API publishing policies and explaining decisions.
//!
//! Node and oidc-provider come from `tests/node`: without them these tests skip, unless
//! `MCPGATE_REQUIRE_NODE` is set, when they fail.

#![allow(clippy::disallowed_methods)]

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[path = "support/app.rs"]
mod app;
#[path = "support/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "support/parties.rs"]
mod parties;

use app::{Backend, Seen, Setup, TestApp, names};
use harness::Node;
use parties::AuthorizationServer;

const PACKAGES: [&str; 1] = ["node_modules/oidc-provider/package.json"];
const BOOTSTRAP: &str = "policy-test-bootstrap-token";
const FINANCE: (&str, &str) = ("finance-client", "finance-client-secret");
const SUPPORT: (&str, &str) = ("support-client", "support-client-secret");
const SCOPE: &str = "pets:read pets:write";

const DOCUMENT: &str = r##"
openapi: 3.0.3
info: {title: Shop, version: "1"}
paths:
  /refunds:
    post:
      operationId: createRefund
      tags: [finance]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [amount]
              properties: {amount: {type: integer}, reason: {type: string}}
      responses: {"200": {description: ok}}
  /tickets/{id}:
    get:
      operationId: getTicket
      tags: [support]
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
  /tenants/{tenant}/reports:
    get:
      operationId: listReports
      tags: [reports]
      parameters: [{name: tenant, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
"##;

/// Only finance may refund, and only below 500; everyone reads tickets; a caller reads only
/// their own tenant's reports.
const POLICIES: &str = r#"
@id("read-tickets")
permit(principal, action, resource == Tool::"getTicket");
@id("refunds-finance-only")
forbid(principal, action, resource == Tool::"createRefund")
unless { principal.groups.contains("finance") };
@id("refunds-below-500")
permit(principal, action == Action::"call", resource == Tool::"createRefund")
when { context.arguments has amount && context.arguments.amount < 500 };
@id("own-tenant-reports")
permit(principal, action == Action::"call", resource == Tool::"listReports")
when { principal has tenant && context.arguments has tenant && context.arguments.tenant == principal.tenant };
"#;

async fn answer(seen: Seen) -> Response {
    Json(json!({"path": seen.path()})).into_response()
}

struct Fixture {
    _issuer: AuthorizationServer,
    app: TestApp,
    backend: Backend,
    finance: String,
    support: String,
}

fn start(runtime: &tokio::runtime::Runtime) -> Option<Fixture> {
    let node = Node::find(&PACKAGES)?;
    let issuer = AuthorizationServer::start(&node, None);
    runtime.block_on(async {
        let backend = Backend::start(answer).await;
        let extra = format!("policies = '''{POLICIES}'''\n");
        let app = Setup::new()
            .jwt(&[&issuer.url])
            .bootstrap_token(BOOTSTRAP)
            .server("shop", DOCUMENT, &backend.url, &extra)
            .start()
            .await;
        let resource = app.mcp_url("shop");
        let finance = issuer.client_token(FINANCE, &resource, SCOPE).await;
        let support = issuer.client_token(SUPPORT, &resource, SCOPE).await;
        Some(Fixture { _issuer: issuer, app, backend, finance, support })
    })
}

impl Fixture {
    fn client(&self, token: &str) -> app::McpClient {
        self.app.mcp("shop").with_token(token.to_owned())
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}/admin/api{path}", self.app.base))
            .bearer_auth(BOOTSTRAP);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

fn text(result: &Value) -> String {
    result["content"][0]["text"].as_str().unwrap_or_default().to_owned()
}

/// Each caller sees the tools some call of theirs may be allowed, and only those.
#[test]
fn tools_list_shows_what_each_caller_may_call() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(it) = start(&runtime) else { return };
    runtime.block_on(async {
        let finance = names(&it.client(&it.finance).rpc("tools/list", json!({})).await);
        assert_eq!(finance, ["createRefund", "getTicket", "listReports"]);
        let support = names(&it.client(&it.support).rpc("tools/list", json!({})).await);
        assert_eq!(support, ["getTicket", "listReports"]);
    });
}

/// Calls are decided on the token's claims and the arguments, before the backend is reached;
/// a refusal names the refusing policy alone and is in the audit and the metrics.
#[test]
fn calls_are_refused_on_claims_and_arguments() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(it) = start(&runtime) else { return };
    runtime.block_on(async {
        let (finance, support) = (it.client(&it.finance), it.client(&it.support));

        let refused = support.call("createRefund", json!({"amount": 10})).await;
        assert_eq!(refused["isError"], true, "{refused}");
        assert_eq!(text(&refused), "Refused by policy `refunds-finance-only`.");
        assert!(!text(&refused).contains("below-500"));

        let refused = finance.call("createRefund", json!({"amount": 900})).await;
        assert_eq!(refused["isError"], true, "{refused}");
        assert_eq!(text(&refused), "Refused: no policy permits this call.");
        assert_eq!(it.backend.take().len(), 0, "a refused call reached the backend");

        let allowed = finance.call("createRefund", json!({"amount": 100})).await;
        assert_eq!(allowed["isError"], false, "{allowed}");
        assert_eq!(it.backend.take_lines(), ["POST /refunds"]);

        // The tenant claim against an argument: support's tenant is `globex`.
        let other = support.call("listReports", json!({"tenant": "acme"})).await;
        assert_eq!(other["isError"], true, "{other}");
        let own = support.call("listReports", json!({"tenant": "globex"})).await;
        assert_eq!(own["isError"], false, "{own}");
        let own = finance.call("getTicket", json!({"id": "7"})).await;
        assert_eq!(own["isError"], false, "{own}");
        assert_eq!(it.backend.take_lines(), ["GET /tenants/globex/reports", "GET /tickets/7"]);

        let (status, calls) =
            it.admin(reqwest::Method::GET, "/servers/shop/calls?decision=policy_denied", None).await;
        assert_eq!(status, 200, "{calls}");
        assert_eq!(calls["calls"].as_array().map(Vec::len), Some(3), "{calls}");

        let metrics = reqwest::get(format!("{}/metrics", it.app.base)).await.unwrap().text().await.unwrap();
        assert!(
            metrics.contains("mcpgate_policy_denied_calls_total{server=\"shop\",tool=\"createRefund\"} 2"),
            "{metrics}"
        );
    });
}

/// The console explains a decision with the policies that made it; a policy that does not fit
/// the tools is kept in the draft but cannot be published, and a syntax error is not saved.
#[test]
fn the_console_explains_and_invalid_policies_are_not_published() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(it) = start(&runtime) else { return };
    runtime.block_on(async {
        let post = reqwest::Method::POST;
        let trial = json!({"claims": {"sub": "sam", "groups": ["support"]}, "tool": "createRefund", "arguments": {"amount": 10}});
        let (status, decision) = it.admin(post.clone(), "/servers/shop/policies/try", Some(trial)).await;
        assert_eq!(status, 200, "{decision}");
        assert_eq!(decision["allowed"], false);
        assert_eq!(decision["decided_by"], json!(["refunds-finance-only"]));
        assert_eq!(decision["listed"], false);
        let trial = json!({"claims": {"sub": "fin", "groups": ["finance"]}, "tool": "createRefund", "arguments": {"amount": 10}});
        let (_, decision) = it.admin(post.clone(), "/servers/shop/policies/try", Some(trial)).await;
        assert_eq!(decision["allowed"], true, "{decision}");
        assert_eq!(decision["decided_by"], json!(["refunds-below-500"]));

        // A server made in the admin UI, whose policies do not fit its tools.
        let (status, created) =
            it.admin(post.clone(), "/servers", Some(json!({"slug": "draft", "text": DOCUMENT}))).await;
        assert_eq!(status, 201, "{created}");
        let patch = reqwest::Method::PATCH;
        let settings = json!({"backend_url": it.backend.url, "policies": "permit(principal, action, resource"});
        let (status, refused) = it.admin(patch.clone(), "/servers/draft/settings", Some(settings)).await;
        assert_eq!(status, 400, "a syntax error is refused at once: {refused}");
        let typo = "permit(principal, action, resource) when { principal.group.contains(\"finance\") };";
        let settings = json!({"backend_url": it.backend.url, "policies": typo});
        let (status, saved) = it.admin(patch, "/servers/draft/settings", Some(settings)).await;
        assert_eq!(status, 204, "{saved}");
        let (status, refused) = it.admin(post, "/servers/draft/publish", None).await;
        assert_eq!(status, 400, "{refused}");
        assert!(refused["error"].as_str().unwrap_or_default().contains("do not fit"), "{refused}");
    });
}
