//! The seam through which guests' outgoing requests leave the host.
//!
//! The `wasi:http` host validates a guest's request and converts it to an
//! `http::Request<HostBody>`; an [`OutboundClient`] sends it. Keeping the
//! client behind a trait keeps sockets, TLS and pooling out of this crate and
//! lets embedders bring their own.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::body::HostBody;
use crate::error::ErrorCode;

/// Timeouts a guest asked for with `request-options`, not yet clamped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTimeouts {
    /// Time to establish the connection.
    pub connect: Option<Duration>,
    /// Time until the first byte of the response head.
    pub first_byte: Option<Duration>,
    /// Longest gap between body bytes.
    pub between_bytes: Option<Duration>,
}

/// The future an [`OutboundClient`] returns.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<HostBody>, ErrorCode>> + Send>>;

/// Sends guests' outgoing requests.
pub trait OutboundClient: Send + Sync + 'static {
    /// Sends `request` (absolute URI, validated method and headers) and
    /// resolves to the response head with a streaming body.
    fn send(&self, request: http::Request<HostBody>, timeouts: RequestTimeouts) -> ResponseFuture;
}
