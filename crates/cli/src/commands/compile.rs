//! `berth compile COMPONENT`: pre-fill the compilation cache.

use std::path::PathBuf;

use anyhow::{Context, bail};
use berth::RuntimeConfig;
use berth_runtime::cache::{self, CacheOutcome};
use berth_runtime::{component, engine};

use super::args::CacheArgs;

/// Compile a component into the cache.
#[derive(Debug, clap::Args)]
pub(crate) struct CompileCommand {
    /// The component (.wasm) to compile.
    component: PathBuf,

    /// Pre-initialise it first: run its `wizer-initialize` export and cache
    /// the snapshot, as `berth serve --pre-init` would.
    #[arg(long)]
    pre_init: bool,

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
        let config = RuntimeConfig {
            cache_dir: Some(dir.clone()),
            pre_init: self.pre_init,
            ..RuntimeConfig::default()
        };
        let what = self.component.display().to_string();
        let source = berth_runtime::Source {
            bytes: &bytes,
            what: &what,
        };
        let concurrency = component::concurrency_for(&[source]);
        let engine = engine::build_engine(&engine::EngineConfig::of(&config), concurrency)?;
        let linker = component::build_linker(&engine, concurrency)?;
        // Pre-initialisation runs guest code under the CPU limit.
        let _ticker = engine::EpochTicker::start(engine.clone(), config.epoch_tick)
            .context("cannot start the epoch ticker")?;
        let (_, outcome) = component::compile(&engine, &linker, &config, &source)?;
        let variant = self
            .pre_init
            .then_some(berth_runtime::preinit::CACHE_VARIANT);
        let path = cache::entry_path(&dir, &cache::key(&engine, &bytes, variant));
        match outcome {
            CacheOutcome::Hit => eprintln!("already cached: {}", path.display()),
            CacheOutcome::Stored | CacheOutcome::Replaced => {
                eprintln!("cached: {}", path.display())
            }
            CacheOutcome::Unwritable => bail!("cannot write the cache at {}", dir.display()),
            CacheOutcome::Untrusted => match cache::check_trust(&dir) {
                Err(reason) => bail!("refusing the cache at {}: {reason}", dir.display()),
                Ok(()) => bail!("refusing the cache at {}", dir.display()),
            },
            CacheOutcome::Disabled => bail!("the cache is disabled"),
            _ => bail!("the cache at {} was not used", dir.display()),
        }
        Ok(())
    }
}
