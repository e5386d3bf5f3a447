//! Host representations of the `wasi:http@0.3.0` resources.

use http::HeaderMap;
use http::uri::Scheme;

use crate::memory::Charge;
use crate::outbound::RequestTimeouts;
use crate::p3::body::Body;
use crate::uri::GuestPath;

/// A `request`: from the network (host body) or built by a guest.
#[derive(Debug)]
pub struct Request {
    /// The method, case preserved.
    pub method: http::Method,
    /// The scheme; always present on requests from the network.
    pub scheme: Option<Scheme>,
    /// Host and optional port; always present on requests from the network.
    pub authority: Option<http::uri::Authority>,
    /// Path and query; `None` is sent as `/`.
    pub path_with_query: Option<GuestPath>,
    /// Headers (immutable once part of the request).
    pub headers: HeaderMap,
    /// Options the guest attached (immutable once attached).
    pub options: Option<RequestTimeouts>,
    /// The body and its trailers.
    pub body: Body,
    /// The headers' bytes, held against the instance's memory budget while
    /// the request lives in its table (none for a request from the network).
    pub held: Charge,
}

impl Request {
    /// A request from the network: its URI should be absolute, so the guest
    /// sees scheme and authority. Forbidden headers (`host`, hop-by-hop
    /// fields) are dropped: guests never see them.
    pub fn from_http(request: http::Request<crate::HostBody>) -> Self {
        let (parts, body) = request.into_parts();
        Self {
            method: parts.method,
            scheme: parts.uri.scheme().cloned(),
            authority: parts.uri.authority().cloned(),
            path_with_query: parts.uri.path_and_query().cloned().map(GuestPath::from),
            headers: crate::fields::hide_forbidden(parts.headers),
            options: None,
            body: Body::Host {
                body,
                delivered: None,
            },
            held: Charge::none(),
        }
    }
}

/// A `response`: from a guest, or from an upstream via `client.send`.
#[derive(Debug)]
pub struct Response {
    /// The status code (100–599).
    pub status: http::StatusCode,
    /// Headers (immutable once part of the response).
    pub headers: HeaderMap,
    /// The body and its trailers.
    pub body: Body,
    /// The headers' bytes, held against the instance's memory budget while
    /// the response lives in its table (none for an upstream's response).
    pub held: Charge,
}

/// A `request-options` resource: the timeouts, and whether the guest may
/// still change them (not once attached to a request).
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// The timeouts asked for.
    pub timeouts: RequestTimeouts,
    /// `false` for the read-only view `request.get-options` returns.
    pub mutable: bool,
}
