//! Errors of the runtime: loading a component and handling one request.

use std::time::Duration;

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The engine could not be configured.
    #[error("could not configure the WebAssembly engine: {0}")]
    Engine(#[source] wasmtime::Error),
    /// The bytes are not WebAssembly at all.
    #[error(
        "{what} is not a WebAssembly file (it does not start with the `\\0asm` magic bytes); \
         expected a WebAssembly component exporting `wasi:http/incoming-handler@0.2.x` or \
         `wasi:http/handler@0.3.0`"
    )]
    NotWasm {
        /// What was loaded (a path or "the component").
        what: String,
    },
    /// A core module where a component is needed.
    #[error(
        "{what} is a core WebAssembly module, not a component; expected a component exporting \
         `wasi:http/incoming-handler@0.2.x` or `wasi:http/handler@0.3.0`. Build for the \
         `wasm32-wasip2` target, or wrap the module with `wasm-tools component new`"
    )]
    CoreModule {
        /// What was loaded.
        what: String,
    },
    /// wasmtime rejected the component.
    #[error("{what} could not be compiled: {source}")]
    Compile {
        /// What was loaded.
        what: String,
        /// The compiler's reason.
        #[source]
        source: wasmtime::Error,
    },
    /// The component exports no `wasi:http` handler.
    #[error(
        "{what} does not export a wasi:http handler; found exports [{found}], expected \
         `wasi:http/incoming-handler@0.2.x` (the `wasi:http/proxy` world) or \
         `wasi:http/handler@0.3.0` (the `wasi:http/service` world)"
    )]
    NoHandler {
        /// What was loaded.
        what: String,
        /// The exports it has, comma separated.
        found: String,
    },
    /// The component imports something the host does not provide.
    #[error("{what} cannot be linked: {source}")]
    Link {
        /// What was loaded.
        what: String,
        /// wasmtime's reason (names the missing import).
        #[source]
        source: wasmtime::Error,
    },
    /// The components do not form a valid app (a middleware chain whose
    /// links do not fit).
    #[error("invalid component chain: {reason}")]
    Chain {
        /// What is wrong, naming the component.
        reason: String,
    },
    /// Pre-initialisation was asked for and failed.
    #[error("{what} could not be pre-initialised: {source}")]
    PreInit {
        /// What was loaded.
        what: String,
        /// Why.
        #[source]
        source: crate::preinit::PreInitError,
    },
    /// Compiling (and pre-initialising) the component took longer than
    /// [`crate::config::RuntimeConfig::max_compile_time`].
    #[error(
        "{what} did not compile within {limit:?} (the limit on compile time at load); \
         a component this slow to compile is refused"
    )]
    CompileTimeout {
        /// What was loaded.
        what: String,
        /// The limit.
        limit: Duration,
    },
    /// The component is larger than
    /// [`crate::config::RuntimeConfig::max_component_bytes`].
    #[error("{what} is {size} bytes, more than the {max}-byte limit on components")]
    TooLarge {
        /// What was loaded.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// The epoch ticker thread could not start.
    #[error("could not start the epoch ticker: {0}")]
    Ticker(#[source] std::io::Error),
    /// An app asks for more memory per instance than the shared instance
    /// pool was sized for.
    #[error(
        "{what} asks for {wanted} bytes of memory per instance, more than the shared instance \
         pool allows ({pool} bytes); raise the pool's memory size or lower the app's limit"
    )]
    MemoryAbovePool {
        /// What was loaded.
        what: String,
        /// The app's memory limit.
        wanted: usize,
        /// The pool's largest memory.
        pool: usize,
    },
}

/// Why a request produced no guest response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// The instance could not be created (out of memory, pool exhausted, a
    /// trap in the start function).
    #[error("instantiation failed: {}", .0.root_cause())]
    Instantiate(#[source] wasmtime::Error),
    /// The guest trapped before sending a response.
    #[error("guest trapped: {}", .0.root_cause())]
    Trap(#[source] wasmtime::Error),
    /// The guest used up its CPU budget.
    #[error("guest exceeded its CPU time limit of {0:?}")]
    CpuLimit(Duration),
    /// The guest took longer than the wall-clock limit.
    #[error("guest exceeded its wall-clock time limit of {0:?}")]
    Timeout(Duration),
    /// The guest returned without calling `response-outparam.set`.
    #[error("guest returned without sending a response")]
    NoResponse,
    /// The guest answered with an error code instead of a response.
    #[error("guest responded with an error: {0}")]
    Guest(#[source] berth_http::ErrorCode),
    /// The host failed to set up the request (resource table full).
    #[error("host error: {}", .0.root_cause())]
    Host(#[source] wasmtime::Error),
}

impl HandleError {
    /// The same error for another request that failed with it (several
    /// requests on one wasi:http@0.3 instance fail together). A wrapped
    /// wasmtime error keeps its root cause's message.
    pub(crate) fn duplicate(&self) -> Self {
        let again = |e: &wasmtime::Error| wasmtime::format_err!("{}", e.root_cause());
        match self {
            HandleError::Instantiate(e) => HandleError::Instantiate(again(e)),
            HandleError::Trap(e) => HandleError::Trap(again(e)),
            HandleError::CpuLimit(d) => HandleError::CpuLimit(*d),
            HandleError::Timeout(d) => HandleError::Timeout(*d),
            HandleError::NoResponse => HandleError::NoResponse,
            HandleError::Guest(code) => HandleError::Guest(code.clone()),
            HandleError::Host(e) => HandleError::Host(again(e)),
        }
    }

    /// Whether this error is a deadline (the front-end answers 504).
    pub fn is_timeout(&self) -> bool {
        matches!(self, HandleError::Timeout(_) | HandleError::CpuLimit(_))
    }

    /// Whether the host had no room for another instance (the pooling
    /// allocator is full): overload, not a fault of the request (the
    /// front-end answers 503).
    pub fn is_overload(&self) -> bool {
        matches!(self, HandleError::Instantiate(e)
            if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some())
    }
}

/// The trap raised when a guest exceeds its CPU budget.
#[derive(Debug, thiserror::Error)]
#[error("CPU time limit exceeded")]
pub struct CpuLimitExceeded;
