//! Test harness: a real berth server on a loopback port, and real HTTP/1.1
//! and HTTP/2 (prior knowledge) clients built on hyper.

use std::net::SocketAddr;
use std::time::Duration;

use berth::{Runtime, RuntimeConfig, ServerConfig, WasiHttpService};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Path of a prebuilt guest fixture.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../guests/prebuilt/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// Limits small enough that hostile-guest tests finish quickly.
pub fn test_config() -> RuntimeConfig {
    RuntimeConfig {
        cpu_time_limit: Duration::from_millis(500),
        wall_time_limit: Duration::from_secs(3),
        memory_limit: 64 << 20,
        env: vec![("GREETING".into(), "hi".into())],
        max_instances: 50,
        ..RuntimeConfig::default()
    }
}

/// Panics anywhere in this test process since the first server started:
/// host code (connection tasks, the runtime, the service) must never panic,
/// whatever a client or guest does (guest panics are wasm traps, not host
/// panics). Every server asserts it when dropped.
static HOST_PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Installs (once) the panic hook that counts into [`HOST_PANICS`], keeping
/// the default report. Servers started without [`TestServer`] call it and
/// [`assert_no_host_panics`] themselves.
pub fn count_panics() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            HOST_PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            report(info);
        }));
    });
}

/// Front-end settings for tests: a short drain and header-read timeout,
/// and connections on two connection threads of their own, as `berth
/// serve` runs them on two cores.
pub fn test_server_config() -> ServerConfig {
    ServerConfig {
        drain_timeout: Duration::from_secs(5),
        header_read_timeout: Duration::from_secs(2),
        connection_threads: 2,
        ..ServerConfig::default()
    }
}

/// A running server; stops (gracefully) when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub runtime: Runtime,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(component: &str) -> Self {
        Self::start_with(component, test_config()).await
    }

    pub async fn start_with(component: &str, config: RuntimeConfig) -> Self {
        Self::start_bytes(&fixture(component), component, config).await
    }

    /// Serves a middleware chain of fixtures, the request's first stop first.
    pub async fn start_chain(components: &[&str], config: RuntimeConfig) -> Self {
        let bytes: Vec<Vec<u8>> = components.iter().map(|c| fixture(c)).collect();
        let sources: Vec<berth::Source<'_>> = bytes
            .iter()
            .zip(components)
            .map(|(bytes, what)| berth::Source { bytes, what })
            .collect();
        let runtime = Runtime::builder(config)
            .build_chain(&sources)
            .expect("chain loads");
        Self::serve_runtime(runtime).await
    }

    pub async fn start_bytes(bytes: &[u8], what: &str, config: RuntimeConfig) -> Self {
        let runtime = Runtime::new(config, bytes, what).expect("component loads");
        Self::serve_runtime(runtime).await
    }

    /// Serves `component` with an outbound client.
    pub async fn start_with_outbound(
        component: &str,
        config: RuntimeConfig,
        client: std::sync::Arc<dyn berth::http_host::OutboundClient>,
    ) -> Self {
        let runtime = Runtime::builder(config)
            .outbound(client)
            .build(&fixture(component), component)
            .expect("component loads");
        Self::serve_runtime(runtime).await
    }

    async fn serve_runtime(runtime: Runtime) -> Self {
        Self::serve_runtime_with(runtime, berth::limits::BodyLimits::default()).await
    }

    /// Serves `component` with request body `limits`.
    pub async fn start_with_limits(component: &str, limits: berth::limits::BodyLimits) -> Self {
        let runtime = Runtime::new(test_config(), &fixture(component), component).unwrap();
        Self::serve_runtime_with(runtime, limits).await
    }

    async fn serve_runtime_with(runtime: Runtime, limits: berth::limits::BodyLimits) -> Self {
        Self::serve_configured(runtime, limits, test_server_config()).await
    }

    /// Serves `component` with front-end settings `server_config`.
    pub async fn start_with_server_config(component: &str, server_config: ServerConfig) -> Self {
        Self::start_configured(component, test_config(), server_config).await
    }

    /// Serves `component` with the test limits and `server_config`, its
    /// service passed through `configure` first.
    pub async fn start_with_service(
        component: &str,
        server_config: ServerConfig,
        configure: impl FnOnce(WasiHttpService) -> WasiHttpService,
    ) -> Self {
        let runtime = Runtime::new(test_config(), &fixture(component), component).unwrap();
        Self::serve_service(runtime, server_config, configure).await
    }

    /// Serves `component` with runtime `config` and front-end settings
    /// `server_config`.
    pub async fn start_configured(
        component: &str,
        config: RuntimeConfig,
        server_config: ServerConfig,
    ) -> Self {
        let runtime = Runtime::new(config, &fixture(component), component).unwrap();
        Self::serve_configured(runtime, Default::default(), server_config).await
    }

    /// Serves `component` with runtime `config` and admission `limits`.
    pub async fn start_with_admission(
        component: &str,
        config: RuntimeConfig,
        limits: berth::admission::AdmissionLimits,
    ) -> Self {
        let runtime = Runtime::new(config, &fixture(component), component).unwrap();
        Self::serve_service(runtime, test_server_config(), |service| {
            service.with_admission(limits)
        })
        .await
    }

    /// Serves `runtime` with request body `limits` and `server_config`.
    pub async fn serve_configured(
        runtime: Runtime,
        limits: berth::limits::BodyLimits,
        server_config: ServerConfig,
    ) -> Self {
        Self::serve_service(runtime, server_config, |service| {
            service.with_body_limits(limits)
        })
        .await
    }

    async fn serve_service(
        runtime: Runtime,
        server_config: ServerConfig,
        configure: impl FnOnce(WasiHttpService) -> WasiHttpService,
    ) -> Self {
        count_panics();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = configure(WasiHttpService::new(
            runtime.clone(),
            addr.to_string().parse().unwrap(),
        ));
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            berth::serve(listener, service, &server_config, async {
                let _ = stopped.await;
            })
            .await;
        });
        Self {
            addr,
            runtime,
            stop: Some(stop),
            done: Some(done),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until no guest instance is alive (every store was dropped):
    /// the "nothing leaked" oracle run after hostile cases.
    pub async fn assert_idle(&self) {
        for _ in 0..100 {
            if self.runtime.live_instances() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{} guest instances still alive",
            self.runtime.live_instances()
        );
    }

    /// Stops accepting and waits for the drain to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            done.await.unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // A failing test panics itself; only check tests that passed.
        if !std::thread::panicking() {
            assert_no_host_panics();
        }
    }
}

/// Fails if anything in this process panicked since [`count_panics`].
pub fn assert_no_host_panics() {
    let panics = HOST_PANICS.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(panics, 0, "{panics} panic(s) in the host during the tests");
}

pub type TestBody = BoxBody<Bytes, hyper::Error>;

pub fn empty() -> TestBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

pub fn full(bytes: impl Into<Bytes>) -> TestBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
}

pub const PROTOS: [Proto; 2] = [Proto::H1, Proto::H2];

/// Sends one request on a new connection with `proto`.
pub async fn send(
    addr: SocketAddr,
    proto: Proto,
    request: Request<TestBody>,
) -> Response<Incoming> {
    try_send(addr, proto, request)
        .await
        .expect("request succeeds")
}

pub async fn try_send(
    addr: SocketAddr,
    proto: Proto,
    request: Request<TestBody>,
) -> Result<Response<Incoming>, hyper::Error> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let io = TokioIo::new(stream);
    match proto {
        Proto::H1 => {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            sender.send_request(request).await
        }
        Proto::H2 => {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            sender.send_request(request).await
        }
    }
}

/// A GET (or other method) with a Host header for HTTP/1.1.
pub fn request(method: &str, url: &str, body: TestBody) -> Request<TestBody> {
    let uri: http::Uri = url.parse().unwrap();
    Request::builder()
        .method(method)
        .uri(uri.clone())
        .header("host", uri.authority().unwrap().as_str())
        .body(body)
        .unwrap()
}

/// For HTTP/2 requests the Host header is replaced by :authority.
pub fn for_proto(mut req: Request<TestBody>, proto: Proto) -> Request<TestBody> {
    if proto == Proto::H2 {
        req.headers_mut().remove("host");
        *req.version_mut() = http::Version::HTTP_2;
    } else {
        // HTTP/1.1 clients send origin-form targets.
        let pq = req.uri().path_and_query().unwrap().clone();
        *req.uri_mut() = pq.as_str().parse().unwrap();
    }
    req
}

pub async fn get(server: &TestServer, proto: Proto, path: &str) -> (u16, String) {
    let req = for_proto(request("GET", &server.url(path), empty()), proto);
    let resp = send(server.addr, proto, req).await;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("complete body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Reads a body to the end; `Err` when it was aborted.
pub async fn read_body(
    resp: Response<Incoming>,
) -> Result<(Bytes, Option<http::HeaderMap>), hyper::Error> {
    let collected = resp.into_body().collect().await?;
    let trailers = collected.trailers().cloned();
    Ok((collected.to_bytes(), trailers))
}

/// A body sent in `chunks` chunks of `chunk` bytes (`a`, `b`, …), then
/// optional trailers.
pub fn streaming_body(chunks: usize, chunk: usize, trailers: Option<http::HeaderMap>) -> TestBody {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, hyper::Error>>(2);
    tokio::spawn(async move {
        for i in 0..chunks {
            let data = Bytes::from(vec![b'a' + (i % 26) as u8; chunk]);
            if tx.send(Ok(Frame::data(data))).await.is_err() {
                return;
            }
        }
        if let Some(t) = trailers {
            let _ = tx.send(Ok(Frame::trailers(t))).await;
        }
    });
    StreamBody::new(tokio_stream_from(rx)).boxed()
}

/// A request body the test feeds by hand: each frame sent on the sender
/// goes out as it is sent; dropping the sender ends the body.
pub fn channel_body() -> (
    tokio::sync::mpsc::Sender<Result<Frame<Bytes>, hyper::Error>>,
    TestBody,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, hyper::Error>>(1);
    (tx, StreamBody::new(tokio_stream_from(rx)).boxed())
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + Sync + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// This test process's resident memory, in KiB (the server runs in it).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// Waits until no guest instance is alive, failing after `within`.
pub async fn wait_until_idle(server: &TestServer, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while server.runtime.live_instances() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} instances still alive",
            server.runtime.live_instances()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Held by tests that load the machine heavily (a hundred apps compiling,
/// thousands of sockets, reload storms) and by tests whose assertion needs
/// their guest to get its CPU time quickly (a CPU limit reached before a
/// wall clock three times as long): they run one at a time, so a busy
/// 2-core CI machine cannot starve the latter.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}
