//! How long a reader has waited for the next chunk of a body: the one rule
//! behind berth's request-body idle timeout and the outgoing client's
//! between-bytes timeout.
//!
//! The clock starts at the first `Pending` since the last chunk — when the
//! reader starts waiting — and stops at the next chunk. It does not run
//! while the reader is busy with the chunk it has: a guest that computes
//! for longer than the timeout between two reads is not blamed on the
//! peer, and bytes the peer sends meanwhile are read when it asks.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Times a reader's wait for the next chunk. See the module docs.
#[derive(Debug)]
pub struct StallTimer {
    limit: Duration,
    waiting: Option<Pin<Box<Sleep>>>,
}

impl StallTimer {
    /// A timer that expires after `limit` of waiting.
    pub fn new(limit: Duration) -> Self {
        Self {
            limit,
            waiting: None,
        }
    }

    /// Call when the body returned `Pending`: starts the clock if it is not
    /// running, and is `Ready` once the reader has waited `limit` (the task
    /// is woken then).
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let limit = self.limit;
        let sleep = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + limit)));
        let expired = sleep.as_mut().poll(cx);
        if expired.is_ready() {
            self.waiting = None;
        }
        expired
    }

    /// Call when the body produced a frame or ended: the wait is over.
    pub fn reset(&mut self) {
        self.waiting = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(timer: &mut StallTimer) -> Poll<()> {
        let waker = std::task::Waker::noop();
        timer.poll_expired(&mut Context::from_waker(waker))
    }

    #[tokio::test(start_paused = true)]
    async fn expires_after_the_limit_of_waiting() {
        let mut timer = StallTimer::new(Duration::from_millis(100));
        assert!(poll(&mut timer).is_pending());
        tokio::time::advance(Duration::from_millis(99)).await;
        assert!(poll(&mut timer).is_pending());
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(poll(&mut timer).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_starts_when_the_reader_waits_not_at_the_last_chunk() {
        let mut timer = StallTimer::new(Duration::from_millis(100));
        assert!(poll(&mut timer).is_pending());
        timer.reset();
        // The reader is busy for longer than the limit, then waits again.
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(poll(&mut timer).is_pending());
        tokio::time::advance(Duration::from_millis(50)).await;
        assert!(poll(&mut timer).is_pending());
    }
}
