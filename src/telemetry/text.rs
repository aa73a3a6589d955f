//! The log's text lines when standard error is no terminal (a file, a pipe: where production
//! logs go), in the layout of `tracing-subscriber`'s default format without colours:
//!
//! `2026-12-06T16:41:33.123456Z  INFO mcpgate::audit::call: call server=petstore tool="getPetById"`
//!
//! Written with plain appends. The default formatter styles every part (a no-op without colours,
//! but not a free one) and goes through `fmt::write` for each field and the timestamp: 11,000
//! instructions for a call's audit line, a tenth of all the call's work. Events from the `log`
//! crate keep the default formatter, which knows their layout.

use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The formatter of text lines without colours.
pub struct Text {
    /// For the `log` crate's events.
    default: Format<Full>,
}

impl Text {
    pub fn new() -> Text {
        Text { default: format::format().with_ansi(false) }
    }
}

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        if metadata.fields().field("log.target").is_some() {
            return self.default.format_event(ctx, writer, event);
        }
        timestamp(&mut writer, SystemTime::now())?;
        writer.write_str(match *metadata.level() {
            Level::ERROR => " ERROR ",
            Level::WARN => "  WARN ",
            Level::INFO => "  INFO ",
            Level::DEBUG => " DEBUG ",
            Level::TRACE => " TRACE ",
        })?;
        if let Some(scope) = ctx.event_scope() {
            let mut any = false;
            for span in scope.from_root() {
                writer.write_str(span.name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{fields}}}")?;
                }
                writer.write_char(':')?;
                any = true;
            }
            if any {
                writer.write_char(' ')?;
            }
        }
        writer.write_str(metadata.target())?;
        writer.write_str(": ")?;
        let mut fields = Fields { writer: &mut writer, first: true, result: Ok(()) };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// `2026-12-06T16:41:33.123456Z`: UTC, to the microsecond.
pub(super) fn timestamp(writer: &mut impl Write, now: SystemTime) -> fmt::Result {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let (year, month, day) = civil_date((seconds / 86_400) as i64);
    let time = seconds % 86_400;
    let mut text = [0u8; 27];
    let mut put = |at: usize, value: u64, width: usize| {
        let mut value = value;
        for place in (at..at + width).rev() {
            text[place] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, year.clamp(0, 9999) as u64, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, time / 3600, 2);
    put(14, time / 60 % 60, 2);
    put(17, time % 60, 2);
    put(20, u64::from(since.subsec_micros()), 6);
    for (at, separator) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (26, b'Z')]
    {
        text[at] = separator;
    }
    // Only ASCII digits and separators were written.
    writer.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
}

/// Whether `value` in quotes is already its quoted form, in `{:?}` and in JSON alike: printable
/// ASCII without a quote or a backslash.
pub(super) fn quotes_as_it_is(value: &str) -> bool {
    value.bytes().all(|it| (b' '..=b'~').contains(&it) && it != b'"' && it != b'\\')
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_date(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u64;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 } as u64;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// An event's fields as the default format writes them: the message as it is, then
/// `name=value`, strings quoted and escaped (so that no value can start a line of its own).
struct Fields<'w, 'a> {
    writer: &'w mut Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn name(&mut self, field: &Field) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        if field.name() != "message" {
            self.writer.write_str(field.name())?;
            self.writer.write_char('=')?;
        }
        Ok(())
    }

    fn write(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.name(field).and_then(|()| value(self.writer));
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let message = field.name() == "message";
        self.write(field, |writer| {
            if message {
                writer.write_str(value)
            } else if quotes_as_it_is(value) {
                // What `{:?}` writes for it, without the formatting machinery.
                writer.write_char('"')?;
                writer.write_str(value)?;
                writer.write_char('"')
            } else {
                write!(writer, "{value:?}")
            }
        });
    }

    // Numbers by `itoa`, as `Display` writes them: a call's line has a few, each 300 instructions
    // through `fmt::write`.
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(field, |writer| writer.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write(field, |writer| writer.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.write(field, |writer| writer.write_str(if value { "true" } else { "false" }));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, |writer| write!(writer, "{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::telemetry::tests::{Written, sample_events};

    /// The lines without their timestamps.
    fn untimed(written: &Written) -> Vec<String> {
        written.text().lines().map(|it| it.split_once(' ').unwrap().1.to_owned()).collect()
    }

    /// What both formatters write for the same events, timestamps aside.
    fn both() -> (Vec<String>, Vec<String>) {
        let (ours, default) = (Written::default(), Written::default());
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .event_format(Text::new())
                    .with_writer(ours.clone()),
            )
            .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(default.clone()));
        tracing::subscriber::with_default(subscriber, sample_events);
        (untimed(&ours), untimed(&default))
    }

    #[test]
    fn lines_are_those_of_the_default_format() {
        let (ours, default) = both();
        assert_eq!(ours.len(), 5, "{ours:#?}");
        assert_eq!(ours, default);
        assert!(ours[1].contains(r#"tool="a \"quoted\"\nname\\ é""#), "{}", ours[1]);
        assert!(ours[4].starts_with(r#"ERROR session{id=7 client="inspector"}: "#), "{}", ours[4]);
    }

    #[test]
    fn timestamps_are_utc_to_the_microsecond() {
        let at = |seconds: u64, micros: u64| {
            let mut text = String::new();
            timestamp(&mut text, UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_micros(micros))
                .unwrap();
            text
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(at(1_796_575_293, 123_456), "2026-12-06T16:41:33.123456Z");
        assert_eq!(at(4_107_542_399, 999_999), "2100-02-28T23:59:59.999999Z");
    }
}
