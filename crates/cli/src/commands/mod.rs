//! Subcommands.

mod compile;
mod serve;

/// What `berth` can do.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Serve a wasi:http component over HTTP/1.1 and HTTP/2 (h2c).
    Serve(Box<serve::ServeCommand>),
    /// Compile a component ahead of time into the cache, so `serve` starts
    /// without compiling.
    Compile(compile::CompileCommand),
}

impl Command {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        match self {
            Command::Serve(cmd) => cmd.execute(),
            Command::Compile(cmd) => cmd.execute(),
        }
    }
}
