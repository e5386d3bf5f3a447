//! TLS client configuration: webpki roots, the system store, extra CA files;
//! ALPN offers HTTP/2 and HTTP/1.1.

#[cfg(feature = "tls")]
mod connector;

#[cfg(feature = "tls")]
pub use connector::LazyConnector;

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A CA file could not be read or holds no certificate.
    #[error("CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The TLS provider rejected the protocol versions.
    #[error("TLS configuration: {0}")]
    Protocol(String),
}
