//! # berth-http: berth's own `wasi:http` host
//!
//! This crate implements the host side of `wasi:http`: the `fields`,
//! request, response and body resources, the handler plumbing and the seam
//! to an outgoing client. It holds no sockets and no listener; the `berth`
//! crate serves it over hyper and `berth-runtime` runs the guests.
//!
//! Version-neutral pieces live at the crate root:
//!
//! * [`fields`]: header validation, forbidden names, size bounds;
//! * [`error`]: [`ErrorCode`], the host's mirror of WIT `error-code`;
//! * [`body`]: [`HostBody`] (to guests) and [`GuestBody`] (from guests) with
//!   back-pressure, trailers and `Content-Length` enforcement;
//! * [`outbound`]: the [`OutboundClient`] seam for outgoing requests;
//! * [`ctx`]: per-store state ([`HttpCtx`]) and the [`HttpView`] trait;
//! * [`log_scope`]: which request a log line belongs to.
//!
//! Each `wasi:http` version is a mirror module holding only bindings,
//! resource types, host impls and conversions: [`p2`] for `wasi:http@0.2.x`,
//! [`p3`] for `wasi:http@0.3.0`.

pub mod body;
mod conv;
pub mod ctx;
pub mod error;
pub mod fields;
pub mod log_scope;
pub mod memory;
pub mod outbound;
pub mod p2;
pub mod p3;
pub mod stall;
pub mod uri;

pub use body::{GuestBody, HostBody};
pub use ctx::{Http, HttpCtx, HttpCtxView, HttpView};
pub use error::{ErrorCode, HeaderError};
pub use outbound::{OutboundClient, RequestTimeouts};
