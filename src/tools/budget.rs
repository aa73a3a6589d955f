//! Trimming a finished schema to a context budget: the optional properties of objects nested
//! deeper than a depth are left out, required ones never, and the `$defs` nothing refers to any
//! longer go with them. The arguments themselves (depth 0) are always kept.
//!
//! Walks are depth-bounded ([`MAX_DEPTH`]): beyond it a schema is left as it is.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Deeper than this, nothing is trimmed (lowered schemas are far shallower).
const MAX_DEPTH: usize = 64;

/// Leaves out of `schema` the optional properties of objects nested deeper than `depth` (the
/// arguments are at depth 0, their properties at 1, ...). Schemas kept in `$defs` count as
/// nested deeper than `depth`: references are what the lowering did not write out because they
/// were far. Returns how many properties were left out.
pub fn prune_optional(schema: &mut Map<String, Value>, depth: usize) -> usize {
    let mut removed = 0;
    if let Some(Value::Object(defs)) = schema.get_mut("$defs") {
        for def in defs.values_mut() {
            walk(def, depth + 1, depth, 0, &mut removed);
        }
    }
    for (key, value) in schema.iter_mut() {
        if key != "$defs" {
            walk_keyword(key, value, 0, depth, 0, &mut removed);
        }
    }
    prune_properties(schema, 0, depth, &mut removed);
    drop_unreferenced_defs(schema);
    removed
}

/// Makes `schema` fit about `tokens` tokens, in steps that each lose more: nested optional
/// properties are left out (depth 0), then the descriptions below the root's own properties,
/// then, for an output schema (`Keep::RootShape`), everything below the root's properties, and
/// those too when they are hundreds.
/// Required arguments are never left out: an input schema may stay over its budget.
pub fn fit(schema: &mut Map<String, Value>, tokens: usize, keep: Keep) {
    if size(schema) <= tokens {
        return;
    }
    prune_optional(schema, 0);
    if size(schema) <= tokens {
        return;
    }
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        for property in properties.values_mut() {
            strip_descriptions(property, 0);
        }
    }
    if let Some(Value::Object(defs)) = schema.get_mut("$defs") {
        for def in defs.values_mut() {
            strip_descriptions(def, 0);
        }
    }
    if size(schema) <= tokens || keep == Keep::Arguments {
        return;
    }
    // An output schema only describes: its root's properties, each any value, still tell the
    // model what comes back.
    schema.remove("$defs");
    for key in ["allOf", "anyOf", "oneOf"] {
        schema.remove(key);
    }
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        for property in properties.values_mut() {
            *property = Value::Object(Map::new());
        }
    }
    // Hundreds of properties: the output is described as an object, no more.
    if size(schema) > tokens {
        for key in ["properties", "required", "additionalProperties", "patternProperties"] {
            schema.remove(key);
        }
    }
}

/// What [`fit`] must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Every argument with its schema (an input schema is what calls are checked against).
    Arguments,
    /// The root and the names of its properties (an output schema).
    RootShape,
}

/// About one token per four bytes of compact JSON.
fn size(schema: &Map<String, Value>) -> usize {
    serde_json::to_string(schema).map_or(0, |it| it.len()).div_ceil(4)
}

fn strip_descriptions(value: &mut Value, steps: usize) {
    if steps > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(map) => {
            map.remove("description");
            map.remove("examples");
            for (key, child) in map.iter_mut() {
                // Property names are data, not keywords: `properties.description` stays.
                if key == "properties" || key == "$defs" || key == "patternProperties" {
                    if let Value::Object(named) = child {
                        for schema in named.values_mut() {
                            strip_descriptions(schema, steps + 1);
                        }
                    }
                } else if key != "const" && key != "default" && key != "enum" {
                    strip_descriptions(child, steps + 1);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                strip_descriptions(item, steps + 1);
            }
        }
        _ => {}
    }
}

fn walk(value: &mut Value, level: usize, depth: usize, steps: usize, removed: &mut usize) {
    let Value::Object(schema) = value else { return };
    if steps > MAX_DEPTH {
        return;
    }
    prune_properties(schema, level, depth, removed);
    for (key, value) in schema.iter_mut() {
        walk_keyword(key, value, level, depth, steps + 1, removed);
    }
}

/// Into the subschemas of one keyword: a property's value is one level deeper; an array's items
/// and the branches of a combinator are at the level of the schema that holds them.
fn walk_keyword(key: &str, value: &mut Value, level: usize, depth: usize, steps: usize, removed: &mut usize) {
    match (key, value) {
        ("properties" | "patternProperties", Value::Object(properties)) => {
            for property in properties.values_mut() {
                walk(property, level + 1, depth, steps, removed);
            }
        }
        ("items" | "additionalProperties" | "not" | "contains", value @ Value::Object(_)) => {
            walk(value, level, depth, steps, removed)
        }
        ("allOf" | "anyOf" | "oneOf" | "prefixItems", Value::Array(branches)) => {
            for branch in branches {
                walk(branch, level, depth, steps, removed);
            }
        }
        _ => {}
    }
}

/// At an object deeper than `depth`, keeps only the required properties.
fn prune_properties(schema: &mut Map<String, Value>, level: usize, depth: usize, removed: &mut usize) {
    if level <= depth {
        return;
    }
    let required: BTreeSet<String> = match schema.get("required") {
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => BTreeSet::new(),
    };
    let mut pruned = false;
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        let before = properties.len();
        properties.retain(|name, _| required.contains(name));
        pruned = properties.len() < before;
        *removed += before - properties.len();
    }
    // What is left out is not forbidden: a caller that knows the property may still send it.
    if pruned && schema.get("additionalProperties") == Some(&Value::Bool(false)) {
        schema.remove("additionalProperties");
    }
}

/// Drops the `$defs` entries no reference reaches from the schema any longer.
fn drop_unreferenced_defs(schema: &mut Map<String, Value>) {
    let Some(Value::Object(defs)) = schema.get("$defs") else { return };
    let mut reached: BTreeSet<String> = BTreeSet::new();
    let mut queue: Vec<&Value> = schema.iter().filter(|(key, _)| *key != "$defs").map(|(_, it)| it).collect();
    while let Some(value) = queue.pop() {
        match value {
            Value::Object(map) => {
                if let Some(name) =
                    map.get("$ref").and_then(Value::as_str).and_then(|it| it.strip_prefix("#/$defs/"))
                {
                    let name = name.replace("~1", "/").replace("~0", "~");
                    if reached.insert(name.clone())
                        && let Some(def) = defs.get(&name)
                    {
                        queue.push(def);
                    }
                }
                queue.extend(map.values());
            }
            Value::Array(items) => queue.extend(items),
            _ => {}
        }
    }
    let keep: Vec<String> = defs.keys().filter(|it| reached.contains(*it)).cloned().collect();
    if keep.len() == defs.len() {
        return;
    }
    if keep.is_empty() {
        schema.remove("$defs");
        return;
    }
    if let Some(Value::Object(defs)) = schema.get_mut("$defs") {
        defs.retain(|name, _| keep.contains(name));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn optional_properties_deeper_than_the_depth_are_left_out() {
        let mut schema = json!({
            "type": "object",
            "required": ["owner"],
            "properties": {
                "owner": {"type": "string"},
                "labels": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string"},
                    "color": {"type": "string"},
                    "meta": {"$ref": "#/$defs/Meta"}
                }}},
                "issue": {"$ref": "#/$defs/Issue"}
            },
            "$defs": {
                "Meta": {"type": "object", "properties": {"x": {"type": "string"}}},
                "Issue": {"type": "object", "required": ["title"], "properties": {"title": {"type": "string"}, "body": {"type": "string"}}}
            }
        });
        let Value::Object(map) = &mut schema else { unreachable!() };
        assert_eq!(prune_optional(map, 0), 4);
        assert_eq!(
            schema,
            json!({
                "type": "object",
                "required": ["owner"],
                "properties": {
                    "owner": {"type": "string"},
                    "labels": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
                        "name": {"type": "string"}
                    }}},
                    "issue": {"$ref": "#/$defs/Issue"}
                },
                "$defs": {
                    "Issue": {"type": "object", "required": ["title"], "properties": {"title": {"type": "string"}}}
                }
            })
        );
    }
}
