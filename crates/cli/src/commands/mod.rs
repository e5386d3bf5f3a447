//! Subcommands.

mod args;
mod check;
mod compile;
mod run;
mod serve;

/// What `berth` can do.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Serve a wasi:http component, or the apps of a config file, over
    /// HTTP/1.1 and HTTP/2.
    Serve(Box<serve::ServeCommand>),
    /// Check a config file (keys, files, routes; every component compiled
    /// and linked) and print its routing table.
    Check(check::CheckCommand),
    /// Compile a component ahead of time into the cache, so `serve` starts
    /// without compiling.
    Compile(compile::CompileCommand),
    /// Run a wasi:cli command component (0.2.x or 0.3.0) to its end, with
    /// berth's wasi:http host for its outgoing requests; exits with its
    /// exit code.
    Run(Box<run::RunCommand>),
}

impl Command {
    /// The log level when `RUST_LOG` is not set: `run` shares its stderr
    /// with the command, so only warnings and errors.
    pub(crate) fn default_log_level(&self) -> &'static str {
        match self {
            Command::Run(_) => "warn",
            Command::Check(_) => "warn",
            Command::Serve(_) | Command::Compile(_) => "info",
        }
    }

    /// The trace export settings: `None` unless this is `serve` with an
    /// OTLP endpoint (flag or `OTEL_*` environment).
    pub(crate) fn tracing(&self) -> anyhow::Result<Option<berth::trace::TraceConfig>> {
        let Command::Serve(args) = self else {
            return Ok(None);
        };
        let config = berth::trace::TraceConfig::from_env(args.otlp_endpoint.as_deref(), |name| {
            std::env::var(name).ok()
        })?;
        Ok(match (config, args.trace_sample_ratio) {
            (Some(config), Some(ratio)) => Some(config.with_sample_ratio(ratio)),
            (config, _) => config,
        })
    }

    /// Whether this command is a server (its log must never block it).
    pub(crate) fn serves(&self) -> bool {
        matches!(self, Command::Serve(_))
    }

    /// Runs the subcommand; `run` exits with its command's exit code.
    pub(crate) fn execute(self) -> anyhow::Result<std::process::ExitCode> {
        let done = std::process::ExitCode::SUCCESS;
        match self {
            Command::Serve(cmd) => cmd.execute().map(|()| done),
            Command::Compile(cmd) => cmd.execute().map(|()| done),
            Command::Check(cmd) => cmd.execute().map(|()| done),
            Command::Run(cmd) => cmd.execute(),
        }
    }
}
