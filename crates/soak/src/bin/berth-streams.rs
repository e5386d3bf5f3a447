//! `berth-streams`: the client behind `scripts/bench-streams.sh`.
//!
//! Opens `--clients` connections to a running berth (HTTP/1.1, or HTTP/2
//! with prior knowledge: one stream per connection), at most
//! `--connect-parallel` handshakes at a time, and sends one `GET --path` on
//! each: a long-lived streaming answer (the suite guests' `/trickle`).
//! Every answer must be a 200 with exactly `--expect-bytes` body bytes.
//! Meanwhile one more connection sends `GET --probe-path` every 10 ms and
//! records its latency (a healthy request beside the crowd), and the
//! server's RSS (`--pid`) is sampled every 100 ms.
//!
//! Prints the probe's latencies per phase (while the clients connect,
//! while every stream is open, while they end) and, last, one line to
//! paste into a table: `streams h1: 10000 clients, 10000 complete, 0
//! failed, peak open 10000, RSS idle 30.1 MiB peak 410.2 MiB (38.0 KiB
//! per stream), probe 2900 (errors 0) p50 0.61 ms p99 2.80 ms max 9.10 ms
//! (p99 1.20 ms while all open)`. Exits 1 when any stream failed or came
//! back short.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    H1,
    H2,
}

struct Args {
    target: SocketAddr,
    protocol: Protocol,
    clients: usize,
    path: String,
    probe_path: String,
    expect_bytes: u64,
    pid: Option<u32>,
    connect_parallel: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        target: "127.0.0.1:8080".parse().map_err(|_| "default target")?,
        protocol: Protocol::H1,
        clients: 10_000,
        path: "/trickle".into(),
        probe_path: "/".into(),
        expect_bytes: 30 * 64,
        pid: None,
        connect_parallel: 200,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--target" => args.target = value.parse().map_err(|e| format!("--target: {e}"))?,
            "--protocol" => {
                args.protocol = match value.as_str() {
                    "h1" => Protocol::H1,
                    "h2" => Protocol::H2,
                    _ => return Err("--protocol is h1 or h2".into()),
                }
            }
            "--clients" => args.clients = number(&value)? as usize,
            "--path" => args.path = value,
            "--probe-path" => args.probe_path = value,
            "--expect-bytes" => args.expect_bytes = number(&value)?,
            "--pid" => args.pid = Some(number(&value)? as u32),
            "--connect-parallel" => args.connect_parallel = number(&value)?.max(1) as usize,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(args)
}

/// A request sender over one fresh connection.
enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl Sender {
    async fn connect(target: SocketAddr, protocol: Protocol) -> Result<Self, String> {
        let stream = TcpStream::connect(target)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(stream);
        match protocol {
            Protocol::H1 => {
                let (sender, conn) = hyper::client::conn::http1::handshake(io)
                    .await
                    .map_err(|e| format!("handshake: {e}"))?;
                tokio::spawn(conn);
                Ok(Self::H1(sender))
            }
            Protocol::H2 => {
                let (sender, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                        .await
                        .map_err(|e| format!("handshake: {e}"))?;
                tokio::spawn(conn);
                Ok(Self::H2(sender))
            }
        }
    }

    async fn get(
        &mut self,
        target: SocketAddr,
        path: &str,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        let request = http::Request::get(format!("http://{target}{path}"))
            .header(http::header::HOST, target.to_string())
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let sent = match self {
            Self::H1(sender) => {
                sender.ready().await.map_err(|e| e.to_string())?;
                sender.send_request(request).await
            }
            Self::H2(sender) => {
                sender.ready().await.map_err(|e| e.to_string())?;
                sender.send_request(request).await
            }
        };
        sent.map_err(|e| format!("request: {e}"))
    }
}

/// Body bytes of `response`, read to the end.
async fn body_length(response: http::Response<hyper::body::Incoming>) -> Result<u64, String> {
    let mut body = response.into_body();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body: {e}"))?;
        if let Some(data) = frame.data_ref() {
            total += data.len() as u64;
        }
    }
    Ok(total)
}

#[derive(Default)]
struct Tally {
    /// Streams whose answer has begun.
    opened: AtomicUsize,
    complete: AtomicUsize,
    failed: AtomicUsize,
    open: AtomicUsize,
    peak_open: AtomicUsize,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Tally {
    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut first = self
            .first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        first.get_or_insert(why);
    }
}

async fn one_stream(args: Arc<Args>, tally: Arc<Tally>, connects: Arc<Semaphore>) {
    let sender = {
        let Ok(_turn) = connects.acquire().await else {
            return;
        };
        Sender::connect(args.target, args.protocol).await
    };
    let mut sender = match sender {
        Ok(sender) => sender,
        Err(why) => return tally.fail(why),
    };
    let response = match sender.get(args.target, &args.path).await {
        Ok(response) => response,
        Err(why) => return tally.fail(why),
    };
    tally.opened.fetch_add(1, Ordering::Relaxed);
    let open = tally.open.fetch_add(1, Ordering::Relaxed) + 1;
    tally.peak_open.fetch_max(open, Ordering::Relaxed);
    let status = response.status();
    let length = body_length(response).await;
    tally.open.fetch_sub(1, Ordering::Relaxed);
    match length {
        Ok(n) if status == http::StatusCode::OK && n == args.expect_bytes => {
            tally.complete.fetch_add(1, Ordering::Relaxed);
        }
        Ok(n) => tally.fail(format!(
            "status {status}, {n} of {} bytes",
            args.expect_bytes
        )),
        Err(why) => tally.fail(why),
    }
}

/// VmRSS of `pid`, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => Arc::new(args),
        Err(why) => {
            eprintln!("berth-streams: {why}");
            std::process::exit(2);
        }
    };
    let idle_rss = args.pid.and_then(rss_kib).unwrap_or(0);
    let peak_rss = Arc::new(AtomicU64::new(idle_rss));
    let tally = Arc::new(Tally::default());
    let done = Arc::new(tokio::sync::Notify::new());
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // RSS sampler.
    let sampler = args.pid.map(|pid| {
        let peak = peak_rss.clone();
        let finished = finished.clone();
        tokio::spawn(async move {
            while !finished.load(Ordering::Relaxed) {
                if let Some(kib) = rss_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });

    // The probe: one keep-alive connection, a request every 10 ms. Its
    // latencies are kept per phase: while the clients connect, while all
    // streams are open, and while they end.
    let probe = {
        let args = args.clone();
        let finished = finished.clone();
        let tally = tally.clone();
        tokio::spawn(async move {
            let mut latencies: [Vec<Duration>; 3] = Default::default();
            let mut errors = 0u64;
            let mut sender = None;
            while !finished.load(Ordering::Relaxed) {
                if sender.is_none() {
                    sender = Sender::connect(args.target, Protocol::H1).await.ok();
                }
                if let Some(s) = sender.as_mut() {
                    let phase = if tally.opened.load(Ordering::Relaxed) < args.clients {
                        0
                    } else if tally.complete.load(Ordering::Relaxed)
                        + tally.failed.load(Ordering::Relaxed)
                        == 0
                    {
                        1
                    } else {
                        2
                    };
                    let began = Instant::now();
                    let ok = match s.get(args.target, &args.probe_path).await {
                        Ok(r) if r.status() == http::StatusCode::OK => body_length(r).await.is_ok(),
                        _ => false,
                    };
                    if ok {
                        latencies[phase].push(began.elapsed());
                    } else {
                        errors += 1;
                        sender = None;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (latencies, errors)
        })
    };

    let began = Instant::now();
    let connects = Arc::new(Semaphore::new(args.connect_parallel));
    let mut streams = tokio::task::JoinSet::new();
    for _ in 0..args.clients {
        streams.spawn(one_stream(args.clone(), tally.clone(), connects.clone()));
    }
    // Progress, every 5 s.
    let progress = {
        let tally = tally.clone();
        let peak = peak_rss.clone();
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = done.notified() => break,
                    () = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                eprintln!(
                    "t={:>3}s open {:>6} complete {:>6} failed {:>5} peak RSS {:.1} MiB",
                    began.elapsed().as_secs(),
                    tally.open.load(Ordering::Relaxed),
                    tally.complete.load(Ordering::Relaxed),
                    tally.failed.load(Ordering::Relaxed),
                    peak.load(Ordering::Relaxed) as f64 / 1024.0
                );
            }
        })
    };
    while streams.join_next().await.is_some() {}
    let took = began.elapsed();
    done.notify_one();
    finished.store(true, Ordering::Relaxed);
    let _ = progress.await;
    if let Some(sampler) = sampler {
        let _ = sampler.await;
    }
    let (mut phases, probe_errors) = probe.await.unwrap_or_default();
    for (phase, name) in phases.iter_mut().zip(["connecting", "all open", "ending"]) {
        phase.sort();
        eprintln!(
            "probe while {name}: {} requests, p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
            phase.len(),
            percentile(phase, 0.5),
            percentile(phase, 0.99),
            phase.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        );
    }
    let steady_p99 = percentile(&phases[1], 0.99);
    let mut latencies: Vec<Duration> = phases.concat();
    latencies.sort();

    let complete = tally.complete.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    let peak_open = tally.peak_open.load(Ordering::Relaxed);
    let peak = peak_rss.load(Ordering::Relaxed);
    let per_stream_kib = peak.saturating_sub(idle_rss) as f64 / peak_open.max(1) as f64;
    if let Some(why) = tally
        .first_error
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
    {
        eprintln!("first failure: {why}");
    }
    eprintln!("all streams ended after {:.1} s", took.as_secs_f64());
    let protocol = match args.protocol {
        Protocol::H1 => "h1",
        Protocol::H2 => "h2",
    };
    println!(
        "streams {protocol}: {} clients, {complete} complete, {failed} failed, peak open {peak_open}, \
         RSS idle {:.1} MiB peak {:.1} MiB ({per_stream_kib:.1} KiB per stream), \
         probe {} (errors {probe_errors}) p50 {:.2} ms p99 {:.2} ms max {:.2} ms \
         (p99 {steady_p99:.2} ms while all open)",
        args.clients,
        idle_rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );
    if failed > 0 || complete != args.clients {
        std::process::exit(1);
    }
}
