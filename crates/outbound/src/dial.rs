//! Resolving and dialing: the hooks tests use to prove that denied
//! destinations are never dialed.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// A boxed future, as the hooks return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Resolves a host name to addresses.
pub trait Resolve: Send + Sync + 'static {
    /// Looks up `host` (never an IP literal; those skip resolution).
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<io::Result<Vec<SocketAddr>>>;
}

/// Opens TCP connections.
pub trait Dial: Send + Sync + 'static {
    /// Connects to `addr`, which the egress policy has already allowed.
    fn dial(&self, addr: SocketAddr) -> BoxFuture<io::Result<TcpStream>>;
}

/// How many `getaddrinfo` calls may run at once in this process.
pub const MAX_BLOCKING_LOOKUPS: usize = 32;

/// The system resolver: `getaddrinfo` on tokio's blocking threads, at most
/// [`MAX_BLOCKING_LOOKUPS`] at a time across the process.
///
/// `getaddrinfo` cannot be cancelled: a lookup that outlives the caller's
/// timeout keeps its thread until the system resolver gives up. The bound
/// keeps a flood of slow lookups (a guest resolving names whose DNS server
/// never answers) from growing tokio's blocking pool — which file I/O and
/// compilation also use — to its 512-thread ceiling; lookups beyond it wait
/// for a place within their own timeout.
#[derive(Debug, Clone)]
pub struct SystemResolver {
    lookup: fn(&str) -> io::Result<Vec<SocketAddr>>,
    places: Arc<Semaphore>,
}

impl Default for SystemResolver {
    fn default() -> Self {
        static PLACES: OnceLock<Arc<Semaphore>> = OnceLock::new();
        let places = PLACES.get_or_init(|| Arc::new(Semaphore::new(MAX_BLOCKING_LOOKUPS)));
        Self {
            lookup: getaddrinfo,
            places: places.clone(),
        }
    }
}

fn getaddrinfo(target: &str) -> io::Result<Vec<SocketAddr>> {
    use std::net::ToSocketAddrs;
    Ok(target.to_socket_addrs()?.collect())
}

impl SystemResolver {
    /// A resolver that runs `lookup` (given `host:port`) in place of
    /// `getaddrinfo`, at most `limit` at a time: how tests prove the bound.
    pub fn with_lookup(lookup: fn(&str) -> io::Result<Vec<SocketAddr>>, limit: usize) -> Self {
        Self {
            lookup,
            places: Arc::new(Semaphore::new(limit)),
        }
    }
}

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<io::Result<Vec<SocketAddr>>> {
        let target = format!("{host}:{port}");
        let (lookup, places) = (self.lookup, self.places.clone());
        Box::pin(async move {
            // The place goes with the blocking call and is released when it
            // returns, not when this future is dropped.
            let place = places
                .acquire_owned()
                .await
                .map_err(|_| io::Error::other("resolver closed"))?;
            tokio::task::spawn_blocking(move || {
                let answer = lookup(&target);
                drop(place);
                answer
            })
            .await
            .map_err(io::Error::other)?
        })
    }
}

/// Plain TCP connections with `TCP_NODELAY`.
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpDialer;

impl Dial for TcpDialer {
    fn dial(&self, addr: SocketAddr) -> BoxFuture<io::Result<TcpStream>> {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(stream)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    static RUNNING: AtomicUsize = AtomicUsize::new(0);
    static MOST: AtomicUsize = AtomicUsize::new(0);
    static RELEASE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    static RELEASED: std::sync::Condvar = std::sync::Condvar::new();

    /// A `getaddrinfo` that hangs until the test releases it.
    fn hanging(_target: &str) -> io::Result<Vec<SocketAddr>> {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        MOST.fetch_max(now, Ordering::SeqCst);
        let mut released = RELEASE.lock().unwrap_or_else(|e| e.into_inner());
        while !*released {
            released = RELEASED.wait(released).unwrap_or_else(|e| e.into_inner());
        }
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        Err(io::Error::other("released"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn timed_out_lookups_hold_at_most_the_bound_of_threads() {
        let resolver = SystemResolver::with_lookup(hanging, 4);
        // 50 lookups that all time out, as a guest's would.
        let mut lookups = Vec::new();
        for i in 0..50 {
            let lookup = resolver.resolve(&format!("slow{i}.test"), 80);
            lookups.push(tokio::time::timeout(Duration::from_millis(50), lookup));
        }
        for lookup in lookups {
            assert!(lookup.await.is_err(), "the lookup should time out");
        }
        // Give stragglers a moment to (wrongly) start.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(RUNNING.load(Ordering::SeqCst), 4);
        assert_eq!(MOST.load(Ordering::SeqCst), 4);
        // Once the system resolver answers, the threads and places return.
        *RELEASE.lock().unwrap() = true;
        RELEASED.notify_all();
        let answer =
            tokio::time::timeout(Duration::from_secs(5), resolver.resolve("late.test", 80))
                .await
                .expect("a place frees up once the hung lookups return");
        assert!(answer.is_err());
        // And every released thread returns.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while RUNNING.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(RUNNING.load(Ordering::SeqCst), 0);
        assert_eq!(MOST.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn the_system_resolver_resolves_localhost() {
        let addrs = SystemResolver::default()
            .resolve("localhost", 8080)
            .await
            .unwrap();
        assert!(
            addrs
                .iter()
                .all(|a| a.port() == 8080 && a.ip().is_loopback()),
            "{addrs:?}"
        );
    }
}
