//! Log lines formatted cheaply, for a server that logs every request.
//!
//! [`LogLayer`] is a `tracing-subscriber` layer that writes each event as
//! one line, plain text or JSON, in the layout of `tracing-subscriber`'s
//! `fmt` layer (text: `timestamp LEVEL span{fields}: target: message
//! fields`; JSON: one object, the event's fields at the top level, then
//! `target`, `span` and `spans`). It formats straight into a per-thread
//! buffer with no allocation per line, writes the timestamp from a
//! per-second cache, and hands the line to a [`LineSink`] (berth's
//! [`LogWriter`](crate::log_writer::LogWriter) in one call). The access
//! line it writes for every request cost about a sixth of a reused
//! instance's throughput through the `fmt` layer (BENCHMARKS.md, "Hot
//! path").
//!
//! Control characters in messages and fields are escaped in both formats,
//! so no value (a path, a guest's output) can forge a line.
//!
//! ```
//! use berth::log_format::{LogFormat, LogLayer};
//! use tracing_subscriber::prelude::*;
//!
//! let layer = LogLayer::new(LogFormat::Json, berth::log_format::Stderr);
//! let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
//! tracing::info!(target: "berth::access", status = 200u16, "GET / 200 5B");
//! ```

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Where formatted lines go: each call is one whole line, newline included.
pub trait LineSink: Send + Sync + 'static {
    /// Writes one line (dropping it is allowed; splitting it is not).
    fn write_line(&self, line: &[u8]);
}

impl LineSink for crate::log_writer::LogWriter {
    fn write_line(&self, line: &[u8]) {
        let _ = self.clone().write_all(line);
    }
}

/// Standard error, written line by line (commands whose stderr is the
/// user's terminal or a pipe they read).
#[derive(Debug, Clone, Copy)]
pub struct Stderr;

impl LineSink for Stderr {
    fn write_line(&self, line: &[u8]) {
        let _ = std::io::stderr().lock().write_all(line);
    }
}

/// The layout of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-12-01T12:00:00.000001Z  INFO request{request_id=… app=…}:
    /// berth::guest: message key=value …`
    Text,
    /// `{"timestamp":…,"level":…,"message":…,<fields>,"target":…,
    /// "span":{…,"name":…},"spans":[…]}`
    Json,
}

/// The layer (see the module documentation).
pub struct LogLayer<W> {
    format: LogFormat,
    sink: W,
}

impl<W: LineSink> LogLayer<W> {
    /// Lines in `format`, written to `sink`.
    pub fn new(format: LogFormat, sink: W) -> Self {
        Self { format, sink }
    }
}

/// One recorded field value.
#[derive(Debug, Clone)]
enum Value {
    /// Text (`record_str`, and `Display`/`Debug` values as formatted).
    Str(String),
    /// Text that was a `&str`: quoted in the text format, like `fmt`'s.
    Quoted(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
}

/// A span's fields, kept in its extensions while it lives.
#[derive(Debug, Default)]
struct SpanFields(Vec<(&'static str, Value)>);

impl SpanFields {
    fn set(&mut self, name: &'static str, value: Value) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

impl Visit for SpanFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), Value::Quoted(value.to_owned()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name(), Value::U64(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), Value::I64(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field.name(), Value::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), Value::Bool(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field.name(), Value::Str(format!("{value:?}")));
    }
}

impl<S, W> Layer<S> for LogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: LineSink,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        LINE.with(|line| {
            // A line logged while formatting one (a `Debug` impl that
            // logs) is dropped rather than panicking on the borrow.
            let Ok(mut line) = line.try_borrow_mut() else {
                return;
            };
            let line = &mut *line;
            line.clear();
            match self.format {
                LogFormat::Text => text_line(line, event, &ctx),
                LogFormat::Json => json_line(line, event, &ctx),
            }
            self.sink.write_line(line.as_bytes());
            if line.capacity() > MAX_KEPT {
                *line = String::with_capacity(INITIAL);
            }
        });
    }
}

/// The per-thread line buffer's starting and largest kept capacity.
const INITIAL: usize = 512;
const MAX_KEPT: usize = 64 * 1024;

thread_local! {
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(INITIAL));
    /// The second last formatted, and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Appends the current time as RFC 3339 UTC with microseconds.
fn timestamp(out: &mut String) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    SECOND.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.0 != secs {
            cache.1.clear();
            civil_time(secs, &mut cache.1);
            cache.0 = secs;
        }
        out.push_str(&cache.1);
    });
    let _ = write!(out, ".{:06}Z", now.subsec_micros());
}

/// `YYYY-MM-DDTHH:MM:SS` of `secs` since the Unix epoch (proleptic
/// Gregorian calendar, days to civil date after Howard Hinnant).
fn civil_time(secs: u64, out: &mut String) {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => "INFO",
        Level::WARN => "WARN",
        Level::ERROR => "ERROR",
    }
}

/// Appends `text` with control characters escaped (`\n`, `\u{1b}`), so a
/// value cannot end the line or drive a terminal.
fn push_escaped_text(out: &mut String, text: &str) {
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
}

/// Appends `text` as a JSON string, quotes included.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a finite float as JSON (`null` otherwise, which JSON lacks).
fn push_json_f64(out: &mut String, value: f64) {
    if value.is_finite() {
        let _ = write!(out, "{value:?}");
    } else {
        out.push_str("null");
    }
}

/// Writes `value`'s `Debug` form into `out` through a reused scratch
/// string (no allocation once warm), escaped by `push`.
fn with_debug(out: &mut String, value: &dyn std::fmt::Debug, push: fn(&mut String, &str)) {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.clear();
            let _ = write!(scratch, "{value:?}");
            push(out, &scratch);
            if scratch.capacity() > MAX_KEPT {
                *scratch = String::new();
            }
        }
        Err(_) => push(out, &format!("{value:?}")),
    });
}

thread_local! {
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

impl LogFormat {
    /// Appends a `&str` field's value (`message` unquoted in text).
    fn push_str(self, out: &mut String, value: &str, message: bool) {
        match self {
            Self::Text if message => push_escaped_text(out, value),
            Self::Text => with_debug(out, &value, push_escaped_text),
            Self::Json => push_json_string(out, value),
        }
    }

    /// Appends a float (`Debug` form, as `fmt` writes it; JSON `null`
    /// when not finite).
    fn push_f64(self, out: &mut String, value: f64) {
        match self {
            Self::Text => {
                let _ = write!(out, "{value:?}");
            }
            Self::Json => push_json_f64(out, value),
        }
    }

    /// Appends a value's `Debug` form (a JSON string in JSON).
    fn push_debug(self, out: &mut String, value: &dyn std::fmt::Debug) {
        match self {
            Self::Text => with_debug(out, value, push_escaped_text),
            Self::Json => with_debug(out, value, push_json_string),
        }
    }

    /// Appends a recorded span field's value.
    fn push_value(self, out: &mut String, value: &Value) {
        match value {
            Value::Str(s) => match self {
                Self::Text => push_escaped_text(out, s),
                Self::Json => push_json_string(out, s),
            },
            Value::Quoted(s) => self.push_str(out, s, false),
            Value::U64(v) => {
                let _ = write!(out, "{v}");
            }
            Value::I64(v) => {
                let _ = write!(out, "{v}");
            }
            Value::F64(v) => self.push_f64(out, *v),
            Value::Bool(v) => {
                let _ = write!(out, "{v}");
            }
        }
    }
}

/// An event's fields in either format: text `message` first, then
/// `name=value` pairs; JSON `,"name":value` for each.
struct EventFields<'a> {
    out: &'a mut String,
    format: LogFormat,
    /// Fields written so far (text: a space before each but the first).
    written: usize,
}

impl EventFields<'_> {
    fn name(&mut self, field: &Field) {
        match self.format {
            LogFormat::Text => {
                if self.written > 0 {
                    self.out.push(' ');
                }
                if field.name() != "message" {
                    self.out.push_str(field.name());
                    self.out.push('=');
                }
            }
            LogFormat::Json => {
                self.out.push(',');
                push_json_string(self.out, field.name());
                self.out.push(':');
            }
        }
        self.written += 1;
    }
}

impl Visit for EventFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.name(field);
        self.format
            .push_str(self.out, value, field.name() == "message");
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.name(field);
        let _ = write!(self.out, "{value}");
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.name(field);
        let _ = write!(self.out, "{value}");
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.name(field);
        self.format.push_f64(self.out, value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.name(field);
        let _ = write!(self.out, "{value}");
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.name(field);
        self.format.push_debug(self.out, value);
    }
}

fn text_line<S>(out: &mut String, event: &Event<'_>, ctx: &Context<'_, S>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let meta = event.metadata();
    timestamp(out);
    let _ = write!(out, " {:>5} ", level_name(meta.level()));
    if let Some(scope) = ctx.event_scope(event) {
        let mut any = false;
        for span in scope.from_root() {
            any = true;
            out.push_str(span.name());
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<SpanFields>()
                && !fields.0.is_empty()
            {
                out.push('{');
                for (i, (name, value)) in fields.0.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(name);
                    out.push('=');
                    LogFormat::Text.push_value(out, value);
                }
                out.push('}');
            }
            out.push(':');
        }
        if any {
            out.push(' ');
        }
    }
    out.push_str(meta.target());
    out.push_str(": ");
    event.record(&mut EventFields {
        out,
        format: LogFormat::Text,
        written: 0,
    });
    out.push('\n');
}

fn json_span<S>(out: &mut String, span: &tracing_subscriber::registry::SpanRef<'_, S>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    out.push('{');
    let extensions = span.extensions();
    if let Some(fields) = extensions.get::<SpanFields>() {
        for (name, value) in &fields.0 {
            push_json_string(out, name);
            out.push(':');
            LogFormat::Json.push_value(out, value);
            out.push(',');
        }
    }
    out.push_str("\"name\":");
    push_json_string(out, span.name());
    out.push('}');
}

fn json_line<S>(out: &mut String, event: &Event<'_>, ctx: &Context<'_, S>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let meta = event.metadata();
    out.push_str("{\"timestamp\":\"");
    timestamp(out);
    out.push_str("\",\"level\":\"");
    out.push_str(level_name(meta.level()));
    out.push('"');
    event.record(&mut EventFields {
        out,
        format: LogFormat::Json,
        written: 0,
    });
    out.push_str(",\"target\":");
    push_json_string(out, meta.target());
    if let Some(scope) = ctx.event_scope(event) {
        let spans: Vec<_> = scope.from_root().collect();
        if let Some(leaf) = spans.last() {
            out.push_str(",\"span\":");
            json_span(out, leaf);
            out.push_str(",\"spans\":[");
            for (i, span) in spans.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_span(out, span);
            }
            out.push(']');
        }
    }
    out.push_str("}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::prelude::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<String>>>);

    impl LineSink for Lines {
        fn write_line(&self, line: &[u8]) {
            let line = String::from_utf8(line.to_vec()).unwrap();
            self.0.lock().unwrap().push(line);
        }
    }

    fn logged(format: LogFormat, f: impl FnOnce()) -> Vec<String> {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry().with(LogLayer::new(format, lines.clone()));
        tracing::subscriber::with_default(subscriber, f);
        let lines = lines.0.lock().unwrap().clone();
        for line in &lines {
            assert!(line.ends_with('\n'), "{line:?}");
            assert_eq!(line.matches('\n').count(), 1, "one line: {line:?}");
        }
        lines
    }

    fn sample() {
        let span = tracing::info_span!("request", request_id = "r-1", app = "shop");
        let _in = span.enter();
        tracing::info!(
            target: "berth::guest",
            request_id = 7u64,
            stream = "stdout",
            ok = true,
            took = 1.5f64,
            path = %"/a b",
            "hello \u{1b}[31mworld\nforged"
        );
    }

    #[test]
    fn text_lines_have_fmts_layout_and_escape_control_characters() {
        let lines = logged(LogFormat::Text, sample);
        let line = &lines[0];
        // 2026-12-01T12:00:00.000001Z  INFO request{…}: target: …
        assert_eq!(&line[4..5], "-", "{line}");
        assert_eq!(&line[26..28], "Z ", "{line}");
        let rest = &line[28..];
        assert_eq!(
            rest,
            " INFO request{request_id=\"r-1\" app=\"shop\"}: berth::guest: \
             hello \\u{1b}[31mworld\\nforged request_id=7 stream=\"stdout\" ok=true took=1.5 \
             path=/a b\n"
        );
    }

    #[test]
    fn json_lines_parse_with_fields_at_the_top_and_the_span_beside() {
        let lines = logged(LogFormat::Json, sample);
        let object: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(object["level"], "INFO");
        assert_eq!(object["target"], "berth::guest");
        assert_eq!(object["message"], "hello \u{1b}[31mworld\nforged");
        assert_eq!(object["request_id"], 7);
        assert_eq!(object["stream"], "stdout");
        assert_eq!(object["ok"], true);
        assert_eq!(object["took"], 1.5);
        assert_eq!(object["path"], "/a b");
        assert_eq!(object["span"]["request_id"], "r-1");
        assert_eq!(object["span"]["app"], "shop");
        assert_eq!(object["span"]["name"], "request");
        assert_eq!(object["spans"][0]["name"], "request");
        let stamp = object["timestamp"].as_str().unwrap();
        assert_eq!(stamp.len(), 27, "{stamp}");
        assert!(stamp.ends_with('Z'));
    }

    #[test]
    fn values_that_are_not_json_stay_parseable() {
        let lines = logged(LogFormat::Json, || {
            tracing::warn!(
                quote = "a\"b\\c",
                nan = f64::NAN,
                debug = ?"x\u{0}y",
                "msg"
            );
        });
        let object: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(object["quote"], "a\"b\\c");
        assert!(object["nan"].is_null());
        assert_eq!(object["debug"], "\"x\\0y\"");
        assert_eq!(object["level"], "WARN");
    }

    #[test]
    fn span_fields_recorded_later_show_up() {
        let lines = logged(LogFormat::Text, || {
            let span = tracing::info_span!("call", status = tracing::field::Empty);
            span.record("status", 503u64);
            let _in = span.enter();
            tracing::error!("failed");
        });
        assert!(
            lines[0].contains(" ERROR call{status=503}: "),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn civil_time_matches_known_dates() {
        let at = |secs| {
            let mut s = String::new();
            civil_time(secs, &mut s);
            s
        };
        assert_eq!(at(0), "1970-01-01T00:00:00");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(at(1_796_128_496), "2026-12-01T12:34:56");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59");
    }
}
