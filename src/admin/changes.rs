//! What changed between two versions of a server's tools: two generations, or the draft and the
//! published generation, each tool as a generation keeps it (`mcp::ToolVersion`). [`diff`] names
//! the added, removed and changed tools, and for a changed one which parts changed, with the JSON
//! Pointers of what changed in its schemas and annotations.
//!
//! Invariant: the walk over two schemas is depth-bounded and reports a bounded number of paths.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::mcp::ToolVersion;

/// Below this depth two values are compared whole, and reported as one change.
const MAX_DEPTH: usize = 64;
/// The most paths one part of one tool reports; it says when there were more.
const MAX_PATHS: usize = 100;

/// A tool by name and hash.
#[derive(Debug, Serialize)]
pub struct Listed {
    pub name: String,
    pub hash: String,
}

/// What changed in one tool.
#[derive(Debug, Serialize)]
pub struct Changed {
    pub name: String,
    pub old_hash: String,
    pub new_hash: String,
    /// The parts that changed, of `description`, `input_schema`, `output_schema`,
    /// `annotations`, `title`.
    pub parts: Vec<&'static str>,
    pub changes: Vec<PartChange>,
}

/// How one part of a tool changed: a text's old and new value, or a JSON value's changed paths.
#[derive(Debug, Serialize)]
pub struct PartChange {
    pub part: &'static str,
    /// Description and title: the old and new text (`null`: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
    /// Schemas and annotations: where they differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathChange>,
    /// Whether more paths differ than are listed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
}

/// A value that differs at a JSON Pointer (RFC 6901; `""` is the whole value): `null` on the side
/// where it is absent.
#[derive(Debug, Serialize)]
pub struct PathChange {
    pub path: String,
    pub old: Value,
    pub new: Value,
}

/// Tools added, removed and changed from `old` to `new`, each by name.
#[derive(Debug, Default, Serialize)]
pub struct Diff {
    pub added: Vec<Listed>,
    pub removed: Vec<Listed>,
    pub changed: Vec<Changed>,
    pub unchanged: usize,
}

/// What changed from `old` to `new`.
pub fn diff(old: &[ToolVersion], new: &[ToolVersion]) -> Diff {
    let old: BTreeMap<&str, &ToolVersion> = old.iter().map(|it| (it.name.as_str(), it)).collect();
    let new: BTreeMap<&str, &ToolVersion> = new.iter().map(|it| (it.name.as_str(), it)).collect();
    let listed = |it: &ToolVersion| Listed { name: it.name.clone(), hash: it.hash.clone() };
    let mut diff = Diff::default();
    for (name, after) in &new {
        let Some(before) = old.get(name) else {
            diff.added.push(listed(after));
            continue;
        };
        let changes = changes(before, after);
        if changes.is_empty() && before.hash == after.hash {
            diff.unchanged += 1;
            continue;
        }
        diff.changed.push(Changed {
            name: (*name).to_owned(),
            old_hash: before.hash.clone(),
            new_hash: after.hash.clone(),
            parts: changes.iter().map(|it| it.part).collect(),
            changes,
        });
    }
    diff.removed =
        old.iter().filter(|(name, _)| !new.contains_key(*name)).map(|(_, it)| listed(it)).collect();
    diff
}

fn changes(old: &ToolVersion, new: &ToolVersion) -> Vec<PartChange> {
    let mut changes = Vec::new();
    let text = |it: &Option<String>| it.clone().map_or(Value::Null, Value::String);
    if old.description != new.description {
        changes.push(PartChange {
            part: "description",
            old: Some(text(&old.description)),
            new: Some(text(&new.description)),
            paths: Vec::new(),
            more: false,
        });
    }
    let parts = [
        ("input_schema", Some(&old.input_schema), Some(&new.input_schema)),
        ("output_schema", old.output_schema.as_ref(), new.output_schema.as_ref()),
        ("annotations", old.annotations.as_ref(), new.annotations.as_ref()),
    ];
    for (part, before, after) in parts {
        if before == after {
            continue;
        }
        let (paths, more) = paths(before, after);
        changes.push(PartChange { part, old: None, new: None, paths, more });
    }
    if old.title != new.title {
        changes.push(PartChange {
            part: "title",
            old: Some(text(&old.title)),
            new: Some(text(&new.title)),
            paths: Vec::new(),
            more: false,
        });
    }
    changes
}

/// Where `old` and `new` differ, as JSON Pointers in document order (at most [`MAX_PATHS`], and
/// whether there were more). Objects are compared key by key, arrays index by index.
fn paths(old: Option<&Value>, new: Option<&Value>) -> (Vec<PathChange>, bool) {
    let mut found = Vec::new();
    // Iterative, in document order: children are pushed in reverse.
    let mut stack: Vec<(String, usize, Option<&Value>, Option<&Value>)> = vec![(String::new(), 0, old, new)];
    while let Some((path, depth, old, new)) = stack.pop() {
        if old == new {
            continue;
        }
        let mut children = Vec::new();
        match (old, new) {
            (Some(Value::Object(a)), Some(Value::Object(b))) if depth < MAX_DEPTH => {
                for (key, value) in a {
                    children.push((pointer(&path, key), depth + 1, Some(value), b.get(key)));
                }
                for (key, value) in b.iter().filter(|(key, _)| !a.contains_key(*key)) {
                    children.push((pointer(&path, key), depth + 1, None, Some(value)));
                }
            }
            (Some(Value::Array(a)), Some(Value::Array(b))) if depth < MAX_DEPTH => {
                for index in 0..a.len().max(b.len()) {
                    children.push((
                        pointer(&path, &index.to_string()),
                        depth + 1,
                        a.get(index),
                        b.get(index),
                    ));
                }
            }
            _ => {
                if found.len() == MAX_PATHS {
                    return (found, true);
                }
                found.push(PathChange {
                    path,
                    old: old.cloned().unwrap_or(Value::Null),
                    new: new.cloned().unwrap_or(Value::Null),
                });
                continue;
            }
        }
        stack.extend(children.into_iter().rev());
    }
    (found, false)
}

/// `parent` followed by `key`, escaped as RFC 6901 says.
fn pointer(parent: &str, key: &str) -> String {
    format!("{parent}/{}", key.replace('~', "~0").replace('/', "~1"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tool(name: &str, hash: &str, description: &str, schema: Value) -> ToolVersion {
        ToolVersion {
            name: name.to_owned(),
            hash: hash.to_owned(),
            title: None,
            description: Some(description.to_owned()),
            input_schema: schema,
            output_schema: None,
            annotations: Some(json!({"readOnlyHint": true})),
        }
    }

    #[test]
    fn names_added_removed_and_changed_tools_with_their_parts() {
        let schema = json!({"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]});
        let old = [
            tool("getPet", "h1", "Get a pet.", schema.clone()),
            tool("listPets", "h2", "List pets.", json!({"type": "object"})),
            tool("gone", "h3", "Gone.", json!({"type": "object"})),
        ];
        let mut changed = tool(
            "getPet",
            "h1b",
            "Get one pet.",
            json!({"type": "object", "properties": {"id": {"type": "integer"}, "a/b~": {}}, "required": ["id"]}),
        );
        changed.annotations = Some(json!({"readOnlyHint": false}));
        let new = [
            changed,
            tool("listPets", "h2", "List pets.", json!({"type": "object"})),
            tool("new", "h4", "", json!({})),
        ];
        let diff = diff(&old, &new);
        let names = |it: &[Listed]| it.iter().map(|it| it.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            (names(&diff.added), names(&diff.removed), diff.unchanged),
            (vec!["new".to_owned()], vec!["gone".to_owned()], 1)
        );
        let [get] = diff.changed.as_slice() else { panic!("{diff:?}") };
        assert_eq!((get.old_hash.as_str(), get.new_hash.as_str()), ("h1", "h1b"));
        assert_eq!(get.parts, ["description", "input_schema", "annotations"]);
        let value = serde_json::to_value(get).unwrap();
        assert_eq!(
            value["changes"][0],
            json!({"part": "description", "old": "Get a pet.", "new": "Get one pet."})
        );
        assert_eq!(
            value["changes"][1]["paths"],
            json!([
                {"path": "/properties/id/type", "old": "string", "new": "integer"},
                {"path": "/properties/a~1b~0", "old": null, "new": {}},
            ])
        );
        assert_eq!(
            value["changes"][2]["paths"],
            json!([{"path": "/readOnlyHint", "old": true, "new": false}])
        );
    }

    #[test]
    fn paths_are_bounded() {
        let old: serde_json::Map<String, Value> = (0..500).map(|it| (format!("k{it}"), json!(it))).collect();
        let (found, more) = paths(Some(&Value::Object(old)), Some(&json!({})));
        assert_eq!((found.len(), more), (MAX_PATHS, true));
        let mut deep = json!(1);
        for _ in 0..1000 {
            deep = json!([deep]);
        }
        let (found, more) = paths(Some(&deep), Some(&json!([[2]])));
        assert_eq!((found.len(), more), (1, false));
        assert_eq!(found[0].path, "/0/0");
    }
}
