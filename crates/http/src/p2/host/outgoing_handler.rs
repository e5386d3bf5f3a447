//! `wasi:http/outgoing-handler@0.2`: validate, then hand to the outbound seam.

use http::uri::{Scheme, Uri};
use http_body_util::BodyExt;
use wasmtime::component::Resource;

use crate::ctx::HttpCtxView;
use crate::error::ErrorCode;
use crate::p2::bindings::http::outgoing_handler;
use crate::p2::types::{
    FutureIncomingResponse, FutureResponseState, InFlight, OutgoingRequest, RequestOptions,
};
use crate::p2::{HttpError, HttpResult};

impl outgoing_handler::Host for HttpCtxView<'_> {
    fn handle(
        &mut self,
        request: Resource<OutgoingRequest>,
        options: Option<Resource<RequestOptions>>,
    ) -> HttpResult<Resource<FutureIncomingResponse>> {
        let mut request = self.table.delete(request)?;
        let timeouts = match options {
            Some(opts) => self.table.delete(opts)?.timeouts,
            None => Default::default(),
        };
        let request = into_http_request(&mut request)?;
        let Some(client) = self.ctx.outbound.clone() else {
            tracing::info!(
                uri = %request.uri(),
                "outgoing request denied: no outbound access is configured for this app"
            );
            return Err(HttpError::Code(ErrorCode::HttpRequestDenied));
        };
        let ctx = &mut *self.ctx;
        if ctx.outgoing_sent >= ctx.max_outgoing_requests {
            tracing::info!(
                limit = ctx.max_outgoing_requests,
                "outgoing request refused: per-request total reached"
            );
            return Err(HttpError::Code(ErrorCode::ConnectionLimitReached));
        }
        let in_flight = InFlight::try_new(&ctx.outgoing_in_flight, ctx.max_concurrent_outgoing)
            .ok_or(HttpError::Code(ErrorCode::ConnectionLimitReached))?;
        ctx.outgoing_sent += 1;
        let task = tokio::spawn(client.send(request, timeouts));
        Ok(self.table.push(FutureIncomingResponse {
            state: FutureResponseState::Pending(task),
            in_flight: Some(in_flight),
        })?)
    }
}

/// Builds the request the client sends, rejecting what cannot be sent
/// before any connection is attempted.
fn into_http_request(
    request: &mut OutgoingRequest,
) -> Result<http::Request<crate::body::HostBody>, ErrorCode> {
    let scheme = request.scheme.clone().unwrap_or(Scheme::HTTPS);
    if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
        return Err(ErrorCode::HttpProtocolError);
    }
    let authority = request
        .authority
        .clone()
        .ok_or(ErrorCode::HttpRequestUriInvalid)?;
    if request.method == http::Method::CONNECT {
        return Err(ErrorCode::HttpRequestMethodInvalid);
    }
    crate::body::content_length(&request.headers)
        .map_err(|_| ErrorCode::HttpRequestBodySize(None))?;
    let path = request
        .path_with_query
        .clone()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    let uri = Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
    let body = request.body.take_body().boxed();
    let mut out = http::Request::new(body);
    *out.method_mut() = request.method.clone();
    *out.uri_mut() = uri;
    *out.headers_mut() = std::mem::take(&mut request.headers);
    Ok(out)
}
