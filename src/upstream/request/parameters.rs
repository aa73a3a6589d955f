//! Query, header and cookie parameters: the form-like styles (form, spaceDelimited,
//! pipeDelimited, Swagger's tab-delimited, deepObject), cookies, and headers in the simple
//! style, which no value can end early.

use serde_json::Value;

use super::path::simple;
use super::{COMPONENT, Error, MAX_DEPTH, RESERVED, Sets, Shape, encode, flat, media_text, scalar, shape};
use crate::tools::plan::{ParameterPlan, Style};

pub(super) fn query_pairs(param: &ParameterPlan, value: &Value) -> Result<Vec<String>, Error> {
    let argument = param.argument.as_str();
    let sets = Sets { key: COMPONENT, value: if param.allow_reserved { RESERVED } else { COMPONENT } };
    if let Some(media_type) = &param.media_type {
        let text = encode(&media_text(value, media_type), sets.value);
        return Ok(vec![format!("{}={text}", encode(&param.name, sets.key))]);
    }
    form_like(&param.name, value, param.style, param.explode, sets, argument, "as a query parameter")
}

/// Cookies use the form style (the only one OpenAPI defines for them), joined with `; ` by the
/// caller. Names and values are percent-encoded, so no value can end its cookie early.
pub(super) fn cookie_pairs(param: &ParameterPlan, value: &Value) -> Result<Vec<String>, Error> {
    let argument = param.argument.as_str();
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
pub(super) fn form_like(
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

/// A header parameter's value in the simple style (the only one OpenAPI defines for headers);
/// `None` for an empty list or map.
pub(super) fn header_value(param: &ParameterPlan, value: &Value) -> Result<Option<String>, Error> {
    let argument = param.argument.as_str();
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
