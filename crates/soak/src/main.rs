//! `berth-soak`: the load driver behind `scripts/soak.sh`.
//!
//! Against a running berth (the script starts it with `soak.toml`: one
//! host name per app), it first measures healthy-request latency alone
//! (the baseline), then runs healthy and hostile traffic together for the
//! soak's duration while sampling the server's RSS and open descriptors
//! (from `/proc`) and its live instances (from `/metrics`) every second.
//!
//! * healthy: `GET` on four apps in turn — 0.2 fresh, 0.2 reuse, 0.3
//!   concurrent reuse, 0.3 one request per instance — each answer must be
//!   a 200 with the expected body;
//! * hostile: CPU loops, memory bombs, guests blocked in the host, resource
//!   and header-copy floods, stack overflow, traps mid-stream, outbound
//!   floods to a loopback origin, clients that vanish mid-body or before
//!   the response; only the server's survival is asked of these.
//!
//! The last line reads `soak: N requests, P panics, RSS start A MiB end B
//! MiB, fds start C end D, healthy p99 X ms (baseline Y ms)`. Under this
//! mix RSS is a sawtooth (a memory bomb takes its instance's 64 MiB, the
//! pool gives it back), so one sample says little: start is the highest
//! RSS (and descriptor count) sampled in the first minute (a fifth of a
//! shorter run), end the highest in the last minute and after the load
//! stopped — a leak raises that high-water mark. The exit status is
//! non-zero unless there were no panics, the server lived, every healthy
//! request succeeded, RSS and descriptors ended within 10% of where they
//! settled, and the healthy p99 stayed within twice the baseline.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncWriteExt;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Healthy traffic: (host, path, expected body prefix).
const HEALTHY: &[(&str, &str, &str)] = &[
    ("p2.soak", "/hello", "hello from berth"),
    ("p2r.soak", "/hello", "hello from berth"),
    ("p3.soak", "/", "Hello from"),
    ("p3f.soak", "/", "Hello from"),
];

/// Hostile requests a well-behaved client would never send (host, path).
const HOSTILE: &[(&str, &str)] = &[
    ("p2.soak", "/loop"),
    ("p2.soak", "/memory"),
    ("p2.soak", "/never"),
    ("p2.soak", "/resources"),
    ("p2.soak", "/copy-flood"),
    ("p2.soak", "/fields-flood"),
    ("p2.soak", "/trap-after"),
    ("p2.soak", "/recurse"),
    ("p2.soak", "/outgoing-flood"),
    ("p2.soak", "/fanout?n=20"),
    ("p2r.soak", "/loop"),
    ("p2r.soak", "/memory"),
    ("p2r.soak", "/trap"),
    ("p3x.soak", "/hang"),
    ("p3x.soak", "/never"),
    ("p3x.soak", "/loop-after"),
    ("p3x.soak", "/trap-mid"),
    ("p3x.soak", "/stream-flood"),
    ("p3x.soak", "/fan?n=20"),
];

struct Args {
    server: SocketAddr,
    admin: SocketAddr,
    origin: SocketAddr,
    pid: u32,
    seconds: u64,
    baseline: u64,
    healthy_workers: usize,
    hostile_workers: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        server: "127.0.0.1:8080".parse().map_err(|e| format!("{e}"))?,
        admin: "127.0.0.1:9090".parse().map_err(|e| format!("{e}"))?,
        origin: "127.0.0.1:9000".parse().map_err(|e| format!("{e}"))?,
        pid: 0,
        seconds: 600,
        baseline: 20,
        healthy_workers: 4,
        hostile_workers: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--server" => args.server = value.parse().map_err(|e| bad(&e))?,
            "--admin" => args.admin = value.parse().map_err(|e| bad(&e))?,
            "--origin" => args.origin = value.parse().map_err(|e| bad(&e))?,
            "--pid" => args.pid = value.parse().map_err(|e| bad(&e))?,
            "--seconds" => args.seconds = value.parse().map_err(|e| bad(&e))?,
            "--baseline" => args.baseline = value.parse().map_err(|e| bad(&e))?,
            "--healthy" => args.healthy_workers = value.parse().map_err(|e| bad(&e))?,
            "--hostile" => args.hostile_workers = value.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.pid == 0 {
        return Err("--pid is required (the server's process id)".into());
    }
    Ok(args)
}

/// One second's view of the server.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: u64,
    live: u64,
}

/// Shared by the workers.
struct Load {
    client: HttpClient,
    server: SocketAddr,
    origin: SocketAddr,
    stop: AtomicBool,
    /// Healthy latencies of the current phase, in microseconds.
    latencies: Mutex<Vec<u64>>,
    healthy_failures: AtomicU64,
    requests: AtomicU64,
    hostile_kinds: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Load {
    async fn get(
        &self,
        host: &str,
        path: &str,
        extra: Option<(&str, String)>,
    ) -> Result<(u16, Bytes), String> {
        let mut builder =
            http::Request::get(format!("http://{}{path}", self.server)).header("host", host);
        if let Some((name, value)) = extra {
            builder = builder.header(name, value);
        }
        let request = builder.body(Empty::new()).map_err(|e| e.to_string())?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{status} then {e}"))?;
        Ok((status, body.to_bytes()))
    }

    async fn healthy(self: Arc<Self>, offset: usize) {
        let mut i = offset;
        while !self.stop.load(Ordering::Relaxed) {
            let (host, path, want) = HEALTHY[i % HEALTHY.len()];
            i += 1;
            let started = Instant::now();
            let result = self.get(host, path, None).await;
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            match result {
                Ok((200, body)) if body.starts_with(want.as_bytes()) => {
                    if let Ok(mut l) = self.latencies.lock() {
                        l.push(micros);
                    }
                }
                other => {
                    self.healthy_failures.fetch_add(1, Ordering::Relaxed);
                    eprintln!("soak: healthy {host}{path} failed: {other:?}");
                }
            }
        }
    }

    fn count(&self, kind: String) {
        if let Ok(mut kinds) = self.hostile_kinds.lock() {
            *kinds.entry(kind).or_default() += 1;
        }
    }

    async fn hostile(self: Arc<Self>, offset: usize) {
        let actions = HOSTILE.len() + 3;
        let mut i = offset;
        while !self.stop.load(Ordering::Relaxed) {
            let action = i % actions;
            i += 1;
            if let Some(&(host, path)) = HOSTILE.get(action) {
                let extra = path
                    .starts_with("/fan?")
                    .then(|| ("x-upstream", self.origin.to_string()));
                let outcome =
                    tokio::time::timeout(Duration::from_secs(30), self.get(host, path, extra))
                        .await;
                let label = match outcome {
                    Ok(Ok((status, _))) => format!("{status}"),
                    Ok(Err(_)) => "aborted".into(),
                    Err(_) => "no answer in 30 s".into(),
                };
                self.count(format!("{host}{path} {label}"));
            } else {
                let kind = action - HOSTILE.len();
                let label = self.vanish(kind).await;
                self.count(label);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A client that leaves: mid-body (0.2 and 0.3 echo) or while the guest
    /// works on its answer.
    async fn vanish(&self, kind: usize) -> String {
        let (host, head, body) = match kind {
            0 => (
                "p2.soak",
                "POST /echo HTTP/1.1\r\ncontent-length: 1048576\r\n",
                65536,
            ),
            1 => (
                "p3x.soak",
                "POST /echo HTTP/1.1\r\ncontent-length: 1048576\r\n",
                65536,
            ),
            _ => ("p2.soak", "GET /sleep?ms=500 HTTP/1.1\r\n", 0),
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        let Ok(mut stream) = tokio::net::TcpStream::connect(self.server).await else {
            return "connect failed".into();
        };
        let head = format!("{head}host: {host}\r\n\r\n");
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(&vec![b'x'; body]).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(stream);
        format!("{host} client gone ({})", head.lines().next().unwrap_or(""))
    }

    fn take_latencies(&self) -> Vec<u64> {
        self.latencies
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

fn p99_ms(mut micros: Vec<u64>) -> f64 {
    if micros.is_empty() {
        return f64::NAN;
    }
    micros.sort_unstable();
    let index = (micros.len() * 99).div_ceil(100).saturating_sub(1);
    micros[index] as f64 / 1000.0
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// The sum of a metric's series in Prometheus text (`name{...} value`).
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn scrape(client: &HttpClient, admin: SocketAddr) -> Option<String> {
    let request = http::Request::get(format!("http://{admin}/metrics"))
        .body(Empty::new())
        .ok()?;
    let response = client.request(request).await.ok()?;
    let body = response.into_body().collect().await.ok()?.to_bytes();
    String::from_utf8(body.to_vec()).ok()
}

async fn sample(client: &HttpClient, args: &Args, at: Duration) -> Option<Sample> {
    let live = scrape(client, args.admin)
        .await
        .map_or(0, |t| metric(&t, "berth_instances_live"));
    Some(Sample {
        at,
        rss_kib: rss_kib(args.pid)?,
        fds: fds(args.pid)?,
        live,
    })
}

async fn run(args: Args) -> Result<bool, String> {
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build_http();
    let load = Arc::new(Load {
        client: client.clone(),
        server: args.server,
        origin: args.origin,
        stop: AtomicBool::new(false),
        latencies: Mutex::new(Vec::new()),
        healthy_failures: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        hostile_kinds: Mutex::new(Default::default()),
    });
    let panics_before = scrape(&client, args.admin)
        .await
        .map(|t| metric(&t, "berth_panics_total"))
        .ok_or("the admin endpoint does not answer")?;
    let idle = sample(&client, &args, Duration::ZERO)
        .await
        .ok_or("cannot read the server's /proc entries")?;

    // 1. Baseline: healthy traffic alone.
    let mut healthy = tokio::task::JoinSet::new();
    for w in 0..args.healthy_workers {
        healthy.spawn(load.clone().healthy(w));
    }
    tokio::time::sleep(Duration::from_secs(args.baseline)).await;
    let baseline = p99_ms(load.take_latencies());
    println!(
        "baseline: healthy p99 {baseline:.2} ms over {} s, {} workers",
        args.baseline, args.healthy_workers
    );

    // 2. The soak: hostile traffic joins.
    let mut hostile = tokio::task::JoinSet::new();
    for w in 0..args.hostile_workers {
        hostile.spawn(load.clone().hostile(w * 7));
    }
    let started = Instant::now();
    let settle_at = Duration::from_secs(60.min(args.seconds / 5));
    let mut samples = vec![idle];
    let mut window = Vec::new();
    println!(
        "{:>6} {:>9} {:>6} {:>6} {:>12}",
        "t (s)", "RSS MiB", "fds", "live", "p99 ms (30s)"
    );
    let mut next_report = 30;
    while started.elapsed() < Duration::from_secs(args.seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(s) = sample(&client, &args, started.elapsed()).await else {
            return Err("the server is gone".into());
        };
        samples.push(s);
        window.extend(load.take_latencies());
        if s.at.as_secs() >= next_report {
            next_report += 30;
            println!(
                "{:>6} {:>9.1} {:>6} {:>6} {:>12.2}",
                s.at.as_secs(),
                s.rss_kib as f64 / 1024.0,
                s.fds,
                s.live,
                p99_ms(window.clone())
            );
        }
    }
    let mut all = window;
    all.extend(load.take_latencies());
    let soak_p99 = p99_ms(all);

    // 3. Stop, let in-flight work end, look again.
    load.stop.store(true, Ordering::Relaxed);
    while healthy.join_next().await.is_some() {}
    while hostile.join_next().await.is_some() {}
    tokio::time::sleep(Duration::from_secs(5)).await;
    let end = sample(&client, &args, started.elapsed())
        .await
        .ok_or("the server is gone")?;
    let panics = scrape(&client, args.admin)
        .await
        .map(|t| metric(&t, "berth_panics_total"))
        .ok_or("the admin endpoint stopped answering")?
        - panics_before;
    // High-water marks: the first minute, and the last minute with the
    // quiescent sample after the load.
    let last_from = started
        .elapsed()
        .saturating_sub(settle_at.max(Duration::from_secs(1)) + Duration::from_secs(6));
    let high = |from: Duration, to: Duration| {
        let window = samples
            .iter()
            .chain([&end])
            .filter(|s| s.at > from && s.at <= to);
        Sample {
            at: to,
            rss_kib: window.clone().map(|s| s.rss_kib).max().unwrap_or(0),
            fds: window.clone().map(|s| s.fds).max().unwrap_or(0),
            live: window.map(|s| s.live).max().unwrap_or(0),
        }
    };
    let settled = high(Duration::ZERO, settle_at);
    let quiescent = end;
    let end = high(last_from, Duration::MAX);

    if let Ok(kinds) = load.hostile_kinds.lock() {
        println!("hostile requests by outcome:");
        for (kind, n) in kinds.iter() {
            println!("  {n:>6}  {kind}");
        }
    }
    let failures = load.healthy_failures.load(Ordering::Relaxed);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut ok = true;
    let mut verdict = |pass: bool, what: String| {
        if !pass {
            ok = false;
            println!("FAIL: {what}");
        }
    };
    verdict(panics == 0, format!("{panics} panics"));
    verdict(failures == 0, format!("{failures} healthy requests failed"));
    verdict(
        end.rss_kib * 10 <= settled.rss_kib * 11,
        format!(
            "RSS grew from {:.1} to {:.1} MiB",
            mib(settled.rss_kib),
            mib(end.rss_kib)
        ),
    );
    verdict(
        end.fds * 10 <= settled.fds * 11,
        format!("fds grew from {} to {}", settled.fds, end.fds),
    );
    verdict(
        soak_p99 <= 2.0 * baseline,
        format!("healthy p99 {soak_p99:.2} ms > 2x baseline {baseline:.2} ms"),
    );
    println!(
        "idle before load: RSS {:.1} MiB, {} fds; after the load: RSS {:.1} MiB, {} fds, {} live instances",
        mib(idle.rss_kib),
        idle.fds,
        mib(quiescent.rss_kib),
        quiescent.fds,
        quiescent.live
    );
    println!(
        "soak: {} requests, {panics} panics, RSS start {:.1} MiB end {:.1} MiB, fds start {} end {}, healthy p99 {soak_p99:.2} ms (baseline {baseline:.2} ms)",
        load.requests.load(Ordering::Relaxed),
        mib(settled.rss_kib),
        mib(end.rss_kib),
        settled.fds,
        end.fds,
    );
    Ok(ok)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("berth-soak: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(err) => {
            eprintln!("berth-soak: {err}");
            println!("soak: aborted: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
