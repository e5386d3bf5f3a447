//! Helpers shared by the guest components.

use wasip2::http::types::{
    Fields, FutureTrailers, IncomingBody, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
    Trailers,
};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

/// Sends a complete response with `status`, `headers` and `body`.
pub fn respond(out: ResponseOutparam, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let fields = Fields::new();
    for (name, value) in headers {
        fields.append(name, value.as_bytes()).unwrap();
    }
    let resp = OutgoingResponse::new(fields);
    resp.set_status_code(status).unwrap();
    let out_body = resp.body().unwrap();
    ResponseOutparam::set(out, Ok(resp));
    let stream = out_body.write().unwrap();
    write_all(&stream, body);
    drop(stream);
    OutgoingBody::finish(out_body, None).unwrap();
}

/// Writes all of `bytes`, in chunks the host permits.
pub fn write_all(stream: &OutputStream, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let n = bytes.len().min(4096);
        stream.blocking_write_and_flush(&bytes[..n]).unwrap();
        bytes = &bytes[n..];
    }
}

/// Copies `input` to `output` until the end of input; returns bytes copied.
pub fn copy(input: &InputStream, output: &OutputStream) -> u64 {
    let mut total = 0;
    loop {
        match input.blocking_read(64 * 1024) {
            Ok(chunk) => {
                total += chunk.len() as u64;
                let mut rest = &chunk[..];
                while !rest.is_empty() {
                    let mut permit = output.check_write().unwrap() as usize;
                    if permit == 0 {
                        output.subscribe().block();
                        permit = output.check_write().unwrap() as usize;
                    }
                    let n = rest.len().min(permit);
                    output.write(&rest[..n]).unwrap();
                    rest = &rest[n..];
                }
            }
            Err(StreamError::Closed) => return total,
            Err(StreamError::LastOperationFailed(e)) => panic!("read failed: {}", e.to_debug_string()),
        }
    }
}

/// Waits for the trailers of a finished incoming body. The trailers are a
/// child of the returned future, which must outlive them.
pub fn trailers_of(body: IncomingBody) -> (FutureTrailers, Option<Trailers>) {
    let future = IncomingBody::finish(body);
    future.subscribe().block();
    let trailers = future.get().unwrap().unwrap().unwrap();
    (future, trailers)
}

/// Reads an entire stream into memory (for small test bodies only).
pub fn read_to_end(input: &InputStream) -> Vec<u8> {
    let mut all = Vec::new();
    loop {
        match input.blocking_read(64 * 1024) {
            Ok(chunk) => all.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return all,
            Err(StreamError::LastOperationFailed(e)) => panic!("read failed: {}", e.to_debug_string()),
        }
    }
}

/// The method's name as sent on the wire (extension methods keep their case).
pub fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(s) => s.clone(),
    }
}
