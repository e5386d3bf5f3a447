//! berth inside an axum app: native axum routes beside two components on
//! two paths, with tower-http's request tracing around all of it.
//!
//! ```sh
//! cargo run -p berth --example axum                      # the demo on both paths
//! cargo run -p berth --example axum -- first.wasm second.wasm --addr 127.0.0.1:3000
//! ```
//!
//! Then `curl localhost:8080/` (axum), `curl localhost:8080/first/anything`
//! and `curl localhost:8080/second/anything` (the components, which see the
//! whole path). Both components share one engine, epoch ticker and
//! instance pool.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use berth::runtime::{EngineConfig, Engines};
use berth::{RuntimeConfig, WasiHttpService};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let (addr, components) = arguments()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;

    // One engine (compiler, epoch ticker, instance pool) for both apps.
    let config = RuntimeConfig::default();
    let engines = Engines::new(EngineConfig::of(&config));
    let app = |index: usize| -> Result<WasiHttpService, Box<dyn std::error::Error>> {
        let (bytes, what) = match components.get(index) {
            Some(path) => (std::fs::read(path)?, path.clone()),
            None => (
                berth::demo::COMPONENT.to_vec(),
                "the built-in demo".to_owned(),
            ),
        };
        let runtime = berth::Runtime::builder(config.clone())
            .engines(engines.clone())
            .build(&bytes, &what)?;
        Ok(WasiHttpService::new(runtime, local.to_string().parse()?)
            .with_app_name(format!("app{index}").into()))
    };

    let router = Router::new()
        .route("/", get(|| async { "a native axum route\n" }))
        .route("/healthz", get(|| async { "ok\n" }))
        // A wildcard route: the component sees /first/... unchanged.
        .route_service("/first/{*rest}", app(0)?)
        // Everything under /second.
        .nest_service("/second", app(1)?)
        .layer(tower_http::trace::TraceLayer::new_for_http());

    println!("Serving on http://{local}/");
    axum::serve(listener, router).await?;
    Ok(())
}

/// `[--addr HOST:PORT] [FIRST.wasm [SECOND.wasm]]`; the address defaults to
/// 127.0.0.1:8080.
fn arguments() -> Result<(SocketAddr, Vec<String>), Box<dyn std::error::Error>> {
    let mut addr: SocketAddr = "127.0.0.1:8080".parse()?;
    let mut components = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or("--addr needs HOST:PORT")?.parse()?,
            _ => components.push(arg),
        }
    }
    Ok((addr, components))
}
