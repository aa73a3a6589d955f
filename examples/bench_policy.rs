//! What Cedar policies add to a tool call (`docs/benchmarks.md`): `Policies::check_call` on a
//! server of 100 tools with 100 policies (one `permit` per tool reading the caller's groups and
//! tenant and an argument, and a `forbid`), and `may_list` for one tool as a new caller's
//! `tools/list` asks it; then a whole `tools/list` filtered on GitHub's document (1,223 tools) with
//! 100 policies, most of which apply to every tool (one `permit` per tag, `forbid`s on arguments):
//! a caller's first listing, which decides each tool, and its next, which finds the decisions.
//! Usage: `bench_policy [CALLS] [GITHUB_DOCUMENT]` (the document defaults to the shared corpus
//! beside the checkout; without it that case is skipped).

use std::fmt::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mcpgate::auth::Claims;
use mcpgate::catalog::Catalog;
use mcpgate::config::ServerSettings;
use mcpgate::policy::{Policies, PolicyConfig};
use serde_json::json;

const TOOLS: usize = 100;

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), Failure> {
    let calls: usize = std::env::args().nth(1).and_then(|it| it.parse().ok()).unwrap_or(100_000);
    let github = std::env::args().nth(2).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/openapi-corpus/github-api.json"),
        PathBuf::from,
    );
    one_tool(calls)?;
    if github.is_file() {
        listing(&github, (calls / 1_000).max(10))?;
    } else {
        println!("no GitHub document at {}: listing skipped", github.display());
    }
    Ok(())
}

fn claims(subject: &str, groups: &[&str]) -> Arc<Claims> {
    Arc::new(Claims {
        subject: subject.to_owned(),
        issuer: "https://idp.example".to_owned(),
        audience: vec!["mcp".to_owned()],
        scopes: ["things:write".to_owned()].into(),
        expires_at: SystemTime::now() + Duration::from_secs(3600),
        client_id: Some("agent".to_owned()),
        raw: json!({"groups": groups, "tenant": "acme"}).as_object().cloned().unwrap_or_default(),
    })
}

fn one_tool(calls: usize) -> Result<(), Failure> {
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
    let claims = claims("alice", &["team50", "staff"]);
    let tool = catalog.tool("op50").ok_or("no tool op50")?;
    let arguments = json!({"amount": 120, "note": "refund"}).as_object().cloned().unwrap_or_default();
    assert!(policies.check_call(Some(&claims), tool, &arguments).is_ok());

    let started = Instant::now();
    for _ in 0..calls {
        std::hint::black_box(policies.check_call(Some(&claims), tool, &arguments).is_ok());
    }
    let per_call = started.elapsed() / u32::try_from(calls)?;
    // Each listing asks for a caller of its own: a caller's decisions are kept for its next pages.
    let callers: Vec<_> =
        (0..calls / 10).map(|n| self::claims(&format!("user{n}"), &["team50", "staff"])).collect();
    let lists = callers.len();
    let started = Instant::now();
    for caller in &callers {
        std::hint::black_box(policies.may_list(Some(caller), tool));
    }
    let per_list = started.elapsed() / u32::try_from(lists)?;
    println!("{TOOLS} tools, {TOOLS} policies");
    println!("check_call: {per_call:?} per call ({calls} calls)");
    println!("may_list, a new caller: {per_list:?} per tool ({lists} callers)");
    Ok(())
}

fn listing(github: &std::path::Path, listings: usize) -> Result<(), Failure> {
    let document = std::fs::read(github)?;
    let settings: ServerSettings = toml::from_str("slug = 'github'\nspec = 'github-api.json'")?;
    let catalog = Catalog::build(&settings, mcpgate::openapi::ingest(&document)?)?;
    let mut tags: Vec<&str> =
        catalog.tools.iter().flat_map(|it| it.tags.iter().map(String::as_str)).collect();
    tags.sort_unstable();
    tags.dedup();
    let mut text = String::new();
    let mut policies = 0;
    for tag in &tags {
        writeln!(
            text,
            "permit(principal, action == Action::\"call\", resource) when {{ resource.tags.contains(\"{tag}\") \
             && principal.groups.contains(\"gh-{tag}\") }};"
        )?;
        policies += 1;
    }
    text.push_str(
        "permit(principal, action == Action::\"call\", resource) when { resource.read_only && \
         principal.groups.contains(\"readers\") };\n\
         forbid(principal, action, resource) unless { principal has tenant && principal.tenant == \"acme\" };\n",
    );
    policies += 2;
    // The rest name one tool each and read an argument, as a rule about one operation does.
    let with_owner: Vec<&str> = catalog
        .tools
        .iter()
        .filter(|it| it.spec.input_schema.get("properties").and_then(|it| it.get("owner")).is_some())
        .map(|it| it.spec.name.as_str())
        .collect();
    let step = (with_owner.len() / (100 - policies)).max(1);
    for name in with_owner.iter().step_by(step).take(100 - policies) {
        writeln!(
            text,
            "forbid(principal, action == Action::\"call\", resource == Tool::\"{name}\") when {{ \
             context.arguments has owner && context.arguments.owner == \"secret-org\" \
             && !principal.groups.contains(\"admins\") }};"
        )?;
        policies += 1;
    }
    let built = Instant::now();
    let policies_built = Policies::build(&PolicyConfig::default(), Some(&text), &catalog.tools)?;
    let build_time = built.elapsed();
    let groups = ["gh-repos", "gh-issues", "gh-pulls", "readers"];
    let shown = |caller: &Arc<Claims>| {
        catalog.tools.iter().filter(|tool| policies_built.may_list(Some(caller), tool)).count()
    };
    // A caller's first listing decides each tool; its later pages find the decisions.
    let started = Instant::now();
    let mut listed = 0;
    for n in 0..listings {
        listed = std::hint::black_box(shown(&claims(&format!("user{n}"), &groups)));
    }
    let first = started.elapsed() / u32::try_from(listings)?;
    let caller = claims("alice", &groups);
    shown(&caller);
    let started = Instant::now();
    for _ in 0..listings * 100 {
        std::hint::black_box(shown(&caller));
    }
    let again = started.elapsed() / u32::try_from(listings * 100)?;
    println!(
        "GitHub: {} tools, {policies} policies ({} tags), built and validated in {build_time:?}",
        catalog.tools.len(),
        tags.len()
    );
    println!(
        "tools/list filtering, a caller's first listing: {first:?}, {listed} tools shown ({listings} callers)"
    );
    println!("tools/list filtering, the same caller again: {again:?} per listing");
    Ok(())
}
