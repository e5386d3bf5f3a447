//! A wasi:http@0.3 service written with the `wasip3` crate and its
//! `http-compat` layer: answers 200 with every request header copied into
//! the response (a header the host forbids guests to set would fail the
//! conversion back to a wasi:http response).

use wasip3::http::types::{self, ErrorCode};
use wasip3::http_compat::{IncomingRequestBody, http_from_wasi_request, http_into_wasi_response};

wasip3::http::service::export!(EchoHeaders);

struct EchoHeaders;

impl wasip3::exports::http::handler::Guest for EchoHeaders {
    async fn handle(request: types::Request) -> Result<types::Response, ErrorCode> {
        let request = http_from_wasi_request(request)?;
        http_into_wasi_response(echo_headers(request))
    }
}

fn echo_headers(request: http::Request<IncomingRequestBody>) -> http::Response<String> {
    let count = request.headers().len();
    let mut response = http::Response::new(format!("copied {count} headers\n"));
    *response.headers_mut() = request.headers().clone();
    response
}

fn main() {}
