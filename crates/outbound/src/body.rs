//! Response bodies from upstreams: error mapping and the between-bytes
//! timeout, so a stalled upstream reaches the guest as an error, not EOF.
//! The timeout counts only time the guest spends waiting for the next
//! chunk ([`StallTimer`]), not time it spends on the last one.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use berth_http::ErrorCode;
use berth_http::stall::StallTimer;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// An upstream response body.
#[derive(Debug)]
pub(crate) struct UpstreamBody {
    inner: Incoming,
    between_bytes: StallTimer,
}

impl UpstreamBody {
    pub(crate) fn new(inner: Incoming, between_bytes: Duration) -> Self {
        Self {
            inner,
            between_bytes: StallTimer::new(between_bytes),
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.between_bytes.reset();
                Poll::Ready(frame.map(|f| f.map_err(|e| crate::error::body_error(&e))))
            }
            Poll::Pending => match this.between_bytes.poll_expired(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(ErrorCode::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
