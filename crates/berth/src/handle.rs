//! [`ServeHandle`]: the front-end of [`crate::serve()`] running in a task of
//! its own, stopped by [`ServeHandle::shutdown`] with a drain deadline, and
//! telling readiness probes when it is draining.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{InvalidConfig, ServerConfig};
use crate::serve::Front;
#[cfg(doc)]
use crate::service::WasiHttpService;

/// Connections the kernel may hold, handshake done, before berth accepts
/// them (capped by `net.core.somaxconn`). tokio's default, 1024,
/// overflowed when 10 000 clients connected at once: the kernel dropped
/// their handshakes and some clients saw their first request fail.
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listening socket on `addr` for [`ServeHandle::spawn`] or
/// [`crate::serve()`]: address reuse on (a restart binds at once) and a
/// backlog of [`LISTEN_BACKLOG`]. Call inside a tokio runtime.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A running front-end. Await it (it is a future) to wait until it has
/// stopped: after [`shutdown`](Self::shutdown), once every connection has
/// finished or the drain deadline has cut the rest.
///
/// Dropping the handle does not stop the server; call `shutdown` first.
///
/// ```no_run
/// # async fn run(service: berth::WasiHttpService) -> Result<(), Box<dyn std::error::Error>> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let mut server = berth::ServeHandle::spawn(listener, service, berth::ServerConfig::default())?;
/// tokio::signal::ctrl_c().await?;
/// server.shutdown(std::time::Duration::from_secs(10));
/// assert!(server.is_draining()); // readiness probes answer 503 from here on
/// server.await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ServeHandle {
    local: Option<std::net::SocketAddr>,
    draining: Readiness,
    deadline: watch::Sender<Option<Duration>>,
    task: JoinHandle<()>,
}

impl ServeHandle {
    /// Starts serving `service` (one app's [`WasiHttpService`], or a
    /// platform's [`crate::platform::Router`]) on `listener` with `config`
    /// (checked first: see [`ServerConfig::validate`]) on the current tokio
    /// runtime.
    pub fn spawn(
        listener: TcpListener,
        service: impl Into<Front>,
        config: ServerConfig,
    ) -> Result<Self, InvalidConfig> {
        config.validate()?;
        let local = listener.local_addr().ok();
        let service = service.into();
        let draining = Readiness::default();
        let (deadline, mut requested) = watch::channel(None);
        let task = tokio::spawn({
            let draining = draining.clone();
            async move {
                let default = config.drain_timeout;
                let delay = config.shutdown_delay;
                let shutdown = async move {
                    let asked = requested
                        .wait_for(Option::is_some)
                        .await
                        .map(|deadline| deadline.unwrap_or(default));
                    match asked {
                        Ok(deadline) => {
                            // Readiness is already 503 (see `shutdown`):
                            // serve on for the delay, then drain.
                            tokio::time::sleep(delay).await;
                            deadline
                        }
                        // A dropped handle never asks: serve on.
                        Err(_) => std::future::pending().await,
                    }
                };
                crate::serve::run(listener, service, &config, shutdown, &draining.draining).await;
            }
        });
        Ok(Self {
            local,
            draining,
            deadline,
            task,
        })
    }

    /// Binds `addr` (port 0 picks a free one: see
    /// [`local_addr`](Self::local_addr)) and starts serving there, as
    /// [`spawn`](Self::spawn) does.
    ///
    /// ```no_run
    /// # async fn run(service: berth::WasiHttpService) -> Result<(), berth::Error> {
    /// let server = berth::ServeHandle::bind(
    ///     "127.0.0.1:0".parse().unwrap(),
    ///     service,
    ///     berth::ServerConfig::default(),
    /// )
    /// .await?;
    /// println!("serving on {:?}", server.local_addr());
    /// # Ok(()) }
    /// ```
    pub async fn bind(
        addr: std::net::SocketAddr,
        service: impl Into<Front>,
        config: ServerConfig,
    ) -> Result<Self, crate::Error> {
        let listener = listen(addr).map_err(|err| crate::Error::bind(addr, err))?;
        Ok(Self::spawn(listener, service, config)?)
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.local
    }

    /// Starts the drain: stop accepting, GOAWAY / `Connection: close`, and
    /// give in-flight requests up to `deadline` before the connections
    /// left are cut. A second call while draining changes nothing. With a
    /// [`ServerConfig::shutdown_delay`], readiness turns 503 at once and
    /// the drain starts after the delay, the server serving as usual
    /// meanwhile.
    pub fn shutdown(&self, deadline: Duration) {
        self.draining.start_draining();
        self.deadline.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(deadline);
            }
            first
        });
    }

    /// Whether the server is draining (or has stopped): the hook for a
    /// readiness endpoint, true from the call to `shutdown` on, before the
    /// listener closes.
    pub fn is_draining(&self) -> bool {
        self.draining.is_draining()
    }

    /// A handle on the drain state for readiness probes (see
    /// [`crate::admin`]), usable after this handle is awaited.
    pub fn readiness(&self) -> Readiness {
        self.draining.clone()
    }
}

/// Whether a front-end is draining, for readiness probes. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    draining: Arc<AtomicBool>,
}

impl Readiness {
    /// True from the shutdown call on.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
}

impl Future for ServeHandle {
    type Output = ();

    /// Ready once the server has stopped. A panic in the front-end is
    /// resumed here.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match Pin::new(&mut self.task).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(()),
            Poll::Ready(Err(err)) => match err.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // Cancelled: the runtime is shutting down.
                Err(_) => Poll::Ready(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More clients than tokio's default backlog (1024) connect before the
    /// server accepts any: the kernel completes every handshake.
    #[tokio::test]
    async fn the_backlog_holds_more_than_tokios_default() {
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let open_files: u64 = limits
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(u64::MAX);
        if open_files < 2400 {
            eprintln!("skipped: needs 2400 open files, the limit is {open_files}");
            return;
        }
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::new();
        for _ in 0..1100 {
            let connect = tokio::net::TcpStream::connect(addr);
            let stream = tokio::time::timeout(Duration::from_secs(5), connect)
                .await
                .expect("a handshake the backlog did not hold")
                .unwrap();
            clients.push(stream);
        }
        for _ in 0..1100 {
            listener.accept().await.unwrap();
        }
    }
}
