//! The log's JSON lines (`serve --log-json`), as `tracing-subscriber`'s JSON format writes them:
//!
//! `{"timestamp":"2026-12-06T16:41:33.123456Z","level":"INFO","fields":{"message":"call","server":"petstore"},"target":"mcpgate::audit::call"}`
//!
//! Written with plain appends, as `text` writes text lines: the JSON formatter took 17,800
//! instructions for a call's audit line (it serializes through serde, with `fmt::write` for the
//! timestamp and each value). Events in a span, and events from the `log` crate, keep that
//! formatter, which writes their spans and knows their layout.

use std::fmt::{self, Write};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::text::{quotes_as_it_is, timestamp};

/// The formatter of JSON lines.
pub struct JsonLines {
    /// For events in a span and the `log` crate's.
    default: Format<Json>,
}

impl JsonLines {
    pub fn new() -> JsonLines {
        JsonLines { default: format::format().json() }
    }
}

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    JsonFields: for<'a> FormatFields<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        if metadata.fields().field("log.target").is_some() || ctx.event_scope().is_some() {
            return self.default.format_event(ctx, writer, event);
        }
        writer.write_str("{\"timestamp\":\"")?;
        timestamp(&mut writer, SystemTime::now())?;
        writer.write_str(match *metadata.level() {
            Level::ERROR => "\",\"level\":\"ERROR\",\"fields\":{",
            Level::WARN => "\",\"level\":\"WARN\",\"fields\":{",
            Level::INFO => "\",\"level\":\"INFO\",\"fields\":{",
            Level::DEBUG => "\",\"level\":\"DEBUG\",\"fields\":{",
            Level::TRACE => "\",\"level\":\"TRACE\",\"fields\":{",
        })?;
        let mut fields = Fields { writer: &mut writer, first: true, result: Ok(()) };
        event.record(&mut fields);
        fields.result?;
        writer.write_str("},\"target\":")?;
        string(&mut writer, metadata.target())?;
        writer.write_str("}\n")
    }
}

/// `value` as a JSON string.
fn string(writer: &mut impl Write, value: &str) -> fmt::Result {
    if quotes_as_it_is(value) {
        writer.write_char('"')?;
        writer.write_str(value)?;
        return writer.write_char('"');
    }
    // Escaped as serde_json escapes, which the default formatter uses.
    let escaped = serde_json::to_string(value).map_err(|_| fmt::Error)?;
    writer.write_str(&escaped)
}

/// An event's fields as members of the `fields` object: strings, and `Debug` values as strings;
/// numbers and booleans as themselves.
struct Fields<'w, 'a> {
    writer: &'w mut Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn write(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let first = std::mem::take(&mut self.first);
        self.result = (|| {
            if !first {
                self.writer.write_char(',')?;
            }
            string(self.writer, field.name())?;
            self.writer.write_char(':')?;
            value(self.writer)
        })();
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, |writer| string(writer, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(field, |writer| writer.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write(field, |writer| writer.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.write(field, |writer| {
            let number = serde_json::to_string(&value).map_err(|_| fmt::Error)?;
            writer.write_str(&number)
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.write(field, |writer| writer.write_str(if value { "true" } else { "false" }));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, |writer| string(writer, &format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::telemetry::tests::{Written, sample_events};

    /// The lines without their timestamps' values.
    fn untimed(written: &Written) -> Vec<String> {
        let text = written.text();
        text.lines().map(|it| format!("{}{}", &it[..14], &it[41..])).collect()
    }

    #[test]
    fn lines_are_those_of_the_default_json_format() {
        let (ours, default) = (Written::default(), Written::default());
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(JsonFields::new())
                    .event_format(JsonLines::new())
                    .with_writer(ours.clone()),
            )
            .with(tracing_subscriber::fmt::layer().json().with_writer(default.clone()));
        tracing::subscriber::with_default(subscriber, sample_events);
        let (ours, default) = (untimed(&ours), untimed(&default));
        assert_eq!(ours.len(), 5, "{ours:#?}");
        assert_eq!(ours, default);
        for line in &ours {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}"));
            assert!(value["fields"].is_object(), "{line}");
        }
        assert!(ours[1].contains(r#""tool":"a \"quoted\"\nname\\ é""#), "{}", ours[1]);
        assert!(ours[4].contains(r#""span":{"client":"inspector","id":7,"name":"session"}"#), "{}", ours[4]);
    }
}
