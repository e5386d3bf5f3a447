//! Test helpers shared by berth's crates: origin servers on loopback (plain
//! HTTP/1.1 + h2c, or HTTPS with a throwaway certificate authority). Test
//! code only; it panics on failure.

#![allow(
    clippy::expect_used,
    reason = "test helpers fail the test on unexpected errors"
)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
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

/// A running origin: its address and how many connections it accepted.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Where it listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    /// Connections accepted so far (to observe connection reuse).
    pub connections: Arc<AtomicUsize>,
}

/// Serves `handler` on a new loopback port with hyper-util's auto builder
/// (HTTP/1.1 and HTTP/2), over TLS when `tls` is given.
pub async fn spawn_origin<F, Fut, B>(handler: F, tls: Option<tokio_rustls::TlsAcceptor>) -> Origin
where
    F: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<hyper::Response<B>, Infallible>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            let tls = tls.clone();
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                let service = hyper::service::service_fn(handler);
                let _ = match tls {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(tls) => {
                            builder
                                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                                .await
                        }
                        Err(_) => return,
                    },
                    None => {
                        builder
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await
                    }
                };
            });
        }
    });
    Origin { addr, connections }
}
