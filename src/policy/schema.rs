//! The Cedar schema of one hosted server, generated from its tools: the principal `Caller` (the
//! token's claims), the resource `Tool` (name, method, path, tags, annotations), the actions
//! `call` and `list`, and a context holding the time and the call's arguments, typed from the
//! tools' input schemas.
//!
//! Arguments are one record for all the server's tools, each attribute optional (a tool may not
//! have it): policies test `context.arguments has amount` before reading it. An argument whose
//! type Cedar cannot hold without extensions (a fractional number, an object) or whose type
//! differs between tools is not in the record, so no policy can read it.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::catalog::Tool;

/// The Cedar type of a claim or an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    String,
    /// A set of strings (an array of strings; a lone string is a set of one).
    Strings,
    Long,
    /// A set of integers.
    Longs,
    Bool,
}

/// The argument names policies may read, with their type, over all of `tools`.
pub(super) fn argument_kinds(tools: &[Tool]) -> BTreeMap<String, Kind> {
    let mut kinds: BTreeMap<String, Option<Kind>> = BTreeMap::new();
    for tool in tools {
        let Some(Value::Object(properties)) = tool.spec.input_schema.get("properties") else { continue };
        for (name, schema) in properties {
            let kind = kind_of(schema);
            kinds
                .entry(name.clone())
                .and_modify(|it| {
                    // Two tools that disagree: neither can be read, rather than one wrongly.
                    if *it != kind {
                        *it = None;
                    }
                })
                .or_insert(kind);
        }
    }
    kinds.into_iter().filter_map(|(name, kind)| Some((name, kind?))).collect()
}

/// The Cedar type a JSON Schema's values fit, if they all fit one.
fn kind_of(schema: &Value) -> Option<Kind> {
    match single_type(schema)? {
        "string" => Some(Kind::String),
        "integer" => Some(Kind::Long),
        "boolean" => Some(Kind::Bool),
        "array" => match schema.get("items").and_then(single_type)? {
            "string" => Some(Kind::Strings),
            "integer" => Some(Kind::Longs),
            _ => None,
        },
        _ => None,
    }
}

/// The schema's `type`, when it names one type (besides `null`, which leaves the argument out).
fn single_type(schema: &Value) -> Option<&str> {
    match schema.get("type")? {
        Value::String(it) => Some(it),
        Value::Array(items) => {
            let mut named = items.iter().filter_map(Value::as_str).filter(|it| *it != "null");
            let first = named.next()?;
            named.next().is_none().then_some(first)
        }
        _ => None,
    }
}

/// The schema in Cedar's JSON schema format.
pub(super) fn generate(arguments: &BTreeMap<String, Kind>, claims: &BTreeMap<String, Kind>) -> Value {
    let strings = json!({"type": "Set", "element": {"type": "String"}});
    let string = json!({"type": "String"});
    let boolean = json!({"type": "Boolean"});
    let optional = |kind: &Kind| {
        let mut it = cedar_type(*kind);
        it["required"] = Value::Bool(false);
        it
    };
    let claim_attributes: Map<String, Value> =
        claims.iter().map(|(name, kind)| (name.clone(), optional(kind))).collect();
    let argument_attributes: Map<String, Value> =
        arguments.iter().map(|(name, kind)| (name.clone(), optional(kind))).collect();
    let caller = json!({
        "subject": string,
        "issuer": string,
        "client_id": {"type": "String", "required": false},
        "scopes": strings,
        "groups": strings,
        "roles": strings,
        "tenant": {"type": "String", "required": false},
        "claims": {"type": "Record", "attributes": claim_attributes},
    });
    let tool = json!({
        "name": string,
        "method": string,
        "path": string,
        "tags": strings,
        "read_only": boolean,
        "destructive": boolean,
        "idempotent": boolean,
        "open_world": boolean,
    });
    let context = json!({
        "type": "Record",
        "attributes": {
            "time": {"type": "Long"},
            "arguments": {"type": "Record", "attributes": argument_attributes},
        },
    });
    let applies = json!({"principalTypes": ["Caller"], "resourceTypes": ["Tool"], "context": context});
    json!({
        "": {
            "entityTypes": {
                "Caller": {"shape": {"type": "Record", "attributes": caller}},
                "Tool": {"shape": {"type": "Record", "attributes": tool}},
            },
            "actions": {
                "call": {"appliesTo": applies},
                "list": {"appliesTo": applies},
            },
        }
    })
}

fn cedar_type(kind: Kind) -> Value {
    match kind {
        Kind::String => json!({"type": "String"}),
        Kind::Strings => json!({"type": "Set", "element": {"type": "String"}}),
        Kind::Long => json!({"type": "Long"}),
        Kind::Longs => json!({"type": "Set", "element": {"type": "Long"}}),
        Kind::Bool => json!({"type": "Boolean"}),
    }
}
