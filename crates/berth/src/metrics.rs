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

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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

/// Panics in this process, counted by the hook [`count_panics`] installs.
fn panics() -> Counter {
    static PANICS: std::sync::OnceLock<Counter> = std::sync::OnceLock::new();
    PANICS.get_or_init(Counter::default).clone()
}

/// Installs (once per process) a panic hook that counts every panic into
/// `berth_panics_total` of every [`Metrics`], then reports it as before.
/// A panic in host code is a bug: the counter lets alerting see one that a
/// caught task panic would otherwise hide.
pub fn count_panics() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let report = std::panic::take_hook();
        let counter = panics();
        std::panic::set_hook(Box::new(move |info| {
            counter.inc();
            report(info);
        }));
    });
}

/// The `outcome` label values, in [`AppMetrics`]' order.
const OUTCOMES: [&str; 3] = ["complete", "failed", "client-gone"];

/// One app's series (see [`Metrics::for_app`]). Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct AppMetrics {
    inner: Arc<AppSeries>,
}

#[derive(Debug)]
struct AppSeries {
    in_flight: Gauge,
    duration: Histogram,
    rejections: Counter,
    /// By status class (1xx..5xx) and outcome.
    requests: [[Counter; 3]; 5],
}

impl AppMetrics {
    pub(crate) fn request_started(&self) {
        self.inner.in_flight.inc();
    }

    pub(crate) fn request_ended(&self, status: u16, outcome: &str, took: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        let outcome = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(1);
        self.inner.requests[class][outcome].inc();
        self.inner.in_flight.dec();
        self.inner.duration.observe(took.as_secs_f64());
    }

    pub(crate) fn admission_rejected(&self) {
        self.inner.rejections.inc();
    }
}

/// Request durations: 1 ms to ~33 s, doubling.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// A metrics registry and its families. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<AppLabels, Histogram, fn() -> Histogram>,
    in_flight: Family<AppLabels, Gauge>,
    rejections: Family<AppLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    connections: Gauge,
    handshake_failures: Family<ReasonLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
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
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<AppLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        let in_flight = Family::<AppLabels, Gauge>::default();
        let rejections = Family::<AppLabels, Counter>::default();
        let reloads = Family::<ResultLabels, Counter>::default();
        let connections = Gauge::default();
        let handshake_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "berth_requests",
            "Requests answered, by app, status class and outcome",
            requests.clone(),
        );
        registry.register(
            "berth_request_duration_seconds",
            "Time from a request's arrival to the end of its response body",
            duration.clone(),
        );
        registry.register(
            "berth_requests_in_flight",
            "Requests whose response has not ended",
            in_flight.clone(),
        );
        registry.register(
            "berth_admission_rejections",
            "Requests answered 503 because every admission place was taken",
            rejections.clone(),
        );
        registry.register(
            "berth_reloads",
            "Platform reloads, by result",
            reloads.clone(),
        );
        registry.register(
            "berth_connections_open",
            "Client connections open",
            connections.clone(),
        );
        registry.register(
            "berth_panics",
            "Panics in this process (host code must never panic)",
            panics(),
        );
        registry.register(
            "berth_tls_handshake_failures",
            "TLS handshakes that did not finish, by reason",
            handshake_failures.clone(),
        );
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
        let labels = AppLabels {
            app: app.to_owned(),
        };
        let requests = std::array::from_fn(|class| {
            std::array::from_fn(|outcome| {
                let labels = RequestLabels {
                    app: app.to_owned(),
                    status: format!("{}xx", class + 1),
                    outcome: OUTCOMES[outcome].to_owned(),
                };
                self.inner.requests.get_or_create(&labels).clone()
            })
        });
        AppMetrics {
            inner: Arc::new(AppSeries {
                in_flight: self.inner.in_flight.get_or_create(&labels).clone(),
                duration: self.inner.duration.get_or_create(&labels).clone(),
                rejections: self.inner.rejections.get_or_create(&labels).clone(),
                requests,
            }),
        }
    }

    pub(crate) fn connection_opened(&self) -> OpenConnection {
        self.inner.connections.inc();
        OpenConnection(self.inner.connections.clone())
    }

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
