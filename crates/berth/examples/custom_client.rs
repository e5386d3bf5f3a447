//! An embedder-supplied outgoing client: every request a guest sends goes
//! through `GuardedClient`, which enforces its own allow-list and adds a
//! header, then hands the request to berth's default client.
//!
//! ```sh
//! UPSTREAM=http://127.0.0.1:9000 cargo run -p berth --example custom_client -- \
//!     guests/prebuilt/proxy.wasm --allow 127.0.0.1:9000
//! ```
//!
//! The guest sees `UPSTREAM` in its environment (the proxy guest forwards
//! every request there). A destination not allowed is refused with the
//! `HTTP-request-denied` error code before any connection is made.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use berth::http_host::outbound::{RequestTimeouts, ResponseFuture};
use berth::http_host::{ErrorCode, HostBody, OutboundClient};
use berth::outbound::{DefaultClient, OutboundConfig};
use berth::{RuntimeConfig, WasiHttpService};

/// Allows only the listed `host:port` destinations and marks each request.
struct GuardedClient {
    allowed: HashSet<String>,
    inner: DefaultClient,
}

impl OutboundClient for GuardedClient {
    fn send(
        &self,
        mut request: http::Request<HostBody>,
        timeouts: RequestTimeouts,
    ) -> ResponseFuture {
        let destination = request.uri().authority().map(|a| a.as_str().to_owned());
        if !destination.is_some_and(|d| self.allowed.contains(&d)) {
            return Box::pin(std::future::ready(Err(ErrorCode::HttpRequestDenied)));
        }
        request
            .headers_mut()
            .insert("x-sent-by", http::HeaderValue::from_static("berth-example"));
        self.inner.send(request, timeouts)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut addr: SocketAddr = "127.0.0.1:8080".parse()?;
    let mut component = None;
    let mut allowed = HashSet::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or("--addr needs HOST:PORT")?.parse()?,
            "--allow" => {
                allowed.insert(args.next().ok_or("--allow needs HOST:PORT")?);
            }
            path => component = Some(path.to_owned()),
        }
    }
    // berth's client still applies its own policy underneath: let it reach
    // what this client allows (loopback included, named by IP).
    let inner = DefaultClient::new(OutboundConfig {
        allow: allowed
            .iter()
            .map(|a| a.parse())
            .collect::<Result<_, _>>()?,
        ..OutboundConfig::default()
    })?;
    let client = Arc::new(GuardedClient { allowed, inner });
    let config = RuntimeConfig {
        env: std::env::var("UPSTREAM")
            .map(|upstream| vec![("UPSTREAM".to_owned(), upstream)])
            .unwrap_or_default(),
        ..RuntimeConfig::default()
    };
    let (bytes, what) = match &component {
        Some(path) => (std::fs::read(path)?, path.clone()),
        None => (
            berth::demo::COMPONENT.to_vec(),
            "the built-in demo".to_owned(),
        ),
    };
    let runtime = berth::Runtime::builder(config)
        .outbound(client)
        .build(&bytes, &what)?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let service = WasiHttpService::new(runtime, local.to_string().parse()?);
    let mut server = berth::ServeHandle::spawn(listener, service, berth::ServerConfig::default())?;
    println!("Serving on http://{local}/");
    tokio::signal::ctrl_c().await?;
    server.shutdown(std::time::Duration::from_secs(5));
    (&mut server).await;
    Ok(())
}
