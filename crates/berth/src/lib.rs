//! # berth: serve `wasi:http` components
//!
//! The facade over [`berth_runtime`] (engine, instances, limits) and
//! [`berth_http`] (the `wasi:http` host): a [`WasiHttpService`] that any
//! tower/hyper/axum server can mount, and [`serve()`] — a hyper front-end with
//! HTTP/1.1 and h2c (or TLS) on one port, connection hygiene and a drain
//! that finishes — also runnable in a task of its own as a [`ServeHandle`].
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let bytes = std::fs::read("app.wasm")?;
//! let runtime = berth::Runtime::new(berth::RuntimeConfig::default(), &bytes, "app.wasm")?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let local = listener.local_addr()?.to_string().parse()?;
//! let service = berth::WasiHttpService::new(runtime, local);
//! berth::serve(listener, service, &berth::ServerConfig::default(), std::future::pending()).await;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod admission;
pub mod config;
mod conn;
pub mod demo;
mod error;
mod handle;
pub mod limits;
pub mod log_writer;
pub mod metrics;
mod observer;
pub mod platform;
pub mod request;
pub mod request_id;
pub mod response;
pub mod routes;
pub mod serve;
pub mod service;
pub mod tls;
pub mod trace;

pub use berth_http as http_host;
pub use berth_outbound as outbound;
/// The runtime crate: engine, instance policies, AOT cache, pre-initialisation.
pub use berth_runtime as runtime;
pub use berth_runtime::{
    HandleError, LoadError, Runtime, RuntimeBuilder, RuntimeConfig, Source, World,
};
pub use config::ServerConfig;
pub use error::Error;
pub use handle::{Readiness, ServeHandle};
pub use platform::{Config, Platform};
pub use request::ClientAddr;
pub use serve::serve;
pub use service::WasiHttpService;

/// Reads the component at `path` and loads it with `config` (see
/// [`Runtime::builder`] for an outgoing client or a shared engine).
pub fn load_file(
    path: impl AsRef<std::path::Path>,
    config: RuntimeConfig,
) -> Result<Runtime, Error> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|err| Error::read(path, err))?;
    Ok(Runtime::new(config, &bytes, &path.display().to_string())?)
}
