//! TLS termination for the front-end (rustls): certificate chains and keys
//! from PEM files, chosen by SNI, ALPN `h2` and `http/1.1`, TLS 1.2 and 1.3
//! only, a handshake deadline, and reloads that never drop a connection.
//!
//! Certificates are served by a resolver that reads the current set on
//! every handshake: the first pair whose leaf certificate is valid for the
//! name the client asked for (SNI; wildcard certificates included), else
//! the first pair (clients that send no SNI, names no pair covers).
//! [`Tls::reload`] (SIGHUP in the CLI) and [`Tls::watch`] (file changes)
//! swap the whole set; a bad new pair is refused with a log line and the
//! old set keeps serving. Connections already established keep the key
//! they started with.

//!
//! Needs the `tls` feature (on by default); without it, [`Tls::load`]
//! refuses with [`TlsError::NotBuilt`] and the front-end serves cleartext
//! only.

use std::path::PathBuf;
use std::time::Duration;

#[cfg(not(feature = "tls"))]
mod disabled;
#[cfg(feature = "tls")]
mod server;

#[cfg(not(feature = "tls"))]
pub use disabled::Tls;
#[cfg(feature = "tls")]
pub use server::Tls;

/// Default time a client has to finish the TLS handshake (10 s).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default interval between checks of the certificate and key files for
/// changes (2 s).
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Why a certificate and key could not be used; names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// berth was built without its `tls` feature.
    #[error("TLS is not available: berth was built without its `tls` feature")]
    NotBuilt,
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no usable PEM certificate.
    #[error("{path} holds no PEM certificate ({reason})")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key file holds no usable private key.
    #[error("{path} holds no usable private key: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong (expected PKCS#8, RSA or SEC1 PEM).
        reason: String,
    },
}

/// Where the server's certificate chain and private key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key: PathBuf,
}
