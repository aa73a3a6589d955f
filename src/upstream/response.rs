//! A backend's answer as a tool result ([`Outcome`]): JSON as structured content plus text,
//! text as text, images as images, other bytes as an embedded resource; errors with their
//! status and an excerpt of the body, so that a model can act on them. Bodies are read up to a
//! cap and cut with a marker.

use serde::de::IgnoredAny;

use crate::tools::{OutputShape, ToolSpec, WRAPPED_FIELD};

/// A tool call's result, before it is put in MCP terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub is_error: bool,
    pub content: Vec<Part>,
    pub structured: Option<Structured>,
    /// The backend's HTTP status.
    pub status: u16,
}

/// `structuredContent`, as the JSON text of an object, written as it is rather than serialized
/// from a value.
#[derive(Debug, Clone, PartialEq)]
pub struct Structured {
    pub json: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Image { data: Vec<u8>, mime_type: String },
    Resource { uri: String, data: Vec<u8>, mime_type: String },
}

impl Outcome {
    fn error(status: u16, message: impl Into<String>) -> Outcome {
        Outcome { is_error: true, content: vec![Part::Text(message.into())], structured: None, status }
    }

    fn text(status: u16, text: String) -> Outcome {
        Outcome { is_error: false, content: vec![Part::Text(text)], structured: None, status }
    }
}

/// Characters of an error body shown to the model.
const ERROR_EXCERPT: usize = 2000;

/// What came back from the backend.
pub struct Received<'a> {
    pub status: u16,
    pub reason: &'a str,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// The body was longer than the cap and has been cut.
    pub truncated: bool,
    pub max_bytes: usize,
}

/// Turns a received response into the tool's outcome. `output_check` tells whether a JSON text
/// fits the tool's output schema (and logs a mismatch), `None` when it is not JSON; the data is
/// returned either way.
pub fn outcome(
    tool: &ToolSpec,
    received: &Received<'_>,
    output_check: impl Fn(&str) -> Option<bool>,
) -> Outcome {
    let essence = received
        .content_type
        .and_then(|it| it.split(';').next())
        .map(|it| it.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let cut_marker = || format!("\n[response cut at {} bytes]", received.max_bytes);
    if !(200..300).contains(&received.status) {
        let text = String::from_utf8_lossy(received.body);
        let mut excerpt: String = text.chars().take(ERROR_EXCERPT).collect();
        if excerpt.len() < text.len() || received.truncated {
            excerpt.push_str("\n[excerpt]");
        }
        let message = if excerpt.trim().is_empty() {
            format!("The backend answered {} {}.", received.status, received.reason)
        } else {
            format!("The backend answered {} {}:\n{excerpt}", received.status, received.reason)
        };
        return Outcome::error(received.status, message);
    }
    if received.body.is_empty() {
        return Outcome::text(
            received.status,
            format!("Done: the backend answered {} {} with no content.", received.status, received.reason),
        );
    }
    let is_json = essence == "application/json" || essence.ends_with("+json");
    if is_json && !received.truncated {
        let outcome = match tool.output {
            // The syntax is checked without building a value, which for a large answer costs more
            // than the rest of the call.
            OutputShape::Unstructured => serde_json::from_slice::<IgnoredAny>(received.body)
                .is_ok()
                .then(|| Outcome::text(received.status, compact_text(received.body))),
            OutputShape::Object | OutputShape::Wrapped => structured(tool, received, &output_check),
        };
        if let Some(outcome) = outcome {
            return outcome;
        }
    }
    let is_text = is_json
        || essence.starts_with("text/")
        || essence.ends_with("/xml")
        || essence.ends_with("+xml")
        || essence == "application/x-www-form-urlencoded"
        || (essence.is_empty() && std::str::from_utf8(received.body).is_ok());
    if is_text {
        let mut text = String::from_utf8_lossy(received.body).into_owned();
        if received.truncated {
            text.push_str(&cut_marker());
        }
        return Outcome::text(received.status, text);
    }
    let mime_type = if essence.is_empty() { "application/octet-stream".to_owned() } else { essence };
    let mut outcome = if mime_type.starts_with("image/") && !received.truncated {
        Outcome {
            is_error: false,
            content: vec![Part::Image { data: received.body.to_vec(), mime_type }],
            structured: None,
            status: received.status,
        }
    } else {
        let uri = format!("mcpgate://response/{}", tool.name);
        Outcome {
            is_error: false,
            content: vec![Part::Resource { uri, data: received.body.to_vec(), mime_type }],
            structured: None,
            status: received.status,
        }
    };
    if received.truncated {
        outcome.content.push(Part::Text(cut_marker().trim_start().to_owned()));
    }
    outcome
}

/// The outcome of a JSON answer of a tool with an output schema, or `None` when it is not JSON.
fn structured(
    tool: &ToolSpec,
    received: &Received<'_>,
    output_check: &impl Fn(&str) -> Option<bool>,
) -> Option<Outcome> {
    let text = compact_text(received.body);
    let json = match tool.output {
        // The field's name is an identifier: no escaping needed.
        OutputShape::Wrapped => format!("{{\"{WRAPPED_FIELD}\":{text}}}"),
        _ => text.clone(),
    };
    // The backend does not follow its own document. Clients check `structuredContent` against
    // the output schema and refuse the whole result when it does not match (the TypeScript SDK
    // answers -32602), so the data goes through the text block only. `structuredContent` must
    // be an object too: an array where the document promised an object goes the same way.
    let matches = output_check(&json)? && json.starts_with('{');
    let structured = matches.then_some(Structured { json });
    Some(Outcome { is_error: false, content: vec![Part::Text(text)], structured, status: received.status })
}

/// JSON text compacted, whatever the backend's layout: fewer tokens. A string that is not UTF-8,
/// which the syntax check without a value lets through, is shown with replacement characters.
fn compact_text(json: &[u8]) -> String {
    String::from_utf8(compact(json)).unwrap_or_else(|it| String::from_utf8_lossy(it.as_bytes()).into_owned())
}

/// The JSON text `json` without the whitespace between its tokens: a copy of the bytes, cheaper
/// than writing the parsed value out again. Strings, most of a real answer, are copied whole, up
/// to a closing quote found by `memchr` (a byte at a time, GitHub's 2 KB license cost 37,000
/// instructions).
fn compact(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let mut rest = json;
    while let Some((&byte, after)) = rest.split_first() {
        if byte == b'"' {
            // One past the closing quote; an unterminated string runs to the end.
            let end = string_end(after).map_or(rest.len(), |it| it + 2);
            out.extend_from_slice(&rest[..end]);
            rest = &rest[end..];
        } else {
            if !matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
                out.push(byte);
            }
            rest = after;
        }
    }
    out
}

/// Where the string whose opening quote precedes `text` closes: the index of its closing quote,
/// escaped characters skipped.
fn string_end(text: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let found = at + memchr::memchr2(b'"', b'\\', text.get(at..)?)?;
        if text[found] == b'"' {
            return Some(found);
        }
        at = found + 2;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::{openapi, tools};

    /// `compact` as it was first written, a byte at a time: the reference.
    fn compact_bytewise(json: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut in_string, mut escaped) = (false, false);
        for &byte in json {
            if in_string {
                (in_string, escaped) = (escaped || byte != b'"', !escaped && byte == b'\\');
            } else if matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
                continue;
            } else {
                in_string = byte == b'"';
            }
            out.push(byte);
        }
        out
    }

    #[test]
    fn compacting_keeps_strings_whole_whatever_their_escapes_and_ends() {
        let cases: [&[u8]; 12] = [
            b"",
            b" ",
            b"\"",
            b"\"a b",
            b"\"a\\",
            b"\"a\\\" b\" , 1",
            b"[ \"\\\\\" , \" \\\\\\\"\" ]",
            b"{ \"k\" : \"v w\" }\n",
            b"\"\\u0022 x\" \t\"y\"",
            b"  \"x\\",
            b"{\"a\":[1, 2, {\"b\": \" \\n \"}]}",
            "{ \"é\" : \"ü ñ\" }".as_bytes(),
        ];
        for case in cases {
            assert_eq!(compact(case), compact_bytewise(case), "{:?}", String::from_utf8_lossy(case));
        }
        // Every arrangement of the bytes that matter, up to five of them.
        let alphabet = [b'"', b'\\', b' ', b'a', b'\n'];
        for length in 0..=5u32 {
            for mut n in 0..alphabet.len().pow(length) {
                let case: Vec<u8> = (0..length)
                    .map(|_| {
                        let byte = alphabet[n % alphabet.len()];
                        n /= alphabet.len();
                        byte
                    })
                    .collect();
                assert_eq!(compact(&case), compact_bytewise(&case), "{:?}", String::from_utf8_lossy(&case));
            }
        }
    }

    #[test]
    fn json_text_is_compacted_outside_its_strings_only() {
        let body = b" {\"a b\" : [1, 2],\n\t\"q\\\" x\\\\\": \" \\\" \" }\r\n";
        let compacted = String::from_utf8(compact(body)).unwrap();
        assert_eq!(compacted, r#"{"a b":[1,2],"q\" x\\":" \" "}"#);
        let value: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&compacted).unwrap(), value);
    }

    /// A JSON answer of 200 OK.
    fn received(body: &[u8]) -> Received<'_> {
        Received {
            status: 200,
            reason: "OK",
            content_type: Some("application/json"),
            body,
            truncated: false,
            max_bytes: 1024,
        }
    }

    #[test]
    fn json_of_a_tool_without_an_output_schema_is_compacted_text() {
        let document = r#"{"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {"/pet": {"get": {
            "operationId": "getPet", "responses": {"200": {"description": "ok"}}}}}}"#;
        let spec = openapi::ingest(document.as_bytes()).unwrap();
        let tool = tools::generate(&spec, &tools::Options::default()).tools.remove(0);
        assert_eq!(tool.output, OutputShape::Unstructured);
        let never = |_: &str| -> Option<bool> { panic!("no output schema to check against") };
        let json = outcome(&tool, &received(b"{ \"id\": 7,\n \"name\": \"a b\" }"), never);
        assert_eq!((json.is_error, json.structured), (false, None));
        assert_eq!(json.content, [Part::Text(r#"{"id":7,"name":"a b"}"#.to_owned())]);
        let broken = outcome(&tool, &received(b"{ \"id\": 7,"), never);
        assert_eq!(broken.content, [Part::Text("{ \"id\": 7,".to_owned())]);
        let not_utf8 = outcome(&tool, &received(b"{\"id\": \"\xff\"}"), never);
        assert_eq!(not_utf8.content, [Part::Text("{\"id\":\"\u{fffd}\"}".to_owned())]);
    }

    #[test]
    fn answers_that_contradict_the_output_schema_are_text_only() {
        let document = r#"{"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {"/pet": {"get": {
            "operationId": "getPet",
            "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}}}}}}}}}"#;
        let spec = openapi::ingest(document.as_bytes()).unwrap();
        let tool = tools::generate(&spec, &tools::Options::default()).tools.remove(0);
        let schema = Value::Object((*tool.output_schema.clone().unwrap()).clone());
        let validator = jsonschema::draft202012::new(&schema).unwrap();
        let check = |json: &str| serde_json::from_str(json).ok().map(|it| validator.is_valid(&it));
        let fits = outcome(&tool, &received(br#"{"id": 7}"#), check);
        assert_eq!(fits.structured.unwrap().json, r#"{"id":7}"#);
        let strays = outcome(&tool, &received(br#"{"id": "seven"}"#), check);
        assert_eq!((strays.is_error, strays.structured), (false, None));
        assert_eq!(strays.content, [Part::Text(r#"{"id":"seven"}"#.to_owned())]);
    }
}
