//! Per-connection hygiene for the front-end: when a connection is idle
//! (no request yet, or none in flight for a while) and when a client has
//! stopped reading.
//!
//! * [`Activity`] counts a connection's requests in flight (a request ends
//!   when its response body does) and when the last one ended;
//!   [`idle`] resolves when the connection should be closed for
//!   idleness: no first request within the header-read timeout (a silent
//!   socket, a partial HTTP/2 preface), or no request in flight for the
//!   idle timeout (HTTP/2 connections have no other idle limit; idle
//!   HTTP/1.1 keep-alive connections also hit hyper's header-read timeout).
//! * [`StallGuard`] fails a write that has made no progress for the write
//!   timeout (a client that stopped reading), so the connection ends and
//!   the guest instance behind it is freed.
//! * The same timeout covers a client that keeps its socket read but its
//!   HTTP/2 flow-control window shut (hardening A17): a [`Tracked`]
//!   response body that is ready and waits for hyper to take it is
//!   *awaiting the client*; when a connection has responses awaiting the
//!   client and hands out no frame for the write timeout, [`idle`]
//!   resolves and the connection (with every instance behind it) ends.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Requests in flight on one connection and when the last one ended.
#[derive(Debug)]
pub(crate) struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `opened` when a request last ended; `u64::MAX`
    /// until the first request started.
    last_ended_ms: AtomicU64,
    /// Response bodies ready for hyper that it has not come back for.
    awaiting_client: AtomicUsize,
    /// Milliseconds after `opened` when hyper last took a response frame
    /// (or asked for one).
    last_progress_ms: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ended_ms: AtomicU64::new(u64::MAX),
            awaiting_client: AtomicUsize::new(0),
            last_progress_ms: AtomicU64::new(0),
        })
    }

    /// A request started; the returned guard ends it when dropped (attach
    /// it to the response body).
    pub(crate) fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        // Leaves the "no request yet" state for good.
        let _ = self.last_ended_ms.compare_exchange(
            u64::MAX,
            self.elapsed_ms(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        InFlight(self.clone())
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// Hyper took a response frame or asked for the next one.
    fn progress(&self) {
        self.last_progress_ms
            .store(self.elapsed_ms(), Ordering::Release);
    }

    /// When the connection becomes closable if nothing happens meanwhile:
    /// idle (see [`idle`]) or, while requests are in flight, stalled by a
    /// client that takes none of the responses waiting for it. `None`
    /// while requests are in flight and none waits on the client.
    fn closable_at(&self, limits: &Timeouts) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            if self.awaiting_client.load(Ordering::Acquire) == 0 {
                return None;
            }
            let progress = self.last_progress_ms.load(Ordering::Acquire);
            return Some(self.opened + Duration::from_millis(progress) + limits.write);
        }
        match self.last_ended_ms.load(Ordering::Acquire) {
            u64::MAX => Some(self.opened + limits.first_request),
            ended => Some(self.opened + Duration::from_millis(ended) + limits.idle),
        }
    }
}

/// The three clocks of [`idle`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// A new connection's first request must arrive within this.
    pub(crate) first_request: Duration,
    /// A connection with no request in flight is closed after this.
    pub(crate) idle: Duration,
    /// Responses waiting on a client that takes none of them are given up
    /// after this.
    pub(crate) write: Duration,
}

/// One request in flight; ends it when dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .last_ended_ms
            .store(self.0.elapsed_ms(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Resolves when the connection should be closed: no request within
/// `first_request` of opening, none in flight for `idle`, or responses
/// waiting on a client that has taken no frame for `write`.
pub(crate) async fn idle(activity: &Activity, limits: Timeouts) {
    // While requests are in flight, look again at this pace.
    let recheck = limits
        .idle
        .min(limits.first_request)
        .min(limits.write)
        .max(Duration::from_millis(100));
    loop {
        match activity.closable_at(&limits) {
            Some(at) if at <= Instant::now() => return,
            Some(at) => tokio::time::sleep_until(at).await,
            None => tokio::time::sleep(recheck).await,
        }
    }
}

/// A response body that ends its request's [`InFlight`] when dropped, and
/// tells its connection whether it waits on the client: from the moment
/// it is handed to hyper, and after each frame, until hyper asks for more.
#[derive(Debug)]
pub(crate) struct Tracked<B> {
    body: B,
    in_flight: InFlight,
    awaiting_client: bool,
}

impl<B> Tracked<B> {
    pub(crate) fn new(body: B, in_flight: InFlight) -> Self {
        let mut tracked = Self {
            body,
            in_flight,
            awaiting_client: false,
        };
        // A response handed over is progress; its body now waits on hyper.
        tracked.in_flight.0.progress();
        tracked.set_awaiting(true);
        tracked
    }

    fn set_awaiting(&mut self, awaiting: bool) {
        if awaiting == self.awaiting_client {
            return;
        }
        self.awaiting_client = awaiting;
        let activity = &self.in_flight.0;
        if awaiting {
            activity.awaiting_client.fetch_add(1, Ordering::AcqRel);
        } else {
            activity.awaiting_client.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        self.set_awaiting(false);
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.in_flight.0.progress();
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        // A frame handed out waits on the client until hyper comes back;
        // a pending body or its end waits on nobody.
        let awaiting = matches!(polled, Poll::Ready(Some(Ok(_))));
        self.set_awaiting(awaiting);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A transport whose writes fail with `TimedOut` once they have made no
/// progress for `timeout` (the client stopped reading).
#[derive(Debug)]
pub(crate) struct StallGuard<S> {
    inner: S,
    timeout: Duration,
    /// Armed while a write is pending; reset by any progress.
    stalled_since: Option<Pin<Box<Sleep>>>,
}

impl<S> StallGuard<S> {
    pub(crate) fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stalled_since: None,
        }
    }

    /// Called when a write could not proceed: arms the timer, and fails
    /// once it has run out.
    fn pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.timeout;
        let timer = self
            .stalled_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client read nothing for {timeout:?}"),
        ))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.pending(cx).map(Err),
            done => {
                self.stalled_since = None;
                done
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.pending(cx).map(Err),
            done => {
                self.stalled_since = None;
                done
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.pending(cx).map(Err),
            done => {
                self.stalled_since = None;
                done
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_before_its_first_request_and_after_its_last() {
        let activity = Activity::new();
        let limits = Timeouts {
            first_request: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            write: Duration::from_secs(30),
        };
        tokio::time::timeout(Duration::from_secs(11), idle(&activity, limits))
            .await
            .expect("closable 10 s after opening without a request");

        let activity = Activity::new();
        let request = activity.start();
        let waiting = tokio::time::timeout(Duration::from_secs(120), idle(&activity, limits));
        // In flight: never idle, however long it takes.
        assert!(waiting.await.is_err());
        drop(request);
        let started = Instant::now();
        idle(&activity, limits).await;
        assert_eq!(started.elapsed(), limits.idle);
    }

    /// A body that always has a frame ready.
    struct Endless;

    impl Body for Endless {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_nobody_takes_stalls_the_connection_after_the_write_timeout() {
        let limits = Timeouts {
            first_request: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            write: Duration::from_secs(30),
        };
        let activity = Activity::new();
        let mut body = Tracked::new(Endless, activity.start());
        // Taken frame after frame for a minute: never stalled.
        let taking = async {
            loop {
                std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        };
        tokio::select! {
            () = taking => unreachable!(),
            () = idle(&activity, limits) => panic!("stalled while the client took frames"),
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
        // The client stops taking them (a shut HTTP/2 window).
        let started = Instant::now();
        idle(&activity, limits).await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(29) && waited <= limits.write,
            "{waited:?}"
        );
        // Once the body is gone nothing waits on the client.
        drop(body);
        assert_eq!(activity.awaiting_client.load(Ordering::Acquire), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_makes_no_progress_times_out() {
        // A duplex pipe whose reader never reads: writes fill it, then stall.
        let (client, _unread) = tokio::io::duplex(64);
        let mut guarded = StallGuard::new(client, Duration::from_secs(30));
        let started = Instant::now();
        let err = tokio::io::AsyncWriteExt::write_all(&mut guarded, &[0u8; 1024])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }
}
