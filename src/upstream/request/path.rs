//! Path parameters and the URL: RFC 6570 simple, label and matrix expansions, percent-encoded so
//! that no value leaves its segment, and the finished URL checked against the backend's.

use serde_json::Value;
use url::Url;

use super::{COMPONENT, Error, Shape, encode, flat, media_text, shape};
use crate::tools::plan::{ParameterPlan, Style};

/// A path parameter's expansion: simple (the default, and the fallback for styles not defined
/// for paths), label or matrix, percent-encoded so that it cannot leave its segment.
pub(super) fn expansion(param: &ParameterPlan, value: &Value) -> Result<String, Error> {
    let argument = param.argument.as_str();
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
pub(super) fn simple(shape: &Shape, explode: bool, e: &dyn Fn(&str) -> String) -> String {
    match shape {
        Shape::Primitive(it) => e(it),
        Shape::Array(items) => items.iter().map(|it| e(it)).collect::<Vec<_>>().join(","),
        Shape::Object(pairs) if explode => {
            pairs.iter().map(|(key, it)| format!("{}={}", e(key), e(it))).collect::<Vec<_>>().join(",")
        }
        Shape::Object(pairs) => flat(pairs, e).join(","),
    }
}

/// A path parameter's expansion, and the argument it came from. A call has a few: a list is
/// searched faster than a map is hashed.
pub(super) struct PathValue<'a> {
    pub name: &'a str,
    pub argument: &'a str,
    pub expansion: String,
}

/// `base` joined with the expanded `template` and the query, checked to stay under `base`.
pub(super) fn request_url(
    base: &Url,
    template: &str,
    values: &[PathValue<'_>],
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

    let own = query.join("&");
    let query = match base.query().filter(|it| !it.is_empty()) {
        Some(fixed) if own.is_empty() => Some(fixed.to_owned()),
        Some(fixed) => Some(format!("{fixed}&{own}")),
        None if own.is_empty() => None,
        None => Some(own),
    };
    let mut reference = path;
    if let Some(query) = &query {
        reference.push('?');
        reference.push_str(query);
    }

    // Parsed, the URL must be at base's origin, under base's path, with one segment per segment
    // of the template (a dot segment the parser resolved would take one away). Parsed against `base`, whose host is then
    // not parsed (and put through IDNA) once more per call; a reference that named another host
    // (`//host/…`) fails the origin check as any other escape does.
    let parsed = base.join(&reference).map_err(|_| Error::Escape)?;
    let path = &reference[..reference.bytes().position(|it| it == b'?').unwrap_or(reference.len())];
    let same_origin = parsed.scheme() == base.scheme()
        && parsed.host() == base.host()
        && parsed.port_or_known_default() == base.port_or_known_default()
        && parsed.username() == base.username()
        && parsed.password() == base.password();
    let under_base = parsed.path().strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'));
    let same_segments = slashes(parsed.path()) == slashes(path);
    if !same_origin || !under_base || !same_segments {
        return Err(Error::Escape);
    }
    Ok(parsed)
}

/// One segment of the template with its `{name}` expressions replaced; the argument of the first
/// expression, if any.
fn expand_segment<'a>(segment: &str, values: &[PathValue<'a>]) -> Result<(String, Option<&'a str>), Error> {
    let mut out = String::with_capacity(segment.len());
    let mut argument = None;
    let mut rest = segment;
    while let Some(open) = rest.bytes().position(|it| it == b'{') {
        let Some(close) = rest.bytes().skip(open).position(|it| it == b'}').map(|it| open + it) else {
            break;
        };
        out.push_str(&rest[..open]);
        let name = &rest[open + 1..close];
        let Some(PathValue { argument: arg, expansion, .. }) = values.iter().rev().find(|it| it.name == name)
        else {
            return Err(Error::Missing(name.to_owned()));
        };
        out.push_str(expansion);
        argument.get_or_insert(*arg);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok((out, argument))
}

/// How many `/` a path has. Counted byte by byte: a path is a few dozen bytes, and a `char`
/// search pays for a `memchr` call per match.
fn slashes(path: &str) -> usize {
    path.bytes().filter(|it| *it == b'/').count()
}
