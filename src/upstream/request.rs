//! One tool call to the exact HTTP request its operation describes: the URL with path and query
//! parameters serialized per `style` and `explode`, header and cookie parameters, and the body
//! per the tool's [`BodyPlan`]. No IO.
//!
//! Invariant: the scheme, host, port and base path always come from the backend base URL, and a
//! path argument never leaves its segment: values are percent-encoded, a segment that would be
//! empty or a dot segment is refused, and the finished URL is parsed again and checked.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_PAD_INDIFFERENT, URL_SAFE_PAD_INDIFFERENT};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};
use url::Url;

use crate::openapi::{Encoding, Method, Operation, ParamLocation, Parameter, Style};
use crate::tools::{Argument, ArgumentTarget, BodyKind, BodyPlan, ToolSpec};

/// An HTTP request ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: Method,
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

/// Builds the request for `tool` (generated from `operation`) called with `arguments`, against
/// the backend at `base`. Arguments the tool does not declare are ignored (validation rejects
/// them earlier).
pub fn build(
    base: &Url,
    operation: &Operation,
    tool: &ToolSpec,
    arguments: &Map<String, Value>,
) -> Result<Request, Error> {
    let required = tool.input_schema.get("required").and_then(Value::as_array).into_iter().flatten();
    if let Some(name) = required.filter_map(Value::as_str).find(|it| !arguments.contains_key(*it)) {
        return Err(Error::Missing(name.to_owned()));
    }

    let mut path_values: HashMap<&str, (&str, String)> = HashMap::new();
    let mut query = Vec::new();
    let mut headers = Vec::new();
    let mut cookies = Vec::new();
    for (idx, param) in operation.parameters.iter().enumerate() {
        if param.location == ParamLocation::Header && is_reserved_header(&param.name) {
            continue;
        }
        // A parameter without an argument carries a credential; `credentials` supplies it. A
        // path one is reported when the path is expanded.
        let Some(argument) = tool.arguments.iter().find(|it| it.target == ArgumentTarget::Parameter(idx))
        else {
            continue;
        };
        let name = argument.name.as_str();
        let Some(value) = arguments.get(name).filter(|it| !it.is_null()) else {
            if param.required {
                return Err(Error::Missing(name.to_owned()));
            }
            continue;
        };
        match param.location {
            ParamLocation::Path => {
                path_values.insert(param.name.as_str(), (name, path_expansion(param, value, name)?));
            }
            ParamLocation::Query => query.extend(query_pairs(param, value, name)?),
            ParamLocation::Header => {
                if let Some(text) = header_value(param, value, name)? {
                    headers.push((param.name.clone(), text));
                }
            }
            ParamLocation::Cookie => cookies.extend(cookie_pairs(param, value, name)?),
        }
    }
    if !cookies.is_empty() {
        headers.push(("Cookie".to_owned(), cookies.join("; ")));
    }

    let url = request_url(base, &operation.path, &path_values, &query)?;
    let body = match &tool.body {
        Some(plan) => body(operation, tool, plan, arguments)?,
        None => None,
    };
    Ok(Request { method: operation.method, url, headers, body })
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
        reason: format!("{place} in style {}: it holds nested objects or arrays", style_name(style)),
    })
}

fn style_name(style: Style) -> &'static str {
    match style {
        Style::Form => "form",
        Style::Simple => "simple",
        Style::Label => "label",
        Style::Matrix => "matrix",
        Style::SpaceDelimited => "spaceDelimited",
        Style::PipeDelimited => "pipeDelimited",
        Style::DeepObject => "deepObject",
        Style::TabDelimited => "tabDelimited",
    }
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

// Path.

/// A path parameter's expansion: simple (the default, and the fallback for styles not defined
/// for paths), label or matrix, percent-encoded so that it cannot leave its segment.
fn path_expansion(param: &Parameter, value: &Value, argument: &str) -> Result<String, Error> {
    let e = |it: &str| encode(it, COMPONENT);
    if let Some(media_type) = &param.media_type {
        return Ok(e(&media_text(value, media_type)));
    }
    let shape = shape(value, argument, "as a path parameter", param.style)?;
    let explode = param.explode;
    Ok(match param.style {
        Style::Label => {
            let (separator, assign) = if explode { (".", "=") } else { (",", ",") };
            let body = match &shape {
                Shape::Primitive(it) => e(it),
                Shape::Array(items) => items.iter().map(|it| e(it)).collect::<Vec<_>>().join(separator),
                Shape::Object(pairs) => pairs
                    .iter()
                    .map(|(key, it)| format!("{}{assign}{}", e(key), e(it)))
                    .collect::<Vec<_>>()
                    .join(separator),
            };
            format!(".{body}")
        }
        Style::Matrix => {
            // RFC 6570 §3.2.7: an empty value drops the `=`.
            let named = |name: &str, value: &str| {
                if value.is_empty() { format!(";{name}") } else { format!(";{name}={value}") }
            };
            let name = e(&param.name);
            match &shape {
                Shape::Primitive(it) => named(&name, &e(it)),
                Shape::Array(items) if explode => items.iter().map(|it| named(&name, &e(it))).collect(),
                Shape::Array(items) => {
                    named(&name, &items.iter().map(|it| e(it)).collect::<Vec<_>>().join(","))
                }
                Shape::Object(pairs) if explode => {
                    pairs.iter().map(|(key, it)| named(&e(key), &e(it))).collect()
                }
                Shape::Object(pairs) => named(&name, &flat(pairs, &e).join(",")),
            }
        }
        _ => simple(&shape, explode, &e),
    })
}

/// RFC 6570 simple expansion, each part encoded with `e`.
fn simple(shape: &Shape, explode: bool, e: &dyn Fn(&str) -> String) -> String {
    match shape {
        Shape::Primitive(it) => e(it),
        Shape::Array(items) => items.iter().map(|it| e(it)).collect::<Vec<_>>().join(","),
        Shape::Object(pairs) if explode => {
            pairs.iter().map(|(key, it)| format!("{}={}", e(key), e(it))).collect::<Vec<_>>().join(",")
        }
        Shape::Object(pairs) => flat(pairs, e).join(","),
    }
}

/// `base` joined with the expanded `template` and the query, checked to stay under `base`.
fn request_url(
    base: &Url,
    template: &str,
    values: &HashMap<&str, (&str, String)>,
    query: &[String],
) -> Result<Url, Error> {
    if base.cannot_be_a_base() {
        return Err(Error::Escape);
    }
    let prefix = base.path().trim_end_matches('/');
    let mut path = prefix.to_owned();
    let template = template.strip_prefix('/').unwrap_or(template);
    for segment in template.split('/') {
        let (expanded, argument) = expand_segment(segment, values)?;
        // An empty or dot segment would name another resource: `/users/{id}` with an empty id
        // is the collection, with `..` the parent. Percent-encoding cannot help, since URL
        // parsers treat `%2e%2e` as `..`.
        if let Some(argument) = argument
            && matches!(expanded.as_str(), "" | "." | "..")
        {
            return Err(Error::PathSegment(argument.to_owned()));
        }
        path.push('/');
        path.push_str(&expanded);
    }

    let mut url = base.clone();
    url.set_fragment(None);
    url.set_path(&path);
    let own = query.join("&");
    let query = match base.query().filter(|it| !it.is_empty()) {
        Some(fixed) if own.is_empty() => Some(fixed.to_owned()),
        Some(fixed) => Some(format!("{fixed}&{own}")),
        None if own.is_empty() => None,
        None => Some(own),
    };
    url.set_query(query.as_deref());

    // Parsed again, the URL must be the same, at base's origin, under base's path, with one
    // segment per segment of the template.
    let parsed = Url::parse(url.as_str()).map_err(|_| Error::Escape)?;
    let same_origin = parsed.scheme() == base.scheme()
        && parsed.host() == base.host()
        && parsed.port_or_known_default() == base.port_or_known_default()
        && parsed.username() == base.username()
        && parsed.password() == base.password();
    let under_base = parsed.path().strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'));
    let same_segments = parsed.path().matches('/').count() == path.matches('/').count();
    if parsed != url || !same_origin || !under_base || !same_segments {
        return Err(Error::Escape);
    }
    Ok(parsed)
}

/// One segment of the template with its `{name}` expressions replaced; the argument of the first
/// expression, if any.
fn expand_segment<'a>(
    segment: &str,
    values: &HashMap<&str, (&'a str, String)>,
) -> Result<(String, Option<&'a str>), Error> {
    let mut out = String::with_capacity(segment.len());
    let mut argument = None;
    let mut rest = segment;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|it| open + it) else { break };
        out.push_str(&rest[..open]);
        let name = &rest[open + 1..close];
        let Some((arg, expansion)) = values.get(name) else {
            return Err(Error::Missing(name.to_owned()));
        };
        out.push_str(expansion);
        argument.get_or_insert(*arg);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok((out, argument))
}

// Query and cookies.

fn query_pairs(param: &Parameter, value: &Value, argument: &str) -> Result<Vec<String>, Error> {
    let sets = Sets { key: COMPONENT, value: if param.allow_reserved { RESERVED } else { COMPONENT } };
    if let Some(media_type) = &param.media_type {
        let text = encode(&media_text(value, media_type), sets.value);
        return Ok(vec![format!("{}={text}", encode(&param.name, sets.key))]);
    }
    form_like(&param.name, value, param.style, param.explode, sets, argument, "as a query parameter")
}

/// Cookies use the form style (the only one OpenAPI defines for them), joined with `; ` by the
/// caller. Names and values are percent-encoded, so no value can end its cookie early.
fn cookie_pairs(param: &Parameter, value: &Value, argument: &str) -> Result<Vec<String>, Error> {
    let sets = Sets { key: COMPONENT, value: COMPONENT };
    if let Some(media_type) = &param.media_type {
        return Ok(vec![format!(
            "{}={}",
            encode(&param.name, COMPONENT),
            encode(&media_text(value, media_type), COMPONENT)
        )]);
    }
    form_like(&param.name, value, Style::Form, param.explode, sets, argument, "as a cookie")
}

/// `key=value` pairs of the query-string styles, encoded: form, spaceDelimited, pipeDelimited,
/// Swagger's tab-delimited, and deepObject. Combinations OpenAPI leaves undefined (a delimited
/// style exploded, a primitive in deepObject) fall back to form.
fn form_like(
    name: &str,
    value: &Value,
    style: Style,
    explode: bool,
    sets: Sets,
    argument: &str,
    place: &str,
) -> Result<Vec<String>, Error> {
    if style == Style::DeepObject && value.is_object() {
        let mut out = Vec::new();
        deep_object(name.to_owned(), value, 0, sets, argument, &mut out)?;
        return Ok(out);
    }
    let shape = shape(value, argument, place, style)?;
    let ek = |it: &str| encode(it, sets.key);
    let ev = |it: &str| encode(it, sets.value);
    let delimiter = match style {
        Style::SpaceDelimited => "%20",
        Style::PipeDelimited => "%7C",
        Style::TabDelimited => "%09",
        _ => ",",
    };
    let key = ek(name);
    // An empty list or map is undefined in RFC 6570 and expands to nothing.
    Ok(match shape {
        Shape::Primitive(it) => vec![format!("{key}={}", ev(&it))],
        Shape::Array(items) if explode => items.iter().map(|it| format!("{key}={}", ev(it))).collect(),
        Shape::Object(pairs) if explode => {
            pairs.iter().map(|(name, it)| format!("{}={}", ek(name), ev(it))).collect()
        }
        shape if shape.is_empty() => Vec::new(),
        Shape::Array(items) => {
            vec![format!("{key}={}", items.iter().map(|it| ev(it)).collect::<Vec<_>>().join(delimiter))]
        }
        Shape::Object(pairs) => vec![format!("{key}={}", flat(&pairs, &ev).join(delimiter))],
    })
}

/// `name[key]=value`, nesting further as `name[key][inner]`. Lists (which OpenAPI leaves
/// undefined here) repeat the key for each primitive item and index nested ones.
fn deep_object(
    key: String,
    value: &Value,
    depth: usize,
    sets: Sets,
    argument: &str,
    out: &mut Vec<String>,
) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep(argument.to_owned()));
    }
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (name, it) in map {
                deep_object(format!("{key}[{name}]"), it, depth + 1, sets, argument, out)?;
            }
        }
        Value::Array(items) => {
            for (idx, it) in items.iter().enumerate() {
                if it.is_object() || it.is_array() {
                    deep_object(format!("{key}[{idx}]"), it, depth + 1, sets, argument, out)?;
                } else {
                    deep_object(key.clone(), it, depth + 1, sets, argument, out)?;
                }
            }
        }
        primitive => {
            let text = scalar(primitive).unwrap_or_default();
            out.push(format!("{}={}", encode(&key, sets.key), encode(&text, sets.value)));
        }
    }
    Ok(())
}

// Headers.

/// Headers a parameter may not set: those OpenAPI says to ignore (`Accept`, `Content-Type`,
/// `Authorization`), the `Cookie` header the cookie parameters make, and those that frame or
/// route the request, which only the HTTP client may set (a `Host` argument would pick another
/// virtual host on the backend).
fn is_reserved_header(name: &str) -> bool {
    const RESERVED_HEADERS: [&str; 15] = [
        "accept",
        "authorization",
        "connection",
        "content-length",
        "content-type",
        "cookie",
        "expect",
        "host",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    RESERVED_HEADERS.iter().any(|it| it.eq_ignore_ascii_case(name))
}

/// A header parameter's value in the simple style (the only one OpenAPI defines for headers);
/// `None` for an empty list or map.
fn header_value(param: &Parameter, value: &Value, argument: &str) -> Result<Option<String>, Error> {
    let valid_name = !param.name.is_empty()
        && param.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid_name {
        return Err(Error::Unserializable {
            argument: argument.to_owned(),
            reason: format!("as header `{}`, which is not a valid header name", param.name),
        });
    }
    let text = match &param.media_type {
        Some(media_type) => media_text(value, media_type),
        None => {
            let shape = shape(value, argument, "as a header", Style::Simple)?;
            if shape.is_empty() {
                return Ok(None);
            }
            simple(&shape, param.explode, &|it| it.to_owned())
        }
    };
    // A line break would end the header and start another (request smuggling); other control
    // characters are invalid in a header value.
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Error::HeaderValue(argument.to_owned()));
    }
    Ok(Some(text))
}

// Bodies.

/// A top-level property of an object body with the argument that supplied it.
struct Field<'a> {
    /// The argument, for messages: its name, or `body.property` when the whole body is one.
    argument: String,
    /// The property name as the document writes it.
    name: &'a str,
    value: &'a Value,
    /// The property's schema in the tool's input schema.
    schema: Option<&'a Value>,
}

fn body(
    operation: &Operation,
    tool: &ToolSpec,
    plan: &BodyPlan,
    arguments: &Map<String, Value>,
) -> Result<Option<Body>, Error> {
    let request_body = operation.request_body.as_ref();
    let required = request_body.is_some_and(|it| it.required);
    let encodings = request_body
        .and_then(|it| it.content.iter().find(|media| media.name == plan.media_type))
        .map_or(&[][..], |media| media.encoding.as_slice());
    let whole = tool.arguments.iter().find(|it| it.target == ArgumentTarget::Body);
    let whole_value = whole.and_then(|it| arguments.get(&it.name)).filter(|it| !it.is_null());
    if let Some(argument) = whole
        && whole_value.is_none()
    {
        if required {
            return Err(Error::Missing(argument.name.clone()));
        }
        return Ok(None);
    }

    match plan.kind {
        BodyKind::Json => {
            let value = match whole_value {
                Some(value) => value.clone(),
                None => {
                    let object: Map<String, Value> = tool
                        .arguments
                        .iter()
                        .filter_map(|it| match &it.target {
                            ArgumentTarget::BodyProperty(name) => {
                                Some((name.clone(), arguments.get(&it.name)?.clone()))
                            }
                            _ => None,
                        })
                        .collect();
                    if object.is_empty() && !required {
                        return Ok(None);
                    }
                    Value::Object(object)
                }
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
                    argument: argument.name.clone(),
                    reason: "as the body: it must be a base64 string".to_owned(),
                });
            };
            let bytes = decode_base64(text, &argument.name)?;
            Ok(Some(Body { content_type: concrete(&plan.media_type, "application/octet-stream"), bytes }))
        }
        BodyKind::Form | BodyKind::Multipart => {
            let fields = fields(tool, arguments, whole, whole_value)?;
            if fields.is_empty() && !required {
                return Ok(None);
            }
            let encoding = |name: &str| encodings.iter().find(|(it, _)| it == name).map(|(_, it)| it);
            if plan.kind == BodyKind::Form {
                let mut pairs = Vec::new();
                for field in &fields {
                    form_field(field, encoding(field.name), &mut pairs)?;
                }
                let content_type = concrete(&plan.media_type, "application/x-www-form-urlencoded");
                return Ok(Some(Body { content_type, bytes: pairs.join("&").into_bytes() }));
            }
            let mut parts = Vec::new();
            for field in &fields {
                multipart_field(field, encoding(field.name), &tool.input_schema, &mut parts)?;
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
    tool: &'a ToolSpec,
    arguments: &'a Map<String, Value>,
    whole: Option<&'a Argument>,
    whole_value: Option<&'a Value>,
) -> Result<Vec<Field<'a>>, Error> {
    let properties = tool.input_schema.get("properties");
    if let (Some(argument), Some(value)) = (whole, whole_value) {
        let Value::Object(map) = value else {
            return Err(Error::Unserializable {
                argument: argument.name.clone(),
                reason: "as a form: it must be an object".to_owned(),
            });
        };
        let body_schema =
            properties.and_then(|it| it.get(&argument.name)).map(|it| resolve(&tool.input_schema, it));
        let inner = body_schema.and_then(|it| it.get("properties"));
        return Ok(map
            .iter()
            .map(|(name, value)| Field {
                argument: format!("{}.{name}", argument.name),
                name,
                value,
                schema: inner.and_then(|it| it.get(name)),
            })
            .collect());
    }
    Ok(tool
        .arguments
        .iter()
        .filter_map(|it| match &it.target {
            ArgumentTarget::BodyProperty(name) => Some(Field {
                argument: it.name.clone(),
                name,
                value: arguments.get(&it.name)?,
                schema: properties.and_then(|props| props.get(&it.name)),
            }),
            _ => None,
        })
        .collect())
}

/// One property of an `application/x-www-form-urlencoded` body. With `style`, `explode` or
/// `allowReserved` set, the property is serialized like a query parameter of that style;
/// without, by its content type alone (OpenAPI 3.0.4 and 3.1.1 §Encoding Object): primitives as
/// they are, objects as JSON text, arrays one pair per item.
fn form_field(field: &Field<'_>, encoding: Option<&Encoding>, out: &mut Vec<String>) -> Result<(), Error> {
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

struct Part {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    bytes: Vec<u8>,
}

/// The parts of one property of a multipart body: a file part for a base64 property, JSON for
/// objects, text for primitives, and one part per item for arrays (OpenAPI 3.1.1 §4.8.15.3,
/// after RFC 7578 §4.3).
fn multipart_field(
    field: &Field<'_>,
    encoding: Option<&Encoding>,
    root: &Map<String, Value>,
    parts: &mut Vec<Part>,
) -> Result<(), Error> {
    let declared = encoding.and_then(|it| it.content_type.as_deref()).and_then(single_media_type);
    let schema = field.schema.map(|it| resolve(root, it));
    let file = schema.is_some_and(|it| is_base64(root, it, 0));
    match field.value {
        Value::Null => Ok(()),
        Value::Array(items) if !declared.is_some_and(is_json) => {
            let item_schema = schema.and_then(|it| it.get("items")).map(|it| resolve(root, it));
            let files = item_schema.is_some_and(|it| is_base64(root, it, 0));
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

/// Follows `#/$defs/...` references within the tool's input schema, a few hops at most.
fn resolve<'a>(root: &'a Map<String, Value>, mut schema: &'a Value) -> &'a Value {
    for _ in 0..8 {
        let Some(reference) = schema.get("$ref").and_then(Value::as_str) else { break };
        let Some(name) = reference.strip_prefix("#/$defs/").filter(|it| !it.contains('/')) else { break };
        let name = name.replace("~1", "/").replace("~0", "~");
        match root.get("$defs").and_then(|it| it.get(&name)) {
            Some(target) => schema = target,
            None => break,
        }
    }
    schema
}

/// Whether a schema says its string holds base64 bytes, directly or in one `anyOf`/`oneOf`
/// branch (how nullable schemas are often written).
fn is_base64(root: &Map<String, Value>, schema: &Value, depth: usize) -> bool {
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
                branches.iter().any(|it| is_base64(root, resolve(root, it), depth + 1))
            })
        })
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
fn part_head(part: &Part) -> String {
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
fn choose_boundary(parts: &[Part], candidates: impl IntoIterator<Item = String>) -> Result<String, Error> {
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
fn random_boundaries() -> impl Iterator<Item = String> {
    (0u64..).map(|n| {
        let state = RandomState::new();
        format!("mcpgate-{:016x}{:016x}", state.hash_one(n), state.hash_one(!n))
    })
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;

    use super::*;
    use crate::openapi;
    use crate::tools::{self, Options};

    const BASE: &str = "https://api.example.com/v1/";

    fn call_at(base: &str, document: &str, tool: &str, arguments: Value) -> Result<Request, Error> {
        let spec = openapi::ingest(document.as_bytes()).unwrap();
        let generated = tools::generate(&spec, &Options::default());
        let Some(tool) = generated.tools.iter().find(|it| it.name == tool) else {
            panic!("no tool {tool} in {:?}", generated.tools.iter().map(|it| &it.name).collect::<Vec<_>>())
        };
        let Value::Object(arguments) = arguments else { panic!("arguments must be an object") };
        build(&Url::parse(base).unwrap(), &spec.operations[tool.operation], tool, &arguments)
    }

    fn call(document: &str, tool: &str, arguments: Value) -> Result<Request, Error> {
        call_at(BASE, document, tool, arguments)
    }

    #[track_caller]
    fn ok(document: &str, tool: &str, arguments: Value) -> Request {
        match call(document, tool, arguments) {
            Ok(request) => request,
            Err(err) => panic!("unexpected error: {err}"),
        }
    }

    /// A document with one operation `op` on `/users/{id}` (path) or `/users` (other locations)
    /// and one parameter, `id` in the path and `color` elsewhere.
    fn one_parameter(location: &str, style: Option<&str>, explode: Option<bool>) -> String {
        let (path, name) = if location == "path" { ("/users/{id}", "id") } else { ("/users", "color") };
        let mut param = json!({"name": name, "in": location, "required": location == "path", "schema": {}});
        if let Some(style) = style {
            param["style"] = json!(style);
        }
        if let Some(explode) = explode {
            param["explode"] = json!(explode);
        }
        let operation =
            json!({"operationId": "op", "parameters": [param], "responses": {"200": {"description": "ok"}}});
        let mut paths = Map::new();
        paths.insert(path.to_owned(), json!({"get": operation}));
        json!({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths}).to_string()
    }

    fn colors() -> [Value; 3] {
        [json!("blue"), json!(["blue", "black", "brown"]), json!({"R": 100, "G": 200, "B": 150})]
    }

    #[test]
    fn path_styles_follow_the_style_examples() {
        let users = [json!(5), json!([3, 4, 5]), json!({"role": "admin", "firstName": "Alex"})];
        let table = [
            ("simple", false, ["5", "3,4,5", "role,admin,firstName,Alex"]),
            ("simple", true, ["5", "3,4,5", "role=admin,firstName=Alex"]),
            ("label", false, [".5", ".3,4,5", ".role,admin,firstName,Alex"]),
            ("label", true, [".5", ".3.4.5", ".role=admin.firstName=Alex"]),
            ("matrix", false, [";id=5", ";id=3,4,5", ";id=role,admin,firstName,Alex"]),
            ("matrix", true, [";id=5", ";id=3;id=4;id=5", ";role=admin;firstName=Alex"]),
        ];
        for (style, explode, expected) in table {
            let document = one_parameter("path", Some(style), Some(explode));
            for (value, expected) in users.iter().zip(expected) {
                let request = ok(&document, "op", json!({ "id": value }));
                let want = format!("https://api.example.com/v1/users/{expected}");
                assert_eq!(request.url.as_str(), want, "{style}, explode {explode}, {value}");
            }
        }
    }

    #[test]
    fn path_styles_follow_the_color_table() {
        // OpenAPI 3.1.1 §4.8.12.6, with `id` in place of `color`.
        let table = [
            ("simple", false, ["blue", "blue,black,brown", "R,100,G,200,B,150"]),
            ("simple", true, ["blue", "blue,black,brown", "R=100,G=200,B=150"]),
            ("label", false, [".blue", ".blue,black,brown", ".R,100,G,200,B,150"]),
            ("label", true, [".blue", ".blue.black.brown", ".R=100.G=200.B=150"]),
            ("matrix", false, [";id=blue", ";id=blue,black,brown", ";id=R,100,G,200,B,150"]),
            ("matrix", true, [";id=blue", ";id=blue;id=black;id=brown", ";R=100;G=200;B=150"]),
        ];
        for (style, explode, expected) in table {
            let document = one_parameter("path", Some(style), Some(explode));
            for (value, expected) in colors().iter().zip(expected) {
                let request = ok(&document, "op", json!({ "id": value }));
                assert_eq!(request.url.path(), format!("/v1/users/{expected}"), "{style}, explode {explode}");
            }
        }
    }

    #[test]
    fn path_defaults_to_simple_and_encodes_style_values() {
        let document = one_parameter("path", None, None);
        let request = ok(&document, "op", json!({"id": ["a,b", "c d"]}));
        assert_eq!(request.url.path(), "/v1/users/a%2Cb,c%20d");
        let request = ok(&one_parameter("path", Some("matrix"), Some(false)), "op", json!({"id": ""}));
        assert_eq!(request.url.path(), "/v1/users/;id");
        let request =
            ok(&one_parameter("path", Some("label"), Some(true)), "op", json!({"id": {"a.b": "c;d"}}));
        assert_eq!(request.url.path(), "/v1/users/.a.b=c%3Bd");
    }

    #[test]
    fn query_styles_follow_the_color_table() {
        // The *n/a* cells of the table (a primitive in a delimited style or deepObject, an
        // exploded delimited style, a list in deepObject) fall back to form.
        let table = [
            ("form", false, ["color=blue", "color=blue,black,brown", "color=R,100,G,200,B,150"]),
            ("form", true, ["color=blue", "color=blue&color=black&color=brown", "R=100&G=200&B=150"]),
            (
                "spaceDelimited",
                false,
                ["color=blue", "color=blue%20black%20brown", "color=R%20100%20G%20200%20B%20150"],
            ),
            (
                "pipeDelimited",
                false,
                ["color=blue", "color=blue%7Cblack%7Cbrown", "color=R%7C100%7CG%7C200%7CB%7C150"],
            ),
            (
                "spaceDelimited",
                true,
                ["color=blue", "color=blue&color=black&color=brown", "R=100&G=200&B=150"],
            ),
            (
                "deepObject",
                true,
                [
                    "color=blue",
                    "color=blue&color=black&color=brown",
                    "color%5BR%5D=100&color%5BG%5D=200&color%5BB%5D=150",
                ],
            ),
        ];
        for (style, explode, expected) in table {
            let document = one_parameter("query", Some(style), Some(explode));
            for (value, expected) in colors().iter().zip(expected) {
                let request = ok(&document, "op", json!({ "color": value }));
                assert_eq!(request.url.query(), Some(expected), "{style}, explode {explode}, {value}");
                assert_eq!(request.url.path(), "/v1/users");
            }
        }
    }

    #[test]
    fn query_defaults_to_exploded_form() {
        let document = one_parameter("query", None, None);
        let request = ok(&document, "op", json!({"color": [3, 4, 5]}));
        assert_eq!(request.url.query(), Some("color=3&color=4&color=5"));
        let request = ok(&document, "op", json!({"color": {"role": "admin", "firstName": "Alex"}}));
        assert_eq!(request.url.query(), Some("role=admin&firstName=Alex"));
        // An empty list is undefined (RFC 6570 §2.3) and sent as nothing; an empty string is not.
        let request = ok(&document, "op", json!({"color": []}));
        assert_eq!(request.url.query(), None);
        let request = ok(&document, "op", json!({"color": ""}));
        assert_eq!(request.url.query(), Some("color="));
    }

    #[test]
    fn deep_objects_nest_and_are_bounded() {
        let document = one_parameter("query", Some("deepObject"), Some(true));
        let request = ok(&document, "op", json!({"color": {"a": {"b": 1, "c": [true, false]}, "d": null}}));
        assert_eq!(
            request.url.query(),
            Some("color%5Ba%5D%5Bb%5D=1&color%5Ba%5D%5Bc%5D=true&color%5Ba%5D%5Bc%5D=false")
        );
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!({ "x": deep });
        }
        let err = call(&document, "op", json!({ "color": deep })).unwrap_err();
        assert!(matches!(&err, Error::TooDeep(name) if name == "color"), "{err}");
    }

    #[test]
    fn nested_values_in_flat_styles_are_refused() {
        let document = one_parameter("query", Some("form"), Some(true));
        let err = call(&document, "op", json!({"color": {"a": {"b": 1}}})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "argument `color` cannot be sent as a query parameter in style form: it holds nested objects or arrays"
        );
        let document = one_parameter("path", None, None);
        let err = call(&document, "op", json!({"id": [[1]]})).unwrap_err();
        assert!(matches!(&err, Error::Unserializable { argument, .. } if argument == "id"), "{err}");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        let document = one_parameter("query", None, None);
        let request = ok(&document, "op", json!({"color": "a b&c=d+e#f%g~h/é?"}));
        assert_eq!(request.url.query(), Some("color=a%20b%26c%3Dd%2Be%23f%25g~h%2F%C3%A9%3F"));
        assert_eq!(request.url.fragment(), None);
        let pairs: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
        assert_eq!(pairs, [("color".to_owned(), "a b&c=d+e#f%g~h/é?".to_owned())]);
    }

    #[test]
    fn allow_reserved_keeps_reserved_characters_but_not_separators() {
        let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /search:
    get:
      operationId: search
      parameters:
        - {name: path, in: query, allowReserved: true, schema: {type: string}}
      responses: {"200": {description: ok}}
"#;
        let request = ok(document, "search", json!({"path": "a/b?c:d@e,f;g=h[i]!$()*+ x&y#z%"}));
        assert_eq!(request.url.query(), Some("path=a/b?c:d@e,f;g=h[i]!$()*+%20x%26y%23z%25"));
    }

    #[test]
    fn primitives_serialize_as_json_writes_them() {
        let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: list
      parameters:
        - {name: flag, in: query, schema: {type: boolean}}
        - {name: ratio, in: query, schema: {type: number}}
        - {name: count, in: query, schema: {type: integer}}
        - {name: off, in: query, schema: {type: boolean}}
        - {name: skipped, in: query, schema: {type: string}}
        - {name: absent, in: query, schema: {type: string}}
      responses: {"200": {description: ok}}
"#;
        let arguments = json!({"flag": true, "ratio": 1.5, "count": 12345678901234_u64, "off": false, "skipped": null, "unknown": 1});
        let request = ok(document, "list", arguments);
        assert_eq!(request.url.query(), Some("flag=true&ratio=1.5&count=12345678901234&off=false"));
        assert_eq!(request.method, Method::Get);
    }

    #[test]
    fn swagger_collection_formats() {
        let document = r#"
swagger: "2.0"
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: list
      parameters:
        - {name: tsv, in: query, type: array, items: {type: string}, collectionFormat: tsv}
        - {name: ssv, in: query, type: array, items: {type: string}, collectionFormat: ssv}
        - {name: pipes, in: query, type: array, items: {type: string}, collectionFormat: pipes}
        - {name: csv, in: query, type: array, items: {type: string}, collectionFormat: csv}
        - {name: multi, in: query, type: array, items: {type: string}, collectionFormat: multi}
        - {name: X-Ids, in: header, type: array, items: {type: integer}}
      responses: {"200": {description: ok}}
"#;
        let ab = json!(["a", "b"]);
        let arguments = json!({"tsv": ab, "ssv": ab, "pipes": ab, "csv": ab, "multi": ab, "X-Ids": [1, 2]});
        let request = ok(document, "list", arguments);
        assert_eq!(request.url.query(), Some("tsv=a%09b&ssv=a%20b&pipes=a%7Cb&csv=a,b&multi=a&multi=b"));
        assert_eq!(request.headers, [("X-Ids".to_owned(), "1,2".to_owned())]);
    }

    #[test]
    fn missing_required_parameters_are_refused() {
        let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /things/{id}:
    get:
      operationId: get
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
        - {name: q, in: query, required: true, schema: {type: [string, "null"]}}
      responses: {"200": {description: ok}}
"#;
        let err = call(document, "get", json!({"q": "x"})).unwrap_err();
        assert_eq!(err.to_string(), "missing required argument `id`");
        let err = call(document, "get", json!({"id": "1"})).unwrap_err();
        assert!(matches!(&err, Error::Missing(name) if name == "q"), "{err}");
        // Null passes a nullable schema, but a required parameter still needs a value.
        let err = call(document, "get", json!({"id": "1", "q": null})).unwrap_err();
        assert!(matches!(&err, Error::Missing(name) if name == "q"), "{err}");
        let err = call(document, "get", json!({"id": null, "q": "x"})).unwrap_err();
        assert!(matches!(&err, Error::Missing(name) if name == "id"), "{err}");
    }

    const FILES: &str = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /files/{name}/content:
    get:
      operationId: read
      parameters:
        - {name: name, in: path, required: true, schema: {type: string}}
      responses: {"200": {description: ok}}
  /labels/{name}:
    get:
      operationId: label
      parameters:
        - {name: name, in: path, required: true, style: label, schema: {type: string}}
      responses: {"200": {description: ok}}
"#;

    #[test]
    fn path_values_stay_in_their_segment() {
        let cases = [
            ("../admin", "..%2Fadmin"),
            ("../../../etc/passwd", "..%2F..%2F..%2Fetc%2Fpasswd"),
            ("a/b", "a%2Fb"),
            ("x?y#z", "x%3Fy%23z"),
            ("%2e%2e", "%252e%252e"),
            ("%2F", "%252F"),
            ("..\\admin", "..%5Cadmin"),
            ("\\\\evil.com", "%5C%5Cevil.com"),
            ("//evil.com", "%2F%2Fevil.com"),
            ("@evil.com:80", "%40evil.com%3A80"),
            ("a b;c=d,e", "a%20b%3Bc%3Dd%2Ce"),
            ("...", "..."),
            ("日本", "%E6%97%A5%E6%9C%AC"),
            ("\u{202e}x\r\n", "%E2%80%AEx%0D%0A"),
            ("~me.txt", "~me.txt"),
        ];
        for (value, encoded) in cases {
            let request = ok(FILES, "read", json!({ "name": value }));
            let url = &request.url;
            assert_eq!(
                url.as_str(),
                format!("https://api.example.com/v1/files/{encoded}/content"),
                "{value:?}"
            );
            assert_eq!(url.host_str(), Some("api.example.com"));
            assert_eq!(url.path_segments().map(Iterator::count), Some(4), "{value:?}");
            assert_eq!((url.query(), url.fragment()), (None, None));
        }
    }

    #[test]
    fn empty_and_dot_segments_are_refused() {
        for value in ["", ".", ".."] {
            let err = call(FILES, "read", json!({ "name": value })).unwrap_err();
            assert!(matches!(&err, Error::PathSegment(name) if name == "name"), "{value:?}: {err}");
        }
        // Label style puts a `.` in front: an empty value would be `.`, a `.` would be `..`.
        for value in ["", "."] {
            let err = call(FILES, "label", json!({ "name": value })).unwrap_err();
            assert!(matches!(&err, Error::PathSegment(_)), "{value:?}: {err}");
        }
        assert_eq!(ok(FILES, "label", json!({"name": ".."})).url.path(), "/v1/labels/...");
        let err = call(FILES, "read", json!({"name": []})).unwrap_err();
        assert!(matches!(&err, Error::PathSegment(_)), "{err}");
    }

    #[test]
    fn base_urls_with_and_without_a_path() {
        let cases = [
            ("https://api.example.com/v1", "https://api.example.com/v1/files/a/content"),
            ("https://api.example.com/v1/", "https://api.example.com/v1/files/a/content"),
            ("https://api.example.com", "https://api.example.com/files/a/content"),
            ("https://api.example.com/", "https://api.example.com/files/a/content"),
            ("http://127.0.0.1:8080/api/v2", "http://127.0.0.1:8080/api/v2/files/a/content"),
            ("https://api.example.com/v1?key=k#frag", "https://api.example.com/v1/files/a/content?key=k"),
        ];
        for (base, expected) in cases {
            let request = call_at(base, FILES, "read", json!({"name": "a"})).unwrap();
            assert_eq!(request.url.as_str(), expected);
        }
        let document = one_parameter("query", None, None);
        let request =
            call_at("https://api.example.com/v1?key=k", &document, "op", json!({"color": "x"})).unwrap();
        assert_eq!(request.url.as_str(), "https://api.example.com/v1/users?key=k&color=x");
    }

    #[test]
    fn a_template_that_leaves_the_base_is_refused() {
        let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /a/../../admin:
    get:
      operationId: escape
      responses: {"200": {description: ok}}
"#;
        let err = call(document, "escape", json!({})).unwrap_err();
        assert!(matches!(err, Error::Escape), "{err}");
    }

    #[test]
    fn several_expressions_in_one_segment() {
        let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /reports/{year}-{month}.{format}:
    get:
      operationId: report
      parameters:
        - {name: year, in: path, required: true, schema: {type: integer}}
        - {name: month, in: path, required: true, schema: {type: integer}}
        - {name: format, in: path, required: true, schema: {type: string}}
      responses: {"200": {description: ok}}
"#;
        let request = ok(document, "report", json!({"year": 2024, "month": 7, "format": "c/s v"}));
        assert_eq!(request.url.path(), "/v1/reports/2024-7.c%2Fs%20v");
    }

    #[test]
    fn header_styles() {
        let table = [
            (false, ["blue", "blue,black,brown", "R,100,G,200,B,150"]),
            (true, ["blue", "blue,black,brown", "R=100,G=200,B=150"]),
        ];
        for (explode, expected) in table {
            let document = one_parameter("header", Some("simple"), Some(explode));
            for (value, expected) in colors().iter().zip(expected) {
                let request = ok(&document, "op", json!({ "color": value }));
                assert_eq!(request.headers, [("color".to_owned(), expected.to_owned())]);
                assert_eq!(request.url.query(), None);
            }
        }
        // Headers are not percent-encoded.
        let document = one_parameter("header", None, None);
        let request = ok(&document, "op", json!({"color": "a b/ü;c"}));
        assert_eq!(request.headers, [("color".to_owned(), "a b/ü;c".to_owned())]);
    }

    #[test]
    fn header_values_with_line_breaks_are_refused() {
        let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: list
      parameters:
        - {name: X-Trace, in: header, schema: {type: string}}
        - {name: X-Tags, in: header, schema: {type: array, items: {type: string}}}
      responses: {"200": {description: ok}}
"#;
        for value in ["a\r\nX-Evil: 1", "a\nb", "a\rb", "a\u{0}b", "a\u{7f}"] {
            let err = call(document, "list", json!({ "X-Trace": value })).unwrap_err();
            assert!(matches!(&err, Error::HeaderValue(name) if name == "X-Trace"), "{value:?}: {err}");
        }
        let err = call(document, "list", json!({"X-Tags": ["ok", "bad\r\nHost: evil"]})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "argument `X-Tags` contains a line break or another control character, which a header cannot carry"
        );
        let request = ok(document, "list", json!({"X-Trace": "tab\tis fine"}));
        assert_eq!(request.headers, [("X-Trace".to_owned(), "tab\tis fine".to_owned())]);
    }

    #[test]
    fn reserved_headers_are_not_set_by_parameters() {
        let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: list
      parameters:
        - {name: Host, in: header, schema: {type: string}}
        - {name: Content-Length, in: header, schema: {type: string}}
        - {name: Transfer-Encoding, in: header, schema: {type: string}}
        - {name: Accept, in: header, schema: {type: string}}
        - {name: Content-Type, in: header, schema: {type: string}}
        - {name: X-Kept, in: header, schema: {type: string}}
      responses: {"200": {description: ok}}
"#;
        let arguments = json!({
            "Host": "internal.example", "Content-Length": "0", "Transfer-Encoding": "chunked",
            "Accept": "text/html", "Content-Type": "text/plain", "X-Kept": "yes"
        });
        let request = ok(document, "list", arguments);
        assert_eq!(request.headers, [("X-Kept".to_owned(), "yes".to_owned())]);
    }

    #[test]
    fn cookie_styles() {
        let table = [
            (false, ["color=blue", "color=blue,black,brown", "color=R,100,G,200,B,150"]),
            (true, ["color=blue", "color=blue; color=black; color=brown", "R=100; G=200; B=150"]),
        ];
        for (explode, expected) in table {
            let document = one_parameter("cookie", Some("form"), Some(explode));
            for (value, expected) in colors().iter().zip(expected) {
                let request = ok(&document, "op", json!({ "color": value }));
                assert_eq!(request.headers, [("Cookie".to_owned(), expected.to_owned())]);
            }
        }
    }

    #[test]
    fn cookies_are_joined_into_one_header() {
        let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: list
      parameters:
        - {name: theme, in: cookie, schema: {type: string}}
        - {name: X-Before, in: header, schema: {type: string}}
        - {name: ids, in: cookie, explode: false, schema: {type: array, items: {type: integer}}}
        - {name: unset, in: cookie, schema: {type: string}}
        - {name: lang, in: cookie, schema: {type: string}}
      responses: {"200": {description: ok}}
"#;
        let arguments =
            json!({"theme": "dark mode; admin=1\r\n", "ids": [1, 2], "lang": "fr", "X-Before": "h"});
        let request = ok(document, "list", arguments);
        let expected = [
            ("X-Before".to_owned(), "h".to_owned()),
            ("Cookie".to_owned(), "theme=dark%20mode%3B%20admin%3D1%0D%0A; ids=1,2; lang=fr".to_owned()),
        ];
        assert_eq!(request.headers, expected);
    }

    #[test]
    fn content_parameters_are_json_text() {
        let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /places/{selector}:
    get:
      operationId: find
      parameters:
        - name: selector
          in: path
          required: true
          content: {application/json: {schema: {type: object}}}
        - name: coordinates
          in: query
          content: {application/json: {schema: {type: object, properties: {lat: {type: number}, long: {type: number}}}}}
        - name: X-Filter
          in: header
          content: {application/json: {schema: {type: object}}}
        - name: raw
          in: query
          content: {text/plain: {schema: {type: string}}}
        - name: session
          in: cookie
          content: {application/json: {schema: {type: object}}}
      responses: {"200": {description: ok}}
"#;
        let arguments = json!({
            "selector": {"a": "b/c"},
            "coordinates": {"lat": 1.5, "long": 2},
            "X-Filter": {"text": "two\nlines"},
            "raw": "as is",
            "session": ["x"],
        });
        let request = ok(document, "find", arguments);
        assert_eq!(request.url.path(), "/v1/places/%7B%22a%22%3A%22b%2Fc%22%7D");
        assert_eq!(
            request.url.query(),
            Some("coordinates=%7B%22lat%22%3A1.5%2C%22long%22%3A2%7D&raw=as%20is")
        );
        let expected = [
            ("X-Filter".to_owned(), r#"{"text":"two\nlines"}"#.to_owned()),
            ("Cookie".to_owned(), "session=%5B%22x%22%5D".to_owned()),
        ];
        assert_eq!(request.headers, expected);
    }

    const PETS: &str = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /pets/{id}:
    put:
      operationId: updatePet
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}}
      requestBody:
        required: true
        content:
          application/vnd.api+json:
            schema:
              type: object
              required: [name]
              properties:
                id: {type: integer}
                $type: {type: string}
                name: {type: string}
                tags: {type: array, items: {type: string}}
                owner: {type: [object, "null"]}
      responses: {"200": {description: ok}}
  /pets:
    post:
      operationId: addPets
      requestBody:
        content:
          application/json:
            schema: {type: array, items: {type: object}}
      responses: {"200": {description: ok}}
    patch:
      operationId: patchPets
      requestBody:
        content:
          '*/*':
            schema: {type: object, properties: {note: {type: string}}}
      responses: {"200": {description: ok}}
"#;

    fn json_of(body: &Body) -> Value {
        serde_json::from_slice(&body.bytes).unwrap()
    }

    #[test]
    fn json_bodies_from_flattened_properties_use_original_names() {
        let arguments = json!({"id": 7, "id_body": 8, "type": "cat", "name": "Rex", "owner": null, "tags": ["a"], "extra": 1});
        let request = ok(PETS, "updatePet", arguments);
        assert_eq!(request.method, Method::Put);
        assert_eq!(request.url.path(), "/v1/pets/7");
        let Some(body) = &request.body else { panic!("no body") };
        assert_eq!(body.content_type, "application/vnd.api+json");
        let body = json_of(body);
        assert_eq!(body, json!({"id": 8, "$type": "cat", "name": "Rex", "tags": ["a"], "owner": null}));
        // In document order, not argument order.
        let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["id", "$type", "name", "tags", "owner"]);

        let err = call(PETS, "updatePet", json!({"id": 7})).unwrap_err();
        assert!(matches!(&err, Error::Missing(name) if name == "name"), "{err}");
    }

    #[test]
    fn json_bodies_from_the_body_argument() {
        let request = ok(PETS, "addPets", json!({"body": [{"name": "a"}, {"name": "b"}]}));
        let Some(body) = &request.body else { panic!("no body") };
        assert_eq!(body.content_type, "application/json");
        assert_eq!(json_of(body), json!([{"name": "a"}, {"name": "b"}]));
        // An optional body left out is not sent.
        assert_eq!(ok(PETS, "addPets", json!({})).body, None);
        assert_eq!(ok(PETS, "addPets", json!({"body": null})).body, None);
        // A media range is sent as JSON.
        let request = ok(PETS, "patchPets", json!({"note": "hi"}));
        let Some(body) = &request.body else { panic!("no body") };
        assert_eq!((body.content_type.as_str(), json_of(body)), ("application/json", json!({"note": "hi"})));
        assert_eq!(ok(PETS, "patchPets", json!({})).body, None);
    }

    #[test]
    fn a_required_whole_body_must_be_given() {
        let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /notes:
    post:
      operationId: addNote
      requestBody:
        required: true
        content:
          text/plain: {schema: {type: string}}
      responses: {"200": {description: ok}}
"#;
        let err = call(document, "addNote", json!({"body": null})).unwrap_err();
        assert!(matches!(&err, Error::Missing(name) if name == "body"), "{err}");
        let request = ok(document, "addNote", json!({"body": "line 1\nline 2"}));
        let body = request.body.unwrap();
        assert_eq!(
            (body.content_type.as_str(), body.bytes.as_slice()),
            ("text/plain", &b"line 1\nline 2"[..])
        );
    }

    #[test]
    fn form_bodies_follow_their_encoding() {
        let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /forms:
    post:
      operationId: submit
      requestBody:
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              properties:
                name: {type: string}
                tags: {type: array, items: {type: string}}
                address: {type: object}
                csv: {type: array, items: {type: string}}
                color: {type: object}
                spread: {type: object}
                quoted: {type: string}
                path: {type: string}
                none: {type: string}
            encoding:
              csv: {style: form, explode: false}
              color: {style: deepObject, explode: true}
              spread: {style: form}
              quoted: {contentType: application/json}
              path: {allowReserved: true}
      responses: {"200": {description: ok}}
"#;
        let arguments = json!({
            "name": "Rex the ~dog & co=1+1",
            "tags": ["a", "b c"],
            "address": {"city": "Paris", "zip": "75001"},
            "csv": ["a,b", "c"],
            "color": {"R": 100, "G": 200},
            "spread": {"x": 1, "y": 2},
            "quoted": "q",
            "path": "a/b?c&d",
            "none": null,
        });
        let request = ok(document, "submit", arguments);
        let body = request.body.unwrap();
        assert_eq!(body.content_type, "application/x-www-form-urlencoded");
        let expected = [
            "name=Rex%20the%20%7Edog%20%26%20co%3D1%2B1",
            "tags=a",
            "tags=b%20c",
            "address=%7B%22city%22%3A%22Paris%22%2C%22zip%22%3A%2275001%22%7D",
            "csv=a%2Cb,c",
            "color%5BR%5D=100",
            "color%5BG%5D=200",
            "x=1",
            "y=2",
            "quoted=%22q%22",
            "path=a/b?c%26d",
        ]
        .join("&");
        assert_eq!(String::from_utf8(body.bytes).unwrap(), expected);
        let decoded: Vec<(String, String)> =
            url::form_urlencoded::parse(expected.as_bytes()).into_owned().take(1).collect();
        assert_eq!(decoded, [("name".to_owned(), "Rex the ~dog & co=1+1".to_owned())]);
    }

    #[test]
    fn swagger_form_data_fields() {
        let document = r#"
swagger: "2.0"
info: {title: t, version: "1"}
paths:
  /login:
    post:
      operationId: login
      consumes: [application/x-www-form-urlencoded]
      parameters:
        - {name: user, in: formData, type: string, required: true}
        - {name: scopes, in: formData, type: array, items: {type: string}, collectionFormat: ssv}
      responses: {"200": {description: ok}}
"#;
        let request = ok(document, "login", json!({"user": "me", "scopes": ["read", "write"]}));
        let body = request.body.unwrap();
        assert_eq!(String::from_utf8(body.bytes).unwrap(), "user=me&scopes=read%20write");
    }

    /// Each part's header block and content, checking the framing on the way.
    fn parts_of(body: &Body) -> Vec<(String, Vec<u8>)> {
        let (essence, boundary) = body.content_type.split_once("; boundary=").unwrap();
        assert_eq!(essence, "multipart/form-data");
        assert!((1..=70).contains(&boundary.len()));
        let mut bytes = b"\r\n".to_vec();
        bytes.extend_from_slice(&body.bytes);
        let delimiter = format!("\r\n--{boundary}");
        let mut pieces = Vec::new();
        let mut rest = bytes.as_slice();
        while let Some(at) = rest.windows(delimiter.len()).position(|it| it == delimiter.as_bytes()) {
            pieces.push(&rest[..at]);
            rest = &rest[at + delimiter.len()..];
        }
        assert_eq!(rest, b"--\r\n");
        assert_eq!(pieces.first(), Some(&&b""[..]));
        pieces[1..]
            .iter()
            .map(|piece| {
                let piece = piece.strip_prefix(b"\r\n").unwrap();
                let end = piece.windows(4).position(|it| it == b"\r\n\r\n").unwrap();
                (String::from_utf8(piece[..end].to_vec()).unwrap(), piece[end + 4..].to_vec())
            })
            .collect()
    }

    const UPLOAD: &str = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /uploads:
    post:
      operationId: upload
      requestBody:
        required: true
        content:
          multipart/form-data:
            schema:
              type: object
              required: [file]
              properties:
                title: {type: string}
                file: {type: string, format: binary}
                avatar: {$ref: '#/components/schemas/Image'}
                meta: {type: object}
                labels: {type: array, items: {type: string}}
                attachments: {type: array, items: {type: string, format: binary}}
                count: {type: integer}
            encoding:
              avatar: {contentType: 'image/png, image/jpeg'}
              attachments: {contentType: 'image/*'}
      responses: {"200": {description: ok}}
  /raw:
    post:
      operationId: rawUpload
      requestBody:
        content:
          multipart/form-data:
            schema:
              type: object
              additionalProperties: true
              properties:
                doc: {type: string, format: binary}
      responses: {"200": {description: ok}}
components:
  schemas:
    Image: {type: string, format: binary}
"#;

    #[test]
    fn multipart_bodies_with_file_parts() {
        let file = b"line\r\n--not-a-boundary\r\n\x00\xff".to_vec();
        let avatar = b"\x89PNG\r\n".to_vec();
        let arguments = json!({
            "title": "Hello \"world\"",
            "file": STANDARD.encode(&file),
            "avatar": format!("data:image/png;base64,{}", STANDARD.encode(&avatar)),
            "meta": {"a": 1},
            "labels": ["x", "y"],
            "attachments": [STANDARD.encode(b"one"), "dHdv"],
            "count": 3,
        });
        let request = ok(UPLOAD, "upload", arguments);
        let body = request.body.unwrap();
        let parts = parts_of(&body);
        let expected: Vec<(String, Vec<u8>)> = vec![
            ("Content-Disposition: form-data; name=\"title\"".into(), b"Hello \"world\"".to_vec()),
            (
                "Content-Disposition: form-data; name=\"file\"; filename=\"file\"\r\nContent-Type: application/octet-stream"
                    .into(),
                file,
            ),
            (
                "Content-Disposition: form-data; name=\"avatar\"; filename=\"avatar\"\r\nContent-Type: image/png".into(),
                avatar,
            ),
            (
                "Content-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json".into(),
                br#"{"a":1}"#.to_vec(),
            ),
            ("Content-Disposition: form-data; name=\"labels\"".into(), b"x".to_vec()),
            ("Content-Disposition: form-data; name=\"labels\"".into(), b"y".to_vec()),
            (
                "Content-Disposition: form-data; name=\"attachments\"; filename=\"attachments\"\r\nContent-Type: application/octet-stream"
                    .into(),
                b"one".to_vec(),
            ),
            (
                "Content-Disposition: form-data; name=\"attachments\"; filename=\"attachments\"\r\nContent-Type: application/octet-stream"
                    .into(),
                b"two".to_vec(),
            ),
            ("Content-Disposition: form-data; name=\"count\"".into(), b"3".to_vec()),
        ];
        assert_eq!(parts, expected);
    }

    #[test]
    fn multipart_from_a_whole_body_argument() {
        let arguments = json!({"body": {"doc": "aGk=", "note": "n"}});
        let request = ok(UPLOAD, "rawUpload", arguments);
        let parts = parts_of(&request.body.unwrap());
        let expected: Vec<(String, Vec<u8>)> = vec![
            (
                "Content-Disposition: form-data; name=\"doc\"; filename=\"doc\"\r\nContent-Type: application/octet-stream"
                    .into(),
                b"hi".to_vec(),
            ),
            ("Content-Disposition: form-data; name=\"note\"".into(), b"n".to_vec()),
        ];
        assert_eq!(parts, expected);
        let err = call(UPLOAD, "rawUpload", json!({"body": {"doc": "%%%"}})).unwrap_err();
        assert!(matches!(&err, Error::Base64 { argument, .. } if argument == "body.doc"), "{err}");
    }

    #[test]
    fn invalid_base64_names_the_argument() {
        let err = call(UPLOAD, "upload", json!({"file": "not base64!"})).unwrap_err();
        assert!(err.to_string().starts_with("argument `file` is not valid base64: "), "{err}");
        let err = call(UPLOAD, "upload", json!({"file": "aGk=", "attachments": ["aGk=", 5]})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "argument `attachments` cannot be sent as a file: it must be a base64 string"
        );
        // Unpadded, URL-safe and wrapped base64 are accepted.
        for text in ["aGk", "aGk=\n", "_-8="] {
            assert!(call(UPLOAD, "upload", json!({ "file": text })).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn swagger_file_uploads_are_multipart() {
        let document = r#"
swagger: "2.0"
info: {title: t, version: "1"}
paths:
  /upload:
    post:
      operationId: upload
      consumes: [multipart/form-data]
      parameters:
        - {name: file, in: formData, type: file, required: true}
        - {name: note, in: formData, type: string}
      responses: {"200": {description: ok}}
"#;
        let request = ok(document, "upload", json!({"file": STANDARD.encode(b"%PDF-1.7"), "note": "n"}));
        let parts = parts_of(&request.body.unwrap());
        assert_eq!(parts[0].1, b"%PDF-1.7");
        assert!(parts[0].0.contains("filename=\"file\""), "{}", parts[0].0);
        assert_eq!(parts[1], ("Content-Disposition: form-data; name=\"note\"".to_owned(), b"n".to_vec()));
    }

    #[test]
    fn boundaries_are_never_in_the_content() {
        let part = |bytes: &[u8]| Part {
            name: "f".into(),
            filename: None,
            content_type: None,
            bytes: bytes.to_vec(),
        };
        let parts = [part(b"xx--taken--xx"), part(b"other")];
        let candidates = ["--taken--", "f", "", "free"].map(str::to_owned);
        assert_eq!(choose_boundary(&parts, candidates).unwrap(), "free");
        let err = choose_boundary(&parts, std::iter::repeat("other".to_owned())).unwrap_err();
        assert!(matches!(err, Error::Boundary));
        let random: Vec<String> = random_boundaries().take(3).collect();
        assert!(random[0] != random[1] && random[1] != random[2], "{random:?}");
    }

    #[test]
    fn part_names_cannot_break_the_part_headers() {
        let part = Part {
            name: "a\"\r\nX: y".into(),
            filename: Some("f\".txt".into()),
            content_type: Some("text/plain".into()),
            bytes: Vec::new(),
        };
        assert_eq!(
            part_head(&part),
            "Content-Disposition: form-data; name=\"a%22%0D%0AX: y\"; filename=\"f%22.txt\"\r\nContent-Type: text/plain\r\n"
        );
    }

    #[test]
    fn binary_bodies_are_decoded() {
        let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /blobs:
    put:
      operationId: putBlob
      requestBody:
        required: true
        content:
          application/octet-stream: {}
      responses: {"200": {description: ok}}
  /images:
    put:
      operationId: putImage
      requestBody:
        content:
          image/*: {schema: {type: string, format: binary}}
      responses: {"200": {description: ok}}
"#;
        let bytes = vec![0_u8, 1, 2, 254, 255];
        let request = ok(document, "putBlob", json!({"body": STANDARD.encode(&bytes)}));
        assert_eq!(request.body, Some(Body { content_type: "application/octet-stream".into(), bytes }));
        let request = ok(document, "putImage", json!({"body": "iVBORw=="}));
        let body = request.body.unwrap();
        assert_eq!(
            (body.content_type.as_str(), body.bytes.as_slice()),
            ("application/octet-stream", &b"\x89PNG"[..])
        );
        let err = call(document, "putBlob", json!({"body": "***"})).unwrap_err();
        assert!(matches!(&err, Error::Base64 { argument, .. } if argument == "body"), "{err}");
    }
}
