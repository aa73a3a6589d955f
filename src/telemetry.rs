//! Logs and traces. Logs: structured `tracing` events to standard error, as text (without colour
//! codes unless standard error is a terminal; `text`) or JSON lines (`json`), written in batches by a thread of
//! their own (`lines`), so that no call waits on standard error; the level comes from `RUST_LOG`
//! (default `info`, with rmcp's own events from `warn`). Traces (`traces`): spans of target
//! [`SPANS`] exported over OTLP/HTTP when `[telemetry]` names a collector, never in the log.
//! Tokens, secrets and arguments are never logged nor put in a span.

mod export;
mod json;
mod lines;
mod text;
pub mod traces;

use std::io::IsTerminal;

use tracing_subscriber::filter::{FilterExt, Targets, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::TelemetryConfig;

pub use traces::SPANS;

/// The filter when `RUST_LOG` is unset. rmcp logs every session it creates and every service it
/// starts at `info`, a stateless request included, with the client's whole `initialize`
/// parameters: hundreds of characters per request that say nothing mcpgate's own events do not.
const DEFAULT_FILTER: &str = "info,rmcp=warn";

/// What [`init`] started. [`Telemetry::shutdown`] writes the log lines not yet written and
/// sends the spans not yet exported.
pub struct Telemetry {
    lines: lines::Lines,
    traces: Option<traces::Exporter>,
}

impl Telemetry {
    /// Sends the spans not yet exported and waits for the collector's answer.
    pub async fn flush(&self) {
        if let Some(traces) = &self.traces {
            // The exporter's thread waits for an export that runs on this runtime: wait aside.
            let traces = traces.clone();
            let _ = tokio::task::spawn_blocking(move || traces.flush()).await;
        }
    }

    /// Sends the spans not yet exported, then stops the exporter; writes the log's last lines.
    pub async fn shutdown(mut self) {
        if let Some(traces) = self.traces.take() {
            let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
        }
        self.lines.close();
    }
}

impl Drop for Telemetry {
    /// Without [`Telemetry::shutdown`]: the exporter stops on a thread of its own, as waiting
    /// here could hold the runtime thread its last export needs.
    fn drop(&mut self) {
        if let Some(traces) = self.traces.take() {
            std::thread::spawn(move || traces.shutdown());
        }
        self.lines.close();
    }
}

/// Installs the process's subscriber: logs (JSON lines if `json`) and, when `config` names a
/// collector, the trace exporter. Must run within the tokio runtime. A second call (tests start
/// several apps) keeps the first subscriber.
pub fn init(json: bool, config: &TelemetryConfig) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Spans exist for the trace exporter; the log shows its own events without them.
    let logged = filter_fn(|meta| meta.target() != SPANS).and(filter);
    let lines = lines::Lines::to_stderr();
    let logs = if json {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(json::JsonLines::new())
            .with_writer(lines.clone())
            .boxed()
    } else if std::io::stderr().is_terminal() {
        tracing_subscriber::fmt::layer().with_ansi(true).with_writer(lines.clone()).boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .event_format(text::Text::new())
            .with_writer(lines.clone())
            .boxed()
    };
    let exporter = match traces::Exporter::start(config) {
        Ok(exporter) => exporter,
        Err(err) => {
            eprintln!("warning: traces are not exported: {err}");
            None
        }
    };
    let registry = tracing_subscriber::registry().with(logs.with_filter(logged));
    // No exporter, no span layer: an absent (`None`) layer would enable every span, and each call
    // would then make, enter and close its spans for nobody.
    let installed = match &exporter {
        Some(exporter) => registry
            .with(exporter.layer().with_filter(Targets::new().with_target(SPANS, tracing::Level::TRACE)))
            .try_init(),
        None => registry.try_init(),
    };
    if let Some(exporter) = &exporter
        && installed.is_ok()
    {
        tracing::info!(endpoint = %exporter.endpoint(), "exporting traces over OTLP/HTTP");
    }
    Telemetry { lines, traces: exporter.filter(|_| installed.is_ok()) }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::fmt::MakeWriter;

    use super::DEFAULT_FILTER;

    /// The lines `emit` logs through a subscriber with `filter`.
    fn logged(filter: &str, emit: impl FnOnce()) -> String {
        let written = Written::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(filter))
            .with_writer(written.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        written.text()
    }

    /// Events of every kind of field, and one in a span: what the formatters' tests write.
    pub(super) fn sample_events() {
        let server = "petstore".to_owned();
        tracing::info!(
            target: "mcpgate::audit::call",
            server = %server,
            tool = "getPetById",
            issuer = None::<&str>,
            subject = Some("127.0.0.1"),
            decision = "allowed",
            backend_status = Some(200u16),
            duration_ms = 3u64,
            "call"
        );
        tracing::warn!(
            tool = "a \"quoted\"\nname\\ é",
            count = -2i64,
            ok = true,
            ratio = 0.25,
            "odd {} values",
            2
        );
        tracing::debug!(detail = ?Some("x\ty"), nan = f64::NAN, "debug values");
        tracing::info!(field = 1u64);
        let span = tracing::info_span!("session", id = 7, client = "inspector");
        span.in_scope(|| tracing::error!(tool = "in a span", "spanned"));
    }

    /// What a subscriber's layer wrote, for a test to read.
    #[derive(Clone, Default)]
    pub(super) struct Written(Arc<Mutex<Vec<u8>>>);

    impl Written {
        pub(super) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl std::io::Write for Written {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Written {
        type Writer = Written;

        fn make_writer(&'a self) -> Written {
            self.clone()
        }
    }

    #[test]
    fn by_default_rmcp_logs_only_warnings_and_mcpgate_from_info() {
        let text = logged(DEFAULT_FILTER, || {
            tracing::info!(target: "rmcp::service", "Service initialized as server");
            tracing::info!(target: "rmcp::transport::streamable_http_server::session::local", "create new session");
            tracing::warn!(target: "rmcp::service", "rmcp warns");
            tracing::info!(target: "mcpgate::upstream", "a call");
            tracing::debug!(target: "mcpgate::upstream", "a detail");
        });
        assert!(!text.contains("initialized") && !text.contains("create new session"), "{text}");
        assert!(text.contains("rmcp warns"), "{text}");
        assert!(text.contains("a call") && !text.contains("a detail"), "{text}");
    }
}
