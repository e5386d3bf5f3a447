//! Serving `wasi:http@0.3` requests: instances that take several requests
//! at once (Component Model async).
//!
//! A *worker* is a tokio task that owns one store with the app instantiated
//! in it (for a middleware chain: every stage, linked in that one store). It
//! drives the store's event loop (`run_concurrent`) and starts each request
//! it is given as a concurrent call of the chain's first `handle` export.
//! The loop keeps running while responses stream out, since the guest's
//! body writes are serviced by that loop.
//!
//! Dispatch picks a live worker with room (fewer than `concurrent_requests`
//! in flight and fewer than `instance_requests` admitted in its life), or
//! starts a new one. A worker is *retired* (takes no new requests, ends once
//! its requests are done) when it reaches `instance_requests`, after a
//! request missed its deadline (a stuck guest task stays stuck), or when it
//! has been idle for `reuse_idle_timeout`. A trap ends the whole worker: all
//! of its in-flight requests fail (they shared the instance), and nothing
//! else is affected.
//!
//! Deadlines: each request has the wall-clock limit for its response head
//! and its body; a body not finished in time is aborted on its own. Work a
//! guest does after returning its response (post-return) runs on until the
//! last admitted request's deadline at most; then the store is dropped. The
//! CPU budget of an instance grows by one request's limit per request it
//! admits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use berth_http::log_scope::RequestScope;
use berth_http::p3::Request;
use berth_http::p3::body::BodyAbort;
use berth_http::{ErrorCode, GuestBody, HostBody, HttpView};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::runtime::RuntimeFlavor;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use wasmtime::component::Accessor;

use crate::Shared;
use crate::component::{HandleCall, Pre};
use crate::error::HandleError;
use crate::handler::{LiveGuard, TRACE, classify_failure, new_store};
use crate::limits::metered;
use crate::observe::Event;
use crate::store::StoreState;
use tracing::Instrument;

type Reply = oneshot::Sender<Result<http::Response<GuestBody>, HandleError>>;

/// One request handed to a worker.
struct Job {
    request: http::Request<HostBody>,
    request_id: u64,
    reply: Reply,
    /// The caller's span: the request's spans hang below it.
    span: tracing::Span,
    /// The caller's request scope: the request's log lines carry its id.
    scope: RequestScope,
}

/// The dispatcher's view of a worker.
struct WorkerHandle {
    jobs: mpsc::UnboundedSender<Job>,
    in_flight: AtomicUsize,
    admitted: AtomicU32,
    open: AtomicBool,
    /// The thread the worker runs on, when it was started on a
    /// single-threaded runtime (a connection thread), where it stays.
    home: Option<std::thread::ThreadId>,
}

impl WorkerHandle {
    fn finished_one(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The live wasi:http@0.3 workers of one app.
#[derive(Default)]
pub(crate) struct ConcurrentPool {
    workers: Mutex<Vec<Arc<WorkerHandle>>>,
}

impl std::fmt::Debug for ConcurrentPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConcurrentPool")
            .field("workers", &self.lock().len())
            .finish()
    }
}

impl ConcurrentPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<WorkerHandle>>> {
        self.workers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Workers alive right now.
    pub(crate) fn workers(&self) -> usize {
        self.lock()
            .iter()
            .filter(|w| w.open.load(Ordering::Acquire))
            .count()
    }

    /// Hands `job` to the least busy instance with room, or starts one.
    ///
    /// On a single-threaded runtime (a connection thread: see berth's
    /// `ServerConfig::connection_threads`) an instance whose worker runs on
    /// the same thread is preferred, and the first request on a thread with
    /// none starts one there: a request then never leaves its thread. On a
    /// work-stealing runtime, while there are fewer instances than the
    /// runtime has worker threads, a busy instance takes no more: one
    /// instance's worker task serving every connection ping-pongs with the
    /// connection tasks on the other threads (unpinned on two cores, p3
    /// hello ran 1.6× faster with its requests over two instances;
    /// BENCHMARKS.md).
    fn dispatch(&self, shared: &Arc<Shared>, mut job: Job) {
        let max_concurrent = shared.config.concurrent_requests.max(1);
        let max_requests = shared.config.instance_requests.max(1);
        let runtime = tokio::runtime::Handle::try_current().ok();
        let home = runtime
            .as_ref()
            .filter(|runtime| runtime.runtime_flavor() == RuntimeFlavor::CurrentThread)
            .map(|_| std::thread::current().id());
        let mut workers = self.lock();
        workers.retain(|w| w.open.load(Ordering::Acquire));
        let spread = match home {
            Some(here) => !workers.iter().any(|w| w.home == Some(here)),
            None => workers.len() < runtime.map_or(1, |runtime| runtime.metrics().num_workers()),
        };
        loop {
            let least_busy = workers
                .iter()
                .filter(|w| w.open.load(Ordering::Acquire))
                .filter(|w| w.admitted.load(Ordering::Acquire) < max_requests)
                .map(|w| (w.in_flight.load(Ordering::Acquire), w))
                .filter(|(in_flight, _)| {
                    // Spreading: to an idle instance, or (at home) a new one.
                    *in_flight < max_concurrent && !(spread && (home.is_some() || *in_flight > 0))
                })
                .min_by_key(|(in_flight, w)| (w.home != home, *in_flight));
            let Some((_, worker)) = least_busy else {
                break;
            };
            worker.in_flight.fetch_add(1, Ordering::AcqRel);
            worker.admitted.fetch_add(1, Ordering::AcqRel);
            match worker.jobs.send(job) {
                Ok(()) => return,
                Err(mpsc::error::SendError(returned)) => {
                    // It retired in the meantime; try another one.
                    worker.open.store(false, Ordering::Release);
                    worker.finished_one();
                    job = returned;
                }
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = Arc::new(WorkerHandle {
            jobs: tx,
            in_flight: AtomicUsize::new(1),
            admitted: AtomicU32::new(1),
            open: AtomicBool::new(true),
            home,
        });
        if handle.jobs.send(job).is_err() {
            return;
        }
        workers.push(handle.clone());
        drop(workers);
        tokio::spawn(run_worker(shared.clone(), handle, rx));
    }
}

/// Runs `request` on a wasi:http@0.3 instance with room for it.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    request_id: u64,
    request: http::Request<HostBody>,
) -> Result<http::Response<GuestBody>, HandleError> {
    let (reply, response) = oneshot::channel();
    let job = Job {
        request,
        request_id,
        reply,
        span: tracing::Span::current(),
        scope: RequestScope::current(),
    };
    shared.concurrent.dispatch(shared, job);
    response.await.unwrap_or_else(|_| {
        Err(HandleError::Host(wasmtime::format_err!(
            "the instance serving this request ended without answering"
        )))
    })
}

/// A worker's in-flight requests: replies not yet sent and bodies still
/// streaming. Kept outside the store's event loop so that a trap (which
/// ends the loop) can still answer the first and abort the second before
/// the store goes (dropping the store alone could look like a clean end).
#[derive(Default, Clone)]
struct InFlight(Arc<Mutex<InFlightState>>);

#[derive(Default)]
struct InFlightState {
    replies: HashMap<u64, Reply>,
    bodies: HashMap<u64, BodyAbort>,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, InFlightState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(&self, id: u64, reply: Reply) {
        self.lock().replies.insert(id, reply);
    }

    fn send(&self, id: u64, result: Result<http::Response<GuestBody>, HandleError>) {
        let reply = self.lock().replies.remove(&id);
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }

    /// Answers with a response whose body is still streaming.
    fn respond(&self, id: u64, response: http::Response<GuestBody>, abort: BodyAbort) {
        let reply = {
            let mut state = self.lock();
            state.bodies.insert(id, abort);
            state.replies.remove(&id)
        };
        if let Some(reply) = reply {
            let _ = reply.send(Ok(response));
        }
    }

    /// Resolves once the caller waiting for request `id`'s response is
    /// gone (the client reset the stream or disconnected before the head);
    /// never, once the response was handed over.
    async fn caller_gone(&self, id: u64) {
        std::future::poll_fn(|cx| match self.lock().replies.get_mut(&id) {
            Some(reply) => reply.poll_closed(cx),
            None => std::task::Poll::Pending,
        })
        .await;
    }

    /// The body of request `id` ended; returns its abort handle.
    fn body_done(&self, id: u64) -> Option<BodyAbort> {
        self.lock().bodies.remove(&id)
    }

    /// Fails every request still waiting for its head and aborts every
    /// body still streaming; returns how many of each.
    fn fail_all(&self, err: impl Fn() -> HandleError) -> (usize, usize) {
        let (replies, bodies) = {
            let mut state = self.lock();
            (
                state.replies.drain().map(|(_, r)| r).collect::<Vec<_>>(),
                state.bodies.drain().map(|(_, b)| b).collect::<Vec<_>>(),
            )
        };
        let counts = (replies.len(), bodies.len());
        for reply in replies {
            let _ = reply.send(Err(err()));
        }
        for body in bodies {
            body.abort(ErrorCode::internal(err().to_string()));
        }
        counts
    }
}

/// How long a guest whose client went away before the response head may
/// take to finish before its instance is retired.
const CANCEL_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// What one request left behind.
struct Served {
    /// The instance should take no more requests.
    retire: bool,
}

async fn run_worker(
    shared: Arc<Shared>,
    handle: Arc<WorkerHandle>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
) {
    let _live = LiveGuard::new(&shared);
    let replies = InFlight::default();
    let Some(first) = jobs.recv().await else {
        return;
    };
    let config = &shared.config;
    let Pre::P3(stages) = &shared.component.pre else {
        let _ = first
            .reply
            .send(Err(HandleError::Host(wasmtime::format_err!(
                "not a wasi:http@0.3 app"
            ))));
        return;
    };
    let mut store = new_store(
        &shared.engine,
        config,
        shared.http.clone(),
        first.request_id,
    );
    if let Some(rate) = &shared.output_rate {
        store.data().limit_output(rate);
    }
    // Instantiate the chain back to front; each middleware's import calls
    // the stage after it, found in the store data.
    let mut chain = Vec::with_capacity(stages.len());
    let began = std::time::Instant::now();
    let span = tracing::debug_span!(target: TRACE, parent: &first.span, "instantiate");
    for stage in stages.iter().rev() {
        match stage
            .instantiate_async(&mut store)
            .instrument(span.clone())
            .await
        {
            Ok(service) => chain.push(service.wasi_http_handler().func_handle()),
            Err(err) => {
                handle.open.store(false, Ordering::Release);
                jobs.close();
                let err = match classify_failure(err, config) {
                    HandleError::Trap(e) => HandleError::Instantiate(e),
                    other => other,
                };
                while let Some(job) = jobs.recv().await {
                    let _ = job.reply.send(Err(err.duplicate()));
                }
                let _ = first.reply.send(Err(err));
                return;
            }
        }
    }
    chain.reverse();
    shared.observer.report(Event::InstanceCreated {
        took: began.elapsed(),
    });
    let entry = chain[0];
    store.data_mut().set_chain(chain);

    let mut latest_deadline = Instant::now();
    // The CPU meter charges each poll of the event loop (see CpuMeter).
    let cpu = store.data().cpu.poll_clock();
    let event_loop = store.run_concurrent(async |accessor| {
        let mut tasks = FuturesUnordered::new();
        let mut next = Some(first);
        let mut drained = false;
        let mut stuck = false;
        let mut seq = 0u64;
        loop {
            if let Some(job) = next.take() {
                let deadline = Instant::now() + config.wall_time_limit;
                latest_deadline = latest_deadline.max(deadline);
                accessor.with(|mut access| access.get().cpu.add_budget(config.cpu_time_limit));
                seq += 1;
                if seq > 1 {
                    shared.observer.report(Event::InstanceReused);
                }
                replies.insert(seq, job.reply);
                tasks.push(serve(
                    accessor,
                    entry,
                    seq,
                    job.request,
                    job.request_id,
                    job.span,
                    job.scope,
                    deadline,
                    &replies,
                    &shared,
                ));
            }
            if drained && tasks.is_empty() {
                break;
            }
            let idle = tokio::time::sleep(config.reuse_idle_timeout);
            tokio::select! {
                job = jobs.recv(), if !drained => match job {
                    Some(job) => next = Some(job),
                    None => drained = true,
                },
                Some(served) = tasks.next(), if !tasks.is_empty() => {
                    handle.finished_one();
                    if served.retire {
                        stuck = true;
                        retire(&handle, &mut jobs);
                    }
                },
                () = idle, if tasks.is_empty() && !drained => retire(&handle, &mut jobs),
            }
            if handle.admitted.load(Ordering::Acquire) >= config.instance_requests.max(1) {
                retire(&handle, &mut jobs);
            }
        }
        if !stuck {
            // Post-return work (a guest task still running after its
            // response was sent) may finish, within the deadlines.
            let wait = std::future::poll_fn(|cx| accessor.poll_no_interesting_tasks(cx));
            let _ = tokio::time::timeout_at(latest_deadline, wait).await;
        }
    });
    let outcome = metered(cpu, event_loop).await;
    handle.open.store(false, Ordering::Release);
    if store.data_mut().limiter.take_denials() > 0 {
        shared.observer.report(Event::MemoryLimit);
    }
    if let Err(err) = outcome {
        let err = classify_failure(err, config);
        tracing::error!(error = %err, "wasi:http@0.3 instance failed; its in-flight requests fail");
        let (answered, streaming) = replies.fail_all(|| err.duplicate());
        if answered == 0 && streaming > 0 {
            // Requests still waiting for a head report the failure
            // themselves; with only bodies cut short, report it here.
            shared.observer.report(Event::Failed(&err));
        }
    }
    // Requests queued for this instance that it never started go to
    // another one rather than failing with it.
    jobs.close();
    while let Ok(job) = jobs.try_recv() {
        shared.concurrent.dispatch(&shared, job);
    }
}

/// Stops a worker from taking new requests; those already queued are
/// still served.
fn retire(handle: &WorkerHandle, jobs: &mut mpsc::UnboundedReceiver<Job>) {
    handle.open.store(false, Ordering::Release);
    jobs.close();
}

/// Runs one request through the chain's entry and streams its response.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, all parts of a request"
)]
async fn serve(
    accessor: &Accessor<StoreState>,
    entry: crate::component::HandleFunc,
    seq: u64,
    request: http::Request<HostBody>,
    request_id: u64,
    parent: tracing::Span,
    scope: RequestScope,
    deadline: Instant,
    replies: &InFlight,
    shared: &Shared,
) -> Served {
    let span = tracing::debug_span!(
        target: TRACE,
        parent: &parent,
        "guest call",
        error.type = tracing::field::Empty
    );
    let pushed =
        accessor.with(|mut access| access.get().http().table.push(Request::from_http(request)));
    let request = match pushed {
        Ok(r) => r,
        Err(err) => {
            replies.send(seq, Err(HandleError::Host(err.into())));
            return Served { retire: false };
        }
    };
    // Started here rather than through `call_concurrent` to learn the
    // guest task the request's caps and log belong to. The call is only
    // queued (the guest runs later, in the event loop), so the task is
    // registered before it can act; registered in the request's span and
    // scope, in which its guest log lines are then written.
    let started = {
        let _in_request = parent.enter();
        scope.in_scope(|| {
            accessor.with(|mut access| {
                let call = entry.start_call_concurrent(&mut access, (request,))?;
                access.get().open_request(call.task(), request_id);
                wasmtime::Result::Ok(call)
            })
        })
    };
    let call = match started {
        Ok(call) => call,
        Err(err) => {
            replies.send(seq, Err(HandleError::Host(err)));
            return Served { retire: true };
        }
    };
    let served = serve_started(
        accessor, entry, call, seq, request_id, &span, &scope, deadline, replies, shared,
    )
    .await;
    accessor.with(|mut access| access.get().close_request(request_id));
    served
}

/// [`serve`], once the guest call has started.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, all parts of a request"
)]
async fn serve_started(
    accessor: &Accessor<StoreState>,
    entry: crate::component::HandleFunc,
    call: HandleCall,
    seq: u64,
    request_id: u64,
    span: &tracing::Span,
    scope: &RequestScope,
    deadline: Instant,
    replies: &InFlight,
    shared: &Shared,
) -> Served {
    let wall = shared.config.wall_time_limit;
    let called = tokio::time::timeout_at(deadline, entry.finish_call_concurrent(accessor, call))
        .instrument(span.clone());
    let mut called = std::pin::pin!(called);
    let outcome = tokio::select! {
        outcome = called.as_mut() => outcome,
        () = replies.caller_gone(seq) => {
            // Nobody waits for this response any more (an HTTP/2 reset, a
            // disconnect): the guest gets a short grace to notice (its
            // request body reports the client gone) and finish; if it does
            // not, the instance is retired (it takes no new request and is
            // dropped, with the stuck task, once its other requests end),
            // rather than keeping the guest running to the wall-clock limit.
            span.record("error.type", "cancelled");
            let grace = CANCEL_GRACE.min(wall);
            let finished = tokio::time::timeout(grace, called).await.is_ok();
            if !finished {
                let _in_request = scope.span().entered();
                tracing::info!(
                    request_id,
                    ?grace,
                    "client gone before the response head and the guest did not finish; instance retired"
                );
            }
            replies.send(seq, Err(HandleError::Timeout(wall)));
            return Served { retire: !finished };
        }
    };
    let response = match outcome {
        Err(_) => {
            span.record("error.type", "timeout");
            replies.send(seq, Err(HandleError::Timeout(wall)));
            return Served { retire: true };
        }
        Ok(Err(trap)) => {
            span.record("error.type", "trap");
            replies.send(seq, Err(classify_failure(trap, &shared.config)));
            return Served { retire: true };
        }
        Ok(Ok((Err(code),))) => {
            let code = berth_http::p3::conv::error_code_from_wit(code);
            replies.send(seq, Err(HandleError::Guest(code)));
            return Served { retire: false };
        }
        Ok(Ok((Ok(response),))) => response,
    };
    let converted = accessor.with(|mut access| {
        let response = access.get().http().table.delete(response)?;
        response.into_http(&mut access, <StoreState as HttpView>::http)
    });
    let (mut response, abort) = match converted {
        Ok(Ok(parts)) => parts,
        Ok(Err(code)) => {
            replies.send(seq, Err(HandleError::Guest(code)));
            return Served { retire: false };
        }
        Err(err) => {
            replies.send(seq, Err(HandleError::Host(err)));
            return Served { retire: true };
        }
    };
    let (delivered_tx, delivered) = oneshot::channel();
    response.body_mut().on_delivery(delivered_tx);
    replies.respond(seq, response, abort);
    let finished = tokio::time::timeout_at(deadline, delivered).await;
    let abort = replies.body_done(seq);
    match (finished, abort) {
        (Ok(_), _) | (Err(_), None) => Served { retire: false },
        (Err(_), Some(abort)) => {
            let _in_request = scope.span().entered();
            tracing::warn!(
                request_id,
                limit = ?wall,
                "wasi:http@0.3 response body not finished within the wall-clock limit; aborted"
            );
            abort.abort(ErrorCode::internal(format!(
                "the response body was not finished within the wall-clock limit of {wall:?}"
            )));
            shared
                .observer
                .report(Event::Failed(&HandleError::Timeout(wall)));
            Served { retire: true }
        }
    }
}
