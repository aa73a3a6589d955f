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
use rmcp::model::{CallToolRequestParams, ErrorData, PaginatedRequestParams, ProtocolVersion, ServerResult};
use serde::Serialize;
use serde_json::Value;

use super::envelope::ToolsRequest;
use super::gateway::{self, Gateway, Origin};
use crate::auth::Caller;
use crate::snapshot::Snapshot;

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
        let outcome = match serde_json::from_value::<CallToolRequestParams>(params) {
            Ok(mut params) => {
                let header = |name: &str| sender.headers.get(name)?.to_str().ok();
                let meta = params.meta.take();
                let meta = meta.as_ref();
                let trace = match meta.and_then(|it| it.get_traceparent()) {
                    Some(parent) => (Some(parent), meta.and_then(|it| it.get_tracestate())),
                    None => (header("traceparent"), header("tracestate")),
                };
                let origin = Origin { caller: sender.caller, peer: sender.peer, trace, rmcp: None };
                gateway.call_on(snapshot, params, &origin).await.map(ServerResult::from)
            }
            Err(err) => Err(invalid("tools/call", err)),
        };
        encode(&id, outcome)
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
