//! A compact, read-only JSON tree for API documents.
//!
//! `serde_json::Value` spends about ten bytes of memory per byte of a pretty-printed document
//! (an `IndexMap` with a hash table per object, grown by doubling); this tree stores each
//! object as one exact-sized slice, indexed by a sorted permutation only when it is large.
//! GitHub's 13 MB document takes about a quarter of the memory it took as a `Value`.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Number(Number),
    String(Box<str>),
    Array(Box<[Node]>),
    Object(Box<Object>),
}

/// Entries in document order; `sorted` (entry indices ordered by key) exists only for objects
/// large enough that a linear scan would cost more than a binary search.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object {
    entries: Box<[(Box<str>, Node)]>,
    sorted: Box<[u32]>,
}

/// Objects with more entries than this get a sorted index.
const LINEAR_SCAN: usize = 12;

impl Object {
    fn new(entries: Vec<(Box<str>, Node)>) -> Object {
        let sorted = if entries.len() > LINEAR_SCAN {
            let mut order: Vec<u32> = (0..entries.len() as u32).collect();
            order.sort_by(|&a, &b| entries[a as usize].0.cmp(&entries[b as usize].0));
            order.into_boxed_slice()
        } else {
            Box::default()
        };
        Object { entries: entries.into_boxed_slice(), sorted }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        if self.sorted.is_empty() {
            return self.entries.iter().find(|(k, _)| &**k == key).map(|(_, v)| v);
        }
        let idx = self.sorted.binary_search_by(|&i| (*self.entries[i as usize].0).cmp(key)).ok()?;
        Some(&self.entries[self.sorted[idx] as usize].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.entries.iter().map(|(k, v)| (&**k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| &**k)
    }

    pub fn values(&self) -> impl Iterator<Item = &Node> {
        self.entries.iter().map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<'a> IntoIterator for &'a Object {
    type Item = (&'a str, &'a Node);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Box<str>, Node)>,
        fn(&'a (Box<str>, Node)) -> (&'a str, &'a Node),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (&**k, v))
    }
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_object()?.get(key)
    }

    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Node::Object(it) => Some(it),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Node]> {
        match self {
            Node::Array(it) => Some(it),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(it) => Some(it),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Node::Bool(it) => Some(*it),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<&Number> {
        match self {
            Node::Number(it) => Some(it),
            _ => None,
        }
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Node::String(_))
    }

    /// The same tree as a `serde_json::Value`, for the parts copied into generated schemas.
    /// Recursion is bounded by the parsers' nesting limit.
    pub fn to_value(&self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(it) => Value::Bool(*it),
            Node::Number(it) => Value::Number(it.clone()),
            Node::String(it) => Value::String(it.to_string()),
            Node::Array(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Node::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.to_owned(), v.to_value())).collect())
            }
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_value(), f)
    }
}

impl From<Value> for Node {
    fn from(value: Value) -> Node {
        match value {
            Value::Null => Node::Null,
            Value::Bool(it) => Node::Bool(it),
            Value::Number(it) => Node::Number(it),
            Value::String(it) => Node::String(it.into_boxed_str()),
            Value::Array(items) => Node::Array(items.into_iter().map(Node::from).collect()),
            Value::Object(map) => Node::Object(Box::new(Object::new(
                map.into_iter().map(|(k, v)| (k.into_boxed_str(), Node::from(v))).collect(),
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        // JSON has no NaN or infinity; YAML's `.nan` and `.inf` become null, as in serde_json.
        Ok(Number::from_f64(v).map_or(Node::Null, Node::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.into()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v.into_boxed_str()))
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items.into_boxed_slice()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries: Vec<(Box<str>, Node)> = Vec::new();
        // Repeated keys: the last wins, as in JSON parsers. Large objects find repeats through
        // a hash map so that an object with many keys cannot cost quadratic time.
        let mut positions: HashMap<Box<str>, usize> = HashMap::new();
        while let Some(key) = map.next_key::<KeyString>()? {
            let key = key.0;
            let value: Node = map.next_value()?;
            let existing = if entries.len() < LINEAR_SCAN {
                entries.iter().position(|(k, _)| *k == key)
            } else {
                if positions.is_empty() {
                    positions.extend(entries.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)));
                }
                positions.get(&key).copied()
            };
            match existing {
                Some(idx) => entries[idx].1 = value,
                None => {
                    if !positions.is_empty() {
                        positions.insert(key.clone(), entries.len());
                    }
                    entries.push((key, value));
                }
            }
        }
        Ok(Node::Object(Box::new(Object::new(entries))))
    }
}

/// An object key. YAML keys may be numbers or booleans (`200:` in responses); they are read as
/// their text, as JSON would write them.
struct KeyString(Box<str>);

impl<'de> Deserialize<'de> for KeyString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<KeyString, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyString, E> {
                Ok(KeyString(v.into()))
            }
            fn visit_string<E>(self, v: String) -> Result<KeyString, E> {
                Ok(KeyString(v.into_boxed_str()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string().into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string().into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string().into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string().into()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyString, E> {
                Ok(KeyString("null".into()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_and_looks_up_small_and_large_objects() {
        let mut large = serde_json::Map::new();
        for i in (0..40).rev() {
            large.insert(format!("k{i}"), json!(i));
        }
        let value = json!({"a": [1, "two", null, true, 2.5], "large": large});
        let node: Node = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(node.to_value(), value);
        assert_eq!(node.get("large").and_then(|it| it.get("k7")), Some(&Node::Number(7.into())));
        assert_eq!(node.get("large").and_then(|it| it.get("k40")), None);
        let keys: Vec<&str> = node.get("large").unwrap().as_object().unwrap().keys().take(2).collect();
        assert_eq!(keys, ["k39", "k38"], "document order is kept");
    }

    #[test]
    fn repeated_keys_keep_the_last_value() {
        let text =
            format!("{{{}\"k5\": \"last\"}}", (0..30).map(|i| format!("\"k{i}\": {i},")).collect::<String>());
        let node: Node = serde_json::from_str(&text).unwrap();
        let object = node.as_object().unwrap();
        assert_eq!(object.len(), 30);
        assert_eq!(object.get("k5").and_then(Node::as_str), Some("last"));
        let small: Node = serde_json::from_str(r#"{"a": 1, "a": 2}"#).unwrap();
        assert_eq!(small.get("a"), Some(&Node::Number(2.into())));
    }
}
