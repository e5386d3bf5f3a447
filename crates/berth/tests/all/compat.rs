//! Components as people build them for `wasmtime serve`, with the common
//! guest libraries from crates.io (wstd, the wasip3 crate, wit-bindgen
//! async), and the behaviours they rely on: headers copied from one
//! message to another, fan-out under the outgoing concurrency cap, a body
//! that fails before anything was sent, `set-path-with-query(some(""))`,
//! and an imported `handler` with nothing after it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth::outbound::{DefaultClient, OutboundConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use crate::support::*;

type OriginBody = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

/// Requests the origin is answering right now, and the most at once.
static SLOW_NOW: AtomicUsize = AtomicUsize::new(0);
static SLOW_MAX: AtomicUsize = AtomicUsize::new(0);

/// `/slow`: answers after 300 ms, counting how many it answers at once.
/// Anything else: reports the request line and every header it received,
/// one `name: value` line each, in order, with `x-origin: yes`.
async fn origin_handler(
    req: http::Request<Incoming>,
) -> Result<http::Response<OriginBody>, std::convert::Infallible> {
    let text = if req.uri().path() == "/slow" {
        let now = SLOW_NOW.fetch_add(1, Ordering::SeqCst) + 1;
        SLOW_MAX.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        SLOW_NOW.fetch_sub(1, Ordering::SeqCst);
        "slow\n".to_owned()
    } else {
        let mut text = format!(
            "{} {}\n",
            req.method(),
            req.uri().path_and_query().map_or("", |p| p.as_str())
        );
        for (name, value) in req.headers() {
            text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
        }
        let body = req.into_body().collect().await.map(|b| b.to_bytes());
        text.push_str(&format!("body={:?}\n", body.unwrap_or_default()));
        text
    };
    let body = Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed();
    Ok(http::Response::builder()
        .header("x-origin", "yes")
        .header("x-multi", "1")
        .header("x-multi", "2")
        .body(body)
        .unwrap())
}

async fn origin() -> std::net::SocketAddr {
    berth_test_support::spawn_origin(origin_handler, None)
        .await
        .addr
}

fn loopback_client() -> Arc<DefaultClient> {
    Arc::new(
        DefaultClient::new(OutboundConfig {
            allow: vec!["127.0.0.1".parse().unwrap()],
            system_roots: false,
            loop_identity: "berth-compat".into(),
            ..OutboundConfig::default()
        })
        .unwrap(),
    )
}

/// Serves `component` with `UPSTREAM` set and loopback egress allowed.
async fn with_upstream(component: &str, upstream: &str) -> TestServer {
    let config = berth::RuntimeConfig {
        env: vec![("UPSTREAM".into(), upstream.into())],
        ..test_config()
    };
    TestServer::start_with_outbound(component, config, loopback_client()).await
}

/// A request carrying what real clients send: `Host`, hop-by-hop fields
/// (on HTTP/1.1; HTTP/2 forbids them), and ordinary headers.
fn browser_like(
    server: &TestServer,
    proto: Proto,
    method: &str,
    path: &str,
) -> http::Request<TestBody> {
    let body = if method == "GET" {
        empty()
    } else {
        full("payload")
    };
    let mut req = for_proto(request(method, &server.url(path), body), proto);
    let headers = req.headers_mut();
    headers.insert("x-client", "test".parse().unwrap());
    headers.insert("accept", "text/plain".parse().unwrap());
    if proto == Proto::H1 {
        headers.insert("connection", "keep-alive".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
    }
    req
}

/// wstd's proxy pattern: every request header copied into the outgoing
/// request, every upstream header into the response. Before berth hid
/// forbidden headers from guests, `host` made this fail with `forbidden`.
#[tokio::test]
async fn wstd_proxy_copying_every_header_round_trips() {
    let origin = origin().await;
    let server = with_upstream("wstd-proxy", &origin.to_string()).await;
    for proto in PROTOS {
        let req = browser_like(&server, proto, "POST", "/api/items?id=7");
        let resp = send(server.addr, proto, req).await;
        assert_eq!(resp.status(), 200, "{proto:?}");
        assert_eq!(resp.headers()["x-origin"], "yes");
        let multi: Vec<_> = resp.headers().get_all("x-multi").iter().collect();
        assert_eq!(multi, ["1", "2"], "{proto:?}");
        let (body, _) = read_body(resp).await.unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(body.starts_with("POST /api/items?id=7\n"), "{body}");
        // The guest copied the client's headers; Host is the upstream's.
        assert!(body.contains("x-client: test\n"), "{body}");
        assert!(body.contains("accept: text/plain\n"), "{body}");
        assert!(body.contains(&format!("host: {origin}\n")), "{body}");
        assert!(!body.contains("keep-alive: timeout"), "{body}");
        assert!(body.ends_with("body=b\"payload\"\n"), "{body}");
    }
    server.assert_idle().await;
}

/// "Echo headers" handlers copy request headers into their response, with
/// wstd (0.2) and with the wasip3 crate's http-compat layer (0.3.2, served
/// by semver). The guests never see `host` or hop-by-hop fields; the
/// authority stays available (the wasip3 guest's request URI uses it).
#[tokio::test]
async fn echo_headers_handlers_copy_request_headers_into_their_response() {
    for component in ["wstd-proxy", "wasip3-echo-headers"] {
        let server = TestServer::start(component).await;
        for proto in PROTOS {
            let req = browser_like(&server, proto, "GET", "/echo-headers");
            let resp = send(server.addr, proto, req).await;
            assert_eq!(resp.status(), 200, "{component} {proto:?}");
            assert_eq!(resp.headers()["x-client"], "test", "{component}");
            assert_eq!(resp.headers()["accept"], "text/plain", "{component}");
            for hidden in ["host", "keep-alive"] {
                assert!(
                    !resp.headers().contains_key(hidden),
                    "{component} {proto:?} saw {hidden}"
                );
            }
            let (body, _) = read_body(resp).await.unwrap();
            assert!(body.starts_with(b"copied "), "{component}");
        }
        server.assert_idle().await;
    }
}

/// A handler fanning out 8 requests at once: the 7th and 8th wait for a
/// slot under the per-invocation cap (6) instead of failing, and the cap
/// holds.
#[tokio::test]
async fn fan_out_beyond_the_concurrency_cap_queues_instead_of_failing() {
    let origin = origin().await;
    let server = with_upstream("suite", &origin.to_string()).await;
    let (status, body) = get(&server, Proto::H1, "/fanout?n=8").await;
    assert_eq!((status, body.as_str()), (200, "200=8\n"));
    let most = SLOW_MAX.load(Ordering::SeqCst);
    assert_eq!(most, 6, "the origin saw {most} of them at once");
    // The per-invocation total stays a hard error (see outbound.rs).
    server.assert_idle().await;
}

/// A guest that sets its response and then fails before writing any body
/// (what a componentize-js guest that throws does) gets berth's error
/// response, not a connection closed with no status.
#[tokio::test]
async fn a_body_failing_before_the_head_went_out_is_a_500() {
    let server = TestServer::start("suite").await;
    for proto in PROTOS {
        let (status, body) = get(&server, proto, "/set-then-trap").await;
        assert_eq!(status, 500, "{proto:?}");
        assert!(
            body.starts_with("500 Internal Server Error (request "),
            "{body}"
        );
    }
    // Healthy streaming still works afterwards.
    assert_eq!(get(&server, Proto::H2, "/hello").await.0, 200);
    server.assert_idle().await;
}

/// `set-path-with-query(some(""))` is accepted and sent as `/`.
#[tokio::test]
async fn an_empty_path_is_sent_as_a_slash() {
    let origin = origin().await;
    let server =
        TestServer::start_with_outbound("p3-suite", test_config(), loopback_client()).await;
    let mut req = request("GET", &server.url("/client"), empty());
    req.headers_mut()
        .insert("x-upstream", format!("http://{origin}").parse().unwrap());
    let resp = send(server.addr, Proto::H1, req).await;
    assert_eq!(resp.status(), 200);
    let (body, _) = read_body(resp).await.unwrap();
    let body = String::from_utf8_lossy(&body);
    assert!(body.starts_with("GET /\n"), "{body}");
    server.assert_idle().await;
}

/// A lone `wasi:http/middleware` component: its imported `handler` is
/// berth's outgoing client. It copies every incoming header with
/// `fields.from-list` and forwards to the origin.
#[tokio::test]
async fn a_lone_middleware_forwards_through_the_outgoing_client() {
    let origin = origin().await;
    let server = with_upstream("p3-forward", &origin.to_string()).await;
    assert_eq!(
        server.runtime.chain(),
        [berth::World::Middleware03],
        "served alone"
    );
    for proto in PROTOS {
        let req = browser_like(&server, proto, "PUT", "/a/b?c=d");
        let resp = send(server.addr, proto, req).await;
        assert_eq!(resp.status(), 200, "{proto:?}");
        assert_eq!(resp.headers()["x-origin"], "yes");
        let (body, _) = read_body(resp).await.unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(body.starts_with("PUT /a/b?c=d\n"), "{body}");
        assert!(body.contains("x-client: test\n"), "{body}");
        assert!(body.contains("x-forwarded-by: p3-forward\n"), "{body}");
        assert!(body.contains(&format!("host: {origin}\n")), "{body}");
        assert!(body.contains("cdn-loop: berth-compat\n"), "{body}");
        assert!(body.ends_with("body=b\"payload\"\n"), "{body}");
    }
    server.assert_idle().await;
}

/// The imported `handler` is under the same egress policy and error codes
/// as `client`: no outbound access means `HTTP-request-denied` (500 when
/// the guest returns it), a refused connection `connection-refused` (502).
#[tokio::test]
async fn a_lone_middleware_is_under_the_egress_policy() {
    let denied = TestServer::start_with(
        "p3-forward",
        berth::RuntimeConfig {
            env: vec![("UPSTREAM".into(), "127.0.0.1:9".into())],
            ..test_config()
        },
    )
    .await;
    // Denied before any connection: were the policy skipped, the refused
    // connection below would make it a 502.
    assert_eq!(get(&denied, Proto::H1, "/").await.0, 500);
    // Port 9 on loopback: nothing listens there.
    let refused = with_upstream("p3-forward", "127.0.0.1:9").await;
    assert_eq!(get(&refused, Proto::H2, "/").await.0, 502);
    denied.assert_idle().await;
    refused.assert_idle().await;
}

/// Frameworks' own hello handlers: waki (wasi:http@0.2.2) and Spin's Rust
/// SDK 7 (a wasi:http@0.3.0 service). Each reports the headers it was
/// shown: the client's, never `host`.
#[tokio::test]
async fn waki_and_spin_sdk_handlers_are_served() {
    for (component, name) in [("waki-hello", "waki"), ("spin-hello", "spin")] {
        let server = TestServer::start(component).await;
        for proto in PROTOS {
            let mut req = for_proto(request("GET", &server.url("/some/path"), empty()), proto);
            req.headers_mut().insert("x-a", "1".parse().unwrap());
            let resp = send(server.addr, proto, req).await;
            assert_eq!(resp.status(), 200, "{component} {proto:?}");
            let (body, _) = read_body(resp).await.unwrap();
            assert_eq!(
                String::from_utf8_lossy(&body),
                format!("{name} saw /some/path [x-a=1]\n"),
                "{component} {proto:?}"
            );
        }
        server.assert_idle().await;
    }
}
