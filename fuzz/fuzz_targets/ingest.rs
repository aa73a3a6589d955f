//! Fuzz target: arbitrary bytes through the whole conversion, `openapi::ingest` then
//! `tools::generate` then `mcp::tool_definition`, checking the invariants every MCP client
//! relies on. A panic, an abort (stack overflow) or a failed assertion is a finding.

#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use mcpgate::{mcp, openapi, tools};
use serde_json::{Map, Value};

fuzz_target!(|bytes: &[u8]| {
    // Refusing a document is fine; only what is accepted must convert correctly.
    let Ok(spec) = openapi::ingest(bytes) else { return };
    let generated = tools::generate(&spec, &tools::Options::default());
    let report = &generated.report;
    assert_eq!(report.tools + report.skipped.len(), report.operations);
    let mut names = HashSet::new();
    for tool in &generated.tools {
        assert!(valid_name(&tool.name), "invalid tool name {:?}", tool.name);
        assert!(names.insert(tool.name.as_str()), "duplicate tool name {:?}", tool.name);
        assert_eq!(tool.input_schema.get("type").and_then(Value::as_str), Some("object"));
        check_refs(&tool.input_schema);
        if let Some(output) = &tool.output_schema {
            assert_eq!(output.get("type").and_then(Value::as_str), Some("object"));
            check_refs(output);
        }
        serde_json::to_vec(&mcp::tool_definition(tool)).expect("a tool definition serializes");
    }
    serde_json::to_vec(report).expect("the report serializes");
});

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Every `$ref` in a schema position is `#/$defs/NAME` with NAME a key of the root's `$defs`;
/// data keywords (`enum`, `const`, `default`, `examples`) are not walked.
fn check_refs(schema: &Map<String, Value>) {
    let defs = schema.get("$defs").and_then(Value::as_object);
    let mut stack = vec![schema];
    while let Some(map) = stack.pop() {
        if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
            let name = reference.strip_prefix("#/$defs/");
            let found = name.is_some_and(|name| defs.is_some_and(|defs| defs.contains_key(name)));
            assert!(found, "`$ref` {reference:?} does not name a key of the tool's `$defs`");
        }
        for (key, value) in map {
            match (key.as_str(), value) {
                ("properties" | "patternProperties" | "dependentSchemas" | "$defs", Value::Object(it)) => {
                    stack.extend(it.values().filter_map(Value::as_object));
                }
                ("allOf" | "anyOf" | "oneOf" | "prefixItems" | "items", Value::Array(it)) => {
                    stack.extend(it.iter().filter_map(Value::as_object));
                }
                (
                    "items"
                    | "additionalProperties"
                    | "unevaluatedProperties"
                    | "unevaluatedItems"
                    | "propertyNames"
                    | "contains"
                    | "not"
                    | "if"
                    | "then"
                    | "else"
                    | "contentSchema",
                    Value::Object(it),
                ) => stack.push(it),
                _ => {}
            }
        }
    }
}
