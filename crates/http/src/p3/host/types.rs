//! `wasi:http/types@0.3.0`.

use http::HeaderMap;
use wasmtime::component::{Access, FutureReader, Resource, StreamReader};

use crate::body::{BodyKind, GuestBody};
use crate::ctx::{Http, HttpCtxView};
use crate::error::{ErrorCode, FieldsError, HttpError};
use crate::fields::FieldMap;
use crate::p3::bindings::clocks::types::Duration;
use crate::p3::bindings::http::types::{self as wit, StatusCode};
use crate::p3::body::{Body, BodyAbort, TrailersResult};
use crate::p3::conv;
use crate::p3::types::{Request, RequestOptions, Response};
use crate::p3::{OptionsError, OptionsResult};

type Fields = FieldMap;

impl HttpCtxView<'_> {
    fn push_immutable(&mut self, map: HeaderMap) -> wasmtime::Result<Resource<Fields>> {
        // A copy per call: charged, so a guest calling `get-headers` in a
        // loop is bounded by its memory limit (a trap past it).
        let fields = FieldMap::new_immutable(map).charged(&self.ctx.memory)?;
        Ok(self.table.push(fields)?)
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
            FieldsError::Header(e) => Ok(conv::header_error_to_wit(e)),
            FieldsError::Trap(trap) => Err(trap),
        }
    }

    fn convert_request_options_error(
        &mut self,
        err: OptionsError,
    ) -> wasmtime::Result<wit::RequestOptionsError> {
        match err {
            OptionsError::Immutable => Ok(wit::RequestOptionsError::Immutable),
            OptionsError::Trap(trap) => Err(trap),
        }
    }
}

impl wit::HostFields for HttpCtxView<'_> {
    crate::fields::shared_fields_methods!();

    fn get_and_delete(
        &mut self,
        fields: Resource<Fields>,
        name: String,
    ) -> Result<Vec<Vec<u8>>, FieldsError> {
        let fields = self.table.get_mut(&fields)?;
        let values = fields.get(&name);
        fields.delete(&name)?;
        Ok(values)
    }

    fn copy_all(&mut self, fields: Resource<Fields>) -> wasmtime::Result<Vec<(String, Vec<u8>)>> {
        Ok(self.table.get(&fields)?.entries())
    }
}

impl<T: Send + 'static> wit::HostRequestWithStore<T> for Http {
    fn new(
        mut store: Access<'_, T, Self>,
        headers: Resource<Fields>,
        contents: Option<StreamReader<u8>>,
        trailers: FutureReader<TrailersResult>,
        options: Option<Resource<RequestOptions>>,
    ) -> wasmtime::Result<(Resource<Request>, FutureReader<Result<(), wit::ErrorCode>>)> {
        let (body, sent) = Body::new_guest(&mut store, contents, trailers)?;
        let mut view = store.get();
        let (headers, held) = view.take_fields_held(headers)?;
        let options = match options {
            Some(options) => Some(view.table.delete(options)?.timeouts),
            None => None,
        };
        let request = Request {
            method: http::Method::GET,
            scheme: None,
            authority: None,
            path_with_query: None,
            headers,
            options,
            body,
            held,
        };
        Ok((view.table.push(request)?, sent))
    }

    fn consume_body(
        mut store: Access<'_, T, Self>,
        request: Resource<Request>,
        result: FutureReader<Result<(), wit::ErrorCode>>,
    ) -> wasmtime::Result<(StreamReader<u8>, FutureReader<TrailersResult>)> {
        let getter = store.getter();
        let request = store.get().table.delete(request)?;
        request.body.consume(&mut store, result, getter)
    }

    fn drop(mut store: Access<'_, T, Self>, request: Resource<Request>) -> wasmtime::Result<()> {
        let request = store.get().table.delete(request)?;
        request.body.discard(&mut store)
    }
}

impl wit::HostRequest for HttpCtxView<'_> {
    fn get_method(&mut self, req: Resource<Request>) -> wasmtime::Result<wit::Method> {
        Ok(conv::method_to_wit(&self.table.get(&req)?.method))
    }

    fn set_method(
        &mut self,
        req: Resource<Request>,
        method: wit::Method,
    ) -> wasmtime::Result<Result<(), ()>> {
        let Some(method) = conv::method_from_wit(&method) else {
            return Ok(Err(()));
        };
        self.table.get_mut(&req)?.method = method;
        Ok(Ok(()))
    }

    fn get_path_with_query(&mut self, req: Resource<Request>) -> wasmtime::Result<Option<String>> {
        let req = self.table.get(&req)?;
        Ok(req.path_with_query.as_ref().map(|p| p.as_str().to_owned()))
    }

    fn set_path_with_query(
        &mut self,
        req: Resource<Request>,
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

    fn get_scheme(&mut self, req: Resource<Request>) -> wasmtime::Result<Option<wit::Scheme>> {
        let req = self.table.get(&req)?;
        Ok(req.scheme.as_ref().map(conv::scheme_to_wit))
    }

    fn set_scheme(
        &mut self,
        req: Resource<Request>,
        scheme: Option<wit::Scheme>,
    ) -> wasmtime::Result<Result<(), ()>> {
        let Some(parsed) = crate::uri::parse_optional(scheme.as_ref(), conv::scheme_from_wit)
        else {
            return Ok(Err(()));
        };
        self.table.get_mut(&req)?.scheme = parsed;
        Ok(Ok(()))
    }

    fn get_authority(&mut self, req: Resource<Request>) -> wasmtime::Result<Option<String>> {
        let req = self.table.get(&req)?;
        Ok(req.authority.as_ref().map(|a| a.as_str().to_owned()))
    }

    fn set_authority(
        &mut self,
        req: Resource<Request>,
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

    fn get_options(
        &mut self,
        req: Resource<Request>,
    ) -> wasmtime::Result<Option<Resource<RequestOptions>>> {
        let Some(timeouts) = self.table.get(&req)?.options else {
            return Ok(None);
        };
        let view = RequestOptions {
            timeouts,
            mutable: false,
        };
        Ok(Some(self.table.push(view)?))
    }

    fn get_headers(&mut self, req: Resource<Request>) -> wasmtime::Result<Resource<Fields>> {
        let map = self.table.get(&req)?.headers.clone();
        self.push_immutable(map)
    }
}

impl HttpCtxView<'_> {
    fn options_mut(
        &mut self,
        opts: &Resource<RequestOptions>,
    ) -> OptionsResult<&mut crate::outbound::RequestTimeouts> {
        let opts = self.table.get_mut(opts)?;
        if !opts.mutable {
            return Err(OptionsError::Immutable);
        }
        Ok(&mut opts.timeouts)
    }
}

impl wit::HostRequestOptions for HttpCtxView<'_> {
    fn new(&mut self) -> wasmtime::Result<Resource<RequestOptions>> {
        let opts = RequestOptions {
            mutable: true,
            ..Default::default()
        };
        Ok(self.table.push(opts)?)
    }

    fn get_connect_timeout(
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
    ) -> OptionsResult<()> {
        self.options_mut(&opts)?.connect = duration.map(std::time::Duration::from_nanos);
        Ok(())
    }

    fn get_first_byte_timeout(
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
    ) -> OptionsResult<()> {
        self.options_mut(&opts)?.first_byte = duration.map(std::time::Duration::from_nanos);
        Ok(())
    }

    fn get_between_bytes_timeout(
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
    ) -> OptionsResult<()> {
        self.options_mut(&opts)?.between_bytes = duration.map(std::time::Duration::from_nanos);
        Ok(())
    }

    fn clone(
        &mut self,
        opts: Resource<RequestOptions>,
    ) -> wasmtime::Result<Resource<RequestOptions>> {
        let copy = RequestOptions {
            timeouts: self.table.get(&opts)?.timeouts,
            mutable: true,
        };
        Ok(self.table.push(copy)?)
    }

    fn drop(&mut self, opts: Resource<RequestOptions>) -> wasmtime::Result<()> {
        self.table.delete(opts)?;
        Ok(())
    }
}

impl<T: Send + 'static> wit::HostResponseWithStore<T> for Http {
    fn new(
        mut store: Access<'_, T, Self>,
        headers: Resource<Fields>,
        contents: Option<StreamReader<u8>>,
        trailers: FutureReader<TrailersResult>,
    ) -> wasmtime::Result<(Resource<Response>, FutureReader<Result<(), wit::ErrorCode>>)> {
        let (body, sent) = Body::new_guest(&mut store, contents, trailers)?;
        let mut view = store.get();
        let (headers, held) = view.take_fields_held(headers)?;
        let response = Response {
            status: http::StatusCode::OK,
            headers,
            body,
            held,
        };
        Ok((view.table.push(response)?, sent))
    }

    fn consume_body(
        mut store: Access<'_, T, Self>,
        response: Resource<Response>,
        result: FutureReader<Result<(), wit::ErrorCode>>,
    ) -> wasmtime::Result<(StreamReader<u8>, FutureReader<TrailersResult>)> {
        let getter = store.getter();
        let response = store.get().table.delete(response)?;
        response.body.consume(&mut store, result, getter)
    }

    fn drop(mut store: Access<'_, T, Self>, response: Resource<Response>) -> wasmtime::Result<()> {
        let response = store.get().table.delete(response)?;
        response.body.discard(&mut store)
    }
}

impl wit::HostResponse for HttpCtxView<'_> {
    fn get_status_code(&mut self, res: Resource<Response>) -> wasmtime::Result<StatusCode> {
        Ok(self.table.get(&res)?.status.as_u16())
    }

    fn set_status_code(
        &mut self,
        res: Resource<Response>,
        status: StatusCode,
    ) -> wasmtime::Result<Result<(), ()>> {
        match http::StatusCode::from_u16(status) {
            Ok(code) if (100..=599).contains(&status) => {
                self.table.get_mut(&res)?.status = code;
                Ok(Ok(()))
            }
            _ => Ok(Err(())),
        }
    }

    fn get_headers(&mut self, res: Resource<Response>) -> wasmtime::Result<Resource<Fields>> {
        let map = self.table.get(&res)?.headers.clone();
        self.push_immutable(map)
    }
}

impl Response {
    /// Converts a guest's response for hyper: a 1xx status becomes a 500
    /// (a guest never produces `101`), `Content-Length` is checked and then
    /// enforced on the body.
    pub fn into_http<S>(
        self,
        store: S,
        getter: crate::p3::body::Getter<S::Data>,
    ) -> wasmtime::Result<Result<(http::Response<GuestBody>, BodyAbort), ErrorCode>>
    where
        S: wasmtime::AsContextMut,
        S::Data: Send + 'static,
    {
        let content_length = match crate::body::content_length(&self.headers) {
            Ok(n) => n,
            Err(err) => {
                self.body.discard(store)?;
                return Ok(Err(err));
            }
        };
        if self.status.is_informational() {
            self.body.discard(store)?;
            return Ok(Err(ErrorCode::internal(format!(
                "the guest returned an informational status ({}) as its final response",
                self.status
            ))));
        }
        let (body, abort) =
            self.body
                .into_guest_body(store, getter, content_length, BodyKind::Response)?;
        let mut response = http::Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        Ok(Ok((response, abort)))
    }
}
