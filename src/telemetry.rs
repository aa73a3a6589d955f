//! Logging: structured `tracing` events to standard error, as text or JSON lines. The level
//! comes from `RUST_LOG` (default `info`, with rmcp's own events from `warn`). Tokens and secrets
//! are never logged.

use tracing_subscriber::EnvFilter;

/// The filter when `RUST_LOG` is unset. rmcp logs every session it creates and every service it
/// starts at `info`, a stateless request included, with the client's whole `initialize`
/// parameters: hundreds of characters per request that say nothing mcpgate's own events do not.
const DEFAULT_FILTER: &str = "info,rmcp=warn";

pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second initialization (tests start several apps) keeps the first subscriber.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::EnvFilter;

    use super::DEFAULT_FILTER;

    /// The lines `emit` logs through a subscriber with `filter`.
    fn logged(filter: &str, emit: impl FnOnce()) -> String {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(filter))
            .with_writer(move || Writer(writer.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = lines.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    struct Writer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Writer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
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
