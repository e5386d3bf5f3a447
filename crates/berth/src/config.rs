//! Server (front-end) configuration with documented defaults.

use std::net::SocketAddr;
use std::time::Duration;

/// Default listen address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// Default time a client has to send a complete HTTP/1 request head (10 s):
/// closes slowloris connections. A new connection (HTTP/1 or HTTP/2) that
/// has not delivered its first request by then is closed too: sockets
/// that send nothing, or only part of the HTTP/2 preface, never hold a
/// connection slot for long.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time a connection may stay open with no request in flight
/// (60 s). HTTP/2 connections have no other idle limit; an idle HTTP/1.1
/// keep-alive connection is closed sooner, by the header-read timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Default time a response write may make no progress before the
/// connection is closed and its guest instance freed (30 s: the client
/// stopped reading its socket, or holds its HTTP/2 flow-control window
/// shut).
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Default interval of HTTP/2 keep-alive PINGs, which is also how long the
/// answer may take before the connection is closed as dead (20 s).
pub const DEFAULT_H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// Default time in-flight requests get to finish after a shutdown signal.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Default cap on open connections; further clients wait in the kernel's
/// accept queue.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Default cap on concurrent HTTP/2 streams per connection.
pub const DEFAULT_H2_MAX_CONCURRENT_STREAMS: u32 = 100;

/// Default cap on the request head size, HTTP/1 and HTTP/2 (64 KiB).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

pub use crate::request::{DEFAULT_MAX_HEADERS, DEFAULT_MAX_URI_BYTES};

/// The CLI's default for [`ServerConfig::connection_threads`]: one per
/// CPU this process may run on (1 if that cannot be read).
pub fn connection_threads_per_core() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Default shutdown delay: none (drain at once). Kubernetes' `preStop`
/// hook does the waiting there; behind a load balancer that only
/// health-checks `/readyz`, set a few of its check intervals.
pub const DEFAULT_SHUTDOWN_DELAY: Duration = Duration::ZERO;

/// How the front-end listens and talks HTTP.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// See [`DEFAULT_HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`DEFAULT_DRAIN_TIMEOUT`].
    pub drain_timeout: Duration,
    /// After [`crate::ServeHandle::shutdown`] (`berth serve`: a shutdown
    /// signal), how long the server goes on serving as usual with
    /// `/readyz` already answering 503, before the drain starts: load
    /// balancers that health-check readiness stop sending new requests
    /// first, so none lands on a connection the drain is closing. See
    /// [`DEFAULT_SHUTDOWN_DELAY`].
    pub shutdown_delay: Duration,
    /// See [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// See [`DEFAULT_WRITE_TIMEOUT`].
    pub write_timeout: Duration,
    /// See [`DEFAULT_H2_KEEP_ALIVE_INTERVAL`].
    pub h2_keep_alive_interval: Duration,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`DEFAULT_H2_MAX_CONCURRENT_STREAMS`].
    pub h2_max_concurrent_streams: u32,
    /// See [`DEFAULT_MAX_HEADER_BYTES`].
    pub max_header_bytes: usize,
    /// Longest path-with-query accepted (`414` beyond). See
    /// [`DEFAULT_MAX_URI_BYTES`].
    pub max_uri_bytes: usize,
    /// Most header fields a request may have (`431` beyond). See
    /// [`DEFAULT_MAX_HEADERS`].
    pub max_headers: usize,
    /// Terminate TLS with this certificate (guests then see scheme
    /// `https`); `None` serves cleartext HTTP/1.1 and h2c.
    pub tls: Option<crate::tls::Tls>,
    /// Where the admin endpoints listen (`/healthz`, `/readyz`; see
    /// [`crate::admin`]); `None` (the default) serves none. The CLI binds
    /// it; an embedder runs [`crate::admin::serve_admin`] on its own
    /// listener.
    pub admin_addr: Option<SocketAddr>,
    /// Serve each connection, for its whole life, on one of this many
    /// threads of berth's own, each with a single-threaded runtime (the
    /// accept loop hands a new connection to the one with the fewest);
    /// everything a request starts stays on its connection's thread. `0`
    /// (the default here) serves connections as tasks of the caller's
    /// runtime. `berth serve` uses [`connection_threads_per_core`]:
    /// unpinned on two cores that served 1.3-1.4x the requests of tokio's
    /// work-stealing threads (BENCHMARKS.md, "Hot path, step 4"). A
    /// connection does not move to a less busy thread once placed.
    pub connection_threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            shutdown_delay: DEFAULT_SHUTDOWN_DELAY,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            h2_keep_alive_interval: DEFAULT_H2_KEEP_ALIVE_INTERVAL,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            h2_max_concurrent_streams: DEFAULT_H2_MAX_CONCURRENT_STREAMS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            tls: None,
            admin_addr: None,
            connection_threads: 0,
        }
    }
}

impl ServerConfig {
    /// The caps on request heads the service checks.
    pub fn head_limits(&self) -> crate::request::HeadLimits {
        crate::request::HeadLimits {
            max_uri_bytes: self.max_uri_bytes,
            max_headers: self.max_headers,
            max_header_bytes: self.max_header_bytes,
        }
    }

    /// Refuses values that would disable a protection or make the server
    /// unusable (zero caps and timeouts), naming the setting.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let zero = |name: &'static str, value: u128| (value == 0).then_some(name);
        let problem = zero("header_read_timeout", self.header_read_timeout.as_millis())
            .or(zero("idle_timeout", self.idle_timeout.as_millis()))
            .or(zero("write_timeout", self.write_timeout.as_millis()))
            .or(zero(
                "h2_keep_alive_interval",
                self.h2_keep_alive_interval.as_millis(),
            ))
            .or(zero("max_connections", self.max_connections as u128))
            .or(zero(
                "h2_max_concurrent_streams",
                u128::from(self.h2_max_concurrent_streams),
            ))
            .or(zero("max_header_bytes", self.max_header_bytes as u128))
            .or(zero("max_uri_bytes", self.max_uri_bytes as u128))
            .or(zero("max_headers", self.max_headers as u128))
            .or(self
                .tls
                .as_ref()
                .and_then(|tls| zero("tls.handshake_timeout", tls.handshake_timeout.as_millis())));
        match problem {
            Some(setting) => Err(InvalidConfig { setting }),
            None => Ok(()),
        }
    }
}

/// A [`ServerConfig`] setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("server setting `{setting}` must be greater than zero")]
pub struct InvalidConfig {
    /// The setting's name.
    pub setting: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zero_caps_are_refused_by_name() {
        assert_eq!(ServerConfig::default().validate(), Ok(()));
        let zero_uri = ServerConfig {
            max_uri_bytes: 0,
            ..ServerConfig::default()
        };
        assert_eq!(
            zero_uri.validate().unwrap_err().to_string(),
            "server setting `max_uri_bytes` must be greater than zero"
        );
        let zero_timeout = ServerConfig {
            header_read_timeout: Duration::ZERO,
            ..ServerConfig::default()
        };
        assert_eq!(
            zero_timeout.validate().unwrap_err().setting,
            "header_read_timeout"
        );
    }
}
