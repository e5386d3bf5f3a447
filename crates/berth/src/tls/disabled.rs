//! `Tls` without the `tls` feature: never constructed (loading refuses
//! with [`TlsError::NotBuilt`]), so the front-end's TLS path is dead code.

use std::time::Duration;

use super::{TlsError, TlsPaths};

/// A TLS terminator; this build has none (see [`TlsError::NotBuilt`]).
#[derive(Debug, Clone)]
pub struct Tls {
    never: std::convert::Infallible,
    /// See [`super::DEFAULT_HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
}

impl Tls {
    /// Refuses: this build has no TLS.
    pub fn load(_paths: TlsPaths) -> Result<Self, TlsError> {
        Err(TlsError::NotBuilt)
    }

    /// Refuses: this build has no TLS.
    pub fn load_all(_pairs: Vec<TlsPaths>) -> Result<Self, TlsError> {
        Err(TlsError::NotBuilt)
    }

    /// Never called (no `Tls` exists in this build).
    pub fn reload(&self) -> Result<(), TlsError> {
        match self.never {}
    }

    /// Never called (no `Tls` exists in this build).
    pub async fn watch(self, _interval: Duration) {
        match self.never {}
    }

    /// Unreachable: no `Tls` exists in this build.
    pub(crate) fn unreachable(&self) -> ! {
        match self.never {}
    }
}
