//! Makes a lowered tool schema smaller and easier for a model to read: a definition referenced
//! once and not on a cycle is written in place, and definitions nothing reaches are dropped.
//! Recursive definitions stay in `$defs`, referenced by `$ref`.
//!
//! Every walk here is iterative or bounded by [`MAX_INLINE_DEPTH`].

// foldhash: fast, and seeded per process, so keys from a document cannot be chosen to collide.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use serde_json::{Map, Value};

/// Inlining stops at this nesting depth; deeper references stay references.
const MAX_INLINE_DEPTH: usize = 64;

/// Keys a `$ref` may carry beside it and still be inlined (they override the definition's).
const ANNOTATIONS: [&str; 5] = ["description", "title", "default", "examples", "deprecated"];

pub struct Compacted {
    pub defs: Map<String, Value>,
    /// Definitions that reach themselves, in `$defs` order.
    pub recursive: Vec<String>,
}

pub fn compact(root: &mut Value, defs: Map<String, Value>) -> Compacted {
    // A root written out from a definition leaves that definition unreferenced; it must not
    // count as a second use of what it refers to.
    let defs = reachable(root, defs);
    if defs.is_empty() {
        return Compacted { defs, recursive: Vec::new() };
    }
    let names: Vec<String> = defs.keys().cloned().collect();
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let mut uses = vec![0usize; names.len()];
    let mut blocked = vec![false; names.len()];
    let mut edges = vec![Vec::new(); names.len()];
    for_each_ref(root, |name, inlinable| {
        if let Some(&i) = index.get(name) {
            uses[i] += 1;
            blocked[i] |= !inlinable;
        }
    });
    for (from, value) in defs.values().enumerate() {
        for_each_ref(value, |name, inlinable| {
            if let Some(&i) = index.get(name) {
                uses[i] += 1;
                blocked[i] |= !inlinable;
                edges[from].push(i);
            }
        });
    }
    let on_cycle = on_cycle(&edges);
    // Definitions to write in place are taken out of `$defs`; the others keep their order.
    let mut pending: HashMap<String, Value> = HashMap::new();
    let mut kept: Vec<(usize, String, Value)> = Vec::new();
    for (i, (name, value)) in defs.into_iter().enumerate() {
        if uses[i] == 1 && !blocked[i] && !on_cycle[i] {
            pending.insert(name, value);
        } else {
            kept.push((i, name, value));
        }
    }
    inline_refs(root, &mut pending);
    for (_, _, value) in &mut kept {
        inline_refs(value, &mut pending);
    }
    // Those left (the inlining depth ran out) stay definitions, in their place.
    kept.extend(pending.into_iter().map(|(name, value)| (index[name.as_str()], name, value)));
    kept.sort_by_key(|(i, _, _)| *i);
    let defs: Map<String, Value> = kept.into_iter().map(|(_, name, value)| (name, value)).collect();
    let defs = reachable(root, defs);
    let recursive = (0..names.len())
        .filter(|&i| on_cycle[i] && defs.contains_key(&names[i]))
        .map(|i| names[i].clone())
        .collect();
    Compacted { defs, recursive }
}

/// The definition name a `#/$defs/...` reference names.
pub fn def_name(value: &Value) -> Option<&str> {
    value.get("$ref")?.as_str()?.strip_prefix("#/$defs/")
}

/// Calls `f(name, inlinable)` for every `$defs` reference in `value`; `inlinable` is false when
/// the reference carries siblings that cannot be merged into the definition.
fn for_each_ref(value: &Value, mut f: impl FnMut(&str, bool)) {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                if let Some(name) = def_name(value) {
                    let inlinable = map.keys().all(|k| k == "$ref" || ANNOTATIONS.contains(&k.as_str()));
                    f(name, inlinable);
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
}

/// Marks the nodes on a cycle (strongly connected components of two or more, or self-loops),
/// with Tarjan's algorithm made iterative.
fn on_cycle(edges: &[Vec<usize>]) -> Vec<bool> {
    let n = edges.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut result = vec![false; n];
    let mut next = 0;
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        let mut work = vec![(start, 0usize)];
        while let Some(&mut (node, ref mut edge)) = work.last_mut() {
            if *edge == 0 && index[node] == usize::MAX {
                index[node] = next;
                low[node] = next;
                next += 1;
                stack.push(node);
                on_stack[node] = true;
            }
            if let Some(&child) = edges[node].get(*edge) {
                *edge += 1;
                if index[child] == usize::MAX {
                    work.push((child, 0));
                } else if on_stack[child] {
                    low[node] = low[node].min(index[child]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == index[node] {
                let mut members = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    members.push(member);
                    if member == node {
                        break;
                    }
                }
                let cyclic = members.len() > 1 || edges[node].contains(&node);
                for member in members {
                    result[member] = cyclic;
                }
            }
        }
    }
    result
}

/// Writes in place every reference to a definition in `pending`, taking it out.
fn inline_refs(value: &mut Value, pending: &mut HashMap<String, Value>) {
    let mut stack = vec![(value, 0usize)];
    while let Some((value, depth)) = stack.pop() {
        if depth < MAX_INLINE_DEPTH
            && let Some(name) = def_name(value)
            && let Some(def) = pending.remove(name)
        {
            let siblings = match std::mem::replace(value, def) {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            if let Value::Object(merged) = value {
                for (key, sibling) in siblings {
                    if key != "$ref" {
                        merged.insert(key, sibling);
                    }
                }
            }
        }
        match value {
            Value::Object(map) => stack.extend(map.values_mut().map(|it| (it, depth + 1))),
            Value::Array(items) => stack.extend(items.iter_mut().map(|it| (it, depth + 1))),
            _ => {}
        }
    }
}

/// Keeps only the definitions `root` reaches, in their original order.
fn reachable(root: &Value, mut defs: Map<String, Value>) -> Map<String, Value> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut pending: Vec<String> = Vec::new();
    for_each_ref(root, |name, _| pending.push(name.to_owned()));
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(value) = defs.get(&name) {
            for_each_ref(value, |name, _| pending.push(name.to_owned()));
        }
    }
    defs.retain(|name, _| seen.contains(name));
    defs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(mut root: Value, defs: Value) -> (Value, Vec<String>) {
        let Value::Object(defs) = defs else { unreachable!() };
        let compacted = compact(&mut root, defs);
        if !compacted.defs.is_empty() {
            root["$defs"] = Value::Object(compacted.defs);
        }
        (root, compacted.recursive)
    }

    #[test]
    fn inlines_single_use_definitions() {
        let (root, recursive) = run(
            json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/A", "description": "d"}}}),
            json!({"A": {"type": "object", "properties": {"b": {"$ref": "#/$defs/B"}}}, "B": {"type": "string"}}),
        );
        assert_eq!(
            root,
            json!({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}, "description": "d"}}})
        );
        assert!(recursive.is_empty());
    }

    #[test]
    fn keeps_shared_and_recursive_definitions() {
        let (root, recursive) = run(
            json!({"properties": {"x": {"$ref": "#/$defs/S"}, "y": {"$ref": "#/$defs/S"}, "n": {"$ref": "#/$defs/Node"}}}),
            json!({
                "S": {"type": "string"},
                "Node": {"properties": {"next": {"$ref": "#/$defs/Node"}, "v": {"$ref": "#/$defs/V"}}},
                "V": {"type": "integer"},
                "Unused": {"type": "null"}
            }),
        );
        assert_eq!(
            root,
            json!({
                "properties": {"x": {"$ref": "#/$defs/S"}, "y": {"$ref": "#/$defs/S"}, "n": {"$ref": "#/$defs/Node"}},
                "$defs": {
                    "S": {"type": "string"},
                    "Node": {"properties": {"next": {"$ref": "#/$defs/Node"}, "v": {"type": "integer"}}}
                }
            })
        );
        assert_eq!(recursive, ["Node"]);
    }

    #[test]
    fn finds_cycles_through_several_definitions() {
        let edges = vec![vec![1], vec![2], vec![0], vec![0], vec![4]];
        assert_eq!(on_cycle(&edges), [true, true, true, false, true]);
    }
}
