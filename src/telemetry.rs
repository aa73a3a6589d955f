//! Logging: structured `tracing` events to standard error, as text or JSON lines. The level
//! comes from `RUST_LOG` (default `info`). Tokens and secrets are never logged.

use tracing_subscriber::EnvFilter;

pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second initialization (tests start several apps) keeps the first subscriber.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
