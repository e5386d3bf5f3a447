//! The library face: the examples build and run, the tower contract
//! (readiness tells the truth about admission, clones reserve nothing,
//! dropping a future cancels its guest), and berth inside axum.

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use berth::WasiHttpService;
use berth::admission::AdmissionLimits;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt};

use crate::support::*;

/// A service for the suite guest, with `places` admission places and no
/// queue beyond a `wait` for one.
fn suite_service(places: usize, wait: Duration) -> WasiHttpService {
    let runtime = berth::Runtime::new(test_config(), &fixture("suite"), "suite").unwrap();
    WasiHttpService::new(runtime, "test.local".parse().unwrap()).with_admission(AdmissionLimits {
        max_concurrent: places,
        max_queued: places,
        wait,
    })
}

type Req = http::Request<Full<Bytes>>;

fn get_request(path: &str) -> Req {
    http::Request::get(format!("http://test.local{path}"))
        .body(Full::default())
        .unwrap()
}

async fn wait_for_no_instances(service: &WasiHttpService) {
    let started = Instant::now();
    while service.runtime().live_instances() != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{} instances still alive",
            service.runtime().live_instances()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn poll_ready_reserves_a_place_and_tells_when_there_is_none() {
    let mut service = suite_service(1, Duration::from_millis(300));
    // A free place: ready at once, and reserved for this service's call.
    std::future::poll_fn(|cx| Service::<Req>::poll_ready(&mut service, cx))
        .await
        .unwrap();
    // A clone reserved nothing; with the one place taken it waits, then is
    // ready without a place: its call answers 503 at once.
    let mut other = service.clone();
    let started = Instant::now();
    let ready = tokio::time::timeout(
        Duration::from_millis(100),
        ServiceExt::<Req>::ready(&mut other),
    )
    .await;
    assert!(ready.is_err(), "a second place was reported free");
    ServiceExt::<Req>::ready(&mut other).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(250));
    let refused = other.call(get_request("/hello")).await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    // The reserved place serves the first service's call.
    let answered = service.call(get_request("/hello")).await.unwrap();
    assert_eq!(answered.status(), 200);
    drop(answered);
    // Released with the response: ready again at once.
    tokio::time::timeout(
        Duration::from_millis(100),
        ServiceExt::<Req>::ready(&mut other),
    )
    .await
    .expect("the place came back")
    .unwrap();
}

#[tokio::test]
async fn a_reservation_is_released_when_its_service_is_dropped() {
    let mut service = suite_service(1, Duration::from_secs(5));
    ServiceExt::<Req>::ready(&mut service).await.unwrap();
    let mut waiting = service.clone();
    let ready = tokio::spawn(async move {
        ServiceExt::<Req>::ready(&mut waiting).await.unwrap();
        waiting.call(get_request("/hello")).await.unwrap().status()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!ready.is_finished());
    drop(service);
    assert_eq!(ready.await.unwrap(), 200);
}

#[tokio::test]
async fn dropping_the_response_future_cancels_the_guest_and_frees_its_instance() {
    let service = suite_service(4, Duration::from_millis(100));
    let pending = service.clone().oneshot(get_request("/never"));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), pending)
            .await
            .is_err(),
        "/never answered"
    );
    wait_for_no_instances(&service).await;
    // The place went with it.
    let answered = service
        .clone()
        .oneshot(get_request("/hello"))
        .await
        .unwrap();
    assert_eq!(answered.status(), 200);
}

#[tokio::test]
async fn in_axum_beside_native_routes_and_behind_a_timeout_layer() {
    let service = suite_service(4, Duration::from_millis(100));
    let timeout = tower_http::timeout::TimeoutLayer::with_status_code(
        http::StatusCode::GATEWAY_TIMEOUT,
        Duration::from_millis(300),
    );
    let app = Router::new()
        .route("/native", get(|| async { "native\n" }))
        .route_service("/wasm/{*rest}", service.clone())
        .nest_service("/nested", service.clone())
        .fallback_service(service.clone())
        .layer(timeout)
        .layer(tower_http::compression::CompressionLayer::new());
    let call = |path: &str| {
        let request = http::Request::get(format!("http://test.local{path}"))
            .body(axum::body::Body::empty())
            .unwrap();
        app.clone().oneshot(request)
    };
    let text = |response: http::Response<axum::body::Body>| async move {
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    let Ok(native) = call("/native").await;
    assert_eq!(text(native).await, (200, "native\n".into()));
    // The guest sees the whole path, whichever way it was mounted.
    let Ok(routed) = call("/wasm/hello").await;
    assert_eq!(text(routed).await.0, 404, "the suite has no /wasm/hello");
    let Ok(fallback) = call("/hello").await;
    assert_eq!(text(fallback).await, (200, "hello from berth\n".into()));
    let Ok(nested) = call("/nested/x").await;
    assert_eq!(text(nested).await.0, 404);
    // A request body through axum (not `Sync`) reaches the guest.
    let echo = http::Request::post("http://test.local/echo")
        .body(axum::body::Body::from("ping"))
        .unwrap();
    let Ok(echoed) = app.clone().oneshot(echo).await;
    assert_eq!(text(echoed).await, (200, "ping".into()));
    // Compression wraps the guest's streaming body.
    let gzip = http::Request::get("http://test.local/large?bytes=65536")
        .header("accept-encoding", "gzip")
        .body(axum::body::Body::empty())
        .unwrap();
    let Ok(compressed) = app.clone().oneshot(gzip).await;
    assert_eq!(compressed.status(), 200);
    assert_eq!(compressed.headers()["content-encoding"], "gzip");
    let packed = compressed.into_body().collect().await.unwrap().to_bytes();
    assert!(packed.len() < 65536 / 4, "{} bytes", packed.len());
    // The timeout layer drops berth's future: the guest is cancelled.
    let started = Instant::now();
    let Ok(slow) = call("/sleep?ms=5000").await;
    assert_eq!(slow.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(2));
    wait_for_no_instances(&service).await;
}

/// An example binary, built by `cargo test` (or `cargo build --examples`).
fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let path = deps
        .parent()
        .and_then(|d| d.parent())
        .map(|debug| debug.join("examples").join(name))
        .unwrap();
    assert!(
        path.exists(),
        "{} is missing: build the examples (cargo build -p berth --examples)",
        path.display()
    );
    path
}

/// A running example; killed when dropped.
struct Example {
    child: Child,
    addr: String,
}

impl Example {
    fn start(name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(example(name))
            .args(args)
            .args(["--addr", "127.0.0.1:0"])
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("Serving on http://")
            .unwrap_or_else(|| panic!("{name} printed {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        Self { child, addr }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let url = format!("http://{}{path}", self.addr);
        let response = send(
            self.addr.parse().unwrap(),
            Proto::H1,
            for_proto(request("GET", &url, empty()), Proto::H1),
        )
        .await;
        let status = response.status().as_u16();
        let body = read_body(response).await.unwrap().0;
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_axum_example_serves_native_and_wasm_routes() {
    let suite = fixture_file("suite");
    let example = Example::start("axum", &[&suite], &[]);
    assert_eq!(
        example.get("/").await,
        (200, "a native axum route\n".into())
    );
    // The first component is the suite; the second the built-in demo.
    assert_eq!(example.get("/first/x").await.0, 404);
    let (status, page) = example.get("/second/anything").await;
    assert_eq!(status, 200);
    assert!(page.contains("berth demo"), "{page}");
}

#[tokio::test]
async fn the_hyper_example_serves_the_demo() {
    let example = Example::start("hyper", &[], &[]);
    let (status, page) = example.get("/from-a-test").await;
    assert_eq!(status, 200);
    assert!(page.contains("/from-a-test"), "{page}");
}

#[tokio::test]
async fn the_custom_client_example_marks_allowed_requests_and_refuses_others() {
    let origin = berth_test_support::spawn_origin(
        |request: http::Request<hyper::body::Incoming>| async move {
            let marked = request
                .headers()
                .get("x-sent-by")
                .map(|v| v.to_str().unwrap_or_default().to_owned());
            let text = format!("x-sent-by={}\n", marked.unwrap_or_default());
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(text))))
        },
        None,
    )
    .await;
    let proxy = fixture_file("proxy");
    let upstream = format!("http://{}", origin.addr);
    let allowed = origin.addr.to_string();
    let example = Example::start(
        "custom_client",
        &[&proxy, "--allow", &allowed],
        &[("UPSTREAM", &upstream)],
    );
    assert_eq!(
        example.get("/").await,
        (200, "x-sent-by=berth-example\n".into())
    );
    // The same origin by another name is not on the client's list.
    let other = format!("http://localhost:{}", origin.addr.port());
    let refused = Example::start(
        "custom_client",
        &[&proxy, "--allow", &allowed],
        &[("UPSTREAM", &other)],
    );
    let (status, body) = refused.get("/").await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("HTTP-request-denied") || body.contains("HttpRequestDenied"),
        "{body}"
    );
}

fn fixture_file(name: &str) -> String {
    format!(
        "{}/../../guests/prebuilt/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    )
}
