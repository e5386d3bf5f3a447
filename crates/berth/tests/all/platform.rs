//! Many apps in one process: routing by host and path, per-app caps, and
//! reloads that swap the whole table while requests are in flight.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use berth::platform::{AppConfig, ComponentSource, Config, Platform};
use berth::routes::Route;
use http_body_util::BodyExt;

use crate::support::*;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}/../../guests/prebuilt/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    ))
}

/// An app of prebuilt fixtures with the test limits.
pub fn app(name: &str, components: &[&str], routes: &[&str]) -> AppConfig {
    AppConfig {
        name: name.to_owned(),
        components: components
            .iter()
            .map(|c| ComponentSource::File(fixture_path(c)))
            .collect(),
        routes: routes.iter().map(|r| Route::parse(r).unwrap()).collect(),
        runtime: test_config(),
        body_limits: berth::limits::BodyLimits::default(),
        admission: berth::admission::AdmissionLimits::new(50),
        outbound: berth::outbound::OutboundConfig::default(),
    }
}

pub fn config(apps: Vec<AppConfig>) -> Config {
    Config {
        server: test_server_config(),
        engine: berth::runtime::EngineConfig::of(&test_config()),
        cache_dir: None,
        apps,
    }
}

/// A platform served on a loopback port.
pub struct PlatformServer {
    pub addr: SocketAddr,
    pub platform: Platform,
    handle: berth::ServeHandle,
}

impl PlatformServer {
    pub async fn start(config: Config) -> Self {
        Self::start_with(config, berth::platform::PlatformOptions::default()).await
    }

    /// Like [`PlatformServer::start`], with an embedder's options.
    pub async fn start_with(config: Config, options: berth::platform::PlatformOptions) -> Self {
        count_panics();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = config.server.clone();
        let platform =
            Platform::build_with(config, addr.to_string().parse().unwrap(), options).unwrap();
        let handle = berth::ServeHandle::spawn(listener, platform.router(), server).unwrap();
        Self {
            addr,
            platform,
            handle,
        }
    }

    /// GET `path` with `host` as Host (HTTP/1.1) or `:authority` (HTTP/2).
    pub async fn get(&self, proto: Proto, host: &str, path: &str) -> (u16, String) {
        let req = for_proto(
            request("GET", &format!("http://{host}{path}"), empty()),
            proto,
        );
        let resp = send(self.addr, proto, req).await;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    pub async fn stop(mut self) {
        self.handle.shutdown(Duration::from_secs(5));
        (&mut self.handle).await;
        assert_no_host_panics();
    }
}

/// Two apps by host, two by path prefix under one host, a wildcard host,
/// a 0.2 app beside 0.3 ones (a chain among them), and a 404 for every
/// request no route covers; each app sees its request unchanged.
#[tokio::test]
async fn requests_are_routed_by_host_and_path_prefix() {
    let server = PlatformServer::start(config(vec![
        app("suite", &["suite"], &["a.test", "*.wild.test"]),
        app("hello", &["p3-hello"], &["b.test/p3"]),
        app("loud", &["p3-mw-upper", "p3-suite"], &["b.test/loud"]),
        app("info", &["suite"], &["c.test/deep/er"]),
    ]))
    .await;
    for proto in PROTOS {
        let get = |host, path| server.get(proto, host, path);
        assert_eq!(
            get("a.test", "/hello").await,
            (200, "hello from berth\n".into())
        );
        let (status, body) = get("x.wild.test:8080", "/info?q=1").await;
        assert_eq!(status, 200);
        assert!(body.contains("authority=x.wild.test:8080\n"), "{body}");
        assert!(body.contains("path=/info?q=1\n"), "{body}");
        let (status, body) = get("b.test", "/p3/anything").await;
        assert_eq!(
            (status, body.as_str()),
            (200, "Hello from a wasi:http@0.3.0 component\n")
        );
        let (status, body) = get("b.test", "/loud/x").await;
        assert_eq!(
            (status, body.as_str()),
            (200, "HELLO FROM THE WASI:HTTP@0.3.0 SUITE\n")
        );
        // The prefix is not stripped: the suite sees `/deep/er/info` (its
        // own 404 names the first segment; the router's names a request id).
        let (status, body) = get("c.test", "/deep/er/info").await;
        assert_eq!((status, body.as_str()), (404, "no route /deep\n"));
        for (host, path) in [
            ("b.test", "/p3x"),
            ("b.test", "/"),
            ("c.test", "/deep"),
            ("wild.test", "/hello"),
            ("unknown.test", "/hello"),
        ] {
            let (status, body) = get(host, path).await;
            assert_eq!(status, 404, "{host}{path}: {body}");
            assert!(body.starts_with("404 Not Found (request "), "{body}");
        }
    }
    let table: Vec<String> = server
        .platform
        .routing_table()
        .iter()
        .map(|(route, app)| format!("{route} -> {app}"))
        .collect();
    assert_eq!(
        table,
        [
            "a.test -> suite",
            "b.test/loud -> loud",
            "b.test/p3 -> hello",
            "c.test/deep/er -> info",
            "*.wild.test -> suite",
        ]
    );
    server.stop().await;
}

/// One app flooded with slow requests past its own admission cap gets
/// 503s; another app on the same engine is still served at once.
#[tokio::test]
async fn one_app_flooded_does_not_starve_another() {
    let mut slow = app("slow", &["suite"], &["slow.test"]);
    slow.admission = berth::admission::AdmissionLimits {
        max_concurrent: 2,
        max_queued: 2,
        wait: Duration::from_millis(100),
    };
    let server =
        PlatformServer::start(config(vec![slow, app("fast", &["suite"], &["fast.test"])])).await;
    let flood: Vec<_> = (0..12)
        .map(|_| {
            let req = for_proto(
                request("GET", "http://slow.test/sleep?ms=1500", empty()),
                Proto::H1,
            );
            tokio::spawn(send(server.addr, Proto::H1, req))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    assert_eq!(server.get(Proto::H1, "fast.test", "/hello").await.0, 200);
    let fast = started.elapsed();
    assert!(
        fast < Duration::from_millis(500),
        "the other app took {fast:?}"
    );
    let mut statuses = Vec::new();
    for request in flood {
        statuses.push(request.await.unwrap().status().as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        10,
        "{statuses:?}"
    );
    server.stop().await;
}

const SUITE_HELLO: &str = "hello from berth\n";
const P3_HELLO: &str = "Hello from a wasi:http@0.3.0 component\n";

/// Version `v` of a config that changes in every way a reload can: the
/// component behind `svc.test` alternates (suite on even versions, p3-hello
/// on odd ones), an app is added and removed, and a route moves.
fn version(v: usize) -> Config {
    let component = if v.is_multiple_of(2) {
        "suite"
    } else {
        "p3-hello"
    };
    let svc_routes: &[&str] = if (5..9).contains(&v) {
        &["svc.test", "alt.test"]
    } else {
        &["svc.test"]
    };
    let mut apps = vec![app("svc", &[component], svc_routes)];
    if matches!(v, 2 | 3 | 7) {
        apps.push(app("extra", &["suite"], &["x.test"]));
    }
    config(apps)
}

/// Reloads under load: a client keeps sending requests while the config
/// changes ten times. No request fails, and each is answered by a version
/// current at some point while it was in flight. A broken component and
/// a broken config are refused and leave the last version serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_lose_no_request() {
    let _alone = one_at_a_time().await;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let server = PlatformServer::start(version(0)).await;
    // A reload swaps the routes somewhere between its start and its
    // return: a request may see version v from when reload(v) starts
    // (`reloading`), and must see at least the version whose reload had
    // returned when it was sent (`current`).
    let current = Arc::new(AtomicUsize::new(0));
    let reloading = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let addr = server.addr;
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (current, reloading, stop) = (current.clone(), reloading.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut sent, mut wrong) = (0usize, Vec::new());
                while !stop.load(Ordering::Acquire) {
                    let before = current.load(Ordering::Acquire);
                    let req =
                        for_proto(request("GET", "http://svc.test/hello", empty()), Proto::H1);
                    let result = try_send(addr, Proto::H1, req).await;
                    let after = reloading.load(Ordering::Acquire);
                    sent += 1;
                    let answer = match result {
                        Ok(resp) => {
                            let status = resp.status().as_u16();
                            match read_body(resp).await {
                                Ok((body, _)) => {
                                    (status, String::from_utf8_lossy(&body).into_owned())
                                }
                                Err(err) => (0, err.to_string()),
                            }
                        }
                        Err(err) => (0, err.to_string()),
                    };
                    let expected = |v: usize| {
                        if v.is_multiple_of(2) {
                            SUITE_HELLO
                        } else {
                            P3_HELLO
                        }
                    };
                    let fits = answer.0 == 200 && (before..=after).any(|v| answer.1 == expected(v));
                    if !fits {
                        wrong.push(format!("versions {before}..={after}: {answer:?}"));
                    }
                }
                (sent, wrong)
            })
        })
        .collect();

    for v in 1..=10 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let platform = server.platform.clone();
        reloading.store(v, Ordering::Release);
        let summary = tokio::task::spawn_blocking(move || platform.reload(version(v)))
            .await
            .unwrap()
            .unwrap_or_else(|err| panic!("version {v}: {err}"));
        current.store(v, Ordering::Release);
        // svc changes in every version; extra is built when it comes back
        // and kept while it stays.
        let built: &[&str] = if matches!(v, 2 | 7) {
            &["svc", "extra"]
        } else {
            &["svc"]
        };
        assert_eq!(summary.built, built, "version {v}: {summary:?}");
        let kept: &[&str] = if v == 3 { &["extra"] } else { &[] };
        assert_eq!(summary.kept, kept, "version {v}");
        let removed: &[&str] = if matches!(v, 4 | 8) { &["extra"] } else { &[] };
        assert_eq!(summary.removed, removed, "version {v}");
        // The added and moved routes answer as soon as reload returns.
        let extra = server.get(Proto::H1, "x.test", "/hello").await.0;
        assert_eq!(
            extra,
            if matches!(v, 2 | 3 | 7) { 200 } else { 404 },
            "version {v}"
        );
        let alt = server.get(Proto::H2, "alt.test", "/hello").await.0;
        assert_eq!(
            alt,
            if (5..9).contains(&v) { 200 } else { 404 },
            "version {v}"
        );
    }

    // A component that does not compile, and a config with a clash: both
    // refused, version 10 keeps serving.
    let broken = std::env::temp_dir().join(format!("berth-broken-{}.wasm", std::process::id()));
    std::fs::write(&broken, b"\0asm\x0d\0\x01\0garbage").unwrap();
    let mut bad_component = version(10);
    bad_component.apps[0].components = vec![ComponentSource::File(broken.clone())];
    let mut clash = version(10);
    clash.apps.push(app("thief", &["suite"], &["svc.test"]));
    for bad in [bad_component, clash] {
        let platform = server.platform.clone();
        let refused = tokio::task::spawn_blocking(move || platform.reload(bad))
            .await
            .unwrap();
        assert!(refused.is_err());
    }
    std::fs::remove_file(&broken).unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.store(true, Ordering::Release);
    let mut total = 0;
    for client in clients {
        let (sent, wrong) = client.await.unwrap();
        total += sent;
        assert!(
            wrong.is_empty(),
            "{} of {sent} requests went wrong: {wrong:#?}",
            wrong.len()
        );
    }
    assert!(total > 100, "only {total} requests were sent");
    eprintln!("{total} requests across 10 reloads and 2 refused ones, none failed");
    assert_eq!(
        server.get(Proto::H1, "svc.test", "/hello").await,
        (200, SUITE_HELLO.into())
    );
    server.stop().await;
}

/// The file watcher: a component rewritten in place is read once it has
/// settled; half of one (a writer that paused) does not compile, is
/// refused, and the old version keeps serving until the whole file is
/// there. A new component the file names is watched even while refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_rewritten_in_place_is_reloaded_only_whole() {
    let dir = std::env::temp_dir().join(format!("berth-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let component = dir.join("app.wasm");
    std::fs::copy(fixture_path("suite"), &component).unwrap();
    let file = dir.join("berth.toml");
    std::fs::write(
        &file,
        "[[apps]]\nname = \"svc\"\ncomponent = \"app.wasm\"\nroutes = [\"svc.test\"]\n",
    )
    .unwrap();
    let mut loaded = berth::platform::file::load(&file).unwrap();
    loaded.server = test_server_config();
    loaded.cache_dir = None;
    let server = PlatformServer::start(loaded).await;
    let watcher = tokio::spawn(berth::platform::watch::watch(
        server.platform.clone(),
        file.clone(),
        Duration::from_millis(100),
    ));
    let svc = || server.get(Proto::H1, "svc.test", "/hello");
    assert_eq!(svc().await, (200, SUITE_HELLO.into()));

    let p3 = std::fs::read(fixture_path("p3-hello")).unwrap();
    std::fs::write(&component, &p3[..p3.len() / 2]).unwrap();
    // Long enough for the watcher to see it, let it settle and try it.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        svc().await,
        (200, SUITE_HELLO.into()),
        "half a component was served"
    );

    std::fs::write(&component, &p3).unwrap();
    let started = std::time::Instant::now();
    loop {
        let answer = svc().await;
        if answer == (200, P3_HELLO.into()) {
            break;
        }
        assert_eq!(answer, (200, SUITE_HELLO.into()));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never reloaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The file now names a component that is broken: refused. Fixing that
    // component, with the file untouched, is enough for the next try.
    let new = dir.join("new.wasm");
    std::fs::write(&new, b"not yet").unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("app.wasm", "new.wasm")).unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(svc().await, (200, P3_HELLO.into()));
    std::fs::copy(fixture_path("suite"), &new).unwrap();
    let started = std::time::Instant::now();
    while svc().await != (200, SUITE_HELLO.into()) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the fixed component was never tried"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watcher.abort();
    server.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A hundred apps load (through one compilation cache) on one shared
/// engine, and each answers at its own host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_apps_load_and_serve() {
    let _alone = one_at_a_time().await;
    let cache = std::env::temp_dir().join(format!("berth-hundred-{}", std::process::id()));
    let apps = (0..100)
        .map(|i| app(&format!("app{i}"), &["suite"], &[&format!("app{i}.test")]))
        .collect();
    let mut hundred = config(apps);
    hundred.cache_dir = Some(cache.clone());
    let started = std::time::Instant::now();
    let server = PlatformServer::start(hundred).await;
    eprintln!("100 apps built in {:?}", started.elapsed());
    assert_eq!(server.platform.apps().len(), 100);
    for i in 0..100 {
        let host = format!("app{i}.test");
        assert_eq!(
            server.get(Proto::H1, &host, "/hello").await,
            (200, SUITE_HELLO.into())
        );
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(&cache);
}

/// `/metrics` on the admin listener after a known mix of requests, parsed
/// as Prometheus text: each counter moved by exactly what was sent.
#[tokio::test]
async fn metrics_count_exactly_what_was_sent() {
    let mut small = app("small", &["suite"], &["small.test"]);
    small.admission = berth::admission::AdmissionLimits {
        max_concurrent: 1,
        max_queued: 0,
        wait: Duration::from_millis(10),
    };
    // Two proxies to a loopback origin: one allowed there, one not.
    let origin = berth_test_support::spawn_origin(
        |_request| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                bytes::Bytes::from_static(b"origin\n"),
            )))
        },
        None,
    )
    .await;
    let upstream = vec![("UPSTREAM".to_owned(), format!("http://{}", origin.addr))];
    let mut proxy = app("proxy", &["proxy"], &["proxy.test"]);
    proxy.runtime.env.clone_from(&upstream);
    proxy.outbound.allow = vec!["127.0.0.1".parse().unwrap()];
    proxy.outbound.system_roots = false;
    let mut denied = app("denied", &["proxy"], &["denied.test"]);
    denied.runtime.env = upstream;
    let server = PlatformServer::start(config(vec![
        app("suite", &["suite"], &["a.test"]),
        small,
        proxy,
        denied,
    ]))
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = listener.local_addr().unwrap();
    let probe =
        berth::admin::Probe::new(berth::Readiness::default(), Some(server.platform.clone()));
    let admin_task = tokio::spawn(berth::admin::serve_admin(listener, probe));
    assert_eq!(server.get(Proto::H1, "proxy.test", "/").await.0, 200);
    assert_eq!(server.get(Proto::H1, "denied.test", "/").await.0, 502);
    // The allowed request left a pooled connection behind (gone with the
    // app at the reload below).
    let pooled = scrape(admin).await.2("berth_outbound_connections_pooled", &[("app", "proxy")]);
    assert_eq!(pooled, 1.0);
    assert_eq!(server.get(Proto::H1, "a.test", "/loop").await.0, 504);
    assert_eq!(server.get(Proto::H1, "a.test", "/memory").await.0, 500);
    for _ in 0..3 {
        assert_eq!(server.get(Proto::H1, "a.test", "/hello").await.0, 200);
    }
    for _ in 0..2 {
        assert_eq!(server.get(Proto::H2, "a.test", "/nope").await.0, 404);
    }
    assert_eq!(server.get(Proto::H1, "a.test", "/trap").await.0, 500);
    assert_eq!(server.get(Proto::H1, "nowhere.test", "/").await.0, 404);
    // One slow request holds small's only place: the next is rejected.
    let slow = tokio::spawn(send(
        server.addr,
        Proto::H1,
        for_proto(
            request("GET", "http://small.test/sleep?ms=500", empty()),
            Proto::H1,
        ),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.get(Proto::H1, "small.test", "/hello").await.0, 503);
    assert_eq!(slow.await.unwrap().status(), 200);
    let platform = server.platform.clone();
    tokio::task::spawn_blocking(move || {
        platform.reload(config(vec![app("suite", &["suite"], &["a.test"])]))
    })
    .await
    .unwrap()
    .unwrap();

    let (text, scraped, value) = scrape(admin).await;
    let requests = "berth_requests_total";
    let ok = [("app", "suite"), ("status", "2xx"), ("outcome", "complete")];
    assert_eq!(value(requests, &ok), 3.0, "{text}");
    assert_eq!(
        value(requests, &[("app", "suite"), ("status", "4xx")]),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(requests, &[("app", "suite"), ("status", "5xx")]),
        3.0,
        "{text}"
    );
    assert_eq!(
        value(requests, &[("app", "-"), ("status", "4xx")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(requests, &[("app", "small"), ("status", "5xx")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(requests, &[("app", "small"), ("status", "2xx")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        value("berth_admission_rejections_total", &[("app", "small")]),
        1.0,
        "{text}"
    );
    assert_eq!(value("berth_requests_in_flight", &[]), 0.0, "{text}");
    assert_eq!(
        value("berth_reloads_total", &[("result", "ok")]),
        1.0,
        "{text}"
    );
    let durations = scraped.samples.iter().find_map(|s| match &s.value {
        prometheus_parse::Value::Histogram(buckets) if s.labels.get("app") == Some("suite") => {
            buckets.last().map(|b| b.count)
        }
        _ => None,
    });
    assert_eq!(durations, Some(8.0), "{text}");

    // Instances: one fresh instance per request that reached the guest,
    // none left running; what stopped them, by kind.
    let suite = [("app", "suite")];
    assert_eq!(
        value("berth_instances_created_total", &suite),
        8.0,
        "{text}"
    );
    assert_eq!(value("berth_instances_reused_total", &suite), 0.0, "{text}");
    assert_eq!(value("berth_instances_live", &[]), 0.0, "{text}");
    let instantiations = scraped.samples.iter().find_map(|s| match &s.value {
        prometheus_parse::Value::Histogram(buckets)
            if s.metric.starts_with("berth_instantiation_seconds")
                && s.labels.get("app") == Some("suite") =>
        {
            buckets.last().map(|b| b.count)
        }
        _ => None,
    });
    assert_eq!(instantiations, Some(8.0), "{text}");
    let limit = |name| {
        value(
            "berth_limit_hits_total",
            &[("app", "suite"), ("limit", name)],
        )
    };
    assert_eq!(limit("cpu"), 1.0, "{text}");
    assert_eq!(limit("memory"), 1.0, "{text}");
    assert_eq!(limit("wall"), 0.0, "{text}");
    // `/trap` panics and `/memory` aborts when an allocation fails: both
    // are `unreachable` in Rust guests. The CPU limit is not a trap here.
    assert_eq!(
        value(
            "berth_traps_total",
            &[("app", "suite"), ("kind", "unreachable")]
        ),
        2.0,
        "{text}"
    );
    assert_eq!(value("berth_traps_total", &[]), 2.0, "{text}");
    assert_eq!(value("berth_pool_exhausted_total", &[]), 0.0, "{text}");

    // Outgoing requests, by result; the allowed one left a pooled
    // connection behind.
    let outbound = |app, error| {
        value(
            "berth_outbound_requests_total",
            &[("app", app), ("error", error)],
        )
    };
    assert_eq!(outbound("proxy", "ok"), 1.0, "{text}");
    assert_eq!(outbound("denied", "HTTP-request-denied"), 1.0, "{text}");
    assert_eq!(value("berth_outbound_requests_total", &[]), 2.0, "{text}");
    assert!(
        text.contains("berth_compile_cache_total{result=\"hit\"}"),
        "{text}"
    );
    assert_eq!(value("berth_log_lines_dropped_total", &[]), 0.0, "{text}");

    // A client connection is counted while it is open.
    let open = || async { scrape(admin).await.2("berth_connections_open", &[]) };
    let held = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut tries = 0;
    while open().await != 1.0 {
        tries += 1;
        assert!(tries < 100, "connections_open never settled at 1");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(held);
    while open().await != 0.0 {
        tries += 1;
        assert!(tries < 200, "connections_open never went back to 0");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin_task.abort();
    server.stop().await;
}

/// Scrapes the admin listener at `admin`: the text, the parsed samples,
/// and a lookup summing the samples of a metric whose labels include the
/// given ones.
async fn scrape(
    admin: SocketAddr,
) -> (
    String,
    prometheus_parse::Scrape,
    impl Fn(&str, &[(&str, &str)]) -> f64,
) {
    let request = for_proto(
        request("GET", &format!("http://{admin}/metrics"), empty()),
        Proto::H1,
    );
    let response = send(admin, Proto::H1, request).await;
    assert_eq!(response.status(), 200);
    let text = String::from_utf8(read_body(response).await.unwrap().0.to_vec()).unwrap();
    let parse = || prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())));
    let samples = parse().unwrap().samples;
    let value = move |name: &str, labels: &[(&str, &str)]| -> f64 {
        samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    let scraped = parse().unwrap();
    (text, scraped, value)
}

/// An app over its guest output rate has lines dropped and counted; another
/// app's output is unaffected.
#[tokio::test]
async fn guest_output_over_the_apps_rate_is_dropped_and_counted() {
    let mut noisy = app("noisy", &["suite"], &["noisy.test"]);
    // 64 bytes/s: a burst of 256 bytes, about three /stdio requests' worth
    // (three lines of 8 to 30 bytes each).
    noisy.runtime.log_rate = 64;
    let quiet = app("quiet", &["suite"], &["quiet.test"]);
    let server = PlatformServer::start(config(vec![noisy, quiet])).await;
    for _ in 0..20 {
        assert_eq!(server.get(Proto::H1, "noisy.test", "/stdio").await.0, 200);
        assert_eq!(server.get(Proto::H1, "quiet.test", "/stdio").await.0, 200);
    }
    let text = server.platform.metrics().encode();
    let dropped = |app: &str| -> f64 {
        let prefix = format!("berth_guest_output_dropped_lines_total{{app=\"{app}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    // 60 lines written; the burst lets a few through, the refill (64
    // bytes/s over the test's second or two) a few more.
    let noisy = dropped("noisy");
    assert!((30.0..60.0).contains(&noisy), "{noisy} dropped:\n{text}");
    assert_eq!(dropped("quiet"), 0.0, "{text}");
    server.stop().await;
}

/// An embedder's outgoing client (here: answers every request itself,
/// naming the app it was made for) and error pages, for every app.
#[tokio::test]
async fn an_embedders_clients_and_error_pages_serve_every_app() {
    use berth::http_host::outbound::{RequestTimeouts, ResponseFuture};
    use berth::http_host::{ErrorCode, HostBody, OutboundClient};
    use std::sync::Arc;

    struct Canned(String);
    impl OutboundClient for Canned {
        fn send(&self, request: http::Request<HostBody>, _: RequestTimeouts) -> ResponseFuture {
            let text = format!("{} answered {}\n", self.0, request.uri().path());
            Box::pin(async move {
                let body = http_body_util::Full::new(bytes::Bytes::from(text))
                    .map_err(|never: std::convert::Infallible| -> ErrorCode { match never {} });
                Ok(http::Response::new(berth::http_host::body::host_body(body)))
            })
        }
    }
    struct Json;
    impl berth::response::ErrorPage for Json {
        fn render(
            &self,
            status: http::StatusCode,
            request_id: &str,
        ) -> http::Response<bytes::Bytes> {
            let body = format!("{{\"status\":{},\"id\":\"{request_id}\"}}", status.as_u16());
            let mut page = http::Response::new(bytes::Bytes::from(body));
            *page.status_mut() = status;
            page
        }
    }
    let options = berth::platform::PlatformOptions::default()
        .clients(Arc::new(|app: &AppConfig| {
            Arc::new(Canned(app.name.clone())) as Arc<dyn OutboundClient>
        }))
        .error_pages(Arc::new(Json));
    let mut proxy = app("proxy", &["proxy"], &["proxy.test"]);
    proxy.runtime.env = vec![("UPSTREAM".into(), "http://upstream.test".into())];
    let server = PlatformServer::start_with(
        config(vec![proxy, app("suite", &["suite"], &["a.test"])]),
        options,
    )
    .await;
    // No allow-list needed: the embedder's client decides.
    assert_eq!(
        server.get(Proto::H1, "proxy.test", "/x").await,
        (200, "proxy answered /x\n".into())
    );
    let (status, page) = server.get(Proto::H2, "nowhere.test", "/").await;
    assert_eq!(status, 404);
    assert!(page.starts_with("{\"status\":404,\"id\":\""), "{page}");
    let (status, page) = server.get(Proto::H1, "a.test", "/trap").await;
    assert_eq!(status, 500);
    assert!(page.starts_with("{\"status\":500,"), "{page}");
    server.stop().await;
}
