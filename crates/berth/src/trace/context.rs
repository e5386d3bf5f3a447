//! W3C Trace Context (`traceparent`, `tracestate`), span and trace ids, and
//! the sampling decision.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// The W3C `traceparent` header.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C `tracestate` header.
pub const TRACESTATE: &str = "tracestate";

/// Longest `tracestate` kept (the W3C limit is 32 members; 512 bytes is
/// what the spec says a vendor must be able to propagate).
const MAX_TRACESTATE: usize = 512;

/// Where a span sits in a trace, as W3C Trace Context carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanContext {
    /// The trace (never zero).
    pub trace_id: u128,
    /// The span (never zero).
    pub span_id: u64,
    /// Whether the trace is recorded (the `sampled` flag).
    pub sampled: bool,
    /// Vendor state passed along unchanged.
    pub tracestate: Option<String>,
}

impl SpanContext {
    /// Parses a `traceparent` value (version `00`, or a later version read
    /// as `00` as the spec asks) and an optional `tracestate`. `None` when
    /// the value is malformed or has an all-zero id: the request then
    /// starts a new trace.
    pub fn from_headers(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let value = traceparent.trim();
        let mut parts = value.split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        let hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if version.len() != 2 || !hex(version) || version == "ff" {
            return None;
        }
        // Version 00 has exactly four parts; later versions may add more.
        if version == "00" && parts.next().is_some() {
            return None;
        }
        if trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return None;
        }
        if !hex(trace) || !hex(span) || !hex(flags) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        if trace_id == 0 || span_id == 0 {
            return None;
        }
        let tracestate = tracestate
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE && s.is_ascii())
            .map(str::to_owned);
        Some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
            tracestate,
        })
    }

    /// The `traceparent` value naming this span as the parent.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

/// Which traces are recorded: a root span decides by ratio; a span with a
/// parent (remote or local) follows its parent's decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    /// Record every trace that starts here; follow a remote parent.
    ParentBasedAlwaysOn,
    /// Record no trace that starts here; follow a remote parent.
    ParentBasedAlwaysOff,
    /// Record this fraction (0 to 1) of traces that start here, chosen by
    /// trace id; follow a remote parent.
    ParentBasedRatio(f64),
    /// Record every trace, whatever the parent says.
    AlwaysOn,
    /// Record nothing.
    AlwaysOff,
    /// Record this fraction of all traces by trace id, whatever the parent
    /// says.
    Ratio(f64),
}

impl Sampler {
    /// Reads `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` values
    /// (`always_on`, `always_off`, `traceidratio`, `parentbased_always_on`,
    /// `parentbased_always_off`, `parentbased_traceidratio`); `None` for
    /// anything else.
    pub fn from_otel(name: &str, arg: Option<&str>) -> Option<Self> {
        let ratio = || {
            arg.and_then(|a| a.trim().parse::<f64>().ok())
                .filter(|r| (0.0..=1.0).contains(r))
                .unwrap_or(1.0)
        };
        Some(match name.trim() {
            "always_on" => Sampler::AlwaysOn,
            "always_off" => Sampler::AlwaysOff,
            "traceidratio" => Sampler::Ratio(ratio()),
            "parentbased_always_on" => Sampler::ParentBasedAlwaysOn,
            "parentbased_always_off" => Sampler::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => Sampler::ParentBasedRatio(ratio()),
            _ => return None,
        })
    }

    /// Whether a trace starting at a span with `parent` (its sampled flag,
    /// if it has a parent) and `trace_id` is recorded.
    pub fn sample(self, parent: Option<bool>, trace_id: u128) -> bool {
        let by_ratio = |ratio: f64| {
            // The lower 64 bits of a random trace id are uniform.
            let threshold = (ratio.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
            ratio >= 1.0 || (trace_id as u64) < threshold
        };
        match (self, parent) {
            (Sampler::AlwaysOn, _) => true,
            (Sampler::AlwaysOff, _) => false,
            (Sampler::Ratio(r), _) => by_ratio(r),
            (_, Some(sampled)) => sampled,
            (Sampler::ParentBasedAlwaysOn, None) => true,
            (Sampler::ParentBasedAlwaysOff, None) => false,
            (Sampler::ParentBasedRatio(r), None) => by_ratio(r),
        }
    }
}

/// A random non-zero 64-bit value (span ids; halves of trace ids).
pub(crate) fn random_u64() -> u64 {
    // std's RandomState is seeded from the OS once per thread and stepped
    // per instance; hashing a process-wide counter through it gives ids
    // that are unpredictable across processes and distinct within one.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let mut hasher = std::hash::RandomState::new().build_hasher();
        hasher.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
        let value = hasher.finish();
        if value != 0 {
            return value;
        }
    }
}

/// A random non-zero trace id.
pub(crate) fn random_trace_id() -> u128 {
    (u128::from(random_u64()) << 64) | u128::from(random_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_writes_the_w3c_example() {
        let parsed = SpanContext::from_headers(EXAMPLE, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(parsed.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(parsed.span_id, 0x00f067aa0ba902b7);
        assert!(parsed.sampled);
        assert_eq!(parsed.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
        assert_eq!(parsed.traceparent(), EXAMPLE);
    }

    #[test]
    fn refuses_malformed_values() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
        ] {
            assert_eq!(SpanContext::from_headers(bad, None), None, "{bad}");
        }
        // A later version may carry more fields; the first four are read.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more";
        let parsed = SpanContext::from_headers(later, None).unwrap();
        assert!(!parsed.sampled);
    }

    #[test]
    fn samplers_follow_the_parent_or_the_ratio() {
        assert!(Sampler::ParentBasedAlwaysOn.sample(None, 5));
        assert!(!Sampler::ParentBasedAlwaysOn.sample(Some(false), 5));
        assert!(Sampler::ParentBasedAlwaysOff.sample(Some(true), 5));
        assert!(Sampler::AlwaysOn.sample(Some(false), 5));
        let ratio = Sampler::ParentBasedRatio(0.01);
        let kept = (0..100_000)
            .filter(|_| ratio.sample(None, random_trace_id()))
            .count();
        assert!((500..1_500).contains(&kept), "{kept} of 100 000 at 1%");
        assert_eq!(
            Sampler::from_otel("parentbased_traceidratio", Some("0.25")),
            Some(Sampler::ParentBasedRatio(0.25))
        );
        assert_eq!(Sampler::from_otel("jaeger_remote", None), None);
    }
}
