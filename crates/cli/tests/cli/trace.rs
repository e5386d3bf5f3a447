//! `--otlp-endpoint`: berth's spans reach an OTLP/HTTP collector (a small
//! one in this test) as one trace per request, joined to the client's
//! `traceparent`, and the guest's outgoing requests carry the context on.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Served, fixture};

/// What a tiny HTTP/1.1 server received: each request's method, path,
/// `traceparent` header and body.
type Seen = Arc<Mutex<Vec<(String, String, Option<String>, Vec<u8>)>>>;

/// Serves `200` to every request on a loopback port, recording it.
fn recorder() -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let record = record.clone();
            std::thread::spawn(move || serve_connection(stream, &record));
        }
    });
    (addr, seen)
}

fn serve_connection(stream: TcpStream, seen: &Seen) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let (mut length, mut traceparent) = (0usize, None);
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "traceparent" => traceparent = Some(value.trim().to_owned()),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        seen.lock().unwrap().push((method, path, traceparent, body));
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n";
        if writer.write_all(answer).is_err() {
            return;
        }
    }
}

/// Every span exported so far, flattened.
fn spans(collector: &Seen) -> Vec<Value> {
    let mut all = Vec::new();
    for (method, path, _, body) in collector.lock().unwrap().iter() {
        assert_eq!((method.as_str(), path.as_str()), ("POST", "/v1/traces"));
        let export: Value = serde_json::from_slice(body).unwrap();
        for resource in export["resourceSpans"].as_array().unwrap() {
            let service = &resource["resource"]["attributes"][0];
            assert_eq!(service["key"], "service.name");
            assert_eq!(service["value"]["stringValue"], "shop");
            for scope in resource["scopeSpans"].as_array().unwrap() {
                all.extend(scope["spans"].as_array().unwrap().iter().cloned());
            }
        }
    }
    all
}

fn one<'a>(spans: &'a [Value], trace: &str, name: &str) -> &'a Value {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s["traceId"] == trace && s["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "{name} in {trace}: {spans:#?}");
    found[0]
}

/// One HTTP/1.0 GET with extra headers; the status line.
fn get(addr: &str, path: &str, headers: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nhost: a\r\n{headers}\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn spans_reach_the_collector_joined_to_the_clients_trace() {
    let (collector, exported) = recorder();
    let (origin, reached) = recorder();
    let upstream = format!("UPSTREAM=http://{origin}");
    let endpoint = format!("http://{collector}");
    let served = Served::start_with_env(
        &[
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "shop"),
        ],
        &[
            fixture("proxy").to_str().unwrap(),
            "--otlp-endpoint",
            &endpoint,
            "--env",
            &upstream,
            "--allow-outbound",
            "127.0.0.1",
        ],
    );
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let traced = format!("traceparent: 00-{client_trace}-{client_span}-01\r\n");
    assert_eq!(get(&served.addr, "/joined", &traced), "HTTP/1.0 200 OK");
    assert_eq!(get(&served.addr, "/fresh", ""), "HTTP/1.0 200 OK");
    // A client that does not sample: its context goes on, nothing exported.
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    let header = format!("traceparent: 00-{unsampled}-b7ad6b7169203331-00\r\n");
    assert_eq!(get(&served.addr, "/unsampled", &header), "HTTP/1.0 200 OK");

    // Four spans per sampled request: request, instantiate, guest call,
    // outgoing request.
    let started = Instant::now();
    while spans(&exported).len() < 8 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "spans never arrived: {:#?}",
            spans(&exported)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    served.signal("TERM");
    let (exit, log) = served.wait();
    assert!(exit.success(), "{log}");
    let spans = spans(&exported);
    assert_eq!(spans.len(), 8, "{spans:#?}");
    assert!(
        spans.iter().all(|s| s["traceId"] != unsampled),
        "{spans:#?}"
    );

    // The client's trace: berth's request span is the client span's child.
    let request = one(&spans, client_trace, "request");
    assert_eq!(request["parentSpanId"], client_span);
    assert_eq!(request["kind"], 2, "server");
    let attribute = |span: &Value, key: &str| -> Value {
        span["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == key)
            .map(|a| a["value"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(attribute(request, "url.path")["stringValue"], "/joined");
    assert_eq!(
        attribute(request, "http.response.status_code")["intValue"],
        "200"
    );
    for name in ["instantiate", "guest call"] {
        assert_eq!(
            one(&spans, client_trace, name)["parentSpanId"],
            request["spanId"],
            "{name}"
        );
    }
    let call = one(&spans, client_trace, "guest call");
    let outgoing = one(&spans, client_trace, "outgoing request");
    assert_eq!(outgoing["parentSpanId"], call["spanId"]);
    assert_eq!(outgoing["kind"], 3, "client");

    // The proxy guest forwards the client's headers, its traceparent
    // included: a guest's own traceparent is left alone.
    let reached = reached.lock().unwrap().clone();
    let at = |path: &str| {
        reached
            .iter()
            .find(|(_, p, _, _)| p == path)
            .and_then(|(_, _, traceparent, _)| traceparent.clone())
            .unwrap_or_default()
    };
    assert_eq!(at("/joined"), format!("00-{client_trace}-{client_span}-01"));
    // Without one, berth names the outgoing request span as the parent.
    let fresh = spans
        .iter()
        .find(|s| s["name"] == "request" && s["parentSpanId"].is_null())
        .expect("the fresh request starts a trace");
    let trace = fresh["traceId"].as_str().unwrap();
    let outgoing = one(&spans, trace, "outgoing request");
    assert_eq!(
        at("/fresh"),
        format!("00-{trace}-{}-01", outgoing["spanId"].as_str().unwrap())
    );
    assert_eq!(
        at("/unsampled"),
        format!("00-{unsampled}-b7ad6b7169203331-00")
    );
}
