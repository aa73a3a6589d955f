//! Real, independent MCP clients against a running `mcpgate serve`: the official TypeScript SDK
//! (`tests/node/sdk-client.mjs`), MCP Inspector's CLI and the MCP conformance suite, run with Node 22,
//! the official Python SDK (`tests/python/sdk_client.py`), and the official Rust SDK (rmcp's
//! client, in the test itself), against the petstore sample, whose backend is an HTTP server in the
//! test recording each request.
//!
//! Node and the clients come from `tests/node` (`npm ci --prefix tests/node`); `MCPGATE_NODE` may
//! name another Node 22 binary. Without them these tests skip, unless `MCPGATE_REQUIRE_NODE` is set
//! (CI sets it), when they fail. The Python SDK comes from the virtual environment `tests/run`
//! makes (`MCPGATE_PYTHON`), and `MCPGATE_REQUIRE_PYTHON` likewise makes its absence a failure.

// Tests read their own switches from the environment, as `tests/corpus.rs` does.
#![allow(clippy::disallowed_methods)]

use std::path::Path;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tempfile::TempDir;

#[path = "support/app.rs"]
mod app;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/corpus.rs"]
mod corpus;
use corpus::corpus_dir;

use rmcp::model::{CallToolRequestParams, ProtocolVersion};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
use rmcp::transport::StreamableHttpClientTransport;

use app::{Backend, Seen};
use harness::{Gate, NODE_DIR, Node, Python, http_get, toml_string};

/// What these tests run besides Node itself.
const CLIENTS: [&str; 3] = [
    "node_modules/@modelcontextprotocol/sdk/package.json",
    "node_modules/.bin/inspector",
    "node_modules/.bin/conformance",
];
const PETSTORE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi-samples/swagger-petstore-v3.yaml");

#[test]
fn typescript_sdk_lists_and_calls_tools() {
    let Some(node) = Node::find(&CLIENTS) else { return };
    let (backend, _runtime) = petstore_backend();
    let gate = Gate::start(&petstore(&backend));
    let url = gate.mcp_url("petstore");

    let run = node.run(&["sdk-client.mjs", &url, "getPetById", r#"{"petId": 7}"#]);
    assert_eq!(run.code, Some(0), "{run}");
    let summary = run.stdout_json();
    assert_eq!(summary["protocolVersion"], "2025-11-25", "{run}");
    assert_eq!(summary["server"]["name"], "mcpgate/petstore", "{run}");
    assert_eq!(summary["pages"], 1, "{run}");
    let names = strings(&summary["tools"]);
    assert_eq!(names.len(), 19, "{run}");
    for name in ["getPetById", "findPetsByStatus", "addPet", "deleteUser"] {
        assert!(names.iter().any(|it| it == name), "no tool {name} in {names:?}");
    }
    // The SDK has already checked `structuredContent` against the tool's `outputSchema`.
    let result = &summary["result"];
    assert_eq!(result["isError"], false, "{run}");
    assert_eq!(result["structuredContent"], pet(7), "{run}");
    let text = result["content"][0]["text"].as_str().expect("a text block");
    assert_eq!(serde_json::from_str::<Value>(text).unwrap(), pet(7), "the text block repeats the result");
    assert_eq!(backend.take_lines(), ["GET /api/v3/pet/7"]);

    // An array response is wrapped, as the tool's output schema says.
    let run = node.run(&["sdk-client.mjs", &url, "findPetsByStatus", r#"{"status": "sold"}"#]);
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(run.stdout_json()["result"]["structuredContent"], json!({"result": [pet(1), pet(2)]}));
    assert_eq!(backend.take_lines(), ["GET /api/v3/pet/findByStatus?status=sold"]);

    // Invalid arguments are a tool error the model can read; the backend is not called.
    let run = node.run(&["sdk-client.mjs", &url, "getPetById", r#"{"petId": "seven"}"#]);
    assert_eq!(run.code, Some(2), "{run}");
    let result = &run.stdout_json()["result"];
    assert_eq!(result["isError"], true, "{run}");
    assert!(
        result["content"][0]["text"].as_str().unwrap().contains("Invalid arguments for getPetById"),
        "{run}"
    );

    // An unknown tool is a protocol error.
    let run = node.run(&["sdk-client.mjs", &url, "noSuchTool", "{}"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("MCP error -32602: unknown tool noSuchTool"), "{run}");
    assert_eq!(backend.take_lines(), Vec::<String>::new());
}

/// The Python SDK in a session (`initialize`, then the `Mcp-Session-Id` on every request), and in
/// its own default mode, which asks `server/discover` first and then speaks 2026-07-28 without one.
#[test]
fn python_sdk_lists_and_calls_tools() {
    let Some(python) = Python::find() else { return };
    let (backend, _runtime) = petstore_backend();
    let gate = Gate::start(&petstore(&backend));
    let url = gate.mcp_url("petstore");

    for (mode, version) in [("--mode=legacy", "2025-11-25"), ("--mode=auto", "2026-07-28")] {
        let client = |args: &[&str]| python.run(&[&["sdk_client.py", mode, &url][..], args].concat());
        let run = client(&["getPetById", r#"{"petId": 7}"#]);
        assert_eq!(run.code, Some(0), "{run}");
        let summary = run.stdout_json();
        assert_eq!(summary["protocolVersion"], version, "{run}");
        assert_eq!(summary["server"]["name"], "mcpgate/petstore", "{run}");
        assert_eq!(summary["pages"], 1, "{run}");
        assert_eq!(strings(&summary["tools"]).len(), 19, "{run}");
        // The SDK has already checked `structuredContent` against the tool's `outputSchema`.
        let result = &summary["result"];
        assert_eq!(result["isError"], false, "{run}");
        assert_eq!(result["structuredContent"], pet(7), "{run}");
        assert_eq!(backend.take_lines(), ["GET /api/v3/pet/7"], "{run}");

        let run = client(&["getPetById", r#"{"petId": "seven"}"#]);
        assert_eq!(run.code, Some(2), "{run}");
        let result = &run.stdout_json()["result"];
        assert_eq!(result["isError"], true, "{run}");
        let text = result["content"][0]["text"].as_str().unwrap_or_default();
        assert!(text.contains("Invalid arguments for getPetById"), "{run}");

        let run = client(&["noSuchTool", "{}"]);
        assert_eq!(run.code, Some(1), "{run}");
        assert!(run.stderr.contains("MCPError -32602: unknown tool noSuchTool"), "{run}");
        assert_eq!(backend.take_lines(), Vec::<String>::new(), "{run}");
    }
}

#[test]
fn rust_sdk_lists_and_calls_tools() {
    let (backend, runtime) = petstore_backend();
    let gate = Gate::start(&petstore(&backend));
    let url = gate.mcp_url("petstore");
    let lifecycles = [
        // `initialize`, then every request in the session it opened.
        (ClientLifecycleMode::Initialize, ProtocolVersion::V_2025_11_25),
        // `server/discover`, then requests that each carry what they need, without a session.
        (
            ClientLifecycleMode::Discover { preferred_versions: vec![ProtocolVersion::V_2026_07_28] },
            ProtocolVersion::V_2026_07_28,
        ),
    ];
    let sessions = || {
        let (_, text) = http_get(gate.addr, "/metrics").expect("mcpgate serves its metrics");
        let line =
            text.lines().find_map(|it| it.strip_prefix(r#"mcpgate_sessions_open{server="petstore"} "#));
        line.and_then(|it| it.parse::<u32>().ok()).expect("a count of sessions")
    };
    for (lifecycle, version) in lifecycles {
        let opens = lifecycle == ClientLifecycleMode::Initialize;
        runtime.block_on(async {
            let before = sessions();
            let transport = StreamableHttpClientTransport::from_uri(url.as_str());
            let client = ().serve_with_lifecycle(transport, lifecycle).await.expect("the SDK connects");
            assert_eq!(sessions(), before + u32::from(opens), "{version}");
            let info = client.peer_info().expect("the server's info");
            assert_eq!(info.protocol_version, version);
            let name = info.server_info.as_ref().map(|it| it.name.as_str());
            assert_eq!(name, Some("mcpgate/petstore"), "{version}");

            let tools = client.list_all_tools().await.expect("the SDK lists the tools");
            assert_eq!(tools.len(), 19, "{version}");
            let get = tools.iter().find(|it| it.name == "getPetById").expect("a tool getPetById");
            assert_eq!(get.annotations.as_ref().and_then(|it| it.read_only_hint), Some(true));

            let call = |arguments: Value| {
                let arguments = arguments.as_object().cloned().unwrap_or_default();
                client.call_tool(CallToolRequestParams::new("getPetById").with_arguments(arguments))
            };
            let result = call(json!({"petId": 7})).await.expect("the call is answered");
            assert_eq!(result.is_error, Some(false), "{result:?}");
            assert_eq!(result.structured_content, Some(pet(7)));
            assert_eq!(backend.take_lines(), ["GET /api/v3/pet/7"]);

            let result = call(json!({"petId": "seven"})).await.expect("a tool error is a result");
            assert_eq!(result.is_error, Some(true), "{result:?}");
            let text = result.content.first().and_then(|it| it.as_text()).map(|it| it.text.clone());
            assert!(text.unwrap_or_default().contains("Invalid arguments for getPetById"));

            let unknown = client.call_tool(CallToolRequestParams::new("noSuchTool")).await;
            let message = unknown.expect_err("an unknown tool is a protocol error").to_string();
            assert!(message.contains("unknown tool noSuchTool"), "{message}");
            assert_eq!(backend.take_lines(), Vec::<String>::new());
            client.cancel().await.expect("the client closes");
        });
    }
}

#[test]
fn inspector_cli_lists_and_calls_tools() {
    let Some(node) = Node::find(&CLIENTS) else { return };
    let (backend, _runtime) = petstore_backend();
    let gate = Gate::start(&petstore(&backend));
    let url = gate.mcp_url("petstore");
    let inspector = |args: &[&str]| {
        let common =
            ["node_modules/.bin/inspector", "--cli", &url, "--transport", "http", "--format", "json"];
        // Never start an interactive OAuth login: there is no one to complete it.
        node.run(&[&common[..], args, &["--stored-auth-only"]].concat())
    };

    let run = inspector(&["--method", "tools/list"]);
    assert_eq!(run.code, Some(0), "{run}");
    let tools = run.stdout_json()["result"]["tools"].as_array().cloned().expect("a tool list");
    assert_eq!(tools.len(), 19, "{run}");
    for name in ["getPetById", "findPetsByStatus"] {
        let tool =
            tools.iter().find(|it| it["name"] == name).unwrap_or_else(|| panic!("no tool {name}: {run}"));
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        assert_eq!(tool["annotations"]["readOnlyHint"], true, "{tool}");
    }

    let run = inspector(&["--method", "tools/call", "--tool-name", "getPetById", "--tool-arg", "petId=7"]);
    assert_eq!(run.code, Some(0), "{run}");
    let result = &run.stdout_json()["result"];
    assert_eq!(result["isError"], false, "{run}");
    assert_eq!(result["structuredContent"], pet(7), "{run}");
    assert_eq!(backend.take_lines(), ["GET /api/v3/pet/7"]);

    // Exit status 5: the tool does not exist, or its result is an error.
    let run = inspector(&["--method", "tools/call", "--tool-name", "noSuchTool"]);
    assert_eq!(run.code, Some(5), "{run}");
    assert!(run.stderr.contains("noSuchTool"), "{run}");
    let run = inspector(&[
        "--method",
        "tools/call",
        "--tool-name",
        "getPetById",
        "--tool-args-json",
        r#"{"petId":"x"}"#,
    ]);
    assert_eq!(run.code, Some(5), "{run}");
    assert_eq!(run.stdout_json()["result"]["isError"], true, "{run}");
    assert_eq!(backend.take_lines(), Vec::<String>::new());
}

#[test]
fn clients_page_through_a_long_tool_list() {
    let Some(node) = Node::find(&CLIENTS) else { return };
    let (_dir, many) = many_tools();
    let gate = Gate::start(&many);
    let url = gate.mcp_url("many");
    let expected = many_names();

    let run = node.run(&["sdk-client.mjs", &url]);
    assert_eq!(run.code, Some(0), "{run}");
    let summary = run.stdout_json();
    assert_eq!(summary["pages"], 3, "{run}");
    assert_eq!(strings(&summary["tools"]), expected);

    let args =
        ["node_modules/.bin/inspector", "--cli", &url, "--transport", "http", "--method", "tools/list"];
    let run = node.run(&[&args[..], &["--format", "json", "--stored-auth-only"]].concat());
    assert_eq!(run.code, Some(0), "{run}");
    let names: Vec<String> = run.stdout_json()["result"]["tools"]
        .as_array()
        .expect("a tool list")
        .iter()
        .map(|it| it["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, expected);
}

#[test]
fn python_sdk_pages_through_a_long_tool_list() {
    let Some(python) = Python::find() else { return };
    let (_dir, many) = many_tools();
    let gate = Gate::start(&many);
    let url = gate.mcp_url("many");

    for mode in ["--mode=legacy", "--mode=auto"] {
        let run = python.run(&["sdk_client.py", mode, &url]);
        assert_eq!(run.code, Some(0), "{run}");
        let summary = run.stdout_json();
        assert_eq!(summary["pages"], 3, "{run}");
        assert_eq!(strings(&summary["tools"]), many_names(), "{run}");
    }
}

/// A server of 250 operations, three pages of `tools/list`: its `[[servers]]` table, whose
/// document is in the folder returned with it.
fn many_tools() -> (TempDir, String) {
    let dir = TempDir::new().unwrap();
    let paths: serde_json::Map<String, Value> = (0..250)
        .map(|i| {
            let op =
                json!({"operationId": format!("item{i:03}"), "responses": {"204": {"description": "none"}}});
            (format!("/items/{i}"), json!({"get": op}))
        })
        .collect();
    let document = json!({"openapi": "3.1.0", "info": {"title": "Many", "version": "1"}, "paths": paths});
    let spec = dir.path().join("many.json");
    std::fs::write(&spec, document.to_string()).unwrap();
    let table = server_toml("many", &spec, "http://127.0.0.1:9/");
    (dir, table)
}

/// The tools of [`many_tools`], in their order.
fn many_names() -> Vec<String> {
    (0..250).map(|i| format!("item{i:03}")).collect()
}

/// The conformance suite's active scenarios. Those in `conformance-baseline.yml` need fixtures a
/// converted API cannot have (`test_*` tools, resources, prompts...); each of them must fail only
/// for that reason, and every other scenario must pass with at least one successful check.
#[test]
fn conformance_suite_passes_but_for_fixture_scenarios() {
    let Some(node) = Node::find(&CLIENTS) else { return };
    let (backend, _runtime) = petstore_backend();
    let gate = Gate::start(&petstore(&backend));
    let out = TempDir::new().unwrap();
    let out_dir = out.path().to_str().unwrap();
    let baseline_path = Path::new(NODE_DIR).join("conformance-baseline.yml");
    let run = node.run(&[
        "node_modules/.bin/conformance",
        "server",
        "--url",
        &gate.mcp_url("petstore"),
        "--expected-failures",
        baseline_path.to_str().unwrap(),
        "-o",
        out_dir,
    ]);
    assert_eq!(run.code, Some(0), "{run}");

    #[derive(Deserialize)]
    struct Baseline {
        server: Vec<String>,
    }
    let baseline: Baseline =
        serde_saphyr::from_str(&std::fs::read_to_string(&baseline_path).unwrap()).expect("baseline YAML");
    let results = conformance_results(out.path());
    assert!(results.len() >= 25, "only {} scenarios ran: {run}", results.len());
    let mut problems = Vec::new();
    for (scenario, checks) in &results {
        let status = |it: &Value| it["status"].as_str().unwrap_or_default().to_owned();
        if baseline.server.contains(scenario) {
            for check in checks.iter().filter(|it| ["FAILURE", "WARNING"].contains(&status(it).as_str())) {
                let message = check["errorMessage"].as_str().unwrap_or_default();
                let fixture = message.contains("MCP error -32601:") // method not found
                    || message.contains("MCP error -32602: unknown tool test_");
                if !fixture {
                    problems.push(format!("{scenario}: unexpected {}: {check}", status(check)));
                }
            }
        } else if !checks.iter().any(|it| status(it) == "SUCCESS") {
            problems.push(format!("{scenario}: passed without a successful check: {checks:?}"));
        }
    }
    assert!(problems.is_empty(), "{}\n{run}", problems.join("\n"));
    for scenario in ["server-initialize", "ping", "tools-list", "dns-rebinding-protection"] {
        assert!(results.iter().any(|(it, _)| it == scenario), "{scenario} did not run: {run}");
    }
}

/// Every document of the real-world corpus, hosted at once: the TypeScript SDK lists each one's
/// tools (compiling every output schema with Ajv, as SDK clients do), and Inspector's `--strict`
/// finds no schema problem of error severity.
#[test]
fn clients_list_every_corpus_document() {
    let Some(node) = Node::find(&CLIENTS) else { return };
    let Some(corpus) = corpus_dir() else { return };
    let entries = manifest(&corpus);
    assert!(entries.len() >= 10, "the manifest lists only {} documents", entries.len());
    let servers: String = entries
        .iter()
        .map(|(number, file)| server_toml(&format!("doc{number}"), &corpus.join(file), "http://127.0.0.1:9/"))
        .collect();
    let gate = Gate::start(&servers);
    let mut failures = Vec::new();
    for (number, file) in &entries {
        let url = gate.mcp_url(&format!("doc{number}"));
        let run = node.run(&["sdk-client.mjs", &url]);
        if run.code != Some(0) {
            let reason = run.stderr.lines().find(|it| it.starts_with("sdk-client:")).unwrap_or(&run.stderr);
            failures.push(format!("{file}: TypeScript SDK: {reason}"));
            continue;
        }
        let names = strings(&run.stdout_json()["tools"]);
        let unique: std::collections::BTreeSet<&String> = names.iter().collect();
        if unique.len() != names.len() {
            failures.push(format!("{file}: tool names repeat across pages"));
        }
        let args =
            ["node_modules/.bin/inspector", "--cli", &url, "--transport", "http", "--method", "tools/list"];
        let run = node.run(&[&args[..], &["--format", "json", "--stored-auth-only", "--strict"]].concat());
        if run.code != Some(0) {
            let errors: Vec<&str> = run.stderr.lines().filter(|it| it.starts_with("Error")).take(5).collect();
            failures.push(format!("{file}: Inspector --strict exits {:?}: {errors:?}", run.code));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} documents:\n{}",
        failures.len(),
        entries.len(),
        failures.join("\n")
    );
}

fn server_toml(slug: &str, spec: &Path, backend_url: &str) -> String {
    format!(
        "[[servers]]\nslug = \"{slug}\"\nspec = {}\nbackend_url = \"{backend_url}\"\n\n",
        toml_string(spec)
    )
}

fn petstore(backend: &Backend) -> String {
    server_toml("petstore", Path::new(PETSTORE), &format!("{}/api/v3", backend.url))
}

/// The petstore's recording backend, on a runtime of its own (these tests have none).
fn petstore_backend() -> (Backend, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    (runtime.block_on(Backend::start(answer)), runtime)
}

/// How the petstore's backend answers: `GET /api/v3/pet/{id}` and `GET
/// /api/v3/pet/findByStatus`, 404 to anything else.
async fn answer(seen: Seen) -> Response {
    let (get, path) = (seen.method == "GET", seen.path());
    if get && path == "/api/v3/pet/findByStatus" {
        return Json(json!([pet(1), pet(2)])).into_response();
    }
    let id = path.strip_prefix("/api/v3/pet/").and_then(|it| it.parse::<i64>().ok());
    match id {
        Some(id) if get => Json(pet(id)).into_response(),
        _ => (StatusCode::NOT_FOUND, Json(json!({"code": 404, "message": "not found"}))).into_response(),
    }
}

fn pet(id: i64) -> Value {
    json!({
        "id": id,
        "name": format!("pet {id}"),
        "category": {"id": 1, "name": "Dogs"},
        "photoUrls": [format!("https://example.com/pets/{id}.png")],
        "tags": [{"id": 1, "name": "good"}],
        "status": "available"
    })
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().expect("an array").iter().map(|it| it.as_str().expect("a string").to_owned()).collect()
}

/// `(scenario, checks)` from the conformance runner's output folder: one
/// `server-{scenario}-{timestamp}/checks.json` per scenario.
fn conformance_results(dir: &Path) -> Vec<(String, Vec<Value>)> {
    let mut results: Vec<(String, Vec<Value>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            // The timestamp `2026-11-25T00-12-52-625Z` holds five dashes.
            let scenario = name.strip_prefix("server-").and_then(|it| it.rsplitn(7, '-').nth(6));
            let scenario = scenario.unwrap_or_else(|| panic!("unexpected result folder {name}")).to_owned();
            let text = std::fs::read_to_string(entry.path().join("checks.json")).unwrap();
            (scenario, serde_json::from_str(&text).unwrap())
        })
        .collect();
    results.sort_by(|a, b| a.0.cmp(&b.0));
    results
}

/// `(number, entry file)` of each document in the manifest's first table.
fn manifest(dir: &Path) -> Vec<(u32, String)> {
    let text = std::fs::read_to_string(dir.join("MANIFEST.md")).expect("MANIFEST.md is readable");
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let number = cells.get(1)?.parse().ok()?;
            Some((number, cells.get(2)?.trim_matches('`').to_owned()))
        })
        .collect()
}
