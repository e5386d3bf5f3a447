//! Per-instance limits: memory (summed over all memories) and CPU time.

use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;

/// Caps the *sum* of an instance's linear memories and its table sizes.
/// wasmtime's own limits are per memory; a component has several.
#[derive(Debug)]
pub struct InstanceLimiter {
    memory_limit: usize,
    memory_used: usize,
    table_elements_limit: usize,
}

impl InstanceLimiter {
    /// A limiter allowing `memory_limit` bytes in total.
    pub fn new(memory_limit: usize, table_elements_limit: usize) -> Self {
        Self {
            memory_limit,
            memory_used: 0,
            table_elements_limit,
        }
    }

    /// Bytes of linear memory in use across all memories.
    pub fn memory_used(&self) -> usize {
        self.memory_used
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
        let total = self.memory_used.saturating_add(growth);
        if total > self.memory_limit {
            tracing::warn!(
                limit = self.memory_limit,
                requested = total,
                "guest memory limit reached"
            );
            return Ok(false);
        }
        self.memory_used = total;
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

/// Measures time spent executing guest code (between entering wasm and
/// leaving it for the host), which is what the CPU limit bounds. Time the
/// guest spends blocked in host calls does not count.
#[derive(Debug)]
pub struct CpuMeter {
    budget: Duration,
    used: Duration,
    entered: Option<Instant>,
}

impl CpuMeter {
    /// A meter with `budget` of guest execution time.
    pub fn new(budget: Duration) -> Self {
        Self {
            budget,
            used: Duration::ZERO,
            entered: None,
        }
    }

    /// The guest starts (or resumes) running.
    pub fn enter(&mut self) {
        if self.entered.is_none() {
            self.entered = Some(Instant::now());
        }
    }

    /// The guest stops running (calls the host or returns).
    pub fn exit(&mut self) {
        if let Some(start) = self.entered.take() {
            self.used += start.elapsed();
        }
    }

    /// Guest execution time so far, including the current run.
    pub fn used(&self) -> Duration {
        self.used + self.entered.map_or(Duration::ZERO, |s| s.elapsed())
    }

    /// Whether the budget is spent.
    pub fn exhausted(&self) -> bool {
        self.used() > self.budget
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
        let mut l = InstanceLimiter::new(100, 10);
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
}
