//! Per-store `wasi:http` state and the view host impls work through.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use wasmtime::component::{HasData, Resource, ResourceTable};

use crate::error::ErrorCode;
use crate::fields::{DEFAULT_FIELDS_SIZE_LIMIT, FieldMap, strip_forbidden};
use crate::outbound::OutboundClient;

/// The `wasi:http` part of a store's data: limits and the outbound seam.
///
/// Cloning gives a fresh per-invocation state (counters start at zero).
pub struct HttpCtx {
    /// Bound on each guest-built `fields` block, in accounted bytes.
    pub fields_size_limit: usize,
    /// Sends the guest's outgoing requests. `None` denies all of them with
    /// `HTTP-request-denied` (egress is deny-by-default).
    pub outbound: Option<Arc<dyn OutboundClient>>,
    /// Most outgoing requests one invocation may send in total.
    pub max_outgoing_requests: u32,
    /// Most outgoing requests one invocation may have waiting for a
    /// response head at once.
    pub max_concurrent_outgoing: usize,
    /// Outgoing requests sent so far by this invocation.
    pub(crate) outgoing_sent: u32,
    /// Outgoing requests of this invocation still waiting for a response.
    pub(crate) outgoing_in_flight: Arc<AtomicUsize>,
}

/// Default cap on outgoing requests per invocation (50).
pub const DEFAULT_MAX_OUTGOING_REQUESTS: u32 = 50;

/// Default cap on concurrent outgoing requests per invocation (6, as
/// browsers allow per origin).
pub const DEFAULT_MAX_CONCURRENT_OUTGOING: usize = 6;

impl Default for HttpCtx {
    fn default() -> Self {
        Self {
            fields_size_limit: DEFAULT_FIELDS_SIZE_LIMIT,
            outbound: None,
            max_outgoing_requests: DEFAULT_MAX_OUTGOING_REQUESTS,
            max_concurrent_outgoing: DEFAULT_MAX_CONCURRENT_OUTGOING,
            outgoing_sent: 0,
            outgoing_in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Clone for HttpCtx {
    fn clone(&self) -> Self {
        Self {
            fields_size_limit: self.fields_size_limit,
            outbound: self.outbound.clone(),
            max_outgoing_requests: self.max_outgoing_requests,
            max_concurrent_outgoing: self.max_concurrent_outgoing,
            outgoing_sent: 0,
            outgoing_in_flight: Arc::new(AtomicUsize::new(0)),
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
        let mut map = self.table.delete(fields)?.into_map();
        let dropped = strip_forbidden(&mut map);
        if dropped > 0 {
            tracing::debug!(dropped, "stripped forbidden fields from a guest message");
        }
        Ok(map)
    }
}

/// Marker type for `add_to_linker`: `wasi:http` host data is an
/// [`HttpCtxView`].
#[derive(Debug)]
pub struct Http;

impl HasData for Http {
    type Data<'a> = HttpCtxView<'a>;
}

/// Counts one outgoing request of an invocation waiting for its response
/// head, against the per-invocation concurrency cap.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// Takes a slot, or `None` when `max` are taken.
    pub(crate) fn try_new(count: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(count.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HttpCtx {
    /// Admits one outgoing request of this invocation: the client to send
    /// it with and a slot against the concurrency cap. Denied with
    /// `HTTP-request-denied` when no outbound access is configured, and with
    /// `connection-limit-reached` past either per-invocation cap.
    pub(crate) fn admit_outgoing(
        &mut self,
        uri: &http::Uri,
    ) -> Result<(Arc<dyn OutboundClient>, InFlight), ErrorCode> {
        let Some(client) = self.outbound.clone() else {
            tracing::info!(
                %uri,
                "outgoing request denied: no outbound access is configured for this app"
            );
            return Err(ErrorCode::HttpRequestDenied);
        };
        if self.outgoing_sent >= self.max_outgoing_requests {
            tracing::info!(
                limit = self.max_outgoing_requests,
                "outgoing request refused: per-request total reached"
            );
            return Err(ErrorCode::ConnectionLimitReached);
        }
        let in_flight = InFlight::try_new(&self.outgoing_in_flight, self.max_concurrent_outgoing)
            .ok_or(ErrorCode::ConnectionLimitReached)?;
        self.outgoing_sent += 1;
        Ok((client, in_flight))
    }
}
