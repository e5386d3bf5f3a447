//! `berth-roll-load`: the load behind `scripts/rolling-update.sh`.
//!
//! Sends `GET /hello` through the load balancer from a few workers until
//! the stop file appears, tells the component version apart by the answer
//! (each version's body carries its own marker), and prints one line per
//! second (`t`, answers per version, failures) and, last,
//! `rolling update: N requests, F failed, versions ...`. Exits 1 when any
//! request failed (a non-200, an unknown body, or a transport error).
//!
//! ```text
//! berth-roll-load --target 127.0.0.1:18600 --stop /tmp/stop \
//!     --version "v1=hello from berth" --version "v2=Hello from a wasi:http@0.3.0"
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Answers per second: version (or "failed") → count.
type Timeline = Vec<BTreeMap<String, u64>>;

struct Args {
    target: SocketAddr,
    stop: PathBuf,
    versions: Vec<(String, String)>,
    workers: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut target = None;
    let mut stop = None;
    let mut versions = Vec::new();
    let mut workers = 8;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--target" => target = Some(value.parse().map_err(|e| format!("--target: {e}"))?),
            "--stop" => stop = Some(PathBuf::from(value)),
            "--workers" => workers = value.parse().map_err(|e| format!("--workers: {e}"))?,
            "--version" => {
                let (name, marker) = value.split_once('=').ok_or("--version takes NAME=MARKER")?;
                versions.push((name.to_owned(), marker.to_owned()));
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(Args {
        target: target.ok_or("--target is required")?,
        stop: stop.ok_or("--stop is required")?,
        versions,
        workers,
    })
}

async fn worker(
    client: Client<HttpConnector, Empty<Bytes>>,
    args: Arc<Args>,
    started: Instant,
    timeline: Arc<Mutex<Timeline>>,
) {
    while !args.stop.exists() {
        let uri = format!("http://{}/hello", args.target);
        let outcome = match http::Request::get(uri).body(Empty::new()) {
            Ok(request) => match client.request(request).await {
                Ok(response) if response.status() == 200 => {
                    match response.into_body().collect().await {
                        Ok(body) => {
                            let body = body.to_bytes();
                            args.versions
                                .iter()
                                .find(|(_, marker)| body.starts_with(marker.as_bytes()))
                                .map_or_else(|| "failed".to_owned(), |(name, _)| name.clone())
                        }
                        Err(_) => "failed".to_owned(),
                    }
                }
                Ok(response) => {
                    eprintln!("roll-load: {} from the balancer", response.status());
                    "failed".to_owned()
                }
                Err(err) => {
                    eprintln!("roll-load: {err}");
                    "failed".to_owned()
                }
            },
            Err(_) => "failed".to_owned(),
        };
        let second = started.elapsed().as_secs() as usize;
        if let Ok(mut t) = timeline.lock() {
            if t.len() <= second {
                t.resize(second + 1, BTreeMap::new());
            }
            *t[second].entry(outcome).or_default() += 1;
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => Arc::new(args),
        Err(err) => {
            eprintln!("berth-roll-load: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(5))
        .build_http();
    let started = Instant::now();
    let timeline = Arc::new(Mutex::new(Timeline::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.workers {
        tasks.spawn(worker(
            client.clone(),
            args.clone(),
            started,
            timeline.clone(),
        ));
    }
    while tasks.join_next().await.is_some() {}

    let timeline = timeline.lock().map(|t| t.clone()).unwrap_or_default();
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut mixed: Option<(usize, usize)> = None;
    for (second, counts) in timeline.iter().enumerate() {
        let line: Vec<String> = counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("t={second:>3}s {}", line.join(" "));
        for (k, v) in counts {
            *totals.entry(k.clone()).or_default() += v;
        }
        let versions = counts.keys().filter(|k| *k != "failed").count();
        if versions > 1 {
            mixed = Some((mixed.map_or(second, |(from, _)| from), second));
        }
    }
    let failed = totals.get("failed").copied().unwrap_or(0);
    let requests: u64 = totals.values().sum();
    let versions: Vec<String> = totals
        .iter()
        .filter(|(k, _)| *k != "failed")
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let mix = mixed.map_or_else(
        || "never mixed".to_owned(),
        |(from, to)| format!("mixed from t={from}s to t={to}s"),
    );
    println!(
        "rolling update: {requests} requests, {failed} failed, versions {} ({mix})",
        versions.join(", ")
    );
    if failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
