//! The default context budget over the corpus: lean tools without losing a required argument.
//! GitHub's ten everyday issue tools fit in 15,000 tokens together, and no tool of the corpus
//! has an input or output schema over its budget (with a margin for what must be kept: the
//! required arguments).

// The corpus location is a test fixture path, not configuration.
#![allow(clippy::disallowed_methods)]

#[path = "support/corpus.rs"]
mod corpus;

use std::collections::BTreeSet;

use corpus::corpus_dir;
use mcpgate::catalog;
use mcpgate::config::{LEAN_BUDGET, ServerSettings};
use mcpgate::source::{self, Limits};
use mcpgate::tools::{self, Options};
use serde_json::{Map, Value};

const ISSUE_TOOLS: [&str; 10] = [
    "issues/list-for-repo",
    "issues/create",
    "issues/get",
    "issues/update",
    "issues/list-comments",
    "issues/create-comment",
    "issues/add-labels",
    "issues/add-assignees",
    "issues/lock",
    "issues/list-for-authenticated-user",
];

fn settings() -> ServerSettings {
    toml::from_str("slug = 'api'\nspec = 'api.json'").expect("valid settings")
}

fn tokens(schema: &Map<String, Value>) -> usize {
    serde_json::to_string(schema).map_or(0, |it| it.len()).div_ceil(4)
}

/// Required properties of a schema's root, whatever the options.
fn required(schema: &Map<String, Value>) -> BTreeSet<String> {
    let names = schema.get("required").and_then(Value::as_array).into_iter().flatten();
    names.filter_map(Value::as_str).map(str::to_owned).collect()
}

#[test]
fn github_issue_tools_are_lean_and_keep_their_required_arguments() {
    let Some(dir) = corpus_dir() else { return };
    let spec = source::load_file(&dir.join("github-api.json"), &Limits::default()).expect("loads").spec;
    let lean = tools::generate(&spec, &catalog::options(&settings()));
    let full = tools::generate(&spec, &Options::default());
    let pick = |generated: &tools::Generated| -> Vec<(String, usize, BTreeSet<String>)> {
        let mut picked: Vec<_> = generated
            .tools
            .iter()
            .filter(|it| {
                spec.operations[it.operation]
                    .operation_id
                    .as_deref()
                    .is_some_and(|id| ISSUE_TOOLS.contains(&id))
            })
            .map(|it| (it.name.clone(), it.tokens, required(&it.input_schema)))
            .collect();
        picked.sort();
        picked
    };
    let (lean, full) = (pick(&lean), pick(&full));
    assert_eq!(lean.len(), 10);
    let total: usize = lean.iter().map(|it| it.1).sum();
    let before: usize = full.iter().map(|it| it.1).sum();
    eprintln!("GitHub's ten issue tools: {total} tokens with the default budget, {before} without");
    for ((name, tokens, required), (_, full_tokens, full_required)) in lean.iter().zip(&full) {
        eprintln!("  {name}: {tokens} (was {full_tokens})");
        assert_eq!(required, full_required, "{name} lost a required argument");
    }
    assert!(total <= 15_000, "{total} tokens");
}

#[test]
fn no_corpus_tool_is_over_its_budget() {
    let Some(dir) = corpus_dir() else { return };
    let options = catalog::options(&settings());
    let (input_budget, output_budget) =
        (LEAN_BUDGET.max_schema_tokens as usize, LEAN_BUDGET.max_output_schema_tokens as usize);
    let mut over = Vec::new();
    let mut largest = (0, String::new());
    for file in [
        "github-api.json",
        "stripe-spec3.yaml",
        "slack-web-v2.json",
        "twilio-api-v2010.yaml",
        "apisguru-kubernetes.json",
    ] {
        let spec = source::load_file(&dir.join(file), &Limits::default()).expect("loads").spec;
        for tool in tools::generate(&spec, &options).tools {
            let (input, output) =
                (tokens(&tool.input_schema), tool.output_schema.as_deref().map_or(0, tokens));
            if tool.tokens > largest.0 {
                largest = (tool.tokens, format!("{file}: {}", tool.name));
            }
            // A schema stops growing once over its budget: the last reference written out may
            // take it past by about that reference's size, bounded here at half the budget.
            if input > input_budget * 3 / 2 || output > output_budget * 3 / 2 {
                over.push(format!("{file}: {} input {input}, output {output}", tool.name));
            }
        }
    }
    eprintln!("largest tool with the default budget: {} tokens ({})", largest.0, largest.1);
    assert!(over.is_empty(), "{} tools over budget:\n{}", over.len(), over.join("\n"));
}
