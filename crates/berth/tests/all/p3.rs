//! wasi:http@0.3.0: services, concurrent instances, middleware chains and
//! their failure cases, over real sockets with the p3 guests.

use std::sync::Arc;
use std::time::Duration;

use berth::World;
use berth::outbound::{DefaultClient, OutboundConfig};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::support::*;

fn trailers(name: &'static str, value: &'static str) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    map.insert(name, value.parse().unwrap());
    map
}

#[tokio::test]
async fn p3_hello_is_detected_and_served_over_both_protocols() {
    let server = TestServer::start("p3-hello").await;
    assert_eq!(server.runtime.world(), &World::Service03);
    for proto in PROTOS {
        let (status, body) = get(&server, proto, "/").await;
        assert_eq!(status, 200, "{proto:?}");
        assert_eq!(body, "Hello from a wasi:http@0.3.0 component\n");
    }
    server.assert_idle().await;
}

#[tokio::test]
async fn p3_incoming_requests_carry_scheme_and_authority() {
    let server = TestServer::start("p3-suite").await;
    for proto in PROTOS {
        let (status, body) = get(&server, proto, "/headers").await;
        assert_eq!(status, 200);
        assert!(
            body.contains("scheme: Some(Scheme::Http)"),
            "{proto:?}: {body}"
        );
        let authority = format!("authority: Some(\"{}\")", server.addr);
        assert!(body.contains(&authority), "{proto:?}: {body}");
    }
}

#[tokio::test]
async fn p3_echo_streams_large_bodies_and_trailers_both_ways() {
    let server = TestServer::start("p3-suite").await;
    // HTTP/2: trailers need no declaration.
    let req = for_proto(
        request(
            "PUT",
            &server.url("/echo"),
            streaming_body(64, 16 * 1024, Some(trailers("x-checksum", "abc"))),
        ),
        Proto::H2,
    );
    let resp = send(server.addr, Proto::H2, req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-echo-method"], "Method::Put");
    let (body, got) = read_body(resp).await.expect("complete body");
    assert_eq!(body.len(), 64 * 16 * 1024);
    assert!(body[..16 * 1024].iter().all(|b| *b == b'a'));
    assert_eq!(got.expect("trailers")["x-checksum"], "abc");

    // HTTP/1.1 chunked, the client asking for trailers.
    let mut req = for_proto(
        request(
            "POST",
            &server.url("/echo"),
            streaming_body(3, 1000, Some(trailers("x-checksum", "def"))),
        ),
        Proto::H1,
    );
    req.headers_mut().insert("te", "trailers".parse().unwrap());
    req.headers_mut()
        .insert("trailer", "x-checksum".parse().unwrap());
    let (body, got) = read_body(send(server.addr, Proto::H1, req).await)
        .await
        .expect("complete body");
    assert_eq!(body.len(), 3000);
    assert_eq!(got.expect("trailers")["x-checksum"], "def");
    server.assert_idle().await;
}

#[tokio::test]
async fn every_p3_fields_options_and_status_rule_behaves_as_documented() {
    let server = TestServer::start("p3-suite").await;
    let (status, body) = get(&server, Proto::H1, "/fields").await;
    assert_eq!(status, 200);
    let expected = "\
forbidden: Some(HeaderError::Forbidden)
bad-name: Some(HeaderError::InvalidSyntax)
size: Err(HeaderError::SizeExceeded)
get-and-delete: Ok([[49]])
has-after: false
set-timeout: Ok(())
request-headers-immutable: Err(HeaderError::Immutable)
options-kept: Some(1000000)
options-immutable: Err(RequestOptionsError::Immutable)
bad-path: Err(())
relative-path: Ok(()) Some(\"no-slash\")
empty-path: Ok(()) Some(\"/\")
bad-authority: Err(())
dropped-unsent: Err(ErrorCode::InternalError(Some(\"the message was dropped before it was sent\")))
status-99: Err(())
status-600: Err(())
status-kept: 200
";
    assert_eq!(body, expected);
}

#[tokio::test]
async fn a_request_body_returned_untouched_streams_back_with_trailers() {
    let server = TestServer::start("p3-suite").await;
    let req = for_proto(
        request(
            "POST",
            &server.url("/echo-direct"),
            streaming_body(40, 16 * 1024, Some(trailers("x-direct", "yes"))),
        ),
        Proto::H2,
    );
    let (body, got) = read_body(send(server.addr, Proto::H2, req).await)
        .await
        .expect("complete body");
    assert_eq!(body.len(), 40 * 16 * 1024);
    assert_eq!(got.expect("trailers")["x-direct"], "yes");
    server.assert_idle().await;
}

#[tokio::test]
async fn two_middlewares_in_front_of_echo_stream_end_to_end_with_trailers() {
    let server =
        TestServer::start_chain(&["p3-mw-header", "p3-mw-upper", "p3-suite"], test_config()).await;
    assert_eq!(
        server.runtime.chain(),
        &[World::Middleware03, World::Middleware03, World::Service03]
    );
    for proto in PROTOS {
        let mut req = for_proto(
            request(
                "POST",
                &server.url("/echo"),
                streaming_body(20, 8 * 1024, Some(trailers("x-sum", "42"))),
            ),
            proto,
        );
        req.headers_mut().insert("te", "trailers".parse().unwrap());
        req.headers_mut()
            .insert("trailer", "x-sum".parse().unwrap());
        let resp = send(server.addr, proto, req).await;
        assert_eq!(resp.status(), 200, "{proto:?}");
        let seen: Vec<_> = resp.headers().get_all("x-middleware").iter().collect();
        assert_eq!(seen, ["upper", "header"], "{proto:?}");
        let (body, got) = read_body(resp).await.expect("complete body");
        assert_eq!(body.len(), 20 * 8 * 1024, "{proto:?}");
        assert!(body[..8 * 1024].iter().all(|b| *b == b'A'), "upper-cased");
        assert!(body[8 * 1024..16 * 1024].iter().all(|b| *b == b'B'));
        assert_eq!(got.expect("trailers")["x-sum"], "42", "{proto:?}");
    }
    // The request went through the header middleware on its way in.
    let (_, body) = get(&server, Proto::H1, "/headers").await;
    assert!(body.contains("X-THROUGH: HEADER"), "{body}");
    server.assert_idle().await;
}

/// Loads the fixtures `names` as one app, the request's first stop first.
fn load_chain(names: &[&str]) -> Result<berth::Runtime, berth::LoadError> {
    let bytes: Vec<Vec<u8>> = names.iter().map(|n| fixture(n)).collect();
    let sources: Vec<berth::Source<'_>> = bytes
        .iter()
        .zip(names)
        .map(|(bytes, what)| berth::Source { bytes, what })
        .collect();
    berth::Runtime::builder(test_config()).build_chain(&sources)
}

#[tokio::test]
async fn chains_that_do_not_fit_are_rejected_at_load() {
    let load = |names: &[&str]| load_chain(names).map(|_| ()).unwrap_err().to_string();
    let err = load(&["p3-suite", "p3-hello"]);
    assert!(
        err.contains("p3-suite is a wasi:http@0.3.0 service"),
        "{err}"
    );
    let err = load(&["p3-mw-header", "suite"]);
    assert!(
        err.contains("middleware chains are wasi:http@0.3.0 only"),
        "{err}"
    );
}

/// A middleware with nothing after it is not an error: its imported
/// `handler` is the outgoing client (see compat.rs for the traffic).
#[tokio::test]
async fn chains_ending_in_a_middleware_load_with_the_client_last() {
    for names in [&["p3-mw-header"][..], &["p3-mw-header", "p3-mw-upper"]] {
        let runtime = load_chain(names).expect("loads");
        assert!(
            runtime.chain().iter().all(|w| *w == World::Middleware03),
            "{names:?}"
        );
    }
}

#[tokio::test]
async fn p2_and_p3_apps_run_side_by_side_in_one_process() {
    let p2 = TestServer::start("suite").await;
    let p3 = TestServer::start("p3-hello").await;
    let (a, b) = tokio::join!(get(&p2, Proto::H1, "/hello"), get(&p3, Proto::H2, "/"));
    assert_eq!(a.0, 200);
    assert_eq!(b, (200, "Hello from a wasi:http@0.3.0 component\n".into()));
}

#[tokio::test]
async fn one_instance_serves_concurrent_requests_up_to_the_cap() {
    let config = berth::RuntimeConfig {
        concurrent_requests: 8,
        // Held requests must not hit their deadline on a loaded machine: a
        // missed deadline retires the instance and the next ones start more.
        wall_time_limit: Duration::from_secs(60),
        ..test_config()
    };
    let server = TestServer::start_with("p3-suite", config).await;
    // 16 echo requests held open at once (their bodies have not ended).
    let held = HeldEchoes::start(&server, 16).await;
    // 16 requests, 8 per instance: two instances, not sixteen.
    assert_eq!(server.runtime.live_instances(), 2);
    held.finish().await;
    server.assert_idle().await;
}

/// Echo requests over HTTP/2 whose bodies stay open until
/// [`HeldEchoes::finish`]: they hold their instances' places.
struct HeldEchoes {
    held: Vec<tokio::task::JoinHandle<Result<hyper::Response<Incoming>, hyper::Error>>>,
    senders: Vec<tokio::sync::mpsc::Sender<Result<hyper::body::Frame<Bytes>, hyper::Error>>>,
}

impl HeldEchoes {
    /// Sends `n` and waits until at least two instances serve them.
    async fn start(server: &TestServer, n: usize) -> Self {
        let mut held = Vec::new();
        let mut senders = Vec::new();
        for _ in 0..n {
            let (tx, body) = channel_body();
            let req = for_proto(request("POST", &server.url("/echo"), body), Proto::H2);
            held.push(tokio::spawn(try_send(server.addr, Proto::H2, req)));
            senders.push(tx);
        }
        for _ in 0..100 {
            if server.runtime.live_instances() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { held, senders }
    }

    /// Ends every body with one byte; each echo must come back whole.
    async fn finish(self) {
        for tx in &self.senders {
            tx.send(Ok(hyper::body::Frame::data(Bytes::from_static(b"x"))))
                .await
                .unwrap();
        }
        drop(self.senders);
        for task in self.held {
            let resp = task.await.unwrap().expect("response");
            let (body, _) = read_body(resp).await.expect("complete body");
            assert_eq!(body.as_ref(), b"x");
        }
    }
}

#[tokio::test]
async fn trap_mid_stream_aborts_that_body_and_later_requests_succeed() {
    let config = berth::RuntimeConfig {
        concurrent_requests: 1,
        ..test_config()
    };
    let server = TestServer::start_with("p3-suite", config).await;
    // An echo on another instance, in flight while the trap happens.
    let (tx, body) = channel_body();
    let req = for_proto(request("POST", &server.url("/echo"), body), Proto::H2);
    let echo = tokio::spawn(try_send(server.addr, Proto::H2, req));

    for proto in PROTOS {
        let req = for_proto(request("GET", &server.url("/trap-mid"), empty()), proto);
        // The guest's write completes only when the host has taken the
        // bytes, so the head goes out with them before the trap: a 200
        // whose body is then cut, never ended cleanly.
        let resp = try_send(server.addr, proto, req)
            .await
            .unwrap_or_else(|err| panic!("{proto:?}: no response head: {err}"));
        assert_eq!(resp.status(), 200, "{proto:?}");
        let result = read_body(resp).await;
        assert!(result.is_err(), "{proto:?} ended cleanly: {result:?}");
    }
    tx.send(Ok(hyper::body::Frame::data(Bytes::from_static(
        b"still fine",
    ))))
    .await
    .unwrap();
    drop(tx);
    let resp = echo.await.unwrap().expect("echo response");
    assert_eq!(
        read_body(resp).await.expect("complete").0.as_ref(),
        b"still fine"
    );
    assert_eq!(get(&server, Proto::H1, "/").await.0, 200);
    server.assert_idle().await;
}

#[tokio::test]
async fn a_body_that_never_ends_is_cut_at_the_deadline() {
    let config = berth::RuntimeConfig {
        wall_time_limit: Duration::from_millis(800),
        ..test_config()
    };
    let server = TestServer::start_with("p3-suite", config).await;
    for proto in PROTOS {
        let started = std::time::Instant::now();
        let req = for_proto(request("GET", &server.url("/never"), empty()), proto);
        let resp = send(server.addr, proto, req).await;
        assert_eq!(resp.status(), 200);
        assert!(
            read_body(resp).await.is_err(),
            "{proto:?}: body must not end cleanly"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // Other requests are unaffected and the stuck instance is gone.
    assert_eq!(get(&server, Proto::H2, "/").await.0, 200);
    server.assert_idle().await;
}

#[tokio::test]
async fn post_return_work_runs_under_the_cpu_limit() {
    let server = TestServer::start("p3-suite").await;
    let (status, body) = get(&server, Proto::H1, "/loop-after").await;
    assert_eq!((status, body.as_str()), (200, "responded; now looping\n"));
    // The loop after the response burns the instance's CPU budget and the
    // instance is killed; later requests get a new one.
    server.assert_idle().await;
    assert_eq!(get(&server, Proto::H2, "/").await.0, 200);
}

#[tokio::test]
async fn a_guest_creating_streams_forever_is_stopped_with_bounded_memory() {
    let server = TestServer::start("p3-suite").await;
    let before = rss_kib();
    let (status, _) = get(&server, Proto::H1, "/stream-flood").await;
    assert_eq!(status, 500);
    server.assert_idle().await;
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 128 * 1024, "server memory grew by {grown} KiB");
    assert_eq!(get(&server, Proto::H2, "/").await.0, 200);
}

#[tokio::test]
async fn guest_error_codes_and_disconnects_are_handled() {
    let server = TestServer::start("p3-suite").await;
    let (status, _) = get(&server, Proto::H1, "/error").await;
    assert_eq!(status, 500);
    // A client that goes away mid-stream: the echo's writes see the stream
    // dropped and the instance winds down.
    let (tx, body) = channel_body();
    let req = for_proto(request("POST", &server.url("/echo"), body), Proto::H1);
    let resp: http::Response<Incoming> = send(server.addr, Proto::H1, req).await;
    tx.send(Ok(hyper::body::Frame::data(Bytes::from_static(b"first"))))
        .await
        .unwrap();
    let mut body = resp.into_body();
    let frame = body.frame().await.expect("a frame").expect("data");
    assert_eq!(frame.into_data().unwrap().as_ref(), b"first");
    drop(body);
    drop(tx);
    assert_eq!(get(&server, Proto::H1, "/").await.0, 200);
    server.assert_idle().await;
}

async fn origin_echo(
    req: http::Request<Incoming>,
) -> Result<
    http::Response<http_body_util::combinators::BoxBody<Bytes, hyper::Error>>,
    std::convert::Infallible,
> {
    let declared = req.headers().get("trailer").cloned();
    let mut resp = http::Response::new(req.into_body().boxed());
    resp.headers_mut()
        .insert("x-origin", "yes".parse().unwrap());
    if let Some(d) = declared {
        resp.headers_mut().insert("trailer", d);
    }
    Ok(resp)
}

/// berth's outgoing client, allowed to reach loopback only.
fn loopback_client(loop_identity: &str) -> DefaultClient {
    DefaultClient::new(OutboundConfig {
        allow: vec!["127.0.0.1".parse().unwrap()],
        system_roots: false,
        loop_identity: loop_identity.into(),
        ..OutboundConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn p3_client_streams_through_the_shared_outbound_client() {
    let origin = berth_test_support::spawn_origin(origin_echo, None)
        .await
        .addr;
    let client = loopback_client("berth-p3");
    let server = TestServer::start_with_outbound("p3-suite", test_config(), Arc::new(client)).await;
    let mut req = for_proto(
        request(
            "POST",
            &server.url("/client"),
            streaming_body(32, 8 * 1024, Some(trailers("x-up", "1"))),
        ),
        Proto::H2,
    );
    req.headers_mut().insert(
        "x-upstream",
        format!("http://{origin}/echo").parse().unwrap(),
    );
    let resp = send(server.addr, Proto::H2, req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-origin"], "yes");
    let (body, _) = read_body(resp).await.expect("complete body");
    assert_eq!(body.len(), 32 * 8 * 1024);

    // The egress policy applies to 0.3 exactly as to 0.2.
    let mut req = for_proto(request("GET", &server.url("/client"), empty()), Proto::H1);
    req.headers_mut()
        .insert("x-upstream", "http://10.1.2.3/".parse().unwrap());
    let resp = send(server.addr, Proto::H1, req).await;
    assert_eq!(resp.status(), 500, "HTTP-request-denied from the guest");
    server.assert_idle().await;
}

/// Counts the instances a runtime creates.
#[derive(Debug, Default)]
struct CountCreated(std::sync::atomic::AtomicUsize);

impl berth::runtime::observe::Observer for CountCreated {
    fn event(&self, event: berth::runtime::observe::Event<'_>) {
        if let berth::runtime::observe::Event::InstanceCreated { .. } = event {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// A `MakeWriter` into a shared buffer: the log lines a test produces.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// One instance serving 100 requests, four at a time, each sending ten
/// outgoing requests and logging a line before and after: every request
/// gets its own outgoing-request budget (the 51st of the instance used to
/// fail with `connection-limit-reached`) and its lines carry its own id.
#[tokio::test]
async fn one_p3_instance_accounts_outgoing_requests_and_logs_per_request() {
    // This test's thread only (a current-thread runtime: the server, its
    // connections, its instance and the guest all run here).
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _logs = tracing::subscriber::set_default(subscriber);

    let origin = berth_test_support::spawn_origin(origin_echo, None)
        .await
        .addr;
    let client = loopback_client("berth-p3-fan");
    let runtime = berth::Runtime::builder(test_config())
        .outbound(Arc::new(client))
        .build(&fixture("p3-suite"), "p3-suite")
        .expect("component loads");
    let on_this_thread = berth::ServerConfig {
        connection_threads: 0,
        ..test_server_config()
    };
    let server = TestServer::serve_configured(runtime, Default::default(), on_this_thread).await;
    let created = Arc::new(CountCreated::default());
    server.runtime.set_observer(created.clone());
    let addr = server.addr;
    for batch in 0..25 {
        let mut requests = Vec::new();
        for i in 0..4 {
            let tag = format!("t{}", batch * 4 + i);
            let mut req = for_proto(request("GET", &server.url("/fan?n=10"), empty()), Proto::H2);
            req.headers_mut()
                .insert("x-upstream", origin.to_string().parse().unwrap());
            req.headers_mut().insert("x-tag", tag.parse().unwrap());
            requests.push(tokio::spawn(async move {
                let resp = send(addr, Proto::H2, req).await;
                (tag, resp.status(), read_body(resp).await.unwrap().0)
            }));
        }
        for request in requests {
            let (tag, status, body) = request.await.unwrap();
            assert_eq!(status, 200, "{tag}");
            assert_eq!(&body[..], b"10/10 []\n", "{tag}");
        }
    }
    assert_eq!(
        created.0.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one instance served them all"
    );

    // Every request's two lines carry one request id, and no two requests
    // share one.
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let mut ids = std::collections::HashMap::<String, std::collections::HashSet<String>>::new();
    for line in text
        .lines()
        .filter(|l| l.contains("berth::guest") && l.contains(" fan t"))
    {
        let tag = line
            .split(" fan ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        // The event's own field (after the span's, which carries the
        // front-end's id).
        let id = line
            .rsplit("request_id=")
            .next()
            .unwrap()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap();
        ids.entry(tag.to_owned()).or_default().insert(id.to_owned());
    }
    assert_eq!(ids.len(), 100, "{text}");
    let mut seen = std::collections::HashSet::new();
    for (tag, set) in &ids {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(&format!(" fan {tag} ")))
            .collect();
        assert_eq!(set.len(), 1, "{tag}'s lines carry several ids: {lines:#?}");
        assert!(
            seen.insert(set.iter().next().unwrap().clone()),
            "{tag} shares an id"
        );
    }
    server.assert_idle().await;
}

/// The benchmarks' trickling answer (`/trickle`, both suite guests): the
/// chunks arrive over time, every byte of the declared length.
#[tokio::test]
async fn trickling_answers_arrive_whole_from_0_2_and_0_3_guests() {
    for guest in ["suite", "p3-suite"] {
        let server = TestServer::start(guest).await;
        for proto in PROTOS {
            let began = std::time::Instant::now();
            let (status, body) = get(&server, proto, "/trickle?chunks=3&every_ms=20&size=5").await;
            assert_eq!(status, 200, "{guest} {proto:?}");
            assert_eq!(body, ".".repeat(15), "{guest} {proto:?}");
            // Two waits between three chunks.
            assert!(
                began.elapsed() >= Duration::from_millis(40),
                "{guest} {proto:?}: {:?}",
                began.elapsed()
            );
        }
        server.assert_idle().await;
    }
}

/// Connections served as tasks of a work-stealing runtime with two worker
/// threads: concurrent requests go to two instances before any instance
/// takes a second one (one instance serving every connection ping-pongs
/// with the other thread); past that, they stack on the least busy
/// instance up to the cap, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_spread_over_one_instance_per_worker_thread() {
    six_held_echoes_use_instances(0, 2).await;
}

/// On connection threads, a request stays on its connection's thread: six
/// connections over two threads get an instance on each thread (one
/// instance has room for all six), and on a single-threaded caller's
/// runtime they would share one.
#[tokio::test]
async fn each_connection_thread_gets_an_instance_of_its_own() {
    for (threads, instances) in [(2, 2), (0, 1)] {
        six_held_echoes_use_instances(threads, instances).await;
    }
}

/// Holds six echo requests open on a p3-suite server with
/// `connection_threads` and checks they are served by `instances`
/// instances, then that each echo comes back whole.
async fn six_held_echoes_use_instances(connection_threads: usize, instances: usize) {
    let config = berth::RuntimeConfig {
        wall_time_limit: Duration::from_secs(60),
        ..test_config()
    };
    let server_config = berth::ServerConfig {
        connection_threads,
        ..test_server_config()
    };
    let server = TestServer::start_configured("p3-suite", config, server_config).await;
    let held = HeldEchoes::start(&server, 6).await;
    // Give a wrong policy the time to start more.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        server.runtime.live_instances(),
        instances,
        "{connection_threads} connection threads"
    );
    held.finish().await;
    server.assert_idle().await;
}
