//! Sending finished spans to an OTLP/HTTP collector, as JSON
//! (`POST {endpoint}`, `application/json`, the OTLP protobuf's JSON
//! mapping), in batches, from a thread of its own so that a slow or absent
//! collector never touches serving. Spans beyond the queue, or in a batch
//! the collector refused, are dropped and counted
//! (`berth_trace_spans_dropped_total`).

use std::fmt::Write as _;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use super::TraceConfig;
use super::context::SpanContext;

/// What kind of span (the OTLP `SpanKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Float(f64),
}

/// A finished span, ready to export.
#[derive(Debug, Clone)]
pub(crate) struct SpanRecord {
    pub(crate) context: SpanContext,
    pub(crate) parent_span_id: Option<u64>,
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
    pub(crate) attributes: Vec<(&'static str, Value)>,
    /// Set when the span ended in error.
    pub(crate) error: Option<String>,
}

pub(crate) enum Message {
    Span(Box<SpanRecord>),
    Flush(SyncSender<()>),
}

fn nanos(time: SystemTime) -> u128 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

fn json_string(out: &mut String, text: &str) {
    // serde_json escapes exactly as JSON needs.
    out.push_str(&serde_json::Value::from(text).to_string());
}

fn json_value(out: &mut String, value: &Value) {
    match value {
        Value::Str(s) => {
            out.push_str("{\"stringValue\":");
            json_string(out, s);
            out.push('}');
        }
        // 64-bit integers are strings in OTLP/JSON.
        Value::Int(i) => {
            let _ = write!(out, "{{\"intValue\":\"{i}\"}}");
        }
        Value::Bool(b) => {
            let _ = write!(out, "{{\"boolValue\":{b}}}");
        }
        Value::Float(f) if f.is_finite() => {
            let _ = write!(out, "{{\"doubleValue\":{f}}}");
        }
        Value::Float(f) => {
            out.push_str("{\"stringValue\":");
            json_string(out, &f.to_string());
            out.push('}');
        }
    }
}

fn json_attributes<'a>(out: &mut String, attributes: impl Iterator<Item = (&'a str, &'a Value)>) {
    out.push('[');
    for (i, (key, value)) in attributes.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"key\":");
        json_string(out, key);
        out.push_str(",\"value\":");
        json_value(out, value);
        out.push('}');
    }
    out.push(']');
}

/// The OTLP/JSON `ExportTraceServiceRequest` for `spans`.
pub(crate) fn encode(resource: &[(String, String)], spans: &[SpanRecord]) -> String {
    let mut out = String::with_capacity(256 + spans.len() * 512);
    out.push_str("{\"resourceSpans\":[{\"resource\":{\"attributes\":");
    let resource: Vec<(&str, Value)> = resource
        .iter()
        .map(|(k, v)| (k.as_str(), Value::Str(v.clone())))
        .collect();
    json_attributes(&mut out, resource.iter().map(|(k, v)| (*k, v)));
    out.push_str("},\"scopeSpans\":[{\"scope\":{\"name\":\"berth\",\"version\":\"");
    out.push_str(env!("CARGO_PKG_VERSION"));
    out.push_str("\"},\"spans\":[");
    for (i, span) in spans.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"traceId\":\"{:032x}\",\"spanId\":\"{:016x}\"",
            span.context.trace_id, span.context.span_id
        );
        if let Some(parent) = span.parent_span_id {
            let _ = write!(out, ",\"parentSpanId\":\"{parent:016x}\"");
        }
        if let Some(state) = &span.context.tracestate {
            out.push_str(",\"traceState\":");
            json_string(&mut out, state);
        }
        out.push_str(",\"name\":");
        json_string(&mut out, span.name);
        let _ = write!(
            out,
            ",\"kind\":{},\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\",\"attributes\":",
            span.kind as u8,
            nanos(span.start),
            nanos(span.end)
        );
        json_attributes(&mut out, span.attributes.iter().map(|(k, v)| (*k, v)));
        match &span.error {
            Some(message) => {
                out.push_str(",\"status\":{\"code\":2,\"message\":");
                json_string(&mut out, message);
                out.push_str("}}");
            }
            None => out.push_str(",\"status\":{}}"),
        }
    }
    out.push_str("]}]}]}");
    out
}

/// The exporter thread's loop: batches of up to `max_batch` spans, sent
/// when full, every `delay`, on a flush, and when the queue closes.
pub(crate) fn run(config: TraceConfig, queue: Receiver<Message>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("trace export disabled: cannot start its runtime: {err}");
            return;
        }
    };
    let mut sender = Sender::new(config);
    let mut batch: Vec<SpanRecord> = Vec::new();
    let mut due = Instant::now() + sender.config.batch_delay;
    loop {
        let wait = due.saturating_duration_since(Instant::now());
        match queue.recv_timeout(wait) {
            Ok(Message::Span(span)) => {
                batch.push(*span);
                if batch.len() >= sender.config.max_batch {
                    runtime.block_on(sender.send(std::mem::take(&mut batch)));
                    due = Instant::now() + sender.config.batch_delay;
                }
            }
            Ok(Message::Flush(done)) => {
                runtime.block_on(sender.send(std::mem::take(&mut batch)));
                let _ = done.send(());
            }
            Err(RecvTimeoutError::Timeout) => {
                runtime.block_on(sender.send(std::mem::take(&mut batch)));
                due = Instant::now() + sender.config.batch_delay;
            }
            Err(RecvTimeoutError::Disconnected) => {
                runtime.block_on(sender.send(std::mem::take(&mut batch)));
                return;
            }
        }
    }
}

type Connection = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Posts batches to the collector over one kept-alive connection.
struct Sender {
    config: TraceConfig,
    connection: Option<Connection>,
    /// The endpoint is https.
    https: bool,
    #[cfg(feature = "default-client")]
    tls: Option<berth_outbound::tls::LazyConnector>,
    /// When the last failure was logged (failures are logged once a minute).
    last_warning: Option<Instant>,
}

impl Sender {
    fn new(config: TraceConfig) -> Self {
        let https = config.endpoint.scheme() == Some(&http::uri::Scheme::HTTPS);
        Self {
            #[cfg(feature = "default-client")]
            tls: https
                .then(|| {
                    berth_outbound::tls::LazyConnector::new(&[] as &[&std::path::Path], true, false)
                        .ok()
                })
                .flatten(),
            https,
            config,
            connection: None,
            last_warning: None,
        }
    }

    async fn send(&mut self, batch: Vec<SpanRecord>) {
        if batch.is_empty() {
            return;
        }
        let body = encode(&self.config.resource, &batch);
        let count = batch.len();
        let outcome = tokio::time::timeout(self.config.export_timeout, self.post(body)).await;
        let failure = match outcome {
            Ok(Ok(status)) if status.is_success() => return,
            Ok(Ok(status)) => format!("the collector answered {status}"),
            Ok(Err(err)) => err,
            Err(_) => format!("no answer within {:?}", self.config.export_timeout),
        };
        self.connection = None;
        for _ in 0..count {
            crate::metrics::trace_span_dropped();
        }
        let now = Instant::now();
        if self
            .last_warning
            .is_none_or(|last| now - last >= Duration::from_secs(60))
        {
            self.last_warning = Some(now);
            tracing::warn!(
                endpoint = %self.config.endpoint,
                spans = count,
                "trace export failed: {failure}; spans dropped"
            );
        }
    }

    async fn post(&mut self, body: String) -> Result<http::StatusCode, String> {
        let connection = match self.connection.take() {
            Some(c) if c.is_ready() => c,
            _ => self.connect().await?,
        };
        let mut connection = connection;
        // Origin-form target, as HTTP/1.1 to an origin server expects.
        let target = self
            .config
            .endpoint
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str)
            .to_owned();
        let mut request = http::Request::post(target)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::HOST, self.host_header())
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        for (name, value) in &self.config.headers {
            request.headers_mut().append(name, value.clone());
        }
        let response = connection
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        // Read the answer whole so the connection can be used again.
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        self.connection = Some(connection);
        Ok(status)
    }

    fn host_header(&self) -> String {
        self.config
            .endpoint
            .authority()
            .map_or_else(String::new, ToString::to_string)
    }

    async fn connect(&self) -> Result<Connection, String> {
        let endpoint = &self.config.endpoint;
        let host = endpoint.host().ok_or("the endpoint has no host")?;
        let port = endpoint
            .port_u16()
            .unwrap_or(if self.https { 443 } else { 80 });
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        if !self.https {
            return handshake(tcp).await;
        }
        #[cfg(feature = "default-client")]
        if let Some(tls) = &self.tls {
            let stream = tls
                .connect(host, tcp)
                .await
                .map_err(|e| format!("TLS with {host}: {e}"))?;
            return handshake(stream).await;
        }
        Err("an https endpoint needs TLS (berth's `default-client` feature)".to_owned())
    }
}

async fn handshake<T>(io: T) -> Result<Connection, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_otlp_json() {
        let span = SpanRecord {
            context: SpanContext {
                trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
                span_id: 0x00f067aa0ba902b7,
                sampled: true,
                tracestate: Some("a=\"b\"".into()),
            },
            parent_span_id: Some(1),
            name: "request",
            kind: Kind::Server,
            start: UNIX_EPOCH + Duration::from_nanos(5),
            end: UNIX_EPOCH + Duration::from_nanos(9),
            attributes: vec![
                ("http.response.status_code", Value::Int(200)),
                ("url.path", Value::Str("/a\"b".into())),
            ],
            error: Some("boom".into()),
        };
        let resource = vec![("service.name".to_owned(), "berth".to_owned())];
        let text = encode(&resource, &[span]);
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        let span = &parsed["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span["spanId"], "00f067aa0ba902b7");
        assert_eq!(span["parentSpanId"], "0000000000000001");
        assert_eq!(span["traceState"], "a=\"b\"");
        assert_eq!(span["kind"], 2);
        assert_eq!(span["startTimeUnixNano"], "5");
        assert_eq!(span["attributes"][0]["value"]["intValue"], "200");
        assert_eq!(span["attributes"][1]["value"]["stringValue"], "/a\"b");
        assert_eq!(span["status"]["code"], 2);
        assert_eq!(
            parsed["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "berth"
        );
    }
}
