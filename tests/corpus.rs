//! Converts every document of the shared OpenAPI corpus and checks what every client relies on:
//! no document fails, every declared operation is a tool or a skip with a reason, every schema
//! is valid JSON Schema 2020-12 that compiles, and tool names are unique and valid.
//!
//! The corpus lives outside the repository (`../shared/openapi-corpus`, or `MCPGATE_CORPUS`);
//! its `MANIFEST.md` is the independent record of how many operations each document declares.
//! CI sets `MCPGATE_REQUIRE_CORPUS=1` so that a missing corpus fails instead of skipping.

// The corpus location is a test fixture path, not configuration.
#![allow(clippy::disallowed_methods)]

use std::path::Path;

#[path = "support/corpus.rs"]
mod corpus;
use corpus::corpus_dir;

use mcpgate::source::{self, Limits};
use mcpgate::tools::{self, Options};
use serde_json::Value;

/// `(entry file, declared operations)` from the manifest's first table.
fn manifest(dir: &Path) -> Vec<(String, usize)> {
    let text = std::fs::read_to_string(dir.join("MANIFEST.md")).expect("MANIFEST.md is readable");
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | # | file | version | fmt | size | ops | ...
            let number = cells.get(1)?;
            if number.parse::<u32>().is_err() {
                return None;
            }
            let file = cells.get(2)?.trim_matches('`').to_owned();
            let ops = cells.get(6)?.parse().ok()?;
            Some((file, ops))
        })
        .collect()
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn check_schema(label: &str, schema: &Value, failures: &mut Vec<String>) {
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        failures.push(format!("{label}: root is not `type: object`"));
    }
    if let Err(err) = jsonschema::draft202012::meta::validate(schema) {
        failures.push(format!("{label}: not valid against the 2020-12 meta-schema: {err}"));
    }
    if let Err(err) = jsonschema::draft202012::new(schema) {
        failures.push(format!("{label}: does not compile: {err}"));
    }
}

#[test]
fn every_corpus_document_converts_to_valid_tools() {
    let Some(dir) = corpus_dir() else { return };
    let entries = manifest(&dir);
    assert!(entries.len() >= 10, "the manifest lists only {} documents", entries.len());
    let mut failures = Vec::new();
    for (file, declared) in &entries {
        let path = dir.join(file);
        // Multi-file documents may reference siblings of their entry's folder.
        let root = file.split_once('/').map(|(top, _)| dir.join(top));
        let limits = Limits { root, ..Limits::default() };
        let spec = match source::load_file(&path, &limits) {
            Ok(loaded) => loaded.spec,
            Err(err) => {
                failures.push(format!("{file}: {err}"));
                continue;
            }
        };
        let generated = tools::generate(&spec, &Options::default());
        let report = &generated.report;
        if report.tools + report.skipped.len() != *declared || report.operations != *declared {
            failures.push(format!(
                "{file}: {} tools + {} skipped, {} operations read, but the document declares {declared}",
                report.tools,
                report.skipped.len(),
                report.operations
            ));
        }
        let mut names = std::collections::HashSet::new();
        for tool in &generated.tools {
            let definition =
                serde_json::to_value(mcpgate::mcp::tool_definition(tool)).expect("tools serialize");
            let label = format!("{file} {}", tool.name);
            if !valid_name(&tool.name) {
                failures.push(format!("{label}: invalid name"));
            }
            if !names.insert(tool.name.clone()) {
                failures.push(format!("{label}: duplicate name"));
            }
            if tool.description.trim().is_empty() {
                failures.push(format!("{label}: empty description"));
            }
            check_schema(&format!("{label} inputSchema"), &definition["inputSchema"], &mut failures);
            if let Some(output) = definition.get("outputSchema") {
                check_schema(&format!("{label} outputSchema"), output, &mut failures);
            }
        }
        for skipped in &report.skipped {
            if skipped.reason.is_empty() {
                failures.push(format!("{file}: {} skipped without a reason", skipped.operation));
            }
        }
        eprintln!(
            "{file}: {} tools, {} skipped, {} warnings",
            report.tools,
            report.skipped.len(),
            report.warnings.len()
        );
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}
