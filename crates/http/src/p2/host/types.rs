//! `wasi:http/types@0.2`.

use http::HeaderMap;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable};

use crate::body::BodyKind;
use crate::ctx::HttpCtxView;
use crate::error::ErrorCode;
use crate::fields::FieldMap;
use crate::p2::bindings::http::types::{self as wit, Duration, StatusCode};
use crate::p2::body::{FutureTrailers, IncomingBody, OutgoingBody};
use crate::p2::conv;
use crate::p2::types::{
    BodySlot, FutureIncomingResponse, FutureResponseState, IncomingRequest, IncomingResponse,
    OutgoingRequest, OutgoingResponse, RequestOptions, ResponseOutparam,
};
use crate::p2::{FieldsError, HttpError, HttpResult};

type Fields = FieldMap;

impl HttpCtxView<'_> {
    /// `consume` for requests and responses: the body once, then `Err(())`.
    fn push_incoming_body(
        &mut self,
        body: Option<crate::HostBody>,
    ) -> wasmtime::Result<Result<Resource<IncomingBody>, ()>> {
        match body {
            Some(body) => Ok(Ok(self.table.push(IncomingBody::new(body))?)),
            None => Ok(Err(())),
        }
    }

    fn push_immutable_child<T: 'static>(
        &mut self,
        map: HeaderMap,
        parent: &Resource<T>,
    ) -> wasmtime::Result<Resource<Fields>> {
        // A copy per call: charged, so a guest calling `headers()` in a loop
        // is bounded by its memory limit (a trap past it).
        let fields = FieldMap::new_immutable(map).charged(&self.ctx.memory)?;
        Ok(self.table.push_child(fields, parent)?)
    }
}

impl wit::Host for HttpCtxView<'_> {
    fn convert_error_code(&mut self, err: HttpError) -> wasmtime::Result<wit::ErrorCode> {
        match err {
            HttpError::Code(code) => Ok(conv::error_code_to_wit(code)),
            HttpError::Trap(trap) => Err(trap),
        }
    }

    fn convert_header_error(&mut self, err: FieldsError) -> wasmtime::Result<wit::HeaderError> {
        match err {
            FieldsError::Header(e) => conv::header_error_to_wit(e).ok_or_else(|| {
                // 0.2 has no size case: trap with a readable message.
                wasmtime::format_err!("{e}")
            }),
            FieldsError::Trap(trap) => Err(trap),
        }
    }

    fn http_error_code(
        &mut self,
        err: Resource<wit::IoError>,
    ) -> wasmtime::Result<Option<wit::ErrorCode>> {
        let err = self.table.get(&err)?;
        Ok(err
            .downcast_ref::<ErrorCode>()
            .cloned()
            .map(conv::error_code_to_wit))
    }
}

impl wit::HostFields for HttpCtxView<'_> {
    crate::fields::shared_fields_methods!();

    fn entries(&mut self, fields: Resource<Fields>) -> wasmtime::Result<Vec<(String, Vec<u8>)>> {
        Ok(self.table.get(&fields)?.entries())
    }
}

impl wit::HostIncomingRequest for HttpCtxView<'_> {
    fn method(&mut self, req: Resource<IncomingRequest>) -> wasmtime::Result<wit::Method> {
        Ok(conv::method_to_wit(&self.table.get(&req)?.method))
    }

    fn path_with_query(
        &mut self,
        req: Resource<IncomingRequest>,
    ) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&req)?.path_with_query.clone())
    }

    fn scheme(&mut self, req: Resource<IncomingRequest>) -> wasmtime::Result<Option<wit::Scheme>> {
        Ok(self
            .table
            .get(&req)?
            .scheme
            .as_ref()
            .map(conv::scheme_to_wit))
    }

    fn authority(&mut self, req: Resource<IncomingRequest>) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&req)?.authority.clone())
    }

    fn headers(&mut self, req: Resource<IncomingRequest>) -> wasmtime::Result<Resource<Fields>> {
        let map = self.table.get(&req)?.headers.clone();
        self.push_immutable_child(map, &req)
    }

    fn consume(
        &mut self,
        req: Resource<IncomingRequest>,
    ) -> wasmtime::Result<Result<Resource<IncomingBody>, ()>> {
        let body = self.table.get_mut(&req)?.body.take();
        self.push_incoming_body(body)
    }

    fn drop(&mut self, req: Resource<IncomingRequest>) -> wasmtime::Result<()> {
        self.table.delete(req)?;
        Ok(())
    }
}

impl wit::HostOutgoingRequest for HttpCtxView<'_> {
    fn new(&mut self, headers: Resource<Fields>) -> wasmtime::Result<Resource<OutgoingRequest>> {
        let (headers, held) = self.take_fields_held(headers)?;
        Ok(self.table.push(OutgoingRequest {
            method: http::Method::GET,
            scheme: None,
            authority: None,
            path_with_query: None,
            headers,
            body: BodySlot::NotRequested,
            _held: held,
        })?)
    }

    fn body(
        &mut self,
        req: Resource<OutgoingRequest>,
    ) -> wasmtime::Result<Result<Resource<OutgoingBody>, ()>> {
        let req = self.table.get_mut(&req)?;
        match req
            .body
            .request(&req.headers, BodyKind::Request, &self.ctx.memory)
        {
            Some(body) => Ok(Ok(self.table.push(body)?)),
            None => Ok(Err(())),
        }
    }

    fn method(&mut self, req: Resource<OutgoingRequest>) -> wasmtime::Result<wit::Method> {
        Ok(conv::method_to_wit(&self.table.get(&req)?.method))
    }

    fn set_method(
        &mut self,
        req: Resource<OutgoingRequest>,
        method: wit::Method,
    ) -> wasmtime::Result<Result<(), ()>> {
        let Some(method) = conv::method_from_wit(&method) else {
            return Ok(Err(()));
        };
        self.table.get_mut(&req)?.method = method;
        Ok(Ok(()))
    }

    fn path_with_query(
        &mut self,
        req: Resource<OutgoingRequest>,
    ) -> wasmtime::Result<Option<String>> {
        let req = self.table.get(&req)?;
        Ok(req.path_with_query.as_ref().map(|p| p.as_str().to_owned()))
    }

    fn set_path_with_query(
        &mut self,
        req: Resource<OutgoingRequest>,
        path: Option<String>,
    ) -> wasmtime::Result<Result<(), ()>> {
        let Some(parsed) =
            crate::uri::parse_optional(path.as_deref(), crate::uri::parse_path_with_query)
        else {
            return Ok(Err(()));
        };
        self.table.get_mut(&req)?.path_with_query = parsed;
        Ok(Ok(()))
    }

    fn scheme(&mut self, req: Resource<OutgoingRequest>) -> wasmtime::Result<Option<wit::Scheme>> {
        Ok(self
            .table
            .get(&req)?
            .scheme
            .as_ref()
            .map(conv::scheme_to_wit))
    }

    fn set_scheme(
        &mut self,
        req: Resource<OutgoingRequest>,
        scheme: Option<wit::Scheme>,
    ) -> wasmtime::Result<Result<(), ()>> {
        let Some(parsed) = crate::uri::parse_optional(scheme.as_ref(), conv::scheme_from_wit)
        else {
            return Ok(Err(()));
        };
        self.table.get_mut(&req)?.scheme = parsed;
        Ok(Ok(()))
    }

    fn authority(&mut self, req: Resource<OutgoingRequest>) -> wasmtime::Result<Option<String>> {
        let req = self.table.get(&req)?;
        Ok(req.authority.as_ref().map(|a| a.as_str().to_owned()))
    }

    fn set_authority(
        &mut self,
        req: Resource<OutgoingRequest>,
        authority: Option<String>,
    ) -> wasmtime::Result<Result<(), ()>> {
        let Some(parsed) =
            crate::uri::parse_optional(authority.as_deref(), crate::uri::parse_guest_authority)
        else {
            return Ok(Err(()));
        };
        self.table.get_mut(&req)?.authority = parsed;
        Ok(Ok(()))
    }

    fn headers(&mut self, req: Resource<OutgoingRequest>) -> wasmtime::Result<Resource<Fields>> {
        let map = self.table.get(&req)?.headers.clone();
        self.push_immutable_child(map, &req)
    }

    fn drop(&mut self, req: Resource<OutgoingRequest>) -> wasmtime::Result<()> {
        self.table.delete(req)?;
        Ok(())
    }
}

impl wit::HostRequestOptions for HttpCtxView<'_> {
    fn new(&mut self) -> wasmtime::Result<Resource<RequestOptions>> {
        Ok(self.table.push(RequestOptions::default())?)
    }

    fn connect_timeout(
        &mut self,
        opts: Resource<RequestOptions>,
    ) -> wasmtime::Result<Option<Duration>> {
        Ok(self
            .table
            .get(&opts)?
            .timeouts
            .connect
            .map(crate::outbound::nanos))
    }

    fn set_connect_timeout(
        &mut self,
        opts: Resource<RequestOptions>,
        duration: Option<Duration>,
    ) -> wasmtime::Result<Result<(), ()>> {
        self.table.get_mut(&opts)?.timeouts.connect = duration.map(std::time::Duration::from_nanos);
        Ok(Ok(()))
    }

    fn first_byte_timeout(
        &mut self,
        opts: Resource<RequestOptions>,
    ) -> wasmtime::Result<Option<Duration>> {
        Ok(self
            .table
            .get(&opts)?
            .timeouts
            .first_byte
            .map(crate::outbound::nanos))
    }

    fn set_first_byte_timeout(
        &mut self,
        opts: Resource<RequestOptions>,
        duration: Option<Duration>,
    ) -> wasmtime::Result<Result<(), ()>> {
        self.table.get_mut(&opts)?.timeouts.first_byte =
            duration.map(std::time::Duration::from_nanos);
        Ok(Ok(()))
    }

    fn between_bytes_timeout(
        &mut self,
        opts: Resource<RequestOptions>,
    ) -> wasmtime::Result<Option<Duration>> {
        Ok(self
            .table
            .get(&opts)?
            .timeouts
            .between_bytes
            .map(crate::outbound::nanos))
    }

    fn set_between_bytes_timeout(
        &mut self,
        opts: Resource<RequestOptions>,
        duration: Option<Duration>,
    ) -> wasmtime::Result<Result<(), ()>> {
        self.table.get_mut(&opts)?.timeouts.between_bytes =
            duration.map(std::time::Duration::from_nanos);
        Ok(Ok(()))
    }

    fn drop(&mut self, opts: Resource<RequestOptions>) -> wasmtime::Result<()> {
        self.table.delete(opts)?;
        Ok(())
    }
}

impl wit::HostResponseOutparam for HttpCtxView<'_> {
    fn send_informational(
        &mut self,
        _param: Resource<ResponseOutparam>,
        status: u16,
        headers: Resource<Fields>,
    ) -> HttpResult<()> {
        self.table.delete(headers)?;
        Err(HttpError::Code(ErrorCode::internal(format!(
            "send-informational ({status}) is not supported by this host"
        ))))
    }

    fn set(
        &mut self,
        param: Resource<ResponseOutparam>,
        response: Result<Resource<OutgoingResponse>, wit::ErrorCode>,
    ) -> wasmtime::Result<()> {
        let mut param = self.table.delete(param)?;
        let result = match response {
            Ok(resp) => {
                let mut resp = self.table.delete(resp)?;
                finish_response(&mut resp)
            }
            Err(code) => Err(conv::error_code_from_wit(code)),
        };
        if let Some(sender) = param.sender.take() {
            // The front-end may have given up (deadline, client gone).
            let _ = sender.send(result);
        }
        Ok(())
    }

    fn drop(&mut self, param: Resource<ResponseOutparam>) -> wasmtime::Result<()> {
        self.table.delete(param)?;
        Ok(())
    }
}

/// Turns a guest's outgoing-response into the `http::Response` the
/// front-end sends, refusing what must never reach a client.
fn finish_response(
    resp: &mut OutgoingResponse,
) -> Result<http::Response<crate::body::GuestBody>, ErrorCode> {
    if resp.status.is_informational() {
        return Err(ErrorCode::internal(format!(
            "informational status {} cannot be a final response",
            resp.status.as_u16()
        )));
    }
    crate::body::content_length(&resp.headers)?;
    let mut response = http::Response::new(resp.body.take_body());
    *response.status_mut() = resp.status;
    *response.headers_mut() = std::mem::take(&mut resp.headers);
    Ok(response)
}

impl wit::HostIncomingResponse for HttpCtxView<'_> {
    fn status(&mut self, resp: Resource<IncomingResponse>) -> wasmtime::Result<StatusCode> {
        Ok(self.table.get(&resp)?.status.as_u16())
    }

    fn headers(&mut self, resp: Resource<IncomingResponse>) -> wasmtime::Result<Resource<Fields>> {
        let map = self.table.get(&resp)?.headers.clone();
        self.push_immutable_child(map, &resp)
    }

    fn consume(
        &mut self,
        resp: Resource<IncomingResponse>,
    ) -> wasmtime::Result<Result<Resource<IncomingBody>, ()>> {
        let body = self.table.get_mut(&resp)?.body.take();
        self.push_incoming_body(body)
    }

    fn drop(&mut self, resp: Resource<IncomingResponse>) -> wasmtime::Result<()> {
        self.table.delete(resp)?;
        Ok(())
    }
}

impl wit::HostFutureTrailers for HttpCtxView<'_> {
    fn subscribe(
        &mut self,
        this: Resource<FutureTrailers>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, this)
    }

    #[allow(clippy::type_complexity, reason = "the WIT signature")]
    fn get(
        &mut self,
        this: Resource<FutureTrailers>,
    ) -> wasmtime::Result<Option<Result<Result<Option<Resource<Fields>>, wit::ErrorCode>, ()>>>
    {
        let polled = self.table.get_mut(&this)?.poll_now();
        Ok(match polled {
            None => None,
            Some(Err(())) => Some(Err(())),
            Some(Ok(Err(code))) => Some(Ok(Err(conv::error_code_to_wit(code)))),
            Some(Ok(Ok(None))) => Some(Ok(Ok(None))),
            Some(Ok(Ok(Some(trailers)))) => {
                Some(Ok(Ok(Some(self.push_immutable_child(trailers, &this)?))))
            }
        })
    }

    fn drop(&mut self, this: Resource<FutureTrailers>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl wit::HostIncomingBody for HttpCtxView<'_> {
    fn stream(
        &mut self,
        this: Resource<IncomingBody>,
    ) -> wasmtime::Result<Result<Resource<DynInputStream>, ()>> {
        match self.table.get_mut(&this)?.take_stream() {
            Some(stream) => {
                let stream: DynInputStream = Box::new(stream);
                Ok(Ok(self.table.push_child(stream, &this)?))
            }
            None => Ok(Err(())),
        }
    }

    fn finish(
        &mut self,
        this: Resource<IncomingBody>,
    ) -> wasmtime::Result<Resource<FutureTrailers>> {
        let body = self.table.delete(this)?;
        Ok(self.table.push(body.into_trailers())?)
    }

    fn drop(&mut self, this: Resource<IncomingBody>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl wit::HostOutgoingResponse for HttpCtxView<'_> {
    fn new(&mut self, headers: Resource<Fields>) -> wasmtime::Result<Resource<OutgoingResponse>> {
        let (headers, held) = self.take_fields_held(headers)?;
        Ok(self.table.push(OutgoingResponse {
            status: http::StatusCode::OK,
            headers,
            body: BodySlot::NotRequested,
            _held: held,
        })?)
    }

    fn status_code(&mut self, resp: Resource<OutgoingResponse>) -> wasmtime::Result<StatusCode> {
        Ok(self.table.get(&resp)?.status.as_u16())
    }

    fn set_status_code(
        &mut self,
        resp: Resource<OutgoingResponse>,
        status: StatusCode,
    ) -> wasmtime::Result<Result<(), ()>> {
        if !(100..=599).contains(&status) {
            return Ok(Err(()));
        }
        match http::StatusCode::from_u16(status) {
            Ok(status) => {
                self.table.get_mut(&resp)?.status = status;
                Ok(Ok(()))
            }
            Err(_) => Ok(Err(())),
        }
    }

    fn headers(&mut self, resp: Resource<OutgoingResponse>) -> wasmtime::Result<Resource<Fields>> {
        let map = self.table.get(&resp)?.headers.clone();
        self.push_immutable_child(map, &resp)
    }

    fn body(
        &mut self,
        resp: Resource<OutgoingResponse>,
    ) -> wasmtime::Result<Result<Resource<OutgoingBody>, ()>> {
        let resp = self.table.get_mut(&resp)?;
        match resp
            .body
            .request(&resp.headers, BodyKind::Response, &self.ctx.memory)
        {
            Some(body) => Ok(Ok(self.table.push(body)?)),
            None => Ok(Err(())),
        }
    }

    fn drop(&mut self, resp: Resource<OutgoingResponse>) -> wasmtime::Result<()> {
        self.table.delete(resp)?;
        Ok(())
    }
}

impl wit::HostOutgoingBody for HttpCtxView<'_> {
    fn write(
        &mut self,
        this: Resource<OutgoingBody>,
    ) -> wasmtime::Result<Result<Resource<DynOutputStream>, ()>> {
        match self.table.get_mut(&this)?.take_stream() {
            Some(stream) => {
                let stream: DynOutputStream = Box::new(stream);
                Ok(Ok(self.table.push_child(stream, &this)?))
            }
            None => Ok(Err(())),
        }
    }

    fn finish(
        &mut self,
        this: Resource<OutgoingBody>,
        trailers: Option<Resource<Fields>>,
    ) -> HttpResult<()> {
        let body = self.table.delete(this)?;
        let trailers = match trailers {
            Some(t) => Some(self.take_fields_for_sending(t)?),
            None => None,
        };
        let writer = body
            .into_writer()
            .ok_or_else(|| HttpError::Trap(wasmtime::format_err!("outgoing-body stream lost")))?;
        writer.finish(trailers)?;
        Ok(())
    }

    fn drop(&mut self, this: Resource<OutgoingBody>) -> wasmtime::Result<()> {
        // Dropping without `finish` aborts the body (see crate::body).
        self.table.delete(this)?;
        Ok(())
    }
}

impl wit::HostFutureIncomingResponse for HttpCtxView<'_> {
    fn subscribe(
        &mut self,
        this: Resource<FutureIncomingResponse>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, this)
    }

    #[allow(clippy::type_complexity, reason = "the WIT signature")]
    fn get(
        &mut self,
        this: Resource<FutureIncomingResponse>,
    ) -> wasmtime::Result<Option<Result<Result<Resource<IncomingResponse>, wit::ErrorCode>, ()>>>
    {
        use futures::FutureExt;
        let future = self.table.get_mut(&this)?;
        if let FutureResponseState::Pending(task) = &mut future.state {
            match task.now_or_never() {
                None => return Ok(None),
                Some(joined) => {
                    future.state = FutureResponseState::Ready(joined.unwrap_or_else(|e| {
                        Err(ErrorCode::internal(format!(
                            "outgoing request task failed: {e}"
                        )))
                    }))
                }
            }
        }
        match std::mem::replace(&mut future.state, FutureResponseState::Taken) {
            FutureResponseState::Ready(Ok(response)) => {
                let (parts, body) = response.into_parts();
                let resp = IncomingResponse {
                    status: parts.status,
                    headers: crate::fields::hide_forbidden(parts.headers),
                    body: Some(body),
                };
                Ok(Some(Ok(Ok(self.table.push(resp)?))))
            }
            FutureResponseState::Ready(Err(code)) => {
                Ok(Some(Ok(Err(conv::error_code_to_wit(code)))))
            }
            FutureResponseState::Pending(_) | FutureResponseState::Taken => Ok(Some(Err(()))),
        }
    }

    fn drop(&mut self, this: Resource<FutureIncomingResponse>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}
