//! `mcpgate serve --dev` end to end, as a newcomer meets it: the official TypeScript SDK's OAuth
//! client signs in with the built-in development identity provider (dynamic registration,
//! PKCE, resource indicator, auto-login), then lists the petstore sample's tools and calls one,
//! which the built-in sample backend answers.
//!
//! Node and the packages come from `tests/node`; without them the test skips, unless
//! `MCPGATE_REQUIRE_NODE` is set, when it fails.

// Tests read their own switches from the environment, as `tests/corpus.rs` does.
#![allow(clippy::disallowed_methods)]
#![allow(dead_code)] // The shared harness offers more than this test uses.

#[path = "support/harness.rs"]
mod harness;

use harness::{Gate, Node};
use serde_json::json;

#[test]
fn the_sdk_signs_in_with_the_dev_identity_provider_and_calls_a_tool() {
    let Some(node) = Node::find(&["node_modules/@modelcontextprotocol/sdk/package.json"]) else { return };
    let gate = Gate::start_dev();
    let url = gate.mcp_url("petstore");
    let run = node.run(&["sdk-oauth-client.mjs", &url, "getPetById", r#"{"petId": 1}"#]);
    assert_eq!(run.code, Some(0), "{run}\n{}", gate.log_text());
    let summary = run.stdout_json();
    let tools: Vec<&str> =
        summary["tools"].as_array().unwrap().iter().map(|it| it.as_str().unwrap()).collect();
    assert!(tools.contains(&"getPetById") && tools.contains(&"findPetsByStatus"), "{tools:?}");
    assert_eq!(summary["result"]["structuredContent"]["name"], json!("doggie"), "{summary}");
    let claims = &summary["claims"];
    assert_eq!(claims["aud"], json!(url));
    assert_eq!(claims["iss"], json!(format!("http://{}/dev-idp", gate.addr)));
    assert_eq!(claims["sub"], json!("dev-user"));
}

#[test]
fn unknown_paths_name_the_hosted_servers_and_the_samples_say_what_they_are() {
    let gate = Gate::start_dev();
    for path in ["/mcp", "/mcp/", "/favicon.ico", "/api/v3/pet/1"] {
        let (status, body) = harness::http_get(gate.addr, path).expect("mcpgate answers");
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body.contains("/mcp/petstore") && body.contains("/admin"), "{path}: {body}");
    }
    let (status, _) = harness::http_get(gate.addr, "/").expect("mcpgate answers");
    assert_eq!(status, 303, "/ leads to the admin UI");
    let (status, body) = harness::http_get(gate.addr, "/dev-backend/api/v3/pet/1").expect("an answer");
    assert_eq!((status, body.contains("doggie")), (200, true), "{body}");
    let (status, body) = harness::http_get(gate.addr, "/dev-backend/train-travel/trips").expect("an answer");
    assert_eq!(status, 501, "{body}");
    assert!(body.contains("no backend"), "{body}");
}

/// Development mode waits for the samples to load before its identity provider reads their
/// scopes; that wait and start-up's own must not both take the loading task's result (a second
/// take panics inside tokio).
#[test]
fn development_mode_starts_without_a_panic() {
    let gate = Gate::start_dev();
    // `start_dev` returns once every server is loaded, after start-up's tasks have run.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = gate.log_text();
    assert!(!log.contains("panicked"), "{log}");
}
