//! Host representations of the `wasi:http@0.2` message resources.

use http::HeaderMap;
use http::uri::{Authority, Scheme};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::body::{GuestBody, HostBody};
use crate::error::ErrorCode;
use crate::memory::Charge;
use crate::outbound::RequestTimeouts;
use crate::p2::body::OutgoingBody;

/// An `incoming-request`: what the front-end received, with an absolute URI
/// already resolved (scheme and authority always present for network
/// requests, see the crate docs).
#[derive(Debug)]
pub struct IncomingRequest {
    /// The method, case preserved.
    pub method: http::Method,
    /// `http` or `https`.
    pub scheme: Option<Scheme>,
    /// Host and optional port.
    pub authority: Option<String>,
    /// Path and query, byte-exact as received.
    pub path_with_query: Option<String>,
    /// The request headers (an immutable view is handed to the guest).
    pub headers: HeaderMap,
    /// The body, until the guest consumes it.
    pub body: Option<HostBody>,
}

impl IncomingRequest {
    /// Splits an `http::Request` whose URI is absolute (or at least carries
    /// the parts known) into the resource representation. Forbidden headers
    /// (`host`, hop-by-hop fields) are dropped: guests never see them.
    pub fn from_http(request: http::Request<HostBody>) -> Self {
        let (parts, body) = request.into_parts();
        Self {
            method: parts.method,
            scheme: parts.uri.scheme().cloned(),
            authority: parts.uri.authority().map(|a| a.as_str().to_owned()),
            path_with_query: parts.uri.path_and_query().map(|p| p.as_str().to_owned()),
            headers: crate::fields::hide_forbidden(parts.headers),
            body: Some(body),
        }
    }
}

/// The channel through which a guest's response (or error) reaches the
/// front-end.
pub type ResponseSender = oneshot::Sender<Result<http::Response<GuestBody>, ErrorCode>>;

/// A `response-outparam`.
#[derive(Debug)]
pub struct ResponseOutparam {
    /// Taken by the first (and only) `set`.
    pub(crate) sender: Option<ResponseSender>,
}

impl ResponseOutparam {
    /// An outparam that delivers to `sender`.
    pub fn new(sender: ResponseSender) -> Self {
        Self {
            sender: Some(sender),
        }
    }
}

/// Where a message's outgoing body is.
#[derive(Debug)]
pub(crate) enum BodySlot {
    /// The guest never asked for it: the message has an empty body.
    NotRequested,
    /// The guest holds the `outgoing-body`; this is the reading end.
    Requested(GuestBody),
    /// Handed on with the message.
    Sent,
}

impl BodySlot {
    pub(crate) fn take_body(&mut self) -> GuestBody {
        match std::mem::replace(self, BodySlot::Sent) {
            BodySlot::Requested(body) => body,
            BodySlot::NotRequested | BodySlot::Sent => GuestBody::empty(),
        }
    }

    pub(crate) fn request(
        &mut self,
        headers: &HeaderMap,
        kind: crate::body::BodyKind,
        memory: &crate::memory::HostMemory,
    ) -> Option<OutgoingBody> {
        if !matches!(self, BodySlot::NotRequested) {
            return None;
        }
        // An invalid Content-Length is reported when the message is sent.
        let length = crate::body::content_length(headers).ok().flatten();
        let (mut writer, body) = crate::body::guest_body(length, kind);
        // What the guest writes and nobody has read yet counts against its
        // memory limit (a guest could otherwise fill body after body).
        writer.charge_to(memory.clone());
        *self = BodySlot::Requested(body);
        Some(OutgoingBody::new(writer))
    }
}

/// An `outgoing-response`.
#[derive(Debug)]
pub struct OutgoingResponse {
    pub(crate) status: http::StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: BodySlot,
    /// The headers' bytes, held against the instance's budget.
    pub(crate) _held: Charge,
}

/// An `outgoing-request`.
#[derive(Debug)]
pub struct OutgoingRequest {
    pub(crate) method: http::Method,
    pub(crate) scheme: Option<Scheme>,
    pub(crate) authority: Option<Authority>,
    pub(crate) path_with_query: Option<crate::uri::GuestPath>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: BodySlot,
    /// The headers' bytes, held against the instance's budget.
    pub(crate) _held: Charge,
}

/// A `request-options`.
#[derive(Debug, Default)]
pub struct RequestOptions {
    pub(crate) timeouts: RequestTimeouts,
}

/// An `incoming-response` from an upstream.
#[derive(Debug)]
pub struct IncomingResponse {
    pub(crate) status: http::StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<HostBody>,
}

/// A `future-incoming-response`: an outgoing request in flight.
#[derive(Debug)]
pub struct FutureIncomingResponse {
    pub(crate) state: FutureResponseState,
}

#[derive(Debug)]
pub(crate) enum FutureResponseState {
    Pending(JoinHandle<Result<http::Response<HostBody>, ErrorCode>>),
    Ready(Result<http::Response<HostBody>, ErrorCode>),
    Taken,
}

impl Drop for FutureIncomingResponse {
    fn drop(&mut self) {
        // The guest lost interest: stop the request rather than let it run on.
        if let FutureResponseState::Pending(task) = &self.state {
            task.abort();
        }
    }
}

#[async_trait::async_trait]
impl wasmtime_wasi_io::poll::Pollable for FutureIncomingResponse {
    async fn ready(&mut self) {
        if let FutureResponseState::Pending(task) = &mut self.state {
            let result = match task.await {
                Ok(result) => result,
                Err(join) => Err(ErrorCode::internal(format!(
                    "outgoing request task failed: {join}"
                ))),
            };
            self.state = FutureResponseState::Ready(result);
        }
    }
}
