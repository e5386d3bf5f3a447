//! `wasi:http/client@0.3.0`: validate, then hand to the outbound seam (the
//! same client, egress policy, caps and error codes as 0.2's
//! `outgoing-handler`).

use wasmtime::AsContextMut;
use wasmtime::component::{Accessor, Resource};

use crate::body::{BodyKind, host_body};
use crate::ctx::{Http, HttpCtxView};
use crate::error::{ErrorCode, HttpError, HttpResult};
use crate::outbound::OutgoingParts;
use crate::p3::bindings::http::client;
use crate::p3::body::Body;
use crate::p3::types::{Request, Response};

impl client::Host for HttpCtxView<'_> {}

impl<T: Send + 'static> client::HostWithStore<T> for Http {
    async fn send(
        store: &Accessor<T, Self>,
        request: Resource<Request>,
    ) -> HttpResult<Resource<Response>> {
        let getter = store.getter();
        let sending = store.with(|mut access| -> HttpResult<_> {
            // The request this call works for: the root of its task tree.
            let task = access
                .as_context_mut()
                .async_call_stack()
                .ok()
                .and_then(|stack| stack.last());
            let request = access.get().table.delete(request)?;
            let Request {
                method,
                scheme,
                authority,
                path_with_query,
                headers,
                options,
                body,
                held: _,
            } = request;
            let parts = OutgoingParts {
                method,
                scheme,
                authority,
                path_with_query,
                headers,
            };
            let content_length = crate::body::content_length(&parts.headers)
                .map_err(|_| ErrorCode::HttpRequestBodySize(None))?;
            // Check the head before wiring the body, so a refused request
            // never reports its body as sent.
            let probe = parts.into_request(crate::body::empty_host_body())?;
            let timeouts = options.unwrap_or_default();
            let (client, slot) = access
                .get()
                .ctx
                .admit_outgoing(task, probe.uri(), &timeouts)
                .map_err(HttpError::Code)?;
            let (body, _abort) =
                body.into_guest_body(&mut access, getter, content_length, BodyKind::Request)?;
            let request = probe.map(|_| host_body(body));
            Ok((client, request, timeouts, slot))
        })?;
        let (client, request, timeouts, slot) = sending;
        // Wait for a slot under the concurrency cap; hold it until the head.
        let permit = slot.acquire().await.map_err(HttpError::Code)?;
        let response = client
            .send(request, timeouts)
            .await
            .map_err(HttpError::Code)?;
        drop(permit);
        let (parts, body) = response.into_parts();
        store.with(|mut access| {
            let response = Response {
                status: parts.status,
                headers: crate::fields::hide_forbidden(parts.headers),
                body: Body::Host {
                    body,
                    delivered: None,
                },
                held: crate::memory::Charge::none(),
            };
            Ok(access.get().table.push(response)?)
        })
    }
}
