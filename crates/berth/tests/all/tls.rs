//! TLS termination: ALPN, the scheme guests see, certificate reloads with
//! no failed request, bad pairs refused, handshakes that never finish.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth::tls::{Tls, TlsPaths};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// A certificate authority and the PEM files of leaves it signs.
struct Pki {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    root: CertificateDer<'static>,
    dir: PathBuf,
}

impl Pki {
    fn new() -> Self {
        Self::named("berth test CA")
    }

    /// A CA whose certificate names itself `name`.
    fn named(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "berth-tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let root = params.self_signed(&key).unwrap().der().clone();
        Self {
            issuer: rcgen::Issuer::new(params, key),
            root,
            dir,
        }
    }

    /// Writes a new leaf for `localhost` (`cert.pem`, `key.pem`) and returns
    /// its DER, to recognise it in handshakes.
    fn issue(&self) -> CertificateDer<'static> {
        self.issue_for(&["localhost"], "")
    }

    /// Writes a new leaf for `names` (`{prefix}cert.pem`,
    /// `{prefix}key.pem`) and returns its DER.
    fn issue_for(&self, names: &[&str], prefix: &str) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let names = names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        std::fs::write(self.dir.join(format!("{prefix}cert.pem")), cert.pem()).unwrap();
        std::fs::write(
            self.dir.join(format!("{prefix}key.pem")),
            key.serialize_pem(),
        )
        .unwrap();
        cert.der().clone()
    }

    fn paths(&self) -> TlsPaths {
        self.paths_for("")
    }

    fn paths_for(&self, prefix: &str) -> TlsPaths {
        TlsPaths {
            cert: self.dir.join(format!("{prefix}cert.pem")),
            key: self.dir.join(format!("{prefix}key.pem")),
        }
    }

    fn connector(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.root.clone()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

async fn tls_server(tls: Tls) -> TestServer {
    TestServer::start_with_server_config(
        "suite",
        berth::ServerConfig {
            tls: Some(tls),
            ..test_server_config()
        },
    )
    .await
}

/// One GET over a new TLS connection offering `alpn`: the negotiated
/// protocol, the server's leaf certificate, the status and body.
async fn get_tls(
    server: &TestServer,
    pki: &Pki,
    alpn: &[&[u8]],
    path: &str,
) -> Result<(Option<Vec<u8>>, CertificateDer<'static>, u16, String), String> {
    let tcp = TcpStream::connect(server.addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").unwrap();
    let stream = pki
        .connector(alpn)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (_, session) = stream.get_ref();
    let negotiated = session.alpn_protocol().map(<[u8]>::to_vec);
    let leaf = session.peer_certificates().unwrap()[0].clone();
    let request = http::Request::get(format!("https://localhost{path}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let io = TokioIo::new(stream);
    let response = if negotiated.as_deref() == Some(b"h2") {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(request).await
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut request = request;
        request
            .headers_mut()
            .insert("host", "localhost".parse().unwrap());
        send.send_request(request).await
    }
    .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((
        negotiated,
        leaf,
        status,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

#[tokio::test]
async fn alpn_picks_h2_or_http11_and_guests_see_https() {
    let pki = Pki::new();
    pki.issue();
    let server = tls_server(Tls::load(pki.paths()).unwrap()).await;
    for (offer, expect) in [
        (&[&b"h2"[..], b"http/1.1"][..], Some(&b"h2"[..])),
        (&[&b"http/1.1"[..]][..], Some(&b"http/1.1"[..])),
        (&[][..], None),
    ] {
        let (negotiated, _, status, body) = get_tls(&server, &pki, offer, "/info").await.unwrap();
        assert_eq!(negotiated.as_deref(), expect, "{offer:?}");
        assert_eq!(status, 200);
        assert!(body.contains("scheme=https\n"), "{body}");
        assert!(body.contains("authority=localhost\n"), "{body}");
    }
    server.assert_idle().await;
}

/// The documented behaviour for names and issuers the server does not
/// match: with one certificate, every SNI (another name, none at all for
/// an IP address) is answered with it, so a client asking for another name
/// rejects it (`NotValidForName`), as does a client that does not trust its
/// issuer (`UnknownIssuer`); the server logs the alert and keeps serving.
#[tokio::test]
async fn wrong_names_and_unknown_issuers_fail_on_the_client_only() {
    let pki = Pki::new();
    pki.issue();
    let server = tls_server(Tls::load(pki.paths()).unwrap()).await;
    let handshake = |connector: tokio_rustls::TlsConnector, name: &'static str| async move {
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let name = ServerName::try_from(name).unwrap();
        connector.connect(name, tcp).await.map(|_| ())
    };
    let wrong_name = handshake(pki.connector(&[]), "other.test").await;
    let err = wrong_name.expect_err("a certificate for localhost accepted as other.test");
    assert!(err.to_string().contains("not valid for name"), "{err}");

    let stranger = Pki::named("another CA"); // its clients trust only it
    let unknown_ca = handshake(stranger.connector(&[]), "localhost").await;
    let err = unknown_ca.expect_err("a certificate from an unknown issuer accepted");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    // No SNI at all (an IP address): the same certificate, which names
    // localhost only, so a verifying client refuses it too.
    let no_sni = handshake(pki.connector(&[]), "127.0.0.1").await;
    assert!(no_sni.is_err());

    // The server is unharmed.
    let (_, _, status, _) = get_tls(&server, &pki, &[b"h2"], "/hello").await.unwrap();
    assert_eq!(status, 200);
}

/// Several pairs chosen by SNI: each name (a wildcard too) gets the leaf
/// that covers it; a name no pair covers gets the first pair's leaf.
#[tokio::test]
async fn certificates_are_chosen_by_sni() {
    let pki = Pki::new();
    let localhost = pki.issue();
    let other = pki.issue_for(&["other.test", "*.wild.test"], "other-");
    let tls = Tls::load_all(vec![pki.paths(), pki.paths_for("other-")]).unwrap();
    let server = tls_server(tls).await;
    let leaf = |name: &'static str| {
        let connector = pki.connector(&[]);
        async move {
            let tcp = TcpStream::connect(server.addr).await.unwrap();
            let name = ServerName::try_from(name).unwrap();
            let stream = connector.connect(name, tcp).await?;
            Ok::<_, std::io::Error>(stream.get_ref().1.peer_certificates().unwrap()[0].clone())
        }
    };
    assert_eq!(leaf("localhost").await.unwrap(), localhost);
    assert_eq!(leaf("other.test").await.unwrap(), other);
    assert_eq!(leaf("a.wild.test").await.unwrap(), other);
    // Nobody covers it: the first pair's leaf, which the client refuses.
    let err = leaf("nobody.test").await.unwrap_err().to_string();
    assert!(
        err.contains("localhost") && !err.contains("other.test"),
        "{err}"
    );
    let (_, served, status, _) = get_tls(&server, &pki, &[b"h2"], "/hello").await.unwrap();
    assert_eq!((served, status), (localhost, 200));
}

#[tokio::test]
async fn certificates_rotate_under_load_with_no_failed_request() {
    let pki = Pki::new();
    let first = pki.issue();
    let tls = Tls::load(pki.paths()).unwrap();
    let server = tls_server(tls.clone()).await;
    assert_eq!(
        get_tls(&server, &pki, &[b"h2"], "/hello").await.unwrap().1,
        first
    );

    let server = Arc::new(server);
    let pki = Arc::new(pki);
    let load = {
        let (server, pki) = (server.clone(), pki.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..60 {
                let alpn: &[&[u8]] = if i % 2 == 0 { &[b"h2"] } else { &[b"http/1.1"] };
                statuses.push(get_tls(&server, &pki, alpn, "/hello").await.map(|r| r.2));
            }
            statuses
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = pki.issue();
    tls.reload().unwrap();
    let statuses = load.await.unwrap();
    assert!(
        statuses.iter().all(|s| s == &Ok(200)),
        "failed during rotation: {statuses:?}"
    );
    assert_eq!(
        get_tls(&server, &pki, &[b"h2"], "/hello").await.unwrap().1,
        second
    );

    // A file change alone is enough (the watcher checks every 2 s).
    let third = pki.issue();
    let mut served = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        served = Some(get_tls(&server, &pki, &[b"h2"], "/hello").await.unwrap().1);
        if served.as_ref() == Some(&third) {
            break;
        }
    }
    assert_eq!(served, Some(third), "the changed files were not picked up");
}

#[tokio::test]
async fn a_bad_new_pair_is_refused_and_the_old_one_keeps_serving() {
    let pki = Pki::new();
    let first = pki.issue();
    let tls = Tls::load(pki.paths()).unwrap();
    let server = tls_server(tls.clone()).await;
    // A key that belongs to another certificate.
    let key = std::fs::read(pki.dir.join("key.pem")).unwrap();
    pki.issue();
    std::fs::write(pki.dir.join("key.pem"), key).unwrap();
    let err = tls.reload().unwrap_err().to_string();
    assert!(
        err.contains("key.pem") && err.contains("does not match"),
        "{err}"
    );
    std::fs::write(pki.dir.join("cert.pem"), "junk").unwrap();
    let err = tls.reload().unwrap_err().to_string();
    assert!(err.contains("cert.pem"), "{err}");
    let (_, leaf, status, _) = get_tls(&server, &pki, &[b"h2"], "/hello").await.unwrap();
    assert_eq!((leaf, status), (first, 200));
}

#[tokio::test]
async fn unusable_files_are_refused_at_load_naming_the_file() {
    let pki = Pki::new();
    pki.issue();
    let missing = TlsPaths {
        cert: pki.dir.join("nope.pem"),
        ..pki.paths()
    };
    let err = Tls::load(missing).unwrap_err().to_string();
    assert!(
        err.contains("nope.pem") && err.contains("cannot read"),
        "{err}"
    );
    std::fs::write(pki.dir.join("key.pem"), "-----BEGIN NOTHING-----\n").unwrap();
    let err = Tls::load(pki.paths()).unwrap_err().to_string();
    assert!(
        err.contains("key.pem") && err.contains("private key"),
        "{err}"
    );
}

#[tokio::test]
async fn handshakes_that_stall_or_send_junk_are_closed() {
    let pki = Pki::new();
    pki.issue();
    let mut tls = Tls::load(pki.paths()).unwrap();
    tls.handshake_timeout = Duration::from_secs(1);
    let metrics = berth::metrics::Metrics::new();
    let server_config = berth::ServerConfig {
        tls: Some(tls),
        ..test_server_config()
    };
    let server = TestServer::start_with_service("suite", server_config, |service| {
        service.with_metrics(metrics.clone())
    })
    .await;
    // A client that connects and never says hello.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // One that sends plaintext HTTP to the TLS port.
    let mut junk = TcpStream::connect(server.addr).await.unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    for (what, stream) in [("silent", &mut silent), ("junk", &mut junk)] {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "{what} connection still open");
    }
    assert_eq!(
        get_tls(&server, &pki, &[b"http/1.1"], "/hello")
            .await
            .unwrap()
            .2,
        200
    );
    // Both are counted, each with its reason.
    let text = metrics.encode();
    for reason in ["error", "timeout"] {
        let line = format!("berth_tls_handshake_failures_total{{reason=\"{reason}\"}} 1");
        assert!(text.contains(&line), "no `{line}` in\n{text}");
    }
}
