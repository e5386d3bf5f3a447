//! `berth compile COMPONENT`: pre-fill the compilation cache.

use std::path::PathBuf;

use anyhow::{Context, bail};
use berth::RuntimeConfig;
use berth_runtime::cache::{self, CacheOutcome};

use super::serve::CacheArgs;

/// Compile a component into the cache.
#[derive(Debug, clap::Args)]
pub(crate) struct CompileCommand {
    /// The component (.wasm) to compile.
    component: PathBuf,

    #[command(flatten)]
    cache: CacheArgs,
}

impl CompileCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        let Some(dir) = self.cache.dir() else {
            bail!("nothing to do: the cache is disabled (--no-cache, or no HOME to put it in)");
        };
        let bytes = std::fs::read(&self.component)
            .with_context(|| format!("cannot read component {}", self.component.display()))?;
        // The same engine settings as `berth serve` with default limits, so
        // its lookups hit this entry.
        let source = berth_runtime::Source {
            bytes: &bytes,
            what: "",
        };
        let concurrency = berth_runtime::component::concurrency_for(&[source]);
        let engine = berth_runtime::engine::build_engine(&RuntimeConfig::default(), concurrency)?;
        let (_, outcome) = cache::compile(&engine, &bytes, Some(&dir))
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("cannot compile {}", self.component.display()))?;
        let path = cache::entry_path(&dir, &cache::key(&engine, &bytes));
        match outcome {
            CacheOutcome::Hit => eprintln!("already cached: {}", path.display()),
            CacheOutcome::Stored | CacheOutcome::Replaced => {
                eprintln!("cached: {}", path.display())
            }
            CacheOutcome::Unwritable => bail!("cannot write the cache at {}", dir.display()),
            CacheOutcome::Disabled => bail!("the cache is disabled"),
        }
        Ok(())
    }
}
