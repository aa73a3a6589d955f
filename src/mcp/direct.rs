//! The hot path: `tools/call` and `tools/list` requests answered without rmcp's per-request
//! machinery (a spawned task, channels and a service per request, an SSE stream per answer in a
//! session), by the same gateway functions rmcp's handler calls, so both paths answer alike.
//!
//! [`serves`] decides which requests come here: those rmcp would answer with no more than a
//! call of those functions, of the versions negotiated at `initialize`, and calls of 2026-07-28
//! (which names its version in `_meta`, and repeats the method and tool in headers). Anything else,
//! such as a call that may ask its client something, a request rmcp would refuse (a wrong
//! `Accept` or `Content-Type`, an unknown protocol version, headers that contradict the body),
//! or one from a browser page (with an `Origin`, which rmcp checks against
//! `http.allowed_origins`), goes to rmcp. The `Host` is checked for every route
//! before (`app::check_host`).
//!
//! The answer is one JSON body, written at once: in a session too, where the transport lets the
//! server answer a POST with JSON or with an SSE stream.

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ErrorData, PaginatedRequestParams, ProtocolVersion, ServerResult,
};
use serde::Serialize;
use serde_json::Value;

use super::envelope::{Params, ToolsRequest};
use super::gateway::{self, Called, Gateway, Origin};
use crate::auth::Caller;
use crate::snapshot::Snapshot;
use crate::upstream::{Outcome, Part};

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";
// Names, not text: a lookup by text checks and lowercases the name first, at every call.
const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

/// Whether the direct path answers `request`, which came with `headers`, as rmcp would.
pub(super) fn serves(headers: &HeaderMap, request: &ToolsRequest, snapshot: &Snapshot) -> bool {
    let (mut json, mut event_stream) = (false, false);
    for value in headers.get_all(header::ACCEPT) {
        for essence in media_types(value) {
            json |= essence.eq_ignore_ascii_case(JSON);
            event_stream |= essence.eq_ignore_ascii_case(EVENT_STREAM);
        }
    }
    let json_body = headers.get(header::CONTENT_TYPE).is_some_and(|it| media_types(it).next() == Some(JSON));
    let version = if request.versioned() { per_request(headers, request) } else { negotiated(headers) };
    json && event_stream
        && json_body
        && !headers.contains_key(header::ORIGIN)
        && version
        && !(request.call && Gateway::may_ask(snapshot, called(request, snapshot)))
}

/// A request of a version negotiated at `initialize` (before 2026-07-28): its header names a
/// version rmcp knows, or none (2025-03-26).
fn negotiated(headers: &HeaderMap) -> bool {
    match headers.get(PROTOCOL_VERSION).map(HeaderValue::to_str) {
        None => true,
        Some(Ok(version)) => ProtocolVersion::KNOWN_VERSIONS
            .iter()
            .any(|known| known.as_str() == version && version < ProtocolVersion::V_2026_07_28.as_str()),
        Some(Err(_)) => false,
    }
}

/// A 2026-07-28 `tools/call`, which names its version in `_meta`, that rmcp would serve without
/// a word of its own: the header names the same version, `_meta` has the client's capabilities,
/// and `Mcp-Method` and `Mcp-Name` (unencoded) repeat the body once each. rmcp would also check
/// `Mcp-Param-*` headers against the tool's `x-mcp-header` annotations, which generated input
/// schemas never carry. Anything else goes to rmcp, which says what is wrong; so does a
/// 2026-07-28 `tools/list`, whose result rmcp gives caching hints.
fn per_request(headers: &HeaderMap, request: &ToolsRequest) -> bool {
    let next = ProtocolVersion::V_2026_07_28.as_str();
    let meta = request.meta();
    let meta_version = meta.and_then(|it| it.get(META_PROTOCOL_VERSION)).and_then(Value::as_str);
    let capabilities = meta.and_then(|it| it.get(META_CLIENT_CAPABILITIES)).is_some_and(Value::is_object);
    let name = request.name();
    request.call
        && single(headers, PROTOCOL_VERSION) == Some(next)
        && meta_version == Some(next)
        && capabilities
        && single(headers, MCP_METHOD) == Some("tools/call")
        && name.is_some()
        && single(headers, MCP_NAME) == name
}

/// The one value of header `name`, as text.
fn single(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    // A name rmcp would decode (`=?base64?…?=`) is left to it.
    first.to_str().ok().filter(|it| !it.starts_with("=?"))
}

/// The catalog's tool a `tools/call` request runs (in catalog mode, the one the call meta-tool
/// names).
fn called<'a>(request: &'a ToolsRequest, snapshot: &'a Snapshot) -> Option<&'a crate::catalog::Tool> {
    let called = super::catalog_mode::called_tool(&snapshot.catalog, request.name()?, request.arguments())?;
    snapshot.catalog.tool(called)
}

/// The media types of an `Accept` or `Content-Type` value, without their parameters.
fn media_types(value: &HeaderValue) -> impl Iterator<Item = &str> {
    value.to_str().unwrap_or_default().split(',').map(|it| it.split(';').next().unwrap_or_default().trim())
}

/// Who sent a request, and its HTTP headers.
pub(super) struct Sender<'a> {
    pub caller: Option<&'a Caller>,
    pub peer: Option<SocketAddr>,
    pub headers: &'a HeaderMap,
}

/// Answers `request` from `sender`, which [`serves`] accepted, on `snapshot`.
pub(super) async fn answer(
    gateway: &Gateway,
    snapshot: &Snapshot,
    request: ToolsRequest,
    sender: Sender<'_>,
) -> Response {
    // `serves` took a request that names its version only when it is 2026-07-28.
    let per_request = request.versioned();
    let ToolsRequest { id, call, params } = request;
    let invalid = |method: &str, err: serde_json::Error| {
        ErrorData::invalid_params(format!("invalid {method} parameters: {err}"), None)
    };
    let body = match params {
        Params::Call(params) => call_tool(gateway, snapshot, &id, params, &sender, per_request).await,
        Params::Sent(params) if call => match serde_json::from_value(Value::Object(params)) {
            Ok(params) => call_tool(gateway, snapshot, &id, params, &sender, per_request).await,
            Err(err) => encode(&id, Err(invalid("tools/call", err)), per_request),
        },
        Params::Sent(params) => {
            let outcome =
                match serde_json::from_value::<Option<PaginatedRequestParams>>(Value::Object(params)) {
                    Ok(params) => {
                        gateway::list_tools_on(snapshot, params, sender.caller).map(ServerResult::from)
                    }
                    Err(err) => Err(invalid("tools/list", err)),
                };
            encode(&id, outcome, per_request)
        }
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

/// The JSON-RPC response to the call `id` with `params`.
async fn call_tool(
    gateway: &Gateway,
    snapshot: &Snapshot,
    id: &Value,
    mut params: CallToolRequestParams,
    sender: &Sender<'_>,
    per_request: bool,
) -> Vec<u8> {
    let header = |name: HeaderName| sender.headers.get(name)?.to_str().ok();
    let meta = params.meta.take();
    let meta = meta.as_ref();
    let trace = match meta.and_then(|it| it.get_traceparent()) {
        Some(parent) => (Some(parent), meta.and_then(|it| it.get_tracestate())),
        None => (header(TRACEPARENT), header(TRACESTATE)),
    };
    let origin = Origin { caller: sender.caller, peer: sender.peer, trace, rmcp: None };
    match gateway.call_on(snapshot, params, &origin).await {
        Ok(Called::Forwarded(outcome)) => forwarded(id, outcome, per_request),
        other => encode(id, other.map(|it| CallToolResponse::from(it).into()), per_request),
    }
}

/// The JSON-RPC response to the request `id` that came to `outcome`, as rmcp's handler writes
/// it: in the shape of the versions before 2026-07-28 unless the request named its own version
/// (`per_request`).
fn encode(id: &Value, outcome: Result<ServerResult, ErrorData>, per_request: bool) -> Vec<u8> {
    let outcome = outcome.and_then(|mut result| {
        if per_request {
            return Ok(result);
        }
        if matches!(result, ServerResult::InputRequiredResult(_)) {
            return Err(ErrorData::invalid_request(
                "InputRequiredResult requires negotiated protocol version 2026-07-28 or newer",
                None,
            ));
        }
        result.strip_result_type_for_legacy_peer();
        result.strip_non_object_output_for_legacy_peer();
        Ok(result)
    });
    let answer = match &outcome {
        Ok(result) => Answer { jsonrpc: "2.0", id, result: Some(result), error: None },
        Err(error) => Answer { jsonrpc: "2.0", id, result: None, error: Some(error) },
    };
    serde_json::to_vec(&answer).unwrap_or_else(|err| {
        // Results are plain data; this would be a bug, answered as one.
        tracing::error!(%err, "a tools answer could not be serialized");
        let error = ErrorData::internal_error("the answer could not be serialized", None);
        let answer = Answer::<()> { jsonrpc: "2.0", id, result: None, error: Some(&error) };
        serde_json::to_vec(&answer).unwrap_or_default()
    })
}

/// The response to the request `id` of a call the backend answered: what [`encode`] writes for
/// it (`tests`), without building rmcp's result to serialize it, and with `structuredContent`
/// copied from the JSON text it was read from.
fn forwarded(id: &Value, outcome: Outcome, per_request: bool) -> Vec<u8> {
    let texts: Option<Vec<&str>> = outcome
        .content
        .iter()
        .map(|part| match part {
            Part::Text(text) => Some(text.as_str()),
            Part::Image { .. } | Part::Resource { .. } => None,
        })
        .collect();
    let through_rmcp =
        |outcome| encode(id, Ok(CallToolResponse::from(Called::Forwarded(outcome)).into()), per_request);
    // Images and resources are rare, and base64 in rmcp's shape: rmcp writes them.
    let Some(texts) = texts else {
        return through_rmcp(outcome);
    };
    let structured = outcome.structured.as_ref().map_or("", |it| it.json.as_str());
    let mut out =
        Vec::with_capacity(128 + 2 * texts.iter().map(|it| it.len()).sum::<usize>() + structured.len());
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    // Ids are strings or integers (`envelope::read`), and writing to a `Vec` does not fail.
    let written = serde_json::to_writer(&mut out, id);
    out.extend_from_slice(br#","result":{"#);
    // 2026-07-28 results say what kind of result they are.
    if per_request {
        out.extend_from_slice(br#""resultType":"complete","#);
    }
    out.extend_from_slice(br#""content":["#);
    for (n, text) in texts.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"type":"text","text":"#);
        json_string(&mut out, text);
        out.push(b'}');
    }
    out.push(b']');
    if outcome.structured.is_some() {
        out.extend_from_slice(br#","structuredContent":"#);
        out.extend_from_slice(structured.as_bytes());
    }
    let is_error: &[u8] = if outcome.is_error { br#","isError":true}}"# } else { br#","isError":false}}"# };
    out.extend_from_slice(is_error);
    match written {
        Ok(()) => out,
        Err(_) => through_rmcp(outcome),
    }
}

/// `text` as a JSON string, escaped as serde_json escapes it (which [`encode`] uses). A text
/// block is mostly the backend's JSON, and serde_json looks each byte up in a table (20,000
/// instructions for GitHub's 2 KB license). Here 8 bytes at a time are checked at once, as one
/// word, which also says where the bytes to escape are (JSON text has a quote every few bytes);
/// the bytes between them are copied as they are.
fn json_string(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.push(b'"');
    let mut copied = 0;
    let (words, tail) = bytes.as_chunks::<8>();
    for (n, word) in words.iter().enumerate() {
        let mut escapes = escapes_in(u64::from_le_bytes(*word));
        while escapes != 0 {
            let at = n * 8 + (escapes.trailing_zeros() / 8) as usize;
            escape_at(out, bytes, &mut copied, at);
            escapes &= escapes - 1;
        }
    }
    for (offset, &byte) in tail.iter().enumerate() {
        if needs_escape(byte) {
            escape_at(out, bytes, &mut copied, words.len() * 8 + offset);
        }
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

/// The bytes of `word` (little-endian) that need escaping, as the high bit of each. Exact: no
/// carry crosses from one byte into the next.
fn escapes_in(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte that is zero: neither its high bit nor, added to 0x7f, its others.
    let zero = |word: u64| !(((word & LOW) + LOW) | word | LOW);
    let quote = zero(word ^ (ONES * u64::from(b'"')));
    let backslash = zero(word ^ (ONES * u64::from(b'\\')));
    // Below 0x20: neither its high bit nor, added to 0x60, a carry into it.
    let control = !(((word & LOW) + ONES * 0x60) | word) & HIGH;
    quote | backslash | control
}

/// Escapes the byte at `at`, after the bytes before it since `copied`.
fn escape_at(out: &mut Vec<u8>, bytes: &[u8], copied: &mut usize, at: usize) {
    out.extend_from_slice(&bytes[*copied..at]);
    escape(out, bytes[at]);
    *copied = at + 1;
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

fn escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x0c => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        _ => {
            let unicode =
                [b'\\', b'u', b'0', b'0', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]];
            return out.extend_from_slice(&unicode);
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

/// A JSON-RPC response.
#[derive(Serialize)]
struct Answer<'a, T> {
    jsonrpc: &'static str,
    id: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ErrorData>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::upstream::Structured;

    fn rmcp_writes(id: &Value, outcome: Outcome, per_request: bool) -> Value {
        let result = CallToolResponse::from(Called::Forwarded(outcome)).into();
        serde_json::from_slice(&encode(id, Ok(result), per_request)).unwrap()
    }

    /// A 2026-07-28 `tools/call` of `getPet` with `headers`, and `_meta` as given.
    fn next_call(headers: &[(&'static str, &'static str)], meta: Value) -> (HeaderMap, ToolsRequest) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_static(value));
        }
        let params = json!({"name": "getPet", "arguments": {}, "_meta": meta});
        (map, request("tools/call", params))
    }

    /// A request as `envelope::read` reads it.
    fn request(method: &str, params: Value) -> ToolsRequest {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        super::super::envelope::read(body.to_string().as_bytes()).unwrap().tools.unwrap()
    }

    #[test]
    fn a_2026_request_is_served_only_when_its_headers_repeat_its_body() {
        let meta = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        let version = ("mcp-protocol-version", "2026-07-28");
        let method = ("mcp-method", "tools/call");
        let name = ("mcp-name", "getPet");
        let serves = |headers: &[(&'static str, &'static str)], meta: &Value| {
            let (headers, request) = next_call(headers, meta.clone());
            per_request(&headers, &request)
        };
        assert!(serves(&[version, method, name], &meta));
        assert!(!serves(&[("mcp-protocol-version", "2025-11-25"), method, name], &meta), "another version");
        assert!(!serves(&[method, name], &meta), "no version header");
        assert!(!serves(&[version, ("mcp-method", "tools/list"), name], &meta), "another method");
        assert!(!serves(&[version, name], &meta), "no Mcp-Method");
        assert!(!serves(&[version, method], &meta), "no Mcp-Name");
        assert!(!serves(&[version, method, ("mcp-name", "other")], &meta), "another tool");
        assert!(!serves(&[version, method, name, name], &meta), "Mcp-Name twice");
        assert!(!serves(&[version, method, ("mcp-name", "=?base64?Z2V0UGV0?=")], &meta), "encoded: rmcp's");
        let no_capabilities = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"});
        assert!(!serves(&[version, method, name], &no_capabilities));
        let other_version = json!({
            "io.modelcontextprotocol/protocolVersion": "2025-11-25",
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        assert!(!serves(&[version, method, name], &other_version), "`_meta` and header disagree");

        let (headers, _) = next_call(&[version, ("mcp-method", "tools/list")], meta.clone());
        let list = request("tools/list", json!({"_meta": meta}));
        assert!(!per_request(&headers, &list), "rmcp lists, with its caching hints");
    }

    #[test]
    fn a_forwarded_answer_is_written_as_rmcp_writes_it() {
        let pet = json!({"id": 7, "name": "doggie \"the\" dog", "tags": [{"id": 1}]});
        let text = |it: &str| Part::Text(it.to_owned());
        let outcomes = [
            Outcome {
                is_error: false,
                content: vec![text(&pet.to_string())],
                structured: Some(Structured { json: pet.to_string() }),
                status: 200,
            },
            Outcome {
                is_error: true,
                content: vec![text("The backend answered 404:\n{}")],
                structured: None,
                status: 404,
            },
            Outcome {
                is_error: false,
                content: vec![text("a\u{1}b"), text("é")],
                structured: None,
                status: 200,
            },
            Outcome {
                is_error: false,
                content: vec![
                    Part::Image { data: vec![1, 2], mime_type: "image/png".to_owned() },
                    text("cut"),
                ],
                structured: None,
                status: 200,
            },
        ];
        for (id, per_request) in [(json!(1), false), (json!("call-\"1\""), false), (json!(2), true)] {
            for outcome in &outcomes {
                let written = forwarded(&id, outcome.clone(), per_request);
                let written: Value = serde_json::from_slice(&written).unwrap();
                assert_eq!(written, rmcp_writes(&id, outcome.clone(), per_request), "{outcome:?}");
                assert_eq!(written["result"].get("resultType").is_some(), per_request);
            }
        }
        let written = String::from_utf8(forwarded(&json!(1), outcomes[0].clone(), false)).unwrap();
        assert!(written.contains(&format!(r#""structuredContent":{}"#, pet)), "{written}");
    }

    #[test]
    fn text_is_escaped_as_serde_json_escapes_it() {
        let mut cases: Vec<String> = (0..=0x7fu8).map(|it| char::from(it).to_string()).collect();
        cases.extend(["", "plain", "é ü – 😀", "a\"b\\c\u{7f}d\u{1}"].map(str::to_owned));
        // Specials at every place of the 8-byte words and their tail, alone, in pairs, and beside
        // characters whose bytes have the high bit set.
        for special in
            ["\"", "\\", "\n", "\u{0}", "\u{1f}", "\u{20}", "é", "😀", "\"\\", "\u{1}\"", "é\u{1f}"]
        {
            for at in 0..=24 {
                let mut text = "x".repeat(24);
                text.insert_str(at, special);
                cases.push(text);
            }
        }
        cases.push(r#"{"key":"mit","body":"MIT License\n\nCopyright (c) [year]"}"#.repeat(40));
        for text in cases {
            let mut ours = Vec::new();
            json_string(&mut ours, &text);
            assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&text).unwrap(), "{text:?}");
        }
    }
}
