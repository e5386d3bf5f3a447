//! Running `wasi:cli/run` of a command component (`berth run`), 0.2.x or
//! 0.3.0, with berth's own `wasi:http` host for its outgoing requests.
//!
//! A command gets what the operator gives it and nothing else: arguments,
//! environment variables, preopened directories, `wasi:config` values,
//! the process's stdin, stdout and stderr, and outgoing HTTP through the
//! same client and egress policy as `serve` (no `wasi:sockets` network).
//! The memory limit applies; CPU and wall-clock limits apply when set (a
//! command may legitimately run for long, so they are off by default).

use std::path::PathBuf;
use std::sync::Arc;

use berth_http::{HttpCtx, OutboundClient};
use wasmtime::Store;
use wasmtime::component::Linker;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx};

use crate::config::RuntimeConfig;
use crate::engine::Concurrency;
use crate::error::{CpuLimitExceeded, LoadError};
use crate::store::StoreState;

/// A host directory a command sees at a guest path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the guest sees it (`/data`, `.`).
    pub guest: String,
}

/// What a command runs with.
#[derive(Debug, Clone)]
pub struct CommandConfig {
    /// Limits, environment, `wasi:config` values and the compilation cache.
    /// Its CPU and wall-clock limits apply to the whole run.
    pub runtime: RuntimeConfig,
    /// The program name and its arguments (`argv[0]` first).
    pub args: Vec<String>,
    /// Directories the command may use.
    pub preopens: Vec<Preopen>,
}

/// Why a command could not run to its end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The component could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The component exports no `wasi:cli/run`.
    #[error(
        "{what} is not a command component: it exports no `wasi:cli/run@0.2.x` or \
         `wasi:cli/run@0.3.x` (serve wasi:http components with `berth serve`)"
    )]
    NotACommand {
        /// What was loaded.
        what: String,
    },
    /// A preopened directory could not be opened.
    #[error("cannot open directory {path} for the guest: {source}")]
    Preopen {
        /// The host path.
        path: PathBuf,
        /// Why.
        #[source]
        source: wasmtime::Error,
    },
    /// The command trapped (or broke a limit).
    #[error("{what} trapped: {source:?}")]
    Trap {
        /// What was run.
        what: String,
        /// The trap, with its backtrace.
        source: wasmtime::Error,
    },
}

/// Which `wasi:cli/run` a component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunVersion {
    P2,
    P3,
}

/// The `wasi:cli/run` to call: 0.3 when the component exports it (toolchains
/// building 0.3 commands today export a 0.2 `run` from `main` too), else
/// 0.2.
fn run_version(bytes: &[u8]) -> Option<RunVersion> {
    let exports = crate::component::top_level_exports(bytes)?;
    let has = |prefix: &str| exports.iter().any(|name| name.starts_with(prefix));
    if has("wasi:cli/run@0.3.") {
        Some(RunVersion::P3)
    } else if has("wasi:cli/run@0.2.") {
        Some(RunVersion::P2)
    } else {
        None
    }
}

/// Compiles and runs the command in `bytes` (`what` names it in messages)
/// to its end, returning its exit code: 0 when `run` returned `ok`, 1 for
/// `err`, the code it passed to `exit` otherwise.
pub async fn run(
    bytes: &[u8],
    what: &str,
    config: CommandConfig,
    outbound: Option<Arc<dyn OutboundClient>>,
) -> Result<i32, RunError> {
    let version = run_version(bytes).ok_or_else(|| RunError::NotACommand {
        what: what.to_owned(),
    })?;
    // Both versions link the p2 and p3 interfaces: 0.3 commands built with
    // today's toolchains import the 0.2 cli and io interfaces too.
    let runtime = &config.runtime;
    let engine_config = crate::engine::EngineConfig {
        pooling: false,
        ..crate::engine::EngineConfig::of(runtime)
    };
    let engine = crate::engine::build_engine(&engine_config, Concurrency::Enabled)?;
    let linker = crate::component::build_linker(&engine, Concurrency::Enabled)?;
    let _ticker = crate::engine::EpochTicker::start(engine.clone(), runtime.epoch_tick)
        .map_err(LoadError::Ticker)?;
    let source = crate::component::Source { bytes, what };
    let (component, _) = crate::component::compile(&engine, &linker, runtime, &source)?;

    let mut wasi = WasiCtx::builder();
    wasi.inherit_stdio().args(&config.args).envs(&runtime.env);
    for dir in &config.preopens {
        wasi.preopened_dir(&dir.host, &dir.guest, FsPerms::ReadWrite)
            .map_err(|source| RunError::Preopen {
                path: dir.host.clone(),
                source,
            })?;
    }
    let mut http = HttpCtx::default();
    http.fields_size_limit = runtime.fields_size_limit;
    http.outbound = outbound;
    let state = StoreState::with_wasi(runtime, http, wasi.build());
    let mut store = crate::handler::store_with_limits(&engine, state);

    let trap = |source: wasmtime::Error| {
        if let Some(exit) = source.downcast_ref::<I32Exit>() {
            return Ok(exit.0);
        }
        let source = if source.downcast_ref::<CpuLimitExceeded>().is_some() {
            wasmtime::format_err!("CPU time limit of {:?} exceeded", runtime.cpu_time_limit)
        } else {
            source
        };
        Err(RunError::Trap {
            what: what.to_owned(),
            source,
        })
    };
    let run = async {
        let result = match version {
            RunVersion::P2 => run_p2(&mut store, &component, &linker).await,
            RunVersion::P3 => run_p3(&mut store, &component, &linker).await,
        };
        match result {
            Ok(Ok(())) => Ok(0),
            Ok(Err(())) => Ok(1),
            Err(err) => trap(err),
        }
    };
    match tokio::time::timeout(runtime.wall_time_limit, run).await {
        Ok(code) => code,
        Err(_) => Err(RunError::Trap {
            what: what.to_owned(),
            source: wasmtime::format_err!(
                "wall-clock time limit of {:?} exceeded",
                runtime.wall_time_limit
            ),
        }),
    }
}

async fn run_p2(
    store: &mut Store<StoreState>,
    component: &wasmtime::component::Component,
    linker: &Linker<StoreState>,
) -> wasmtime::Result<Result<(), ()>> {
    let command =
        wasmtime_wasi::p2::bindings::Command::instantiate_async(&mut *store, component, linker)
            .await?;
    command.wasi_cli_run().call_run(&mut *store).await
}

async fn run_p3(
    store: &mut Store<StoreState>,
    component: &wasmtime::component::Component,
    linker: &Linker<StoreState>,
) -> wasmtime::Result<Result<(), ()>> {
    let command =
        wasmtime_wasi::p3::bindings::Command::instantiate_async(&mut *store, component, linker)
            .await?;
    store
        .run_concurrent(async |accessor| command.wasi_cli_run().call_run(accessor).await)
        .await?
}
