//! Runtime configuration: limits, environment and engine sizing.

use std::time::Duration;

/// Default CPU time a guest may spend on one request (10 s). Measured as
/// time spent executing guest code, not time waiting on the network.
pub const DEFAULT_CPU_TIME_LIMIT: Duration = Duration::from_secs(10);

/// Default wall-clock time one request may take from instantiation to the
/// end of the guest's work, response body included (60 s). Catches guests
/// blocked in the host, which the CPU limit cannot see.
pub const DEFAULT_WALL_TIME_LIMIT: Duration = Duration::from_secs(60);

/// Default bound on the sum of all linear memories of one instance (256 MiB).
pub const DEFAULT_MEMORY_LIMIT: usize = 256 << 20;

/// Default bound on table elements per instance (100 000).
pub const DEFAULT_TABLE_ELEMENTS_LIMIT: usize = 100_000;

/// Default bound on live resources per instance (fields, streams, …):
/// 100 000 handles.
pub const DEFAULT_RESOURCE_LIMIT: usize = 100_000;

/// Default bound on concurrent instances, which sizes the pooling allocator.
pub const DEFAULT_MAX_INSTANCES: u32 = 1000;

/// Default interval of the epoch ticker (10 ms): the granularity of the CPU
/// limit.
pub const DEFAULT_EPOCH_TICK: Duration = Duration::from_millis(10);

/// Default bytes of each pooled linear memory kept resident and reset in
/// place between instances (2 MiB). Measured on the hello guest: with
/// PAGEMAP_SCAN this took berth from ~8k to ~22k requests/s (BENCHMARKS.md);
/// 4 MiB and 16 MiB gained nothing more.
pub const DEFAULT_KEEP_RESIDENT: usize = 2 << 20;

/// Default CPU time a component's start-up may use when it is
/// pre-initialised (10 s; start-up runs once, not per request).
pub const DEFAULT_PRE_INIT_TIME_LIMIT: Duration = Duration::from_secs(10);

/// Default bytes of each pooled async stack kept resident (64 KiB).
pub const DEFAULT_STACK_KEEP_RESIDENT: usize = 64 << 10;

/// Default time an idle reusable instance is kept (1 s).
pub const DEFAULT_REUSE_IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// Default number of requests one wasi:http@0.3 instance serves at once
/// (16). More concurrent requests start more instances.
pub const DEFAULT_CONCURRENT_REQUESTS: usize = 16;

/// Default number of requests one wasi:http@0.3 instance serves in its
/// life before it is retired (256). Bounding reuse keeps per-instance host
/// state (and guest heap growth) flat; see BENCHMARKS.md.
pub const DEFAULT_INSTANCE_REQUESTS: u32 = 256;

/// Default cap on guest stdout + stderr bytes logged per request (1 MiB).
pub const DEFAULT_LOG_LIMIT: usize = 1 << 20;

/// Largest component accepted at load (256 MiB): a bigger file is refused
/// before it is compiled, with a clear error, rather than tying up the
/// compiler and the process's memory.
pub const DEFAULT_MAX_COMPONENT_BYTES: usize = 256 << 20;

/// Longest a component may take to compile (and pre-initialise) at load
/// (300 s): past it the load fails with a clear error instead of hanging
/// start-up or a reload. Cranelift cannot be interrupted, so the compile
/// thread finishes in the background and its result is dropped. The
/// largest real components (a 40 MB componentize-py app) compile in well
/// under a minute on two cores.
pub const DEFAULT_MAX_COMPILE_TIME: Duration = Duration::from_secs(300);

/// Guest output an app may log per second, all its instances together
/// (1 MiB/s, with bursts of four seconds' worth); 0 means no limit.
pub const DEFAULT_LOG_RATE: u64 = 1 << 20;

/// Everything the runtime needs to know, with documented defaults.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// CPU time per request.
    pub cpu_time_limit: Duration,
    /// Wall-clock time per request.
    pub wall_time_limit: Duration,
    /// Sum of all linear memories of one instance, in bytes.
    pub memory_limit: usize,
    /// Table elements per instance.
    pub table_elements_limit: usize,
    /// Live resource handles per instance.
    pub resource_limit: usize,
    /// Concurrent instances (pooling allocator size).
    pub max_instances: u32,
    /// Epoch tick interval.
    pub epoch_tick: Duration,
    /// Environment variables the guest sees (it sees nothing else).
    pub env: Vec<(String, String)>,
    /// Values components read through `wasi:config/store`.
    pub config_vars: crate::wasi_config::ConfigVars,
    /// Bound on each guest-built `fields` block.
    pub fields_size_limit: usize,
    /// Guest stdout + stderr bytes logged per request.
    pub log_limit: usize,
    /// Guest output bytes logged per second by all of an app's instances
    /// together; lines beyond are dropped and counted. See
    /// [`DEFAULT_LOG_RATE`]; 0 means no limit.
    pub log_rate: u64,
    /// See [`DEFAULT_MAX_COMPONENT_BYTES`].
    pub max_component_bytes: usize,
    /// See [`DEFAULT_MAX_COMPILE_TIME`]. A cached component is not
    /// compiled again, so only a cache miss can take this long.
    pub max_compile_time: Duration,
    /// Use the pooling instance allocator (falls back to on-demand when the
    /// address space cannot be reserved).
    pub pooling: bool,
    /// See [`DEFAULT_KEEP_RESIDENT`].
    pub keep_resident: usize,
    /// See [`DEFAULT_STACK_KEEP_RESIDENT`].
    pub stack_keep_resident: usize,
    /// Instance policy. `None` (the default): a fresh instance per request,
    /// so requests never share guest state. `Some(n)`: an instance serves up
    /// to `n` requests one after another, keeping its memory (globals, heap)
    /// between them; it is discarded after any trap, error or timeout, or
    /// when it kept resources past a request.
    pub reuse: Option<std::num::NonZeroU32>,
    /// See [`DEFAULT_REUSE_IDLE_TIMEOUT`]; also how long an idle
    /// wasi:http@0.3 instance is kept.
    pub reuse_idle_timeout: Duration,
    /// wasi:http@0.3 only: requests one instance serves at once. See
    /// [`DEFAULT_CONCURRENT_REQUESTS`].
    pub concurrent_requests: usize,
    /// wasi:http@0.3 only: requests one instance serves before it is
    /// retired. See [`DEFAULT_INSTANCE_REQUESTS`].
    pub instance_requests: u32,
    /// Where compiled components are cached (see [`crate::cache`]); `None`
    /// compiles in memory every time.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Run each component's `wizer-initialize` export once at load and
    /// serve the snapshot of its initialised state (see [`crate::preinit`]).
    pub pre_init: bool,
    /// CPU time that start-up may use under `pre_init` (it may take three
    /// times as long in wall-clock time). See
    /// [`DEFAULT_PRE_INIT_TIME_LIMIT`].
    pub pre_init_time_limit: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cpu_time_limit: DEFAULT_CPU_TIME_LIMIT,
            wall_time_limit: DEFAULT_WALL_TIME_LIMIT,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            table_elements_limit: DEFAULT_TABLE_ELEMENTS_LIMIT,
            resource_limit: DEFAULT_RESOURCE_LIMIT,
            max_instances: DEFAULT_MAX_INSTANCES,
            epoch_tick: DEFAULT_EPOCH_TICK,
            env: Vec::new(),
            config_vars: Default::default(),
            fields_size_limit: berth_http::fields::DEFAULT_FIELDS_SIZE_LIMIT,
            log_limit: DEFAULT_LOG_LIMIT,
            log_rate: DEFAULT_LOG_RATE,
            max_component_bytes: DEFAULT_MAX_COMPONENT_BYTES,
            max_compile_time: DEFAULT_MAX_COMPILE_TIME,
            pooling: true,
            keep_resident: DEFAULT_KEEP_RESIDENT,
            stack_keep_resident: DEFAULT_STACK_KEEP_RESIDENT,
            reuse: None,
            reuse_idle_timeout: DEFAULT_REUSE_IDLE_TIMEOUT,
            concurrent_requests: DEFAULT_CONCURRENT_REQUESTS,
            instance_requests: DEFAULT_INSTANCE_REQUESTS,
            cache_dir: None,
            pre_init: false,
            pre_init_time_limit: DEFAULT_PRE_INIT_TIME_LIMIT,
        }
    }
}
