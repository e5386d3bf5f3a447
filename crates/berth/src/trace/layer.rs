//! The `tracing` layer that turns berth's spans into OpenTelemetry spans.
//!
//! berth's crates describe their work with ordinary `tracing` spans at
//! debug level with the target `berth::trace` (so they cost nothing and
//! stay out of the log unless this layer is installed): `request` (the
//! front-end; its `traceparent`/`tracestate` fields carry a client's
//! context), `instantiate` and `guest call` (the runtime) and `outgoing
//! request` (a guest's request through the host). This layer gives each an
//! id in the trace of its nearest traced ancestor (or a new trace, sampled
//! by the [`Sampler`](super::Sampler)), keeps its fields as attributes, and
//! hands it to the exporter when it closes. `otel.kind` sets the span
//! kind; `error.type` marks it failed.

use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::Sampler;
use super::context::{SpanContext, random_trace_id, random_u64};
use super::export::{Kind, Message, SpanRecord, Value};

/// A span's OpenTelemetry state, kept in the registry's span extensions.
pub(crate) struct OtelSpan {
    pub(crate) context: SpanContext,
    parent_span_id: Option<u64>,
    kind: Kind,
    start: SystemTime,
    attributes: Vec<(&'static str, Value)>,
    error: Option<String>,
}

/// Turns berth's `tracing` spans into exported OpenTelemetry spans.
pub struct OtlpLayer {
    pub(crate) sampler: Sampler,
    pub(crate) queue: SyncSender<Message>,
}

impl std::fmt::Debug for OtlpLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpLayer")
            .field("sampler", &self.sampler)
            .finish_non_exhaustive()
    }
}

/// The target of the spans this layer traces.
pub const TARGET: &str = "berth::trace";

/// Whether a span is one of berth's trace spans (the layer's filter).
pub(crate) fn traced(metadata: &Metadata<'_>) -> bool {
    metadata.is_span() && metadata.target() == TARGET
}

/// Collects a span's fields.
#[derive(Default)]
struct Fields {
    attributes: Vec<(&'static str, Value)>,
    traceparent: Option<String>,
    tracestate: Option<String>,
    kind: Option<Kind>,
    error: Option<String>,
}

impl Fields {
    fn set(&mut self, name: &'static str, value: Value) {
        match (name, value) {
            ("traceparent", Value::Str(s)) => self.traceparent = Some(s),
            ("tracestate", Value::Str(s)) => self.tracestate = Some(s),
            ("otel.kind", Value::Str(s)) => {
                self.kind = Some(match s.as_str() {
                    "server" => Kind::Server,
                    "client" => Kind::Client,
                    _ => Kind::Internal,
                });
            }
            (name, value) => {
                if name == "error.type" {
                    self.error = Some(match &value {
                        Value::Str(s) => s.clone(),
                        other => format!("{other:?}"),
                    });
                }
                match self.attributes.iter_mut().find(|(k, _)| *k == name) {
                    Some(slot) => slot.1 = value,
                    None => self.attributes.push((name, value)),
                }
            }
        }
    }
}

/// Reads only a client's context from a span's fields (before the
/// sampling decision, without copying the rest).
#[derive(Default)]
struct Carried {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Visit for Carried {
    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "traceparent" if !value.is_empty() => self.traceparent = Some(value.to_owned()),
            "tracestate" if !value.is_empty() => self.tracestate = Some(value.to_owned()),
            _ => {}
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field.name(), Value::Str(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), Value::Str(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), Value::Int(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(
            field.name(),
            Value::Int(i64::try_from(value).unwrap_or(i64::MAX)),
        );
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), Value::Bool(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field.name(), Value::Float(value));
    }
}

impl<S> tracing_subscriber::Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        // The nearest ancestor this layer traces.
        let local_parent = span.scope().skip(1).find_map(|ancestor| {
            ancestor
                .extensions()
                .get::<OtelSpan>()
                .map(|o| o.context.clone())
        });
        let span_id = random_u64();
        // Inside an unsampled trace only the context matters (it is still
        // propagated): skip reading the fields.
        if let Some(parent) = local_parent.as_ref().filter(|p| !p.sampled) {
            span.extensions_mut().insert(OtelSpan {
                context: SpanContext {
                    span_id,
                    ..parent.clone()
                },
                parent_span_id: Some(parent.span_id),
                kind: Kind::Internal,
                start: SystemTime::UNIX_EPOCH,
                attributes: Vec::new(),
                error: None,
            });
            return;
        }
        // Without a local parent, the client's context, if any.
        let remote_parent = match &local_parent {
            Some(_) => None,
            None => {
                let mut carried = Carried::default();
                attrs.record(&mut carried);
                carried
                    .traceparent
                    .as_deref()
                    .and_then(|tp| SpanContext::from_headers(tp, carried.tracestate.as_deref()))
            }
        };
        let context = match local_parent.as_ref().or(remote_parent.as_ref()) {
            Some(parent) => SpanContext {
                trace_id: parent.trace_id,
                span_id,
                sampled: if local_parent.is_some() {
                    parent.sampled
                } else {
                    self.sampler.sample(Some(parent.sampled), parent.trace_id)
                },
                tracestate: parent.tracestate.clone(),
            },
            None => {
                let trace_id = random_trace_id();
                SpanContext {
                    trace_id,
                    span_id,
                    sampled: self.sampler.sample(None, trace_id),
                    tracestate: None,
                }
            }
        };
        let parent_span_id = local_parent.or(remote_parent).map(|p| p.span_id);
        // Attributes only for what is exported.
        let mut fields = Fields::default();
        if context.sampled {
            attrs.record(&mut fields);
        }
        span.extensions_mut().insert(OtelSpan {
            context,
            parent_span_id,
            kind: fields.kind.unwrap_or(Kind::Internal),
            start: SystemTime::now(),
            attributes: fields.attributes,
            error: fields.error,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        let Some(otel) = extensions
            .get_mut::<OtelSpan>()
            .filter(|o| o.context.sampled)
        else {
            return;
        };
        let mut fields = Fields {
            attributes: std::mem::take(&mut otel.attributes),
            error: otel.error.take(),
            ..Fields::default()
        };
        values.record(&mut fields);
        otel.attributes = fields.attributes;
        otel.error = fields.error;
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(otel) = span.extensions_mut().remove::<OtelSpan>() else {
            return;
        };
        if !otel.context.sampled {
            return;
        }
        let record = SpanRecord {
            context: otel.context,
            parent_span_id: otel.parent_span_id,
            name: span.metadata().name(),
            kind: otel.kind,
            start: otel.start,
            end: SystemTime::now(),
            attributes: otel.attributes,
            error: otel.error,
        };
        match self.queue.try_send(Message::Span(Box::new(record))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                crate::metrics::trace_span_dropped();
            }
        }
    }
}
