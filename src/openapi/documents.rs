//! The set of documents that make up one API description (the entry document and the files its
//! `$ref`s name), and the resolution of `$ref`s within it.
//!
//! Invariant: a document name is a normalized relative path that never leaves the root folder;
//! network references are never followed.

use std::collections::HashMap;

use super::node::Node;

use super::parse::{self, Format};

/// Index of a document in [`Documents`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DocId(pub(crate) u32);

impl DocId {
    pub const ENTRY: DocId = DocId(0);
}

/// Reads the external files that `$ref`s name. `name` is a normalized path relative to the root
/// folder, already checked not to escape it.
pub trait Loader {
    fn load(&mut self, name: &str) -> Result<Vec<u8>, String>;
}

/// A loader for single-document sources (stdin, pasted text, URLs): every external reference is
/// refused.
pub struct NoExternalFiles;

impl Loader for NoExternalFiles {
    fn load(&mut self, _name: &str) -> Result<Vec<u8>, String> {
        Err("external files cannot be read for this source".to_owned())
    }
}

#[derive(Debug)]
pub struct Document {
    pub name: String,
    pub format: Format,
    pub root: Node,
}

/// Every document of the description, loaded eagerly so that resolution does no IO.
#[derive(Debug)]
pub struct Documents {
    docs: Vec<Document>,
    by_name: HashMap<String, DocId>,
    /// Files that could not be loaded, with the reason, reported when a `$ref` needs them.
    failed: HashMap<String, String>,
}

/// A resolved `$ref`: the document and the JSON pointer (without `#`) it lands on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub doc: DocId,
    pub pointer: String,
}

/// A chain of `$ref`s longer than this is treated as a cycle.
const MAX_REF_HOPS: usize = 32;

impl Documents {
    /// Loads the entry document and, transitively, every relative file its `$ref`s name.
    pub fn load(
        entry_name: &str,
        entry: Node,
        format: Format,
        loader: &mut dyn Loader,
        max_files: usize,
    ) -> Documents {
        let entry_name = normalize_path(entry_name).unwrap_or_else(|| entry_name.to_owned());
        let mut documents = Documents { docs: Vec::new(), by_name: HashMap::new(), failed: HashMap::new() };
        documents.insert(entry_name, format, entry);
        let mut next = 0;
        while next < documents.docs.len() {
            let external = external_files(&documents.docs[next]);
            for name in external {
                if documents.by_name.contains_key(&name) || documents.failed.contains_key(&name) {
                    continue;
                }
                if documents.docs.len() >= max_files {
                    let reason = format!("more than {max_files} files are referenced");
                    documents.failed.insert(name, reason);
                    continue;
                }
                match loader.load(&name).and_then(|bytes| parse::parse(&bytes).map_err(|err| err.to_string()))
                {
                    Ok((root, format)) => documents.insert(name, format, root),
                    Err(reason) => {
                        documents.failed.insert(name, reason);
                    }
                }
            }
            next += 1;
        }
        documents
    }

    fn insert(&mut self, name: String, format: Format, root: Node) {
        let id = DocId(self.docs.len() as u32);
        self.by_name.insert(name.clone(), id);
        self.docs.push(Document { name, format, root });
    }

    pub fn entry(&self) -> &Document {
        &self.docs[0]
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    pub fn name(&self, doc: DocId) -> &str {
        &self.docs[doc.0 as usize].name
    }

    pub fn get(&self, target: &Target) -> Option<&Node> {
        let root = &self.docs.get(target.doc.0 as usize)?.root;
        lookup(root, &target.pointer)
    }

    /// Where `reference`, written in document `base`, points.
    pub fn target(&self, base: DocId, reference: &str) -> Result<Target, String> {
        let (file, fragment) = match reference.split_once('#') {
            Some((file, fragment)) => (file, fragment),
            None => (reference, ""),
        };
        let doc = if file.is_empty() {
            base
        } else if has_scheme(file) {
            return Err(format!("network reference `{reference}` is not followed"));
        } else {
            let name =
                join(self.name(base), file).ok_or_else(|| format!("`{file}` is outside the root folder"))?;
            match self.by_name.get(&name) {
                Some(&doc) => doc,
                None => {
                    let reason = self.failed.get(&name).map_or("it was not loaded", String::as_str);
                    return Err(format!("cannot read `{name}`: {reason}"));
                }
            }
        };
        let pointer = percent_decode(fragment);
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(format!("anchor reference `{reference}` is not supported"));
        }
        Ok(Target { doc, pointer })
    }

    /// Follows `value`'s `$ref` chain (for parameters, responses, bodies, path items) to the
    /// object it ends on.
    pub fn deref<'a>(
        &'a self,
        base: DocId,
        value: &'a Node,
    ) -> Result<(DocId, &'a Node, Option<Target>), String> {
        let (mut doc, mut value, mut last) = (base, value, None);
        for _ in 0..MAX_REF_HOPS {
            let Some(reference) = value.get("$ref") else {
                return Ok((doc, value, last));
            };
            let Some(reference) = reference.as_str() else {
                return Err("`$ref` is not a string".to_owned());
            };
            let target = self.target(doc, reference)?;
            value = self.get(&target).ok_or_else(|| format!("`{reference}` points at nothing"))?;
            doc = target.doc;
            last = Some(target);
        }
        Err(format!("`$ref` chain longer than {MAX_REF_HOPS} hops (a cycle?)"))
    }
}

/// Looks up a JSON pointer (RFC 6901) without the leading `#`.
fn lookup<'a>(root: &'a Node, pointer: &str) -> Option<&'a Node> {
    if pointer.is_empty() {
        return Some(root);
    }
    let mut value = root;
    for token in pointer.strip_prefix('/')?.split('/') {
        let token = if token.contains('~') {
            std::borrow::Cow::Owned(token.replace("~1", "/").replace("~0", "~"))
        } else {
            std::borrow::Cow::Borrowed(token)
        };
        value = match value {
            Node::Object(map) => map.get(&token)?,
            Node::Array(items) => items.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// Escapes one reference token of a JSON pointer.
pub fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The relative files named by `$ref`s in `doc`, as normalized names; walks iteratively so that
/// no document can exhaust the stack.
fn external_files(doc: &Document) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![&doc.root];
    while let Some(value) = stack.pop() {
        match value {
            Node::Object(map) => {
                if let Some(Node::String(reference)) = map.get("$ref") {
                    let file = reference.split('#').next().unwrap_or_default();
                    if !file.is_empty()
                        && !has_scheme(file)
                        && let Some(name) = join(&doc.name, file)
                        && !found.contains(&name)
                    {
                        found.push(name);
                    }
                }
                stack.extend(map.values());
            }
            Node::Array(items) => stack.extend(items.iter()),
            _ => {}
        }
    }
    found
}

fn has_scheme(reference: &str) -> bool {
    match reference.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => reference.starts_with("//"),
    }
}

/// Resolves `relative` against the folder of `base`; `None` when the result leaves the root.
fn join(base: &str, relative: &str) -> Option<String> {
    let relative = percent_decode(relative);
    if relative.starts_with('/') || relative.contains('\\') || relative.contains('\0') {
        return None;
    }
    let folder = base.rsplit_once('/').map_or("", |(folder, _)| folder);
    normalize_path(&format!("{folder}/{relative}"))
}

/// Removes `.` and `..` segments lexically; `None` when `..` would climb above the root.
fn normalize_path(path: &str) -> Option<String> {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            it => segments.push(it),
        }
    }
    Some(segments.join("/"))
}

fn percent_decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while idx < bytes.len() {
        let hex = bytes
            .get(idx + 1..idx + 3)
            .and_then(|it| std::str::from_utf8(it).ok())
            .and_then(|it| u8::from_str_radix(it, 16).ok());
        match (bytes[idx], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                idx += 3;
            }
            (byte, _) => {
                out.push(byte);
                idx += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Files(Vec<(&'static str, &'static str)>);

    impl Loader for Files {
        fn load(&mut self, name: &str) -> Result<Vec<u8>, String> {
            self.0
                .iter()
                .find(|(it, _)| *it == name)
                .map(|(_, text)| text.as_bytes().to_vec())
                .ok_or_else(|| "no such file".to_owned())
        }
    }

    #[test]
    fn joins_relative_paths_inside_the_root_only() {
        assert_eq!(join("spec/a.yaml", "b.yaml").as_deref(), Some("spec/b.yaml"));
        assert_eq!(join("spec/a.yaml", "../c/d.yaml").as_deref(), Some("c/d.yaml"));
        assert_eq!(join("spec/a.yaml", "./x/../y.yaml").as_deref(), Some("spec/y.yaml"));
        assert_eq!(join("a.yaml", "../b.yaml"), None);
        assert_eq!(join("spec/a.yaml", "../../b.yaml"), None);
        assert_eq!(join("a.yaml", "/etc/passwd"), None);
        assert_eq!(join("a.yaml", "%2E%2E/b.yaml"), None);
    }

    #[test]
    fn loads_referenced_files_transitively_and_resolves_pointers() {
        let entry = Node::from(json!({"a": {"$ref": "defs/one.yaml#/Pet"}, "up": {"$ref": "../../x.yaml"}}));
        let mut files = Files(vec![
            ("spec/defs/one.yaml", "Pet:\n  $ref: 'two.json#/Id'\n"),
            ("spec/defs/two.json", r#"{"Id": {"type": "integer"}}"#),
        ]);
        let docs = Documents::load("spec/main.yaml", entry, Format::Yaml, &mut files, 100);
        assert_eq!(docs.len(), 3);
        let target = docs.target(DocId::ENTRY, "defs/one.yaml#/Pet").unwrap();
        assert_eq!(docs.name(target.doc), "spec/defs/one.yaml");
        let pet = docs.get(&target).unwrap();
        let (doc, id, _) = docs.deref(target.doc, pet).unwrap();
        assert_eq!(docs.name(doc), "spec/defs/two.json");
        assert_eq!(id, &Node::from(json!({"type": "integer"})));
        let err = docs.target(DocId::ENTRY, "../../x.yaml").unwrap_err();
        assert_eq!(err, "`../../x.yaml` is outside the root folder");
    }

    #[test]
    fn refuses_network_references_and_stops_on_cycles() {
        let entry = Node::from(json!({"a": {"$ref": "#/b"}, "b": {"$ref": "#/a"}}));
        let docs = Documents::load("main.json", entry, Format::Json, &mut NoExternalFiles, 10);
        let err = docs.target(DocId::ENTRY, "https://example.com/x.json").unwrap_err();
        assert!(err.contains("network reference"), "{err}");
        let a = docs.entry().root.get("a").unwrap();
        assert!(docs.deref(DocId::ENTRY, a).unwrap_err().contains("cycle"));
    }

    #[test]
    fn decodes_pointer_escapes() {
        let entry = Node::from(json!({"paths": {"/a/{id}": {"get": 1}}}));
        let docs = Documents::load("m.json", entry, Format::Json, &mut NoExternalFiles, 1);
        let target = docs.target(DocId::ENTRY, "#/paths/~1a~1%7Bid%7D/get").unwrap();
        assert_eq!(docs.get(&target), Some(&Node::from(json!(1))));
    }
}
