//! What a `tools/call` leaves besides its result: its duration in the metrics, by tool and
//! outcome (a tool the catalog does not have counts for its server, never under its name), and
//! its server span when traces are exported, whose parent is the client's trace context:
//! `params._meta.traceparent`, else the HTTP `traceparent` header.

use std::future::Future;
use std::time::Instant;

use futures_util::FutureExt;
use rmcp::model::ErrorData;
use tracing::Instrument;

use super::gateway::Called;
use crate::catalog::Tool;
use crate::metrics::Outcome;
use crate::snapshot::Snapshot;
use crate::telemetry::traces;

/// Runs `call`, timed and traced as a call of `tool` (the called tool, if the catalog has it)
/// whose client's trace context is `trace` (`traceparent`, `tracestate`).
///
/// Not an `async fn`: that would hold `call` twice, as its argument and inside the span's
/// wrapper, and a call's future is large; a future is copied whole each time it moves.
pub(super) fn observed<'a, Fut>(
    snapshot: &'a Snapshot,
    tool: Option<&'a Tool>,
    trace: (Option<&str>, Option<&str>),
    call: Fut,
) -> impl Future<Output = Result<Called, ErrorData>> + 'a
where
    Fut: Future<Output = Result<Called, ErrorData>> + 'a,
{
    let started = Instant::now();
    let span = traces::tool_call(&snapshot.slug, tool.map(|it| it.spec.name.as_str()));
    if !span.is_disabled() {
        traces::set_remote_parent(&span, trace.0, trace.1);
    }
    // A client that goes away drops this future mid-call: the guard still records the call,
    // as cancelled, so that the metrics and the trace agree with the call audit.
    let record = Record { snapshot, tool, span: span.clone(), started, outcome: Outcome::Cancelled };
    // `map` polls the call where it lies; an `async` block awaiting it would hold it twice.
    call.instrument(span).map(move |result| {
        // Moved whole into the closure, not only the field written here.
        let mut record = record;
        record.outcome = outcome(&result);
        result
    })
}

/// Records a call when dropped, however it ended.
struct Record<'a> {
    snapshot: &'a Snapshot,
    tool: Option<&'a Tool>,
    span: tracing::Span,
    started: Instant,
    outcome: Outcome,
}

impl Drop for Record<'_> {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        match self.tool {
            Some(tool) => tool.metrics.called(self.outcome, elapsed),
            None => self.snapshot.catalog.metrics.unknown_tool(elapsed),
        }
        traces::end(&self.span, self.outcome.error_type());
    }
}

fn outcome(result: &Result<Called, ErrorData>) -> Outcome {
    match result {
        Ok(called) if called.is_error() => Outcome::ToolError,
        Ok(_) => Outcome::Ok,
        Err(err) => match err.code.0 {
            -32602 => Outcome::InvalidParams,
            -32600 => Outcome::InvalidRequest,
            _ => Outcome::InternalError,
        },
    }
}
