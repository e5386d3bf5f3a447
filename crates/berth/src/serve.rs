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
use crate::service::WasiHttpService;

/// Aborts a background task when dropped (the certificate watcher lives as
/// long as [`serve`]).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One accepted connection, ready to speak HTTP over any transport.
struct Conn {
    peer: std::net::SocketAddr,
    service: WasiHttpService,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: hyper_util::server::graceful::Watcher,
    first_request_timeout: Duration,
}

impl Conn {
    /// Serves HTTP/1.1 or HTTP/2 on `io` until the client leaves, the drain
    /// ends it, or it delivers no request in time.
    async fn run<I>(self, io: I)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let Conn {
            peer,
            service,
            builder,
            watcher,
            first_request_timeout,
        } = self;
        let started = Arc::new(AtomicBool::new(false));
        let svc = service_fn({
            let started = started.clone();
            move |req| {
                started.store(true, Ordering::Relaxed);
                let mut service = service.clone();
                service.call(req)
            }
        });
        let conn = watcher.watch(builder.serve_connection(io, svc));
        let result = tokio::select! {
            result = conn => Some(result),
            () = first_request(&started, first_request_timeout) => None,
        };
        match result {
            Some(Err(err)) => tracing::debug!(%peer, "connection ended with an error: {err}"),
            Some(Ok(())) => {}
            None => tracing::debug!(
                %peer,
                "connection closed: no request within {first_request_timeout:?}"
            ),
        }
    }
}

/// Resolves `timeout` after a connection opened if it has not delivered a
/// request by then; never resolves once it has. hyper's header-read
/// timeout only starts once it knows the protocol, so without this a
/// socket that sends nothing (or part of the HTTP/2 preface, or an HTTP/2
/// preface and no stream) would hold its connection slot for good.
async fn first_request(started: &AtomicBool, timeout: Duration) {
    tokio::time::sleep(timeout).await;
    if started.load(Ordering::Relaxed) {
        std::future::pending::<()>().await;
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
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Serves `service` on `listener` until `shutdown` resolves, then stops
/// accepting, lets in-flight requests finish for up to the drain timeout,
/// and returns. The service gets `config`'s head limits.
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
    let mut service = service.with_head_limits(config.head_limits());
    let _reloader = config.tls.as_ref().map(|tls| {
        service = service.clone().with_scheme(http::uri::Scheme::HTTPS);
        AbortOnDrop(tokio::spawn(
            tls.clone().watch(crate::tls::DEFAULT_RELOAD_INTERVAL),
        ))
    });
    let first_request_timeout = config.header_read_timeout;
    let builder = Arc::new(builder(config));
    let connections = Arc::new(Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    let mut last_accept_error = None::<tokio::time::Instant>;
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
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
            () = &mut shutdown => break,
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%peer, "set_nodelay failed: {err}");
        }
        let service = service.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = config.tls.clone();
        tokio::spawn(async move {
            let conn = Conn {
                peer,
                service,
                builder,
                watcher,
                first_request_timeout,
            };
            match tls {
                None => conn.run(TokioIo::new(stream)).await,
                Some(tls) => {
                    let handshake = tls.acceptor().accept(stream);
                    match tokio::time::timeout(tls.handshake_timeout, handshake).await {
                        Ok(Ok(stream)) => conn.run(TokioIo::new(stream)).await,
                        Ok(Err(err)) => tracing::debug!(%peer, "TLS handshake failed: {err}"),
                        Err(_) => tracing::debug!(
                            %peer,
                            "TLS handshake not finished within {:?}; closed",
                            tls.handshake_timeout
                        ),
                    }
                }
            }
            drop(permit);
        });
    }

    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(config.drain_timeout) => {
            tracing::warn!("drain timeout reached; closing remaining connections");
        }
    }
}
