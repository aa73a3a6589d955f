//! The hot path: `tools/call` and `tools/list` requests answered without rmcp's per-request
//! machinery (a spawned task, channels and a service per request, an SSE stream per answer in a
//! session), by the same gateway functions rmcp's handler calls, so both paths answer alike.
//!
//! [`serves`] decides which requests come here: those rmcp would answer with no more than a
//! call of those functions. Anything else, such as a 2026-07-28 request (which carries its
//! protocol version in `_meta`, and may be asked for more input), a call that may ask its client
//! something in a session, a request rmcp would refuse (a wrong `Accept` or `Content-Type`,
//! an unknown protocol version), or one from a browser page (with an `Origin`, which rmcp
//! checks against `http.allowed_origins`), goes to rmcp. The `Host` is checked for every route
//! before (`app::check_host`).
//!
//! The answer is one JSON body, written at once: in a session too, where the transport lets the
//! server answer a POST with JSON or with an SSE stream.

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ErrorData, PaginatedRequestParams, ProtocolVersion, ServerResult,
};
use serde::Serialize;
use serde_json::Value;

use super::envelope::ToolsRequest;
use super::gateway::{self, Called, Gateway, Origin};
use crate::auth::Caller;
use crate::snapshot::Snapshot;
use crate::upstream::{Outcome, Part};

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";
const PROTOCOL_VERSION: &str = "mcp-protocol-version";

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
    // No header is 2025-03-26; 2026-07-28 and later name their version in `_meta` and may be
    // asked for input across requests, which rmcp handles.
    let version = match headers.get(PROTOCOL_VERSION).map(HeaderValue::to_str) {
        None => true,
        Some(Ok(version)) => ProtocolVersion::KNOWN_VERSIONS
            .iter()
            .any(|known| known.as_str() == version && version < ProtocolVersion::V_2026_07_28.as_str()),
        Some(Err(_)) => false,
    };
    json && event_stream
        && json_body
        && !headers.contains_key(header::ORIGIN)
        && version
        && !request.versioned()
        && !(request.call && Gateway::may_ask(snapshot, called(request, snapshot)))
}

/// The catalog's tool a `tools/call` request runs (in catalog mode, the one the call meta-tool
/// names).
fn called<'a>(request: &'a ToolsRequest, snapshot: &'a Snapshot) -> Option<&'a crate::catalog::Tool> {
    let name = request.params.get("name")?.as_str()?;
    let arguments = request.params.get("arguments").and_then(Value::as_object);
    snapshot.catalog.tool(super::catalog_mode::called_tool(&snapshot.catalog, name, arguments)?)
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
    let ToolsRequest { id, call, params } = request;
    let params = Value::Object(params);
    let invalid = |method: &str, err: serde_json::Error| {
        ErrorData::invalid_params(format!("invalid {method} parameters: {err}"), None)
    };
    let body = if call {
        match serde_json::from_value::<CallToolRequestParams>(params) {
            Ok(mut params) => {
                let header = |name: &str| sender.headers.get(name)?.to_str().ok();
                let meta = params.meta.take();
                let meta = meta.as_ref();
                let trace = match meta.and_then(|it| it.get_traceparent()) {
                    Some(parent) => (Some(parent), meta.and_then(|it| it.get_tracestate())),
                    None => (header("traceparent"), header("tracestate")),
                };
                let origin = Origin { caller: sender.caller, peer: sender.peer, trace, rmcp: None };
                match gateway.call_on(snapshot, params, &origin).await {
                    Ok(Called::Forwarded(outcome)) => forwarded(&id, outcome),
                    other => encode(&id, other.map(|it| CallToolResponse::from(it).into())),
                }
            }
            Err(err) => encode(&id, Err(invalid("tools/call", err))),
        }
    } else {
        let outcome = match serde_json::from_value::<Option<PaginatedRequestParams>>(params) {
            Ok(params) => gateway::list_tools_on(snapshot, params, sender.caller).map(ServerResult::from),
            Err(err) => Err(invalid("tools/list", err)),
        };
        encode(&id, outcome)
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

/// The JSON-RPC response to the request `id` that came to `outcome`, in the shape of the
/// protocol versions before 2026-07-28, the only ones this path serves (as rmcp's handler does).
fn encode(id: &Value, outcome: Result<ServerResult, ErrorData>) -> Vec<u8> {
    let outcome = outcome.and_then(|mut result| {
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
fn forwarded(id: &Value, outcome: Outcome) -> Vec<u8> {
    let texts: Option<Vec<&str>> = outcome
        .content
        .iter()
        .map(|part| match part {
            Part::Text(text) => Some(text.as_str()),
            Part::Image { .. } | Part::Resource { .. } => None,
        })
        .collect();
    // Images and resources are rare, and base64 in rmcp's shape: rmcp writes them.
    let Some(texts) = texts else {
        return encode(id, Ok(CallToolResponse::from(Called::Forwarded(outcome)).into()));
    };
    let structured = outcome.structured.as_ref().map_or("", |it| it.json.as_str());
    let mut out =
        Vec::with_capacity(128 + 2 * texts.iter().map(|it| it.len()).sum::<usize>() + structured.len());
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    // Ids are strings or integers (`envelope::read`), and writing to a `Vec` does not fail.
    let mut written = serde_json::to_writer(&mut out, id);
    out.extend_from_slice(br#","result":{"content":["#);
    for (n, text) in texts.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"type":"text","text":"#);
        written = written.and_then(|()| serde_json::to_writer(&mut out, text));
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
        Err(_) => encode(id, Ok(CallToolResponse::from(Called::Forwarded(outcome)).into())),
    }
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

    fn rmcp_writes(id: &Value, outcome: Outcome) -> Value {
        let result = CallToolResponse::from(Called::Forwarded(outcome)).into();
        serde_json::from_slice(&encode(id, Ok(result))).unwrap()
    }

    #[test]
    fn a_forwarded_answer_is_written_as_rmcp_writes_it() {
        let pet = json!({"id": 7, "name": "doggie \"the\" dog", "tags": [{"id": 1}]});
        let text = |it: &str| Part::Text(it.to_owned());
        let outcomes = [
            Outcome {
                is_error: false,
                content: vec![text(&pet.to_string())],
                structured: Some(Structured { value: pet.clone(), json: pet.to_string() }),
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
        for id in [json!(1), json!("call-\"1\"")] {
            for outcome in &outcomes {
                let written: Value = serde_json::from_slice(&forwarded(&id, outcome.clone())).unwrap();
                assert_eq!(written, rmcp_writes(&id, outcome.clone()), "{outcome:?}");
            }
        }
        let written = String::from_utf8(forwarded(&json!(1), outcomes[0].clone())).unwrap();
        assert!(written.contains(&format!(r#""structuredContent":{}"#, pet)), "{written}");
    }
}
