//! One tool call to the exact HTTP request its [`CallPlan`] describes: the URL with path and
//! query parameters serialized per `style` and `explode` (`path`, `parameters`), header and
//! cookie parameters, and the body (`body`). No IO, and nothing of OpenAPI but the plan.
//!
//! Invariant: the scheme, host, port and base path always come from the backend base URL, and a
//! path argument never leaves its segment: values are percent-encoded, a segment that would be
//! empty or a dot segment is refused, and the finished URL is parsed again and checked.

mod body;
mod parameters;
mod path;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};
use url::Url;

use crate::tools::plan::{CallPlan, Location, Style};

/// An HTTP request ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: http::Method,
    pub url: Url,
    /// Header parameters in document order, then one `Cookie` header for the cookie parameters.
    /// The body's `Content-Type` is in [`Body`], not here.
    pub headers: Vec<(String, String)>,
    pub body: Option<Body>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Why a call's arguments cannot become a request. The messages name the argument, so that a
/// model can correct the call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("missing required argument `{0}`")]
    Missing(String),
    #[error("argument `{argument}` cannot be sent {reason}")]
    Unserializable { argument: String, reason: String },
    #[error("argument `{0}` would change the request path: a path value must not be empty, `.` or `..`")]
    PathSegment(String),
    #[error("argument `{0}` contains a line break or another control character, which a header cannot carry")]
    HeaderValue(String),
    #[error("argument `{argument}` is not valid base64: {source}")]
    Base64 { argument: String, source: base64::DecodeError },
    #[error("argument `{0}` is nested more than {MAX_DEPTH} levels deep")]
    TooDeep(String),
    /// A safety net: the operation's path template itself (not an argument) would leave the
    /// backend base URL, e.g. with `..` segments.
    #[error("the operation's path would leave the backend base URL")]
    Escape,
    #[error("no multipart boundary could be found that the content does not contain")]
    Boundary,
}

/// How deep a `deepObject` value may nest.
const MAX_DEPTH: usize = 32;

/// Builds the request `plan` describes for a call with `arguments`, against the backend at
/// `base`. Arguments the plan does not name are ignored (validation rejects them earlier).
pub fn build(base: &Url, plan: &CallPlan, arguments: &Map<String, Value>) -> Result<Request, Error> {
    if let Some(name) = plan.required.iter().find(|it| !arguments.contains_key(it.as_str())) {
        return Err(Error::Missing(name.clone()));
    }

    let mut path_values = Vec::new();
    let mut query = Vec::new();
    let mut headers = Vec::new();
    let mut cookies = Vec::new();
    for param in &plan.parameters {
        let Some(value) = arguments.get(&param.argument).filter(|it| !it.is_null()) else {
            if param.required {
                return Err(Error::Missing(param.argument.clone()));
            }
            continue;
        };
        match param.location {
            Location::Path => {
                let expansion = path::expansion(param, value)?;
                path_values.push(path::PathValue { name: &param.name, argument: &param.argument, expansion });
            }
            Location::Query => query.extend(parameters::query_pairs(param, value)?),
            Location::Header => {
                if let Some(text) = parameters::header_value(param, value)? {
                    headers.push((param.name.clone(), text));
                }
            }
            Location::Cookie => cookies.extend(parameters::cookie_pairs(param, value)?),
        }
    }
    if !cookies.is_empty() {
        headers.push(("Cookie".to_owned(), cookies.join("; ")));
    }

    let url = path::request_url(base, &plan.path, &path_values, &query)?;
    let body = match &plan.body {
        Some(body) => body::build(body, arguments)?,
        None => None,
    };
    Ok(Request { method: plan.method.clone(), url, headers, body })
}

// Percent-encoding sets: what is encoded, not what is kept.

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `allowReserved`: RFC 3986's reserved characters pass, except those that would end the value
/// or the query (`&`, `#`), and `%`, so that a value cannot smuggle in a second parameter, a
/// fragment or an escape of its own.
const RESERVED: &AsciiSet = &COMPONENT
    .remove(b':')
    .remove(b'/')
    .remove(b'?')
    .remove(b'[')
    .remove(b']')
    .remove(b'@')
    .remove(b'!')
    .remove(b'$')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=');

/// `application/x-www-form-urlencoded`: also `~`, as RFC 1738 wants (OpenAPI 3.1.1 §4.8.12.4).
const FORM: &AsciiSet = &COMPONENT.add(b'~');

fn encode(text: &str, set: &'static AsciiSet) -> String {
    utf8_percent_encode(text, set).to_string()
}

/// The percent-encoding of keys and of values in a query string or form body.
#[derive(Clone, Copy)]
struct Sets {
    key: &'static AsciiSet,
    value: &'static AsciiSet,
}

/// A parameter value as RFC 6570 sees it: one string, a list or a map of strings. Nulls inside
/// lists and maps are left out (RFC 6570 "undefined").
enum Shape {
    Primitive(String),
    Array(Vec<String>),
    Object(Vec<(String, String)>),
}

impl Shape {
    /// `None` when the value nests objects or arrays, which these styles cannot express.
    fn of(value: &Value) -> Option<Shape> {
        Some(match value {
            Value::Array(items) => {
                Shape::Array(items.iter().filter(|it| !it.is_null()).map(scalar).collect::<Option<_>>()?)
            }
            Value::Object(map) => Shape::Object(
                map.iter()
                    .filter(|(_, it)| !it.is_null())
                    .map(|(key, it)| Some((key.clone(), scalar(it)?)))
                    .collect::<Option<_>>()?,
            ),
            other => Shape::Primitive(scalar(other)?),
        })
    }

    fn is_empty(&self) -> bool {
        match self {
            Shape::Primitive(_) => false,
            Shape::Array(items) => items.is_empty(),
            Shape::Object(pairs) => pairs.is_empty(),
        }
    }
}

/// Strings raw, numbers as JSON writes them, booleans as `true`/`false`.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(it) => Some(it.clone()),
        Value::Number(it) => Some(it.to_string()),
        Value::Bool(it) => Some(it.to_string()),
        Value::Null => Some(String::new()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

fn shape(value: &Value, argument: &str, place: &str, style: Style) -> Result<Shape, Error> {
    Shape::of(value).ok_or_else(|| Error::Unserializable {
        argument: argument.to_owned(),
        reason: format!("{place} in style {}: it holds nested objects or arrays", style.name()),
    })
}

/// `key,value,key,value`: a map in the non-exploded styles, each part encoded with `e`.
fn flat(pairs: &[(String, String)], e: &dyn Fn(&str) -> String) -> Vec<String> {
    pairs.iter().flat_map(|(key, value)| [e(key), e(value)]).collect()
}

/// The value of a parameter described by `content`: JSON text for JSON media types, and for
/// others a string as it is (anything else as JSON, the only serialization at hand).
fn media_text(value: &Value, media_type: &str) -> String {
    match value {
        Value::String(it) if !is_json(media_type) => it.clone(),
        other => other.to_string(),
    }
}

fn is_json(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

#[cfg(test)]
mod tests;
