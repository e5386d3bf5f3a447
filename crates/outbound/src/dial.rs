//! Resolving and dialing: the hooks tests use to prove that denied
//! destinations are never dialed.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::net::TcpStream;

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

/// The system resolver (getaddrinfo through tokio).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<io::Result<Vec<SocketAddr>>> {
        let target = format!("{host}:{port}");
        Box::pin(async move { Ok(tokio::net::lookup_host(target).await?.collect()) })
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
