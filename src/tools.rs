//! Generate: a [`Spec`] to MCP tool definitions, one per operation, with a [`Report`].
//! No IO, and no failure: what cannot be expressed well is a warning in the report.

mod budget;
mod compact;
mod input;
mod naming;
mod output;
pub mod plan;
mod report;
mod schema;

pub use naming::{fnv1a, sanitize};
pub use output::{OutputShape, WRAPPED_FIELD};
pub use report::*;
pub use schema::Direction;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::openapi::{Method, Operation, ParamLocation, SecurityKind, Spec, Target};
use naming::Namer;
use schema::{Memo, SchemaBuilder};

/// Knobs of the conversion.
#[derive(Debug, Clone)]
pub struct Options {
    /// Tool names are cut to this many characters (many clients allow 64).
    pub max_name_len: usize,
    /// Descriptions are cut to this many characters.
    pub max_description_len: usize,
    /// Referenced schemas stop being expanded once a tool's input or output schema reaches
    /// about this many tokens; the nearest references are expanded first.
    pub max_schema_tokens: usize,
    /// The same for the output schema; 0 leaves the output schema out (results are then
    /// unstructured text for the model, as with an API that declares no JSON response).
    pub max_output_schema_tokens: usize,
    /// Optional properties of objects nested deeper than this are left out of the schemas (the
    /// arguments are depth 0); required ones are always kept.
    pub optional_depth: Option<usize>,
    /// Options of single operations, by key (operationId, else `METHOD path`), instead of these.
    pub per_operation: HashMap<String, Options>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_name_len: 64,
            max_description_len: 1024,
            max_schema_tokens: 6000,
            max_output_schema_tokens: 6000,
            optional_depth: None,
            per_operation: HashMap::new(),
        }
    }
}

/// One MCP tool and what the forwarder needs to turn a call back into an HTTP request.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: String,
    pub title: Option<String>,
    pub description: String,
    /// JSON Schema 2020-12, root `type: object`, self-contained. Shared, because every
    /// `tools/list` hands the same schemas out again.
    pub input_schema: Arc<Map<String, Value>>,
    pub output_schema: Option<Arc<Map<String, Value>>>,
    pub output: OutputShape,
    pub annotations: Annotations,
    /// Index of the operation in `Spec::operations`.
    pub operation: usize,
    /// How a call becomes the operation's HTTP request.
    pub plan: plan::CallPlan,
    /// Estimated size of the definition in a model's context.
    pub tokens: usize,
}

/// MCP tool annotations (all hints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotations {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub open_world: bool,
}

pub struct Generated {
    pub tools: Vec<ToolSpec>,
    pub report: Report,
}

pub fn generate(spec: &Spec, options: &Options) -> Generated {
    let mut tools = Vec::with_capacity(spec.operations.len());
    let report = generate_each(spec, options, |tool| tools.push(tool));
    Generated { tools, report }
}

/// Hands each tool to `emit` as soon as it is made, in document order, and returns the report;
/// a caller that writes tools out need not hold them all.
pub fn generate_each(spec: &Spec, options: &Options, mut emit: impl FnMut(ToolSpec)) -> Report {
    let mut namer = Namer::new(options.max_name_len);
    let mut memo = Memo::default();
    let mut warnings: Vec<Warning> = spec
        .warnings
        .iter()
        .map(|it| Warning {
            kind: WarningKind::Document,
            operation: None,
            location: spec.render_location(&it.location),
            message: it.message.clone(),
        })
        .collect();
    let mut seen_schema_issues = HashSet::new();
    let credentials = credential_parameters(spec);
    let is_credential =
        |location: ParamLocation, name: &str| credentials.contains(&(location, name.to_ascii_lowercase()));

    let mut per_tool = Vec::with_capacity(spec.operations.len());
    let mut output_cache: HashMap<Target, LoweredOutput> = HashMap::new();
    for (idx, operation) in spec.operations.iter().enumerate() {
        let shared = options;
        let options = match shared.per_operation.is_empty() {
            true => shared,
            false => shared.per_operation.get(&operation.key()).unwrap_or(shared),
        };
        let label = operation.label();
        let location = spec.render_location(&operation.location);
        let mut warn = |kind, message: String| {
            warnings.push(Warning {
                kind,
                operation: Some(label.clone()),
                location: location.clone(),
                message,
            });
        };

        let named = namer.name(operation);
        if named.shortened {
            warn(
                WarningKind::NameShortened,
                format!("name shortened to `{}` ({} characters at most)", named.name, options.max_name_len),
            );
        }
        if let Some(taken) = &named.collided {
            warn(
                WarningKind::NameCollision,
                format!("`{taken}` is taken by an earlier operation; named `{}`", named.name),
            );
        }
        let (description, capped) = describe(operation, options.max_description_len);
        if capped {
            warn(
                WarningKind::DescriptionCapped,
                format!("description cut to {} characters", options.max_description_len),
            );
        }

        let mut builder =
            SchemaBuilder::new(spec, Direction::Input, &mut memo, options.max_schema_tokens * 4);
        let input = input::build(operation, &mut builder, &is_credential);
        for header in &input.managed {
            warn(
                WarningKind::HeaderManaged,
                format!("header {header} is set by mcpgate and is not shown to the model"),
            );
        }
        for hidden in &input.hidden {
            warn(
                WarningKind::CredentialHidden,
                format!("{hidden} carries a credential and is not shown to the model"),
            );
        }
        let mut omitted = builder.omitted.clone();
        let (mut input_schema, recursive_in, issues_in) = finish(input.schema, builder);
        if let Some(depth) = options.optional_depth {
            budget::prune_optional(&mut input_schema, depth);
            budget::fit(&mut input_schema, options.max_schema_tokens, budget::Keep::Arguments);
        }

        // Operations with options of their own lower their output alone.
        let cache_key = output::cache_key(spec, operation).filter(|_| std::ptr::eq(options, shared));
        let output = match cache_key {
            Some(key) => match output_cache.get(&key) {
                // Operations that return the same schema share its lowering; its issues were
                // reported the first time.
                Some(hit) => LoweredOutput { issues: Vec::new(), ..LoweredOutput::clone(hit) },
                None => {
                    let lowered = lower_output(spec, operation, &mut memo, options);
                    output_cache.insert(key, lowered.clone());
                    lowered
                }
            },
            None => lower_output(spec, operation, &mut memo, options),
        };
        let LoweredOutput {
            schema: output_schema,
            shape: output_shape,
            recursive: recursive_out,
            omitted: omitted_out,
            issues: issues_out,
        } = output;
        omitted.extend(omitted_out.into_iter().filter(|it| !omitted.contains(it)).collect::<Vec<_>>());
        if output_shape == OutputShape::Wrapped {
            warn(
                WarningKind::OutputWrapped,
                format!("the response is not an object; structured output is wrapped in `{WRAPPED_FIELD}`"),
            );
        }
        let mut recursive: Vec<String> = recursive_in;
        for name in recursive_out {
            if !recursive.contains(&name) {
                recursive.push(name);
            }
        }
        if !omitted.is_empty() {
            warn(
                WarningKind::SchemaTruncated,
                format!("schema size limit reached; not expanded: {}", omitted.join(", ")),
            );
        }
        if !recursive.is_empty() {
            warn(
                WarningKind::Cycle,
                format!("recursive schemas kept as references: {}", recursive.join(", ")),
            );
        }
        for issue in issues_in.into_iter().chain(issues_out) {
            if seen_schema_issues.insert(issue.clone()) {
                warnings.push(Warning {
                    kind: WarningKind::Schema,
                    operation: Some(label.clone()),
                    location: issue.location,
                    message: issue.message,
                });
            }
        }

        let mut tool = ToolSpec {
            title: operation.summary.as_deref().map(one_line).filter(|it| !it.is_empty()),
            name: named.name,
            description,
            input_schema: Arc::new(input_schema),
            output_schema,
            output: output_shape,
            annotations: annotations(operation),
            operation: idx,
            plan: plan::CallPlan {
                method: operation.method.into(),
                path: operation.path.clone(),
                parameters: input.parameters,
                body: input.body,
                required: input.required,
            },
            tokens: 0,
        };
        tool.tokens = estimate_tokens(&tool);
        per_tool.push(ToolTokens { name: tool.name.clone(), operation: label.clone(), tokens: tool.tokens });
        emit(tool);
    }

    Report {
        document: DocumentSummary {
            title: spec.info.title.clone(),
            version: spec.info.version.clone(),
            spec_version: spec.version_text.clone(),
            format: spec.format.as_str(),
            files: spec.documents.len(),
        },
        operations: spec.operations.len() + spec.skipped.len(),
        tools: per_tool.len(),
        skipped: spec
            .skipped
            .iter()
            .map(|it| SkippedOperation {
                operation: it.operation.clone(),
                location: spec.render_location(&it.location),
                reason: it.reason.clone(),
            })
            .collect(),
        warnings,
        tokens: TokenEstimate { total: per_tool.iter().map(|it| it.tokens).sum(), per_tool },
    }
}

/// A tool's output schema with what lowering it found.
#[derive(Clone)]
struct LoweredOutput {
    schema: Option<Arc<Map<String, Value>>>,
    shape: OutputShape,
    recursive: Vec<String>,
    omitted: Vec<String>,
    issues: Vec<schema::SchemaIssue>,
}

fn lower_output(spec: &Spec, operation: &Operation, memo: &mut Memo, options: &Options) -> LoweredOutput {
    let mut builder = SchemaBuilder::new(spec, Direction::Output, memo, options.max_output_schema_tokens * 4);
    let (schema, shape) = output::build(operation, &mut builder);
    let omitted = builder.omitted.clone();
    let (schema, recursive, issues) = match schema {
        // Left out by choice: the response is still parsed, and shown to the model as text.
        Some(_) if options.max_output_schema_tokens == 0 => (None, Vec::new(), Vec::new()),
        Some(schema) => {
            let (mut schema, recursive, issues) = finish(schema, builder);
            if let Some(depth) = options.optional_depth {
                budget::prune_optional(&mut schema, depth);
                budget::fit(&mut schema, options.max_output_schema_tokens, budget::Keep::RootShape);
            }
            (Some(Arc::new(schema)), recursive, issues)
        }
        None => (None, Vec::new(), builder.finish().1),
    };
    let shape = if options.max_output_schema_tokens == 0 { OutputShape::Unstructured } else { shape };
    LoweredOutput { schema, shape, recursive, omitted, issues }
}

/// Compacts a lowered root schema and attaches the definitions it still needs.
fn finish(
    mut root: Value,
    builder: SchemaBuilder<'_>,
) -> (Map<String, Value>, Vec<String>, Vec<schema::SchemaIssue>) {
    let (defs, issues) = builder.finish();
    let compacted = compact::compact(&mut root, defs);
    let mut root = match root {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    if !compacted.defs.is_empty() {
        root.insert("$defs".into(), Value::Object(compacted.defs));
    }
    (root, compacted.recursive, issues)
}

/// `(location, lowercase name)` of every parameter that carries a credential: API keys named by
/// `securitySchemes`, and the `Authorization` header that HTTP and OAuth schemes use.
fn credential_parameters(spec: &Spec) -> HashSet<(ParamLocation, String)> {
    let mut set = HashSet::new();
    set.insert((ParamLocation::Header, "authorization".to_owned()));
    for scheme in &spec.security_schemes {
        if let SecurityKind::ApiKey { name, location } = &scheme.kind {
            set.insert((*location, name.to_ascii_lowercase()));
        }
    }
    set
}

fn annotations(operation: &Operation) -> Annotations {
    let method = operation.method;
    let read_only = matches!(method, Method::Get | Method::Head | Method::Options);
    let mut annotations = Annotations {
        read_only,
        destructive: method == Method::Delete,
        idempotent: read_only || matches!(method, Method::Put | Method::Delete),
        open_world: true,
    };
    let overrides = &operation.mcp.annotations;
    let hint = |key: &str| overrides.get(key).and_then(Value::as_bool);
    annotations.read_only = hint("readOnlyHint").unwrap_or(annotations.read_only);
    annotations.destructive = hint("destructiveHint").unwrap_or(annotations.destructive);
    annotations.idempotent = hint("idempotentHint").unwrap_or(annotations.idempotent);
    annotations.open_world = hint("openWorldHint").unwrap_or(annotations.open_world);
    annotations
}

/// The description a model reads: `x-mcp-description`, else summary and description (the
/// summary left out when the description repeats it); never empty; cut to `max_len` characters.
fn describe(operation: &Operation, max_len: usize) -> (String, bool) {
    let mut text = match &operation.mcp.description {
        Some(it) => normalize_whitespace(it),
        None => {
            let summary = operation.summary.as_deref().map(normalize_whitespace).unwrap_or_default();
            let description = operation.description.as_deref().map(normalize_whitespace).unwrap_or_default();
            let key = |it: &str| it.trim_end_matches('.').to_lowercase();
            if summary.is_empty() || description.to_lowercase().starts_with(&key(&summary)) {
                description
            } else if description.is_empty() {
                summary
            } else {
                format!("{summary}\n\n{description}")
            }
        }
    };
    if text.is_empty() {
        text = operation.label();
    }
    if operation.deprecated {
        text.insert_str(0, "Deprecated. ");
    }
    if text.chars().count() <= max_len {
        return (text, false);
    }
    let cut: String = text.chars().take(max_len.saturating_sub(1)).collect();
    (format!("{}…", cut.trim_end()), true)
}

/// Trims lines, collapses runs of blanks within a line and of empty lines between paragraphs.
fn normalize_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(&line);
    }
    out
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// About one token per four bytes of the definition's compact JSON.
fn estimate_tokens(tool: &ToolSpec) -> usize {
    // Keys, quotes and annotations of the tool object itself.
    const ENVELOPE: usize = 160;
    let bytes = tool.name.len()
        + tool.title.as_ref().map_or(0, String::len)
        + tool.description.len()
        + json_len(&tool.input_schema)
        + tool.output_schema.as_deref().map_or(0, json_len)
        + ENVELOPE;
    bytes.div_ceil(4)
}

/// The length of `schema` as compact JSON, counted without building the text.
fn json_len(schema: &Map<String, Value>) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail, and a `Map` always serializes.
    let _ = serde_json::to_writer(&mut count, schema);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_is_normalized() {
        assert_eq!(normalize_whitespace("  a   b \n\n\n  c\td\n e  "), "a b\n\nc d\ne");
    }
}
