//! The `wasi:http@0.3.0` host (`service` and `middleware` worlds).
//!
//! Add it to a linker with [`add_to_linker`] next to wasmtime-wasi's p3
//! interfaces; the engine needs Component Model async
//! (`Config::wasm_component_model_async`). Bodies are Component Model
//! `stream<u8>` values with a `future` of trailers (see [`body`]).
//!
//! # Choices where the WIT leaves the host room
//!
//! The rules shared with 0.2 (fields validation, forbidden headers, the
//! fields size bound, status codes 100–599, a 1xx final response becoming a
//! 500, outgoing validation, caps and the deny-by-default client) are the
//! same code; see [`crate::p2`]. What differs:
//!
//! * **Fields size.** 0.3 has `header-error.size-exceeded`, so exceeding the
//!   bound returns it instead of trapping.
//! * **Incoming requests always carry scheme and authority** (the front-end
//!   resolves them from the connection and `Host`/`:authority`).
//! * **`path-with-query: none`** on an outgoing request is sent as `/`; no
//!   scheme is sent as `https`.
//! * **`request-options`** are copied when attached to a request; the view
//!   `request.get-options` returns is immutable (setters return
//!   `immutable`). All three timeouts are honoured (clamped by the client),
//!   so `not-supported` is never returned.
//! * **Transmission futures** (from `request.new` / `response.new`) resolve
//!   `ok` only once the receiver took the whole body; a message dropped
//!   unsent resolves with `internal-error`, never `ok`.
//! * **An imported `handler` with nothing after it** (a lone middleware, or
//!   a service built against the 0.3 release candidates) is the outgoing
//!   client: see [`add_handler_import_to_linker`].
//! * **`get-headers`** returns an immutable copy that is not a child of the
//!   message, so consuming the message never traps on a live headers handle.

pub mod bindings;
pub mod body;
pub mod conv;
mod host;
pub mod types;

use wasmtime::component::{Linker, ResourceTableError};

use crate::ctx::{Http, HttpView};

pub use self::host::handler::{HANDLER_INTERFACE, add_handler_import_to_linker};
pub use self::types::{Request, RequestOptions, Response};

/// A `request-options-error` for the guest, or a trap.
#[derive(Debug)]
#[non_exhaustive]
pub enum OptionsError {
    /// The options are the read-only view of a request's options.
    Immutable,
    /// Ends the guest's execution.
    Trap(wasmtime::Error),
}

impl From<ResourceTableError> for OptionsError {
    fn from(err: ResourceTableError) -> Self {
        OptionsError::Trap(err.into())
    }
}

/// Result of a `request-options` setter.
pub type OptionsResult<T> = Result<T, OptionsError>;

/// Adds `wasi:http/types` and `wasi:http/client` (0.3.0) to `linker`. The
/// clocks, random and cli interfaces come from wasmtime-wasi's p3 support.
pub fn add_to_linker<T: HttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    bindings::http::types::add_to_linker::<T, Http>(linker, T::http)?;
    bindings::http::client::add_to_linker::<T, Http>(linker, T::http)?;
    Ok(())
}
