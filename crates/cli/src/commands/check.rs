//! `berth check CONFIG`: loads a config file exactly as `serve --config`
//! would — keys, files, routes, and every component compiled and linked —
//! without listening, and prints the routing table.

use std::path::PathBuf;

use anyhow::Context;
use berth::platform::Platform;

use super::args::CacheArgs;

/// Check a config file: keys, files and routes, every component compiled
/// and linked; prints the routing table. Exits 1 naming every problem.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckCommand {
    /// The config file (TOML).
    config: PathBuf,

    #[command(flatten)]
    cache: CacheArgs,
}

impl CheckCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        let mut config = berth::platform::file::load(&self.config)?;
        if self.cache.given() {
            config.cache_dir = self.cache.dir();
        }
        let authority = config
            .server
            .addr
            .to_string()
            .parse()
            .context("the listen address is not a valid authority")?;
        let platform = Platform::build(config, authority)
            .with_context(|| format!("{}", self.config.display()))?;
        let apps = platform.apps();
        let table = platform.routing_table();
        println!(
            "{}: ok, {} app(s), {} route(s)",
            self.config.display(),
            apps.len(),
            table.len()
        );
        let width = table
            .iter()
            .map(|(route, _)| route.to_string().len())
            .max()
            .unwrap_or(0)
            .max("ROUTE".len());
        println!("{:<width$}  APP", "ROUTE");
        for (route, app) in &table {
            println!("{:<width$}  {app}", route.to_string());
        }
        for app in &apps {
            println!("app {}: {}", app.name(), app.worlds());
        }
        Ok(())
    }
}
