//! One app's series, resolved once per app so that recording a request
//! neither allocates labels nor takes the families' locks; the rarer events
//! (traps, limit hits, outgoing errors) look their series up when they
//! happen.

use std::sync::Arc;
use std::time::Duration;

use berth_runtime::HandleError;
use berth_runtime::observe::Event;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use super::{AppLabels, KindLabels, LimitLabels, Metrics, OutboundLabels, RequestLabels};

/// The `outcome` label values, in [`AppSeries::requests`]' order.
const OUTCOMES: [&str; 3] = ["complete", "failed", "client-gone"];

/// A limit that stopped a request (the `limit` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    Cpu,
    Wall,
    Memory,
    BodySize,
    BodyIdle,
}

impl Limit {
    fn label(self) -> &'static str {
        match self {
            Limit::Cpu => "cpu",
            Limit::Wall => "wall",
            Limit::Memory => "memory",
            Limit::BodySize => "body_size",
            Limit::BodyIdle => "body_idle",
        }
    }
}

/// One app's series (see [`Metrics::for_app`]). Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct AppMetrics {
    inner: Arc<AppSeries>,
}

#[derive(Debug)]
struct AppSeries {
    app: String,
    metrics: Metrics,
    in_flight: Gauge,
    duration: Histogram,
    rejections: Counter,
    /// By status class (1xx..5xx) and outcome.
    requests: [[Counter; 3]; 5],
    instances_live: Gauge,
    instances_created: Counter,
    instantiation: Histogram,
    instances_reused: Counter,
    pool_exhausted: Counter,
    outbound_ok: Counter,
    guest_output_dropped: Counter,
}

impl AppMetrics {
    pub(super) fn new(metrics: &Metrics, app: &str) -> Self {
        let families = &metrics.inner;
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
                families.requests.get_or_create(&labels).clone()
            })
        });
        let outbound_ok = OutboundLabels {
            app: app.to_owned(),
            error: "ok".to_owned(),
        };
        Self {
            inner: Arc::new(AppSeries {
                app: app.to_owned(),
                metrics: metrics.clone(),
                in_flight: families.in_flight.get_or_create(&labels).clone(),
                duration: families.duration.get_or_create(&labels).clone(),
                rejections: families.rejections.get_or_create(&labels).clone(),
                requests,
                instances_live: families.instances_live.get_or_create(&labels).clone(),
                instances_created: families.instances_created.get_or_create(&labels).clone(),
                instantiation: families.instantiation.get_or_create(&labels).clone(),
                instances_reused: families.instances_reused.get_or_create(&labels).clone(),
                pool_exhausted: families.pool_exhausted.get_or_create(&labels).clone(),
                outbound_ok: families.outbound.get_or_create(&outbound_ok).clone(),
                guest_output_dropped: families.guest_output_dropped.get_or_create(&labels).clone(),
            }),
        }
    }

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

    pub(crate) fn limit_hit(&self, limit: Limit) {
        let labels = LimitLabels {
            app: self.inner.app.clone(),
            limit: limit.label().to_owned(),
        };
        self.inner
            .metrics
            .inner
            .limit_hits
            .get_or_create(&labels)
            .inc();
    }

    fn trapped(&self, kind: &str) {
        let labels = KindLabels {
            app: self.inner.app.clone(),
            kind: kind.to_owned(),
        };
        self.inner.metrics.inner.traps.get_or_create(&labels).inc();
    }

    /// Counts one outgoing request's result: `None` when it was answered,
    /// else its `error-code`'s WIT name.
    pub(crate) fn outbound(&self, error: Option<&'static str>) {
        let Some(error) = error else {
            self.inner.outbound_ok.inc();
            return;
        };
        let labels = OutboundLabels {
            app: self.inner.app.clone(),
            error: error.to_owned(),
        };
        self.inner
            .metrics
            .inner
            .outbound
            .get_or_create(&labels)
            .inc();
    }

    fn failed(&self, err: &HandleError) {
        match err {
            _ if err.is_overload() => {
                self.inner.pool_exhausted.inc();
            }
            HandleError::CpuLimit(_) => self.limit_hit(Limit::Cpu),
            HandleError::Timeout(_) => self.limit_hit(Limit::Wall),
            _ => {
                if let Some(kind) = err.trap_kind() {
                    self.trapped(kind);
                }
            }
        }
    }
}

impl AppMetrics {
    /// Counts one of the app runtime's events.
    pub(crate) fn event(&self, event: Event<'_>) {
        let series = &self.inner;
        match event {
            Event::InstanceStarted => {
                series.instances_live.inc();
            }
            Event::InstanceEnded => {
                series.instances_live.dec();
            }
            Event::InstanceCreated { took } => {
                series.instances_created.inc();
                series.instantiation.observe(took.as_secs_f64());
            }
            Event::InstanceReused => {
                series.instances_reused.inc();
            }
            Event::Failed(err) => self.failed(err),
            Event::MemoryLimit => self.limit_hit(Limit::Memory),
            Event::GuestOutputDropped => {
                series.guest_output_dropped.inc();
            }
            Event::OutgoingFinished(error) => self.outbound(error.map(|e| e.wit_name())),
            _ => {}
        }
    }
}
