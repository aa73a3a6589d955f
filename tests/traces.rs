//! Traces of `tools/call`, exported over OTLP/HTTP to a real receiver on loopback that decodes
//! the protobuf: the server span `tools/call {tool}` with the client's trace context as its
//! parent (from `params._meta`, else the HTTP header), its credential and backend children, and
//! the backend's `traceparent`. A binary of its own: the subscriber is installed once per process.

#![allow(dead_code)] // The shared fixtures offer more than these tests use.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use reqwest::Method;
use serde_json::json;

#[path = "support/app.rs"]
mod app;
#[path = "support/harness.rs"]
mod harness;

use app::{Backend, McpClient, Setup};

const DOCUMENT: &str = r#"
openapi: 3.0.3
info: {title: Pets, version: "1"}
paths:
  /pets/{id}:
    get:
      operationId: getPet
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok, content: {application/json: {schema: {type: object}}}}}
"#;

/// An OTLP/HTTP receiver: every span posted to `/v1/traces`, with its service's name.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

impl Receiver {
    async fn start(&self) -> String {
        let spans = self.spans.clone();
        let router = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| {
                let spans = spans.clone();
                async move {
                    assert_eq!(headers["content-type"], "application/x-protobuf");
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    for resource in request.resource_spans {
                        let service = resource
                            .resource
                            .iter()
                            .flat_map(|it| &it.attributes)
                            .find(|it| it.key == "service.name")
                            .and_then(|it| it.value.as_ref())
                            .and_then(|it| match &it.value {
                                Some(AnyValue::StringValue(value)) => Some(value.clone()),
                                _ => None,
                            })
                            .unwrap_or_default();
                        for scope in resource.scope_spans {
                            spans
                                .lock()
                                .unwrap()
                                .extend(scope.spans.into_iter().map(|it| (service.clone(), it)));
                        }
                    }
                    ([("content-type", "application/x-protobuf")], Vec::<u8>::new()).into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        url
    }

    fn take(&self) -> Vec<(String, Span)> {
        std::mem::take(&mut *self.spans.lock().unwrap())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|it| format!("{it:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|it| it.key == key).and_then(|it| it.value.as_ref()).map(|it| {
        match &it.value {
            Some(AnyValue::StringValue(value)) => value.clone(),
            Some(AnyValue::IntValue(value)) => value.to_string(),
            other => format!("{other:?}"),
        }
    })
}

/// The spans of the trace `trace_id`, waiting (flushing) until `n` have come.
async fn trace(
    telemetry: &mcpgate::telemetry::Telemetry,
    receiver: &Receiver,
    trace_id: &str,
    n: usize,
) -> Vec<Span> {
    let start = Instant::now();
    let mut found: Vec<Span> = Vec::new();
    while start.elapsed() < Duration::from_secs(20) {
        telemetry.flush().await;
        for (service, span) in receiver.take() {
            assert_eq!(service, "mcpgate-under-test");
            if hex(&span.trace_id) == trace_id {
                found.push(span);
            }
        }
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} of {n} spans of {trace_id} came: {found:#?}", found.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_is_a_server_span_with_credential_and_backend_children() {
    let receiver = Receiver::default();
    let collector = receiver.start().await;
    let config = mcpgate::config::TelemetryConfig {
        otlp_endpoint: Some(collector.parse().unwrap()),
        service_name: Some("mcpgate-under-test".to_owned()),
        ..Default::default()
    };
    let telemetry = mcpgate::telemetry::init(false, &config);
    let backend = Backend::start(|_| async { axum::Json(json!({"name": "rex"})).into_response() }).await;
    let app = Setup::new().server("traced", DOCUMENT, &backend.url, "").start().await;
    let client = McpClient::new(app.http.clone(), app.mcp_url("traced"));

    // The client's context in `params._meta`, as the 2026-07-28 revision reserves it.
    let (trace_id, client_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let params = json!({"name": "getPet", "arguments": {"id": "argument-value-42"},
                        "_meta": {"traceparent": format!("00-{trace_id}-{client_span}-01")}});
    let answer = client.rpc("tools/call", params).await;
    assert_ne!(answer["result"]["isError"], true, "{answer}");

    let spans = trace(&telemetry, &receiver, trace_id, 3).await;
    let named = |name: &str| {
        spans.iter().find(|it| it.name == name).unwrap_or_else(|| panic!("no span {name}: {spans:#?}"))
    };
    let server = named("tools/call getPet");
    assert_eq!(hex(&server.parent_span_id), client_span, "the client's span is the parent");
    assert_eq!(server.kind, 2, "SERVER");
    assert_eq!(attribute(server, "mcp.method.name").as_deref(), Some("tools/call"));
    assert_eq!(attribute(server, "gen_ai.tool.name").as_deref(), Some("getPet"));
    assert_eq!(attribute(server, "error.type"), None);
    let credentials = named("credentials");
    assert_eq!(credentials.parent_span_id, server.span_id);
    let request = named("GET");
    assert_eq!(request.parent_span_id, server.span_id);
    assert_eq!(request.kind, 3, "CLIENT");
    assert_eq!(attribute(request, "http.response.status_code").as_deref(), Some("200"));
    assert_eq!(attribute(request, "url.template").as_deref(), Some("/pets/{id}"));
    for span in &spans {
        for it in &span.attributes {
            let text = format!("{:?}", it.value);
            assert!(!text.contains("argument-value-42"), "an argument in {}: {text}", it.key);
        }
    }
    // The backend continues the trace under the request's span.
    let seen = backend.last();
    let traceparent = seen.headers["traceparent"].to_str().unwrap().to_owned();
    assert_eq!(traceparent, format!("00-{trace_id}-{}-01", hex(&request.span_id)));

    // No `_meta`: the HTTP header is the parent.
    let (trace_id, client_span) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "getPet", "arguments": {"id": "1"}}});
    let response = client
        .send(Method::POST, None)
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let spans = trace(&telemetry, &receiver, trace_id, 3).await;
    let server = spans.iter().find(|it| it.name == "tools/call getPet").expect("the server span");
    assert_eq!(hex(&server.parent_span_id), client_span);
    assert!(backend.last().headers["traceparent"].to_str().unwrap().contains(trace_id));

    // An unknown tool: a span named for the method alone, marked failed.
    let unknown = client
        .rpc(
            "tools/call",
            json!({"name": "nope-unknown", "arguments": {},
        "_meta": {"traceparent": "00-11111111111111111111111111111111-2222222222222222-01"}}),
        )
        .await;
    assert_eq!(unknown["error"]["code"], -32602);
    let spans = trace(&telemetry, &receiver, "11111111111111111111111111111111", 1).await;
    assert_eq!(spans[0].name, "tools/call");
    assert_eq!(attribute(&spans[0], "error.type").as_deref(), Some("-32602"));
    assert!(!format!("{spans:?}").contains("nope-unknown"));
    telemetry.shutdown().await;
}
