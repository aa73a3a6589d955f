//! The invariants every generated tool keeps, whatever document it came from: shared by the
//! property tests (`tests/robustness.rs`) and the fuzz target (`fuzz/`), which include this file.

use std::collections::HashSet;

use mcpgate::{mcp, openapi, tools};
use serde_json::{Map, Value, json};

/// Generates the tools of `spec` and checks their structure: counts add up, names are unique and
/// valid, schema roots are objects and every `$ref` resolves within the tool. Returns the tool
/// definitions as clients see them.
#[track_caller]
pub fn check_structure(spec: &openapi::Spec) -> Vec<(String, Value)> {
    let generated = tools::generate(spec, &tools::Options::default());
    let report = &generated.report;
    assert_eq!(report.tools + report.skipped.len(), report.operations, "tools + skipped != operations");
    assert_eq!(report.tools, generated.tools.len());
    let mut names = HashSet::new();
    let mut definitions = Vec::new();
    for tool in &generated.tools {
        assert!(valid_name(&tool.name), "invalid tool name {:?}", tool.name);
        assert!(names.insert(tool.name.as_str()), "duplicate tool name {:?}", tool.name);
        assert_eq!(tool.input_schema.get("type"), Some(&json!("object")), "{}: input root", tool.name);
        check_refs(&tool.name, &tool.input_schema);
        if let Some(output) = &tool.output_schema {
            // MCP requires an object root for `outputSchema` as well.
            assert_eq!(output.get("type"), Some(&json!("object")), "{}: output root", tool.name);
            check_refs(&tool.name, output);
        }
        let definition = serde_json::to_value(mcp::tool_definition(tool)).expect("a tool serializes");
        assert_eq!(definition["name"], json!(tool.name));
        assert_eq!(definition["inputSchema"], Value::Object((*tool.input_schema).clone()));
        definitions.push((tool.name.clone(), definition));
    }
    // The report is an output format (CLI `--json`) and must serialize too.
    serde_json::to_string(report).expect("the report serializes");
    definitions
}

pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Every `$ref` in a schema position names a key of the root's `$defs`. Keywords whose values
/// are data (`enum`, `const`, `default`, `examples`) are not walked: a `$ref` there is not a
/// reference.
#[track_caller]
pub fn check_refs(tool: &str, schema: &Map<String, Value>) {
    let defs = schema.get("$defs").and_then(Value::as_object);
    let mut stack: Vec<&Map<String, Value>> = vec![schema];
    while let Some(map) = stack.pop() {
        if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
            let name = reference.strip_prefix("#/$defs/");
            assert!(name.is_some(), "{tool}: `$ref` {reference:?} is not into the tool's own `$defs`");
            let found = name.is_some_and(|name| defs.is_some_and(|defs| defs.contains_key(name)));
            assert!(found, "{tool}: `$ref` {reference:?} names no key of `$defs`");
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
