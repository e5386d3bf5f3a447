//! Response bodies from upstreams: error mapping and the between-bytes
//! timeout, so a stalled upstream reaches the guest as an error, not EOF.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use berth_http::ErrorCode;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

/// An upstream response body.
#[derive(Debug)]
pub(crate) struct UpstreamBody {
    inner: Incoming,
    between_bytes: Duration,
    timer: Pin<Box<Sleep>>,
}

impl UpstreamBody {
    pub(crate) fn new(inner: Incoming, between_bytes: Duration) -> Self {
        Self {
            inner,
            between_bytes,
            timer: Box::pin(tokio::time::sleep(between_bytes)),
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
                let deadline = Instant::now() + this.between_bytes;
                this.timer.as_mut().reset(deadline);
                Poll::Ready(frame.map(|f| f.map_err(|e| crate::error::body_error(&e))))
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
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
