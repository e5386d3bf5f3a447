//! Prometheus metrics, recorded where the facts are born and served by the
//! admin listener's `/metrics` (see [`crate::admin`]).
//!
//! A [`Metrics`] is a handle passed in at build time, not a global: two
//! platforms in one process (tests) keep their own counts. Labels are
//! bounded: the app's configured name (`-` for requests no route took),
//! the status class and the outcome — never a path or a host from the
//! client.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `berth_requests_total` | `app`, `status` (`2xx`…`5xx`), `outcome` | requests answered; outcome `complete`, `failed` (the body broke off) or `client-gone` |
//! | `berth_request_duration_seconds` | `app` | histogram, from arrival to the end of the response body |
//! | `berth_requests_in_flight` | `app` | requests arrived whose response has not ended |
//! | `berth_admission_rejections_total` | `app` | `503`s for overload |
//! | `berth_reloads_total` | `result` (`ok`, `failed`) | platform reloads |
//! | `berth_connections_open` | | client connections open (TLS handshakes included) |
//! | `berth_tls_handshake_failures_total` | `reason` (`error`, `timeout`) | TLS handshakes that did not finish |
//! | `berth_panics_total` | | panics anywhere in the process since [`count_panics`] (host code must never panic; this should stay 0) |
//! | `berth_instances_live` | `app` | instances running a request, streaming a body or being torn down (idle reusable ones excluded) |
//! | `berth_instances_created_total` | `app` | instances created |
//! | `berth_instantiation_seconds` | `app` | histogram of instantiation time |
//! | `berth_instances_reused_total` | `app` | requests given to an instance that had served before |
//! | `berth_traps_total` | `app`, `kind` (`unreachable`, `stack_overflow`, `memory_out_of_bounds`, `bad_call`, `arithmetic`, `exit`, `host`, `other`, …) | guests that trapped or failed to instantiate |
//! | `berth_limit_hits_total` | `app`, `limit` (`cpu`, `wall`, `memory`, `body_size`, `body_idle`) | requests stopped by a limit (`memory`: growths refused) |
//! | `berth_pool_exhausted_total` | `app` | instantiations refused because the instance pool was full |
//! | `berth_outbound_requests_total` | `app`, `error` (`ok` or the WIT `error-code`: `HTTP-request-denied` for egress-policy denials, `loop-detected`, …) | guests' outgoing requests that reached the client |
//! | `berth_outbound_connections_pooled` | `app` | connections the app's outgoing client holds |
//! | `berth_compile_cache_total` | `result` (`hit`, `miss`) | compile cache look-ups in this process |
//! | `berth_guest_output_dropped_lines_total` | `app` | guest output lines dropped: the app was over its output rate |
//! | `berth_log_lines_dropped_total` | | log lines dropped because the log sink was not keeping up |
//! | `berth_trace_spans_dropped_total` | | finished trace spans not exported (queue full, collector failed) |

mod app;
mod process;

use std::sync::{Arc, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub(crate) use app::{AppMetrics, Limit};
pub use process::{count_panics, log_line_dropped, trace_span_dropped};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    app: String,
    status: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    app: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    app: String,
    limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutboundLabels {
    app: String,
    error: String,
}

/// Request durations: 1 ms to ~33 s, doubling.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Instantiation times: 50 µs to ~1.6 s, doubling.
fn instantiation_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// A metrics registry and its families. Cheap to clone.
///
/// ```
/// let metrics = berth::metrics::Metrics::new();
/// // service = service.with_metrics(metrics.clone());
/// let text = metrics.encode(); // what GET /metrics answers
/// assert!(text.contains("berth_connections_open 0"));
/// ```
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily<AppLabels>,
    in_flight: Family<AppLabels, Gauge>,
    rejections: Family<AppLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    connections: Gauge,
    #[cfg_attr(not(feature = "tls"), allow(dead_code, reason = "counted by TLS only"))]
    handshake_failures: Family<ReasonLabels, Counter>,
    instances_live: Family<AppLabels, Gauge>,
    instances_created: Family<AppLabels, Counter>,
    instantiation: HistogramFamily<AppLabels>,
    instances_reused: Family<AppLabels, Counter>,
    traps: Family<KindLabels, Counter>,
    limit_hits: Family<LimitLabels, Counter>,
    pool_exhausted: Family<AppLabels, Counter>,
    outbound: Family<OutboundLabels, Counter>,
    guest_output_dropped: Family<AppLabels, Counter>,
    /// Outgoing clients whose pools `berth_outbound_connections_pooled`
    /// reads at scrape time.
    pools: process::TrackedPools,
}

/// One open client connection; counted until dropped.
#[derive(Debug)]
pub(crate) struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every berth metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        macro_rules! register {
            ($name:literal, $help:literal, $metric:expr) => {{
                let metric = $metric;
                registry.register($name, $help, metric.clone());
                metric
            }};
        }
        let requests = register!(
            "berth_requests",
            "Requests answered, by app, status class and outcome",
            Family::<RequestLabels, Counter>::default()
        );
        let duration = register!(
            "berth_request_duration_seconds",
            "Time from a request's arrival to the end of its response body",
            HistogramFamily::<AppLabels>::new_with_constructor(duration_histogram)
        );
        let in_flight = register!(
            "berth_requests_in_flight",
            "Requests whose response has not ended",
            Family::<AppLabels, Gauge>::default()
        );
        let rejections = register!(
            "berth_admission_rejections",
            "Requests answered 503 because every admission place was taken",
            Family::<AppLabels, Counter>::default()
        );
        let reloads = register!(
            "berth_reloads",
            "Platform reloads, by result",
            Family::<ResultLabels, Counter>::default()
        );
        let connections = register!(
            "berth_connections_open",
            "Client connections open",
            Gauge::default()
        );
        register!(
            "berth_panics",
            "Panics in this process (host code must never panic)",
            process::panics()
        );
        let handshake_failures = register!(
            "berth_tls_handshake_failures",
            "TLS handshakes that did not finish, by reason",
            Family::<ReasonLabels, Counter>::default()
        );
        let instances_live = register!(
            "berth_instances_live",
            "Instances running a request, streaming a body or being torn down",
            Family::<AppLabels, Gauge>::default()
        );
        let instances_created = register!(
            "berth_instances_created",
            "Instances created",
            Family::<AppLabels, Counter>::default()
        );
        let instantiation = register!(
            "berth_instantiation_seconds",
            "Time to create an instance",
            HistogramFamily::<AppLabels>::new_with_constructor(instantiation_histogram)
        );
        let instances_reused = register!(
            "berth_instances_reused",
            "Requests given to an instance that had served before",
            Family::<AppLabels, Counter>::default()
        );
        let traps = register!(
            "berth_traps",
            "Guests that trapped or failed to instantiate, by kind",
            Family::<KindLabels, Counter>::default()
        );
        let limit_hits = register!(
            "berth_limit_hits",
            "Requests stopped by a limit (cpu, wall, memory, body_size, body_idle)",
            Family::<LimitLabels, Counter>::default()
        );
        let pool_exhausted = register!(
            "berth_pool_exhausted",
            "Instantiations refused because the instance pool was full",
            Family::<AppLabels, Counter>::default()
        );
        let outbound = register!(
            "berth_outbound_requests",
            "Guests' outgoing requests, by app and error-code (ok when answered)",
            Family::<OutboundLabels, Counter>::default()
        );
        let guest_output_dropped = register!(
            "berth_guest_output_dropped_lines",
            "Lines of guest output dropped because the app was over its output rate",
            Family::<AppLabels, Counter>::default()
        );
        register!(
            "berth_log_lines_dropped",
            "Log lines dropped because the log sink was not keeping up",
            process::dropped_log_lines()
        );
        register!(
            "berth_trace_spans_dropped",
            "Finished trace spans not exported (queue full, or the collector failed)",
            process::dropped_spans()
        );
        let pools = Arc::default();
        registry.register_collector(Box::new(process::Gauges {
            pools: Arc::clone(&pools),
        }));
        Self {
            inner: Arc::new(Inner {
                registry,
                requests,
                duration,
                in_flight,
                rejections,
                reloads,
                connections,
                handshake_failures,
                instances_live,
                instances_created,
                instantiation,
                instances_reused,
                traps,
                limit_hits,
                pool_exhausted,
                outbound,
                guest_output_dropped,
                pools,
            }),
        }
    }

    /// Everything in the OpenMetrics text format (what Prometheus scrapes).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.inner.registry).is_err() {
            text.clear();
        }
        text
    }

    /// The series of one app, looked up once so that recording a request
    /// neither allocates labels nor takes the families' locks.
    pub(crate) fn for_app(&self, app: &str) -> AppMetrics {
        AppMetrics::new(self, app)
    }

    /// Reports the pooled connections of `app`'s outgoing client in
    /// `berth_outbound_connections_pooled` for as long as the client lives.
    pub(crate) fn track_pool(&self, app: Arc<str>, pool: berth_outbound::PoolGauge) {
        let mut pools = self
            .inner
            .pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        pools.retain(|(_, pool)| pool.connections().is_some());
        pools.push((app, pool));
    }

    pub(crate) fn connection_opened(&self) -> OpenConnection {
        self.inner.connections.inc();
        OpenConnection(self.inner.connections.clone())
    }

    #[cfg(feature = "tls")]
    pub(crate) fn tls_handshake_failed(&self, reason: &str) {
        let labels = ReasonLabels {
            reason: reason.to_owned(),
        };
        self.inner.handshake_failures.get_or_create(&labels).inc();
    }

    pub(crate) fn reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        let labels = ResultLabels {
            result: result.to_owned(),
        };
        self.inner.reloads.get_or_create(&labels).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::process::panics;
    use super::*;

    #[test]
    fn a_panic_is_counted_in_every_registry() {
        count_panics();
        let (one, two) = (Metrics::new(), Metrics::new());
        let before = panics().get();
        let caught = std::panic::catch_unwind(|| panic!("counted on purpose"));
        assert!(caught.is_err());
        assert!(panics().get() > before);
        let line = format!("berth_panics_total {}", panics().get());
        assert!(one.encode().contains(&line), "{}", one.encode());
        assert!(two.encode().contains(&line));
    }
}
