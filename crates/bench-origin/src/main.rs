//! `berth-bench-origin ADDR`: a minimal native HTTP/1.1 + h2c server that
//! answers every request with `hello from the origin` (keep-alive), except
//! `/echo`, which streams the request body back. Used by the bench scripts
//! as the proxy's upstream and as the native baseline.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Body = http_body_util::Either<Full<Bytes>, hyper::body::Incoming>;

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
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("origin listening on http://{}/", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(hello))
                .await;
        });
    }
}
