//! The hyper front-end: accept loop, HTTP/1.1 + h2c on one port, connection
//! cap, and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service as _;

use crate::config::ServerConfig;
use crate::conn::{Activity, StallGuard, Timeouts, Tracked};
use crate::service::WasiHttpService;
use crate::shards::{Placement, Shards};

/// Aborts a background task when dropped (the certificate watcher lives as
/// long as [`serve`]).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a front-end serves: one app's service, or a platform's router
/// (many apps, routed by host and path).
#[derive(Debug, Clone)]
pub enum Front {
    /// Every request goes to this app.
    App(WasiHttpService),
    /// Requests are routed to a platform's apps.
    Router(crate::platform::Router),
}

impl From<WasiHttpService> for Front {
    fn from(service: WasiHttpService) -> Self {
        Self::App(service)
    }
}

impl From<crate::platform::Router> for Front {
    fn from(router: crate::platform::Router) -> Self {
        Self::Router(router)
    }
}

impl Front {
    /// Gives an app service the listener's head limits and scheme (a
    /// platform's apps get them from its config when they are built).
    fn for_listener(self, config: &ServerConfig) -> Self {
        match self {
            Self::App(service) => {
                let service = service.with_head_limits(config.head_limits());
                Self::App(match config.tls {
                    Some(_) => service.with_scheme(http::uri::Scheme::HTTPS),
                    None => service,
                })
            }
            router @ Self::Router(_) => router,
        }
    }

    /// Where connection metrics go, if anywhere.
    fn metrics(&self) -> Option<crate::metrics::Metrics> {
        match self {
            Self::App(service) => service.metrics().cloned(),
            Self::Router(router) => Some(router.platform().metrics().clone()),
        }
    }

    fn call(
        &self,
        request: http::Request<hyper::body::Incoming>,
    ) -> crate::service::ResponseFuture {
        match self {
            Self::App(service) => service.clone().call(request),
            Self::Router(router) => router.clone().call(request),
        }
    }
}

/// One accepted connection, ready to speak HTTP over any transport.
struct Conn {
    peer: std::net::SocketAddr,
    service: Front,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: hyper_util::server::graceful::Watcher,
    timeouts: Timeouts,
}

impl Conn {
    /// Serves HTTP/1.1 or HTTP/2 on `io` until the client leaves, the drain
    /// ends it, it is idle too long (see [`crate::conn`]), or it stops
    /// reading what it asked for.
    async fn run<S>(self, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Activity::new();
        let svc = service_fn({
            let activity = activity.clone();
            let service = self.service;
            let client = crate::request::ClientAddr(self.peer);
            move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(client);
                let in_flight = activity.start();
                let response = service.call(req);
                async move {
                    let response = response.await?;
                    Ok::<_, std::convert::Infallible>(
                        response.map(|body| Tracked::new(body, in_flight)),
                    )
                }
            }
        });
        let io = TokioIo::new(StallGuard::new(stream, self.timeouts.write));
        let conn = self.watcher.watch(self.builder.serve_connection(io, svc));
        let result = tokio::select! {
            result = conn => Some(result),
            () = crate::conn::idle(&activity, self.timeouts) => None,
        };
        let peer = self.peer;
        match result {
            Some(Err(err)) => tracing::debug!(%peer, "connection ended with an error: {err}"),
            Some(Ok(())) => {}
            None => tracing::debug!(%peer, "connection closed: idle, or the client took nothing"),
        }
    }
}

/// How long the accept loop pauses after an accept error (e.g. out of file
/// descriptors) before trying again, so it never spins.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(10);

fn builder(config: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_headers(config.max_headers)
        .max_buf_size(config.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.h2_max_concurrent_streams)
        .keep_alive_interval(config.h2_keep_alive_interval)
        .keep_alive_timeout(config.h2_keep_alive_interval)
        // Twice berth's own cap, so that a list between the two gets
        // berth's 431 response (HeadLimits) instead of h2's stream reset.
        .max_header_list_size(
            u32::try_from(config.max_header_bytes.saturating_mul(2)).unwrap_or(u32::MAX),
        );
    builder
}

/// Serves `service` on `listener` until `shutdown` resolves, then stops
/// accepting, lets in-flight requests finish for up to the drain timeout
/// (HTTP/2 connections get GOAWAY, HTTP/1.1 responses `Connection:
/// close`), ends every connection still open, and returns. The service
/// gets `config`'s head limits. [`crate::ServeHandle`] runs the same
/// front-end in a task of its own, with a drain deadline chosen at
/// shutdown and a readiness flag.
///
/// # Panics
///
/// When `config` is invalid (see [`ServerConfig::validate`]); check it
/// first to report the problem.
pub async fn serve(
    listener: TcpListener,
    service: WasiHttpService,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    if let Err(err) = config.validate() {
        panic!("berth::serve: {err}");
    }
    let drain_timeout = config.drain_timeout;
    run(
        listener,
        Front::App(service),
        config,
        async move {
            shutdown.await;
            drain_timeout
        },
        &AtomicBool::new(false),
    )
    .await;
}

/// The front-end behind [`serve`] and [`crate::ServeHandle`]: `shutdown`
/// resolves to the drain deadline; `draining` turns true the moment the
/// drain begins, before the listener closes. `config` must be valid.
pub(crate) async fn run(
    listener: TcpListener,
    service: Front,
    config: &ServerConfig,
    shutdown: impl Future<Output = Duration>,
    draining: &AtomicBool,
) {
    let service = service.for_listener(config);
    let metrics = service.metrics();
    let _reloader = config.tls.as_ref().map(|tls| {
        AbortOnDrop(tokio::spawn(
            tls.clone().watch(crate::tls::DEFAULT_RELOAD_INTERVAL),
        ))
    });
    let timeouts = Timeouts {
        first_request: config.header_read_timeout,
        idle: config.idle_timeout,
        write: config.write_timeout,
    };
    let builder = Arc::new(builder(config));
    let connections = Arc::new(Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    let shards = match config.connection_threads {
        0 => None,
        threads => match Shards::start(threads) {
            Ok(shards) => Some(shards),
            Err(err) => {
                tracing::error!(
                    "cannot start {threads} connection threads ({err}); \
                     serving connections on the runtime's own threads"
                );
                None
            }
        },
    };
    // Every connection task, so the drain can end the ones left over.
    let mut tasks = tokio::task::JoinSet::new();
    let mut last_accept_error = None::<tokio::time::Instant>;
    let mut drain_timeout = config.drain_timeout;
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            deadline = &mut shutdown => {
                drain_timeout = deadline;
                break;
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    let now = tokio::time::Instant::now();
                    if last_accept_error.is_none_or(|t| now - t > Duration::from_secs(1)) {
                        tracing::warn!("accept failed: {err}; backing off");
                        last_accept_error = Some(now);
                    }
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            deadline = &mut shutdown => {
                drain_timeout = deadline;
                break;
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%peer, "set_nodelay failed: {err}");
        }
        // On a connection thread the socket is registered with that
        // thread's reactor, so it leaves this runtime's first.
        let placement = shards.as_ref().and_then(Shards::place);
        let stream = match placement {
            None => Accepted::Registered(stream),
            Some(_) => match stream.into_std() {
                Ok(stream) => Accepted::Moved(stream),
                Err(err) => {
                    tracing::debug!(%peer, "cannot hand the connection to its thread: {err}");
                    continue;
                }
            },
        };
        let service = service.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        // Reap finished connection tasks so the set stays as small as the
        // number of open connections.
        while tasks.try_join_next().is_some() {}
        let conn = Conn {
            peer,
            service,
            builder,
            watcher,
            timeouts,
        };
        // One task shape per transport: a task is allocated at the size of
        // its largest state, so cleartext connections do not carry room for
        // a TLS session (measured by scripts/bench-idle-conns.sh).
        let open = metrics
            .as_ref()
            .map(crate::metrics::Metrics::connection_opened);
        match config.tls.clone() {
            None => spawn_connection(&mut tasks, placement, async move {
                if let Some(stream) = stream.register(peer) {
                    conn.run(stream).await;
                }
                drop((open, permit));
            }),
            #[cfg(not(feature = "tls"))]
            Some(tls) => tls.unreachable(),
            #[cfg(feature = "tls")]
            Some(tls) => {
                let metrics = metrics.clone();
                spawn_connection(&mut tasks, placement, async move {
                    let Some(stream) = stream.register(peer) else {
                        return;
                    };
                    let handshake = tls.acceptor().accept(stream);
                    let failed = |reason| {
                        if let Some(metrics) = &metrics {
                            metrics.tls_handshake_failed(reason);
                        }
                    };
                    match tokio::time::timeout(tls.handshake_timeout, handshake).await {
                        Ok(Ok(stream)) => conn.run(stream).await,
                        Ok(Err(err)) => {
                            failed("error");
                            tracing::debug!(%peer, "TLS handshake failed: {err}");
                        }
                        Err(_) => {
                            failed("timeout");
                            tracing::debug!(
                                %peer,
                                "TLS handshake not finished within {:?}; closed",
                                tls.handshake_timeout
                            );
                        }
                    }
                    drop((open, permit));
                })
            }
        };
    }

    // Not ready any more (readiness probes see it before the listener
    // closes), then stop accepting.
    draining.store(true, Ordering::Release);
    drop(listener);
    tracing::info!(
        connections = tasks.len(),
        "shutting down: draining in-flight requests (HTTP/2 GOAWAY, HTTP/1.1 Connection: close)"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(drain_timeout) => {
            tracing::warn!(
                connections = tasks.len(),
                "drain timeout reached; closing the remaining connections"
            );
        }
    }
    // Whatever is left is cut: its responses abort, its guests are freed.
    tasks.shutdown().await;
    // Then the connection threads end, with whatever their connections
    // started that is still running (0.3 instance workers' post-return
    // work past the drain).
    drop(shards);
}

/// An accepted socket: still registered with the accepting runtime, or
/// taken off it to be registered on a connection thread.
enum Accepted {
    Registered(tokio::net::TcpStream),
    Moved(std::net::TcpStream),
}

impl Accepted {
    /// The socket, registered with the runtime this runs on; `None` (the
    /// connection is dropped) if it cannot be registered.
    fn register(self, peer: std::net::SocketAddr) -> Option<tokio::net::TcpStream> {
        match self {
            Self::Registered(stream) => Some(stream),
            Self::Moved(stream) => match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => Some(stream),
                Err(err) => {
                    tracing::debug!(%peer, "cannot register the connection: {err}");
                    None
                }
            },
        }
    }
}

/// Spawns a connection's task: on its connection thread (counted there
/// while it runs), or on the current runtime.
fn spawn_connection(
    tasks: &mut tokio::task::JoinSet<()>,
    placement: Option<Placement>,
    connection: impl Future<Output = ()> + Send + 'static,
) {
    match placement {
        Some(Placement { runtime, guard }) => {
            tasks.spawn_on(
                async move {
                    connection.await;
                    drop(guard);
                },
                &runtime,
            );
        }
        None => {
            tasks.spawn(connection);
        }
    }
}
