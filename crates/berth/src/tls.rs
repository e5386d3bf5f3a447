//! TLS termination for the front-end (rustls): a certificate chain and key
//! from PEM files, ALPN `h2` and `http/1.1`, TLS 1.2 and 1.3 only, a
//! handshake deadline, and reloads that never drop a connection.
//!
//! The certificate is served by a resolver that reads the current key on
//! every handshake; [`Tls::reload`] (SIGHUP in the CLI) and [`Tls::watch`]
//! (file changes) swap it. A bad new pair is refused with a log line and
//! the old one keeps serving. Connections already established keep the key
//! they started with. Several certificates chosen by SNI will come with the
//! config file; the resolver is where they will be picked.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Default time a client has to finish the TLS handshake (10 s).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default interval between checks of the certificate and key files for
/// changes (2 s).
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Why a certificate and key could not be used; names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
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

/// Hands out the current certificate on every handshake.
#[derive(Debug)]
struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|key| key.clone())
    }
}

/// A TLS terminator: the acceptor the front-end uses and the handle that
/// reloads its certificate. Cheap to clone.
#[derive(Clone)]
pub struct Tls {
    paths: TlsPaths,
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
        let resolver = Arc::new(Resolver {
            current: RwLock::new(load(&paths)?),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Certificate {
                path: paths.cert.clone(),
                reason: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            paths,
            resolver,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }

    /// Reads the files again and serves the new pair from the next
    /// handshake on. A bad pair is refused (logged, returned) and the old
    /// one keeps serving.
    pub fn reload(&self) -> Result<(), TlsError> {
        match load(&self.paths) {
            Ok(key) => {
                if let Ok(mut current) = self.resolver.current.write() {
                    *current = key;
                }
                tracing::info!(cert = %self.paths.cert.display(), "TLS certificate reloaded");
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
        let stamps = || (stamp(&self.paths.cert), stamp(&self.paths.key));
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
