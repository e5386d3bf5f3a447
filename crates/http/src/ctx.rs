//! Per-store `wasi:http` state and the view host impls work through.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use wasmtime::component::{GuestTaskId, HasData, Resource, ResourceTable};

use crate::error::ErrorCode;
use crate::fields::{DEFAULT_FIELDS_SIZE_LIMIT, FieldMap, strip_forbidden};
use crate::memory::Charge;
use crate::outbound::{OutboundClient, RequestTimeouts};

/// The `wasi:http` part of a store's data: limits and the outbound seam.
///
/// Cloning gives a fresh per-invocation state (counters start at zero).
pub struct HttpCtx {
    /// Bound on each guest-built `fields` block, in accounted bytes.
    pub fields_size_limit: usize,
    /// The instance's memory budget: header blocks the guest makes the
    /// host hold count against it, beside its linear memory (see
    /// [`crate::memory`]). Unlimited by default; a clone gets a fresh
    /// budget of the same size.
    pub memory: crate::memory::HostMemory,
    /// Sends the guest's outgoing requests. `None` denies all of them with
    /// `HTTP-request-denied` (egress is deny-by-default).
    pub outbound: Option<Arc<dyn OutboundClient>>,
    /// Most outgoing requests one invocation may send in total; past it,
    /// `connection-limit-reached`.
    pub max_outgoing_requests: u32,
    /// Most outgoing requests one invocation may have waiting for a
    /// response head at once; more wait (queue) for a slot.
    pub max_concurrent_outgoing: usize,
    /// Longest an outgoing request waits for a slot when the guest did not
    /// give a `first-byte-timeout` (which bounds the wait otherwise); past
    /// it, `connection-timeout`.
    pub outgoing_queue_timeout: Duration,
    /// Outgoing requests sent so far by this invocation.
    pub(crate) outgoing_sent: u32,
    /// Slots for this invocation's outgoing requests waiting for a head.
    pub(crate) outgoing_slots: Arc<Semaphore>,
    /// wasi:http@0.3: the budgets of the requests one instance serves at
    /// once or in turn, by the guest task handling each (see
    /// [`HttpCtx::open_request`]).
    scopes: HashMap<GuestTaskId, RequestBudget>,
}

/// One request's outgoing-request counters.
#[derive(Debug)]
struct RequestBudget {
    sent: u32,
    slots: Arc<Semaphore>,
}

/// Default cap on outgoing requests per invocation (50).
pub const DEFAULT_MAX_OUTGOING_REQUESTS: u32 = 50;

/// Default cap on concurrent outgoing requests per invocation (6, as
/// browsers allow per origin); more queue.
pub const DEFAULT_MAX_CONCURRENT_OUTGOING: usize = 6;

/// Default bound on the wait for an outgoing-request slot (30 s, the
/// outbound client's default first-byte timeout).
pub const DEFAULT_OUTGOING_QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for HttpCtx {
    fn default() -> Self {
        Self {
            fields_size_limit: DEFAULT_FIELDS_SIZE_LIMIT,
            memory: crate::memory::HostMemory::default(),
            outbound: None,
            max_outgoing_requests: DEFAULT_MAX_OUTGOING_REQUESTS,
            max_concurrent_outgoing: DEFAULT_MAX_CONCURRENT_OUTGOING,
            outgoing_queue_timeout: DEFAULT_OUTGOING_QUEUE_TIMEOUT,
            outgoing_sent: 0,
            outgoing_slots: Arc::new(Semaphore::new(DEFAULT_MAX_CONCURRENT_OUTGOING)),
            scopes: HashMap::new(),
        }
    }
}

impl Clone for HttpCtx {
    fn clone(&self) -> Self {
        Self {
            fields_size_limit: self.fields_size_limit,
            memory: self.memory.fresh(),
            outbound: self.outbound.clone(),
            max_outgoing_requests: self.max_outgoing_requests,
            max_concurrent_outgoing: self.max_concurrent_outgoing,
            outgoing_queue_timeout: self.outgoing_queue_timeout,
            outgoing_sent: 0,
            outgoing_slots: Arc::new(Semaphore::new(self.max_concurrent_outgoing)),
            scopes: HashMap::new(),
        }
    }
}

impl std::fmt::Debug for HttpCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCtx")
            .field("fields_size_limit", &self.fields_size_limit)
            .field("outbound", &self.outbound.is_some())
            .field("max_outgoing_requests", &self.max_outgoing_requests)
            .field("max_concurrent_outgoing", &self.max_concurrent_outgoing)
            .field("outgoing_queue_timeout", &self.outgoing_queue_timeout)
            .finish_non_exhaustive()
    }
}

/// Implemented by store data that hosts `wasi:http`.
pub trait HttpView: Send {
    /// Borrows the `wasi:http` context and the resource table together.
    fn http(&mut self) -> HttpCtxView<'_>;
}

/// What the `wasi:http` host functions operate on.
#[derive(Debug)]
pub struct HttpCtxView<'a> {
    /// The `wasi:http` context.
    pub ctx: &'a mut HttpCtx,
    /// The store's resource table (shared with wasi:io).
    pub table: &'a mut ResourceTable,
}

impl HttpCtxView<'_> {
    /// Takes guest-owned fields out of the table as a map ready to send
    /// (headers of a message, or trailers): forbidden entries are stripped.
    /// Both `wasi:http` versions use it.
    pub(crate) fn take_fields_for_sending(
        &mut self,
        fields: Resource<FieldMap>,
    ) -> wasmtime::Result<http::HeaderMap> {
        Ok(self.take_fields_held(fields)?.0)
    }

    /// As [`take_fields_for_sending`](Self::take_fields_for_sending), for
    /// headers that stay in the guest's table as part of a message: their
    /// charge comes along, so they keep counting against the instance's
    /// memory budget until the message is sent or dropped.
    pub(crate) fn take_fields_held(
        &mut self,
        fields: Resource<FieldMap>,
    ) -> wasmtime::Result<(http::HeaderMap, Charge)> {
        let (mut map, charge) = self.table.delete(fields)?.into_parts();
        let dropped = strip_forbidden(&mut map);
        if dropped > 0 {
            tracing::debug!(dropped, "stripped forbidden fields from a guest message");
        }
        Ok((map, charge))
    }
}

/// Marker type for `add_to_linker`: `wasi:http` host data is an
/// [`HttpCtxView`].
#[derive(Debug)]
pub struct Http;

impl HasData for Http {
    type Data<'a> = HttpCtxView<'a>;
}

/// A place in an invocation's queue of outgoing requests: wait with
/// [`OutgoingSlot::acquire`], then hold the permit until the response head
/// arrives.
#[derive(Debug)]
pub(crate) struct OutgoingSlot {
    slots: Arc<Semaphore>,
    timeout: Duration,
}

impl OutgoingSlot {
    /// Waits for a free slot, at most the request's first-byte timeout (or
    /// the context's queue timeout); past it, `connection-timeout`.
    pub(crate) async fn acquire(self) -> Result<OwnedSemaphorePermit, ErrorCode> {
        match tokio::time::timeout(self.timeout, self.slots.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(ErrorCode::internal("outgoing request slots closed")),
            Err(_elapsed) => {
                let _in_request = crate::log_scope::enter();
                tracing::info!(
                    waited = ?self.timeout,
                    "outgoing request timed out waiting for a slot under the concurrency cap"
                );
                Err(ErrorCode::ConnectionTimeout)
            }
        }
    }
}

impl HttpCtx {
    /// wasi:http@0.3: gives the request handled by guest task `task` (and
    /// the subtasks it starts) budgets of its own, so the caps count per
    /// request however many requests the instance serves (WebAssembly/WASI
    /// #920 ties such work to the root task). Kept while the instance lives
    /// (at most its request count).
    pub fn open_request(&mut self, task: GuestTaskId) {
        self.scopes.insert(
            task,
            RequestBudget {
                sent: 0,
                slots: Arc::new(Semaphore::new(self.max_concurrent_outgoing)),
            },
        );
    }

    /// Admits an outgoing request: returns the client to send it with and
    /// its place in the queue for the concurrency cap. Denied with
    /// `HTTP-request-denied` when no outbound access is configured, and
    /// with `connection-limit-reached` past the per-request total. `task`
    /// is the root guest task of the call (0.3); its request's budget
    /// applies, else this context's own (0.2: one request per store).
    pub(crate) fn admit_outgoing(
        &mut self,
        task: Option<GuestTaskId>,
        uri: &http::Uri,
        timeouts: &RequestTimeouts,
    ) -> Result<(Arc<dyn OutboundClient>, OutgoingSlot), ErrorCode> {
        let Some(client) = self.outbound.clone() else {
            let _in_request = crate::log_scope::enter();
            tracing::info!(
                %uri,
                "outgoing request denied: no outbound access is configured for this app"
            );
            return Err(ErrorCode::HttpRequestDenied);
        };
        let limit = self.max_outgoing_requests;
        let (sent, slots) = match task.and_then(|task| self.scopes.get_mut(&task)) {
            Some(budget) => (&mut budget.sent, &budget.slots),
            None => (&mut self.outgoing_sent, &self.outgoing_slots),
        };
        if *sent >= limit {
            let _in_request = crate::log_scope::enter();
            tracing::info!(limit, "outgoing request refused: per-request total reached");
            return Err(ErrorCode::ConnectionLimitReached);
        }
        *sent += 1;
        let slot = OutgoingSlot {
            slots: slots.clone(),
            timeout: timeouts.first_byte.unwrap_or(self.outgoing_queue_timeout),
        };
        Ok((client, slot))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    struct NeverSends;

    impl OutboundClient for NeverSends {
        fn send(
            &self,
            _request: http::Request<crate::HostBody>,
            _timeouts: RequestTimeouts,
        ) -> crate::outbound::ResponseFuture {
            Box::pin(std::future::pending())
        }
    }

    fn ctx(max_concurrent: usize, max_total: u32) -> HttpCtx {
        let template = HttpCtx {
            outbound: Some(Arc::new(NeverSends)),
            max_concurrent_outgoing: max_concurrent,
            max_outgoing_requests: max_total,
            ..HttpCtx::default()
        };
        // A clone is a fresh invocation, sized by the template.
        template.clone()
    }

    fn admit(ctx: &mut HttpCtx, first_byte: Option<Duration>) -> Result<OutgoingSlot, ErrorCode> {
        let timeouts = RequestTimeouts {
            first_byte,
            ..RequestTimeouts::default()
        };
        let uri = http::Uri::from_static("http://example.com/");
        ctx.admit_outgoing(None, &uri, &timeouts)
            .map(|(_, slot)| slot)
    }

    #[tokio::test(start_paused = true)]
    async fn requests_past_the_concurrency_cap_wait_for_a_slot() {
        let mut ctx = ctx(1, 50);
        let first = admit(&mut ctx, None).unwrap().acquire().await.unwrap();
        let second = tokio::spawn(admit(&mut ctx, None).unwrap().acquire());
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!second.is_finished(), "the second request waits");
        drop(first);
        assert!(second.await.unwrap().is_ok(), "then takes the freed slot");
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_request_times_out_after_its_first_byte_timeout() {
        let mut ctx = ctx(1, 50);
        let _held = admit(&mut ctx, None).unwrap().acquire().await.unwrap();
        let started = tokio::time::Instant::now();
        let queued = admit(&mut ctx, Some(Duration::from_secs(2))).unwrap();
        assert_eq!(
            queued.acquire().await.unwrap_err(),
            ErrorCode::ConnectionTimeout
        );
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        // Without an option the context's queue timeout applies.
        let queued = admit(&mut ctx, None).unwrap();
        assert_eq!(
            queued.acquire().await.unwrap_err(),
            ErrorCode::ConnectionTimeout
        );
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(2) + DEFAULT_OUTGOING_QUEUE_TIMEOUT
        );
    }

    #[test]
    fn the_total_per_invocation_stays_a_hard_limit() {
        let mut ctx = ctx(6, 2);
        assert!(admit(&mut ctx, None).is_ok());
        assert!(admit(&mut ctx, None).is_ok());
        assert_eq!(
            admit(&mut ctx, None).unwrap_err(),
            ErrorCode::ConnectionLimitReached
        );
    }
}
