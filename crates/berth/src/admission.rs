//! Admission control: a cap on requests running guest code at once, a
//! bounded queue with a short wait, then `503` with `Retry-After` — never a
//! `500` for overload.
//!
//! A request holds its place from the moment it is admitted until its
//! response body ends (the guest may still be writing it). The cap lives
//! in `call`, not in `poll_ready`: hyper (and axum) call `poll_ready` on a
//! clone per request, so a readiness reservation would not bound anything;
//! a refused request is answered at once instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Default wait for a place when every one is taken (500 ms): absorbs a
/// burst without letting a queue grow a latency of its own.
pub const DEFAULT_ADMISSION_WAIT: Duration = Duration::from_millis(500);

/// Limits on requests running at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Requests running guest code (or streaming its response) at once.
    /// Defaults to the runtime's instance pool size.
    pub max_concurrent: usize,
    /// Requests that may wait for a place; more are refused at once.
    /// Defaults to `max_concurrent`.
    pub max_queued: usize,
    /// Longest a request waits for a place. See [`DEFAULT_ADMISSION_WAIT`].
    pub wait: Duration,
}

impl AdmissionLimits {
    /// `max_concurrent` places, as many queued, the default wait.
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            max_concurrent,
            max_queued: max_concurrent,
            wait: DEFAULT_ADMISSION_WAIT,
        }
    }
}

/// The shared state of one service's admission control.
#[derive(Debug)]
pub(crate) struct Admission {
    limits: AdmissionLimits,
    places: Arc<Semaphore>,
    queued: AtomicUsize,
}

/// A place taken; released when dropped.
pub(crate) type Place = OwnedSemaphorePermit;

impl Admission {
    pub(crate) fn new(limits: AdmissionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            places: Arc::new(Semaphore::new(limits.max_concurrent)),
            queued: AtomicUsize::new(0),
        })
    }

    /// A place for one request, waiting at most the configured time when
    /// all are taken; `None` means overload (answer 503).
    pub(crate) async fn admit(&self) -> Option<Place> {
        if let Ok(place) = self.places.clone().try_acquire_owned() {
            return Some(place);
        }
        let queued = self.queued.fetch_add(1, Ordering::AcqRel);
        let place = if queued < self.limits.max_queued {
            tokio::time::timeout(self.limits.wait, self.places.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok)
        } else {
            None
        };
        self.queued.fetch_sub(1, Ordering::AcqRel);
        place
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn past_the_cap_requests_wait_briefly_then_are_refused() {
        let admission = Admission::new(AdmissionLimits {
            max_concurrent: 1,
            max_queued: 1,
            wait: Duration::from_millis(500),
        });
        let first = admission.admit().await.expect("a free place");
        // The queue is full while one waits: a third is refused at once.
        let waiting = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit().await.is_some() }
        });
        tokio::task::yield_now().await;
        let started = tokio::time::Instant::now();
        assert!(admission.admit().await.is_none());
        assert_eq!(started.elapsed(), Duration::ZERO);
        // The waiting one gets the place once it is freed within the wait.
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(first);
        assert!(waiting.await.unwrap());
        // With the place held, a waiter gives up after the wait.
        let _held = admission.admit().await.expect("free again");
        let started = tokio::time::Instant::now();
        assert!(admission.admit().await.is_none());
        assert_eq!(started.elapsed(), Duration::from_millis(500));
    }
}
