//! `wasi:http/outgoing-handler@0.2`: validate, queue under the per-invocation
//! concurrency cap, then hand to the outbound seam.

use http_body_util::BodyExt;
use wasmtime::component::Resource;

use crate::ctx::HttpCtxView;
use crate::error::HttpError;
use crate::outbound::OutgoingParts;
use crate::p2::HttpResult;
use crate::p2::bindings::http::outgoing_handler;
use crate::p2::types::{
    FutureIncomingResponse, FutureResponseState, OutgoingRequest, RequestOptions,
};

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
        let parts = OutgoingParts {
            method: request.method.clone(),
            scheme: request.scheme.clone(),
            authority: request.authority.clone(),
            path_with_query: request.path_with_query.clone(),
            headers: std::mem::take(&mut request.headers),
        };
        let request = parts.into_request(request.body.take_body().boxed())?;
        let (client, slot) = self
            .ctx
            .admit_outgoing(None, request.uri(), &timeouts)
            .map_err(HttpError::Code)?;
        // The slot is held until the response head arrives (or the guest
        // drops the future, which aborts the task).
        // In the caller's span and request scope, so the request is traced
        // as part of the guest call that sent it, and logged as its request's.
        let task = tokio::spawn(crate::log_scope::in_current(async move {
            let _slot = slot.acquire().await?;
            client.send(request, timeouts).await
        }));
        Ok(self.table.push(FutureIncomingResponse {
            state: FutureResponseState::Pending(task),
        })?)
    }
}
