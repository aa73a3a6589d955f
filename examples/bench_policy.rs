//! What Cedar policies add to a tool call (`docs/benchmarks.md`): `Policies::check_call` on a
//! server of 100 tools with 100 policies (one `permit` per tool reading the caller's groups and
//! tenant and an argument, and a `forbid`), and `may_list` for one tool as `tools/list` asks it.
//! Usage: `bench_policy [CALLS]`.

use std::fmt::Write;
use std::time::{Duration, Instant, SystemTime};

use mcpgate::auth::Claims;
use mcpgate::catalog::Catalog;
use mcpgate::config::ServerSettings;
use mcpgate::policy::{Policies, PolicyConfig};
use serde_json::json;

const TOOLS: usize = 100;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls: usize = std::env::args().nth(1).and_then(|it| it.parse().ok()).unwrap_or(100_000);
    let mut document = String::from("openapi: 3.0.3\ninfo: {title: Bench, version: '1'}\npaths:\n");
    for n in 0..TOOLS {
        write!(
            document,
            "  /things{n}:\n    post:\n      operationId: op{n}\n      tags: [team{n}]\n      requestBody:\n        \
             required: true\n        content:\n          application/json:\n            schema:\n              \
             type: object\n              properties: {{amount: {{type: integer}}, note: {{type: string}}}}\n      \
             responses: {{'200': {{description: ok}}}}\n"
        )?;
    }
    let mut text = String::new();
    for n in 0..TOOLS - 1 {
        writeln!(
            text,
            "permit(principal, action == Action::\"call\", resource == Tool::\"op{n}\") when {{ \
             principal.groups.contains(\"team{n}\") && principal has tenant && principal.tenant == \"acme\" \
             && context.arguments has amount && context.arguments.amount < 500 }};"
        )?;
    }
    text.push_str("forbid(principal, action, resource) when { resource.tags.contains(\"frozen\") };\n");
    let settings: ServerSettings = toml::from_str("slug = 'bench'\nspec = 'bench.yaml'")?;
    let catalog = Catalog::build(&settings, mcpgate::openapi::ingest(document.as_bytes())?)?;
    let policies = Policies::build(&PolicyConfig::default(), Some(&text), &catalog.tools)?;
    let claims = Claims {
        subject: "alice".to_owned(),
        issuer: "https://idp.example".to_owned(),
        audience: vec!["mcp".to_owned()],
        scopes: ["things:write".to_owned()].into(),
        expires_at: SystemTime::now() + Duration::from_secs(3600),
        client_id: Some("agent".to_owned()),
        raw: json!({"groups": ["team50", "staff"], "tenant": "acme"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    let tool = catalog.tool("op50").ok_or("no tool op50")?;
    let arguments = json!({"amount": 120, "note": "refund"}).as_object().cloned().unwrap_or_default();
    assert!(policies.check_call(Some(&claims), tool, &arguments).is_ok());

    let started = Instant::now();
    for _ in 0..calls {
        std::hint::black_box(policies.check_call(Some(&claims), tool, &arguments).is_ok());
    }
    let per_call = started.elapsed() / u32::try_from(calls)?;
    let started = Instant::now();
    let lists = calls / 10;
    for _ in 0..lists {
        std::hint::black_box(policies.may_list(Some(&claims), tool));
    }
    let per_list = started.elapsed() / u32::try_from(lists)?;
    println!("{TOOLS} tools, {} policies", TOOLS);
    println!("check_call: {per_call:?} per call ({calls} calls)");
    println!("may_list: {per_list:?} per tool ({lists} tools)");
    Ok(())
}
