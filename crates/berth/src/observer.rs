//! What a service does with its runtime's events (see
//! [`berth_runtime::observe`]): count them in the app's metrics, and give
//! a guest's outgoing requests the trace context of their span.

use berth_runtime::observe::{Event, Observer};

use crate::metrics::AppMetrics;

/// The observer a [`WasiHttpService`](crate::WasiHttpService) sets on its
/// runtime.
#[derive(Debug)]
pub(crate) struct AppObserver {
    pub(crate) metrics: Option<AppMetrics>,
}

impl Observer for AppObserver {
    fn event(&self, event: Event<'_>) {
        if let Event::OutgoingStarted(request) = event {
            crate::trace::inject(request.headers_mut());
            return;
        }
        if let Some(metrics) = &self.metrics {
            metrics.event(event);
        }
    }
}
