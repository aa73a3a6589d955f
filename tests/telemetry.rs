//! Metrics and logs of `mcpgate serve`: `/metrics` scraped after real calls (a real backend on
//! loopback, a real token issuer), its values checked and its text checked by `promtool`; the
//! separate metrics address; and logs without colour codes when they go to a file.

#![allow(dead_code)]
// The shared fixtures offer more than these tests use.
// The test switches (`MCPGATE_REQUIRE_PROMTOOL`) and the child's environment are not configuration.
#![allow(clippy::disallowed_methods)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use serde_json::{Value, json};

#[path = "support/app.rs"]
mod app;
#[path = "support/harness.rs"]
mod harness;
#[path = "../src/auth/testing.rs"]
mod testing;

use app::{Backend, McpClient, Setup};
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
  /broken:
    get:
      operationId: broken
      responses: {"200": {description: ok}}
"#;

/// The value of the sample `series` (name and labels, exactly as written) in `text`.
#[track_caller]
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
        .parse()
        .unwrap()
}

/// Runs `promtool check metrics` on `text`: skipped (and recorded) without promtool, unless
/// `MCPGATE_REQUIRE_PROMTOOL` is set.
fn promtool_accepts(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) => {
            let required =
                std::env::var("MCPGATE_REQUIRE_PROMTOOL").is_ok_and(|it| !it.is_empty() && it != "0");
            assert!(!required, "promtool is required (MCPGATE_REQUIRE_PROMTOOL) but does not run: {err}");
            harness::skip("promtool check metrics: promtool is not installed (Debian package prometheus)");
            return;
        }
    };
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let said =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}\n{text}");
}

#[tokio::test]
async fn metrics_count_calls_refusals_sessions_and_keys_without_users() {
    let issuer = FakeIssuer::start().await;
    let key = TestKey::rsa();
    issuer.json("/jwks", &testing::jwks(&[key.jwk("k1")]));
    let backend = Backend::start(|seen| async move {
        if seen.path() == "/broken" {
            (axum::http::StatusCode::BAD_GATEWAY, "down").into_response()
        } else {
            axum::Json(json!([{"name": "rex"}])).into_response()
        }
    })
    .await;
    let app =
        Setup::new().jwt(&[issuer.origin()]).server("metered", DOCUMENT, &backend.url, "").start().await;
    let url = app.mcp_url("metered");
    let token = |scope: &str| {
        key.sign(
            json!({"kid": "k1", "typ": "at+jwt"}),
            &json!({"iss": issuer.origin(), "sub": "alice-subject", "aud": url, "scope": scope,
                    "exp": unix_now() + 300, "iat": unix_now(), "client_id": "client-of-alice"}),
        )
    };
    let reader = McpClient::new(app.http.clone(), url.clone()).with_token(token("pets:read"));

    for _ in 0..2 {
        let result = reader.call("listPets", json!({})).await;
        assert_ne!(result["isError"], true, "{result}");
    }
    let failed = reader.call("broken", json!({})).await;
    assert_eq!(failed["isError"], true, "a 502 is a tool error: {failed}");
    let unknown = reader.rpc("tools/call", json!({"name": "no-such-tool-xyz", "arguments": {}})).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    let listed = reader.rpc("tools/list", json!({})).await;
    assert!(listed["result"]["tools"].is_array(), "{listed}");
    let bad_cursor = reader.rpc("tools/list", json!({"cursor": "not-a-cursor"})).await;
    assert_eq!(bad_cursor["error"]["code"], -32602, "{bad_cursor}");
    // Refused at the edge: no token, then a token without the tool's scope.
    let anonymous = McpClient::new(app.http.clone(), url.clone());
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "listPets", "arguments": {}}});
    assert_eq!(anonymous.post(None, call).await.status(), 401);
    let add = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "addPet", "arguments": {}}});
    assert_eq!(reader.post(None, add).await.status(), 403);
    let _session = reader.open_session().await;

    let response = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let text = response.text().await.unwrap();

    let op = "mcp_server_operation_duration_seconds";
    let list = r#"server="metered",mcp_method_name="tools/call",gen_ai_tool_name="listPets""#;
    assert_eq!(value(&text, &format!("{op}_count{{{list}}}")), 2.0);
    assert_eq!(value(&text, &format!("{op}_bucket{{{list},le=\"+Inf\"}}")), 2.0);
    assert!(value(&text, &format!("{op}_sum{{{list}}}")) > 0.0);
    let broken =
        r#"server="metered",mcp_method_name="tools/call",gen_ai_tool_name="broken",error_type="tool_error""#;
    assert_eq!(value(&text, &format!("{op}_count{{{broken}}}")), 1.0);
    let unknown = r#"server="metered",mcp_method_name="tools/call",error_type="-32602""#;
    assert_eq!(value(&text, &format!("{op}_count{{{unknown}}}")), 1.0);
    assert!(!text.contains("no-such-tool-xyz"), "an unknown tool name makes no series:\n{text}");
    let tools_list = r#"server="metered",mcp_method_name="tools/list""#;
    assert_eq!(value(&text, &format!("{op}_count{{{tools_list}}}")), 1.0);
    assert_eq!(value(&text, &format!("{op}_count{{{tools_list},error_type=\"-32602\"}}")), 1.0);

    let backend_duration = "mcpgate_backend_request_duration_seconds_count";
    assert_eq!(
        value(
            &text,
            &format!(r#"{backend_duration}{{server="metered",tool="listPets",status_class="2xx"}}"#)
        ),
        2.0
    );
    assert_eq!(
        value(&text, &format!(r#"{backend_duration}{{server="metered",tool="broken",status_class="5xx"}}"#)),
        1.0
    );

    let refusals = "mcpgate_authorization_refusals_total";
    assert_eq!(value(&text, &format!(r#"{refusals}{{server="metered",reason="missing_token"}}"#)), 1.0);
    assert_eq!(value(&text, &format!(r#"{refusals}{{server="metered",reason="insufficient_scope"}}"#)), 1.0);
    assert_eq!(value(&text, &format!(r#"{refusals}{{server="metered",reason="invalid_token"}}"#)), 0.0);
    assert_eq!(value(&text, r#"mcpgate_sessions_open{server="metered"}"#), 1.0);
    assert_eq!(value(&text, r#"mcpgate_catalog_tools{server="metered"}"#), 3.0);
    assert_eq!(value(&text, r#"mcpgate_catalog_generation{server="metered"}"#), 0.0);
    assert!(value(&text, r#"mcpgate_jwks_refreshes_total{outcome="ok"}"#) >= 1.0);
    for private in ["alice", "client-of-alice", "127.0.0.1", "Bearer"] {
        assert!(!text.contains(private), "`{private}` is in the metrics:\n{text}");
    }

    // A publication bumps the generation and keeps the tool's counts.
    app.publish("metered", DOCUMENT);
    let text = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    assert_eq!(value(&text, r#"mcpgate_catalog_generation{server="metered"}"#), 1.0);
    assert_eq!(value(&text, &format!("{op}_count{{{list}}}")), 2.0);
    promtool_accepts(&text);

    // Behind the `Host` check, as every route but the health probes.
    let elsewhere =
        app.http.get(format!("{}/metrics", app.base)).header("host", "evil.example").send().await.unwrap();
    assert_eq!(elsewhere.status(), 403);
}

#[tokio::test]
async fn metrics_listen_moves_metrics_to_their_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[http]\nmetrics_listen = \"127.0.0.1:0\"\n[store]\ndata_dir = {}\n[auth]\nmode = \"none\"\n",
        harness::toml_string(dir.path())
    );
    let config = mcpgate::config::Config::parse(&text, &[]).unwrap();
    let built = mcpgate::app::build(&config).await.unwrap();
    let get = |host: &str| {
        axum::http::Request::get("/metrics").header("host", host).body(axum::body::Body::empty()).unwrap()
    };
    use tower::ServiceExt;
    let main = built.entry.handle(get("127.0.0.1:8080")).await;
    assert_eq!(main.status(), 404, "the main address no longer serves /metrics");
    let metrics = built.metrics.clone().expect("a router for metrics_listen");
    // Scrapers name the pod's address, which no `allowed_hosts` lists.
    let scraped = metrics.oneshot(get("10.1.2.3:9464")).await.unwrap();
    assert_eq!(scraped.status(), 200);
    let body = axum::body::to_bytes(scraped.into_body(), 1 << 20).await.unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("# TYPE mcp_server_operation_duration_seconds histogram"), "{text}");
    promtool_accepts(&text);
}

/// `mcpgate serve` with its logs in a file (`--log-json` if `json`): what it wrote until it
/// listened.
fn serve_log(json: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let addr = harness::free_port();
    let config = harness::config_text(addr, &dir.path().join("data"), "mode = \"none\"", "");
    let config_path = dir.path().join("mcpgate.toml");
    std::fs::write(&config_path, config).unwrap();
    let log = dir.path().join("mcpgate.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcpgate"));
    command.args(["serve", "--config"]).arg(&config_path);
    if json {
        command.arg("--log-json");
    }
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MCPGATE_") {
            command.env_remove(name);
        }
    }
    // Not `NO_COLOR`: the file alone must turn colours off.
    let mut child = command
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut text = String::new();
    while start.elapsed() < Duration::from_secs(60) {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("listening on") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("listening on"), "mcpgate did not start:\n{text}");
    text
}

#[test]
fn logs_to_a_file_carry_no_colour_codes() {
    let text = serve_log(false);
    assert!(!text.contains('\u{1b}'), "escape codes in\n{text:?}");
    assert!(text.contains(" INFO "), "{text}");
}

#[test]
fn log_json_writes_one_json_object_per_line() {
    let text = serve_log(true);
    assert!(!text.contains('\u{1b}'), "{text:?}");
    for line in text.lines().filter(|it| !it.trim().is_empty()) {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}"));
        assert!(event["level"].is_string() && event["fields"].is_object(), "{line}");
    }
}
