//! DefaultClient against real loopback upstreams: a hyper origin (HTTP/1.1,
//! h2c, and HTTPS with ALPN and a CA generated at test time) and raw-TCP
//! upstreams that misbehave. Denied destinations are checked through the
//! resolver/dialer hooks: they must never be dialed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test on unexpected errors"
)]

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_http::{ErrorCode, HostBody, OutboundClient, RequestTimeouts};
use berth_outbound::dial::{BoxFuture, Dial, Resolve, TcpDialer};
use berth_outbound::{DefaultClient, OutboundConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------- upstreams

async fn origin_handler(
    req: http::Request<Incoming>,
) -> Result<http::Response<HostBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let version = format!("{:?}", req.version());
    let host = req
        .headers()
        .get("host")
        .map(|h| h.to_str().unwrap_or("").to_owned())
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let cdn_loop = req
        .headers()
        .get("cdn-loop")
        .map(|v| v.to_str().unwrap().to_owned());
    match path.as_str() {
        "/echo" => {
            // Stream the body back; request trailers become response trailers.
            let body = req
                .into_body()
                .map_err(|_| ErrorCode::ConnectionTerminated)
                .boxed();
            Ok(http::Response::new(body))
        }
        "/redirect" => Ok(http::Response::builder()
            .status(302)
            .header("location", "http://169.254.169.254/")
            .body(full("moved"))
            .unwrap()),
        _ => {
            let text =
                format!("version={version}\nhost={host}\npath={path}\ncdn-loop={cdn_loop:?}\n");
            Ok(http::Response::new(full(text)))
        }
    }
}

fn full(text: impl Into<Bytes>) -> HostBody {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A plain-text origin speaking HTTP/1.1 and h2c on one port.
async fn origin() -> (SocketAddr, Arc<AtomicUsize>) {
    let origin = berth_test_support::spawn_origin(origin_handler, None).await;
    (origin.addr, origin.connections)
}

struct TlsOrigin {
    addr: SocketAddr,
    ca_file: std::path::PathBuf,
}

/// An HTTPS origin with a certificate for `name`, signed by a fresh CA.
async fn tls_origin(name: &str) -> TlsOrigin {
    let tls = berth_test_support::TestTls::new(&[name]);
    let acceptor = tls.acceptor(&[b"h2", b"http/1.1"]);
    let origin = berth_test_support::spawn_origin(origin_handler, Some(acceptor)).await;
    TlsOrigin {
        addr: origin.addr,
        ca_file: tls.ca_file,
    }
}

/// A raw TCP upstream that answers every connection with `reply` (then
/// optionally stalls), to produce broken HTTP.
async fn raw_upstream(reply: &'static [u8], stall: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(reply).await;
                if stall {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            });
        }
    });
    addr
}

// ------------------------------------------------------------------- hooks

/// Resolves every name from a fixed table; `hang.test` never answers.
struct FixedResolver(Vec<(String, Result<Vec<SocketAddr>, &'static str>)>);

impl Resolve for FixedResolver {
    fn resolve(&self, host: &str, _port: u16) -> BoxFuture<io::Result<Vec<SocketAddr>>> {
        if host == "hang.test" {
            return Box::pin(std::future::pending());
        }
        let answer = self
            .0
            .iter()
            .find(|(h, _)| h == host)
            .map(|(_, a)| a.clone())
            .unwrap_or(Err("Name or service not known"));
        Box::pin(async move { answer.map_err(io::Error::other) })
    }
}

/// Records every address dialed, then dials it (or hangs, for timeouts).
#[derive(Default)]
struct RecordingDialer {
    dialed: Mutex<Vec<SocketAddr>>,
    hang: bool,
}

impl Dial for RecordingDialer {
    fn dial(&self, addr: SocketAddr) -> BoxFuture<io::Result<TcpStream>> {
        self.dialed.lock().unwrap().push(addr);
        let hang = self.hang;
        Box::pin(async move {
            if hang {
                std::future::pending::<()>().await;
            }
            TcpDialer.dial(addr).await
        })
    }
}

fn config(allow: &[&str]) -> OutboundConfig {
    OutboundConfig {
        allow: allow.iter().map(|p| p.parse().unwrap()).collect(),
        system_roots: false,
        connect_timeout: Duration::from_secs(2),
        first_byte_timeout: Duration::from_secs(2),
        between_bytes_timeout: Duration::from_secs(2),
        loop_identity: "berth-test".into(),
        ..OutboundConfig::default()
    }
}

fn client_with(
    config: OutboundConfig,
    resolver: FixedResolver,
) -> (DefaultClient, Arc<RecordingDialer>) {
    let dialer = Arc::new(RecordingDialer::default());
    let client = DefaultClient::with_hooks(config, Arc::new(resolver), dialer.clone()).unwrap();
    (client, dialer)
}

fn get(url: &str) -> http::Request<HostBody> {
    http::Request::builder().uri(url).body(full("")).unwrap()
}

async fn text(response: http::Response<HostBody>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn send(
    client: &DefaultClient,
    req: http::Request<HostBody>,
) -> Result<http::Response<HostBody>, ErrorCode> {
    client.send(req, RequestTimeouts::default()).await
}

// ------------------------------------------------------------------- tests

#[tokio::test]
async fn http1_requests_reuse_one_pooled_connection() {
    let (addr, stats) = origin().await;
    let (client, dialer) = client_with(config(&["127.0.0.1"]), FixedResolver(vec![]));
    for _ in 0..20 {
        let resp = send(&client, get(&format!("http://{addr}/hello?x=1")))
            .await
            .unwrap();
        let body = text(resp).await;
        assert!(body.contains("version=HTTP/1.1"), "{body}");
        assert!(
            body.contains(&format!("host={addr}")),
            "Host derived from authority: {body}"
        );
        assert!(body.contains("path=/hello"));
        assert!(body.contains("cdn-loop=Some(\"berth-test\")"), "{body}");
    }
    assert_eq!(stats.load(Ordering::Relaxed), 1);
    assert_eq!(dialer.dialed.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn h2c_prior_knowledge_is_opt_in_per_host() {
    let (addr, stats) = origin().await;
    let mut cfg = config(&["127.0.0.1"]);
    cfg.h2c_hosts = vec!["127.0.0.1".parse().unwrap()];
    let (client, _) = client_with(cfg, FixedResolver(vec![]));
    let mut handles = Vec::new();
    for _ in 0..10 {
        let client = client.clone();
        handles.push(tokio::spawn(async move {
            text(
                send(&client, get(&format!("http://{addr}/x")))
                    .await
                    .unwrap(),
            )
            .await
        }));
    }
    for h in handles {
        assert!(h.await.unwrap().contains("version=HTTP/2.0"));
    }
    assert_eq!(
        stats.load(Ordering::Relaxed),
        1,
        "one shared HTTP/2 connection"
    );
}

#[tokio::test]
async fn https_with_alpn_h2_and_a_configured_ca() {
    let origin = tls_origin("origin.test").await;
    let mut cfg = config(&["origin.test", "127.0.0.1"]);
    cfg.ca_files = vec![origin.ca_file.clone()];
    let (client, dialer) = client_with(
        cfg,
        FixedResolver(vec![("origin.test".into(), Ok(vec![origin.addr]))]),
    );
    let port = origin.addr.port();
    let resp = send(&client, get(&format!("https://origin.test:{port}/secure")))
        .await
        .unwrap();
    let body = text(resp).await;
    assert!(body.contains("version=HTTP/2.0"), "{body}");
    assert!(body.contains("path=/secure"));
    assert_eq!(*dialer.dialed.lock().unwrap(), vec![origin.addr]);
}

#[tokio::test]
async fn streaming_request_body_and_trailers_round_trip() {
    let origin = tls_origin("origin.test").await;
    let mut cfg = config(&["origin.test", "127.0.0.1"]);
    cfg.ca_files = vec![origin.ca_file.clone()];
    let (client, _) = client_with(
        cfg,
        FixedResolver(vec![("origin.test".into(), Ok(vec![origin.addr]))]),
    );
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, ErrorCode>>(1);
    tokio::spawn(async move {
        for i in 0..50u8 {
            tx.send(Ok(Frame::data(Bytes::from(vec![i; 10_000]))))
                .await
                .unwrap();
        }
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-sum", "42".parse().unwrap());
        tx.send(Ok(Frame::trailers(trailers))).await.unwrap();
    });
    let mut rx = rx;
    let body = StreamBody::new(futures::stream::poll_fn(move |cx| rx.poll_recv(cx))).boxed();
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("https://origin.test:{}/echo", origin.addr.port()))
        .body(body)
        .unwrap();
    let resp = send(&client, req).await.unwrap();
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    assert_eq!(collected.to_bytes().len(), 500_000);
    assert_eq!(trailers.expect("trailers")["x-sum"], "42");
}

#[tokio::test]
async fn denied_hosts_are_never_resolved_or_dialed() {
    let (addr, _) = origin().await;
    let (client, dialer) = client_with(config(&["allowed.test"]), FixedResolver(vec![]));
    assert_eq!(
        send(&client, get(&format!("http://{addr}/")))
            .await
            .unwrap_err(),
        ErrorCode::HttpRequestDenied
    );
    assert_eq!(
        send(&client, get("http://other.test/")).await.unwrap_err(),
        ErrorCode::HttpRequestDenied
    );
    assert!(dialer.dialed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn names_resolving_to_private_addresses_are_never_dialed() {
    let metadata: SocketAddr = "169.254.169.254:80".parse().unwrap();
    let mapped: SocketAddr = "[::ffff:10.0.0.1]:80".parse().unwrap();
    let (client, dialer) = client_with(
        config(&["*"]),
        FixedResolver(vec![
            ("metadata.test".into(), Ok(vec![metadata])),
            ("mapped.test".into(), Ok(vec![mapped])),
            (
                "loop.test".into(),
                Ok(vec!["127.0.0.1:80".parse().unwrap()]),
            ),
        ]),
    );
    for url in [
        "http://metadata.test/",
        "http://mapped.test/",
        "http://loop.test/",
        "http://[::1]/",
        "http://10.1.1.1/",
    ] {
        assert_eq!(
            send(&client, get(url)).await.unwrap_err(),
            ErrorCode::DestinationIpProhibited,
            "{url}"
        );
    }
    assert!(
        dialer.dialed.lock().unwrap().is_empty(),
        "dialed {:?}",
        dialer.dialed.lock().unwrap()
    );
}

#[tokio::test]
async fn embedded_ipv4_forms_resolving_to_private_addresses_are_never_dialed() {
    let resolved = |text: &str| Ok(vec![SocketAddr::new(text.parse().unwrap(), 80)]);
    let (client, dialer) = client_with(
        config(&["*"]),
        FixedResolver(vec![
            ("compat.test".into(), resolved("::127.0.0.1")),
            ("sixtofour.test".into(), resolved("2002:a9fe:a9fe::")),
            ("nat64.test".into(), resolved("64:ff9b:1:a00:0:100::")),
            ("sitelocal.test".into(), resolved("fec0::1")),
        ]),
    );
    for host in ["compat", "sixtofour", "nat64", "sitelocal"] {
        assert_eq!(
            send(&client, get(&format!("http://{host}.test/")))
                .await
                .unwrap_err(),
            ErrorCode::DestinationIpProhibited,
            "{host}"
        );
    }
    assert!(dialer.dialed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_allowed_private_ip_with_a_port_is_reachable_on_that_port_only() {
    // `*` lets any name through; `127.0.0.1:PORT` allows loopback only on
    // the origin's port. A name that resolves to loopback on another port
    // (an SSH daemon, an admin endpoint) is refused before any dial.
    let (addr, _) = origin().await;
    let other: SocketAddr = SocketAddr::new(addr.ip(), addr.port().wrapping_add(1).max(1));
    let (client, dialer) = client_with(
        config(&["*", &format!("127.0.0.1:{}", addr.port())]),
        FixedResolver(vec![
            ("app.test".into(), Ok(vec![addr])),
            ("ssh.test".into(), Ok(vec![other])),
        ]),
    );
    assert_eq!(
        send(&client, get(&format!("http://ssh.test:{}/", other.port())))
            .await
            .unwrap_err(),
        ErrorCode::DestinationIpProhibited
    );
    assert!(dialer.dialed.lock().unwrap().is_empty());
    let resp = send(&client, get(&format!("http://app.test:{}/x", addr.port())))
        .await
        .unwrap();
    assert!(text(resp).await.contains("path=/x"));
    assert_eq!(*dialer.dialed.lock().unwrap(), vec![addr]);
}

#[tokio::test]
async fn dns_failures_have_their_own_codes() {
    let (client, _) = client_with(
        config(&["*"]),
        FixedResolver(vec![("empty.test".into(), Ok(vec![]))]),
    );
    match send(&client, get("http://nxdomain.test/"))
        .await
        .unwrap_err()
    {
        ErrorCode::DnsError(p) => assert_eq!(p.rcode.as_deref(), Some("NXDOMAIN")),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        send(&client, get("http://empty.test/")).await.unwrap_err(),
        ErrorCode::DestinationNotFound
    );
    let quick = RequestTimeouts {
        connect: Some(Duration::from_millis(100)),
        ..Default::default()
    };
    let err = client
        .send(get("http://hang.test/"), quick)
        .await
        .unwrap_err();
    assert_eq!(err, ErrorCode::DnsTimeout);
}

/// A TLS server that insists on an ALPN protocol the client does not offer
/// answers the handshake with a `no_application_protocol` alert (120).
#[tokio::test]
async fn tls_alerts_are_reported_with_their_id() {
    let acceptor = berth_test_support::TestTls::new(&["alert.test"]).acceptor(&[b"only-this"]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = acceptor.accept(stream).await;
        }
    });
    let (client, _) = client_with(
        config(&["alert.test", "127.0.0.1"]),
        FixedResolver(vec![("alert.test".into(), Ok(vec![addr]))]),
    );
    let url = format!("https://alert.test:{}/", addr.port());
    match send(&client, get(&url)).await.unwrap_err() {
        ErrorCode::TlsAlertReceived(p) => assert_eq!(p.alert_id, Some(120), "{p:?}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn connection_refused_and_connect_timeout() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let (client, _) = client_with(config(&["127.0.0.1"]), FixedResolver(vec![]));
    assert_eq!(
        send(&client, get(&format!("http://{closed}/")))
            .await
            .unwrap_err(),
        ErrorCode::ConnectionRefused
    );

    let dialer = Arc::new(RecordingDialer {
        hang: true,
        ..Default::default()
    });
    let mut cfg = config(&["127.0.0.1"]);
    cfg.connect_timeout = Duration::from_millis(200);
    let client = DefaultClient::with_hooks(cfg, Arc::new(FixedResolver(vec![])), dialer).unwrap();
    assert_eq!(
        send(&client, get(&format!("http://{closed}/")))
            .await
            .unwrap_err(),
        ErrorCode::ConnectionTimeout
    );
}

#[tokio::test]
async fn tls_failures_are_told_apart() {
    let origin = tls_origin("origin.test").await;
    let resolver = || {
        FixedResolver(vec![
            ("origin.test".into(), Ok(vec![origin.addr])),
            ("wrong.test".into(), Ok(vec![origin.addr])),
        ])
    };
    // Unknown CA.
    let (client, _) = client_with(config(&["*.test", "127.0.0.1"]), resolver());
    let url = format!("https://origin.test:{}/", origin.addr.port());
    assert_eq!(
        send(&client, get(&url)).await.unwrap_err(),
        ErrorCode::TlsCertificateError
    );
    // Trusted CA, wrong name.
    let mut cfg = config(&["*.test", "127.0.0.1"]);
    cfg.ca_files = vec![origin.ca_file.clone()];
    let (client, _) = client_with(cfg, resolver());
    let url = format!("https://wrong.test:{}/", origin.addr.port());
    assert_eq!(
        send(&client, get(&url)).await.unwrap_err(),
        ErrorCode::TlsCertificateError
    );
    // Plain HTTP spoken by the server on the TLS port.
    let plain = raw_upstream(
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
        false,
    )
    .await;
    let (client, _) = client_with(config(&["127.0.0.1"]), FixedResolver(vec![]));
    let err = send(
        &client,
        get(&format!("https://127.0.0.1:{}/", plain.port())),
    )
    .await
    .unwrap_err();
    assert_eq!(err, ErrorCode::TlsProtocolError);
}

#[tokio::test]
async fn broken_http_from_upstreams_maps_to_precise_codes() {
    let (client, _) = client_with(config(&["127.0.0.1"]), FixedResolver(vec![]));
    let bad_status = raw_upstream(b"HTTP/1.1 abc Nope\r\n\r\n", false).await;
    assert_eq!(
        send(&client, get(&format!("http://{bad_status}/")))
            .await
            .unwrap_err(),
        ErrorCode::HttpProtocolError
    );

    let garbage = raw_upstream(b"\x00\x01\x02 definitely not http\r\n\r\n", false).await;
    assert_eq!(
        send(&client, get(&format!("http://{garbage}/")))
            .await
            .unwrap_err(),
        ErrorCode::HttpProtocolError
    );

    let huge: &'static [u8] = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nx-big: {}\r\n\r\n",
            "a".repeat(100 * 1024)
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    let big_head = raw_upstream(huge, false).await;
    assert!(matches!(
        send(&client, get(&format!("http://{big_head}/")))
            .await
            .unwrap_err(),
        ErrorCode::HttpResponseHeaderSize(_)
    ));

    let closes_early = raw_upstream(
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly a few bytes",
        false,
    )
    .await;
    let resp = send(&client, get(&format!("http://{closes_early}/")))
        .await
        .unwrap();
    let err = resp.into_body().collect().await.unwrap_err();
    assert_eq!(err, ErrorCode::HttpResponseIncomplete);

    let no_terminator = raw_upstream(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
        false,
    )
    .await;
    let resp = send(&client, get(&format!("http://{no_terminator}/")))
        .await
        .unwrap();
    assert_eq!(
        resp.into_body().collect().await.unwrap_err(),
        ErrorCode::HttpResponseIncomplete
    );
}

#[tokio::test]
async fn slow_upstreams_hit_first_byte_and_between_bytes_timeouts() {
    let (client, _) = client_with(config(&["127.0.0.1"]), FixedResolver(vec![]));
    let silent = raw_upstream(b"", true).await;
    let fast = RequestTimeouts {
        first_byte: Some(Duration::from_millis(200)),
        between_bytes: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let err = client
        .send(get(&format!("http://{silent}/")), fast)
        .await
        .unwrap_err();
    assert_eq!(err, ErrorCode::ConnectionReadTimeout);

    let trickle = raw_upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nstart", true).await;
    let resp = client
        .send(get(&format!("http://{trickle}/")), fast)
        .await
        .unwrap();
    assert_eq!(
        resp.into_body().collect().await.unwrap_err(),
        ErrorCode::ConnectionReadTimeout
    );
}

#[tokio::test]
async fn between_bytes_counts_only_time_the_reader_waits() {
    // The upstream sends the head and 5 bytes, then the other 5 bytes
    // 400 ms later. The reader takes the first chunk, is busy for 300 ms
    // (not reading), then waits 100 ms for the rest: under the 200 ms
    // limit, because the clock starts when it waits, not at the last chunk.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = stream.read(&mut buf).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nstart")
            .await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let _ = stream.write_all(b"12345").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let (client, _) = client_with(config(&["127.0.0.1"]), FixedResolver(vec![]));
    let timeouts = RequestTimeouts {
        between_bytes: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let resp = client
        .send(get(&format!("http://{addr}/")), timeouts)
        .await
        .unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"start");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"12345");
}

#[tokio::test]
async fn loops_are_detected_and_redirects_not_followed() {
    let (addr, _) = origin().await;
    let (client, _) = client_with(config(&["127.0.0.1"]), FixedResolver(vec![]));
    let mut req = get(&format!("http://{addr}/"));
    req.headers_mut()
        .insert("cdn-loop", "other, berth-test".parse().unwrap());
    assert_eq!(
        send(&client, req).await.unwrap_err(),
        ErrorCode::LoopDetected
    );

    let resp = send(&client, get(&format!("http://{addr}/redirect")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "http://169.254.169.254/");
}

#[tokio::test]
async fn unsupported_schemes_fail_before_connecting() {
    let (client, dialer) = client_with(config(&["*"]), FixedResolver(vec![]));
    let req = http::Request::builder()
        .uri("ftp://127.0.0.1/")
        .body(full(""))
        .unwrap();
    assert_eq!(
        send(&client, req).await.unwrap_err(),
        ErrorCode::HttpProtocolError
    );
    assert!(dialer.dialed.lock().unwrap().is_empty());
}

// ------------------------------------------------------------- pool hygiene

/// An HTTP/1.1 origin that answers one request per connection, then
/// reports (on the channel) when the client closes the connection.
async fn closing_watch_origin() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed_tx, closed) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let closed_tx = closed_tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                // Keep-alive: the next read ends only when the client closes.
                if matches!(stream.read(&mut buf).await, Ok(0) | Err(_)) {
                    let _ = closed_tx.send(());
                }
            });
        }
    });
    (addr, closed)
}

#[tokio::test]
async fn idle_connections_are_reaped_on_a_timer_and_their_origins_forgotten() {
    let (addr, mut closed) = closing_watch_origin().await;
    let mut cfg = config(&["127.0.0.1"]);
    cfg.pool_idle_timeout = Duration::from_millis(300);
    let (client, _) = client_with(cfg, FixedResolver(vec![]));
    let resp = send(&client, get(&format!("http://{addr}/")))
        .await
        .unwrap();
    assert_eq!(text(resp).await, "ok");
    assert_eq!(client.pooled_connections(), 1);
    assert_eq!(client.tracked_origins(), 1);
    // Nothing else is sent, to that origin or any other: the reaper alone
    // must close the idle connection.
    tokio::time::timeout(Duration::from_secs(3), closed.recv())
        .await
        .expect("the idle connection was closed by the client")
        .unwrap();
    assert_eq!(client.pooled_connections(), 0);
    assert_eq!(client.tracked_origins(), 0);
    // Its place under the connection cap came back too.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(client.open_connections(), 0);
}

#[tokio::test]
async fn the_connection_cap_closes_an_idle_connection_or_refuses() {
    let (first, mut first_closed) = closing_watch_origin().await;
    let (second, _) = closing_watch_origin().await;
    let stalled = raw_upstream(b"", true).await;
    let mut cfg = config(&["127.0.0.1"]);
    cfg.max_connections = 1;
    cfg.connect_timeout = Duration::from_millis(300);
    let (client, _) = client_with(cfg, FixedResolver(vec![]));
    let resp = send(&client, get(&format!("http://{first}/")))
        .await
        .unwrap();
    assert_eq!(text(resp).await, "ok");
    assert_eq!(client.open_connections(), 1);
    // Another origin: the idle connection to the first is closed to make
    // room. This one never answers, so its connection stays busy.
    let busy = {
        let client = client.clone();
        tokio::spawn(async move { send(&client, get(&format!("http://{stalled}/"))).await })
    };
    tokio::time::timeout(Duration::from_secs(3), first_closed.recv())
        .await
        .expect("the idle connection was evicted")
        .unwrap();
    // No place, nothing idle to close: refused after the connect timeout.
    assert_eq!(
        send(&client, get(&format!("http://{second}/")))
            .await
            .unwrap_err(),
        ErrorCode::ConnectionLimitReached
    );
    assert_eq!(client.open_connections(), 1);
    // Once the busy one gives up (first-byte timeout), its place returns.
    assert_eq!(
        busy.await.unwrap().unwrap_err(),
        ErrorCode::ConnectionReadTimeout
    );
    let resp = send(&client, get(&format!("http://{second}/")))
        .await
        .unwrap();
    assert_eq!(text(resp).await, "ok");
}
