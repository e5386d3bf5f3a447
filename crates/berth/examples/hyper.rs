//! berth in a bare hyper server: your accept loop, your connection
//! settings, berth's service answering every request.
//!
//! ```sh
//! cargo run -p berth --example hyper                     # the built-in demo
//! cargo run -p berth --example hyper -- app.wasm --addr 127.0.0.1:3000
//! ```
//!
//! berth's own front-end ([`berth::ServeHandle`]) adds what a production
//! server needs on top (connection caps, timeouts, TLS, a drain); this
//! example shows the service alone.

use std::net::SocketAddr;

use berth::{ClientAddr, RuntimeConfig, WasiHttpService};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tower::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut addr: SocketAddr = "127.0.0.1:8080".parse()?;
    let mut component = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or("--addr needs HOST:PORT")?.parse()?,
            path => component = Some(path.to_owned()),
        }
    }
    let runtime = match &component {
        Some(path) => berth::load_file(path, RuntimeConfig::default())?,
        None => berth::Runtime::new(
            RuntimeConfig::default(),
            berth::demo::COMPONENT,
            "the built-in demo",
        )?,
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let service = WasiHttpService::new(runtime, local.to_string().parse()?);
    println!("Serving on http://{local}/");
    loop {
        let (stream, peer) = listener.accept().await?;
        let service = service.clone();
        tokio::spawn(async move {
            let hyper_service = hyper::service::service_fn(move |mut request| {
                // The access log shows the client's address.
                request.extensions_mut().insert(ClientAddr(peer));
                // `oneshot` calls `poll_ready` first: it reserves an
                // admission place, or learns there is none (503).
                service.clone().oneshot(request)
            });
            let served = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), hyper_service)
                .await;
            if let Err(err) = served {
                eprintln!("connection from {peer}: {err}");
            }
        });
    }
}
