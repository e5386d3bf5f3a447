//! # berth-outbound: the outgoing HTTP client for guests
//!
//! [`DefaultClient`] implements [`berth_http::OutboundClient`]: keep-alive
//! connection reuse per origin (`pool`), HTTP/1.1 and HTTP/2 (ALPN over
//! TLS, h2c prior knowledge for configured hosts), rustls with webpki roots,
//! the system store and extra CA files ([`tls`]), clamped timeouts
//! ([`config`]), an egress policy checked before any connection is made
//! ([`policy`]) and precise `error-code`s for every failure it can tell
//! apart. The resolver and dialer are hooks ([`dial`]) so tests can prove
//! denied destinations are never dialed.

mod body;
mod client;
pub mod config;
pub mod dial;
mod error;
pub mod policy;
mod pool;
pub mod tls;

pub use client::{DefaultClient, MAX_RESPONSE_HEAD, PoolGauge};
pub use config::OutboundConfig;
pub use policy::{EgressPolicy, HostPattern};
