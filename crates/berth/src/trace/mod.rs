//! OpenTelemetry traces over OTLP/HTTP (JSON), from berth's own `tracing`
//! spans, with W3C Trace Context in and out.
//!
//! * **In:** a client's `traceparent` (and `tracestate`) makes the
//!   `request` span a child of the client's span; a malformed one is
//!   ignored (a new trace starts).
//! * **Spans:** `request` (server), `instantiate`, `guest call`, and one
//!   `outgoing request` (client) per request a guest sends, each a child
//!   of the span it happened in.
//! * **Out:** a guest's outgoing request gets a `traceparent` naming its
//!   `outgoing request` span (and the trace's `tracestate`) unless the
//!   guest set its own `traceparent`.
//! * **Sampling:** parent-based by default (a client's sampled flag is
//!   followed; traces that start here are all recorded); a ratio or
//!   `OTEL_TRACES_SAMPLER` changes it. Unsampled requests still propagate
//!   context (with the flag clear) but export nothing.
//!
//! Export runs on a thread of its own, batching finished spans; nothing on
//! the request path waits for the collector.
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//! let config = berth::trace::TraceConfig::from_env(Some("http://127.0.0.1:4318"), |name| std::env::var(name).ok())
//!     .unwrap()
//!     .expect("an endpoint was given");
//! let tracing = berth::trace::Tracing::start(config);
//! tracing_subscriber::registry().with(tracing.layer()).init();
//! // … serve …
//! tracing.flush();
//! ```

mod context;
mod export;
mod layer;

use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::Duration;

use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

pub use context::{Sampler, SpanContext, TRACEPARENT, TRACESTATE};
pub use layer::OtlpLayer;

use export::Message;

/// Where and how traces are exported. Build one with
/// [`TraceConfig::from_env`] or by hand.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    /// The full URL spans are posted to (e.g.
    /// `http://collector:4318/v1/traces`); `http` or `https`.
    pub endpoint: http::Uri,
    /// Resource attributes (`service.name` first).
    pub resource: Vec<(String, String)>,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Which traces are recorded.
    pub sampler: Sampler,
    /// Longest a finished span waits before it is sent.
    pub batch_delay: Duration,
    /// Most spans per export request.
    pub max_batch: usize,
    /// Spans waiting for export beyond which new ones are dropped.
    pub max_queue: usize,
    /// Longest one export request may take.
    pub export_timeout: Duration,
}

/// Why the trace settings are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceConfigError {
    /// The endpoint is not an `http` or `https` URL with a host.
    #[error("invalid OTLP endpoint `{0}`: expected http(s)://HOST[:PORT][/PATH]")]
    Endpoint(String),
    /// A setting has a value berth cannot use.
    #[error("invalid {name}=`{value}`: {expected}")]
    Setting {
        /// The setting (an environment variable or flag).
        name: String,
        /// Its value.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
}

impl TraceConfig {
    /// The settings from `flag` (an OTLP base URL such as
    /// `http://collector:4318`, as `--otlp-endpoint` takes; `/v1/traces`
    /// is added unless the path already ends with it) and the standard
    /// `OTEL_*` variables read through `env`:
    /// `OTEL_SDK_DISABLED`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used
    /// as is) / `OTEL_EXPORTER_OTLP_ENDPOINT` (base), `…_HEADERS`,
    /// `…_TIMEOUT`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
    /// `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`,
    /// `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`,
    /// `OTEL_BSP_MAX_QUEUE_SIZE`. The flag wins over the environment.
    /// `Ok(None)` when no endpoint is set (tracing stays off) or the SDK is
    /// disabled. berth speaks `http/json`; another
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` is logged as ignored.
    pub fn from_env(
        flag: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, TraceConfigError> {
        let get = |names: &[&str]| names.iter().find_map(|n| env(n).filter(|v| !v.is_empty()));
        if get(&["OTEL_SDK_DISABLED"]).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let endpoint = match (flag, get(&["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])) {
            (Some(base), _) => traces_url(base)?,
            (None, Some(full)) => parse_endpoint(&full)?,
            (None, None) => match get(&["OTEL_EXPORTER_OTLP_ENDPOINT"]) {
                Some(base) => traces_url(&base)?,
                None => return Ok(None),
            },
        };
        if let Some(protocol) = get(&[
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ])
        .filter(|p| p != "http/json")
        {
            tracing::warn!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={protocol} ignored: berth exports OTLP over http/json"
            );
        }
        let millis = |names: &[&str], default: u64| -> Result<Duration, TraceConfigError> {
            number(names, &get, default).map(Duration::from_millis)
        };
        let mut resource = vec![(
            "service.name".to_owned(),
            get(&["OTEL_SERVICE_NAME"]).unwrap_or_else(|| "berth".into()),
        )];
        for (key, value) in pairs(&get(&["OTEL_RESOURCE_ATTRIBUTES"]).unwrap_or_default()) {
            if key != "service.name" {
                resource.push((key, value));
            } else if get(&["OTEL_SERVICE_NAME"]).is_none() {
                resource[0].1 = value;
            }
        }
        let header_var = [
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_HEADERS",
        ];
        let mut headers = Vec::new();
        for (key, value) in pairs(&get(&header_var).unwrap_or_default()) {
            let bad = || TraceConfigError::Setting {
                name: "OTEL_EXPORTER_OTLP_HEADERS".into(),
                value: format!("{key}=…"),
                expected: "comma-separated NAME=VALUE pairs of valid header names and values",
            };
            let name = http::HeaderName::try_from(key.as_str()).map_err(|_| bad())?;
            let value = http::HeaderValue::try_from(value.as_str()).map_err(|_| bad())?;
            headers.push((name, value));
        }
        let sampler = match get(&["OTEL_TRACES_SAMPLER"]) {
            None => Sampler::ParentBasedAlwaysOn,
            Some(name) => Sampler::from_otel(&name, get(&["OTEL_TRACES_SAMPLER_ARG"]).as_deref())
                .ok_or_else(|| TraceConfigError::Setting {
                name: "OTEL_TRACES_SAMPLER".into(),
                value: name.clone(),
                expected: "always_on, always_off, traceidratio, parentbased_always_on, \
                               parentbased_always_off or parentbased_traceidratio",
            })?,
        };
        Ok(Some(Self {
            endpoint,
            resource,
            headers,
            sampler,
            batch_delay: millis(&["OTEL_BSP_SCHEDULE_DELAY"], 5_000)?,
            max_batch: usize::try_from(number(&["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"], &get, 512)?)
                .unwrap_or(512)
                .max(1),
            max_queue: usize::try_from(number(&["OTEL_BSP_MAX_QUEUE_SIZE"], &get, 2_048)?)
                .unwrap_or(2_048)
                .max(1),
            export_timeout: millis(
                &[
                    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
                    "OTEL_EXPORTER_OTLP_TIMEOUT",
                ],
                10_000,
            )?,
        }))
    }

    /// Records this fraction (0 to 1) of the traces that start here; a
    /// client's sampled flag is still followed.
    pub fn with_sample_ratio(mut self, ratio: f64) -> Self {
        self.sampler = Sampler::ParentBasedRatio(ratio.clamp(0.0, 1.0));
        self
    }

    /// The service name exported as `service.name`.
    pub fn service_name(&self) -> &str {
        self.resource.first().map_or("berth", |(_, name)| name)
    }
}

fn number(
    names: &[&str],
    get: &impl Fn(&[&str]) -> Option<String>,
    default: u64,
) -> Result<u64, TraceConfigError> {
    match get(names) {
        None => Ok(default),
        Some(value) => value.trim().parse().map_err(|_| TraceConfigError::Setting {
            name: names[0].to_owned(),
            value,
            expected: "a whole number",
        }),
    }
}

/// `k=v,k2=v2` with percent-encoded values (the OTel list format).
fn pairs(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), percent_decode(v.trim())))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_endpoint(text: &str) -> Result<http::Uri, TraceConfigError> {
    let bad = || TraceConfigError::Endpoint(text.to_owned());
    let uri: http::Uri = text.trim().parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.host().is_none_or(str::is_empty) {
        return Err(bad());
    }
    Ok(uri)
}

/// A base URL with `/v1/traces` added (unless already there).
fn traces_url(base: &str) -> Result<http::Uri, TraceConfigError> {
    let base = parse_endpoint(base)?;
    let path = base.path().trim_end_matches('/');
    if path.ends_with("/v1/traces") {
        return Ok(base);
    }
    let full = format!(
        "{}://{}{path}/v1/traces",
        base.scheme_str().unwrap_or("http"),
        base.authority().map_or("", |a| a.as_str())
    );
    parse_endpoint(&full)
}

/// Tracing switched on: the layer to install and the exporter behind it.
#[derive(Debug)]
pub struct Tracing {
    sampler: Sampler,
    queue: SyncSender<Message>,
    endpoint: http::Uri,
}

impl Tracing {
    /// Starts the exporter thread for `config`.
    pub fn start(config: TraceConfig) -> Self {
        let (queue, spans) = sync_channel(config.max_queue);
        let sampler = config.sampler;
        let endpoint = config.endpoint.clone();
        let spawned = std::thread::Builder::new()
            .name("berth-otlp".into())
            .spawn(move || export::run(config, spans));
        if let Err(err) = spawned {
            tracing::error!("trace export disabled: cannot start its thread: {err}");
        }
        Self {
            sampler,
            queue,
            endpoint,
        }
    }

    /// The layer to add to a `tracing_subscriber::registry()`: it traces
    /// berth's spans only, whatever the other layers' filters.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let layer = OtlpLayer {
            sampler: self.sampler,
            queue: self.queue.clone(),
        };
        layer.with_filter(tracing_subscriber::filter::filter_fn(layer::traced))
    }

    /// Where spans go.
    pub fn endpoint(&self) -> &http::Uri {
        &self.endpoint
    }

    /// Sends every span finished so far and waits for the collector's
    /// answer (or the export timeout). Call before exit.
    pub fn flush(&self) {
        let (done, sent) = sync_channel(1);
        if self.queue.send(Message::Flush(done)).is_ok() {
            let _ = sent.recv();
        }
    }
}

/// The trace span of one incoming request (`Span::none()` unless a
/// tracing layer is installed): a server span carrying the client's
/// context (`traceparent`, `tracestate` when each appears once), the method,
/// path, request id and app; the status is recorded when the response ends.
pub(crate) fn request_span<B>(
    request: &http::Request<B>,
    request_id: &str,
    app: &str,
) -> tracing::Span {
    let headers = request.headers();
    let single = |name: &str| {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => value.to_str().unwrap_or_default(),
            _ => "",
        }
    };
    tracing::debug_span!(
        target: "berth::trace",
        "request",
        otel.kind = "server",
        http.request.method = %request.method(),
        url.path = request.uri().path(),
        traceparent = single(TRACEPARENT),
        tracestate = single(TRACESTATE),
        berth.request_id = request_id,
        berth.app = app,
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// The context of the innermost traced span around the caller, if tracing
/// is on and the caller is inside one.
pub fn current_context() -> Option<SpanContext> {
    use tracing_subscriber::registry::SpanRef;
    tracing::Span::current()
        .with_subscriber(|(id, dispatch)| {
            let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
            let span: SpanRef<'_, tracing_subscriber::Registry> = registry.span(id)?;
            span.scope().find_map(|s| {
                s.extensions()
                    .get::<layer::OtelSpan>()
                    .map(|o| o.context.clone())
            })
        })
        .flatten()
}

/// Adds `traceparent` (and `tracestate`) for the current span to
/// `headers`, unless they already carry a `traceparent` (a guest that set
/// its own keeps it). Does nothing when tracing is off.
pub fn inject(headers: &mut http::HeaderMap) {
    if headers.contains_key(TRACEPARENT) {
        return;
    }
    let Some(context) = current_context() else {
        return;
    };
    if let Ok(value) = http::HeaderValue::try_from(context.traceparent()) {
        headers.insert(TRACEPARENT, value);
    }
    if let Some(state) = context.tracestate.as_deref()
        && let Ok(value) = http::HeaderValue::try_from(state)
    {
        headers.insert(TRACESTATE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn off_without_an_endpoint_or_when_disabled() {
        assert!(TraceConfig::from_env(None, env(&[])).unwrap().is_none());
        let disabled = env(&[
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ]);
        assert!(TraceConfig::from_env(None, disabled).unwrap().is_none());
    }

    #[test]
    fn endpoints_flag_base_and_full() {
        let flag = TraceConfig::from_env(Some("http://c:4318/"), env(&[]))
            .unwrap()
            .unwrap();
        assert_eq!(flag.endpoint, "http://c:4318/v1/traces");
        let base = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c.example/otlp")]);
        let base = TraceConfig::from_env(None, base).unwrap().unwrap();
        assert_eq!(base.endpoint, "https://c.example/otlp/v1/traces");
        let full = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:1"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:9/custom"),
        ]);
        let full = TraceConfig::from_env(None, full).unwrap().unwrap();
        assert_eq!(full.endpoint, "http://c:9/custom");
        for bad in ["c:4318", "ftp://c/", "http://"] {
            assert!(TraceConfig::from_env(Some(bad), env(&[])).is_err(), "{bad}");
        }
    }

    #[test]
    fn otel_variables_are_honoured() {
        let vars = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SERVICE_NAME", "shop"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,team=a%2Cb",
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20xyz"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
        ]);
        let config = TraceConfig::from_env(None, vars).unwrap().unwrap();
        assert_eq!(config.service_name(), "shop");
        assert_eq!(config.resource[2], ("team".to_owned(), "a,b".to_owned()));
        assert_eq!(config.headers[0].1, "Bearer xyz");
        assert_eq!(config.sampler, Sampler::ParentBasedRatio(0.1));
        assert_eq!(config.batch_delay, Duration::from_millis(250));
        let bad = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
        ]);
        let err = TraceConfig::from_env(None, bad).unwrap_err();
        assert!(err.to_string().contains("OTEL_TRACES_SAMPLER"), "{err}");
    }
}
