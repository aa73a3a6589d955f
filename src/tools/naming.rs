//! Tool names: the only place they are made. Deterministic (the same document always yields the
//! same names), unique, limited to `[A-Za-z0-9_-]` and to a configurable length.

use std::collections::HashSet;

use crate::openapi::Operation;

/// Hands out tool names for the operations of one document, in document order.
pub struct Namer {
    max_len: usize,
    taken: HashSet<String>,
}

/// A name, and what had to be done to the preferred one to get it.
#[derive(Debug, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    pub shortened: bool,
    /// The preferred name was already taken by an earlier operation.
    pub collided: Option<String>,
}

impl Namer {
    pub fn new(max_len: usize) -> Namer {
        // A hash suffix needs 9 characters and something must precede it.
        Namer { max_len: max_len.max(16), taken: HashSet::new() }
    }

    pub fn name(&mut self, operation: &Operation) -> Named {
        let from_path = || match sanitize(&operation.path) {
            path if path.is_empty() => operation.method.key().to_owned(),
            path => format!("{}_{path}", operation.method.key()),
        };
        let preferred = match (&operation.mcp.name, &operation.operation_id) {
            (Some(name), _) | (None, Some(name)) => Some(sanitize(name)),
            (None, None) => None,
        };
        // An id written only in non-ASCII characters sanitizes to nothing.
        let preferred = preferred.filter(|it| !it.is_empty()).unwrap_or_else(from_path);
        let (base, shortened) = self.shorten(&preferred);
        if self.taken.insert(base.clone()) {
            return Named { name: base, shortened, collided: None };
        }
        for n in 2.. {
            let suffix = format!("_{n}");
            let (stem, _) = self.shorten_to(&preferred, self.max_len - suffix.len());
            let candidate = format!("{stem}{suffix}");
            if self.taken.insert(candidate.clone()) {
                return Named { name: candidate, shortened, collided: Some(base) };
            }
        }
        unreachable!("an unbounded range always yields a free name")
    }

    fn shorten(&self, name: &str) -> (String, bool) {
        self.shorten_to(name, self.max_len)
    }

    /// Cuts `name` to `limit` characters, ending in a hash of the whole name so that long names
    /// sharing a prefix stay distinct.
    fn shorten_to(&self, name: &str, limit: usize) -> (String, bool) {
        if name.len() <= limit {
            return (name.to_owned(), false);
        }
        let hash = format!("{:08x}", fnv1a(name.as_bytes()) as u32);
        let keep = limit.saturating_sub(hash.len() + 1);
        let stem = name[..keep].trim_end_matches(['_', '-']);
        (format!("{stem}_{hash}"), true)
    }
}

/// Replaces every run of characters outside `[A-Za-z0-9_-]` with one `_`, trimming it at the
/// ends. The result is ASCII, so byte slicing is safe.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending = false;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            if pending && !out.is_empty() && !out.ends_with('_') && c != '_' {
                out.push('_');
            }
            pending = false;
            out.push(c);
        } else {
            pending = true;
        }
    }
    out
}

/// FNV-1a: tiny, and stable across runs and platforms, unlike `std`'s randomized hasher.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::{DocId, Location, McpExtensions, Method};

    fn op(method: Method, path: &str, id: Option<&str>) -> Operation {
        Operation {
            method,
            path: path.to_owned(),
            location: Location { doc: DocId::ENTRY, pointer: String::new() },
            operation_id: id.map(str::to_owned),
            summary: None,
            description: None,
            tags: Vec::new(),
            deprecated: false,
            parameters: Vec::new(),
            request_body: None,
            responses: Vec::new(),
            security: Vec::new(),
            servers: Vec::new(),
            mcp: McpExtensions::default(),
        }
    }

    #[test]
    fn sanitizes() {
        assert_eq!(sanitize("pets.list"), "pets_list");
        assert_eq!(sanitize("/pets/{petId}/photos"), "pets_petId_photos");
        assert_eq!(sanitize("get_/a b"), "get_a_b");
        assert_eq!(sanitize("ünïcode-ok"), "n_code-ok");
        assert_eq!(sanitize("$$$"), "");
    }

    #[test]
    fn names_from_operation_id_or_method_and_path() {
        let mut namer = Namer::new(64);
        assert_eq!(namer.name(&op(Method::Get, "/pets", Some("listPets"))).name, "listPets");
        assert_eq!(namer.name(&op(Method::Get, "/pets/{id}", None)).name, "get_pets_id");
        assert_eq!(namer.name(&op(Method::Delete, "/", None)).name, "delete");
    }

    #[test]
    fn collisions_get_numbered_in_document_order() {
        let mut namer = Namer::new(64);
        let first = namer.name(&op(Method::Get, "/a", Some("a.b")));
        let second = namer.name(&op(Method::Get, "/b", Some("a b")));
        let third = namer.name(&op(Method::Get, "/c", Some("a_b")));
        assert_eq!(
            (first.name.as_str(), second.name.as_str(), third.name.as_str()),
            ("a_b", "a_b_2", "a_b_3")
        );
        assert_eq!(second.collided.as_deref(), Some("a_b"));
    }

    #[test]
    fn long_names_are_shortened_with_a_stable_hash() {
        let long = "x".repeat(50) + "_and_then_some_more_words_to_pass_the_limit";
        let mut namer = Namer::new(64);
        let named = namer.name(&op(Method::Get, "/", Some(&long)));
        assert!(named.shortened);
        assert!(named.name.len() <= 64 && named.name.starts_with("xxxxxxxxxx"), "{}", named.name);
        let again = Namer::new(64).name(&op(Method::Get, "/", Some(&long)));
        assert_eq!(named, again);
        let other = Namer::new(64).name(&op(Method::Get, "/", Some(&(long.clone() + "2"))));
        assert_ne!(named.name, other.name);
        let collided = namer.name(&op(Method::Get, "/", Some(&long)));
        assert!(collided.name.len() <= 64 && collided.name.ends_with("_2"), "{}", collided.name);
    }
}
