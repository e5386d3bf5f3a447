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
use crate::uri::GuestPath;

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

/// A duration as the WIT `duration` (nanoseconds), saturating.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
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

/// The parts of a guest's outgoing request, as either `wasi:http` version
/// holds them.
#[derive(Debug)]
pub struct OutgoingParts {
    /// The method.
    pub method: http::Method,
    /// The scheme; `None` is sent as `https`.
    pub scheme: Option<http::uri::Scheme>,
    /// The authority; required.
    pub authority: Option<http::uri::Authority>,
    /// Path and query; `None` is sent as `/`, a relative one from the root
    /// (see [`GuestPath`]).
    pub path_with_query: Option<GuestPath>,
    /// Headers, forbidden ones already stripped.
    pub headers: http::HeaderMap,
}

impl OutgoingParts {
    /// Builds the request a client sends, rejecting what cannot be sent
    /// before any connection is attempted: a scheme other than http(s)
    /// (`HTTP-protocol-error`), no authority or one with userinfo
    /// (`HTTP-request-URI-invalid`),
    /// `CONNECT` (`HTTP-request-method-invalid`), a malformed
    /// `Content-Length` (`HTTP-request-body-size`).
    pub fn into_request(self, body: HostBody) -> Result<http::Request<HostBody>, ErrorCode> {
        use http::uri::Scheme;
        let scheme = self.scheme.unwrap_or(Scheme::HTTPS);
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(ErrorCode::HttpProtocolError);
        }
        let authority = self.authority.ok_or(ErrorCode::HttpRequestUriInvalid)?;
        if crate::uri::has_userinfo(&authority) {
            let _in_request = crate::log_scope::enter();
            tracing::info!("outgoing request refused: its authority carries userinfo");
            return Err(ErrorCode::HttpRequestUriInvalid);
        }
        if self.method == http::Method::CONNECT {
            return Err(ErrorCode::HttpRequestMethodInvalid);
        }
        crate::body::content_length(&self.headers)
            .map_err(|_| ErrorCode::HttpRequestBodySize(None))?;
        let path = self.path_with_query.map_or_else(
            || http::uri::PathAndQuery::from_static("/"),
            GuestPath::into_target,
        );
        let uri = http::Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query(path)
            .build()
            .map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
        let mut out = http::Request::new(body);
        *out.method_mut() = self.method;
        *out.uri_mut() = uri;
        *out.headers_mut() = self.headers;
        Ok(out)
    }
}
