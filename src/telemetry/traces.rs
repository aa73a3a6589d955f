//! Traces: the spans of a tool call, exported over OTLP/HTTP when configured.
//!
//! A `tools/call` is a server span `tools/call {tool}` ([`tool_call`]) whose parent is the
//! client's W3C trace context (`params._meta.traceparent`, which the 2026-07-28 revision
//! reserves, else the HTTP `traceparent` header); under it the credential step
//! ([`credentials`]) and each backend request ([`backend_request`], a client span whose context
//! goes to the backend in `traceparent`, [`inject`]). Attributes name the server, the tool, the
//! HTTP method, the backend's host and the status; never a token, a secret, an argument or a URL
//! with its query. With no collector configured the spans are disabled at their call sites and
//! cost next to nothing.

use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use url::Url;

use super::export::ExportClient;
use crate::config::TelemetryConfig;

/// The target of every span meant for the exporter, and only for it (the log leaves it out).
pub const SPANS: &str = "mcpgate::traces";

/// The trace exporter and the provider that batches spans for it. Clones share them.
#[derive(Clone)]
pub struct Exporter {
    provider: SdkTracerProvider,
    endpoint: Url,
}

impl Exporter {
    /// The exporter `config` asks for; `None` when it names no collector.
    pub fn start(config: &TelemetryConfig) -> Result<Option<Exporter>, String> {
        use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
        let Some(endpoint) = config.traces_url() else { return Ok(None) };
        let client = ExportClient::new()?;
        let headers = config
            .otlp_headers
            .iter()
            .map(|(name, value)| (name.clone(), value.expose().unwrap_or_default().to_owned()))
            .collect();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(endpoint.as_str())
            .with_headers(headers)
            .with_timeout(Duration::from_secs(10))
            .build()
            .map_err(|err| err.to_string())?;
        // Every setting spelled out, so that no `OTEL_BSP_…` variable changes them unseen.
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(8192)
            .with_max_export_batch_size(512)
            .with_scheduled_delay(Duration::from_secs(2))
            .build();
        let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch).build();
        let service = config.service_name.clone().unwrap_or_else(|| "mcpgate".to_owned());
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(service)
            .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio))))
            .with_resource(resource)
            .build();
        Ok(Some(Exporter { provider, endpoint }))
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    pub fn layer<S>(&self) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("mcpgate"))
    }

    pub fn flush(&self) {
        if let Err(err) = self.provider.force_flush() {
            tracing::warn!(%err, "spans not exported");
        }
    }

    pub fn shutdown(self) {
        if let Err(err) = self.provider.shutdown() {
            tracing::debug!(%err, "trace exporter shutdown");
        }
    }
}

/// The server span of a `tools/call` of `tool` (`None`: a tool the catalog does not have, whose
/// name, chosen by the client, is kept out of span names and attributes).
pub fn tool_call(server: &str, tool: Option<&str>) -> Span {
    let span = tracing::info_span!(
        target: SPANS,
        "tools/call",
        otel.name = Empty,
        otel.kind = "server",
        otel.status_code = Empty,
        mcp.method.name = "tools/call",
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = Empty,
        error.type = Empty,
        network.transport = "tcp",
        mcpgate.server = server,
    );
    if let Some(tool) = tool
        && !span.is_disabled()
    {
        span.record("otel.name", format!("tools/call {tool}"));
        span.record("gen_ai.tool.name", tool);
    }
    span
}

/// Makes the client's trace context, if it sent a valid one, the parent of `span`.
pub fn set_remote_parent(span: &Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    let Some(traceparent) = traceparent else { return };
    if span.is_disabled() {
        return;
    }
    let carrier = Carrier { traceparent, tracestate };
    let context = TraceContextPropagator::new().extract(&carrier);
    // A malformed `traceparent` gives an empty context: the span starts a trace of its own.
    let _ = span.set_parent(context);
}

/// Records how the call ended; `error_type` is the MCP conventions' `error.type`, if it failed.
pub fn end(span: &Span, error_type: Option<&'static str>) {
    if let Some(error_type) = error_type {
        span.record("error.type", error_type);
        span.record("otel.status_code", "error");
    }
}

/// The span of the credential step: a cached token, or a token endpoint's answer.
pub fn credentials() -> Span {
    tracing::info_span!(target: SPANS, "credentials", otel.kind = "internal")
}

/// The client span of one request to the backend, named for its method as the HTTP conventions
/// say; `host` and `port` are the backend's, never the whole URL.
pub fn backend_request(method: &str, host: &str, port: Option<u16>, route: &str) -> Span {
    let span = tracing::info_span!(
        target: SPANS,
        "backend request",
        otel.name = Empty,
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = method,
        server.address = host,
        server.port = port,
        url.template = route,
        http.response.status_code = Empty,
        error.type = Empty,
    );
    if !span.is_disabled() {
        span.record("otel.name", method);
    }
    span
}

/// Records the backend's answer (`Some(status)`) or its absence on `span`.
pub fn backend_answered(span: &Span, status: Option<u16>) {
    match status {
        Some(status) => {
            span.record("http.response.status_code", status);
            // The HTTP conventions: on a client span, a 4xx answer is an error too, and
            // `error.type` is the status as a string.
            if status >= 400 {
                span.record("error.type", status.to_string());
                span.record("otel.status_code", "error");
            }
        }
        None => {
            span.record("error.type", "transport");
            span.record("otel.status_code", "error");
        }
    }
}

/// Adds the W3C `traceparent` (and `tracestate`) of `span` to a backend request's headers;
/// nothing when traces are off.
pub fn inject(span: &Span, headers: &mut http::HeaderMap) {
    if span.is_disabled() {
        return;
    }
    let context = span.context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderCarrier(headers));
}

struct Carrier<'a> {
    traceparent: &'a str,
    tracestate: Option<&'a str>,
}

impl Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => Some(self.traceparent),
            "tracestate" => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

struct HeaderCarrier<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::from_str(&value))
        {
            self.0.insert(name, value);
        }
    }
}
