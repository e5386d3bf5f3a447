//! `berth`: serve `wasi:http` components from the command line.
//!
//! Exit codes: 0 on success (including a clean shutdown after a signal),
//! 1 when the command fails (bad component, address in use, bad flags),
//! 2 for usage errors reported by the argument parser. `berth run` exits
//! with its command's code (134 when the command traps).

use std::process::ExitCode;

use clap::Parser;

mod commands;
mod logging;

/// Serve WebAssembly HTTP components (wasi:http) fast and safely.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, propagate_version = true)]
struct Cli {
    /// How log lines are written: text, or one JSON object per line.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "BERTH_LOG_FORMAT"
    )]
    log_format: logging::LogFormat,

    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let traces = match cli.command.tracing() {
        Ok(traces) => traces,
        Err(err) => {
            eprintln!("error: {}", describe(&err));
            return ExitCode::FAILURE;
        }
    };
    logging::init(
        cli.command.default_log_level(),
        cli.log_format,
        cli.command.serves(),
        traces,
    );
    berth::metrics::count_panics();
    let result = cli.command.execute();
    // A stderr nobody reads must not keep the process from exiting.
    logging::flush_within(std::time::Duration::from_secs(5));
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", describe(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping causes whose text the
/// message before them already includes (library errors often name their
/// source in their own message too).
fn describe(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner detail")]
    struct Inner;

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let err = anyhow::Error::new(Outer(Inner));
        assert_eq!(describe(&err), "outer: inner detail");
        let err = anyhow::Error::new(Inner).context("reading the file");
        assert_eq!(describe(&err), "reading the file: inner detail");
    }
}
