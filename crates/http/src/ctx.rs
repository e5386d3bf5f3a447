//! Per-store `wasi:http` state and the view host impls work through.

use std::sync::Arc;

use wasmtime::component::{HasData, ResourceTable};

use crate::fields::DEFAULT_FIELDS_SIZE_LIMIT;
use crate::outbound::OutboundClient;

/// The `wasi:http` part of a store's data: limits and the outbound seam.
#[derive(Clone)]
pub struct HttpCtx {
    /// Bound on each guest-built `fields` block, in accounted bytes.
    pub fields_size_limit: usize,
    /// Sends the guest's outgoing requests. `None` denies all of them with
    /// `HTTP-request-denied` (egress is deny-by-default).
    pub outbound: Option<Arc<dyn OutboundClient>>,
}

impl Default for HttpCtx {
    fn default() -> Self {
        Self {
            fields_size_limit: DEFAULT_FIELDS_SIZE_LIMIT,
            outbound: None,
        }
    }
}

impl std::fmt::Debug for HttpCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCtx")
            .field("fields_size_limit", &self.fields_size_limit)
            .field("outbound", &self.outbound.is_some())
            .finish()
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

/// Marker type for `add_to_linker`: `wasi:http` host data is an
/// [`HttpCtxView`].
#[derive(Debug)]
pub struct Http;

impl HasData for Http {
    type Data<'a> = HttpCtxView<'a>;
}
