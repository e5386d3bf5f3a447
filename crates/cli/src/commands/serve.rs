//! `berth serve [COMPONENT]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use berth::platform::{AppConfig, ComponentSource, Config, Platform};
use berth::routes::Route;
use berth::{RuntimeConfig, ServerConfig};

use super::args::{CacheArgs, GuestArgs, OutboundArgs};

/// Serve a wasi:http component (0.2 `proxy` or 0.3 `service`), a chain of
/// wasi:http@0.3 middlewares in front of a service, or every app of a
/// config file (`--config berth.toml`).
#[derive(Debug, clap::Args)]
pub(crate) struct ServeCommand {
    /// Serve the apps of this config file (TOML; see the README), routed by
    /// host and path, reloaded on SIGHUP and when the file or a component
    /// changes. Every setting then comes from the file; only --addr and
    /// the cache flags (and their environment variables) override it.
    #[arg(long, value_name = "FILE", conflicts_with_all = FILE_ONLY)]
    config: Option<PathBuf>,

    /// The component (.wasm) to serve. Several: `wasi:http/middleware@0.3.0`
    /// components in front of a `wasi:http/service@0.3.0` one, the
    /// request's first stop first (`berth serve mw1.wasm mw2.wasm app.wasm`);
    /// each middleware's imported handler is linked to the next component.
    /// Without one, a built-in demo component answers with a page describing
    /// each request.
    components: Vec<PathBuf>,

    /// Address to listen on; port 0 picks a free port [default:
    /// 127.0.0.1:8080].
    #[arg(long, env = "BERTH_ADDR")]
    addr: Option<SocketAddr>,

    /// Serve /healthz and /readyz on this address (never on the traffic
    /// port; off by default). /readyz answers 503 from a shutdown signal on,
    /// before the traffic listener closes.
    #[arg(long, value_name = "HOST:PORT", env = "BERTH_ADMIN_ADDR")]
    admin_addr: Option<SocketAddr>,

    /// Export OpenTelemetry traces to this OTLP/HTTP collector (base URL,
    /// e.g. http://127.0.0.1:4318; spans go to /v1/traces as JSON). Off by
    /// default; the standard OTEL_* variables are honoured, and
    /// OTEL_EXPORTER_OTLP_ENDPOINT turns it on too.
    #[arg(long, value_name = "URL")]
    pub(crate) otlp_endpoint: Option<String>,

    /// Record this fraction (0 to 1) of the traces that start at berth; a
    /// client's `traceparent` sampled flag is still followed [default: 1,
    /// or OTEL_TRACES_SAMPLER].
    #[arg(long, value_name = "RATIO", value_parser = parse_ratio)]
    pub(crate) trace_sample_ratio: Option<f64>,

    #[command(flatten)]
    guest: GuestArgs,

    /// CPU time a request may use, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = berth_runtime_default_cpu_ms())]
    cpu_time_limit_ms: u64,

    /// Wall-clock time a request may take, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = berth_runtime_default_wall_ms())]
    wall_time_limit_ms: u64,

    /// Memory one instance may use (all its memories together), in MiB.
    #[arg(long, value_name = "MIB", default_value_t = (berth_runtime::config::DEFAULT_MEMORY_LIMIT >> 20) as u64)]
    memory_limit_mib: u64,

    /// Largest component accepted, in MiB: a bigger file is refused at
    /// load, before it is read or compiled.
    #[arg(long, value_name = "MIB", default_value_t = (berth_runtime::config::DEFAULT_MAX_COMPONENT_BYTES >> 20) as u64)]
    max_component_mib: u64,

    /// Longest a component may take to compile (and pre-initialise) at
    /// load, in seconds; past it the load fails (a cached component is
    /// not compiled again).
    #[arg(long, value_name = "SECS", default_value_t = berth_runtime::config::DEFAULT_MAX_COMPILE_TIME.as_secs())]
    max_compile_secs: u64,

    #[command(flatten)]
    outbound: OutboundArgs,

    /// Reuse an instance for up to N requests in a row instead of a fresh
    /// instance per request. Faster, but guest memory (globals, heap) is
    /// kept between those requests; an instance that traps is never reused.
    #[arg(long, value_name = "N")]
    reuse: Option<std::num::NonZeroU32>,

    /// Largest request body accepted, in MiB: a larger declared
    /// Content-Length is answered 413 without running the guest; a body
    /// that grows past it ends in an error for the guest (413, or an
    /// aborted response once it started).
    #[arg(long, value_name = "MIB", default_value_t = berth::limits::DEFAULT_MAX_REQUEST_BODY_BYTES >> 20)]
    max_request_body_mib: u64,

    /// Seconds a request body may stall while the guest waits for it; then
    /// the guest's body stream fails (408, or an aborted response once it
    /// started).
    #[arg(long, value_name = "SECS", default_value_t = berth::limits::DEFAULT_REQUEST_BODY_IDLE_TIMEOUT.as_secs())]
    request_body_idle_timeout_secs: u64,

    /// wasi:http@0.3 apps: requests one instance serves at once (more
    /// concurrent requests start more instances). A trap fails the
    /// instance's in-flight requests, so 1 isolates requests fully.
    #[arg(long, value_name = "N", default_value_t = berth_runtime::config::DEFAULT_CONCURRENT_REQUESTS)]
    concurrent_requests: usize,

    /// Guest output (stdout and stderr) the app may log per second, in KiB,
    /// all its instances together, with bursts of four seconds' worth;
    /// lines beyond it are dropped and counted
    /// (berth_guest_output_dropped_lines_total). 0: no limit.
    #[arg(long, value_name = "KIB", default_value_t = berth_runtime::config::DEFAULT_LOG_RATE >> 10)]
    guest_log_rate_kib: u64,

    /// wasi:http@0.3 apps: requests one instance serves in its life before
    /// it is retired and replaced.
    #[arg(long, value_name = "N", default_value_t = berth_runtime::config::DEFAULT_INSTANCE_REQUESTS)]
    instance_requests: u32,

    /// Run each component's `wizer-initialize` export once at start-up and
    /// serve a snapshot of the initialised state, so fresh instances skip
    /// the start-up work. Cached with the compiled code (`berth compile
    /// --pre-init` fills the cache ahead of time).
    #[arg(long)]
    pre_init: bool,

    #[command(flatten)]
    cache: CacheArgs,

    /// Terminate TLS with this PEM certificate chain (leaf first); needs
    /// --tls-key. ALPN offers h2 and http/1.1; guests see scheme https. The
    /// pair is reloaded when either file changes, or on SIGHUP; a bad new
    /// pair is refused and the old one keeps serving.
    #[arg(long, value_name = "CERT.pem", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, RSA or SEC1).
    #[arg(long, value_name = "KEY.pem", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Seconds a client has to send a request head; a new connection that
    /// delivers no request in that time (silent, or a partial HTTP/2
    /// preface) is closed.
    #[arg(long, value_name = "SECS", default_value_t = berth::config::DEFAULT_HEADER_READ_TIMEOUT.as_secs())]
    header_read_timeout_secs: u64,

    /// Seconds a connection may stay open with no request in flight
    /// (HTTP/2; idle HTTP/1.1 keep-alive connections are closed by the
    /// header-read timeout).
    #[arg(long, value_name = "SECS", default_value_t = berth::config::DEFAULT_IDLE_TIMEOUT.as_secs())]
    idle_timeout_secs: u64,

    /// Seconds a response write may make no progress (the client stopped
    /// reading) before the connection is closed and its instance freed.
    #[arg(long, value_name = "SECS", default_value_t = berth::config::DEFAULT_WRITE_TIMEOUT.as_secs())]
    write_timeout_secs: u64,

    /// Seconds between HTTP/2 keep-alive PINGs; a peer that does not
    /// answer within as long is closed as dead.
    #[arg(long, value_name = "SECS", default_value_t = berth::config::DEFAULT_H2_KEEP_ALIVE_INTERVAL.as_secs())]
    h2_keep_alive_interval_secs: u64,

    /// Requests running guest code at once [default: the instance pool
    /// size]; more wait up to --admission-wait-ms, then get 503 with
    /// Retry-After.
    #[arg(long, value_name = "N")]
    max_concurrent_requests: Option<usize>,

    /// Requests that may wait for a place [default: as many as
    /// --max-concurrent-requests]; more get 503 at once.
    #[arg(long, value_name = "N")]
    admission_queue: Option<usize>,

    /// Milliseconds a request waits for a place before its 503.
    #[arg(long, value_name = "MS", default_value_t = berth::admission::DEFAULT_ADMISSION_WAIT.as_millis() as u64)]
    admission_wait_ms: u64,

    /// Most open connections; more clients wait in the accept queue.
    #[arg(long, value_name = "N", default_value_t = berth::config::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,

    /// Threads that serve connections, each for the connection's whole
    /// life (default: one per CPU); 0 serves them on tokio's
    /// work-stealing threads instead.
    #[arg(long, value_name = "N", default_value_t = berth::config::connection_threads_per_core())]
    connection_threads: usize,

    /// Most concurrent HTTP/2 streams per connection.
    #[arg(long, value_name = "N", default_value_t = berth::config::DEFAULT_H2_MAX_CONCURRENT_STREAMS)]
    h2_max_concurrent_streams: u32,

    /// Largest request head, in bytes (431 beyond, HTTP/1.1 and HTTP/2).
    #[arg(long, value_name = "BYTES", default_value_t = berth::config::DEFAULT_MAX_HEADER_BYTES)]
    max_header_bytes: usize,

    /// Longest request path-with-query, in bytes (414 beyond).
    #[arg(long, value_name = "BYTES", default_value_t = berth::config::DEFAULT_MAX_URI_BYTES)]
    max_uri_bytes: usize,

    /// Most header fields in a request (431 beyond).
    #[arg(long, value_name = "N", default_value_t = berth::config::DEFAULT_MAX_HEADERS)]
    max_headers: usize,

    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM.
    #[arg(long, value_name = "SECS", default_value_t = berth::config::DEFAULT_DRAIN_TIMEOUT.as_secs())]
    drain_timeout_secs: u64,

    /// Seconds to go on serving after SIGINT/SIGTERM with /readyz already
    /// 503, before the drain starts (for load balancers that health-check
    /// readiness; Kubernetes' preStop hook does this waiting instead).
    #[arg(long, value_name = "SECS", default_value_t = berth::config::DEFAULT_SHUTDOWN_DELAY.as_secs())]
    shutdown_delay_secs: u64,
}

/// The flags a config file replaces (refused together with `--config`).
const FILE_ONLY: &[&str] = &[
    "components",
    "env",
    "config_vars",
    "guest_log_rate_kib",
    "cpu_time_limit_ms",
    "wall_time_limit_ms",
    "memory_limit_mib",
    "max_component_mib",
    "max_compile_secs",
    "allow_outbound",
    "ca_files",
    "h2c_outbound",
    "outbound_connect_timeout_ms",
    "outbound_first_byte_timeout_ms",
    "outbound_between_bytes_timeout_ms",
    "reuse",
    "max_request_body_mib",
    "request_body_idle_timeout_secs",
    "concurrent_requests",
    "instance_requests",
    "pre_init",
    "tls_cert",
    "tls_key",
    "header_read_timeout_secs",
    "idle_timeout_secs",
    "write_timeout_secs",
    "h2_keep_alive_interval_secs",
    "max_concurrent_requests",
    "admission_queue",
    "admission_wait_ms",
    "max_connections",
    "connection_threads",
    "h2_max_concurrent_streams",
    "max_header_bytes",
    "max_uri_bytes",
    "max_headers",
    "drain_timeout_secs",
    "shutdown_delay_secs",
];

pub(crate) fn berth_runtime_default_cpu_ms() -> u64 {
    berth_runtime::config::DEFAULT_CPU_TIME_LIMIT.as_millis() as u64
}

pub(crate) fn berth_runtime_default_wall_ms() -> u64 {
    berth_runtime::config::DEFAULT_WALL_TIME_LIMIT.as_millis() as u64
}

impl ServeCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        let mut config = match &self.config {
            Some(path) => {
                let mut config = berth::platform::file::load(path)?;
                if self.cache.given() {
                    config.cache_dir = self.cache.dir();
                }
                config
            }
            None => self.flags_config()?,
        };
        if let Some(addr) = self.addr {
            config.server.addr = addr;
        }
        if let Some(admin) = self.admin_addr {
            config.server.admin_addr = Some(admin);
        }
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        tokio.block_on(serve(config, self.config))
    }

    /// The flags as a one-app config routed at `*`: the same model a
    /// config file fills, served the same way.
    fn flags_config(&self) -> anyhow::Result<Config> {
        let runtime = RuntimeConfig {
            cpu_time_limit: Duration::from_millis(self.cpu_time_limit_ms),
            wall_time_limit: Duration::from_millis(self.wall_time_limit_ms),
            memory_limit: usize::try_from(self.memory_limit_mib << 20)
                .context("--memory-limit-mib is too large")?,
            env: self.guest.env.clone(),
            config_vars: self.guest.config_vars(),
            reuse: self.reuse,
            concurrent_requests: self.concurrent_requests,
            instance_requests: self.instance_requests,
            log_rate: self.guest_log_rate_kib.saturating_mul(1024),
            max_component_bytes: usize::try_from(self.max_component_mib.saturating_mul(1 << 20))
                .context("--max-component-mib is too large")?,
            max_compile_time: Duration::from_secs(self.max_compile_secs),
            cache_dir: self.cache.dir(),
            pre_init: self.pre_init,
            ..RuntimeConfig::default()
        };
        if runtime.cpu_time_limit.is_zero() || runtime.wall_time_limit.is_zero() {
            bail!("time limits must be greater than zero");
        }
        let body_limits = berth::limits::BodyLimits {
            max_bytes: self.max_request_body_mib.saturating_mul(1 << 20),
            idle_timeout: Duration::from_secs(self.request_body_idle_timeout_secs),
        };
        if body_limits.idle_timeout.is_zero() {
            bail!("--request-body-idle-timeout-secs must be at least 1");
        }
        if self.concurrent_requests == 0 || self.instance_requests == 0 {
            bail!("--concurrent-requests and --instance-requests must be at least 1");
        }
        let server = ServerConfig {
            addr: self.addr.unwrap_or_else(|| ServerConfig::default().addr),
            drain_timeout: Duration::from_secs(self.drain_timeout_secs),
            shutdown_delay: Duration::from_secs(self.shutdown_delay_secs),
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            write_timeout: Duration::from_secs(self.write_timeout_secs),
            h2_keep_alive_interval: Duration::from_secs(self.h2_keep_alive_interval_secs),
            max_connections: self.max_connections,
            h2_max_concurrent_streams: self.h2_max_concurrent_streams,
            max_header_bytes: self.max_header_bytes,
            max_uri_bytes: self.max_uri_bytes,
            max_headers: self.max_headers,
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(berth::tls::Tls::load(berth::tls::TlsPaths {
                    cert: cert.clone(),
                    key: key.clone(),
                })?),
                _ => None,
            },
            admin_addr: self.admin_addr,
            connection_threads: self.connection_threads,
        };
        server.validate()?;

        let mut components = Vec::with_capacity(self.components.len().max(1));
        for path in &self.components {
            if let Err(err) = std::fs::File::open(path) {
                bail!(
                    "cannot read component {}: {err}: expected a path to a WebAssembly component \
                     (.wasm) exporting wasi:http/incoming-handler@0.2 or wasi:http/handler@0.3",
                    path.display()
                );
            }
            components.push(ComponentSource::File(path.clone()));
        }
        if components.is_empty() {
            components.push(ComponentSource::Bytes {
                name: "the built-in demo component".to_owned(),
                bytes: berth::demo::COMPONENT.into(),
            });
        }
        let name = self
            .components
            .last()
            .and_then(|path| path.file_stem())
            .map_or_else(
                || "demo".to_owned(),
                |stem| stem.to_string_lossy().into_owned(),
            );
        let places = self
            .max_concurrent_requests
            .unwrap_or(runtime.max_instances as usize);
        let admission = berth::admission::AdmissionLimits {
            max_concurrent: places,
            max_queued: self.admission_queue.unwrap_or(places),
            wait: Duration::from_millis(self.admission_wait_ms),
        };
        if admission.max_concurrent == 0 {
            bail!("--max-concurrent-requests must be at least 1");
        }
        Ok(Config {
            server,
            engine: berth::runtime::EngineConfig::of(&runtime),
            cache_dir: runtime.cache_dir.clone(),
            apps: vec![AppConfig {
                name,
                components,
                routes: vec![Route::parse("*")?],
                runtime,
                body_limits,
                admission,
                outbound: self.outbound.config(),
            }],
        })
    }
}

/// Binds, builds every app, serves until SIGINT/SIGTERM, and drains.
/// With a config `file`, SIGHUP and changes to it or its components reload
/// the apps.
async fn serve(config: Config, file: Option<PathBuf>) -> anyhow::Result<()> {
    // Listened for from the start: a SIGTERM that arrives while the apps
    // load or just after the banner is a shutdown, not the default action
    // (which would end the process with no drain).
    let signals = Signals::install();
    let hangups = listen_for_hangups(config.server.tls.is_some() || file.is_some());
    let addr = config.server.addr;
    let listener = berth::listen(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let authority = local
        .to_string()
        .parse()
        .context("bound address is not a valid authority")?;
    let server_config = config.server.clone();
    let platform = tokio::task::spawn_blocking(move || Platform::build(config, authority))
        .await
        .context("the build task failed")??;
    for app in platform.apps() {
        let worlds = app.worlds();
        let routes = app
            .routes()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>();
        tracing::info!(app = app.name(), worlds = %worlds, routes = ?routes, "serving");
    }
    let scheme = if server_config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    reload_on_sighup(
        hangups,
        server_config.tls.clone(),
        platform.clone(),
        file.clone(),
    );
    let _watcher = file.map(|path| {
        AbortOnDrop(tokio::spawn(berth::platform::watch::watch(
            platform.clone(),
            path,
            berth::platform::watch::DEFAULT_WATCH_INTERVAL,
        )))
    });
    let drain_timeout = server_config.drain_timeout;
    let shutdown_delay = server_config.shutdown_delay;
    let admin = match server_config.admin_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--admin-addr)"))?,
        ),
        None => None,
    };
    let mut server = berth::ServeHandle::spawn(listener, platform.router(), server_config)
        .context("invalid server configuration")?;
    let _admin = match admin {
        Some(listener) => {
            let addr = listener
                .local_addr()
                .context("cannot read the admin address")?;
            let probe = berth::admin::Probe::new(server.readiness(), Some(platform.clone()));
            crate::logging::banner(&format!("Admin on http://{addr}/ (/healthz, /readyz)"));
            Some(AbortOnDrop(tokio::spawn(berth::admin::serve_admin(
                listener, probe,
            ))))
        }
        None => None,
    };
    crate::logging::banner(&format!("Serving HTTP on {scheme}://{local}/"));
    tokio::select! {
        () = shutdown_signal(signals) => {
            if !shutdown_delay.is_zero() {
                tracing::info!(
                    delay = ?shutdown_delay,
                    "readiness withdrawn; serving on until the shutdown delay ends, then draining"
                );
            }
            server.shutdown(drain_timeout);
        }
        fault = ticker_failed() => {
            // Guests are still stopped (the watchdog ticks coarsely), but a
            // server whose CPU limits no longer hold must not go on: drain
            // and exit non-zero, so a supervisor restarts it.
            server.shutdown(drain_timeout);
            server.await;
            anyhow::bail!("{fault}: CPU limits no longer hold; stopped serving");
        }
        () = &mut server => return Ok(()),
    }
    server.await;
    Ok(())
}

/// Resolves once an epoch ticker has failed, with its fault.
async fn ticker_failed() -> &'static str {
    loop {
        if let Some(fault) = berth_runtime::engine::ticker_fault() {
            return fault;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The SIGHUP handler, installed at start-up when there is something to
/// reload (a SIGHUP's default action ends the process): one that arrives
/// while the apps load is a reload once they are up.
#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = ();

#[cfg(unix)]
fn listen_for_hangups(needed: bool) -> Hangups {
    use tokio::signal::unix::{SignalKind, signal};
    if !needed {
        return None;
    }
    match signal(SignalKind::hangup()) {
        Ok(hangups) => Some(hangups),
        Err(err) => {
            tracing::warn!(
                "cannot install the SIGHUP handler ({err}); reloads happen on file changes only"
            );
            None
        }
    }
}

#[cfg(not(unix))]
fn listen_for_hangups(_needed: bool) -> Hangups {}

/// On every SIGHUP: reloads the TLS certificate and key (a bad pair is
/// logged and the old one keeps serving) and the config file (a bad one is
/// logged and the running version keeps serving).
#[cfg(unix)]
fn reload_on_sighup(
    hangups: Hangups,
    tls: Option<berth::tls::Tls>,
    platform: Platform,
    file: Option<PathBuf>,
) {
    let Some(mut hangups) = hangups else {
        return;
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            if let Some(tls) = &tls {
                let _ = tls.reload();
            }
            if let Some(path) = &file {
                let (platform, file) = (platform.clone(), path.clone());
                let reload = tokio::task::spawn_blocking(move || {
                    berth::platform::watch::reload_from_file(&platform, &file)
                });
                if let Ok(result) = reload.await {
                    berth::platform::watch::log_reload(path, &result);
                }
            }
        }
    });
}

#[cfg(not(unix))]
fn reload_on_sighup(
    _hangups: Hangups,
    _tls: Option<berth::tls::Tls>,
    _platform: Platform,
    _file: Option<PathBuf>,
) {
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("`{text}` is not a ratio between 0 and 1")),
    }
}

/// Resolves on the first SIGINT or SIGTERM. A second signal during the
/// drain exits at once.
async fn shutdown_signal(mut signals: Signals) {
    signals.recv().await;
    tracing::info!("signal received; stopping (send again to exit immediately)");
    tokio::spawn(async move {
        signals.recv().await;
        tracing::warn!("second signal: exiting without waiting for in-flight requests");
        crate::logging::flush_within(Duration::from_millis(500));
        std::process::exit(130);
    });
}

/// SIGINT and SIGTERM handlers, installed once; signals that arrive before
/// anyone waits are kept for the next [`Signals::recv`].
struct Signals {
    #[cfg(unix)]
    handlers: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    #[cfg(unix)]
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(int), Ok(term)) => Some((int, term)),
            _ => {
                tracing::warn!("cannot install signal handlers; use SIGKILL to stop");
                None
            }
        };
        Self { handlers }
    }

    #[cfg(not(unix))]
    fn install() -> Self {
        Self {}
    }

    /// The next SIGINT or SIGTERM (never, without handlers).
    #[cfg(unix)]
    async fn recv(&mut self) {
        let Some((int, term)) = &mut self.handlers else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }

    #[cfg(not(unix))]
    async fn recv(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
