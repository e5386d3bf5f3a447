//! Log setup: `tracing` to stderr, filtered by `RUST_LOG` (default `info`
//! for the server, `warn` for `berth run`, whose stderr is the command's),
//! as text (coloured only when stderr is a terminal) or as JSON, one object
//! per line, for log pipelines.

use std::io::IsTerminal;

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

/// Installs the global subscriber; `level` applies unless `RUST_LOG` is set.
pub(crate) fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},wasmtime=warn,cranelift=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true);
    match format {
        // Colour only for people, never into files or log collectors.
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
