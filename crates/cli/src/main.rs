//! `berth`: serve `wasi:http` components from the command line.
//!
//! Exit codes: 0 on success (including a clean shutdown after a signal),
//! 1 when the command fails (bad component, address in use, bad flags),
//! 2 for usage errors reported by the argument parser.

use std::process::ExitCode;

use clap::Parser;

mod commands;
mod demo;
mod logging;

/// Serve WebAssembly HTTP components (wasi:http) fast and safely.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    match cli.command.execute() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
