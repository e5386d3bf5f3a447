//! `--admin-addr`: health and readiness on their own port, and readiness
//! turning 503 the moment a drain starts.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::{Served, fixture};

/// One HTTP/1.0 GET to `addr`; the status line and the body.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nhost: admin\r\n\r\n").unwrap();
    let mut response = String::new();
    if let Err(err) = stream.read_to_string(&mut response) {
        panic!("GET {path} from {addr}: {err} (read so far: {response:?})");
    }
    let status = response.lines().next().unwrap_or("").to_owned();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// The admin address a server printed in its start-up banner.
fn admin_addr(served: &Served) -> String {
    served
        .startup_log
        .lines()
        .find_map(|l| l.strip_prefix("Admin on http://"))
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no admin banner:\n{}", served.startup_log))
        .to_owned()
}

#[test]
fn readiness_turns_503_when_the_drain_starts_and_health_stays_up() {
    let served = Served::start(&[
        fixture("suite").to_str().unwrap(),
        "--admin-addr",
        "127.0.0.1:0",
        "--drain-timeout-secs",
        "10",
    ]);
    let admin = admin_addr(&served);
    assert_ne!(admin, served.addr, "the admin port is not the traffic port");
    assert_eq!(
        get(&admin, "/healthz"),
        ("HTTP/1.0 200 OK".into(), "ok\n".into())
    );
    assert_eq!(
        get(&admin, "/readyz"),
        ("HTTP/1.0 200 OK".into(), "ready\n".into())
    );
    // Admin paths are not on the traffic port: the guest answers there.
    let on_traffic = served.get("/readyz");
    assert!(!on_traffic.contains("ready\n"), "{on_traffic}");

    // A slow request keeps the drain going.
    let traffic = served.addr.clone();
    let slow = std::thread::spawn(move || get(&traffic, "/sleep?ms=2500"));
    std::thread::sleep(Duration::from_millis(300));
    served.signal("TERM");
    let started = Instant::now();
    loop {
        let (status, body) = get(&admin, "/readyz");
        if status.starts_with("HTTP/1.0 503") {
            assert_eq!(body, "draining\n");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "still {status} while draining"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get(&admin, "/healthz").0, "HTTP/1.0 200 OK");
    let (status, _) = slow.join().unwrap();
    assert_eq!(status, "HTTP/1.0 200 OK", "the in-flight request finished");
    let (exit, log) = served.wait();
    assert!(exit.success(), "{log}");
}

/// Starts `berth serve ARGS --no-cache` on a free port and returns once
/// its listener is bound — before the apps are up when one of them is
/// pre-initialised (the heavy-init guest: a few hundred milliseconds).
fn start_slowly(args: &[&str]) -> Served {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = super::berth()
        .arg("serve")
        .args(args)
        .args(["--no-cache", "--addr", &addr])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("berth starts");
    let stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let started = Instant::now();
    while TcpStream::connect(&addr).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "never bound");
        std::thread::sleep(Duration::from_millis(2));
    }
    Served {
        child,
        addr,
        startup_log: String::new(),
        stderr,
    }
}

/// A SIGTERM during start-up (a supervisor that stops berth at once) is a
/// graceful stop with exit status 0, not the signal's default action: the
/// handlers are in place before anything else.
#[test]
fn a_sigterm_during_start_up_is_a_graceful_stop() {
    let heavy = fixture("heavy-init");
    let served = start_slowly(&[heavy.to_str().unwrap(), "--pre-init"]);
    served.signal("TERM");
    let (status, log) = served.wait();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("signal received"), "{log}");
}

/// A SIGHUP during start-up (a reload sent a little early) does not end
/// the process: it is a reload once the apps are up.
#[test]
fn a_sighup_during_start_up_is_a_reload_not_an_exit() {
    let dir = std::env::temp_dir().join(format!("berth-early-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("berth.toml");
    std::fs::write(
        &file,
        format!(
            "[[apps]]\nname = \"heavy\"\ncomponent = {:?}\nroutes = [\"*\"]\npre_init = true\n",
            fixture("heavy-init")
        ),
    )
    .unwrap();
    let served = start_slowly(&["--config", file.to_str().unwrap()]);
    let addr = served.addr.clone();
    served.signal("HUP");
    // Up and serving once start-up ends.
    let started = Instant::now();
    let (status, _) = loop {
        let answer = std::panic::catch_unwind(|| get(&addr, "/"));
        match answer {
            Ok(answer) if answer.0.starts_with("HTTP/1.0 200") => break answer,
            _ if started.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => panic!("not serving after a SIGHUP at start-up: {other:?}"),
        }
    };
    assert_eq!(status, "HTTP/1.0 200 OK");
    served.signal("TERM");
    let (status, log) = served.wait();
    assert!(status.success(), "{status:?}\n{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--shutdown-delay-secs`: from SIGTERM on, readiness answers 503 while
/// the traffic port goes on accepting and answering as usual; the drain
/// (and the exit) comes only after the delay.
#[test]
fn a_shutdown_delay_keeps_serving_with_readiness_withdrawn() {
    // Long enough for a loaded test machine to check both within it.
    let delay = Duration::from_secs(5);
    let served = Served::start(&[
        fixture("suite").to_str().unwrap(),
        "--admin-addr",
        "127.0.0.1:0",
        "--shutdown-delay-secs",
        "5",
    ]);
    let admin = admin_addr(&served);
    served.signal("TERM");
    let signalled = Instant::now();
    while !get(&admin, "/readyz").0.starts_with("HTTP/1.0 503") {
        assert!(signalled.elapsed() < delay / 2, "readiness still up");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A new connection during the delay is accepted and served.
    let (status, body) = get(&served.addr, "/hello");
    assert!(
        signalled.elapsed() < delay,
        "checked too late to prove anything"
    );
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert_eq!(body, "hello from berth\n");
    let (exit, log) = served.wait();
    assert!(exit.success(), "{log}");
    assert!(
        signalled.elapsed() >= delay,
        "exited {:?} after the signal, before the delay",
        signalled.elapsed()
    );
}

#[test]
fn json_logs_parse_line_by_line_and_carry_the_request_id() {
    let served = Served::start(&[fixture("suite").to_str().unwrap(), "--log-format", "json"]);
    // The client's id is kept, returned, and on the guest's lines too.
    let mut stream = TcpStream::connect(&served.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /stdio HTTP/1.0\r\nhost: a\r\nx-request-id: test-abc-123\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(
        response
            .to_lowercase()
            .contains("x-request-id: test-abc-123\r\n"),
        "{response}"
    );
    // Without one (or with an unusable one), an id is made up and returned.
    let made_up = served.get("/hello");
    let made_up = made_up
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .expect("a generated x-request-id")
        .trim()
        .to_owned();
    served.signal("TERM");
    let startup = served.startup_log.clone();
    let (exit, rest) = served.wait();
    assert!(exit.success(), "{rest}");
    let (mut access, mut guest_lines) = (Vec::new(), 0);
    for line in startup.lines().chain(rest.lines()) {
        let Ok(object) = serde_json::from_str::<serde_json::Value>(line) else {
            panic!("not a JSON line: {line}");
        };
        for key in ["timestamp", "level", "target"] {
            assert!(object.get(key).is_some(), "no {key}: {line}");
        }
        if object["target"] == "berth::access" {
            access.push(object);
        } else if object["target"] == "berth::guest" {
            assert_eq!(object["span"]["request_id"], "test-abc-123", "{line}");
            assert_eq!(object["span"]["app"], "suite", "{line}");
            guest_lines += 1;
        }
    }
    assert!(guest_lines >= 2, "the guest's lines: {guest_lines}");
    assert_eq!(access.len(), 2, "{access:?}");
    assert_eq!(access[0]["request_id"], "test-abc-123", "{}", access[0]);
    assert_eq!(access[0]["path"], "/stdio");
    assert_eq!(access[1]["request_id"], made_up.as_str(), "{}", access[1]);
    assert_eq!(access[1]["status"], 200);
}

/// A wasi:http@0.3 instance serves requests in turn (and at once): each
/// request's guest lines carry its own id, the first request's too.
#[test]
fn a_p3_instances_guest_lines_carry_each_requests_id() {
    let served = Served::start(&[
        fixture("p3-suite").to_str().unwrap(),
        "--log-format",
        "json",
    ]);
    for i in 0..3 {
        let mut stream = TcpStream::connect(&served.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET /fan?n=0 HTTP/1.0\r\nhost: a\r\nx-upstream: 127.0.0.1:1\r\n\
             x-tag: tag{i}\r\nx-request-id: p3-request-{i}\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    }
    served.signal("TERM");
    let (exit, rest) = served.wait();
    assert!(exit.success(), "{rest}");
    let mut guest_lines = 0;
    for line in rest.lines() {
        let Ok(object) = serde_json::from_str::<serde_json::Value>(line) else {
            panic!("not a JSON line: {line}");
        };
        if object["target"] == "berth::guest" {
            let message = object["message"].as_str().unwrap_or_default();
            let tag = message.split_whitespace().nth(1).unwrap_or_default();
            let i = tag.trim_start_matches("tag");
            assert_eq!(
                object["span"]["request_id"],
                format!("p3-request-{i}").as_str(),
                "{line}"
            );
            guest_lines += 1;
        }
    }
    assert_eq!(guest_lines, 6, "{rest}");
}

/// A stderr nobody reads (a full pipe) must not stall serving: log lines
/// are dropped and counted instead, and the process still exits cleanly.
#[test]
fn a_blocked_log_sink_does_not_stall_serving() {
    // Debug level: many lines per request (connections, HTTP, the guest).
    let served = Served::start_with_env(
        &[("RUST_LOG", "debug,wasmtime=warn,cranelift=warn")],
        &[
            fixture("suite").to_str().unwrap(),
            "--admin-addr",
            "127.0.0.1:0",
        ],
    );
    let admin = admin_addr(&served);
    // From here on nobody reads berth's stderr. Each request logs a dozen
    // lines or more (the guest's three, the access line, connection and
    // protocol debug lines), over 2 KiB: 6 000 requests are more than the
    // pipe (64 KiB) and the writer's buffer (4 MiB) hold. With a blocking
    // writer the server would stop answering here.
    let started = Instant::now();
    for i in 0..6_000 {
        let response = served.get("/stdio");
        assert!(
            response.starts_with("HTTP/1.0 200"),
            "request {i}: {response}"
        );
    }
    let took = started.elapsed();
    let (status, metrics) = get(&admin, "/metrics");
    assert_eq!(status, "HTTP/1.0 200 OK");
    let dropped: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("berth_log_lines_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no dropped-lines counter:\n{metrics}"));
    assert!(dropped > 0.0, "nothing dropped in {took:?}:\n{metrics}");
    // The process still drains and exits 0 (giving up on writing out a
    // queue nobody reads after a few seconds).
    served.signal("TERM");
    let (exit, rest) = served.wait();
    assert!(exit.success(), "{exit:?}");
    assert!(rest.contains("berth::access"), "{rest}");
}

#[test]
fn a_failed_epoch_ticker_turns_health_503_then_drains_and_exits_non_zero() {
    // The ticker thread panics 3 s after start (fault injection).
    let served = Served::start_with_env(
        &[("BERTH_FAULT_EPOCH_TICKER_PANIC_MS", "3000")],
        &[
            fixture("suite").to_str().unwrap(),
            "--admin-addr",
            "127.0.0.1:0",
            "--drain-timeout-secs",
            "10",
        ],
    );
    let admin = admin_addr(&served);
    assert_eq!(get(&admin, "/healthz").0, "HTTP/1.0 200 OK");
    // In flight when the fault comes: the drain lets it finish.
    let traffic = served.addr.clone();
    let slow = std::thread::spawn(move || get(&traffic, "/sleep?ms=5000"));
    let started = Instant::now();
    loop {
        let (status, body) = get(&admin, "/healthz");
        if status.starts_with("HTTP/1.0 503") {
            assert!(body.contains("epoch ticker"), "{body}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "healthz still {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _) = slow.join().unwrap();
    assert_eq!(status, "HTTP/1.0 200 OK", "the in-flight request finished");
    let (exit, log) = served.wait();
    assert!(!exit.success(), "exit {exit:?}\n{log}");
    assert!(log.contains("CPU limits no longer hold"), "{log}");
}
