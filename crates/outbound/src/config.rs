//! Outbound configuration with documented defaults.

use std::path::PathBuf;
use std::time::Duration;

use crate::policy::HostPattern;

/// Default time to establish a TCP connection (and TLS handshake): 10 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time from sending a request to the first byte of the response
/// head: 30 s.
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default longest gap between response body bytes: 30 s.
pub const DEFAULT_BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest connect timeout a guest may ask for: 30 s.
pub const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest first-byte timeout a guest may ask for: 120 s.
pub const MAX_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest between-bytes timeout a guest may ask for: 120 s.
pub const MAX_BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an idle pooled connection is kept: 90 s.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Most HTTP/1.1 connections kept per origin: 32.
pub const DEFAULT_MAX_CONNECTIONS_PER_ORIGIN: usize = 32;
/// Most connections one client holds open at once, all origins together
/// (busy, idle and being opened): 256. Past it, an idle pooled connection
/// is closed to make room, or the request waits for one to close, at most
/// its connect timeout, then fails with `connection-limit-reached`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Identity this server puts in `CDN-Loop` to detect request loops.
pub const DEFAULT_LOOP_IDENTITY: &str = "berth";

/// A `CDN-Loop` identity unique to this process, so chains of different
/// berth servers are not mistaken for loops (servers set it in
/// [`OutboundConfig::loop_identity`]).
pub fn process_loop_identity() -> String {
    static IDENTITY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IDENTITY
        .get_or_init(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            format!("berth-{:x}{:08x}", std::process::id(), nanos)
        })
        .clone()
}

/// How guests' outgoing requests are sent and what they may reach.
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// Destinations guests may reach (deny-by-default: empty denies all).
    pub allow: Vec<HostPattern>,
    /// Extra PEM files of trusted CA certificates.
    pub ca_files: Vec<PathBuf>,
    /// Also trust the system certificate store (on by default).
    pub system_roots: bool,
    /// Hosts reached over cleartext HTTP/2 with prior knowledge (h2c).
    pub h2c_hosts: Vec<HostPattern>,
    /// Timeouts used when a guest sets none.
    pub connect_timeout: Duration,
    /// See [`DEFAULT_FIRST_BYTE_TIMEOUT`].
    pub first_byte_timeout: Duration,
    /// See [`DEFAULT_BETWEEN_BYTES_TIMEOUT`].
    pub between_bytes_timeout: Duration,
    /// Ceilings for what a guest asks (`request-options` are clamped).
    pub max_connect_timeout: Duration,
    /// See [`MAX_FIRST_BYTE_TIMEOUT`].
    pub max_first_byte_timeout: Duration,
    /// See [`MAX_BETWEEN_BYTES_TIMEOUT`].
    pub max_between_bytes_timeout: Duration,
    /// See [`DEFAULT_POOL_IDLE_TIMEOUT`].
    pub pool_idle_timeout: Duration,
    /// See [`DEFAULT_MAX_CONNECTIONS_PER_ORIGIN`].
    pub max_connections_per_origin: usize,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`DEFAULT_LOOP_IDENTITY`].
    pub loop_identity: String,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            ca_files: Vec::new(),
            system_roots: true,
            h2c_hosts: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            first_byte_timeout: DEFAULT_FIRST_BYTE_TIMEOUT,
            between_bytes_timeout: DEFAULT_BETWEEN_BYTES_TIMEOUT,
            max_connect_timeout: MAX_CONNECT_TIMEOUT,
            max_first_byte_timeout: MAX_FIRST_BYTE_TIMEOUT,
            max_between_bytes_timeout: MAX_BETWEEN_BYTES_TIMEOUT,
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
            max_connections_per_origin: DEFAULT_MAX_CONNECTIONS_PER_ORIGIN,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            loop_identity: DEFAULT_LOOP_IDENTITY.to_owned(),
        }
    }
}

/// Effective timeouts for one request: the guest's wishes clamped to the
/// host's ceilings, defaults where the guest set none. A zero timeout is
/// treated as "not set".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connect (TCP + TLS).
    pub connect: Duration,
    /// First byte of the response head.
    pub first_byte: Duration,
    /// Gap between body bytes.
    pub between_bytes: Duration,
}

impl OutboundConfig {
    /// Clamps a guest's `request-options`.
    pub fn timeouts(&self, asked: berth_http::RequestTimeouts) -> Timeouts {
        fn pick(asked: Option<Duration>, default: Duration, max: Duration) -> Duration {
            asked.filter(|d| !d.is_zero()).unwrap_or(default).min(max)
        }
        Timeouts {
            connect: pick(
                asked.connect,
                self.connect_timeout,
                self.max_connect_timeout,
            ),
            first_byte: pick(
                asked.first_byte,
                self.first_byte_timeout,
                self.max_first_byte_timeout,
            ),
            between_bytes: pick(
                asked.between_bytes,
                self.between_bytes_timeout,
                self.max_between_bytes_timeout,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_timeouts_are_clamped_and_defaulted() {
        let config = OutboundConfig::default();
        let t = config.timeouts(berth_http::RequestTimeouts {
            connect: Some(Duration::from_secs(u64::MAX / 2)),
            first_byte: Some(Duration::ZERO),
            between_bytes: Some(Duration::from_millis(5)),
        });
        assert_eq!(t.connect, MAX_CONNECT_TIMEOUT);
        assert_eq!(t.first_byte, DEFAULT_FIRST_BYTE_TIMEOUT);
        assert_eq!(t.between_bytes, Duration::from_millis(5));
    }
}
