//! A tool's `outputSchema`: the schema of the primary 2xx JSON response, wrapped in an object
//! when it is not one (MCP requires an object root, and `structuredContent` is an object).

use serde_json::{Value, json};

use super::compact::def_name;
use super::input::kind_of;
use super::plan::BodyKind;
use super::schema::SchemaBuilder;
use crate::openapi::{Operation, Response, Spec, Target};

/// How a backend's JSON response relates to the tool's `structuredContent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputShape {
    /// No JSON response is declared; results are text.
    Unstructured,
    /// The response is an object and is `structuredContent` as is.
    Object,
    /// The response is wrapped: `structuredContent` is `{"result": <response>}`.
    Wrapped,
}

/// The property that holds a wrapped response.
pub const WRAPPED_FIELD: &str = "result";

pub(super) fn build(operation: &Operation, builder: &mut SchemaBuilder<'_>) -> (Option<Value>, OutputShape) {
    let Some(schema) = primary(&operation.responses) else {
        return (None, OutputShape::Unstructured);
    };
    let lowered = builder.lower(schema);
    // A root `$ref` to an object schema is written out, so that the root says `type: object`.
    let mut root = match def_name(&lowered).and_then(|_| builder.def(lowered.get("$ref")?.as_str()?)) {
        Some(def) if is_object(def) => {
            let mut root = def.clone();
            if let (Value::Object(root), Value::Object(siblings)) = (&mut root, &lowered) {
                for (key, value) in siblings.iter().filter(|(key, _)| key.as_str() != "$ref") {
                    root.insert(key.clone(), value.clone());
                }
            }
            root
        }
        _ => lowered,
    };
    if is_object(&root) {
        return (Some(root), OutputShape::Object);
    }
    if all_of_object(&root, builder)
        && let Value::Object(map) = &mut root
    {
        // Said at the root too, which MCP clients read without resolving `allOf`.
        map.insert("type".to_owned(), json!("object"));
        return (Some(root), OutputShape::Object);
    }
    let wrapped = json!({
        "type": "object",
        "properties": {WRAPPED_FIELD: root},
        "required": [WRAPPED_FIELD],
    });
    (Some(wrapped), OutputShape::Wrapped)
}

fn is_object(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("object")
}

/// A schema that is an object through `allOf` (a composition of objects, as generators write
/// inheritance), with no `type` of its own that says otherwise: its instances are objects, so
/// it needs no wrapping.
fn all_of_object(schema: &Value, builder: &SchemaBuilder<'_>) -> bool {
    if schema.get("type").is_some() {
        return false;
    }
    let Some(parts) = schema.get("allOf").and_then(Value::as_array) else { return false };
    parts.iter().any(|part| {
        let part = match part.get("$ref").and_then(Value::as_str) {
            Some(reference) => builder.def(reference),
            None => Some(part),
        };
        part.is_some_and(is_object)
    })
}

/// Operations whose primary response is the same `$ref` get the same output schema; this is
/// that reference's target, when the response is exactly a reference.
pub(super) fn cache_key(spec: &Spec, operation: &Operation) -> Option<Target> {
    let schema = primary(&operation.responses)?;
    let map = schema.value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    spec.documents.target(schema.doc, map.get("$ref")?.as_str()?).ok()
}

/// The schema of the lowest 2xx response with a JSON body (`200` before `201` before `2XX`).
fn primary(responses: &[Response]) -> Option<&crate::openapi::Schema> {
    let mut candidates: Vec<(u16, &Response)> = responses
        .iter()
        .filter_map(|it| {
            let status = it.status.to_ascii_uppercase();
            let rank = match status.parse::<u16>() {
                Ok(code @ 200..=299) => code,
                _ if status == "2XX" => 300,
                _ => return None,
            };
            Some((rank, it))
        })
        .collect();
    candidates.sort_by_key(|(rank, _)| *rank);
    candidates.into_iter().find_map(|(_, response)| {
        let media = response.content.iter().find(|media| {
            kind_of(&media.name) == BodyKind::Json && media.name != "*/*" && media.schema.is_some()
        })?;
        media.schema.as_ref()
    })
}
