//! Host memory a guest causes, counted against its instance's memory limit.
//!
//! The guest's linear memory is bounded by the store's limiter; but a guest
//! can also make the host hold memory — every `fields.clone`, `from-list`
//! or `headers()` call copies a header block of up to 64 KiB into the
//! host's resource table, and only the *number* of table entries was
//! capped (100 000 × 64 KiB is gigabytes). [`HostMemory`] is one
//! instance's budget, shared by its limiter (linear memory) and its
//! `wasi:http` host (header blocks): their sum stays under the limit. A
//! [`Charge`] holds bytes while the thing it was taken for lives.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One instance's memory budget: linear memory and host-side bytes
/// together. Cheap to clone (clones share the budget).
#[derive(Debug, Clone)]
pub struct HostMemory(Arc<Budget>);

#[derive(Debug)]
struct Budget {
    limit: usize,
    /// Linear memory in use (kept by the store's limiter).
    guest: AtomicUsize,
    /// Host bytes held by live charges.
    host: AtomicUsize,
}

/// The budget would be exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "instance memory limit of {limit} bytes reached: {guest} bytes of guest memory and {host} \
     bytes of host memory in use, {asked} more asked for"
)]
pub struct OverBudget {
    /// The limit.
    pub limit: usize,
    /// Linear memory in use.
    pub guest: usize,
    /// Host bytes in use.
    pub host: usize,
    /// What was asked for.
    pub asked: usize,
}

impl Default for HostMemory {
    /// No limit.
    fn default() -> Self {
        Self::new(usize::MAX)
    }
}

impl HostMemory {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self(Arc::new(Budget {
            limit,
            guest: AtomicUsize::new(0),
            host: AtomicUsize::new(0),
        }))
    }

    /// A fresh budget with the same limit (for another instance).
    pub fn fresh(&self) -> Self {
        Self::new(self.0.limit)
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.0.limit
    }

    /// Host bytes held now.
    pub fn host_bytes(&self) -> usize {
        self.0.host.load(Ordering::Relaxed)
    }

    /// Linear memory in use.
    pub fn guest_bytes(&self) -> usize {
        self.0.guest.load(Ordering::Relaxed)
    }

    fn over(&self, asked: usize) -> OverBudget {
        OverBudget {
            limit: self.0.limit,
            guest: self.guest_bytes(),
            host: self.host_bytes(),
            asked,
        }
    }

    /// Whether `more` bytes fit beside what is in use.
    fn fits(&self, more: usize) -> Result<(), OverBudget> {
        let total = self
            .guest_bytes()
            .saturating_add(self.host_bytes())
            .saturating_add(more);
        if total > self.0.limit {
            return Err(self.over(more));
        }
        Ok(())
    }

    /// Linear memory grows by `bytes` (the limiter asks): refused when the
    /// total would pass the limit.
    pub fn grow_guest(&self, bytes: usize) -> Result<(), OverBudget> {
        self.fits(bytes)?;
        self.0.guest.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Takes `bytes` of host memory for as long as the charge lives.
    pub fn charge(&self, bytes: usize) -> Result<Charge, OverBudget> {
        let mut charge = Charge {
            budget: Some(self.clone()),
            bytes: 0,
        };
        charge.resize(bytes)?;
        Ok(charge)
    }
}

/// Host bytes held against a [`HostMemory`]; released when dropped.
#[derive(Debug, Default)]
pub struct Charge {
    budget: Option<HostMemory>,
    bytes: usize,
}

impl Charge {
    /// A charge against nothing (memory the front-end already bounded).
    pub fn none() -> Self {
        Self::default()
    }

    /// Changes the bytes held to `bytes`; growing past the budget is
    /// refused and leaves the charge as it was.
    pub fn resize(&mut self, bytes: usize) -> Result<(), OverBudget> {
        let Some(budget) = &self.budget else {
            return Ok(());
        };
        if bytes > self.bytes {
            let more = bytes - self.bytes;
            budget.fits(more)?;
            budget.0.host.fetch_add(more, Ordering::Relaxed);
        } else {
            budget
                .0
                .host
                .fetch_sub(self.bytes - bytes, Ordering::Relaxed);
        }
        self.bytes = bytes;
        Ok(())
    }

    /// The budget this charge is against, if any.
    pub fn budget(&self) -> Option<&HostMemory> {
        self.budget.as_ref()
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.0.host.fetch_sub(self.bytes, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_and_host_bytes_share_one_limit() {
        let memory = HostMemory::new(1000);
        memory.grow_guest(600).unwrap();
        let mut charge = memory.charge(300).unwrap();
        assert_eq!(memory.host_bytes(), 300);
        assert!(memory.charge(200).is_err());
        assert!(memory.grow_guest(200).is_err());
        charge.resize(400).unwrap();
        assert_eq!(
            charge.resize(500),
            Err(OverBudget {
                limit: 1000,
                guest: 600,
                host: 400,
                asked: 100
            })
        );
        charge.resize(100).unwrap();
        memory.grow_guest(200).unwrap();
        drop(charge);
        assert_eq!(memory.host_bytes(), 0);
        assert_eq!(memory.guest_bytes(), 800);
    }

    #[test]
    fn an_unlimited_budget_and_no_charge_never_refuse() {
        let memory = HostMemory::default();
        let _big = memory.charge(usize::MAX / 2).unwrap();
        let mut none = Charge::none();
        none.resize(usize::MAX).unwrap();
    }
}
