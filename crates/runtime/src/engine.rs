//! The wasmtime `Engine`s, their linkers and epoch tickers, and
//! [`Engines`]: the set of them that many apps share (one pooling
//! allocator and one ticker per engine flavour, however many apps).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::RuntimeConfig;
use crate::error::LoadError;
use crate::store::StoreState;

/// What an engine is built with: the instance pool's size and shape, and
/// the epoch tick. Apps that share [`Engines`] share these; their own
/// limits (CPU, wall clock, memory up to `max_memory`) stay per app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Use the pooling instance allocator (on-demand when `false`, or when
    /// the address space cannot be reserved).
    pub pooling: bool,
    /// Concurrent instances, all apps together (pool size).
    pub max_instances: u32,
    /// The largest memory one pooled instance may have, in bytes: at least
    /// the largest `memory_limit` of the apps sharing the pool.
    pub max_memory: usize,
    /// Table elements per table.
    pub table_elements: usize,
    /// See [`crate::config::DEFAULT_KEEP_RESIDENT`].
    pub keep_resident: usize,
    /// See [`crate::config::DEFAULT_STACK_KEEP_RESIDENT`].
    pub stack_keep_resident: usize,
    /// Epoch tick interval (the CPU limit's granularity).
    pub epoch_tick: Duration,
}

impl EngineConfig {
    /// The engine settings of one app's `config`.
    pub fn of(config: &RuntimeConfig) -> Self {
        Self {
            pooling: config.pooling,
            max_instances: config.max_instances,
            max_memory: config.memory_limit,
            table_elements: config.table_elements_limit,
            keep_resident: config.keep_resident,
            stack_keep_resident: config.stack_keep_resident,
            epoch_tick: config.epoch_tick,
        }
    }
}

/// One engine flavour (see [`Concurrency`]): the engine, the host linker
/// every component is checked against, and its epoch ticker (stops when
/// the last app using the flavour is gone).
pub(crate) struct Flavour {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<StoreState>,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for Flavour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flavour").finish_non_exhaustive()
    }
}

/// The engines apps share: built on first use, one per flavour, each with
/// one pooling allocator sized by [`EngineConfig`] and one epoch ticker.
/// Cheap to clone. A runtime built without one gets engines of its own.
#[derive(Debug, Clone)]
pub struct Engines {
    inner: Arc<EnginesInner>,
}

#[derive(Debug)]
struct EnginesInner {
    config: EngineConfig,
    flavours: Mutex<[Option<Arc<Flavour>>; 2]>,
}

impl Engines {
    /// Engines built with `config` when an app first needs them.
    pub fn new(config: EngineConfig) -> Self {
        Self {
            inner: Arc::new(EnginesInner {
                config,
                flavours: Mutex::new([None, None]),
            }),
        }
    }

    /// The settings these engines are built with.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The engine, linker and ticker for `concurrency`, built once.
    pub(crate) fn flavour(&self, concurrency: Concurrency) -> Result<Arc<Flavour>, LoadError> {
        let slot = match concurrency {
            Concurrency::Disabled => 0,
            Concurrency::Enabled => 1,
        };
        let mut flavours = self
            .inner
            .flavours
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(flavour) = &flavours[slot] {
            return Ok(flavour.clone());
        }
        let config = &self.inner.config;
        let engine = build_engine(config, concurrency)?;
        let linker = crate::component::build_linker(&engine, concurrency)?;
        let ticker =
            EpochTicker::start(engine.clone(), config.epoch_tick).map_err(LoadError::Ticker)?;
        let flavour = Arc::new(Flavour {
            engine,
            linker,
            _ticker: ticker,
        });
        flavours[slot] = Some(flavour.clone());
        Ok(flavour)
    }
}

/// Which engine features an app needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// Component Model async and wasmtime's concurrency support, for
    /// wasi:http@0.3 apps.
    Enabled,
    /// Without them, for wasi:http@0.2 apps: wasmtime's concurrency state
    /// costs every store and call (~15% of hello throughput, measured).
    Disabled,
}

/// Builds the engine: component model (with async when `concurrency` says
/// so), epoch interruption, and the pooling allocator sized from `config`
/// (on-demand allocation when pooling is off or its reservation fails).
pub fn build_engine(config: &EngineConfig, concurrency: Concurrency) -> Result<Engine, LoadError> {
    let mut wasm = Config::new();
    let enabled = concurrency == Concurrency::Enabled;
    wasm.wasm_component_model(true)
        .wasm_component_model_async(enabled)
        .concurrency_support(enabled)
        .epoch_interruption(true);
    if config.pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(config.max_instances)
            .total_core_instances(config.max_instances.saturating_mul(4))
            .total_memories(config.max_instances.saturating_mul(2))
            .total_tables(config.max_instances.saturating_mul(2))
            .total_stacks(config.max_instances)
            .max_memories_per_component(8)
            .max_tables_per_component(8)
            .max_memory_size(config.max_memory)
            .table_elements(config.table_elements)
            .max_core_instance_size(4 << 20)
            .max_component_instance_size(4 << 20);
        // Reset used slots in place instead of returning their pages to the
        // kernel: each `madvise` and each copy-on-write fault costs a TLB
        // shootdown across all cores, which dominated the per-request cost
        // (see BENCHMARKS.md). PAGEMAP_SCAN (Linux >= 6.7) finds exactly the
        // dirty pages to reset; older kernels fall back automatically.
        pool.linear_memory_keep_resident(config.keep_resident)
            .table_keep_resident(config.keep_resident.min(1 << 20))
            .async_stack_keep_resident(config.stack_keep_resident)
            .pagemap_scan(wasmtime::Enabled::Auto);
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        match Engine::new(&wasm) {
            Ok(engine) => return Ok(engine),
            Err(err) => {
                tracing::warn!(
                    "pooling allocator unavailable ({err}); using on-demand instance allocation"
                );
                wasm.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            }
        }
    }
    Engine::new(&wasm).map_err(LoadError::Engine)
}

pub use crate::ticker::{EpochTicker, ticker_fault};
