//! The request body: JSON, text, raw bytes, `application/x-www-form-urlencoded` (with the
//! Encoding Object) and `multipart/form-data` (file parts from base64 arguments), per the plan.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_PAD_INDIFFERENT, URL_SAFE_PAD_INDIFFERENT};
use serde_json::{Map, Value};

use super::parameters::form_like;
use super::{Body, Error, FORM, RESERVED, Sets, encode, is_json};
use crate::tools::plan::{BodyKind, BodyPlan, BodySource, FieldPlan, Style};

/// A top-level property of an object body with the argument that supplied it.
struct Field<'a> {
    /// The argument, for messages: its name, or `body.property` when the whole body is one.
    argument: String,
    /// The property name as the document writes it.
    name: &'a str,
    value: &'a Value,
    /// What the plan knows of the property, if anything.
    plan: Option<&'a FieldPlan>,
}

pub(super) fn build(plan: &BodyPlan, arguments: &Map<String, Value>) -> Result<Option<Body>, Error> {
    let whole = match &plan.source {
        BodySource::Whole(argument) => Some(argument.as_str()),
        BodySource::Flattened(_) => None,
    };
    let whole_value = whole.and_then(|it| arguments.get(it)).filter(|it| !it.is_null());
    if let Some(argument) = whole
        && whole_value.is_none()
    {
        if plan.required {
            return Err(Error::Missing(argument.to_owned()));
        }
        return Ok(None);
    }

    match plan.kind {
        BodyKind::Json => {
            let value = match (whole_value, &plan.source) {
                (Some(value), _) => value.clone(),
                (None, BodySource::Flattened(pairs)) => {
                    let object: Map<String, Value> = pairs
                        .iter()
                        .filter_map(|(argument, property)| {
                            Some((property.clone(), arguments.get(argument)?.clone()))
                        })
                        .collect();
                    if object.is_empty() && !plan.required {
                        return Ok(None);
                    }
                    Value::Object(object)
                }
                (None, BodySource::Whole(_)) => return Ok(None),
            };
            let content_type = concrete(&plan.media_type, "application/json");
            Ok(Some(Body { content_type, bytes: value.to_string().into_bytes() }))
        }
        BodyKind::Text => {
            let Some(value) = whole_value else { return Ok(None) };
            let text = match value {
                Value::String(it) => it.clone(),
                other => other.to_string(),
            };
            Ok(Some(Body {
                content_type: concrete(&plan.media_type, "text/plain"),
                bytes: text.into_bytes(),
            }))
        }
        BodyKind::Binary => {
            let (Some(argument), Some(value)) = (whole, whole_value) else { return Ok(None) };
            let Value::String(text) = value else {
                return Err(Error::Unserializable {
                    argument: argument.to_owned(),
                    reason: "as the body: it must be a base64 string".to_owned(),
                });
            };
            let bytes = decode_base64(text, argument)?;
            Ok(Some(Body { content_type: concrete(&plan.media_type, "application/octet-stream"), bytes }))
        }
        BodyKind::Form | BodyKind::Multipart => {
            let fields = fields(plan, arguments, whole.zip(whole_value))?;
            if fields.is_empty() && !plan.required {
                return Ok(None);
            }
            if plan.kind == BodyKind::Form {
                let mut pairs = Vec::new();
                for field in &fields {
                    form_field(field, &mut pairs)?;
                }
                let content_type = concrete(&plan.media_type, "application/x-www-form-urlencoded");
                return Ok(Some(Body { content_type, bytes: pairs.join("&").into_bytes() }));
            }
            let mut parts = Vec::new();
            for field in &fields {
                multipart_field(field, &mut parts)?;
            }
            let boundary = choose_boundary(&parts, random_boundaries())?;
            let essence = plan.media_type.split(';').next().unwrap_or_default().trim();
            let essence =
                if essence.contains('*') || essence.is_empty() { "multipart/form-data" } else { essence };
            let content_type = format!("{essence}; boundary={boundary}");
            Ok(Some(Body { content_type, bytes: multipart_bytes(&parts, &boundary) }))
        }
    }
}

/// The media type to send: the document's, unless it is a range such as `text/*`.
fn concrete(media_type: &str, fallback: &str) -> String {
    if media_type.contains('*') { fallback.to_owned() } else { media_type.to_owned() }
}

/// The properties of an object body, from the flattened arguments or the whole-body argument.
fn fields<'a>(
    plan: &'a BodyPlan,
    arguments: &'a Map<String, Value>,
    whole: Option<(&'a str, &'a Value)>,
) -> Result<Vec<Field<'a>>, Error> {
    if let Some((argument, value)) = whole {
        let Value::Object(map) = value else {
            return Err(Error::Unserializable {
                argument: argument.to_owned(),
                reason: "as a form: it must be an object".to_owned(),
            });
        };
        return Ok(map
            .iter()
            .map(|(name, value)| Field {
                argument: format!("{argument}.{name}"),
                name,
                value,
                plan: plan.field(name),
            })
            .collect());
    }
    let BodySource::Flattened(pairs) = &plan.source else { return Ok(Vec::new()) };
    Ok(pairs
        .iter()
        .filter_map(|(argument, property)| {
            Some(Field {
                argument: argument.clone(),
                name: property,
                value: arguments.get(argument)?,
                plan: plan.field(property),
            })
        })
        .collect())
}

/// One property of an `application/x-www-form-urlencoded` body. With `style`, `explode` or
/// `allowReserved` set, the property is serialized like a query parameter of that style;
/// without, by its content type alone (OpenAPI 3.0.4 and 3.1.1 §Encoding Object): primitives as
/// they are, objects as JSON text, arrays one pair per item.
fn form_field(field: &Field<'_>, out: &mut Vec<String>) -> Result<(), Error> {
    let encoding = field.plan.and_then(|it| it.encoding.as_ref());
    let explicit = encoding.filter(|it| it.style.is_some() || it.explode.is_some() || it.allow_reserved);
    if let Some(encoding) = explicit {
        let style = encoding.style.unwrap_or(Style::Form);
        let explode = encoding.explode.unwrap_or(style == Style::Form);
        let sets = Sets { key: FORM, value: if encoding.allow_reserved { RESERVED } else { FORM } };
        if field.value.is_null() {
            return Ok(());
        }
        out.extend(form_like(
            field.name,
            field.value,
            style,
            explode,
            sets,
            &field.argument,
            "in a form body",
        )?);
        return Ok(());
    }
    let as_json = encoding.and_then(|it| it.content_type.as_deref()).is_some_and(is_json);
    let text = |value: &Value| match value {
        Value::String(it) if !as_json => it.clone(),
        other => other.to_string(),
    };
    let key = encode(field.name, FORM);
    match field.value {
        Value::Null => {}
        Value::Array(items) if !as_json => {
            for item in items.iter().filter(|it| !it.is_null()) {
                out.push(format!("{key}={}", encode(&text(item), FORM)));
            }
        }
        other => out.push(format!("{key}={}", encode(&text(other), FORM))),
    }
    Ok(())
}

pub(super) struct Part {
    pub(super) name: String,
    pub(super) filename: Option<String>,
    pub(super) content_type: Option<String>,
    pub(super) bytes: Vec<u8>,
}

/// The parts of one property of a multipart body: a file part for a base64 property, JSON for
/// objects, text for primitives, and one part per item for arrays (OpenAPI 3.1.1 §4.8.15.3,
/// after RFC 7578 §4.3).
fn multipart_field(field: &Field<'_>, parts: &mut Vec<Part>) -> Result<(), Error> {
    let encoding = field.plan.and_then(|it| it.encoding.as_ref());
    let declared = encoding.and_then(|it| it.content_type.as_deref()).and_then(single_media_type);
    let file = field.plan.is_some_and(|it| it.file);
    match field.value {
        Value::Null => Ok(()),
        Value::Array(items) if !declared.is_some_and(is_json) => {
            let files = field.plan.is_some_and(|it| it.file_items);
            for item in items.iter().filter(|it| !it.is_null()) {
                parts.push(part(field, item, declared, files)?);
            }
            Ok(())
        }
        other => {
            parts.push(part(field, other, declared, file)?);
            Ok(())
        }
    }
}

fn part(field: &Field<'_>, value: &Value, declared: Option<&str>, file: bool) -> Result<Part, Error> {
    let name = field.name.to_owned();
    if file {
        let Value::String(text) = value else {
            return Err(Error::Unserializable {
                argument: field.argument.clone(),
                reason: "as a file: it must be a base64 string".to_owned(),
            });
        };
        return Ok(Part {
            filename: Some(name.clone()),
            name,
            content_type: Some(declared.unwrap_or("application/octet-stream").to_owned()),
            bytes: decode_base64(text, &field.argument)?,
        });
    }
    let as_json = declared.is_some_and(is_json);
    let (content_type, bytes) = match value {
        Value::Object(_) | Value::Array(_) => {
            (Some(declared.filter(|it| is_json(it)).unwrap_or("application/json")), value.to_string())
        }
        Value::String(it) if !as_json => (declared, it.clone()),
        other => (declared, other.to_string()),
    };
    Ok(Part {
        name,
        filename: None,
        content_type: content_type.map(str::to_owned),
        bytes: bytes.into_bytes(),
    })
}

/// The first media type of an Encoding Object's `contentType` list, if it names one type (a
/// range such as `image/*` is not something to send) and is fit for a header.
fn single_media_type(content_type: &str) -> Option<&str> {
    let first = content_type.split(',').next()?.trim();
    let fit = !first.is_empty() && !first.contains('*') && !first.chars().any(char::is_control);
    fit.then_some(first)
}

/// Standard or URL-safe base64, padded or not, with line breaks allowed, or a `data:` URL.
fn decode_base64(text: &str, argument: &str) -> Result<Vec<u8>, Error> {
    let text = match text.strip_prefix("data:").and_then(|it| it.split_once(";base64,")) {
        Some((_, data)) => data,
        None => text,
    };
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD_PAD_INDIFFERENT
        .decode(&compact)
        .or_else(|err| URL_SAFE_PAD_INDIFFERENT.decode(&compact).map_err(|_| err))
        .map_err(|source| Error::Base64 { argument: argument.to_owned(), source })
}

/// The headers of a part. Names are escaped as HTML forms do (`"`, CR and LF percent-encoded).
pub(super) fn part_head(part: &Part) -> String {
    let quote = |it: &str| it.replace('"', "%22").replace('\r', "%0D").replace('\n', "%0A");
    let mut head = format!("Content-Disposition: form-data; name=\"{}\"", quote(&part.name));
    if let Some(filename) = &part.filename {
        head.push_str(&format!("; filename=\"{}\"", quote(filename)));
    }
    head.push_str("\r\n");
    if let Some(content_type) = &part.content_type {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head
}

fn multipart_bytes(parts: &[Part], boundary: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(parts.iter().map(|it| it.bytes.len() + 128).sum());
    for part in parts {
        bytes.extend_from_slice(format!("--{boundary}\r\n{}\r\n", part_head(part)).as_bytes());
        bytes.extend_from_slice(&part.bytes);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    bytes
}

/// Candidates tried before giving up; a random one colliding even once is already unlikely.
const BOUNDARY_ATTEMPTS: usize = 16;

/// The first candidate that appears in no part. Checking, not only randomness, keeps a file
/// that happens to (or is made to) contain a boundary from ending its part early.
pub(super) fn choose_boundary(
    parts: &[Part],
    candidates: impl IntoIterator<Item = String>,
) -> Result<String, Error> {
    let contains = |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|it| it == needle);
    candidates
        .into_iter()
        .take(BOUNDARY_ATTEMPTS)
        .find(|boundary| {
            !boundary.is_empty()
                && parts.iter().all(|part| {
                    !contains(&part.bytes, boundary.as_bytes())
                        && !part_head(part).contains(boundary.as_str())
                })
        })
        .ok_or(Error::Boundary)
}

/// Boundaries from the standard library's randomly keyed hasher (no random-number crate needed;
/// unpredictability is a bonus, [`choose_boundary`] checks them anyway).
pub(super) fn random_boundaries() -> impl Iterator<Item = String> {
    (0u64..).map(|n| {
        let state = RandomState::new();
        format!("mcpgate-{:016x}{:016x}", state.hash_one(n), state.hash_one(!n))
    })
}
