//! A hello component built against wasi:http@0.2.0.

use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

wasi::http::proxy::export!(Legacy);

struct Legacy;

impl wasi::exports::http::incoming_handler::Guest for Legacy {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let headers = Fields::from_list(&[("content-type".into(), b"text/plain".to_vec())]).unwrap();
        let resp = OutgoingResponse::new(headers);
        let body = resp.body().unwrap();
        ResponseOutparam::set(out, Ok(resp));
        let stream = body.write().unwrap();
        let path = request.path_with_query().unwrap_or_default();
        stream
            .blocking_write_and_flush(format!("hello from wasi:http@0.2.0 at {path}\n").as_bytes())
            .unwrap();
        drop(stream);
        OutgoingBody::finish(body, None).unwrap();
    }
}

fn main() {}
