//! A reverse proxy: forwards each request (method, path, headers, body and
//! trailers) to the origin in the `UPSTREAM` environment variable
//! (`http://host:port` or `https://host:port`) and streams the answer back.
//! Upstream failures become a 502 naming the error code.
//!
//! The request body is sent in full before the response is read, so an
//! upstream that answers while still receiving (an echo) must be able to
//! buffer the difference; fine for tests and the benchmark's request sizes.

use berth_guests::{copy, respond, trailers_of};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam,
    Scheme,
};

wasip2::http::proxy::export!(Proxy);

struct Proxy;

impl wasip2::exports::http::incoming_handler::Guest for Proxy {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let Ok(upstream) = std::env::var("UPSTREAM") else {
            return respond(out, 500, &[], b"UPSTREAM is not set\n");
        };
        let (scheme, authority) = match upstream.split_once("://") {
            Some(("https", a)) => (Scheme::Https, a.trim_end_matches('/').to_string()),
            Some(("http", a)) => (Scheme::Http, a.trim_end_matches('/').to_string()),
            _ => return respond(out, 500, &[], b"UPSTREAM must be http(s)://host:port\n"),
        };

        // The host strips connection-level headers (host, connection, ...).
        let outgoing = OutgoingRequest::new(request.headers().clone());
        outgoing.set_method(&request.method()).unwrap();
        outgoing.set_scheme(Some(&scheme)).unwrap();
        outgoing.set_authority(Some(&authority)).unwrap();
        outgoing.set_path_with_query(request.path_with_query().as_deref()).unwrap();
        let outgoing_body = outgoing.body().unwrap();
        let future = match outgoing_handler::handle(outgoing, None) {
            Ok(f) => f,
            Err(code) => {
                return respond(out, 502, &[], format!("upstream error: {code:?}\n").as_bytes());
            }
        };

        // Request body and trailers upstream.
        let incoming_body = request.consume().unwrap();
        let input = incoming_body.stream().unwrap();
        let output = outgoing_body.write().unwrap();
        copy(&input, &output);
        drop(input);
        drop(output);
        let (request_trailers_future, request_trailers) = trailers_of(incoming_body);
        let _ = OutgoingBody::finish(outgoing_body, request_trailers);
        drop(request_trailers_future);

        future.subscribe().block();
        let upstream_response = match future.get().unwrap().unwrap() {
            Ok(r) => r,
            Err(code) => {
                return respond(out, 502, &[], format!("upstream error: {code:?}\n").as_bytes());
            }
        };

        // Response head, body and trailers back.
        let headers = Fields::new();
        for (name, value) in upstream_response.headers().entries() {
            let _ = headers.append(&name, &value);
        }
        let response = OutgoingResponse::new(headers);
        response.set_status_code(upstream_response.status()).unwrap();
        let response_body = response.body().unwrap();
        ResponseOutparam::set(out, Ok(response));
        let upstream_body = upstream_response.consume().unwrap();
        let input = upstream_body.stream().unwrap();
        let output = response_body.write().unwrap();
        copy(&input, &output);
        drop(input);
        drop(output);
        let (future, trailers) = trailers_of(upstream_body);
        OutgoingBody::finish(response_body, trailers).unwrap();
        drop(future);
    }
}

fn main() {}
