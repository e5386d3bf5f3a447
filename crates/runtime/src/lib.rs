//! # berth-runtime: running `wasi:http` components on wasmtime
//!
//! Compile once, pre-instantiate at load, then run requests. This crate owns
//! the engine and its epoch ticker ([`engine`]), component loading, world
//! detection and middleware chains ([`component`]), the per-store state
//! ([`store`]), limits ([`limits`]), guest stdio ([`stdio`]) and the two
//! ways of running a request:
//!
//! * wasi:http@0.2 (`handler`): a fresh instance per request (requests never
//!   share guest state), or serial reuse under the opt-in `reuse` policy;
//! * wasi:http@0.3 (`concurrent`): instances that take several requests at
//!   once with Component Model async, retired after a bounded number.
//!
//! It has no sockets: the `berth` crate serves it.
//!
//! Every request is bounded by a CPU-time limit (epoch interruption with an
//! async yield each tick, so a looping guest neither escapes its budget nor
//! holds a worker thread), a wall-clock limit (for guests blocked in the
//! host), a memory limit summed over all of an instance's memories, and a
//! cap on live resource handles.

pub mod cache;
pub mod command;
pub mod component;
mod concurrent;
pub mod config;
pub mod engine;
pub mod error;
mod handler;
pub mod limits;
pub mod observe;
mod outgoing;
mod pool;
pub mod preinit;
pub mod stdio;
pub mod store;
mod ticker;
pub mod wasi_config;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use berth_http::{GuestBody, HostBody, HttpCtx, OutboundClient};
use wasmtime::Engine;

pub use component::{LoadedComponent, Source, World};
pub use config::RuntimeConfig;
pub use engine::{EngineConfig, Engines};
pub use error::{HandleError, LoadError};

/// A loaded component ready to serve requests. Cheap to clone.
///
/// ```no_run
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use berth_runtime::{EngineConfig, Engines, Runtime, RuntimeConfig};
/// let config = RuntimeConfig::default();
/// // Two apps on one engine, epoch ticker and instance pool.
/// let engines = Engines::new(EngineConfig::of(&config));
/// let shop = Runtime::builder(config.clone())
///     .engines(engines.clone())
///     .build(&std::fs::read("shop.wasm")?, "shop.wasm")?;
/// let site = Runtime::builder(config).engines(engines).build(&std::fs::read("site.wasm")?, "site.wasm")?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Runtime {
    inner: Arc<Shared>,
}

/// What every request of a runtime shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) component: LoadedComponent,
    pub(crate) config: RuntimeConfig,
    pub(crate) http: HttpCtx,
    next_request_id: AtomicU64,
    pub(crate) live_instances: Arc<AtomicUsize>,
    /// Where [`observe::Event`]s go.
    pub(crate) observer: Arc<observe::ObserverSlot>,
    /// The app's guest output rate, shared by its instances.
    pub(crate) output_rate: Option<Arc<stdio::OutputRate>>,
    pub(crate) reuse: Option<pool::ReusePool>,
    pub(crate) concurrent: concurrent::ConcurrentPool,
    /// Keeps the engine's ticker running while this app lives.
    _flavour: Arc<engine::Flavour>,
}

/// Builds a [`Runtime`] with optional parts (an outbound client).
#[derive(Default)]
pub struct RuntimeBuilder {
    config: RuntimeConfig,
    outbound: Option<Arc<dyn OutboundClient>>,
    engines: Option<Engines>,
}

impl std::fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("config", &self.config)
            .field("outbound", &self.outbound.is_some())
            .field("engines", &self.engines)
            .finish()
    }
}

impl RuntimeBuilder {
    /// Lets guests send outgoing requests through `client`. Without one,
    /// every outgoing request is denied (`HTTP-request-denied`).
    pub fn outbound(mut self, client: Arc<dyn OutboundClient>) -> Self {
        self.outbound = Some(client);
        self
    }

    /// Runs the app on `engines`, shared with other apps (one instance
    /// pool and epoch ticker for all); without this it gets its own. The
    /// app's memory limit must fit the shared pool.
    pub fn engines(mut self, engines: Engines) -> Self {
        self.engines = Some(engines);
        self
    }

    /// Compiles and links `bytes`; `what` names it in errors (a path, or
    /// "the built-in demo").
    pub fn build(self, bytes: &[u8], what: &str) -> Result<Runtime, LoadError> {
        self.build_chain(&[Source { bytes, what }])
    }

    /// Compiles and links a middleware chain: `wasi:http/middleware@0.3.0`
    /// components in front of a `wasi:http/service@0.3.0` one, the
    /// request's first stop first. Each middleware's imported `handler` is
    /// linked to the next component's export. A single source is just an
    /// app of either version.
    pub fn build_chain(self, sources: &[Source<'_>]) -> Result<Runtime, LoadError> {
        let engines = self
            .engines
            .unwrap_or_else(|| Engines::new(EngineConfig::of(&self.config)));
        Runtime::load(self.config, self.outbound, &engines, sources)
    }
}

impl Runtime {
    /// A builder for a runtime with `config`.
    pub fn builder(config: RuntimeConfig) -> RuntimeBuilder {
        RuntimeBuilder {
            config,
            outbound: None,
            engines: None,
        }
    }

    /// Compiles and links `bytes` with no outbound client (all outgoing
    /// requests denied); `what` names it in errors.
    pub fn new(config: RuntimeConfig, bytes: &[u8], what: &str) -> Result<Self, LoadError> {
        Self::builder(config).build(bytes, what)
    }

    fn load(
        config: RuntimeConfig,
        outbound: Option<Arc<dyn OutboundClient>>,
        engines: &Engines,
        sources: &[Source<'_>],
    ) -> Result<Self, LoadError> {
        let pool = engines.config();
        if pool.pooling && config.memory_limit > pool.max_memory {
            return Err(LoadError::MemoryAbovePool {
                what: sources
                    .last()
                    .map_or_else(String::new, |s| s.what.to_owned()),
                wanted: config.memory_limit,
                pool: pool.max_memory,
            });
        }
        let concurrency = component::concurrency_for(sources);
        // The flavour ticks before loading: pre-initialisation runs guest code.
        let flavour = engines.flavour(concurrency)?;
        let engine = flavour.engine.clone();
        let component = component::load(&engine, &flavour.linker, sources, &config)?;
        let observer = Arc::<observe::ObserverSlot>::default();
        let mut http = HttpCtx::default();
        http.fields_size_limit = config.fields_size_limit;
        http.outbound = outbound.map(|inner| {
            Arc::new(outgoing::ReportingClient {
                inner,
                observer: observer.clone(),
            }) as Arc<dyn OutboundClient>
        });
        let output_rate = (config.log_rate > 0)
            .then(|| Arc::new(stdio::OutputRate::new(config.log_rate, observer.clone())));
        let reuse = config
            .reuse
            .map(|n| pool::ReusePool::new(n.get(), config.reuse_idle_timeout));
        Ok(Self {
            inner: Arc::new(Shared {
                engine,
                component,
                config,
                http,
                next_request_id: AtomicU64::new(1),
                live_instances: Arc::new(AtomicUsize::new(0)),
                output_rate,
                observer,
                reuse,
                concurrent: concurrent::ConcurrentPool::default(),
                _flavour: flavour,
            }),
        })
    }

    /// The detected world of the component that answers requests.
    pub fn world(&self) -> &World {
        self.inner.component.world()
    }

    /// The worlds of every component of the app, the request's first stop
    /// first (one entry unless it is a middleware chain).
    pub fn chain(&self) -> &[World] {
        self.inner.component.chain()
    }

    /// The configuration in effect.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Guest instances (stores) alive right now: running, streaming a body,
    /// or being torn down. Returns to 0 when the server is idle; tests use it
    /// to prove nothing leaks.
    pub fn live_instances(&self) -> usize {
        self.inner.live_instances.load(Ordering::Relaxed)
    }

    /// Idle instances kept for reuse (always 0 without a `reuse` policy),
    /// plus wasi:http@0.3 instances still taking requests.
    pub fn idle_instances(&self) -> usize {
        self.inner.reuse.as_ref().map_or(0, pool::ReusePool::idle) + self.inner.concurrent.workers()
    }

    /// Reports this runtime's [`observe::Event`]s to `observer` from now on
    /// (replacing any observer set before, in every clone).
    pub fn set_observer(&self, observer: Arc<dyn observe::Observer>) {
        self.inner.observer.set(observer);
    }

    /// A new request id, unique within this runtime.
    pub fn next_request_id(&self) -> u64 {
        self.inner.next_request_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs one request: on a fresh (or, with `reuse`, an idle) instance for
    /// a wasi:http@0.2 app, on an instance with room for a wasi:http@0.3 app.
    /// The request's URI should be absolute (the guest sees its scheme and
    /// authority).
    pub async fn handle(
        &self,
        request_id: u64,
        request: http::Request<HostBody>,
    ) -> Result<http::Response<GuestBody>, HandleError> {
        let result = match &self.inner.component.pre {
            component::Pre::P2(_) => handler::handle(&self.inner, request_id, request).await,
            component::Pre::P3(_) => concurrent::handle(&self.inner, request_id, request).await,
        };
        if let Err(err) = &result {
            self.inner.observer.report(observe::Event::Failed(err));
        }
        result
    }
}
