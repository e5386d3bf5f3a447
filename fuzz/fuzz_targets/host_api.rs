//! berth's `wasi:http` host API driven as a state machine from arbitrary
//! call sequences, the way a hostile guest could drive it.
//!
//! Calls go straight to the host trait impls (`HttpCtxView`) on a real
//! `ResourceTable`, with handles chosen from every handle ever returned —
//! so stale, dropped and wrong-type handles are tried as often as good
//! ones. 0.2: fields, incoming requests and their bodies, streams and
//! trailers, outgoing requests/responses/bodies and their streams,
//! request options, `outgoing-handler.handle` (denied: no outbound client),
//! `response-outparam.set` and the front-end's side of the body that
//! results. 0.3: fields (`get-and-delete`, `copy-all`), requests from the
//! network and their getters and setters, responses, request options.
//!
//! Oracle: no panic; host bytes charged never exceed the instance's
//! budget; when every handle is dropped (children first) the table is
//! empty and no host bytes stay charged.

#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use arbitrary::Arbitrary;
use berth_http::body::host_body;
use berth_http::memory::HostMemory;
use berth_http::p2::bindings::http::outgoing_handler::Host as _;
use berth_http::p2::bindings::http::types as w2;
use berth_http::p3::bindings::http::types as w3;
use berth_http::{HttpCtx, HttpCtxView};
use bytes::Bytes;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

/// The instance's memory budget for host-side bytes in this harness.
const BUDGET: usize = 256 * 1024;

type H = u8;

#[derive(Debug, Arbitrary)]
enum Op {
    // fields (both versions share the implementation; 0.2 bindings here)
    FieldsNew,
    FieldsFromList(Vec<(Name, Vec<u8>)>),
    FieldsSet(H, Name, Vec<Vec<u8>>),
    FieldsAppend(H, Name, Vec<u8>),
    FieldsDelete(H, Name),
    FieldsGet(H, Name),
    FieldsEntries(H),
    FieldsClone(H),
    // 0.2 incoming side
    IncomingRequest {
        path: String,
        headers: Vec<(Name, Vec<u8>)>,
        chunks: Vec<Vec<u8>>,
        trailers: bool,
    },
    InReqGetters(H),
    InReqHeaders(H),
    InReqConsume(H),
    InBodyStream(H),
    InBodyFinish(H),
    InStreamRead(H, u16),
    InStreamSkip(H, u16),
    InStreamReady(H),
    TrailersGet(H),
    // 0.2 outgoing side
    OutReqNew(H),
    OutReqSet(H, Setter),
    OutReqHeaders(H),
    OutReqBody(H),
    OutRespNew(H),
    OutRespStatus(H, u16),
    OutRespHeaders(H),
    OutRespBody(H),
    OutBodyWrite(H),
    OutBodyFinish(H, Option<H>),
    OutStreamCheckWrite(H),
    OutStreamWrite(H, Vec<u8>),
    OutStreamFlush(H),
    OutStreamReady(H),
    OptionsNew,
    OptionsSet(H, u8, Option<u64>),
    Handle(H, Option<H>),
    OutparamNew,
    OutparamSet(H, Option<H>),
    PullResponses,
    // 0.3
    P3Request {
        method: u8,
        path: String,
        headers: Vec<(Name, Vec<u8>)>,
    },
    P3ReqGetters(H),
    P3ReqSet(H, Setter),
    P3ReqHeaders(H),
    P3ReqOptions(H),
    P3Response(u16, Vec<(Name, Vec<u8>)>),
    P3RespStatus(H, u16),
    P3RespHeaders(H),
    P3FieldsGetAndDelete(H, Name),
    P3FieldsCopyAll(H),
    P3OptionsNew,
    P3OptionsSet(H, u8, Option<u64>),
    P3OptionsClone(H),
    // either
    Drop(H),
}

#[derive(Debug, Arbitrary)]
enum Setter {
    Method(String),
    Path(Option<String>),
    Scheme(Option<String>),
    Authority(Option<String>),
}

#[derive(Debug, Arbitrary)]
enum Name {
    Known(u8),
    Any(String),
}

const KNOWN: &[&str] = &[
    "a",
    "x-test",
    "content-length",
    "host",
    "te",
    "trailer",
    "set-cookie",
    "",
];

impl Name {
    fn text(&self) -> String {
        match self {
            Name::Known(i) => KNOWN[usize::from(*i) % KNOWN.len()].to_owned(),
            Name::Any(s) => s.clone(),
        }
    }
}

/// What a recorded handle was when it was returned.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Fields,
    InReq,
    InBody,
    InStream,
    Trailers,
    OutReq,
    OutResp,
    OutBody,
    OutStream,
    Options,
    Outparam,
    FutureResp,
    P3Req,
    P3Resp,
    P3Options,
}

struct Harness {
    ctx: HttpCtx,
    table: ResourceTable,
    handles: Vec<(Kind, u32)>,
    responses: Vec<
        tokio::sync::oneshot::Receiver<
            Result<http::Response<berth_http::GuestBody>, berth_http::ErrorCode>,
        >,
    >,
    bodies: Vec<berth_http::GuestBody>,
}

fn res<T: 'static>(rep: u32) -> Resource<T> {
    Resource::new_own(rep)
}

/// Polls once; a host future that is not ready now is left alone.
fn poll_once<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

fn method2(text: &str) -> w2::Method {
    match text {
        "GET" => w2::Method::Get,
        "POST" => w2::Method::Post,
        "HEAD" => w2::Method::Head,
        other => w2::Method::Other(other.to_owned()),
    }
}

fn scheme2(text: Option<String>) -> Option<w2::Scheme> {
    text.map(|s| match s.as_str() {
        "http" => w2::Scheme::Http,
        "https" => w2::Scheme::Https,
        _ => w2::Scheme::Other(s),
    })
}

fn method3(text: &str) -> w3::Method {
    match text {
        "GET" => w3::Method::Get,
        "PUT" => w3::Method::Put,
        other => w3::Method::Other(other.to_owned()),
    }
}

fn scheme3(text: Option<String>) -> Option<w3::Scheme> {
    text.map(|s| match s.as_str() {
        "http" => w3::Scheme::Http,
        "https" => w3::Scheme::Https,
        _ => w3::Scheme::Other(s),
    })
}

fn network_request(
    path: &str,
    headers: &[(Name, Vec<u8>)],
    chunks: Vec<Vec<u8>>,
    trailers: bool,
) -> Option<http::Request<berth_http::HostBody>> {
    let mut builder = http::Request::builder().uri(format!("http://example.com{path}"));
    for (name, value) in headers {
        builder = builder.header(name.text(), value.as_slice());
    }
    let frames: Vec<Result<http_body::Frame<Bytes>, berth_http::ErrorCode>> = chunks
        .into_iter()
        .take(8)
        .map(|c| Ok(http_body::Frame::data(Bytes::from(c))))
        .chain(trailers.then(|| {
            let mut map = http::HeaderMap::new();
            map.insert("x-trailer", http::HeaderValue::from_static("1"));
            Ok(http_body::Frame::trailers(map))
        }))
        .collect();
    let body = http_body_util::StreamBody::new(futures_stream(frames));
    builder.body(host_body(body)).ok()
}

/// A body stream from a fixed list of frames.
fn futures_stream<T: Send + Sync + 'static>(
    items: Vec<T>,
) -> impl futures_core::Stream<Item = T> + Send + Sync {
    struct Items<T>(std::vec::IntoIter<T>);
    impl<T> futures_core::Stream for Items<T> {
        type Item = T;
        fn poll_next(mut self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<T>> {
            Poll::Ready(self.0.next())
        }
    }
    impl<T> Unpin for Items<T> {}
    Items(items.into_iter())
}

impl Harness {
    fn new() -> Self {
        let mut ctx = HttpCtx::default();
        ctx.memory = HostMemory::new(BUDGET);
        ctx.fields_size_limit = 16 * 1024;
        Self {
            ctx,
            table: ResourceTable::new(),
            handles: Vec::new(),
            responses: Vec::new(),
            bodies: Vec::new(),
        }
    }

    fn view(&mut self) -> HttpCtxView<'_> {
        HttpCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }

    fn rep(&self, h: H) -> u32 {
        if self.handles.is_empty() {
            // A handle the table never gave out.
            return u32::from(h);
        }
        self.handles[usize::from(h) % self.handles.len()].1
    }

    fn kind(&self, h: H) -> Option<(Kind, u32)> {
        (!self.handles.is_empty()).then(|| self.handles[usize::from(h) % self.handles.len()])
    }

    fn record<T: 'static>(&mut self, kind: Kind, r: Resource<T>) {
        self.handles.push((kind, r.rep()));
    }

    fn drop_handle(&mut self, kind: Kind, rep: u32) {
        let mut v = self.view();
        let _ = match kind {
            Kind::Fields => <HttpCtxView as w2::HostFields>::drop(&mut v, res(rep)),
            Kind::InReq => <HttpCtxView as w2::HostIncomingRequest>::drop(&mut v, res(rep)),
            Kind::InBody => <HttpCtxView as w2::HostIncomingBody>::drop(&mut v, res(rep)),
            Kind::InStream => v
                .table
                .delete::<DynInputStream>(res(rep))
                .map(|_| ())
                .map_err(Into::into),
            Kind::Trailers => <HttpCtxView as w2::HostFutureTrailers>::drop(&mut v, res(rep)),
            Kind::OutReq => <HttpCtxView as w2::HostOutgoingRequest>::drop(&mut v, res(rep)),
            Kind::OutResp => <HttpCtxView as w2::HostOutgoingResponse>::drop(&mut v, res(rep)),
            Kind::OutBody => <HttpCtxView as w2::HostOutgoingBody>::drop(&mut v, res(rep)),
            Kind::OutStream => v
                .table
                .delete::<DynOutputStream>(res(rep))
                .map(|_| ())
                .map_err(Into::into),
            Kind::Options => <HttpCtxView as w2::HostRequestOptions>::drop(&mut v, res(rep)),
            Kind::Outparam => <HttpCtxView as w2::HostResponseOutparam>::drop(&mut v, res(rep)),
            Kind::FutureResp => {
                <HttpCtxView as w2::HostFutureIncomingResponse>::drop(&mut v, res(rep))
            }
            // 0.3's request and response drops need a store (their bodies
            // may hold streams); these hold host bodies only.
            Kind::P3Req => v
                .table
                .delete::<berth_http::p3::types::Request>(res(rep))
                .map(|_| ())
                .map_err(Into::into),
            Kind::P3Resp => v
                .table
                .delete::<berth_http::p3::types::Response>(res(rep))
                .map(|_| ())
                .map_err(Into::into),
            Kind::P3Options => <HttpCtxView as w3::HostRequestOptions>::drop(&mut v, res(rep)),
        };
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::FieldsNew => {
                if let Ok(r) = <HttpCtxView as w2::HostFields>::new(&mut self.view()) {
                    self.record(Kind::Fields, r);
                }
            }
            Op::FieldsFromList(list) => {
                let list = list.into_iter().map(|(n, v)| (n.text(), v)).collect();
                if let Ok(r) = <HttpCtxView as w2::HostFields>::from_list(&mut self.view(), list) {
                    self.record(Kind::Fields, r);
                }
            }
            Op::FieldsSet(h, n, vs) => {
                let r = res(self.rep(h));
                let _ = <HttpCtxView as w2::HostFields>::set(&mut self.view(), r, n.text(), vs);
            }
            Op::FieldsAppend(h, n, v) => {
                let r = res(self.rep(h));
                let _ = <HttpCtxView as w2::HostFields>::append(&mut self.view(), r, n.text(), v);
            }
            Op::FieldsDelete(h, n) => {
                let r = res(self.rep(h));
                let _ = <HttpCtxView as w2::HostFields>::delete(&mut self.view(), r, n.text());
            }
            Op::FieldsGet(h, n) => {
                let r = res(self.rep(h));
                let _ = <HttpCtxView as w2::HostFields>::get(&mut self.view(), r, n.text());
                let r = res(self.rep(h));
                let _ = <HttpCtxView as w2::HostFields>::has(&mut self.view(), r, n.text());
            }
            Op::FieldsEntries(h) => {
                let r = res(self.rep(h));
                let _ = <HttpCtxView as w2::HostFields>::entries(&mut self.view(), r);
            }
            Op::FieldsClone(h) => {
                let r = res(self.rep(h));
                if let Ok(r) = <HttpCtxView as w2::HostFields>::clone(&mut self.view(), r) {
                    self.record(Kind::Fields, r);
                }
            }
            Op::IncomingRequest {
                path,
                headers,
                chunks,
                trailers,
            } => {
                if let Some(req) = network_request(&path, &headers, chunks, trailers) {
                    let req = berth_http::p2::IncomingRequest::from_http(req);
                    if let Ok(r) = self.table.push(req) {
                        self.record(Kind::InReq, r);
                    }
                }
            }
            Op::InReqGetters(h) => {
                let rep = self.rep(h);
                let mut v = self.view();
                let _ = <HttpCtxView as w2::HostIncomingRequest>::method(&mut v, res(rep));
                let _ = <HttpCtxView as w2::HostIncomingRequest>::path_with_query(&mut v, res(rep));
                let _ = <HttpCtxView as w2::HostIncomingRequest>::scheme(&mut v, res(rep));
                let _ = <HttpCtxView as w2::HostIncomingRequest>::authority(&mut v, res(rep));
            }
            Op::InReqHeaders(h) => {
                let r = res(self.rep(h));
                if let Ok(r) =
                    <HttpCtxView as w2::HostIncomingRequest>::headers(&mut self.view(), r)
                {
                    self.record(Kind::Fields, r);
                }
            }
            Op::InReqConsume(h) => {
                let r = res(self.rep(h));
                if let Ok(Ok(r)) =
                    <HttpCtxView as w2::HostIncomingRequest>::consume(&mut self.view(), r)
                {
                    self.record(Kind::InBody, r);
                }
            }
            Op::InBodyStream(h) => {
                let r = res(self.rep(h));
                if let Ok(Ok(r)) =
                    <HttpCtxView as w2::HostIncomingBody>::stream(&mut self.view(), r)
                {
                    self.record(Kind::InStream, r);
                }
            }
            Op::InBodyFinish(h) => {
                let r = res(self.rep(h));
                if let Ok(r) = <HttpCtxView as w2::HostIncomingBody>::finish(&mut self.view(), r) {
                    self.record(Kind::Trailers, r);
                }
            }
            Op::InStreamRead(h, n) => {
                if let Ok(s) = self.table.get_mut::<DynInputStream>(&res(self.rep(h))) {
                    let _ = s.read(usize::from(n));
                }
            }
            Op::InStreamSkip(h, n) => {
                if let Ok(s) = self.table.get_mut::<DynInputStream>(&res(self.rep(h))) {
                    let _ = s.skip(usize::from(n));
                }
            }
            Op::InStreamReady(h) => {
                if let Ok(s) = self.table.get_mut::<DynInputStream>(&res(self.rep(h))) {
                    let _ = poll_once(s.ready());
                }
            }
            Op::TrailersGet(h) => {
                let r = res(self.rep(h));
                if let Ok(Some(Ok(Ok(Some(f))))) =
                    <HttpCtxView as w2::HostFutureTrailers>::get(&mut self.view(), r)
                {
                    self.record(Kind::Fields, f);
                }
            }
            Op::OutReqNew(h) => {
                let r = res(self.rep(h));
                if let Ok(r) = <HttpCtxView as w2::HostOutgoingRequest>::new(&mut self.view(), r) {
                    self.record(Kind::OutReq, r);
                }
            }
            Op::OutReqSet(h, setter) => {
                let rep = self.rep(h);
                let mut v = self.view();
                let _ = match setter {
                    Setter::Method(m) => <HttpCtxView as w2::HostOutgoingRequest>::set_method(
                        &mut v,
                        res(rep),
                        method2(&m),
                    ),
                    Setter::Path(p) => {
                        <HttpCtxView as w2::HostOutgoingRequest>::set_path_with_query(
                            &mut v,
                            res(rep),
                            p,
                        )
                    }
                    Setter::Scheme(s) => <HttpCtxView as w2::HostOutgoingRequest>::set_scheme(
                        &mut v,
                        res(rep),
                        scheme2(s),
                    ),
                    Setter::Authority(a) => {
                        <HttpCtxView as w2::HostOutgoingRequest>::set_authority(&mut v, res(rep), a)
                    }
                };
                let _ = <HttpCtxView as w2::HostOutgoingRequest>::method(&mut v, res(rep));
                let _ = <HttpCtxView as w2::HostOutgoingRequest>::path_with_query(&mut v, res(rep));
                let _ = <HttpCtxView as w2::HostOutgoingRequest>::scheme(&mut v, res(rep));
                let _ = <HttpCtxView as w2::HostOutgoingRequest>::authority(&mut v, res(rep));
            }
            Op::OutReqHeaders(h) => {
                let r = res(self.rep(h));
                if let Ok(r) =
                    <HttpCtxView as w2::HostOutgoingRequest>::headers(&mut self.view(), r)
                {
                    self.record(Kind::Fields, r);
                }
            }
            Op::OutReqBody(h) => {
                let r = res(self.rep(h));
                if let Ok(Ok(r)) =
                    <HttpCtxView as w2::HostOutgoingRequest>::body(&mut self.view(), r)
                {
                    self.record(Kind::OutBody, r);
                }
            }
            Op::OutRespNew(h) => {
                let r = res(self.rep(h));
                if let Ok(r) = <HttpCtxView as w2::HostOutgoingResponse>::new(&mut self.view(), r) {
                    self.record(Kind::OutResp, r);
                }
            }
            Op::OutRespStatus(h, status) => {
                let rep = self.rep(h);
                let mut v = self.view();
                let _ = <HttpCtxView as w2::HostOutgoingResponse>::set_status_code(
                    &mut v,
                    res(rep),
                    status,
                );
                let _ = <HttpCtxView as w2::HostOutgoingResponse>::status_code(&mut v, res(rep));
            }
            Op::OutRespHeaders(h) => {
                let r = res(self.rep(h));
                if let Ok(r) =
                    <HttpCtxView as w2::HostOutgoingResponse>::headers(&mut self.view(), r)
                {
                    self.record(Kind::Fields, r);
                }
            }
            Op::OutRespBody(h) => {
                let r = res(self.rep(h));
                if let Ok(Ok(r)) =
                    <HttpCtxView as w2::HostOutgoingResponse>::body(&mut self.view(), r)
                {
                    self.record(Kind::OutBody, r);
                }
            }
            Op::OutBodyWrite(h) => {
                let r = res(self.rep(h));
                if let Ok(Ok(r)) = <HttpCtxView as w2::HostOutgoingBody>::write(&mut self.view(), r)
                {
                    self.record(Kind::OutStream, r);
                }
            }
            Op::OutBodyFinish(h, trailers) => {
                let r = res(self.rep(h));
                let t = trailers.map(|t| res(self.rep(t)));
                let _ = <HttpCtxView as w2::HostOutgoingBody>::finish(&mut self.view(), r, t);
            }
            Op::OutStreamCheckWrite(h) => {
                if let Ok(s) = self.table.get_mut::<DynOutputStream>(&res(self.rep(h))) {
                    let _ = s.check_write();
                }
            }
            Op::OutStreamWrite(h, bytes) => {
                if let Ok(s) = self.table.get_mut::<DynOutputStream>(&res(self.rep(h))) {
                    let _ = s.write(Bytes::from(bytes));
                }
            }
            Op::OutStreamFlush(h) => {
                if let Ok(s) = self.table.get_mut::<DynOutputStream>(&res(self.rep(h))) {
                    let _ = s.flush();
                }
            }
            Op::OutStreamReady(h) => {
                if let Ok(s) = self.table.get_mut::<DynOutputStream>(&res(self.rep(h))) {
                    let _ = poll_once(s.ready());
                }
            }
            Op::OptionsNew => {
                if let Ok(r) = <HttpCtxView as w2::HostRequestOptions>::new(&mut self.view()) {
                    self.record(Kind::Options, r);
                }
            }
            Op::OptionsSet(h, which, value) => {
                let rep = self.rep(h);
                let mut v = self.view();
                let _ = match which % 3 {
                    0 => <HttpCtxView as w2::HostRequestOptions>::set_connect_timeout(
                        &mut v,
                        res(rep),
                        value,
                    ),
                    1 => <HttpCtxView as w2::HostRequestOptions>::set_first_byte_timeout(
                        &mut v,
                        res(rep),
                        value,
                    ),
                    _ => <HttpCtxView as w2::HostRequestOptions>::set_between_bytes_timeout(
                        &mut v,
                        res(rep),
                        value,
                    ),
                };
                let _ = <HttpCtxView as w2::HostRequestOptions>::connect_timeout(&mut v, res(rep));
            }
            Op::Handle(h, opts) => {
                let r = res(self.rep(h));
                let o = opts.map(|o| res(self.rep(o)));
                if let Ok(f) = self.view().handle(r, o) {
                    self.record(Kind::FutureResp, f);
                }
            }
            Op::OutparamNew => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                if let Ok(r) = self.table.push(berth_http::p2::ResponseOutparam::new(tx)) {
                    self.record(Kind::Outparam, r);
                    self.responses.push(rx);
                }
            }
            Op::OutparamSet(h, resp) => {
                let r = res(self.rep(h));
                let resp = match resp {
                    Some(x) => Ok(res(self.rep(x))),
                    None => Err(w2::ErrorCode::InternalError(Some("fuzz".into()))),
                };
                let _ = <HttpCtxView as w2::HostResponseOutparam>::set(&mut self.view(), r, resp);
            }
            Op::PullResponses => {
                for rx in &mut self.responses {
                    if let Ok(Ok(response)) = rx.try_recv() {
                        self.bodies.push(response.into_body());
                    }
                }
                for body in &mut self.bodies {
                    for _ in 0..4 {
                        if poll_once(body.frame()).is_none() {
                            break;
                        }
                    }
                }
            }
            Op::P3Request {
                method,
                path,
                headers,
            } => {
                if let Some(mut req) = network_request(&path, &headers, Vec::new(), false) {
                    *req.method_mut() =
                        [http::Method::GET, http::Method::POST, http::Method::OPTIONS]
                            [usize::from(method) % 3]
                            .clone();
                    let req = berth_http::p3::types::Request::from_http(req);
                    if let Ok(r) = self.table.push(req) {
                        self.record(Kind::P3Req, r);
                    }
                }
            }
            Op::P3ReqGetters(h) => {
                let rep = self.rep(h);
                let mut v = self.view();
                let _ = <HttpCtxView as w3::HostRequest>::get_method(&mut v, res(rep));
                let _ = <HttpCtxView as w3::HostRequest>::get_path_with_query(&mut v, res(rep));
                let _ = <HttpCtxView as w3::HostRequest>::get_scheme(&mut v, res(rep));
                let _ = <HttpCtxView as w3::HostRequest>::get_authority(&mut v, res(rep));
            }
            Op::P3ReqSet(h, setter) => {
                let rep = self.rep(h);
                let mut v = self.view();
                let _ = match setter {
                    Setter::Method(m) => {
                        <HttpCtxView as w3::HostRequest>::set_method(&mut v, res(rep), method3(&m))
                    }
                    Setter::Path(p) => {
                        <HttpCtxView as w3::HostRequest>::set_path_with_query(&mut v, res(rep), p)
                    }
                    Setter::Scheme(s) => {
                        <HttpCtxView as w3::HostRequest>::set_scheme(&mut v, res(rep), scheme3(s))
                    }
                    Setter::Authority(a) => {
                        <HttpCtxView as w3::HostRequest>::set_authority(&mut v, res(rep), a)
                    }
                };
            }
            Op::P3ReqHeaders(h) => {
                let r = res(self.rep(h));
                if let Ok(r) = <HttpCtxView as w3::HostRequest>::get_headers(&mut self.view(), r) {
                    self.record(Kind::Fields, r);
                }
            }
            Op::P3ReqOptions(h) => {
                let r = res(self.rep(h));
                if let Ok(Some(r)) =
                    <HttpCtxView as w3::HostRequest>::get_options(&mut self.view(), r)
                {
                    self.record(Kind::P3Options, r);
                }
            }
            Op::P3Response(status, headers) => {
                let mut map = http::HeaderMap::new();
                for (n, v) in &headers {
                    if let (Ok(n), Ok(v)) = (
                        http::HeaderName::from_bytes(n.text().as_bytes()),
                        http::HeaderValue::from_bytes(v),
                    ) {
                        map.append(n, v);
                    }
                }
                let response = berth_http::p3::types::Response {
                    status: http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK),
                    headers: map,
                    body: berth_http::p3::body::Body::Host {
                        body: berth_http::body::empty_host_body(),
                        delivered: None,
                    },
                    held: berth_http::memory::Charge::none(),
                };
                if let Ok(r) = self.table.push(response) {
                    self.record(Kind::P3Resp, r);
                }
            }
            Op::P3RespStatus(h, status) => {
                let rep = self.rep(h);
                let mut v = self.view();
                let _ =
                    <HttpCtxView as w3::HostResponse>::set_status_code(&mut v, res(rep), status);
                let _ = <HttpCtxView as w3::HostResponse>::get_status_code(&mut v, res(rep));
            }
            Op::P3RespHeaders(h) => {
                let r = res(self.rep(h));
                if let Ok(r) = <HttpCtxView as w3::HostResponse>::get_headers(&mut self.view(), r) {
                    self.record(Kind::Fields, r);
                }
            }
            Op::P3FieldsGetAndDelete(h, n) => {
                let r = res(self.rep(h));
                let _ =
                    <HttpCtxView as w3::HostFields>::get_and_delete(&mut self.view(), r, n.text());
            }
            Op::P3FieldsCopyAll(h) => {
                let r = res(self.rep(h));
                let _ = <HttpCtxView as w3::HostFields>::copy_all(&mut self.view(), r);
            }
            Op::P3OptionsNew => {
                if let Ok(r) = <HttpCtxView as w3::HostRequestOptions>::new(&mut self.view()) {
                    self.record(Kind::P3Options, r);
                }
            }
            Op::P3OptionsSet(h, which, value) => {
                let rep = self.rep(h);
                let mut v = self.view();
                let _ = match which % 3 {
                    0 => <HttpCtxView as w3::HostRequestOptions>::set_connect_timeout(
                        &mut v,
                        res(rep),
                        value,
                    ),
                    1 => <HttpCtxView as w3::HostRequestOptions>::set_first_byte_timeout(
                        &mut v,
                        res(rep),
                        value,
                    ),
                    _ => <HttpCtxView as w3::HostRequestOptions>::set_between_bytes_timeout(
                        &mut v,
                        res(rep),
                        value,
                    ),
                };
                let _ =
                    <HttpCtxView as w3::HostRequestOptions>::get_connect_timeout(&mut v, res(rep));
            }
            Op::P3OptionsClone(h) => {
                let r = res(self.rep(h));
                if let Ok(r) = <HttpCtxView as w3::HostRequestOptions>::clone(&mut self.view(), r) {
                    self.record(Kind::P3Options, r);
                }
            }
            Op::Drop(h) => {
                if let Some((kind, rep)) = self.kind(h) {
                    self.drop_handle(kind, rep);
                }
            }
        }
        assert!(
            self.ctx.memory.host_bytes() <= BUDGET,
            "host bytes over the budget"
        );
    }

    /// Drops every handle, newest first (children before parents), and
    /// checks nothing is left behind.
    fn finish(mut self) {
        let handles = std::mem::take(&mut self.handles);
        for &(kind, rep) in handles.iter().rev() {
            self.drop_handle(kind, rep);
        }
        assert!(
            self.table.is_empty(),
            "resources left in the table after every handle was dropped"
        );
        drop(self.bodies);
        drop(self.responses);
        assert_eq!(self.ctx.memory.host_bytes(), 0, "host bytes still charged");
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|ops: Vec<Op>| {
    let _guard = runtime().enter();
    let mut harness = Harness::new();
    for op in ops.into_iter().take(256) {
        harness.step(op);
    }
    harness.finish();
});
