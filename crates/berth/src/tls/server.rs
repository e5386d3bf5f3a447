//! The rustls server side (the `tls` feature).

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{DEFAULT_HANDSHAKE_TIMEOUT, TlsError, TlsPaths};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks a certificate chain and its key.
fn load(paths: &TlsPaths) -> Result<Arc<CertifiedKey>, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read(&paths.cert)?;
    let certificate = |reason: String| TlsError::Certificate {
        path: paths.cert.clone(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| certificate(e.to_string()))?;
    if certs.is_empty() {
        return Err(certificate("no CERTIFICATE block found".into()));
    }
    let key_pem = read(&paths.key)?;
    let key_error = |reason: String| TlsError::Key {
        path: paths.key.clone(),
        reason,
    };
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| key_error(e.to_string()))?;
    let key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| key_error(e.to_string()))?;
    let certified = CertifiedKey::new(certs, key);
    // The key must belong to the leaf certificate.
    certified
        .keys_match()
        .map_err(|e| key_error(format!("it does not match {}: {e}", paths.cert.display())))?;
    Ok(Arc::new(certified))
}

/// Reads and checks every pair; the first error wins.
fn load_all(pairs: &[TlsPaths]) -> Result<Arc<[Arc<CertifiedKey>]>, TlsError> {
    pairs.iter().map(load).collect()
}

/// Whether `key`'s leaf certificate is valid for `name`.
fn covers(key: &CertifiedKey, name: &rustls_pki_types::ServerName<'_>) -> bool {
    let Some(leaf) = key.cert.first() else {
        return false;
    };
    webpki::EndEntityCert::try_from(leaf)
        .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(name).is_ok())
}

/// Hands out a certificate of the current set on every handshake, chosen
/// by SNI.
#[derive(Debug)]
struct Resolver {
    current: RwLock<Arc<[Arc<CertifiedKey>]>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let keys = self.current.read().ok()?.clone();
        let by_name = hello
            .server_name()
            .and_then(|name| rustls_pki_types::ServerName::try_from(name).ok())
            .and_then(|name| keys.iter().find(|key| covers(key, &name)));
        by_name.or_else(|| keys.first()).cloned()
    }
}

/// A TLS terminator: the acceptor the front-end uses and the handle that
/// reloads its certificate. Cheap to clone.
#[derive(Clone)]
pub struct Tls {
    /// The pairs, the default (no SNI, or no match) first.
    paths: Vec<TlsPaths>,
    resolver: Arc<Resolver>,
    acceptor: tokio_rustls::TlsAcceptor,
    /// See [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("paths", &self.paths)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the certificate and key; an error names the file and what is
    /// wrong with it.
    pub fn load(paths: TlsPaths) -> Result<Self, TlsError> {
        Self::load_all(vec![paths])
    }

    /// Loads several pairs, chosen per handshake by SNI (see the module
    /// docs); the first is the default. An error names the file and what
    /// is wrong with it.
    ///
    /// # Panics
    ///
    /// When `pairs` is empty.
    pub fn load_all(pairs: Vec<TlsPaths>) -> Result<Self, TlsError> {
        assert!(!pairs.is_empty(), "Tls::load_all needs at least one pair");
        let resolver = Arc::new(Resolver {
            current: RwLock::new(load_all(&pairs)?),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Certificate {
                path: pairs[0].cert.clone(),
                reason: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            paths: pairs,
            resolver,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }

    /// Reads the files again and serves the new pair from the next
    /// handshake on. A bad pair is refused (logged, returned) and the old
    /// one keeps serving.
    pub fn reload(&self) -> Result<(), TlsError> {
        match load_all(&self.paths) {
            Ok(keys) => {
                if let Ok(mut current) = self.resolver.current.write() {
                    *current = keys;
                }
                let certs: Vec<_> = self.paths.iter().map(|p| p.cert.display()).collect();
                tracing::info!(certs = ?certs, "TLS certificates reloaded");
                Ok(())
            }
            Err(err) => {
                tracing::warn!("TLS certificate not reloaded, the old one keeps serving: {err}");
                Err(err)
            }
        }
    }

    /// Checks the files every `interval` and reloads when either changed
    /// (modification time or size). Runs until dropped.
    pub async fn watch(self, interval: Duration) {
        let stamp = |path: &Path| {
            std::fs::metadata(path)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
        };
        let stamps = || {
            self.paths
                .iter()
                .map(|p| (stamp(&p.cert), stamp(&p.key)))
                .collect::<Vec<_>>()
        };
        let mut seen = stamps();
        loop {
            tokio::time::sleep(interval).await;
            let now = stamps();
            if now != seen {
                seen = now;
                // A failed reload is logged; the next change tries again.
                let _ = self.reload();
            }
        }
    }

    /// The acceptor for incoming connections.
    pub(crate) fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }
}
