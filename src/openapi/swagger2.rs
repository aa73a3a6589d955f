//! What only Swagger 2.0 has: `host`/`basePath`/`schemes`, `consumes`/`produces`, parameters
//! that carry their schema keywords inline, `collectionFormat`, and `body`/`formData`
//! parameters, which become request bodies.

use serde_json::{Map, Value, json};

use super::node::Node;

use super::documents::{DocId, escape_token};
use super::model::*;
use super::read::{OperationSource, ParamRead, Reader};

pub(super) struct BodyParam {
    schema: Schema,
    required: bool,
    description: Option<String>,
}

pub(super) struct FormField {
    pub(super) name: String,
    schema: Value,
    required: bool,
    is_file: bool,
    style: Option<(Style, bool)>,
}

/// Keywords a Swagger 2.0 non-body parameter (or its `items`) shares with schemas.
const SCHEMA_KEYWORDS: [&str; 19] = [
    "type",
    "format",
    "items",
    "enum",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "x-nullable",
    "example",
    "x-example",
];

pub(super) fn servers(root: &Node) -> Vec<Server> {
    let base_path = root.get("basePath").and_then(Node::as_str).unwrap_or("");
    let Some(host) = root.get("host").and_then(Node::as_str) else {
        let url = if base_path.is_empty() { "/" } else { base_path };
        return vec![Server { url: url.to_owned(), description: None, variables: Vec::new() }];
    };
    let schemes: Vec<&str> = root
        .get("schemes")
        .and_then(Node::as_array)
        .map(|it| it.iter().filter_map(Node::as_str).collect())
        .unwrap_or_default();
    // Without `schemes` the document's own scheme applies; https is the safe guess.
    let schemes = if schemes.is_empty() { vec!["https"] } else { schemes };
    let mut ordered: Vec<&str> = schemes.iter().copied().filter(|it| *it == "https").collect();
    ordered.extend(schemes.iter().copied().filter(|it| *it != "https"));
    ordered
        .into_iter()
        .map(|scheme| Server {
            url: format!("{scheme}://{host}{base_path}"),
            description: None,
            variables: Vec::new(),
        })
        .collect()
}

pub(super) fn parameter(
    reader: &mut Reader<'_>,
    doc: DocId,
    param: &Node,
    at: &Location,
) -> Option<ParamRead> {
    let name = param.get("name").and_then(Node::as_str).unwrap_or_default().to_owned();
    let description = param.get("description").and_then(Node::as_str).map(str::to_owned);
    let required = param.get("required").and_then(Node::as_bool).unwrap_or(false);
    match param.get("in").and_then(Node::as_str) {
        Some("body") => {
            let value = param.get("schema").cloned().unwrap_or_else(|| Node::from(json!({})));
            let schema = Schema { doc, pointer: format!("{}/schema", at.pointer), value };
            return Some(ParamRead::Body(BodyParam { schema, required, description }));
        }
        Some("formData") => {
            if name.is_empty() {
                reader.warn(at, "form parameter without a `name`; ignored");
                return None;
            }
            let mut schema = inline_schema(param);
            if let (Some(description), Value::Object(map)) = (&description, &mut schema) {
                map.insert("description".into(), Value::String(description.clone()));
            }
            return Some(ParamRead::FormField(FormField {
                is_file: param.get("type").and_then(Node::as_str) == Some("file"),
                style: collection_format(param, true),
                name,
                schema,
                required,
            }));
        }
        _ => {}
    }
    let (name, location) = reader.name_and_location(param, at)?;
    let (style, explode) = collection_format(param, location == ParamLocation::Query)
        .unwrap_or((Style::default_for(location), location == ParamLocation::Query));
    let schema = Schema { doc, pointer: at.pointer.clone(), value: Node::from(inline_schema(param)) };
    Some(ParamRead::Plain(Parameter {
        required: required || location == ParamLocation::Path,
        description,
        deprecated: false,
        schema,
        style,
        explode,
        allow_reserved: false,
        media_type: None,
        name,
        location,
    }))
}

fn inline_schema(param: &Node) -> Value {
    let mut schema = Map::new();
    for key in SCHEMA_KEYWORDS {
        if let Some(value) = param.get(key) {
            schema.insert(key.to_owned(), value.to_value());
        }
    }
    Value::Object(schema)
}

/// `collectionFormat` as a style; `None` when the parameter is not an array.
fn collection_format(param: &Node, form_like: bool) -> Option<(Style, bool)> {
    if param.get("type").and_then(Node::as_str) != Some("array") {
        return None;
    }
    let default = if form_like { Style::Form } else { Style::Simple };
    Some(match param.get("collectionFormat").and_then(Node::as_str) {
        Some("multi") => (Style::Form, true),
        Some("ssv") => (Style::SpaceDelimited, false),
        Some("tsv") => (Style::TabDelimited, false),
        Some("pipes") => (Style::PipeDelimited, false),
        _ => (default, false),
    })
}

/// The media types an operation accepts or returns: its own list, else the document's.
fn media_types(reader: &Reader<'_>, source: &OperationSource<'_>, key: &str) -> Vec<String> {
    let own = source.value.get(key);
    let global = reader.docs.entry().root.get(key);
    let list: Vec<String> = own
        .or(global)
        .and_then(Node::as_array)
        .into_iter()
        .flatten()
        .filter_map(Node::as_str)
        .map(str::to_owned)
        .collect();
    if list.is_empty() { vec!["application/json".to_owned()] } else { list }
}

pub(super) fn request_body(
    reader: &mut Reader<'_>,
    source: &OperationSource<'_>,
    body: Option<BodyParam>,
    fields: Vec<FormField>,
) -> Option<RequestBody> {
    let consumes = media_types(reader, source, "consumes");
    if let Some(body) = body {
        if !fields.is_empty() {
            reader
                .warn(&source.location, "both `body` and `formData` parameters; the form fields are ignored");
        }
        let content = consumes
            .iter()
            .filter(|it| !is_form(it))
            .map(|name| MediaType {
                name: name.clone(),
                schema: Some(body.schema.clone()),
                encoding: Vec::new(),
            })
            .collect::<Vec<_>>();
        let content = if content.is_empty() {
            vec![MediaType {
                name: "application/json".into(),
                schema: Some(body.schema),
                encoding: Vec::new(),
            }]
        } else {
            content
        };
        return Some(RequestBody { description: body.description, required: body.required, content });
    }
    if fields.is_empty() {
        return None;
    }
    let multipart = fields.iter().any(|it| it.is_file)
        || consumes.iter().any(|it| it.starts_with("multipart/form-data"))
            && !consumes.iter().any(|it| it.starts_with("application/x-www-form-urlencoded"));
    let name = if multipart { "multipart/form-data" } else { "application/x-www-form-urlencoded" };
    let required: Vec<Value> =
        fields.iter().filter(|it| it.required).map(|it| Value::String(it.name.clone())).collect();
    let mut properties = Map::new();
    let mut encoding = Vec::new();
    for field in &fields {
        properties.insert(field.name.clone(), field.schema.clone());
        if let Some((style, explode)) = field.style {
            let it = Encoding {
                content_type: None,
                style: Some(style),
                explode: Some(explode),
                allow_reserved: false,
            };
            encoding.push((field.name.clone(), it));
        }
    }
    let mut schema = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        schema["required"] = Value::Array(required.clone());
    }
    let schema = Schema {
        doc: source.doc,
        pointer: format!("{}/parameters", source.location.pointer),
        value: Node::from(schema),
    };
    Some(RequestBody {
        description: None,
        required: !required.is_empty(),
        content: vec![MediaType { name: name.to_owned(), schema: Some(schema), encoding }],
    })
}

fn is_form(media_type: &str) -> bool {
    media_type.starts_with("application/x-www-form-urlencoded")
        || media_type.starts_with("multipart/form-data")
}

pub(super) fn responses(reader: &mut Reader<'_>, source: &OperationSource<'_>) -> Vec<Response> {
    let Some(Node::Object(responses)) = source.value.get("responses") else {
        return Vec::new();
    };
    let produces = media_types(reader, source, "produces");
    let mut out = Vec::new();
    for (status, raw) in responses.iter() {
        if status.starts_with("x-") {
            continue;
        }
        let pointer = format!("{}/responses/{}", source.location.pointer, escape_token(status));
        let at = Location { doc: source.location.doc, pointer };
        let (doc, response, target) = match reader.docs.deref(source.doc, raw) {
            Ok(it) => it,
            Err(err) => {
                reader.warn(&at, format!("response ignored: {err}"));
                continue;
            }
        };
        let at = target.map_or(at, |it| Location { doc: it.doc, pointer: it.pointer });
        let content = match response.get("schema") {
            Some(schema) => produces
                .iter()
                .map(|name| MediaType {
                    name: name.clone(),
                    schema: Some(Schema {
                        doc,
                        pointer: format!("{}/schema", at.pointer),
                        value: schema.clone(),
                    }),
                    encoding: Vec::new(),
                })
                .collect(),
            None => Vec::new(),
        };
        out.push(Response {
            status: status.to_owned(),
            description: response.get("description").and_then(Node::as_str).map(str::to_owned),
            content,
        });
    }
    out
}
