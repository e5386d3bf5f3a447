//! Test helpers shared by berth's crates: a throwaway certificate authority
//! for HTTPS origins on loopback. Test code only; it panics on failure.

#![allow(
    clippy::expect_used,
    reason = "test helpers fail the test on unexpected errors"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A TLS server identity for `names`, signed by a fresh CA whose
/// certificate is written to a PEM file (to pass as a CA file).
#[derive(Debug)]
pub struct TestTls {
    /// The CA certificate, PEM, on disk.
    pub ca_file: PathBuf,
    cert: rustls_pki_types::CertificateDer<'static>,
    key: Vec<u8>,
}

impl TestTls {
    /// Creates the CA and a leaf certificate for `names`.
    pub fn new(names: &[&str]) -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let names = names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let cert = rcgen::CertificateParams::new(names)
            .expect("leaf params")
            .signed_by(&key, &issuer)
            .expect("leaf certificate");
        static N: AtomicUsize = AtomicUsize::new(0);
        let ca_file = std::env::temp_dir().join(format!(
            "berth-test-ca-{}-{}.pem",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&ca_file, ca_cert.pem()).expect("write CA file");
        Self {
            ca_file,
            cert: cert.der().clone(),
            key: key.serialize_der(),
        }
    }

    /// A TLS acceptor presenting the leaf certificate and offering `alpn`.
    pub fn acceptor(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
        let key =
            rustls_pki_types::PrivateKeyDer::try_from(self.key.clone()).expect("leaf key DER");
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![self.cert.clone()], key)
        .expect("server config");
        server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsAcceptor::from(Arc::new(server))
    }
}
