//! What one store (one guest instance) holds.

use std::collections::HashMap;

use berth_http::{HttpCtx, HttpCtxView, HttpView};
use wasmtime::component::{GuestTaskId, ResourceTable};
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
    /// wasi:http@0.3: the request id of each request this instance serves,
    /// by the guest task handling it (see [`StoreState::open_request`]).
    /// Bounded by the tasks alive at once: a finished task's id is reused,
    /// and its entry overwritten, by a later request.
    requests: HashMap<GuestTaskId, u64>,
    /// The root task the guest last ran for, whose request the guest's
    /// output is attributed to.
    current_task: Option<GuestTaskId>,
    /// Each request's guest log byte budget.
    log_limit: usize,
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
        // One budget for the guest's linear memory and the header blocks it
        // makes the host hold.
        let memory = berth_http::memory::HostMemory::new(config.memory_limit);
        let mut http = http;
        http.memory = memory.clone();
        let mut table = ResourceTable::new();
        table.set_max_capacity(config.resource_limit);
        Self {
            wasi,
            table,
            http,
            limiter: InstanceLimiter::new(memory, config.table_elements_limit),
            cpu: CpuMeter::new(config.cpu_time_limit),
            stdout,
            stderr,
            config_vars: config.config_vars.clone(),
            chain: Vec::new(),
            requests: HashMap::new(),
            current_task: None,
            log_limit: config.log_limit,
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
        // The instance's memory budget stays (its limiter shares it).
        let memory = self.http.memory.clone();
        self.http = http;
        self.http.memory = memory;
        self.cpu = CpuMeter::new(config.cpu_time_limit);
        self.stdout.restart(request_id, config.log_limit);
        self.stderr.restart(request_id, config.log_limit);
    }

    /// wasi:http@0.3: request `request_id` is handled by guest task `task`
    /// in this instance, beside other requests: its outgoing-request caps,
    /// its log line tags and its log byte budget are its own, for the task
    /// and every subtask it starts (found from each host call's async call
    /// stack).
    pub(crate) fn open_request(&mut self, task: GuestTaskId, request_id: u64) {
        // Task ids are reused once a task is gone: an entry for `task` is a
        // finished request's, replaced here; and if it was the one selected,
        // the guest's next call must select the new request.
        if self.current_task == Some(task) {
            self.current_task = None;
        }
        self.http.open_request(task);
        if let Some(finished) = self.requests.insert(task, request_id) {
            // The task id is reused: its earlier request can log no more.
            self.stdout.forget(finished);
            self.stderr.forget(finished);
        }
        self.stdout.open(request_id, self.log_limit);
        self.stderr.open(request_id, self.log_limit);
    }

    /// wasi:http@0.3: request `request_id` is answered (its later output
    /// keeps its tag, without holding its span open).
    pub(crate) fn close_request(&mut self, request_id: u64) {
        self.stdout.close(request_id);
        self.stderr.close(request_id);
    }

    /// Whether host calls must be attributed to requests (an instance
    /// serving several).
    pub(crate) fn serves_requests(&self) -> bool {
        !self.requests.is_empty()
    }

    /// The guest runs for the request handled by `root`: its output goes
    /// to that request's log.
    pub(crate) fn entered_task(&mut self, root: GuestTaskId) {
        if Some(root) == self.current_task {
            return;
        }
        self.current_task = Some(root);
        let Some(&request_id) = self.requests.get(&root) else {
            return;
        };
        self.stdout.select(request_id);
        self.stderr.select(request_id);
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
