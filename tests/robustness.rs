//! Robustness: whatever bytes arrive, `openapi::ingest` and `tools::generate` neither panic nor
//! overflow the stack, and every tool they emit keeps what MCP clients rely on (unique valid
//! names, an object root, `$ref`s that resolve inside the tool's own `$defs`, valid JSON Schema).
//!
//! The properties start from real documents in `openapi-samples/` and break them the way
//! hand-written and generated documents break: keys deleted, nodes replaced, subtrees copied
//! elsewhere, `$ref`s to nowhere, to themselves or to the network, nonsense `type`s, nesting
//! hundreds of levels deep. Arbitrary bytes and almost-YAML text cover the parsers. Fixed
//! regressions cover what random mutation rarely reaches: very deep nesting, very long `$ref`
//! chains and `$ref` cycles. `fuzz/` runs the byte-level property for as long as one likes.

use mcpgate::{openapi, tools};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

#[path = "support/invariants.rs"]
mod invariants;

const SAMPLES: [(&str, &str); 6] = [
    ("oai-petstore-v2.yaml", include_str!("../openapi-samples/oai-petstore-v2.yaml")),
    ("swagger-petstore-v3.yaml", include_str!("../openapi-samples/swagger-petstore-v3.yaml")),
    ("readme-train-travel.yaml", include_str!("../openapi-samples/readme-train-travel.yaml")),
    ("readme-parameters-style.json", include_str!("../openapi-samples/readme-parameters-style.json")),
    ("readme-polymorphism.yaml", include_str!("../openapi-samples/readme-polymorphism.yaml")),
    ("readme-circular.json", include_str!("../openapi-samples/readme-circular.json")),
];

/// serde_json refuses input with this many arrays and objects nested; `ingest` reports such a
/// document as a syntax error before any of mcpgate's own code walks it.
const PARSER_DEPTH_LIMIT: usize = 128;

/// Mutated documents are kept below this depth: the test itself serializes them with serde's
/// recursive serializer, in a debug build, on a test thread's 2 MiB stack.
const MAX_MUTATED_DEPTH: usize = 450;

/// The cases each property runs by default. The whole file must stay well under a minute in a
/// debug build (CI runs it on every submission), and converting and validating a mutated sample
/// costs about 10 ms there (all properties together take about 5 s); `fuzz/` is the place for
/// long runs.
const MUTATION_CASES: u32 = 384;
const BYTES_CASES: u32 = 1024;
const YAML_CASES: u32 = 256;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------------
// The invariants.

/// Ingests `doc` as JSON and checks the result. A document may be refused only when it is
/// unreadable (nested beyond the parser's limit) or does not declare a version mcpgate reads.
#[track_caller]
fn check_document(doc: &Value) {
    let bytes = serde_json::to_vec(doc).expect("a JSON tree serializes");
    match openapi::ingest(&bytes) {
        Ok(spec) => check_spec(&spec),
        Err(openapi::Error::Syntax(err)) => {
            let depth = depth(doc);
            assert!(depth >= PARSER_DEPTH_LIMIT, "a readable document {depth} levels deep refused: {err}");
        }
        Err(err) => {
            assert!(!declares_supported_version(doc), "a document with a readable version refused: {err}")
        }
    }
}

/// Ingests arbitrary bytes; refusing them is fine, panicking is not, and what is accepted must
/// convert to valid tools.
#[track_caller]
fn check_bytes(bytes: &[u8]) {
    if let Ok(spec) = openapi::ingest(bytes) {
        check_spec(&spec);
    }
}

#[track_caller]
fn check_spec(spec: &openapi::Spec) {
    for (name, definition) in invariants::check_structure(spec) {
        // What the corpus test asks of real documents holds for broken ones too: the schemas
        // are valid JSON Schema 2020-12 and compile, so a client's validator accepts them.
        for schema in [Some(&definition["inputSchema"]), definition.get("outputSchema")].into_iter().flatten()
        {
            if let Err(err) = jsonschema::draft202012::meta::validate(schema) {
                panic!("{name}: not valid JSON Schema 2020-12: {err}\n{schema}");
            }
            if let Err(err) = jsonschema::draft202012::new(schema) {
                panic!("{name}: does not compile: {err}\n{schema}");
            }
        }
    }
}

/// Mirrors `openapi::ingest`'s version check, as the oracle for "refused only when the version
/// is not one mcpgate reads".
fn declares_supported_version(doc: &Value) -> bool {
    let text = |value: &Value| match value {
        Value::String(it) => it.clone(),
        other => other.to_string(),
    };
    let Value::Object(map) = doc else { return false };
    if let Some(found) = map.get("openapi").map(text) {
        return ["3.0", "3.1", "3.2"].iter().any(|it| found.starts_with(it));
    }
    map.get("swagger").map(text).is_some_and(|it| it == "2.0" || it == "2")
}

/// How many arrays and objects are nested at the deepest point (a scalar root is 0).
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 1)];
    while let Some((value, level)) = stack.pop() {
        match value {
            Value::Object(map) => {
                deepest = deepest.max(level);
                stack.extend(map.values().map(|it| (it, level + 1)));
            }
            Value::Array(items) => {
                deepest = deepest.max(level);
                stack.extend(items.iter().map(|it| (it, level + 1)));
            }
            _ => {}
        }
    }
    deepest
}

fn sample(idx: usize) -> Value {
    let (name, text) = SAMPLES[idx];
    if name.ends_with(".json") {
        serde_json::from_str(text).expect("the JSON fixtures parse")
    } else {
        serde_saphyr::from_str(text).expect("the YAML fixtures parse")
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations of a JSON tree.

/// One step from a node to a child.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

type Path = Vec<Step>;

#[derive(Debug, Clone)]
enum Mutation {
    /// Removes an object member or an array element.
    Delete(Index),
    /// Replaces a node with another value.
    Replace(Index, Replacement),
    /// Copies one subtree over another node (possibly its own ancestor or descendant).
    Duplicate { from: Index, to: Index },
    /// Turns an object into a `$ref` to itself or to one of its ancestors, with or without its
    /// other keys beside the `$ref`.
    SelfRef { at: Index, up: usize, keep_siblings: bool },
    /// Sets `type` on an object to something that is not a type name.
    GarbageType(Index, Value),
    /// Wraps a node in `depth` layers of one wrapper.
    Wrap { at: Index, depth: usize, wrapper: Wrapper },
    /// Moves an object member to another key (`$ref`, `properties`, an `x-` key...).
    Rename(Index, String),
}

#[derive(Debug, Clone)]
enum Replacement {
    Json(Value),
    /// `{"$ref": ...}`, the target chosen when the mutation is applied.
    Ref(RefTarget),
}

#[derive(Debug, Clone)]
enum RefTarget {
    /// Any node of the document.
    Node(Index),
    /// A named schema (`components/schemas/*` or `definitions/*`).
    Schema(Index),
    /// The node being replaced.
    Itself,
    /// Nonexistent, anchor, external-file, network or malformed references.
    Text(String),
}

#[derive(Debug, Clone, Copy)]
enum Wrapper {
    Items,
    AllOf,
    AnyOf,
    Not,
    Properties,
    AdditionalProperties,
    Schema,
    Array,
}

impl Wrapper {
    fn wrap(self, inner: Value) -> Value {
        match self {
            Wrapper::Items => json!({"type": "array", "items": inner}),
            Wrapper::AllOf => json!({"allOf": [inner]}),
            Wrapper::AnyOf => json!({"anyOf": [{"type": "null"}, inner]}),
            Wrapper::Not => json!({"not": inner}),
            Wrapper::Properties => json!({"type": "object", "properties": {"a": inner}}),
            Wrapper::AdditionalProperties => json!({"additionalProperties": inner}),
            Wrapper::Schema => json!({"schema": inner}),
            Wrapper::Array => json!([inner]),
        }
    }
}

/// Words that mean something somewhere in an OpenAPI document or a JSON Schema.
#[rustfmt::skip]
const KEYWORDS: &[&str] = &[
    "openapi", "swagger", "info", "paths", "components", "schemas", "definitions", "parameters",
    "requestBody", "responses", "content", "application/json", "application/x-www-form-urlencoded",
    "multipart/form-data", "text/plain", "*/*", "schema", "200", "201", "2XX", "default", "get", "post",
    "put", "delete", "patch", "in", "name", "path", "query", "header", "cookie", "body", "formData",
    "required", "type", "object", "array", "string", "integer", "number", "boolean", "null", "file",
    "properties", "additionalProperties", "patternProperties", "items", "prefixItems", "allOf", "anyOf",
    "oneOf", "not", "$ref", "$defs", "enum", "const", "nullable", "x-nullable", "readOnly", "writeOnly",
    "format", "binary", "pattern", "minimum", "maximum", "exclusiveMinimum", "multipleOf", "maxLength",
    "example", "examples", "discriminator", "style", "explode", "servers", "url", "variables", "security",
    "securitySchemes", "securityDefinitions", "apiKey", "operationId", "x-mcp-name", "x-mcp-hidden",
    "x-mcp-annotations", "readOnlyHint", "summary", "description", "{id}", "/a/{id}", "dependentRequired",
    "dependentSchemas", "propertyNames", "contains", "minContains", "if", "then", "else",
    "unevaluatedProperties", "uniqueItems", "minItems", "contentMediaType", "contentSchema", "title",
    "deprecated", "collectionFormat", "allowEmptyValue", "mapping", "propertyName",
];

/// `$ref` values that must not resolve, or must not be followed.
const REF_TEXTS: &[&str] = &[
    "",
    "#",
    "#/",
    "#//",
    "#/components/schemas/DoesNotExist",
    "#/definitions/Nope",
    "#/paths",
    "#/paths/~1a~1{id}",
    "#/info/title",
    "#/servers/0",
    "#/servers/99",
    "#/components/schemas/%",
    "#/components/schemas/%zz",
    "#/~2",
    "#anchor",
    "#/$defs/X",
    "other.yaml",
    "other.json#/components/schemas/Pet",
    "./defs/pet.yaml#/Pet",
    "../../../etc/passwd",
    "/etc/passwd",
    "..\\windows.yaml",
    "%2e%2e/x.yaml",
    "a\u{0}b.yaml",
    "https://example.com/openapi.json#/components/schemas/Pet",
    "http://127.0.0.1:1/x",
    "//example.com/x",
    "file:///etc/passwd",
    "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
    "data:,{}",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(KEYWORDS).prop_map(str::to_owned),
        1 => "\\PC{0,10}",
        1 => "x-[a-z]{1,5}",
    ]
}

fn ref_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(REF_TEXTS).prop_map(str::to_owned),
        1 => "#(/[a-zA-Z0-9~%{}.$]{0,8}){0,4}",
        1 => "[a-z./%:]{0,12}(#(/[a-zA-Z0-9]{0,6}){0,3})?",
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        // Non-finite numbers have no JSON form; `Value::from` makes them `null`.
        any::<f64>().prop_map(Value::from),
        Just(json!(-0.0)),
        Just(json!(u64::MAX)),
        key().prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner.clone()), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
            (ref_text(), inner).prop_map(|(reference, sibling)| json!({"$ref": reference, "type": sibling})),
        ]
    })
}

fn garbage_type() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            json!("strnig"),
            json!(""),
            json!("Object"),
            json!(null),
            json!(42),
            json!(true),
            json!([]),
            json!(["null"]),
            json!(["string", "string", "bogus"]),
            json!(["object", 1, null]),
            json!({"type": "object"}),
            json!("file"),
        ]),
        json_value(),
    ]
}

fn wrapper() -> impl Strategy<Value = Wrapper> {
    prop::sample::select(vec![
        Wrapper::Items,
        Wrapper::AllOf,
        Wrapper::AnyOf,
        Wrapper::Not,
        Wrapper::Properties,
        Wrapper::AdditionalProperties,
        Wrapper::Schema,
        Wrapper::Array,
    ])
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let replacement = prop_oneof![
        3 => json_value().prop_map(Replacement::Json),
        1 => any::<Index>().prop_map(|it| Replacement::Ref(RefTarget::Node(it))),
        2 => any::<Index>().prop_map(|it| Replacement::Ref(RefTarget::Schema(it))),
        1 => Just(Replacement::Ref(RefTarget::Itself)),
        2 => ref_text().prop_map(|it| Replacement::Ref(RefTarget::Text(it))),
    ];
    // Depths on both sides of the parser's limit: below it the converter's own depth caps are
    // exercised, above it the parser's.
    let wrap_depth = prop_oneof![1usize..40, 90usize..140, 250usize..400];
    prop_oneof![
        2 => any::<Index>().prop_map(Mutation::Delete),
        3 => (any::<Index>(), replacement).prop_map(|(at, it)| Mutation::Replace(at, it)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(from, to)| Mutation::Duplicate { from, to }),
        2 => (any::<Index>(), 0usize..4, any::<bool>())
            .prop_map(|(at, up, keep_siblings)| Mutation::SelfRef { at, up, keep_siblings }),
        1 => (any::<Index>(), garbage_type()).prop_map(|(at, it)| Mutation::GarbageType(at, it)),
        1 => (any::<Index>(), wrap_depth, wrapper()).prop_map(|(at, depth, wrapper)| Mutation::Wrap { at, depth, wrapper }),
        1 => (any::<Index>(), key()).prop_map(|(at, it)| Mutation::Rename(at, it)),
    ]
}

/// Every node below the root, in document order. Iterative: mutated documents are deep.
fn paths(root: &Value) -> Vec<Path> {
    let mut out = Vec::new();
    let mut stack: Vec<(&Value, Path)> = vec![(root, Vec::new())];
    while let Some((value, path)) = stack.pop() {
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter().rev() {
                    let mut child_path = path.clone();
                    child_path.push(Step::Key(key.clone()));
                    stack.push((child, child_path));
                }
            }
            Value::Array(items) => {
                for (idx, child) in items.iter().enumerate().rev() {
                    let mut child_path = path.clone();
                    child_path.push(Step::Index(idx));
                    stack.push((child, child_path));
                }
            }
            _ => {}
        }
        if !path.is_empty() {
            out.push(path);
        }
    }
    out
}

fn node<'a>(root: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(root, |value, step| match step {
        Step::Key(key) => value.get(key),
        Step::Index(idx) => value.get(idx),
    })
}

fn node_mut<'a>(root: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    path.iter().try_fold(root, |value, step| match step {
        Step::Key(key) => value.get_mut(key),
        Step::Index(idx) => value.get_mut(idx),
    })
}

fn pointer(path: &[Step]) -> String {
    let mut out = String::from("#");
    for step in path {
        out.push('/');
        match step {
            Step::Key(key) => out.push_str(&openapi::escape_token(key)),
            Step::Index(idx) => out.push_str(&idx.to_string()),
        }
    }
    out
}

fn is_named_schema(path: &[Step]) -> bool {
    match path {
        [Step::Key(a), Step::Key(b), Step::Key(_)] => a == "components" && b == "schemas",
        [Step::Key(a), Step::Key(_)] => a == "definitions",
        _ => false,
    }
}

/// Applies `mutation` to `doc`; a mutation that finds nothing to act on does nothing.
fn apply(doc: &mut Value, mutation: &Mutation) {
    let all = paths(doc);
    if all.is_empty() {
        return;
    }
    let pick = |index: &Index| all[index.index(all.len())].clone();
    let objects: Vec<&Path> = all.iter().filter(|it| node(doc, it).is_some_and(Value::is_object)).collect();
    let pick_object =
        |index: &Index| (!objects.is_empty()).then(|| objects[index.index(objects.len())].clone());
    match mutation {
        Mutation::Delete(at) => {
            let mut path = pick(at);
            let last = path.pop().expect("paths are below the root");
            match (node_mut(doc, &path), last) {
                (Some(Value::Object(map)), Step::Key(key)) => {
                    map.shift_remove(&key);
                }
                (Some(Value::Array(items)), Step::Index(idx)) => {
                    items.remove(idx);
                }
                _ => {}
            }
        }
        Mutation::Replace(at, replacement) => {
            let path = pick(at);
            let value = match replacement {
                Replacement::Json(value) => value.clone(),
                Replacement::Ref(target) => {
                    let reference = match target {
                        RefTarget::Node(index) => pointer(&pick(index)),
                        RefTarget::Schema(index) => {
                            let schemas: Vec<&Path> = all.iter().filter(|it| is_named_schema(it)).collect();
                            match schemas.is_empty() {
                                true => "#/components/schemas/None".to_owned(),
                                false => pointer(schemas[index.index(schemas.len())]),
                            }
                        }
                        RefTarget::Itself => pointer(&path),
                        RefTarget::Text(text) => text.clone(),
                    };
                    json!({"$ref": reference})
                }
            };
            if let Some(node) = node_mut(doc, &path) {
                *node = value;
            }
        }
        Mutation::Duplicate { from, to } => {
            let copy = node(doc, &pick(from)).cloned();
            if let (Some(copy), Some(node)) = (copy, node_mut(doc, &pick(to))) {
                *node = copy;
            }
        }
        Mutation::SelfRef { at, up, keep_siblings } => {
            let Some(path) = pick_object(at) else { return };
            let target = pointer(&path[..path.len().saturating_sub(*up)]);
            if let Some(Value::Object(map)) = node_mut(doc, &path) {
                if !keep_siblings {
                    map.clear();
                }
                map.insert("$ref".into(), Value::String(target));
            }
        }
        Mutation::GarbageType(at, value) => {
            let Some(path) = pick_object(at) else { return };
            if let Some(Value::Object(map)) = node_mut(doc, &path) {
                map.insert("type".into(), value.clone());
            }
        }
        Mutation::Wrap { at, depth, wrapper } => {
            let path = pick(at);
            if let Some(node) = node_mut(doc, &path) {
                let mut value = std::mem::take(node);
                for _ in 0..*depth {
                    value = wrapper.wrap(value);
                }
                *node = value;
            }
        }
        Mutation::Rename(at, new_key) => {
            let mut path = pick(at);
            let Some(Step::Key(old_key)) = path.pop() else { return };
            if let Some(Value::Object(map)) = node_mut(doc, &path)
                && let Some(value) = map.shift_remove(&old_key)
            {
                map.insert(new_key.clone(), value);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Almost-YAML text.

#[derive(Debug, Clone)]
enum LineEdit {
    Delete(Index),
    Duplicate(Index),
    Swap(Index, Index),
    /// Re-indents a line by this many spaces (negative: dedents).
    Indent(Index, i8),
    /// Inserts a YAML-significant fragment into a line at a character position.
    Insert(Index, Index, String),
}

/// Fragments that change what YAML means: anchors and aliases, merge keys, tags, flow and block
/// indicators, quotes, documents markers, directives, tabs and byte-order marks.
#[rustfmt::skip]
const YAML_FRAGMENTS: &[&str] = &[
    "&a ", "*a", "<<: *a", "&a {b: *a}", "!!str ", "!!binary ", "!!int ", "!!map ", "!custom ", "!<tag:x> ",
    "? ", "- ", "{", "}", "[", "]", ", ", "|", ">-", "'", "\"", "#", ": ", "---\n", "...\n", "%YAML 1.2\n",
    "%TAG ! tag:x,2000:\n", "\t", "~", "null", "0x1F", "1e999", ".nan", "\u{FEFF}", "\u{0}", "\r", "\\",
    "$ref: '#/components/schemas/Pet'", "$ref: '#'", "openapi: 3.1.0", "swagger: '2.0'",
];

fn line_edit() -> impl Strategy<Value = LineEdit> {
    let fragment = prop_oneof![
        3 => prop::sample::select(YAML_FRAGMENTS).prop_map(str::to_owned),
        1 => "\\PC{0,6}",
    ];
    prop_oneof![
        2 => any::<Index>().prop_map(LineEdit::Delete),
        1 => any::<Index>().prop_map(LineEdit::Duplicate),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| LineEdit::Swap(a, b)),
        2 => (any::<Index>(), -6i8..6).prop_map(|(at, by)| LineEdit::Indent(at, by)),
        3 => (any::<Index>(), any::<Index>(), fragment).prop_map(|(at, col, it)| LineEdit::Insert(at, col, it)),
    ]
}

fn edit_lines(text: &str, edits: &[LineEdit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for edit in edits {
        if lines.is_empty() {
            break;
        }
        let len = lines.len();
        match edit {
            LineEdit::Delete(at) => {
                lines.remove(at.index(len));
            }
            LineEdit::Duplicate(at) => {
                let idx = at.index(len);
                lines.insert(idx, lines[idx].clone());
            }
            LineEdit::Swap(a, b) => lines.swap(a.index(len), b.index(len)),
            LineEdit::Indent(at, by) => {
                let line = &mut lines[at.index(len)];
                if *by >= 0 {
                    line.insert_str(0, &" ".repeat(*by as usize));
                } else {
                    let strip = line.len() - line.trim_start_matches(' ').len();
                    line.drain(..strip.min(by.unsigned_abs() as usize));
                }
            }
            LineEdit::Insert(at, col, fragment) => {
                let line = &mut lines[at.index(len)];
                let boundaries: Vec<usize> =
                    line.char_indices().map(|(idx, _)| idx).chain([line.len()]).collect();
                line.insert_str(boundaries[col.index(boundaries.len())], fragment);
            }
        }
    }
    lines.join("\n")
}

/// Short lines that look like YAML: keys, list items, flow collections, anchors and scalars.
fn yaml_like_line() -> impl Strategy<Value = String> {
    (0usize..8, "(- )?(\\$ref|[a-z]{1,6}|'[^'\n]{0,4}'|\"[^\"\n]{0,4}\"|\\? [a-z]{1,3})?(: ?)?[a-z0-9&*!#{}\\[\\],|>'\" ]{0,10}")
        .prop_map(|(indent, line)| format!("{}{line}", " ".repeat(indent)))
}

// ---------------------------------------------------------------------------------------------
// The properties.

proptest! {
    #![proptest_config(config(MUTATION_CASES))]

    #[test]
    fn mutated_documents_convert_to_valid_tools(
        sample_idx in 0..SAMPLES.len(),
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let mut doc = sample(sample_idx);
        for mutation in &mutations {
            let before = doc.clone();
            apply(&mut doc, mutation);
            if depth(&doc) > MAX_MUTATED_DEPTH {
                doc = before;
            }
        }
        check_document(&doc);
    }
}

proptest! {
    #![proptest_config(config(BYTES_CASES))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_bytes(&bytes);
    }

    /// Bytes after a valid document head get past version detection more often than random ones.
    #[test]
    fn arbitrary_bytes_after_a_document_head_never_panic(
        head in prop::sample::select(vec![
            "openapi: 3.0.0\npaths:\n",
            "openapi: 3.1.0\ncomponents:\n  schemas:\n",
            "swagger: '2.0'\npaths:\n  /a/{id}:\n",
            "{\"openapi\": \"3.0.3\", \"paths\": ",
        ]),
        tail in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = head.as_bytes().to_vec();
        bytes.extend(tail);
        check_bytes(&bytes);
    }
}

proptest! {
    #![proptest_config(config(YAML_CASES))]

    #[test]
    fn edited_yaml_documents_never_panic(
        sample_idx in prop::sample::select(vec![0usize, 1, 2, 4]),
        edits in prop::collection::vec(line_edit(), 1..12),
    ) {
        let text = edit_lines(SAMPLES[sample_idx].1, &edits);
        check_bytes(text.as_bytes());
    }

    #[test]
    fn yaml_like_text_never_panics(
        head in prop::sample::select(vec!["", "openapi: 3.0.0\n", "swagger: '2.0'\n", "openapi: 3.1.0\npaths:\n"]),
        lines in prop::collection::vec(yaml_like_line(), 0..24),
    ) {
        let text = format!("{head}{}", lines.join("\n"));
        check_bytes(text.as_bytes());
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions.

/// A 3.0 document whose one operation, `POST /a`, takes and returns `schema` (JSON text).
fn with_schema(schema: &str, components: &str) -> String {
    format!(
        r#"{{"openapi": "3.0.3", "info": {{"title": "t", "version": "1"}},
"paths": {{"/a": {{"post": {{"operationId": "op",
  "requestBody": {{"content": {{"application/json": {{"schema": {schema}}}}}}},
  "responses": {{"200": {{"description": "ok", "content": {{"application/json": {{"schema": {schema}}}}}}}}}}}}}}},
"components": {{"schemas": {{{components}}}}}}}"#
    )
}

fn convert(text: &str) -> tools::Generated {
    let spec = openapi::ingest(text.as_bytes()).expect("the document is readable");
    check_spec(&spec);
    tools::generate(&spec, &tools::Options::default())
}

fn warnings(generated: &tools::Generated, kind: tools::WarningKind) -> Vec<&str> {
    generated.report.warnings.iter().filter(|it| it.kind == kind).map(|it| it.message.as_str()).collect()
}

/// The same text through the YAML parser: JSON is YAML, and a leading comment keeps `ingest`
/// from recognizing it as JSON.
fn as_yaml(json: &str) -> String {
    format!("# read as YAML\n{json}")
}

#[test]
fn nesting_ten_thousand_deep_is_refused_without_overflow() {
    // Built as text: a `Value` this deep would overflow the test's own stack when dropped.
    let schema = format!("{}{{}}{}", r#"{"items": "#.repeat(10_000), "}".repeat(10_000));
    let json = with_schema(&schema, "");
    for text in [json.clone(), as_yaml(&json)] {
        let Err(err) = openapi::ingest(text.as_bytes()) else { panic!("the parser refuses the depth") };
        assert!(matches!(err, openapi::Error::Syntax(_)), "{err}");
    }
}

#[test]
fn nesting_just_below_the_parser_limit_is_cut_at_the_schema_depth_limit() {
    // The schema sits 9 levels down; 110 more stay under both parsers' limits.
    let schema = format!(
        "{}{{\"type\": \"string\"}}{}",
        r#"{"type": "array", "items": "#.repeat(110),
        "}".repeat(110)
    );
    let json = with_schema(&schema, "");
    for text in [json.clone(), as_yaml(&json)] {
        let generated = convert(&text);
        let [tool] = &generated.tools[..] else { panic!("one tool") };
        assert!(depth(&Value::Object((*tool.input_schema).clone())) < 100);
        let schema_warnings = warnings(&generated, tools::WarningKind::Schema);
        assert!(schema_warnings.iter().any(|it| it.contains("nested deeper than")), "{schema_warnings:?}");
    }
}

#[test]
fn a_chain_of_five_thousand_refs_converts() {
    const N: usize = 5_000;
    let mut components: Vec<String> = Vec::new();
    for i in 1..N {
        let next = i + 1;
        components.push(format!(
            r##""A{i}": {{"type": "object", "properties": {{"v": {{"type": "integer"}}, "next": {{"$ref": "#/components/schemas/A{next}"}}}}}}"##
        ));
        // A chain of pure aliases: nothing but `$ref` at every step.
        components.push(format!(r##""B{i}": {{"$ref": "#/components/schemas/B{next}"}}"##));
    }
    components.push(format!(r#""A{N}": {{"type": "string"}}, "B{N}": {{"type": "string"}}"#));
    let schema = r##"{"type": "object", "properties": {"a": {"$ref": "#/components/schemas/A1"}, "b": {"$ref": "#/components/schemas/B1"}}}"##;
    let generated = convert(&with_schema(schema, &components.join(",\n")));

    let [tool] = &generated.tools[..] else { panic!("one tool") };
    // The size budget stops expansion long before the end of either chain.
    let truncated = warnings(&generated, tools::WarningKind::SchemaTruncated);
    assert_eq!(truncated.len(), 1, "{truncated:?}");
    assert!(tool.tokens < 2 * (tools::Options::default().max_schema_tokens + 1000), "{} tokens", tool.tokens);
    assert!(warnings(&generated, tools::WarningKind::Cycle).is_empty());
}

#[test]
fn a_chain_of_five_thousand_parameter_refs_is_cut_short() {
    const N: usize = 5_000;
    let mut parameters: Vec<String> =
        (1..N).map(|i| format!(r##""P{i}": {{"$ref": "#/components/parameters/P{}"}}"##, i + 1)).collect();
    parameters.push(format!(r#""P{N}": {{"name": "q", "in": "query", "schema": {{"type": "string"}}}}"#));
    let text = format!(
        r##"{{"openapi": "3.0.3", "info": {{"title": "t", "version": "1"}},
"paths": {{"/a": {{"get": {{"parameters": [{{"$ref": "#/components/parameters/P1"}}, {{"$ref": "#/components/parameters/P{}"}}], "responses": {{}}}}}}}},
"components": {{"parameters": {{{}}}}}}}"##,
        N - 3,
        parameters.join(",\n")
    );
    let generated = convert(&text);
    let [tool] = &generated.tools[..] else { panic!("one tool") };
    // The first reference is too long a chain to follow; the second reaches `q` in 4 hops.
    assert_eq!(tool.input_schema["properties"], json!({"q": {"type": "string"}}));
    let document_warnings = warnings(&generated, tools::WarningKind::Document);
    assert!(document_warnings.iter().any(|it| it.contains("chain longer than")), "{document_warnings:?}");
}

#[test]
fn ref_cycles_of_length_one_two_and_three_stay_refs() {
    let node = |name: &str, next: &str| {
        format!(
            r##""{name}": {{"type": "object", "properties": {{"v": {{"type": "string"}}, "next": {{"$ref": "#/components/schemas/{next}"}}}}}}"##
        )
    };
    let components = [
        node("C1", "C1"),
        node("C2a", "C2b"),
        node("C2b", "C2a"),
        node("C3a", "C3b"),
        node("C3b", "C3c"),
        node("C3c", "C3a"),
    ]
    .join(",\n");
    let schema = r##"{"type": "object", "properties": {
        "one": {"$ref": "#/components/schemas/C1"},
        "two": {"$ref": "#/components/schemas/C2a"},
        "three": {"$ref": "#/components/schemas/C3a"}}}"##;
    let generated = convert(&with_schema(schema, &components));
    let [tool] = &generated.tools[..] else { panic!("one tool") };

    let next = [("C1", "C1"), ("C2a", "C2b"), ("C2b", "C2a"), ("C3a", "C3b"), ("C3b", "C3c"), ("C3c", "C3a")];
    for schema in [&tool.input_schema, tool.output_schema.as_ref().expect("an output schema")] {
        assert_eq!(schema["properties"]["one"], json!({"$ref": "#/$defs/C1"}));
        assert_eq!(schema["properties"]["two"], json!({"$ref": "#/$defs/C2a"}));
        assert_eq!(schema["properties"]["three"], json!({"$ref": "#/$defs/C3a"}));
        let defs = schema["$defs"].as_object().expect("`$defs`");
        // Which definitions are kept matters here, not their order.
        let mut names: Vec<&str> = defs.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["C1", "C2a", "C2b", "C3a", "C3b", "C3c"]);
        for (name, target) in next {
            assert_eq!(
                defs[name]["properties"]["next"],
                json!({"$ref": format!("#/$defs/{target}")}),
                "{name}"
            );
        }
    }
    let cycles = warnings(&generated, tools::WarningKind::Cycle);
    let [cycle] = &cycles[..] else { panic!("one cycle warning: {cycles:?}") };
    let listed = cycle.strip_prefix("recursive schemas kept as references: ").expect(cycle);
    let mut listed: Vec<&str> = listed.split(", ").collect();
    listed.sort_unstable();
    assert_eq!(listed, ["C1", "C2a", "C2b", "C3a", "C3b", "C3c"]);
}

#[test]
fn alias_cycles_convert() {
    // Schemas that are nothing but a `$ref` back to themselves, directly or through others.
    let components = r##""S": {"$ref": "#/components/schemas/S"},
        "T1": {"$ref": "#/components/schemas/T2"}, "T2": {"$ref": "#/components/schemas/T1"},
        "U1": {"$ref": "#/components/schemas/U2"}, "U2": {"$ref": "#/components/schemas/U3"},
        "U3": {"$ref": "#/components/schemas/U1"}"##;
    let schema = r##"{"type": "object", "properties": {
        "s": {"$ref": "#/components/schemas/S"},
        "t": {"$ref": "#/components/schemas/T1"},
        "u": {"$ref": "#/components/schemas/U1"}}}"##;
    let generated = convert(&with_schema(schema, components));
    assert_eq!(generated.tools.len(), 1);
    assert_eq!(warnings(&generated, tools::WarningKind::Cycle).len(), 1);
}

#[test]
fn yaml_alias_bombs_are_refused() {
    // Each level holds nine aliases of the previous one: fully expanded, 9^8 nodes.
    let mut text = String::from("openapi: 3.0.0\nl0: &l0 [x, x, x, x, x, x, x, x, x]\n");
    for level in 1..=8 {
        let previous = level - 1;
        let aliases = vec![format!("*l{previous}"); 9].join(", ");
        text.push_str(&format!("l{level}: &l{level} [{aliases}]\n"));
    }
    text.push_str("paths: {}\n");
    // The node budget, sized by the input, stops the expansion long before memory runs out.
    let Err(err) = openapi::ingest(text.as_bytes()) else { panic!("an alias bomb is refused") };
    assert!(matches!(err, openapi::Error::Syntax(_)) && err.to_string().contains("budget"), "{err}");
}

#[test]
fn repeated_names_in_dependent_required_are_merged() {
    // JSON Schema 2020-12 requires the names in each `dependentRequired` list to be unique.
    let schema = r#"{"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "dependentRequired": {"a": ["b", "b"]}}"#;
    let generated = convert(&with_schema(schema, ""));
    let [tool] = &generated.tools[..] else { panic!("one tool") };
    let output = tool.output_schema.as_ref().expect("an output schema");
    assert_eq!(output["dependentRequired"], json!({"a": ["b"]}));
}
