//! The runtime's wrapper around an app's [`OutboundClient`]: every outgoing
//! request that reaches the client is reported to the runtime's observer
//! ([`Event::OutgoingStarted`], [`Event::OutgoingFinished`]), which may also
//! add headers (trace context) before it leaves.

use std::sync::Arc;

use berth_http::outbound::{RequestTimeouts, ResponseFuture};
use berth_http::{HostBody, OutboundClient};

use crate::observe::{Event, ObserverSlot};

/// Reports `inner`'s requests to `observer`.
pub(crate) struct ReportingClient {
    pub(crate) inner: Arc<dyn OutboundClient>,
    pub(crate) observer: Arc<ObserverSlot>,
}

impl OutboundClient for ReportingClient {
    fn send(
        &self,
        mut request: http::Request<HostBody>,
        timeouts: RequestTimeouts,
    ) -> ResponseFuture {
        let span = tracing::debug_span!(
            target: crate::handler::TRACE,
            "outgoing request",
            otel.kind = "client",
            http.request.method = %request.method(),
            server.address = request.uri().host().unwrap_or_default(),
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        // Inside the span, so that trace context added to the request
        // names this span as the parent of the server's.
        span.in_scope(|| self.observer.report(Event::OutgoingStarted(&mut request)));
        let sent = self.inner.send(request, timeouts);
        let observer = self.observer.clone();
        Box::pin(tracing::Instrument::instrument(
            async move {
                let result = sent.await;
                let span = tracing::Span::current();
                match &result {
                    Ok(response) => {
                        span.record("http.response.status_code", response.status().as_u16());
                    }
                    Err(code) => {
                        span.record("error.type", code.wit_name());
                    }
                }
                observer.report(Event::OutgoingFinished(result.as_ref().err()));
                result
            },
            span,
        ))
    }
}
