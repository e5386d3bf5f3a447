//! Process-wide counts (panics, dropped log lines) and the values read at
//! scrape time rather than recorded (compile cache look-ups, pooled
//! outgoing connections).

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::ConstGauge;

use super::{AppLabels, ResultLabels};

/// Panics in this process, counted by the hook [`count_panics`] installs.
pub(super) fn panics() -> Counter {
    static PANICS: OnceLock<Counter> = OnceLock::new();
    PANICS.get_or_init(Counter::default).clone()
}

/// Log lines dropped in this process (see [`log_line_dropped`]).
pub(super) fn dropped_log_lines() -> Counter {
    static DROPPED: OnceLock<Counter> = OnceLock::new();
    DROPPED.get_or_init(Counter::default).clone()
}

/// Trace spans dropped in this process (see [`trace_span_dropped`]).
pub(super) fn dropped_spans() -> Counter {
    static DROPPED: OnceLock<Counter> = OnceLock::new();
    DROPPED.get_or_init(Counter::default).clone()
}

/// Counts one finished trace span that was not exported (the export queue
/// was full, or the collector refused or missed its batch), into
/// `berth_trace_spans_dropped_total`.
pub fn trace_span_dropped() {
    dropped_spans().inc();
}

/// Counts one log line a non-blocking log writer dropped because its sink
/// was not keeping up, into `berth_log_lines_dropped_total` of every
/// [`Metrics`](super::Metrics). Log writers are process-wide, and so is
/// this count.
pub fn log_line_dropped() {
    dropped_log_lines().inc();
}

/// Installs (once per process) a panic hook that counts every panic into
/// `berth_panics_total` of every [`Metrics`](super::Metrics), then reports
/// it as before. A panic in host code is a bug: the counter lets alerting
/// see one that a caught task panic would otherwise hide.
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

/// Outgoing clients' pools, by app, read at scrape time.
pub(super) type TrackedPools = Arc<Mutex<Vec<(Arc<str>, berth_outbound::PoolGauge)>>>;

/// Values read when `/metrics` is scraped.
#[derive(Debug)]
pub(super) struct Gauges {
    pub(super) pools: TrackedPools,
}

impl Collector for Gauges {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (hits, misses) = berth_runtime::cache::lookups();
        let mut cache = encoder.encode_descriptor(
            "berth_compile_cache",
            "Compile cache look-ups in this process, by result",
            None,
            MetricType::Counter,
        )?;
        for (result, count) in [("hit", hits), ("miss", misses)] {
            let labels = ResultLabels {
                result: result.to_owned(),
            };
            ConstCounter::new(count).encode(cache.encode_family(&labels)?)?;
        }

        // Sum by app: a reload leaves the old client alive while its
        // requests finish.
        let mut by_app: Vec<(Arc<str>, usize)> = Vec::new();
        for (app, pool) in self
            .pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let Some(connections) = pool.connections() else {
                continue;
            };
            match by_app.iter_mut().find(|(name, _)| name == app) {
                Some((_, total)) => *total += connections,
                None => by_app.push((app.clone(), connections)),
            }
        }
        let mut pooled = encoder.encode_descriptor(
            "berth_outbound_connections_pooled",
            "Connections held by each app's outgoing client (busy or idle)",
            None,
            MetricType::Gauge,
        )?;
        for (app, connections) in by_app {
            let labels = AppLabels {
                app: app.to_string(),
            };
            let value = i64::try_from(connections).unwrap_or(i64::MAX);
            ConstGauge::new(value).encode(pooled.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
