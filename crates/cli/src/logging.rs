//! Log setup: `tracing` to stderr, filtered by `RUST_LOG` (default `info`
//! for the server, `warn` for `berth run`, whose stderr is the command's),
//! coloured only when stderr is a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `level` applies unless `RUST_LOG` is set.
pub(crate) fn init(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},wasmtime=warn,cranelift=warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for people, never into files or log collectors.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(true)
        .init();
}
