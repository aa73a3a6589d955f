//! Lowers OpenAPI schemas (Swagger 2.0, 3.0, 3.1 dialects) to self-contained JSON Schema 2020-12.
//!
//! Every `$ref` becomes `#/$defs/<name>`, and only the definitions a tool reaches are copied.
//! Referenced schemas are queued and lowered one after another, never by recursion into the
//! reference, so neither cycles nor long reference chains can grow the stack; nesting within one
//! schema is capped at [`MAX_DEPTH`].

use std::collections::VecDeque;

// foldhash: fast, and seeded per process, so keys from a document cannot be chosen to collide.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use serde_json::{Map, Number, Value, json};

use crate::openapi::{DocId, Node, Object, Schema, Spec, Target, Version};

/// Deeper nesting within one schema is replaced by `{}` (any value).
pub const MAX_DEPTH: usize = 40;

/// Which side of the call a schema describes: `readOnly` properties leave request schemas,
/// `writeOnly` properties leave response schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

/// A problem found while lowering, with the document location it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaIssue {
    pub location: String,
    pub message: String,
}

/// Results shared by every tool of one generation run: regex checks are costly.
#[derive(Default)]
pub struct Memo {
    patterns: HashMap<String, Option<String>>,
}

impl Memo {
    /// `pattern` as clients can use it, or `None` when it is not a usable regex. Needless escapes
    /// of punctuation (`\:`) are removed first: JavaScript validators compile patterns in
    /// unicode mode, which refuses them, and one bad pattern makes a client drop a whole page of
    /// tools.
    fn pattern(&mut self, pattern: &str) -> Option<String> {
        if let Some(known) = self.patterns.get(pattern) {
            return known.clone();
        }
        let portable = without_identity_escapes(pattern);
        let usable = jsonschema::draft202012::new(&json!({"pattern": portable})).is_ok().then_some(portable);
        self.patterns.insert(pattern.to_owned(), usable.clone());
        usable
    }
}

/// Drops the backslash of escapes that only mean "this punctuation character": valid in
/// ECMAScript's legacy mode and in Rust's regex syntax, refused in unicode mode. Escapes of
/// syntax characters, letters and digits are kept as they are.
fn without_identity_escapes(pattern: &str) -> String {
    const SYNTAX: &str = "^$\\.*+?()[]{}|/";
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next)
                    if next.is_ascii_alphanumeric() || SYNTAX.contains(next) || (next == '-' && in_class) =>
                {
                    out.push('\\');
                    out.push(next);
                }
                Some(next) => out.push(next),
                None => out.push('\\'),
            },
            '[' => {
                in_class = true;
                out.push(c);
            }
            ']' => {
                in_class = false;
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

struct Def {
    name: String,
    target: Target,
    value: Value,
}

/// Lowers the schemas of one tool, collecting the definitions they reach.
pub struct SchemaBuilder<'a> {
    spec: &'a Spec,
    direction: Direction,
    memo: &'a mut Memo,
    defs: Vec<Def>,
    by_target: HashMap<Target, usize>,
    names: HashSet<String>,
    queue: VecDeque<usize>,
    /// Approximate bytes lowered so far, and the size after which references are no longer
    /// expanded. Definitions are lowered breadth-first, so the nearest are kept.
    bytes: usize,
    max_bytes: usize,
    /// Referenced schemas left out because the budget was spent.
    pub omitted: Vec<String>,
    pub issues: Vec<SchemaIssue>,
}

/// One step of the path from the schema being lowered to the current keyword, for locations.
#[derive(Clone, Copy)]
enum Step<'v> {
    Key(&'v str),
    Index(usize),
}

struct Cursor<'v> {
    doc: DocId,
    origin: &'v str,
    steps: Vec<Step<'v>>,
}

impl<'a> SchemaBuilder<'a> {
    pub fn new(spec: &'a Spec, direction: Direction, memo: &'a mut Memo, max_bytes: usize) -> Self {
        SchemaBuilder {
            bytes: 0,
            max_bytes,
            omitted: Vec::new(),
            spec,
            direction,
            memo,
            defs: Vec::new(),
            by_target: HashMap::new(),
            names: HashSet::new(),
            queue: VecDeque::new(),
            issues: Vec::new(),
        }
    }

    /// Lowers `schema`; the definitions it reaches are lowered too and kept for [`Self::finish`].
    pub fn lower(&mut self, schema: &Schema) -> Value {
        let mut cursor = Cursor { doc: schema.doc, origin: &schema.pointer, steps: Vec::new() };
        let lowered = self.lower_value(&schema.value, &mut cursor, 0);
        self.drain();
        lowered
    }

    /// The value a `#/$defs/<name>` reference in a lowered schema stands for.
    pub fn def(&self, reference: &str) -> Option<&Value> {
        let name = reference.strip_prefix("#/$defs/")?;
        self.defs.iter().find(|it| it.name == name).map(|it| &it.value)
    }

    /// The lowered definitions, by name, in the order they were first reached.
    pub fn finish(self) -> (Map<String, Value>, Vec<SchemaIssue>) {
        let defs = self.defs.into_iter().map(|it| (it.name, it.value)).collect();
        (defs, self.issues)
    }

    fn drain(&mut self) {
        while let Some(idx) = self.queue.pop_front() {
            let target = self.defs[idx].target.clone();
            let spec = self.spec;
            let Some(value) = spec.documents.get(&target) else {
                continue;
            };
            if self.bytes >= self.max_bytes {
                // Named while the budget lasted, reached after it ran out: a stand-in keeps
                // the references valid.
                let name = display_name(spec, &target);
                self.defs[idx].value = omitted_stub(&name);
                if !self.omitted.contains(&name) {
                    self.omitted.push(name);
                }
                continue;
            }
            let mut cursor = Cursor { doc: target.doc, origin: &target.pointer, steps: Vec::new() };
            let lowered = self.lower_value(value, &mut cursor, 0);
            self.defs[idx].value = lowered;
        }
    }

    fn issue(&mut self, cursor: &Cursor<'_>, message: impl Into<String>) {
        let mut location = String::new();
        if cursor.doc != DocId::ENTRY {
            location.push_str(self.spec.documents.name(cursor.doc));
        }
        location.push('#');
        location.push_str(cursor.origin);
        for step in &cursor.steps {
            location.push('/');
            match step {
                Step::Key(key) => location.push_str(&crate::openapi::escape_token(key)),
                Step::Index(idx) => location.push_str(&idx.to_string()),
            }
        }
        self.issues.push(SchemaIssue { location, message: message.into() });
    }

    /// The `$defs` name for `reference`, queueing its target the first time it is seen; once
    /// the budget is spent, the stand-in for a schema that is left out.
    fn def_name(&mut self, doc: DocId, reference: &str) -> Result<Reference, String> {
        let target = self.spec.documents.target(doc, reference)?;
        if let Some(&idx) = self.by_target.get(&target) {
            return Ok(Reference::Def(self.defs[idx].name.clone()));
        }
        if self.spec.documents.get(&target).is_none() {
            return Err(format!("`{reference}` points at nothing"));
        }
        if self.bytes >= self.max_bytes {
            let name = display_name(self.spec, &target);
            if !self.omitted.contains(&name) {
                self.omitted.push(name.clone());
            }
            return Ok(Reference::Omitted(name));
        }
        let name = self.unique_name(&target);
        let idx = self.defs.len();
        self.defs.push(Def { name: name.clone(), target: target.clone(), value: Value::Null });
        self.by_target.insert(target, idx);
        self.queue.push_back(idx);
        Ok(Reference::Def(name))
    }

    fn unique_name(&mut self, target: &Target) -> String {
        let last = display_name(self.spec, target);
        let mut base: String = last
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' })
            .collect();
        if base.is_empty() {
            base.push_str("schema");
        }
        let mut name = base.clone();
        let mut n = 2;
        while !self.names.insert(name.clone()) {
            name = format!("{base}_{n}");
            n += 1;
        }
        name
    }

    fn lower_value<'v>(&mut self, value: &'v Node, cursor: &mut Cursor<'v>, depth: usize) -> Value {
        match value {
            Node::Bool(it) => Value::Bool(*it),
            Node::Object(map) if depth < MAX_DEPTH => Value::Object(self.lower_map(map, cursor, depth)),
            Node::Object(_) => {
                self.issue(
                    cursor,
                    format!("schema nested deeper than {MAX_DEPTH} levels; any value accepted below"),
                );
                json!({})
            }
            _ => {
                self.issue(cursor, "schema is not an object; any value accepted");
                json!({})
            }
        }
    }

    fn lower_sub<'v>(
        &mut self,
        key: &'v str,
        value: &'v Node,
        cursor: &mut Cursor<'v>,
        depth: usize,
    ) -> Value {
        cursor.steps.push(Step::Key(key));
        let lowered = self.lower_value(value, cursor, depth + 1);
        cursor.steps.pop();
        lowered
    }

    fn lower_map<'v>(
        &mut self,
        map: &'v Object,
        cursor: &mut Cursor<'v>,
        depth: usize,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        let mut nullable = false;
        let mut hidden: Vec<&str> = Vec::new();
        let is_31 = self.spec.version == Version::OpenApi31;
        for (key, value) in map.iter() {
            // Keys, punctuation and text dominate a schema's size; nested values count themselves.
            self.bytes += key.len() + 6 + value.as_str().map_or(2, str::len);
            match key {
                "$ref" => match value.as_str().map(|it| self.def_name(cursor.doc, it)) {
                    Some(Ok(Reference::Def(name))) => {
                        out.insert("$ref".into(), Value::String(format!("#/$defs/{name}")));
                    }
                    Some(Ok(Reference::Omitted(name))) => {
                        if let Value::Object(stub) = omitted_stub(&name) {
                            for (key, value) in stub {
                                out.entry(key).or_insert(value);
                            }
                        }
                    }
                    Some(Err(err)) => {
                        self.issue(cursor, format!("unresolvable reference, any value accepted: {err}"))
                    }
                    None => self.issue(cursor, "`$ref` is not a string; ignored"),
                },
                "type" => self.lower_type(value, &mut out, cursor),
                "nullable" | "x-nullable" => nullable = value.as_bool() == Some(true),
                "properties" | "patternProperties" | "dependentSchemas" => {
                    let Node::Object(props) = value else {
                        self.issue(cursor, format!("`{key}` is not an object; ignored"));
                        continue;
                    };
                    cursor.steps.push(Step::Key(key));
                    let mut lowered = Map::new();
                    for (name, sub) in props.iter() {
                        let written = if key == "patternProperties" {
                            let Some(portable) = self.memo.pattern(name) else {
                                self.issue(cursor, format!("pattern `{name}` is not a valid regex; ignored"));
                                continue;
                            };
                            portable
                        } else {
                            name.to_owned()
                        };
                        if key == "properties" && self.hidden(cursor.doc, sub) {
                            hidden.push(name);
                            continue;
                        }
                        lowered.insert(written, self.lower_sub(name, sub, cursor, depth));
                    }
                    cursor.steps.pop();
                    out.insert(key.into(), Value::Object(lowered));
                }
                "items" if value.as_array().is_some() => {
                    self.lower_list("prefixItems", value, &mut out, cursor, depth)
                }
                "items"
                | "additionalProperties"
                | "unevaluatedProperties"
                | "propertyNames"
                | "contains"
                | "not"
                | "if"
                | "then"
                | "else"
                | "contentSchema"
                | "unevaluatedItems" => {
                    out.insert(key.into(), self.lower_sub(key, value, cursor, depth));
                }
                "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                    self.lower_list(key, value, &mut out, cursor, depth)
                }
                "required" => match value {
                    Node::Array(items) => {
                        out.insert(key.into(), Value::Array(unique_strings(items)));
                    }
                    _ => self.issue(cursor, "`required` is not a list; ignored"),
                },
                "dependentRequired" => {
                    if let Node::Object(deps) = value {
                        let deps = deps
                            .iter()
                            .filter_map(|(k, v)| {
                                Some((k.to_owned(), Value::Array(unique_strings(v.as_array()?))))
                            })
                            .collect();
                        out.insert(key.into(), Value::Object(deps));
                    }
                }
                "enum" | "examples" => match value {
                    Node::Array(_) => {
                        out.insert(key.into(), value.to_value());
                    }
                    _ => self.issue(cursor, format!("`{key}` is not a list; ignored")),
                },
                "example" | "x-example" if !map.contains_key("examples") && !out.contains_key("examples") => {
                    out.insert("examples".into(), Value::Array(vec![value.to_value()]));
                }
                "const" | "default" => {
                    out.insert(key.into(), value.to_value());
                }
                "title" | "description" | "format" | "contentEncoding" | "contentMediaType" => match value {
                    Node::String(_) => {
                        out.insert(key.into(), value.to_value());
                    }
                    _ => self.issue(cursor, format!("`{key}` is not a string; ignored")),
                },
                // Unicode property classes compile in JavaScript (`u` mode) and Rust, not in
                // Python's `re`, which many clients validate arguments with.
                "pattern" if value.as_str().is_some_and(|it| it.contains("\\p{") || it.contains("\\P{")) => {
                    self.issue(
                        cursor,
                        format!("pattern {value} uses \\p{{…}} classes, which some clients cannot compile; ignored"),
                    );
                }
                "pattern" => match value.as_str().and_then(|it| self.memo.pattern(it)) {
                    Some(pattern) => {
                        out.insert(key.into(), Value::String(pattern));
                    }
                    None => self.issue(cursor, format!("pattern {value} is not a valid regex; ignored")),
                },
                "uniqueItems" | "deprecated" | "readOnly" | "writeOnly" => {
                    if let Node::Bool(it) = value {
                        out.insert(key.into(), Value::Bool(*it));
                    }
                }
                "maxLength" | "minLength" | "maxItems" | "minItems" | "maxProperties" | "minProperties"
                | "maxContains" | "minContains" => match non_negative_integer(value) {
                    Some(n) => {
                        out.insert(key.into(), Value::Number(n.into()));
                    }
                    None => self.issue(cursor, format!("`{key}` is not a non-negative integer; ignored")),
                },
                "multipleOf" => match number(value) {
                    Some(n) if n.as_f64().is_some_and(|it| it > 0.0) => {
                        out.insert(key.into(), Value::Number(n));
                    }
                    _ => self.issue(cursor, "`multipleOf` is not a positive number; ignored"),
                },
                "maximum" | "minimum" => match number(value) {
                    Some(n) => {
                        out.insert(key.into(), Value::Number(n));
                    }
                    None => self.issue(cursor, format!("`{key}` is not a number; ignored")),
                },
                // Numbers already (3.1), or OpenAPI 3.0's boolean modifiers, handled below.
                "exclusiveMaximum" | "exclusiveMinimum" => {
                    if let Some(n) = number(value) {
                        out.insert(key.into(), Value::Number(n));
                    }
                }
                _ => {}
            }
        }
        if !hidden.is_empty()
            && let Some(Value::Array(required)) = out.get_mut("required")
        {
            required.retain(|it| !it.as_str().is_some_and(|name| hidden.contains(&name)));
        }
        for (flag, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
            if map.get(flag).and_then(Node::as_bool) == Some(true)
                && let Some(limit) = out.remove(bound)
            {
                out.insert(flag.into(), limit);
            }
        }
        if out.get("format").and_then(Value::as_str).is_some_and(|it| it == "binary" || it == "byte") {
            // The model exchanges bytes as base64 text; the forwarder decodes binary values.
            out.remove("format");
            out.insert("contentEncoding".into(), "base64".into());
        }
        if out.contains_key("$ref") && !is_31 {
            // OpenAPI 2.0 and 3.0 ignore a reference's siblings, but their annotations help the
            // model and cost little.
            out.retain(|key, _| {
                matches!(
                    key.as_str(),
                    "$ref" | "description" | "title" | "default" | "examples" | "deprecated"
                )
            });
        }
        if nullable {
            make_nullable(&mut out);
        }
        out
    }

    fn lower_list<'v>(
        &mut self,
        key: &'v str,
        value: &'v Node,
        out: &mut Map<String, Value>,
        cursor: &mut Cursor<'v>,
        depth: usize,
    ) {
        let Node::Array(items) = value else {
            self.issue(cursor, format!("`{key}` is not a list; ignored"));
            return;
        };
        if items.is_empty() {
            return;
        }
        cursor.steps.push(Step::Key(key));
        let mut lowered = Vec::with_capacity(items.len());
        for (idx, item) in items.iter().enumerate() {
            cursor.steps.push(Step::Index(idx));
            lowered.push(self.lower_value(item, cursor, depth + 1));
            cursor.steps.pop();
        }
        cursor.steps.pop();
        out.insert(if key == "items" { "prefixItems" } else { key }.to_owned(), Value::Array(lowered));
    }

    fn lower_type(&mut self, value: &Node, out: &mut Map<String, Value>, cursor: &Cursor<'_>) {
        let mut types: Vec<&'static str> = Vec::new();
        let mut valid = true;
        let names: Vec<&str> = match value {
            Node::String(it) => vec![&**it],
            Node::Array(items) => items.iter().map(|it| it.as_str().unwrap_or("?")).collect(),
            _ => vec!["?"],
        };
        for name in names {
            let it = match name {
                "null" => "null",
                "boolean" => "boolean",
                "object" => "object",
                "array" => "array",
                "number" => "number",
                "string" => "string",
                "integer" => "integer",
                // Swagger 2.0 uploads: the model sends base64 text.
                "file" => {
                    out.insert("contentEncoding".into(), "base64".into());
                    "string"
                }
                _ => {
                    valid = false;
                    continue;
                }
            };
            if !types.contains(&it) {
                types.push(it);
            }
        }
        if !valid {
            self.issue(cursor, format!("unknown type {value}; ignored"));
        }
        match types.as_slice() {
            [] => {}
            [one] => {
                out.insert("type".into(), Value::String((*one).to_owned()));
            }
            many => {
                out.insert("type".into(), many.iter().map(|it| Value::String((*it).to_owned())).collect());
            }
        }
    }

    /// Whether a property must leave this direction's schema (`readOnly` in input,
    /// `writeOnly` in output), looking through one `$ref`.
    fn hidden(&self, doc: DocId, property: &Node) -> bool {
        let key = match self.direction {
            Direction::Input => "readOnly",
            Direction::Output => "writeOnly",
        };
        if property.get(key).and_then(Node::as_bool) == Some(true) {
            return true;
        }
        let target = property
            .get("$ref")
            .and_then(Node::as_str)
            .and_then(|it| self.spec.documents.target(doc, it).ok());
        target.and_then(|it| self.spec.documents.get(&it)).and_then(|it| it.get(key)).and_then(Node::as_bool)
            == Some(true)
    }
}

enum Reference {
    Def(String),
    Omitted(String),
}

/// What stands for a schema left out for size: any value, described by name.
fn omitted_stub(name: &str) -> Value {
    json!({"description": format!("A `{name}`; its schema is left out to keep the tool small.")})
}

/// A readable name for a referenced schema: its key, or its file's stem.
fn display_name(spec: &Spec, target: &Target) -> String {
    match target.pointer.rsplit('/').next() {
        Some(token) if !token.is_empty() => token.replace("~1", "/").replace("~0", "~"),
        _ => {
            let file = spec.documents.name(target.doc);
            let file = file.rsplit('/').next().unwrap_or(file);
            file.split('.').next().unwrap_or(file).to_owned()
        }
    }
}

/// Adds `null` to the accepted values (OpenAPI 3.0 `nullable`, Swagger 2.0 `x-nullable`).
fn make_nullable(out: &mut Map<String, Value>) {
    if let Some(Value::Array(values)) = out.get_mut("enum")
        && !values.contains(&Value::Null)
    {
        values.push(Value::Null);
    }
    let empty = out.is_empty();
    match out.get_mut("type") {
        Some(Value::String(one)) => {
            let one = std::mem::take(one);
            out.insert("type".into(), json!([one, "null"]));
        }
        Some(Value::Array(many)) => {
            if !many.iter().any(|it| it == "null") {
                many.push("null".into());
            }
        }
        _ if empty => {}
        _ => {
            let mut inner = std::mem::take(out);
            for key in ["title", "description"] {
                if let Some(it) = inner.remove(key) {
                    out.insert(key.into(), it);
                }
            }
            out.insert("anyOf".into(), json!([inner, {"type": "null"}]));
        }
    }
}

/// The strings of a list, each once, in order (JSON Schema requires unique property names).
fn unique_strings(items: &[Node]) -> Vec<Value> {
    let mut names: Vec<Value> = Vec::new();
    for name in items.iter().filter_map(Node::as_str) {
        if !names.iter().any(|it| it.as_str() == Some(name)) {
            names.push(Value::String(name.to_owned()));
        }
    }
    names
}

fn number(value: &Node) -> Option<Number> {
    match value {
        Node::Number(n) => Some(n.clone()),
        Node::String(text) => {
            let text = text.trim();
            text.parse::<i64>()
                .ok()
                .map(Number::from)
                .or_else(|| text.parse::<f64>().ok().and_then(Number::from_f64))
        }
        _ => None,
    }
}

fn non_negative_integer(value: &Node) -> Option<u64> {
    let n = number(value)?;
    n.as_u64().or_else(|| {
        n.as_f64().filter(|it| *it >= 0.0 && it.fract() == 0.0 && *it < 9.0e15).map(|it| it as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::without_identity_escapes;

    #[test]
    fn needless_escapes_are_dropped_and_meaningful_ones_kept() {
        assert_eq!(without_identity_escapes(r"^[a-zA-Z0-9_\-\:]+$"), r"^[a-zA-Z0-9_\-:]+$");
        assert_eq!(without_identity_escapes(r"\d+\.\d+\@x\/y"), r"\d+\.\d+@x\/y");
        assert_eq!(without_identity_escapes(r"a\-b"), "a-b");
        assert_eq!(without_identity_escapes(r"\\\:"), r"\\:");
    }
}
