//! A tool's `inputSchema` and its [`CallPlan`] parts: where each argument goes in the HTTP
//! request. Parameters and body properties share one flat object; clashing names get the
//! location as a suffix, so the plan is always reversible.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::compact::def_name;
use super::plan::{BodyKind, BodyPlan, BodySource, Encoding, FieldPlan, ParameterPlan, is_reserved_header};
use super::schema::SchemaBuilder;
use crate::openapi::{MediaType, Operation, ParamLocation, RequestBody};

pub(super) struct Input {
    pub schema: Value,
    /// Parameters with an argument, in document order.
    pub parameters: Vec<ParameterPlan>,
    pub body: Option<BodyPlan>,
    /// Arguments a call must carry.
    pub required: Vec<String>,
    /// Parameters left out because they carry credentials.
    pub hidden: Vec<String>,
    /// Header parameters left out because the HTTP client sets those headers itself.
    pub managed: Vec<String>,
}

/// The most characters an argument name may have (the common client limit on property names).
const MAX_ARGUMENT_LEN: usize = 64;

pub(super) fn build(
    operation: &Operation,
    builder: &mut SchemaBuilder<'_>,
    is_credential: &dyn Fn(ParamLocation, &str) -> bool,
) -> Input {
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut parameters = Vec::new();
    let mut hidden = Vec::new();
    let mut managed = Vec::new();
    let mut names = HashSet::new();

    // Arguments are listed path first, then query, header and cookie; the request sends
    // parameters in document order.
    let mut order: Vec<usize> = (0..operation.parameters.len()).collect();
    order.sort_by_key(|&idx| operation.parameters[idx].location);
    for idx in order {
        let param = &operation.parameters[idx];
        if is_credential(param.location, &param.name) {
            hidden.push(format!("{} {}", param.location.as_str(), param.name));
            continue;
        }
        if param.location == ParamLocation::Header && is_reserved_header(&param.name) {
            managed.push(param.name.clone());
            continue;
        }
        let mut schema = builder.lower(&param.schema);
        if let Value::Object(map) = &mut schema {
            if let Some(description) = &param.description {
                map.insert("description".into(), Value::String(description.trim().to_owned()));
            }
            if param.deprecated {
                map.insert("deprecated".into(), Value::Bool(true));
            }
        }
        let name = unique(&mut names, &param.name, param.location.as_str());
        if param.required {
            required.push(name.clone());
        }
        properties.insert(name.clone(), schema);
        let plan = ParameterPlan {
            argument: name,
            name: param.name.clone(),
            location: param.location.into(),
            style: param.style.into(),
            explode: param.explode,
            allow_reserved: param.allow_reserved,
            required: param.required,
            media_type: param.media_type.clone(),
        };
        parameters.push((idx, plan));
    }
    parameters.sort_by_key(|(idx, _)| *idx);
    let parameters = parameters.into_iter().map(|(_, it)| it).collect();

    let body = operation.request_body.as_ref().and_then(|body| {
        let media = preferred(&body.content)?;
        Some(add_body(body, media, builder, &mut names, &mut properties, &mut required))
    });

    let mut schema = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        schema["required"] = required.iter().cloned().map(Value::String).collect();
    }
    schema["additionalProperties"] = Value::Bool(false);
    Input { schema, parameters, body, required, hidden, managed }
}

fn add_body(
    body: &RequestBody,
    media: &MediaType,
    builder: &mut SchemaBuilder<'_>,
    names: &mut HashSet<String>,
    properties: &mut Map<String, Value>,
    required: &mut Vec<String>,
) -> BodyPlan {
    let kind = kind_of(&media.name);
    let lowered = match (&media.schema, kind) {
        (_, BodyKind::Binary) => json!({"type": "string", "contentEncoding": "base64"}),
        (Some(schema), _) => builder.lower(schema),
        (None, BodyKind::Text) => json!({"type": "string"}),
        (None, _) => json!({}),
    };
    let mut plan = BodyPlan {
        media_type: media.name.clone(),
        kind,
        required: body.required,
        source: BodySource::Flattened(Vec::new()),
        fields: Vec::new(),
    };
    let flattened = match kind {
        BodyKind::Binary | BodyKind::Text => None,
        _ => flattenable(&lowered, builder),
    };
    let object = match flattened {
        Some(object) => Some(object),
        None => resolve(builder, &lowered).as_object(),
    };
    if matches!(kind, BodyKind::Form | BodyKind::Multipart) {
        plan.fields = fields(object, media, builder);
    }
    if let Some(object) = flattened {
        let body_required: Vec<&str> = object
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let mut pairs = Vec::new();
        if let Some(Value::Object(props)) = object.get("properties") {
            for (prop, schema) in props {
                let name = unique(names, prop, "body");
                if body.required && body_required.contains(&prop.as_str()) {
                    required.push(name.clone());
                }
                properties.insert(name.clone(), schema.clone());
                pairs.push((name, prop.clone()));
            }
        }
        plan.source = BodySource::Flattened(pairs);
        return plan;
    }
    let mut schema = lowered;
    if let (Some(description), Value::Object(map)) = (&body.description, &mut schema)
        && !map.contains_key("description")
    {
        map.insert("description".into(), Value::String(description.trim().to_owned()));
    }
    let name = unique(names, "body", "body");
    if body.required {
        required.push(name.clone());
    }
    properties.insert(name.clone(), schema);
    plan.source = BodySource::Whole(name);
    plan
}

/// The fields of a form or multipart body: its declared properties (which are files when their
/// schema says base64) and those its Encoding Objects name.
fn fields(
    object: Option<&Map<String, Value>>,
    media: &MediaType,
    builder: &SchemaBuilder<'_>,
) -> Vec<FieldPlan> {
    let mut fields: Vec<FieldPlan> = Vec::new();
    if let Some(Value::Object(props)) = object.and_then(|it| it.get("properties")) {
        for (name, schema) in props {
            let schema = resolve(builder, schema);
            let items = schema.get("items").map(|it| resolve(builder, it));
            fields.push(FieldPlan {
                name: name.clone(),
                file: is_base64(builder, schema, 0),
                file_items: items.is_some_and(|it| is_base64(builder, it, 0)),
                encoding: None,
            });
        }
    }
    for (name, encoding) in &media.encoding {
        match fields.iter_mut().find(|it| it.name == *name) {
            Some(field) => field.encoding = Some(Encoding::from(encoding)),
            None => fields.push(FieldPlan {
                name: name.clone(),
                encoding: Some(Encoding::from(encoding)),
                ..FieldPlan::default()
            }),
        }
    }
    fields
}

/// Follows `#/$defs/...` references among the lowered definitions, a few hops at most.
fn resolve<'a>(builder: &'a SchemaBuilder<'_>, mut schema: &'a Value) -> &'a Value {
    for _ in 0..8 {
        match schema.get("$ref").and_then(Value::as_str).and_then(|it| builder.def(it)) {
            Some(target) => schema = target,
            None => break,
        }
    }
    schema
}

/// Whether a schema says its string holds base64 bytes, directly or in one `anyOf`/`oneOf`
/// branch (how nullable schemas are often written).
fn is_base64(builder: &SchemaBuilder<'_>, schema: &Value, depth: usize) -> bool {
    if schema
        .get("contentEncoding")
        .and_then(Value::as_str)
        .is_some_and(|it| it.eq_ignore_ascii_case("base64"))
    {
        return true;
    }
    depth < 4
        && ["anyOf", "oneOf"].iter().any(|key| {
            schema.get(*key).and_then(Value::as_array).is_some_and(|branches| {
                branches.iter().any(|it| is_base64(builder, resolve(builder, it), depth + 1))
            })
        })
}

/// The object schema whose properties can become top-level arguments: a plain object (directly
/// or through one `$ref`) whose properties say everything the body may hold.
fn flattenable<'a>(schema: &'a Value, builder: &'a SchemaBuilder<'_>) -> Option<&'a Map<String, Value>> {
    let object = match def_name(schema) {
        Some(_) => builder.def(schema.get("$ref")?.as_str()?)?,
        None => schema,
    };
    let map = object.as_object()?;
    let is_object = match map.get("type") {
        Some(Value::String(it)) => it == "object",
        None => map.contains_key("properties"),
        _ => false,
    };
    let plain = map.keys().all(|key| {
        matches!(
            key.as_str(),
            "type" | "properties" | "required" | "title" | "description" | "examples" | "default"
        ) || key == "additionalProperties" && map[key] == Value::Bool(false)
    });
    let has_properties = map.get("properties").and_then(Value::as_object).is_some_and(|it| !it.is_empty());
    (is_object && plain && has_properties).then_some(map)
}

/// The media type mcpgate sends when a body offers several: JSON first, then forms, text,
/// and raw bytes.
fn preferred(content: &[MediaType]) -> Option<&MediaType> {
    content.iter().min_by_key(|media| match kind_of(&media.name) {
        BodyKind::Json if media.name != "*/*" => 0,
        BodyKind::Form => 1,
        BodyKind::Multipart => 2,
        BodyKind::Text => 3,
        BodyKind::Binary => 4,
        BodyKind::Json => 5,
    })
}

pub(super) fn kind_of(media_type: &str) -> BodyKind {
    let essence = media_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if essence == "application/json"
        || essence.ends_with("+json")
        || essence == "*/*"
        || essence == "application/*"
    {
        BodyKind::Json
    } else if essence == "application/x-www-form-urlencoded" {
        BodyKind::Form
    } else if essence.starts_with("multipart/") {
        BodyKind::Multipart
    } else if essence.starts_with("text/") || essence.ends_with("/xml") || essence.ends_with("+xml") {
        BodyKind::Text
    } else {
        BodyKind::Binary
    }
}

/// An argument name: the original where it is a valid property name and free, else sanitized,
/// else suffixed with its location, else numbered.
fn unique(names: &mut HashSet<String>, original: &str, location: &str) -> String {
    let mut base: String = original
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' })
        .collect();
    let trimmed = base.trim_matches('_');
    base = if trimmed.is_empty() { "arg".to_owned() } else { trimmed.to_owned() };
    base.truncate(MAX_ARGUMENT_LEN - 8);
    if names.insert(base.clone()) {
        return base;
    }
    let suffixed = format!("{base}_{location}");
    if names.insert(suffixed.clone()) {
        return suffixed;
    }
    let mut n = 2;
    loop {
        let candidate = format!("{suffixed}_{n}");
        if names.insert(candidate.clone()) {
            return candidate;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_sanitized_then_suffixed() {
        let mut names = HashSet::new();
        assert_eq!(unique(&mut names, "id", "path"), "id");
        assert_eq!(unique(&mut names, "id", "query"), "id_query");
        assert_eq!(unique(&mut names, "id", "query"), "id_query_2");
        assert_eq!(unique(&mut names, "filter[status]", "query"), "filter_status");
        assert_eq!(unique(&mut names, "$select", "query"), "select");
        assert_eq!(unique(&mut names, "X-Request-Id", "header"), "X-Request-Id");
        assert_eq!(unique(&mut names, "日本", "query"), "arg");
    }

    #[test]
    fn media_type_kinds() {
        assert_eq!(kind_of("application/json; charset=utf-8"), BodyKind::Json);
        assert_eq!(kind_of("application/vnd.api+json"), BodyKind::Json);
        assert_eq!(kind_of("application/x-www-form-urlencoded"), BodyKind::Form);
        assert_eq!(kind_of("multipart/form-data"), BodyKind::Multipart);
        assert_eq!(kind_of("text/plain"), BodyKind::Text);
        assert_eq!(kind_of("application/octet-stream"), BodyKind::Binary);
        assert_eq!(kind_of("image/png"), BodyKind::Binary);
    }
}
