//! What one store (one guest instance) holds.

use berth_http::{HttpCtx, HttpCtxView, HttpView};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::config::RuntimeConfig;
use crate::limits::{CpuMeter, InstanceLimiter};
use crate::stdio::{GuestLog, LogStream};
use crate::wasi_config::{ConfigVars, ConfigView};

/// The data of a per-request `Store`: WASI and `wasi:http` state sharing one
/// resource table, plus the limits that apply to this instance.
pub struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: HttpCtx,
    pub(crate) limiter: InstanceLimiter,
    pub(crate) cpu: CpuMeter,
    stdout: GuestLog,
    stderr: GuestLog,
    config_vars: ConfigVars,
    /// The `handle` export of each wasi:http@0.3 chain stage instantiated
    /// in this store (see [`crate::component`]).
    chain: Vec<crate::component::HandleFunc>,
}

impl StoreState {
    /// Fresh state for request `request_id`: the configured environment and
    /// nothing else (no args, no preopens, no network, stdin at EOF), guest
    /// output to the log.
    pub fn new(config: &RuntimeConfig, http: HttpCtx, request_id: u64) -> Self {
        let stdout = GuestLog::new(request_id, LogStream::Stdout, config.log_limit);
        let stderr = GuestLog::new(request_id, LogStream::Stderr, config.log_limit);
        let mut wasi = WasiCtx::builder();
        wasi.envs(&config.env)
            .stdout(stdout.clone())
            .stderr(stderr.clone());
        Self::with_logs(config, http, wasi.build(), stdout, stderr)
    }

    /// State around a WASI context built by the caller (a command's, with
    /// its arguments, preopens and inherited stdio); the limits, `wasi:http`
    /// state and `wasi:config` values still come from `config`.
    pub fn with_wasi(config: &RuntimeConfig, http: HttpCtx, wasi: WasiCtx) -> Self {
        let stdout = GuestLog::new(0, LogStream::Stdout, config.log_limit);
        let stderr = GuestLog::new(0, LogStream::Stderr, config.log_limit);
        Self::with_logs(config, http, wasi, stdout, stderr)
    }

    fn with_logs(
        config: &RuntimeConfig,
        http: HttpCtx,
        wasi: WasiCtx,
        stdout: GuestLog,
        stderr: GuestLog,
    ) -> Self {
        let mut table = ResourceTable::new();
        table.set_max_capacity(config.resource_limit);
        Self {
            wasi,
            table,
            http,
            limiter: InstanceLimiter::new(config.memory_limit, config.table_elements_limit),
            cpu: CpuMeter::new(config.cpu_time_limit),
            stdout,
            stderr,
            config_vars: config.config_vars.clone(),
            chain: Vec::new(),
        }
    }

    /// Holds the guest's output to the app's shared rate limit.
    pub(crate) fn limit_output(&self, rate: &std::sync::Arc<crate::stdio::OutputRate>) {
        self.stdout.limit_rate(rate.clone());
        self.stderr.limit_rate(rate.clone());
    }

    /// The `handle` export of chain stage `index`, once instantiated.
    pub(crate) fn chain_handler(&self, index: usize) -> Option<crate::component::HandleFunc> {
        self.chain.get(index).copied()
    }

    /// Records the chain's `handle` exports, the request's first stop first.
    pub(crate) fn set_chain(&mut self, chain: Vec<crate::component::HandleFunc>) {
        self.chain = chain;
    }

    /// Prepares a reused instance for request `request_id`: fresh
    /// `wasi:http` counters, a new CPU budget, log lines tagged anew.
    /// Guest memory is deliberately kept (that is what reuse means).
    pub(crate) fn begin_request(&mut self, config: &RuntimeConfig, http: HttpCtx, request_id: u64) {
        self.http = http;
        self.cpu = CpuMeter::new(config.cpu_time_limit);
        self.stdout.restart(request_id, config.log_limit);
        self.stderr.restart(request_id, config.log_limit);
    }

    /// Whether the resource table still holds entries (a guest that kept
    /// handles past its request; such an instance is not reused).
    pub fn has_live_resources(&self) -> bool {
        !self.table.is_empty()
    }
}

impl std::fmt::Debug for StoreState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreState")
            .field("http", &self.http)
            .field("limiter", &self.limiter)
            .field("cpu", &self.cpu)
            .finish_non_exhaustive()
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HttpView for StoreState {
    fn http(&mut self) -> HttpCtxView<'_> {
        HttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
        }
    }
}

impl ConfigView for StoreState {
    fn config_vars(&mut self) -> &ConfigVars {
        &self.config_vars
    }
}
