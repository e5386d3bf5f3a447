//! A wasi:http@0.2 guest written with wstd, as users write proxies:
//!
//! * `/echo-headers`: answers 200 with every request header copied into the
//!   response (a header the host forbids guests to set would fail it).
//! * anything else: forwards the request to `http://$UPSTREAM` with the
//!   same method, path, every header and the body (streamed), and returns
//!   the upstream's status, every response header and its body.

use wstd::http::body::Body;
use wstd::http::{Client, Error, Request, Response};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    if request.uri().path() == "/echo-headers" {
        let mut response = Response::builder().status(200);
        for (name, value) in request.headers() {
            response = response.header(name, value);
        }
        let count = request.headers().len();
        return Ok(response.body(Body::from(format!("copied {count} headers\n")))?);
    }
    let upstream = std::env::var("UPSTREAM").unwrap_or_default();
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut outgoing = Request::builder()
        .method(request.method())
        .uri(format!("http://{upstream}{path}"));
    for (name, value) in request.headers() {
        outgoing = outgoing.header(name, value);
    }
    let outgoing = outgoing.body(request.into_body())?;
    let upstream_response = Client::new().send(outgoing).await?;
    let mut response = Response::builder().status(upstream_response.status());
    for (name, value) in upstream_response.headers() {
        response = response.header(name, value);
    }
    Ok(response.body(upstream_response.into_body())?)
}
