//! What a runtime reports while it serves: instances created, reused and
//! ended, failures, limit hits. The `berth` crate turns these into metrics;
//! this crate only says what happened.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::error::HandleError;

/// One thing that happened in a [`Runtime`](crate::Runtime).
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A store was opened for a request (an instance is about to be created
    /// or taken from the idle pool); paired with [`Event::InstanceEnded`].
    InstanceStarted,
    /// A store stopped serving: dropped, or given back to the idle pool.
    InstanceEnded,
    /// An instance was created (instantiation succeeded) in `took`.
    InstanceCreated {
        /// Time spent instantiating.
        took: Duration,
    },
    /// A request was given to an instance that had served before (`reuse`
    /// policy, or a wasi:http@0.3 instance's second and later requests).
    InstanceReused,
    /// A request failed, before or after its response head. Failures shared
    /// by several requests of one wasi:http@0.3 instance are reported once
    /// per request that had not yet been answered.
    Failed(&'a HandleError),
    /// A guest asked to grow its memory past its limit and was refused.
    MemoryLimit,
    /// A line of guest output was dropped: the app was over its output
    /// rate (see [`OutputRate`](crate::stdio::OutputRate)).
    GuestOutputDropped,
    /// A guest's outgoing request is about to leave through the app's
    /// client, inside its `outgoing request` span; the observer may add
    /// headers (trace context).
    OutgoingStarted(&'a mut http::Request<berth_http::HostBody>),
    /// That request ended: answered (`None`) or failed with an error-code.
    OutgoingFinished(Option<&'a berth_http::ErrorCode>),
}

/// Receives a runtime's [`Event`]s. Called on the request path (and, for
/// some, from the epoch or drop paths): keep it cheap and never block.
pub trait Observer: Send + Sync + std::fmt::Debug + 'static {
    /// Records `event`.
    fn event(&self, event: Event<'_>);
}

/// The observer a runtime reports to; empty until one is set.
#[derive(Debug, Default)]
pub(crate) struct ObserverSlot(RwLock<Option<Arc<dyn Observer>>>);

impl ObserverSlot {
    pub(crate) fn set(&self, observer: Arc<dyn Observer>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some(observer);
    }

    pub(crate) fn report(&self, event: Event<'_>) {
        if let Some(observer) = &*self.0.read().unwrap_or_else(PoisonError::into_inner) {
            observer.event(event);
        }
    }
}

impl HandleError {
    /// A short, bounded name for what went wrong when this is a trap or a
    /// failed instantiation (`unreachable`, `stack_overflow`,
    /// `memory_out_of_bounds`, `exit`, …; `host` for an error the host
    /// raised into the guest, `other` for the rest); `None` for the other
    /// kinds of failure.
    pub fn trap_kind(&self) -> Option<&'static str> {
        let (HandleError::Trap(err) | HandleError::Instantiate(err)) = self else {
            return None;
        };
        if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
            use wasmtime::Trap;
            return Some(match trap {
                Trap::UnreachableCodeReached => "unreachable",
                Trap::StackOverflow => "stack_overflow",
                Trap::MemoryOutOfBounds | Trap::HeapMisaligned => "memory_out_of_bounds",
                Trap::TableOutOfBounds | Trap::IndirectCallToNull | Trap::BadSignature => {
                    "bad_call"
                }
                Trap::IntegerOverflow
                | Trap::IntegerDivisionByZero
                | Trap::BadConversionToInteger => "arithmetic",
                Trap::AllocationTooLarge => "allocation_too_large",
                _ => "other",
            });
        }
        if err
            .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
        {
            return Some("pool_exhausted");
        }
        if err.downcast_ref::<wasmtime_wasi::I32Exit>().is_some() {
            return Some("exit");
        }
        Some("host")
    }
}
