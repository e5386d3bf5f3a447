//! Limits on what a client may send in a request body: a size cap and an
//! idle timeout between chunks.
//!
//! A declared `Content-Length` over the cap is answered `413` before any
//! guest runs. A body that grows past the cap while streaming, or stalls
//! for longer than the idle timeout while the guest waits for it, ends with
//! an error the guest sees on its body stream (`HTTP-request-body-size` or
//! `connection-read-timeout`), never a clean end; the client then gets `413`
//! or `408` if the response had not started, and an aborted response if it
//! had.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use berth_http::ErrorCode;
use berth_http::stall::StallTimer;
use bytes::Bytes;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};

/// Default cap on a request body (1 GiB).
pub const DEFAULT_MAX_REQUEST_BODY_BYTES: u64 = 1 << 30;

/// Default time a request body may stall while the guest waits for it
/// (30 s).
pub const DEFAULT_REQUEST_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Request body limits of a [`WasiHttpService`](crate::WasiHttpService).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Most bytes a request body may carry. See
    /// [`DEFAULT_MAX_REQUEST_BODY_BYTES`].
    pub max_bytes: u64,
    /// Longest stall between chunks while the guest waits. See
    /// [`DEFAULT_REQUEST_BODY_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_REQUEST_BODY_BYTES,
            idle_timeout: DEFAULT_REQUEST_BODY_IDLE_TIMEOUT,
        }
    }
}

/// Which limit a request body broke, once it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Broken {
    TooLarge,
    Stalled,
}

impl Broken {
    /// The status the client gets when the response had not started.
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Broken::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Broken::Stalled => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The limit it counts as in the metrics.
    pub(crate) fn limit(self) -> crate::metrics::Limit {
        match self {
            Broken::TooLarge => crate::metrics::Limit::BodySize,
            Broken::Stalled => crate::metrics::Limit::BodyIdle,
        }
    }
}

/// Shared between a [`LimitedBody`] and the response it leads to.
pub(crate) type Tripwire = Arc<OnceLock<Broken>>;

/// An incoming body held to [`BodyLimits`].
pub(crate) struct LimitedBody<B> {
    inner: B,
    limits: BodyLimits,
    seen: u64,
    /// Runs while the guest waits for the next chunk.
    stall: StallTimer,
    tripwire: Tripwire,
}

impl<B> LimitedBody<B> {
    pub(crate) fn new(inner: B, limits: BodyLimits, tripwire: Tripwire) -> Self {
        Self {
            inner,
            limits,
            seen: 0,
            stall: StallTimer::new(limits.idle_timeout),
            tripwire,
        }
    }

    fn trip(
        &mut self,
        broken: Broken,
        err: ErrorCode,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        let _ = self.tripwire.set(broken);
        Poll::Ready(Some(Err(err)))
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes, Error = ErrorCode> + Unpin,
{
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        let this = &mut *self;
        if this.tripwire.get().is_some() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                ready!(this.stall.poll_expired(cx));
                this.trip(Broken::Stalled, ErrorCode::ConnectionReadTimeout)
            }
            Poll::Ready(frame) => {
                this.stall.reset();
                if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
                    this.seen += data.map_or(0, |d| d.len() as u64);
                    if this.seen > this.limits.max_bytes {
                        let seen = this.seen;
                        return this
                            .trip(Broken::TooLarge, ErrorCode::HttpRequestBodySize(Some(seen)));
                    }
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.tripwire.get().is_some() || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn limits(max_bytes: u64, idle_ms: u64) -> BodyLimits {
        BodyLimits {
            max_bytes,
            idle_timeout: Duration::from_millis(idle_ms),
        }
    }

    #[tokio::test]
    async fn a_body_within_the_cap_passes_untouched() {
        let inner = http_body_util::Full::new(Bytes::from_static(b"hello")).map_err(|n| match n {});
        let tripwire = Tripwire::default();
        let body = LimitedBody::new(inner, limits(5, 1000), tripwire.clone());
        assert_eq!(body.collect().await.unwrap().to_bytes().as_ref(), b"hello");
        assert!(tripwire.get().is_none());
    }

    #[tokio::test]
    async fn a_body_over_the_cap_ends_with_body_size() {
        let inner =
            http_body_util::Full::new(Bytes::from_static(b"hello!")).map_err(|n| match n {});
        let tripwire = Tripwire::default();
        let body = LimitedBody::new(inner, limits(5, 1000), tripwire.clone());
        let err = body.collect().await.unwrap_err();
        assert_eq!(err, ErrorCode::HttpRequestBodySize(Some(6)));
        assert_eq!(tripwire.get(), Some(&Broken::TooLarge));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_ends_with_read_timeout() {
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, ErrorCode>>(1);
        let mut rx = rx;
        let inner =
            http_body_util::StreamBody::new(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
        let tripwire = Tripwire::default();
        let body = LimitedBody::new(inner, limits(100, 50), tripwire.clone());
        let err = body.collect().await.unwrap_err();
        assert_eq!(err, ErrorCode::ConnectionReadTimeout);
        assert_eq!(tripwire.get(), Some(&Broken::Stalled));
    }
}
