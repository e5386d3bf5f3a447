//! Idle instances kept for serial reuse (the `reuse = N` policy).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_http::p2::bindings::Proxy;
use wasmtime::Store;

use crate::store::StoreState;

/// An instance between requests.
pub(crate) struct Worker {
    pub(crate) store: Store<StoreState>,
    pub(crate) proxy: Proxy,
    /// Requests served so far.
    pub(crate) uses: u32,
    idle_since: Instant,
}

/// Idle instances, most recently used last.
pub(crate) struct ReusePool {
    idle: Mutex<Vec<Worker>>,
    max_uses: u32,
    idle_timeout: Duration,
}

impl std::fmt::Debug for ReusePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReusePool")
            .field("max_uses", &self.max_uses)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl ReusePool {
    pub(crate) fn new(max_uses: u32, idle_timeout: Duration) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            max_uses,
            idle_timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Worker>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently used idle instance that has not expired.
    pub(crate) fn take(&self) -> Option<Worker> {
        let mut idle = self.lock();
        let now = Instant::now();
        idle.retain(|w| now - w.idle_since < self.idle_timeout);
        idle.pop()
    }

    /// Offers an instance back after a request it completed cleanly.
    pub(crate) fn give_back(&self, store: Store<StoreState>, proxy: Proxy, uses: u32) {
        if uses >= self.max_uses || store.data().has_live_resources() {
            return;
        }
        self.lock().push(Worker {
            store,
            proxy,
            uses,
            idle_since: Instant::now(),
        });
    }

    /// Idle instances held right now.
    pub(crate) fn idle(&self) -> usize {
        self.lock().len()
    }
}
