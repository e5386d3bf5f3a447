//! # berth: serve `wasi:http` components
//!
//! berth runs WebAssembly components that export a `wasi:http` handler
//! (`wasi:http@0.2.x` `incoming-handler`, or `wasi:http@0.3.0` `handler`,
//! with middleware chains) behind hyper. It is a library first: a
//! [`WasiHttpService`] is a `tower::Service` you mount in axum, hyper or
//! any tower stack; [`ServeHandle`] is berth's own production front-end;
//! [`Platform`] serves many apps from one config. The `berth` command is a
//! thin shell over these.
//!
//! ## Ten lines in axum
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = berth::load_file("app.wasm", berth::RuntimeConfig::default())?;
//! let wasm = berth::WasiHttpService::new(runtime, "localhost:8080".parse()?);
//! // let app = axum::Router::new()
//! //     .route("/", axum::routing::get(|| async { "native" }))
//! //     .route_service("/app/{*rest}", wasm);
//! // axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! The examples (`crates/berth/examples/`) run as they are: `axum.rs`
//! (native routes and two components on one engine), `hyper.rs` (a bare
//! hyper server), `custom_client.rs` (an embedder's outgoing client).
//!
//! ## What a request goes through
//!
//! 1. **Front-end** ([`ServeHandle`], [`serve()`]): HTTP/1.1 and HTTP/2
//!    (h2c, or TLS with ALPN) on one port; a connection cap; header-read,
//!    idle and write-stall timeouts; caps on the request target and header
//!    count (`414`, `431`); the client address as a [`ClientAddr`]
//!    extension. See [`ServerConfig`] and its `DEFAULT_*` constants.
//! 2. **Routing** (a [`Platform`]'s [`platform::Router`]): by host and path
//!    prefix to one app; no match is a `404`.
//! 3. **Admission** ([`admission`]): at most `max_concurrent` requests of
//!    an app run at once, a short queue waits up to
//!    [`admission::DEFAULT_ADMISSION_WAIT`], the rest get `503` with
//!    `Retry-After` — overload is never a `500`. `poll_ready` reserves the
//!    place for tower callers.
//! 4. **Body limits** ([`limits`]): a declared body over the cap is `413`
//!    before any guest runs; a body that grows past it or stalls fails the
//!    guest's stream (`413`/`408`).
//! 5. **The guest** ([`Runtime`]): an instance per the app's policy, run
//!    under a CPU-time limit, a wall-clock limit, a memory limit summed over
//!    all its memories, and caps on resources and guest output. Its
//!    outgoing requests go through the app's client (berth's
//!    [`outbound::DefaultClient`] with a deny-by-default egress policy, or
//!    yours).
//! 6. **The response** streams back as the guest writes it; the access
//!    log line, the metrics ([`metrics`]) and the trace span ([`trace`])
//!    are written when it ends.
//!
//! ## Limits and their defaults
//!
//! | limit | default | where |
//! |---|---|---|
//! | CPU time per request | 10 s | [`RuntimeConfig::cpu_time_limit`] |
//! | wall-clock time per request | 60 s | [`RuntimeConfig::wall_time_limit`] |
//! | memory per instance (all memories) | 256 MiB | [`RuntimeConfig::memory_limit`] |
//! | instances at once (pool) | 1000 | [`RuntimeConfig::max_instances`] |
//! | guest output per request / per app | 1 MiB / 1 MiB/s | [`RuntimeConfig::log_limit`], [`RuntimeConfig::log_rate`] |
//! | request body | 1 GiB, 30 s idle | [`limits::BodyLimits`] |
//! | request target / headers | 8 KiB / 100 / 64 KiB | [`request::HeadLimits`], [`ServerConfig`] |
//! | connections | 10 000 | [`ServerConfig::max_connections`] |
//! | HTTP/2 streams per connection | 100 | [`ServerConfig::h2_max_concurrent_streams`] |
//! | drain on shutdown | 30 s | [`ServerConfig::drain_timeout`] |
//!
//! ## Instance policies
//!
//! * **wasi:http@0.2, fresh** (the default): a new instance per request,
//!   from a pre-instantiated component and a pooling allocator; requests
//!   never share guest state.
//! * **wasi:http@0.2, reuse** ([`RuntimeConfig::reuse`]): an instance
//!   serves up to N requests one after another, keeping its memory; any
//!   trap, error or timeout discards it.
//! * **wasi:http@0.3**: an instance takes up to
//!   [`RuntimeConfig::concurrent_requests`] at once and
//!   [`RuntimeConfig::instance_requests`] in its life; a trap fails only
//!   that instance's requests.
//!
//! ## Error model
//!
//! Nothing a client or a guest does reaches the embedder as an error:
//! the service's `Error` is `Infallible`, and every failure is an HTTP
//! response — `400`/`408`/`413`/`414`/`431` for bad requests, `503` for
//! overload, `504` for a guest over its CPU or wall-clock limit, `502` for
//! an upstream failure the guest reported, `500` for a trap (guest details
//! stay in the log; the page carries the request id; [`response::ErrorPage`]
//! renders your own). A response that fails after its head was sent is
//! aborted, never ended cleanly. Setting up can fail: those entry points
//! return [`Error`] (load, platform, bind, TLS, config), with the specific
//! error as its source.
//!
//! ## Features
//!
//! * `default-client` (default): HTTPS for berth's outgoing client
//!   (rustls). Without it the default client speaks plain HTTP; bring
//!   your own for HTTPS.
//! * `tls` (default): TLS termination on the front-end (rustls).
//!
//! With neither, berth compiles no rustls.

pub mod admin;
pub mod admission;
pub mod config;
mod conn;
pub mod demo;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod handle;
pub mod limits;
pub mod log_format;
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
mod shards;
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
pub use handle::{LISTEN_BACKLOG, Readiness, ServeHandle, listen};
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
