//! Subcommands.

mod serve;

/// What `berth` can do.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Serve a wasi:http component over HTTP/1.1 and HTTP/2 (h2c).
    Serve(serve::ServeCommand),
}

impl Command {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        match self {
            Command::Serve(cmd) => cmd.execute(),
        }
    }
}
