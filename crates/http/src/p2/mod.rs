//! The `wasi:http@0.2` host (`proxy` world).
//!
//! Add it to a linker with [`add_to_linker`] next to wasmtime-wasi's p2
//! interfaces; the store data implements [`crate::HttpView`] and
//! `wasmtime_wasi::WasiView` over one shared `ResourceTable`.
//!
//! Components built against any `wasi:http` 0.2.x (0.2.0 … 0.2.12) link:
//! wasmtime matches imports by semver against this 0.2.12 implementation.
//!
//! # Choices where the WIT leaves the host room
//!
//! * **Fields size.** A `fields` block is bounded (see
//!   [`DEFAULT_FIELDS_SIZE_LIMIT`](crate::fields::DEFAULT_FIELDS_SIZE_LIMIT)).
//!   0.2's `header-error` has no size case, so exceeding the bound **traps**
//!   with a message naming the limit (as wasmtime does; WASI#889) rather than
//!   returning a misleading `invalid-syntax`.
//! * **Forbidden headers** ([`FORBIDDEN_HEADERS`](crate::fields::FORBIDDEN_HEADERS))
//!   return `forbidden` from `set`/`append`/`delete`/`from-list`, are
//!   stripped from any fields that become an outgoing message or trailers,
//!   and are never shown to guests: incoming requests, upstream responses
//!   and trailers arrive without them (the authority stays in
//!   `authority()`), so copying headers from one message to another works.
//! * **Paths.** `set-path-with-query(some(""))` is `/` (WASI#780); relative
//!   forms are kept as set and sent from the root (see
//!   [`GuestPath`](crate::uri::GuestPath)).
//! * **Authorities** may carry userinfo when set (and read back); a request
//!   carrying it is refused with `HTTP-request-URI-invalid` when sent.
//! * **Outgoing concurrency.** Past the per-invocation cap, requests wait
//!   for a slot (at most their first-byte timeout, then
//!   `connection-timeout`); only the per-invocation total is a hard
//!   `connection-limit-reached`.
//! * **`send-informational`** returns `internal-error` explaining that the
//!   host does not send 1xx responses; it never traps.
//! * **Status codes.** `set-status-code` accepts 100–599; a response handed to
//!   `response-outparam.set` with a 1xx status becomes a 500 (a guest can
//!   never produce `101`).
//! * **`outgoing-handler.handle`** validates the request (method, scheme,
//!   authority, path) and then asks the configured
//!   [`OutboundClient`](crate::OutboundClient); with none configured every
//!   request is denied with `HTTP-request-denied`. A request with no scheme
//!   is sent as `https`, with no path as `/`.

pub mod bindings;
pub mod body;
pub mod conv;
mod host;
pub mod types;

use wasmtime::component::Linker;

use crate::ctx::{Http, HttpView};
pub use crate::error::{FieldsError, HttpError, HttpResult};

pub use self::types::{IncomingRequest, ResponseOutparam, ResponseSender};

/// Adds `wasi:http/types` and `wasi:http/outgoing-handler` (0.2) to `linker`.
/// The wasi:io, clocks, random and cli interfaces come from wasmtime-wasi.
pub fn add_to_linker<T: HttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let mut options = bindings::http::types::LinkOptions::default();
    // `send-informational` is @unstable; components that import it must
    // still load, and the host answers it with an error.
    options.informational_outbound_responses(true);
    bindings::http::types::add_to_linker::<T, Http>(linker, &options, T::http)?;
    bindings::http::outgoing_handler::add_to_linker::<T, Http>(linker, T::http)?;
    Ok(())
}
