//! Per-instance limits: memory (summed over all memories) and CPU time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use berth_http::memory::HostMemory;
use wasmtime::ResourceLimiter;

/// Caps the *sum* of an instance's linear memories and its table sizes.
/// wasmtime's own limits are per memory; a component has several.
#[derive(Debug)]
pub struct InstanceLimiter {
    /// The instance's budget, shared with the host bytes its guest causes.
    memory: HostMemory,
    memory_used: usize,
    table_elements_limit: usize,
    /// Growths refused since [`InstanceLimiter::take_denials`] last ran.
    denials: u32,
}

impl InstanceLimiter {
    /// A limiter allowing `memory`'s limit in total, linear memory and the
    /// host bytes charged to it together.
    pub fn new(memory: HostMemory, table_elements_limit: usize) -> Self {
        Self {
            memory,
            memory_used: 0,
            table_elements_limit,
            denials: 0,
        }
    }

    /// Bytes of linear memory in use across all memories.
    pub fn memory_used(&self) -> usize {
        self.memory_used
    }

    /// Memory growths refused since the last call (then reset).
    pub fn take_denials(&mut self) -> u32 {
        std::mem::take(&mut self.denials)
    }
}

impl ResourceLimiter for InstanceLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        if let Err(over) = self.memory.grow_guest(growth) {
            let _in_request = berth_http::log_scope::enter();
            tracing::warn!(
                limit = over.limit,
                guest = over.guest,
                host = over.host,
                requested = growth,
                "guest memory limit reached"
            );
            self.denials = self.denials.saturating_add(1);
            return Ok(false);
        }
        self.memory_used = self.memory_used.saturating_add(growth);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements_limit)
    }
}

/// Measures the time a guest's code runs, which is what the CPU limit
/// bounds. Time the guest spends blocked in host calls does not count, and
/// neither does time it spends parked after an epoch yield waiting for a
/// worker thread (so a busy server does not charge guests for each other's
/// CPU).
///
/// Two ways to measure, chosen by where the guest runs:
/// * inside [`metered`] (berth's request paths): the time of each poll of
///   the future that runs the guest, two clock reads per poll. A poll runs
///   the guest and the host calls it makes that do not block (which are
///   work done for it); a guest that blocks ends the poll.
/// * anywhere else: the call hook's transitions, two clock reads per host
///   call (`enter`, `exit`).
#[derive(Debug)]
pub struct CpuMeter {
    budget: Duration,
    used: Duration,
    entered: Option<Instant>,
    /// When the guest resumed after a yield, as nanoseconds since the poll
    /// clock's base + 1 (0: not resumed). Written by the yield future,
    /// which has no access to the store.
    resumed: Arc<AtomicU64>,
    polls: Arc<PollClock>,
}

/// Time spent in polls of [`metered`] futures, shared by a store's meter
/// and the future that drives the store.
#[derive(Debug)]
pub struct PollClock {
    base: Instant,
    used_nanos: AtomicU64,
    /// Nanoseconds since `base` + 1 when the current poll began; 0 while no
    /// poll runs.
    started: AtomicU64,
}

impl PollClock {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            used_nanos: AtomicU64::new(0),
            started: AtomicU64::new(0),
        }
    }

    fn nanos_since_base(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// Whether a metered poll is running (the hooks then read no clock).
    fn polling(&self) -> bool {
        self.started.load(Ordering::Relaxed) != 0
    }

    /// Time of finished polls, plus the running one's so far.
    fn used(&self) -> Duration {
        let finished = self.used_nanos.load(Ordering::Relaxed);
        let started = self.started.load(Ordering::Relaxed);
        let running = if started == 0 {
            0
        } else {
            self.nanos_since_base().saturating_sub(started - 1)
        };
        Duration::from_nanos(finished.saturating_add(running))
    }
}

/// Ends a metered poll when dropped (also when the poll panics).
struct PollTimer<'a>(&'a PollClock);

impl<'a> PollTimer<'a> {
    fn start(clock: &'a PollClock) -> Self {
        clock.started.store(
            clock.nanos_since_base().saturating_add(1),
            Ordering::Relaxed,
        );
        Self(clock)
    }
}

impl Drop for PollTimer<'_> {
    fn drop(&mut self) {
        let started = self.0.started.swap(0, Ordering::Relaxed);
        let took = self
            .0
            .nanos_since_base()
            .saturating_sub(started.saturating_sub(1));
        self.0.used_nanos.fetch_add(took, Ordering::Relaxed);
    }
}

/// Runs `future` (one that drives a store: instantiates its guest, calls
/// it, runs its event loop) with the store's CPU meter charging the time
/// of each poll (see [`CpuMeter`]).
pub async fn metered<F: Future>(clock: Arc<PollClock>, future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(move |cx| {
        let _timer = PollTimer::start(&clock);
        future.as_mut().poll(cx)
    })
    .await
}

impl CpuMeter {
    /// A meter with `budget` of guest execution time.
    pub fn new(budget: Duration) -> Self {
        Self {
            budget,
            used: Duration::ZERO,
            entered: None,
            resumed: Arc::new(AtomicU64::new(0)),
            polls: Arc::new(PollClock::new()),
        }
    }

    /// The clock a [`metered`] future charges to this meter.
    pub fn poll_clock(&self) -> Arc<PollClock> {
        self.polls.clone()
    }

    fn take_resume(&mut self) {
        if self.resumed.load(Ordering::Relaxed) == 0 {
            return;
        }
        let resumed = self.resumed.swap(0, Ordering::Relaxed);
        if resumed != 0 && self.entered.is_none() {
            self.entered = Some(self.polls.base + Duration::from_nanos(resumed - 1));
        }
    }

    /// The guest starts (or resumes) running. Inside a metered poll the
    /// poll's clock already runs.
    pub fn enter(&mut self) {
        if self.polls.polling() {
            return;
        }
        self.take_resume();
        if self.entered.is_none() {
            self.entered = Some(Instant::now());
        }
    }

    /// The guest stops running (calls the host or returns).
    pub fn exit(&mut self) {
        self.take_resume();
        if let Some(start) = self.entered.take() {
            self.used += start.elapsed();
        }
    }

    /// The guest yields its thread; the returned future, awaited by wasmtime
    /// before resuming the guest, yields to the async runtime and restarts
    /// the clock when the guest gets a thread again (a metered poll ends
    /// when the guest yields, and the next one restarts its clock).
    pub fn yield_now(&mut self) -> impl Future<Output = ()> + Send + 'static {
        self.exit();
        let resumed = self.resumed.clone();
        let polls = self.polls.clone();
        async move {
            tokio::task::yield_now().await;
            if !polls.polling() {
                resumed.store(polls.nanos_since_base() + 1, Ordering::Relaxed);
            }
        }
    }

    /// Guest execution time so far, including the current run.
    pub fn used(&mut self) -> Duration {
        self.take_resume();
        self.used + self.entered.map_or(Duration::ZERO, |s| s.elapsed()) + self.polls.used()
    }

    /// Whether the budget is spent.
    pub fn exhausted(&mut self) -> bool {
        self.used() > self.budget
    }

    /// Raises the budget by `more` (an instance serving several requests
    /// concurrently gets one request's budget per request it admits).
    pub fn add_budget(&mut self, more: Duration) {
        self.budget = self.budget.saturating_add(more);
    }

    /// The budget.
    pub fn budget(&self) -> Duration {
        self.budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limit_is_summed_over_memories() {
        let mut l = InstanceLimiter::new(HostMemory::new(100), 10);
        assert!(l.memory_growing(0, 60, None).unwrap());
        // A second memory: 60 + 50 > 100.
        assert!(!l.memory_growing(0, 50, None).unwrap());
        assert!(l.memory_growing(0, 40, None).unwrap());
        assert_eq!(l.memory_used(), 100);
        assert!(!l.table_growing(0, 11, None).unwrap());
    }

    #[test]
    fn cpu_meter_counts_only_guest_time() {
        let mut m = CpuMeter::new(Duration::from_millis(5));
        m.enter();
        m.exit();
        assert!(!m.exhausted());
        m.used = Duration::from_millis(6);
        assert!(m.exhausted());
    }

    #[tokio::test]
    async fn time_parked_after_a_yield_is_not_charged() {
        let mut m = CpuMeter::new(Duration::from_secs(1));
        m.enter();
        let resume = m.yield_now();
        let used_at_yield = m.used();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Still parked: the clock is stopped.
        assert!(m.used() - used_at_yield < Duration::from_millis(5));
        resume.await;
        std::thread::sleep(Duration::from_millis(20));
        // Running again: the clock runs.
        assert!(m.used() - used_at_yield >= Duration::from_millis(20));
    }

    fn spin(time: Duration) {
        let start = Instant::now();
        while start.elapsed() < time {
            std::hint::spin_loop();
        }
    }

    #[tokio::test]
    async fn a_metered_future_is_charged_for_its_polls_not_its_waits() {
        let mut m = CpuMeter::new(Duration::from_secs(10));
        let clock = m.poll_clock();
        metered(clock, async {
            spin(Duration::from_millis(20));
            // The hooks inside a metered poll add nothing of their own.
            m.enter();
            spin(Duration::from_millis(5));
            m.exit();
            // Waiting (the guest blocked in the host) ends the poll.
            tokio::time::sleep(Duration::from_millis(300)).await;
            spin(Duration::from_millis(20));
            let yielded = m.yield_now();
            yielded.await;
            m.enter();
            m.exit();
        })
        .await;
        let used = m.used();
        assert!(used >= Duration::from_millis(45), "{used:?}");
        assert!(used < Duration::from_millis(300), "{used:?}");
        // Outside a metered future the hooks measure again.
        m.enter();
        spin(Duration::from_millis(10));
        m.exit();
        assert!(m.used() >= used + Duration::from_millis(10));
    }
}
