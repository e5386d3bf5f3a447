//! Guests calling upstreams through berth: the proxy guest forwards the
//! incoming request (streaming, with trailers) to a loopback origin.

use std::sync::Arc;
use std::time::Duration;

use berth::outbound::{DefaultClient, OutboundConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};

use crate::support::*;

type OriginBody = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

async fn origin_handler(
    req: http::Request<Incoming>,
) -> Result<http::Response<OriginBody>, std::convert::Infallible> {
    if req.uri().path() == "/echo" {
        // Declare the client's trailers so HTTP/1.1 can carry them back.
        let declared = req.headers().get("trailer").cloned();
        let mut resp = http::Response::new(req.into_body().boxed());
        if let Some(d) = declared {
            resp.headers_mut().insert("trailer", d);
        }
        return Ok(resp);
    }
    let text = format!(
        "origin saw {} {} host={:?} x-client={:?} cdn-loop={:?}\n",
        req.method(),
        req.uri().path_and_query().map_or("", |p| p.as_str()),
        req.headers().get("host"),
        req.headers().get("x-client"),
        req.headers().get("cdn-loop"),
    );
    let body = Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed();
    Ok(http::Response::builder()
        .status(201)
        .header("x-origin", "yes")
        .body(body)
        .unwrap())
}

async fn origin() -> std::net::SocketAddr {
    berth_test_support::spawn_origin(origin_handler, None)
        .await
        .addr
}

async fn proxy_to(upstream: &str, allow: &[&str]) -> TestServer {
    proxy_with(upstream, allow, &[]).await
}

async fn proxy_with(upstream: &str, allow: &[&str], h2c: &[&str]) -> TestServer {
    let client = DefaultClient::new(OutboundConfig {
        allow: allow.iter().map(|p| p.parse().unwrap()).collect(),
        h2c_hosts: h2c.iter().map(|p| p.parse().unwrap()).collect(),
        system_roots: false,
        loop_identity: "berth-e2e".into(),
        ..OutboundConfig::default()
    })
    .unwrap();
    let config = berth::RuntimeConfig {
        env: vec![("UPSTREAM".into(), upstream.into())],
        ..test_config()
    };
    TestServer::start_with_outbound("proxy", config, Arc::new(client)).await
}

#[tokio::test]
async fn proxy_guest_forwards_requests_and_responses() {
    let origin = origin().await;
    let server = proxy_to(&format!("http://{origin}"), &["127.0.0.1"]).await;
    for proto in PROTOS {
        let mut req = for_proto(
            request("PATCH", &server.url("/api/items?id=7"), empty()),
            proto,
        );
        req.headers_mut()
            .insert("x-client", "test".parse().unwrap());
        let resp = send(server.addr, proto, req).await;
        assert_eq!(resp.status(), 201);
        assert_eq!(resp.headers()["x-origin"], "yes");
        let (body, _) = read_body(resp).await.unwrap();
        let body = String::from_utf8_lossy(&body);
        // Host comes from the upstream authority, not the client's Host.
        assert!(
            body.starts_with(&format!(
                "origin saw PATCH /api/items?id=7 host=Some(\"{origin}\")"
            )),
            "{body}"
        );
        assert!(body.contains("x-client=Some(\"test\")"), "{body}");
        assert!(body.contains("cdn-loop=Some(\"berth-e2e\")"), "{body}");
    }
    server.assert_idle().await;
}

/// Over HTTP/2 to the origin (h2c) trailers always pass; over HTTP/1.1
/// they pass when declared in a `Trailer` header (the client sends
/// `TE: trailers` so the origin may answer with them).
#[tokio::test]
async fn proxy_streams_bodies_and_trailers_both_ways() {
    let origin = origin().await;
    let h2c = proxy_with(&format!("http://{origin}"), &["127.0.0.1"], &["127.0.0.1"]).await;
    proxy_echo_with_trailers(&h2c, false).await;
    let h1 = proxy_with(&format!("http://{origin}"), &["127.0.0.1"], &[]).await;
    proxy_echo_with_trailers(&h1, true).await;
}

async fn proxy_echo_with_trailers(server: &TestServer, declare: bool) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, hyper::Error>>(1);
    tokio::spawn(async move {
        for i in 0..20u8 {
            tx.send(Ok(Frame::data(Bytes::from(vec![i; 5000]))))
                .await
                .unwrap();
        }
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-digest", "d1".parse().unwrap());
        tx.send(Ok(Frame::trailers(trailers))).await.unwrap();
    });
    let body = StreamBody::new(futures::stream::poll_fn(move |cx| rx.poll_recv(cx))).boxed();
    let mut req = for_proto(request("POST", &server.url("/echo"), body), Proto::H2);
    if declare {
        req.headers_mut()
            .insert("trailer", "x-digest".parse().unwrap());
    }
    let resp = send(server.addr, Proto::H2, req).await;
    assert_eq!(resp.status(), 200);
    let (body, trailers) = read_body(resp).await.expect("complete proxied body");
    assert_eq!(body.len(), 100_000);
    assert!(
        body.chunks(5000)
            .enumerate()
            .all(|(i, c)| c.iter().all(|b| *b == i as u8))
    );
    assert_eq!(
        trailers.expect("trailers through the proxy")["x-digest"],
        "d1"
    );
}

#[tokio::test]
async fn proxy_reports_precise_upstream_errors() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let cases = [
        (
            format!("http://{closed}"),
            vec!["127.0.0.1"],
            "ConnectionRefused",
        ),
        (
            "http://10.0.0.1:80".to_string(),
            vec!["*"],
            "DestinationIpProhibited",
        ),
        (
            "http://169.254.169.254".to_string(),
            vec!["*"],
            "DestinationIpProhibited",
        ),
        (
            format!("http://{closed}"),
            vec!["example.com"],
            "HttpRequestDenied",
        ),
    ];
    for (upstream, allow, code) in cases {
        let server = proxy_to(&upstream, &allow).await;
        let (status, body) = get(&server, Proto::H1, "/x").await;
        assert_eq!(status, 502, "{upstream}");
        assert_eq!(
            body,
            format!("upstream error: ErrorCode::{code}\n"),
            "{upstream}"
        );
    }
}

#[tokio::test]
async fn proxying_to_itself_is_a_detected_loop() {
    // The proxy's upstream is the berth server itself: the second hop sees
    // its own CDN-Loop identity and refuses.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = DefaultClient::new(OutboundConfig {
        allow: vec!["127.0.0.1".parse().unwrap()],
        system_roots: false,
        loop_identity: "berth-self".into(),
        ..OutboundConfig::default()
    })
    .unwrap();
    let config = berth::RuntimeConfig {
        env: vec![("UPSTREAM".into(), format!("http://{addr}"))],
        ..test_config()
    };
    let runtime = berth::Runtime::builder(config)
        .outbound(Arc::new(client))
        .build(&fixture("proxy"), "proxy")
        .unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let service = berth::WasiHttpService::new(runtime, addr.to_string().parse().unwrap());
    tokio::spawn(async move {
        berth::serve(
            listener,
            service,
            &berth::ServerConfig::default(),
            std::future::pending(),
        )
        .await;
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let req = for_proto(
        request("GET", &format!("http://{addr}/loop"), empty()),
        Proto::H1,
    );
    let resp = send(addr, Proto::H1, req).await;
    let (body, _) = read_body(resp).await.unwrap();
    // Hop 2 answers 502 LoopDetected; hop 1 passes that response back.
    assert_eq!(
        String::from_utf8_lossy(&body),
        "upstream error: ErrorCode::LoopDetected\n"
    );
}

#[tokio::test]
async fn outgoing_requests_per_invocation_are_capped() {
    let client = DefaultClient::new(OutboundConfig {
        system_roots: false,
        ..OutboundConfig::default()
    })
    .unwrap();
    let server = TestServer::start_with_outbound("suite", test_config(), Arc::new(client)).await;
    let (status, body) = get(&server, Proto::H1, "/outgoing-flood").await;
    assert_eq!(status, 200);
    // Each request is sent to the client (which denies the host); after 50
    // the host refuses to send more in this invocation.
    assert_eq!(body, "ErrorCode::ConnectionLimitReached=10\nsent=50\n");
}

/// An HTTPS origin on loopback for `localhost`, its CA written to a file.
async fn tls_origin() -> (std::net::SocketAddr, std::path::PathBuf) {
    let tls = berth_test_support::TestTls::new(&["localhost"]);
    let acceptor = tls.acceptor(&[b"h2", b"http/1.1"]);
    let origin = berth_test_support::spawn_origin(origin_handler, Some(acceptor)).await;
    (origin.addr, tls.ca_file)
}

#[tokio::test]
async fn guest_calls_an_https_upstream_over_http2() {
    let (addr, ca_file) = tls_origin().await;
    let client = DefaultClient::new(OutboundConfig {
        allow: vec!["localhost".parse().unwrap(), "127.0.0.1".parse().unwrap()],
        ca_files: vec![ca_file],
        system_roots: false,
        ..OutboundConfig::default()
    })
    .unwrap();
    let config = berth::RuntimeConfig {
        env: vec![(
            "UPSTREAM".into(),
            format!("https://localhost:{}", addr.port()),
        )],
        ..test_config()
    };
    let server = TestServer::start_with_outbound("proxy", config, Arc::new(client)).await;
    let (status, body) = get(&server, Proto::H1, "/secure?x=1").await;
    assert_eq!(status, 201, "{body}");
    assert!(body.starts_with("origin saw GET /secure?x=1"), "{body}");
    // HTTP/2 to the origin (ALPN): no Host header, :authority instead.
    assert!(body.contains("host=None"), "{body}");
}
