//! Running one request through a fresh guest instance (`wasi:http@0.2`).
//!
//! The guest call runs in its own task that owns the `Store`. The response
//! head comes back through the `response-outparam` channel as soon as the
//! guest calls `set`, while the task goes on driving the guest (which is
//! typically still writing the body). Both clocks apply to the whole task:
//! the CPU meter through epoch interruption, the wall clock through a
//! timeout. When the task ends, the store is dropped, which aborts any body
//! the guest did not finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use berth_http::log_scope;
use berth_http::p2::{IncomingRequest, ResponseOutparam};
use berth_http::{GuestBody, HostBody, HttpCtx, HttpView};
use tokio::sync::oneshot;
use tracing::Instrument;
use wasmtime::{CallHook, Store, UpdateDeadline};

use crate::Shared;
use crate::config::RuntimeConfig;
use crate::error::{CpuLimitExceeded, HandleError};
use crate::limits::metered;
use crate::observe::{Event, ObserverSlot};

/// The target of trace spans (see `berth::trace`): debug level, so they
/// cost nothing unless a tracing layer asks for them.
pub(crate) const TRACE: &str = "berth::trace";
use crate::store::StoreState;

/// How the guest task ended.
#[derive(Debug)]
enum Outcome {
    Returned,
    Failed(HandleError),
}

/// Creates the store for one request with its limits wired in.
pub(crate) fn new_store(
    engine: &wasmtime::Engine,
    config: &RuntimeConfig,
    http: HttpCtx,
    request_id: u64,
) -> Store<StoreState> {
    store_with_limits(engine, StoreState::new(config, http, request_id))
}

/// Creates a store for `state` with its limits wired in: memory and tables
/// through the limiter, CPU time through the call hook and the epoch
/// callback (which also yields to the async runtime every tick).
pub(crate) fn store_with_limits(engine: &wasmtime::Engine, state: StoreState) -> Store<StoreState> {
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    store.call_hook(|mut ctx, hook| {
        let cpu = &mut ctx.data_mut().cpu;
        match hook {
            CallHook::CallingWasm | CallHook::ReturningFromHost => cpu.enter(),
            CallHook::CallingHost | CallHook::ReturningFromWasm => cpu.exit(),
        }
        // An instance serving several requests (0.3): this host call (a log
        // write, say) is for the request whose task tree made it.
        if matches!(hook, CallHook::CallingHost)
            && ctx.data().serves_requests()
            && let Some(root) = ctx.async_call_stack().ok().and_then(|stack| stack.last())
        {
            ctx.data_mut().entered_task(root);
        }
        Ok(())
    });
    store.epoch_deadline_callback(|mut ctx| {
        let cpu = &mut ctx.data_mut().cpu;
        if cpu.exhausted() {
            Err(CpuLimitExceeded.into())
        } else {
            // Yield to the async runtime every tick so a busy guest never
            // holds a worker thread. tokio's `yield_now` defers the wake-up
            // until the scheduler has polled its I/O and timer driver, so
            // looping guests cannot delay other connections' events (a plain
            // re-wake would let them run for up to 61 scheduler ticks first).
            // The meter stops while the guest is parked (see CpuMeter).
            Ok(UpdateDeadline::YieldCustom(1, Box::pin(cpu.yield_now())))
        }
    });
    store.set_epoch_deadline(1);
    store
}

pub(crate) fn classify_failure(err: wasmtime::Error, config: &RuntimeConfig) -> HandleError {
    if err.downcast_ref::<CpuLimitExceeded>().is_some() {
        HandleError::CpuLimit(config.cpu_time_limit)
    } else {
        HandleError::Trap(err)
    }
}

/// Runs `request` through an instance of the runtime's component: a fresh
/// one, or an idle one under the `reuse` policy.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    request_id: u64,
    request: http::Request<HostBody>,
) -> Result<http::Response<GuestBody>, HandleError> {
    let started = Instant::now();
    let live = LiveGuard::new(shared);
    let config = &shared.config;
    let deadline = tokio::time::Instant::now() + config.wall_time_limit;
    let wall = config.wall_time_limit;
    let http = shared.http.clone();
    let (mut store, reused) = match shared.reuse.as_ref().and_then(|pool| pool.take()) {
        Some(mut worker) => {
            worker
                .store
                .data_mut()
                .begin_request(config, http, request_id);
            worker.store.set_epoch_deadline(1);
            shared.observer.report(Event::InstanceReused);
            (worker.store, Some((worker.proxy, worker.uses)))
        }
        None => {
            let store = new_store(&shared.engine, config, http, request_id);
            if let Some(rate) = &shared.output_rate {
                store.data().limit_output(rate);
            }
            (store, None)
        }
    };
    let (sender, mut response) = oneshot::channel();
    let observer = shared.observer.clone();
    let shared = shared.clone();
    let cpu = store.data().cpu.poll_clock();

    let guest = async move {
        let cfg = &shared.config;
        // The CPU meter charges each poll of `run` (see CpuMeter).
        let run = metered(cpu, async {
            let (proxy, uses) = match reused {
                Some(reused) => reused,
                None => {
                    let crate::component::Pre::P2(pre) = &shared.component.pre else {
                        return Err(HandleError::Host(wasmtime::format_err!(
                            "a wasi:http@0.3 app reached the 0.2 request path"
                        )));
                    };
                    let began = Instant::now();
                    let span = tracing::debug_span!(target: TRACE, "instantiate");
                    let proxy = pre
                        .instantiate_async(&mut store)
                        .instrument(span)
                        .await
                        .map_err(|e| match classify_failure(e, cfg) {
                            HandleError::Trap(e) => HandleError::Instantiate(e),
                            other => other,
                        })?;
                    shared.observer.report(Event::InstanceCreated {
                        took: began.elapsed(),
                    });
                    (proxy, 0)
                }
            };
            let table = store.data_mut().http().table;
            let req = table
                .push(IncomingRequest::from_http(request))
                .map_err(|e| HandleError::Host(e.into()))?;
            let out = table
                .push(ResponseOutparam::new(sender))
                .map_err(|e| HandleError::Host(e.into()))?;
            let span = tracing::debug_span!(
                target: TRACE,
                "guest call",
                error.type = tracing::field::Empty
            );
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .instrument(span.clone())
                .await
                .map_err(|e| {
                    span.record("error.type", "trap");
                    classify_failure(e, cfg)
                })?;
            Ok((proxy, uses + 1))
        });
        let outcome = tokio::time::timeout_at(deadline, run).await;
        if store.data_mut().limiter.take_denials() > 0 {
            shared.observer.report(Event::MemoryLimit);
        }
        let outcome = match outcome {
            Ok(Ok((proxy, uses))) => {
                if let Some(pool) = &shared.reuse {
                    // Only a clean return makes an instance reusable.
                    pool.give_back(store, proxy, uses);
                }
                Outcome::Returned
            }
            Ok(Err(err)) => Outcome::Failed(err),
            Err(_) => Outcome::Failed(HandleError::Timeout(wall)),
        };
        // A store not given back (and with it every unfinished body) is
        // dropped here; then the request stops counting as live.
        drop(live);
        outcome
    };
    // The guest runs in the caller's request scope and span (the
    // front-end's scope carries the request id clients see), so its log
    // lines do too.
    let mut task = tokio::spawn(log_scope::in_current(guest));
    // If the caller stops waiting before the head arrives (the client went
    // away, HTTP/2 reset), the guest's work is cancelled with it.
    let mut cancel_on_drop = CancelOnDrop(Some(task.abort_handle()));

    tokio::select! {
        biased;
        head = &mut response => match head {
            Ok(result) => {
                cancel_on_drop.disarm();
                // The guest goes on (usually writing the body); report how it
                // ends once it does.
                let report = async move {
                    match task.await {
                        Ok(Outcome::Returned) => {}
                        Ok(Outcome::Failed(err)) => {
                            observer.report(Event::Failed(&err));
                            let _in_request = log_scope::enter();
                            tracing::error!(
                                request_id,
                                error = %err,
                                "guest failed after sending the response head; response aborted"
                            );
                        }
                        Err(join) => {
                            let _in_request = log_scope::enter();
                            tracing::error!(request_id, "guest task failed: {join}");
                        }
                    }
                    tracing::trace!(request_id, elapsed = ?started.elapsed(), "guest finished");
                };
                tokio::spawn(log_scope::in_current(report));
                result.map_err(HandleError::Guest)
            }
            Err(_) => Err(outcome_without_response(task.await)),
        },
        outcome = &mut task => {
            // The guest ended; it may still have set a response just before.
            match response.try_recv() {
                Ok(result) => result.map_err(HandleError::Guest),
                Err(_) => Err(outcome_without_response(outcome)),
            }
        }
    }
}

/// Aborts the guest task when dropped, unless disarmed.
struct CancelOnDrop(Option<tokio::task::AbortHandle>);

impl CancelOnDrop {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
        }
    }
}

/// Counts a live instance (store) for as long as it exists, and reports
/// its start and end.
pub(crate) struct LiveGuard {
    live: Arc<AtomicUsize>,
    observer: Arc<ObserverSlot>,
}

impl LiveGuard {
    pub(crate) fn new(shared: &Shared) -> Self {
        shared.live_instances.fetch_add(1, Ordering::Relaxed);
        shared.observer.report(Event::InstanceStarted);
        Self {
            live: shared.live_instances.clone(),
            observer: shared.observer.clone(),
        }
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
        self.observer.report(Event::InstanceEnded);
    }
}

fn outcome_without_response(outcome: Result<Outcome, tokio::task::JoinError>) -> HandleError {
    match outcome {
        Ok(Outcome::Returned) => HandleError::NoResponse,
        Ok(Outcome::Failed(err)) => err,
        Err(join) => HandleError::Host(wasmtime::format_err!("guest task failed: {join}")),
    }
}
