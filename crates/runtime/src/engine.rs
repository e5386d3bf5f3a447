//! The wasmtime `Engine` and the process-wide epoch ticker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::RuntimeConfig;
use crate::error::LoadError;

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
pub fn build_engine(config: &RuntimeConfig, concurrency: Concurrency) -> Result<Engine, LoadError> {
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
            .max_memory_size(config.memory_limit)
            .table_elements(config.table_elements_limit)
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

/// Advances the engine's epoch every tick from a dedicated thread, so the
/// CPU limit works even when every async worker is busy. Stops when dropped.
#[derive(Debug)]
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    /// Starts ticking `engine` every `tick`.
    pub fn start(engine: Engine, tick: Duration) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("berth-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    #[allow(clippy::disallowed_methods, reason = "dedicated ticker thread")]
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })?;
        Ok(Self { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
