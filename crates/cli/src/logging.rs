//! Log setup: `tracing` to stderr, filtered by `RUST_LOG` (default `info`),
//! coloured only when stderr is a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber.
pub(crate) fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,wasmtime=warn,cranelift=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for people, never into files or log collectors.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(true)
        .init();
}
