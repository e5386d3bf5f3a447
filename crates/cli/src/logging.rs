//! Log setup: `tracing` to stderr, filtered by `RUST_LOG` (default `info`
//! for the server, `warn` for `berth run`, whose stderr is the command's),
//! as text (coloured only when stderr is a terminal) or as JSON, one object
//! per line, for log pipelines.
//!
//! The server writes through [`berth::log_writer::LogWriter`] so that a
//! slow or blocked stderr never stalls serving (lines are dropped and
//! counted instead); [`banner`] lines go through the same queue, in order,
//! and are never dropped; [`flush`] before exit writes what is queued.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use berth::log_format::{self, LogLayer};
use berth::log_writer::{DEFAULT_BUFFER_BYTES, LogWriter};
use berth::trace::{TraceConfig, Tracing};
use tracing_subscriber::prelude::*;
use tracing_subscriber::{Layer, Registry};

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, and the
    /// event's fields (`message`, `request_id`, `app`, …) at the top level.
    Json,
}

/// The non-blocking writer, when [`init`] installed one.
static WRITER: OnceLock<LogWriter> = OnceLock::new();

/// The trace exporter, when [`init`] started one.
static TRACING: OnceLock<Tracing> = OnceLock::new();

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// tracing-subscriber's text lines, coloured (for a terminal).
fn coloured() -> tracing_subscriber::fmt::Layer<Registry> {
    tracing_subscriber::fmt::layer()
        .with_target(true)
        .with_ansi(true)
}

/// Installs the global subscriber; `level` applies unless `RUST_LOG` is
/// set. With `non_blocking`, lines go through a [`LogWriter`] (servers);
/// without, straight to stderr (commands whose stderr is a terminal's).
/// With `traces`, berth's spans are also exported over OTLP (whatever the
/// log level).
pub(crate) fn init(
    level: &str,
    format: LogFormat,
    non_blocking: bool,
    traces: Option<TraceConfig>,
) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},wasmtime=warn,cranelift=warn")));
    // Colour only for people, never into files or log collectors: a
    // terminal gets tracing-subscriber's coloured lines; everything else
    // berth's own formatter (the same layout, far cheaper per line).
    let ansi = format == LogFormat::Text && std::io::stderr().is_terminal();
    let plain = match format {
        LogFormat::Text => log_format::LogFormat::Text,
        LogFormat::Json => log_format::LogFormat::Json,
    };
    let writer = non_blocking.then(|| {
        WRITER
            .get_or_init(|| LogWriter::spawn(std::io::stderr(), DEFAULT_BUFFER_BYTES))
            .clone()
    });
    let log: BoxedLayer = match (writer, ansi) {
        (Some(writer), false) => LogLayer::new(plain, writer).with_filter(filter).boxed(),
        (None, false) => LogLayer::new(plain, log_format::Stderr)
            .with_filter(filter)
            .boxed(),
        (Some(writer), true) => coloured()
            .with_writer(move || writer.clone())
            .with_filter(filter)
            .boxed(),
        (None, true) => coloured()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    let mut layers = vec![log];
    if let Some(config) = traces {
        let tracing = TRACING.get_or_init(|| Tracing::start(config));
        layers.push(tracing.layer::<Registry>().boxed());
    }
    tracing_subscriber::registry().with(layers).init();
    if let Some(tracing) = TRACING.get() {
        tracing::info!(endpoint = %tracing.endpoint(), "exporting traces over OTLP/HTTP (JSON)");
    }
}

/// Writes `line` to stderr in order with the log, never dropped (the
/// banners people and scripts wait for).
pub(crate) fn banner(line: &str) {
    match WRITER.get() {
        Some(writer) => writer.write_line_blocking(line),
        None => eprintln!("{line}"),
    }
}

/// Sends every finished trace span, then waits until every queued log
/// line has been written.
fn flush() {
    if let Some(tracing) = TRACING.get() {
        tracing.flush();
    }
    if let Some(writer) = WRITER.get() {
        let _ = writer.clone().flush();
    }
}

/// Like [`flush`], giving up after `limit` (before an immediate exit,
/// which a blocked stderr must not hold up).
pub(crate) fn flush_within(limit: std::time::Duration) {
    let (done, flushed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        flush();
        let _ = done.send(());
    });
    let _ = flushed.recv_timeout(limit);
}
