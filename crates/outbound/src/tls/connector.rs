//! The rustls connector (the `tls` feature).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::TlsConfigError;

/// The TLS connector, built on first use. CA files are read (and checked)
/// when the client is created, so a bad `--ca-file` fails at startup; the
/// system store is read on a background thread when egress is possible at
/// all (and never otherwise), since walking `/etc/ssl/certs` costs
/// milliseconds of CPU that an app's start-up should not pay. A first TLS
/// connection made before it is done waits for it.
pub struct LazyConnector {
    cell: Arc<OnceLock<tokio_rustls::TlsConnector>>,
    builder: Builder,
    extra: Arc<Vec<CertificateDer<'static>>>,
    system_roots: bool,
}

impl std::fmt::Debug for LazyConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyConnector")
            .field("ready", &self.cell.get().is_some())
            .field("extra_roots", &self.extra.len())
            .field("system_roots", &self.system_roots)
            .finish()
    }
}

impl LazyConnector {
    /// Reads `ca_files` now; with `warm_up`, starts loading the rest in the
    /// background, otherwise on the first TLS connection.
    pub fn new(
        ca_files: &[impl AsRef<Path>],
        system_roots: bool,
        warm_up: bool,
    ) -> Result<Self, TlsConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsConfigError::Protocol(e.to_string()))?;
        let connector = Self {
            cell: Arc::new(OnceLock::new()),
            builder,
            extra: Arc::new(read_ca_files(ca_files)?),
            system_roots,
        };
        if !warm_up {
            return Ok(connector);
        }
        let warm = Self {
            cell: connector.cell.clone(),
            builder: connector.builder.clone(),
            extra: connector.extra.clone(),
            system_roots,
        };
        // If the thread cannot start, the first TLS connection builds it.
        let _ = std::thread::Builder::new()
            .name("berth-tls-roots".into())
            .spawn(move || {
                warm.get();
            });
        Ok(connector)
    }

    /// Opens TLS over `io` to `host` (its name is the SNI and the name the
    /// certificate must carry).
    pub async fn connect<IO>(
        &self,
        host: &str,
        io: IO,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<IO>>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let name = rustls_pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        self.get().connect(name, io).await
    }

    /// The connector, building it now if the background load has not.
    pub fn get(&self) -> &tokio_rustls::TlsConnector {
        self.cell.get_or_init(|| {
            let config = client_config(self.builder.clone(), &self.extra, self.system_roots);
            tokio_rustls::TlsConnector::from(config)
        })
    }
}

fn read_ca_files(
    ca_files: &[impl AsRef<Path>],
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let mut all = Vec::new();
    for path in ca_files {
        let path = path.as_ref();
        let err = |reason: String| TlsConfigError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| err(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| err(e.to_string()))?;
        if certs.is_empty() {
            return Err(err("no PEM certificates found".into()));
        }
        // Parse now: a file that is PEM but not a certificate fails here.
        let mut check = RootCertStore::empty();
        for cert in &certs {
            check.add(cert.clone()).map_err(|e| err(e.to_string()))?;
        }
        all.extend(certs);
    }
    Ok(all)
}

/// Builds the client config: webpki roots, the system store (when asked),
/// and `extra` roots (already checked by [`LazyConnector::new`]).
fn client_config(
    builder: Builder,
    extra: &[CertificateDer<'static>],
    system_roots: bool,
) -> Arc<rustls::ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if system_roots {
        let native = rustls_native_certs::load_native_certs();
        for err in &native.errors {
            tracing::debug!("system certificate store: {err}");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, ignored, "system certificates loaded");
    }
    roots.add_parsable_certificates(extra.iter().cloned());
    let mut config = builder.with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A client config builder with the provider and protocol versions chosen.
type Builder = rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier>;

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("berth-tls-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_bad_ca_file_fails_when_the_client_is_created() {
        let empty = temp("empty.pem", "not a certificate\n");
        let err = LazyConnector::new(&[&empty], false, false).unwrap_err();
        assert!(
            err.to_string().contains("no PEM certificates found"),
            "{err}"
        );
        let missing = Path::new("/nonexistent/ca.pem");
        assert!(LazyConnector::new(&[missing], false, false).is_err());
        let junk = temp(
            "junk.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        assert!(LazyConnector::new(&[&junk], false, false).is_err());
    }

    #[test]
    fn the_connector_is_built_once_on_demand() {
        let connector = LazyConnector::new(&[] as &[&Path], false, false).unwrap();
        // Not warmed up: nothing is built until a connection asks for it.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(connector.cell.get().is_none());
        let first: *const _ = connector.get();
        let second: *const _ = connector.get();
        assert_eq!(first, second);
    }

    #[test]
    fn warming_up_builds_the_connector_in_the_background() {
        let connector = LazyConnector::new(&[] as &[&Path], false, true).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while connector.cell.get().is_none() {
            assert!(std::time::Instant::now() < deadline, "never built");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
