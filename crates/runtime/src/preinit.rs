//! Pre-initialisation: run a component's start-up once, ahead of time, and
//! snapshot the initialised state into a new component, so that a fresh
//! instance per request starts initialised instead of repeating it.
//!
//! A component opts in by exporting `wizer-initialize: func()` (the name
//! wasmtime's `wizer` uses). berth instruments the component with
//! wasmtime-wizer (which adds exports that read each core instance's
//! memories and globals), instantiates it on berth's own linker and limits,
//! calls the export, reads the state back and has wizer rewrite the
//! component with that state as its initial image. The snapshot is what
//! gets compiled and cached (see [`crate::cache`]).
//!
//! Rules, so a snapshot never holds something that cannot be restored:
//! * the start-up sees no environment variables (a snapshot must not depend
//!   on flags given to one `berth serve`) and no outbound network;
//! * it must leave no host resources open (a stream, a pollable): the
//!   snapshot would keep the handle number but not the resource. Printing
//!   to stdout or stderr opens such a stream, so start-up code must not log;
//! * it gets [`RuntimeConfig::pre_init_time_limit`] of CPU time and three
//!   times that in wall-clock time, and the app's memory limit.
//!
//! Values the start-up reads from clocks or random numbers are frozen into
//! the snapshot (every instance sees the same ones).

use std::time::Duration;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, ComponentType, Instance, Lift, Linker, WasmList};
use wasmtime::{Engine, Store, format_err};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

use crate::config::RuntimeConfig;
use crate::store::StoreState;

/// The export that pre-initialisation runs.
pub const INIT_EXPORT: &str = "wizer-initialize";

/// Names pre-initialisation (and the rules above, by version) in the AOT
/// cache key, so snapshots are cached apart from plain compiles.
pub const CACHE_VARIANT: &str = "pre-init-v1";

/// Why a component could not be pre-initialised.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PreInitError {
    /// The component has no `wizer-initialize: func()` export.
    #[error(
        "it does not export `{INIT_EXPORT}: func()`, the start-up function pre-initialisation runs"
    )]
    NoInitExport,
    /// wizer could not instrument the component (an unsupported shape).
    #[error("it cannot be instrumented for a snapshot: {0}")]
    Instrument(#[source] wasmtime::Error),
    /// The instrumented component could not be compiled or instantiated.
    #[error("its instrumented copy could not be instantiated: {0}")]
    Instantiate(#[source] wasmtime::Error),
    /// The start-up trapped or ran out of CPU time.
    #[error("`{INIT_EXPORT}` failed: {}", .0.root_cause())]
    Init(#[source] wasmtime::Error),
    /// The start-up took longer than its wall-clock limit.
    #[error("`{INIT_EXPORT}` did not finish within {0:?}")]
    Timeout(Duration),
    /// The start-up left host resources open.
    #[error(
        "`{INIT_EXPORT}` left host resources open (a stream or pollable, e.g. from printing); \
         a snapshot cannot keep them"
    )]
    ResourcesLeft,
    /// Reading the state back or rewriting the component failed.
    #[error("the snapshot failed: {0}")]
    Snapshot(#[source] wasmtime::Error),
    /// The thread that runs the start-up could not start, or failed.
    #[error("the pre-initialisation thread failed: {0}")]
    Thread(String),
}

/// Runs `bytes`' start-up and returns the pre-initialised component.
///
/// Runs on a thread of its own with its own single-threaded async runtime,
/// so it may be called from inside or outside an async runtime. The
/// engine's epoch must be ticking (the CPU limit relies on it).
pub fn pre_initialize(
    engine: &Engine,
    linker: &Linker<StoreState>,
    config: &RuntimeConfig,
    bytes: &[u8],
) -> Result<Vec<u8>, PreInitError> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("berth-pre-init".into())
            .spawn_scoped(scope, || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .map_err(|e| PreInitError::Thread(e.to_string()))?;
                let wall = config.pre_init_time_limit.saturating_mul(3);
                runtime.block_on(async {
                    tokio::time::timeout(wall, run(engine, linker, config, bytes))
                        .await
                        .unwrap_or(Err(PreInitError::Timeout(wall)))
                })
            })
            .map_err(|e| PreInitError::Thread(e.to_string()))?;
        worker
            .join()
            .unwrap_or_else(|_| Err(PreInitError::Thread("it panicked".into())))
    })
}

async fn run(
    engine: &Engine,
    linker: &Linker<StoreState>,
    config: &RuntimeConfig,
    bytes: &[u8],
) -> Result<Vec<u8>, PreInitError> {
    let mut wizer = Wizer::new();
    // wizer 48 drops the core export but not the component's lift of it
    // (an invalid component) when asked to remove the init function; keep
    // it (the host never calls it again).
    wizer.keep_init_func(true);
    let (context, instrumented) = wizer
        .instrument_component(bytes)
        .map_err(PreInitError::Instrument)?;
    let component = Component::new(engine, &instrumented).map_err(PreInitError::Instantiate)?;
    let init = match component.get_export(None, INIT_EXPORT) {
        Some((ComponentItem::ComponentFunc(ty), index))
            if ty.params().len() == 0 && ty.results().len() == 0 =>
        {
            index
        }
        _ => return Err(PreInitError::NoInitExport),
    };

    let limits = RuntimeConfig {
        env: Vec::new(),
        cpu_time_limit: config.pre_init_time_limit,
        ..config.clone()
    };
    let mut store =
        crate::handler::new_store(engine, &limits, berth_http::ctx::HttpCtx::default(), 0);
    let instance = linker
        .instantiate_async(&mut store, &component)
        .await
        .map_err(PreInitError::Instantiate)?;
    let func = instance
        .get_typed_func::<(), ()>(&mut store, init)
        .map_err(PreInitError::Init)?;
    func.call_async(&mut store, ())
        .await
        .map_err(PreInitError::Init)?;
    if store.data().has_live_resources() {
        return Err(PreInitError::ResourcesLeft);
    }

    let mut state = InstanceState {
        store: &mut store,
        instance,
        failure: None,
    };
    let snapshot = wizer.snapshot_component(&context, &mut state).await;
    if let Some(failure) = state.failure {
        return Err(PreInitError::Snapshot(failure));
    }
    snapshot.map_err(PreInitError::Snapshot)
}

/// Reads an initialised instance's state through the accessor exports
/// wizer added. The trait has no error path: the first failure is kept
/// here (later reads are skipped) and the snapshot is then discarded.
struct InstanceState<'a> {
    store: &'a mut Store<StoreState>,
    instance: Instance,
    failure: Option<wasmtime::Error>,
}

impl InstanceState<'_> {
    async fn read<R>(&mut self, instance: &str, func: &str) -> Option<R>
    where
        R: ComponentType + Lift + Send + Sync + 'static,
    {
        if self.failure.is_some() {
            return None;
        }
        match self.try_read(instance, func).await {
            Ok(value) => Some(value),
            Err(err) => {
                self.failure = Some(err);
                None
            }
        }
    }

    async fn try_read<R>(&mut self, instance: &str, func: &str) -> wasmtime::Result<R>
    where
        R: ComponentType + Lift + Send + Sync + 'static,
    {
        let (_, parent) = self
            .instance
            .get_export(&mut *self.store, None, instance)
            .ok_or_else(|| format_err!("no export `{instance}`"))?;
        let (_, index) = self
            .instance
            .get_export(&mut *self.store, Some(&parent), func)
            .ok_or_else(|| format_err!("no export `{instance}#{func}`"))?;
        let func = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, index)?;
        Ok(func.call_async(&mut *self.store, ()).await?.0)
    }
}

impl ComponentInstanceState for InstanceState<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        match self.read::<WasmList<u8>>(instance, func).await {
            Some(list) => contents(list.as_le_slice(&*self.store)),
            None => contents(&[]),
        }
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.read(instance, func).await.unwrap_or_default()
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.read(instance, func).await.unwrap_or_default()
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.read::<f32>(instance, func)
            .await
            .map_or(0, f32::to_bits)
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.read::<f64>(instance, func)
            .await
            .map_or(0, f64::to_bits)
    }
}
