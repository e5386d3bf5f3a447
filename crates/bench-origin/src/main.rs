//! `berth-bench-origin ADDR`: a minimal native HTTP/1.1 + h2c server that
//! answers every request with `hello from the origin` (keep-alive), except
//! `/echo`, which streams the request body back. Used by the bench scripts
//! as the proxy's upstream and as the native baseline.
//!
//! `berth-bench-origin ADDR --proxy http://UPSTREAM`: a native reverse
//! proxy instead, the baseline of the proxy benchmark: every request
//! (method, path, headers, streamed body) goes to UPSTREAM through one
//! pooled hyper client (keep-alive connections reused), and the upstream's
//! response streams back.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Body = http_body_util::Either<Full<Bytes>, hyper::body::Incoming>;

type PooledClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    hyper::body::Incoming,
>;

/// Forwards `req` to `upstream` (an `http://host:port` authority) through
/// `client`; a 502 when the upstream cannot be reached.
async fn forward(
    client: PooledClient,
    upstream: http::uri::Authority,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Body>, Infallible> {
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str)
        .to_owned();
    let uri = http::Uri::builder()
        .scheme("http")
        .authority(upstream.clone())
        .path_and_query(path)
        .build();
    let Ok(uri) = uri else {
        return Ok(bad_gateway());
    };
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    parts.headers.remove(http::header::HOST);
    match client
        .request(hyper::Request::from_parts(parts, body))
        .await
    {
        Ok(response) => Ok(response.map(http_body_util::Either::Right)),
        Err(_) => Ok(bad_gateway()),
    }
}

fn bad_gateway() -> hyper::Response<Body> {
    let mut response = hyper::Response::new(http_body_util::Either::Left(Full::new(
        Bytes::from_static(b"upstream unreachable\n"),
    )));
    *response.status_mut() = http::StatusCode::BAD_GATEWAY;
    response
}

async fn hello(
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Body>, Infallible> {
    if req.uri().path() == "/echo" {
        return Ok(hyper::Response::new(http_body_util::Either::Right(
            req.into_body(),
        )));
    }
    Ok(hyper::Response::new(http_body_util::Either::Left(
        Full::new(Bytes::from_static(b"hello from the origin\n")),
    )))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9000".into());
    let upstream = match (args.next().as_deref(), args.next()) {
        (Some("--proxy"), Some(url)) => {
            let uri: http::Uri = url
                .parse()
                .map_err(|e| std::io::Error::other(format!("--proxy {url}: {e}")))?;
            let authority = uri
                .authority()
                .cloned()
                .ok_or_else(|| std::io::Error::other("--proxy needs http://host:port"))?;
            Some(authority)
        }
        (None, _) => None,
        _ => {
            return Err(std::io::Error::other(
                "usage: berth-bench-origin ADDR [--proxy URL]",
            ));
        }
    };
    let client: PooledClient =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    match &upstream {
        Some(up) => eprintln!(
            "proxy listening on http://{}/ -> http://{up}/",
            listener.local_addr()?
        ),
        None => eprintln!("origin listening on http://{}/", listener.local_addr()?),
    }
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (client, upstream) = (client.clone(), upstream.clone());
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let io = TokioIo::new(stream);
            let _ = match upstream {
                Some(upstream) => {
                    let service = hyper::service::service_fn(move |req| {
                        forward(client.clone(), upstream.clone(), req)
                    });
                    builder.serve_connection(io, service).await
                }
                None => {
                    builder
                        .serve_connection(io, hyper::service::service_fn(hello))
                        .await
                }
            };
        });
    }
}
