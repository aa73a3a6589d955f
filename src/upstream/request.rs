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
mod tests;
