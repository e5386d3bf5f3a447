//! The epoch ticker, and the watchdog that stands in for it.
//!
//! CPU limits rest on one thread per engine advancing its epoch every tick:
//! a guest only yields (and only learns it is over its budget) when the
//! epoch moves. If that thread died or stalled, every guest in a loop would
//! run forever, and the wall-clock timeout could not end it either (the
//! guest never returns to the executor). So a second thread watches the
//! ticker's heartbeat; when it goes stale, the watchdog advances the epoch
//! itself (coarsely, every watch interval), so guests still get stopped,
//! and records a fault ([`ticker_fault`]) that the server reports
//! (`/healthz` answers 503) and acts on (the CLI drains and exits
//! non-zero): a server whose limits no longer hold must not go on serving.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::Engine;

/// The first fault any ticker of this process had, if one did.
static FAULT: OnceLock<String> = OnceLock::new();

/// Why CPU limits can no longer be trusted in this process, if they
/// cannot: an epoch ticker died or stalled. Once set it stays set.
pub fn ticker_fault() -> Option<&'static str> {
    FAULT.get().map(String::as_str)
}

fn report(fault: String) {
    if FAULT.set(fault.clone()).is_ok() {
        tracing::error!("{fault}; CPU limits now rest on the watchdog's coarse ticks");
    }
}

/// Fault injection for tests of the whole process: with
/// `BERTH_FAULT_EPOCH_TICKER_PANIC_MS=N` in the environment, the ticker
/// thread panics after N ms.
const FAULT_INJECTION_VAR: &str = "BERTH_FAULT_EPOCH_TICKER_PANIC_MS";

#[derive(Debug)]
struct State {
    started: Instant,
    /// Milliseconds since `started` at the last tick.
    last_tick_ms: AtomicU64,
    stop: AtomicBool,
    /// Tests: make the ticker thread panic.
    kill: AtomicBool,
}

impl State {
    fn since_last_tick(&self) -> Duration {
        let last = Duration::from_millis(self.last_tick_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// Advances the engine's epoch every tick from a dedicated thread, so the
/// CPU limit works even when every async worker is busy, with a watchdog
/// thread behind it (see the module docs). Both stop when this is dropped.
#[derive(Debug)]
pub struct EpochTicker {
    state: Arc<State>,
}

/// Marks the ticker's end: a fault unless it was asked to stop.
struct Heartbeat(Arc<State>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        if !self.0.stop.load(Ordering::Relaxed) {
            report("the epoch ticker thread stopped".to_owned());
        }
    }
}

impl EpochTicker {
    /// Starts ticking `engine` every `tick`, and the watchdog.
    pub fn start(engine: Engine, tick: Duration) -> std::io::Result<Self> {
        let state = Arc::new(State {
            started: Instant::now(),
            last_tick_ms: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            kill: AtomicBool::new(false),
        });
        let panic_after = std::env::var(FAULT_INJECTION_VAR)
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map(Duration::from_millis);
        let heartbeat = Heartbeat(state.clone());
        let ticker_engine = engine.clone();
        std::thread::Builder::new()
            .name("berth-epoch".into())
            .spawn(move || {
                let state = heartbeat.0.clone();
                while !state.stop.load(Ordering::Relaxed) {
                    #[allow(clippy::disallowed_methods, reason = "dedicated ticker thread")]
                    std::thread::sleep(tick);
                    ticker_engine.increment_epoch();
                    let now = state.started.elapsed();
                    state.last_tick_ms.store(
                        u64::try_from(now.as_millis()).unwrap_or(u64::MAX),
                        Ordering::Relaxed,
                    );
                    let injected = panic_after.is_some_and(|after| now >= after);
                    if injected || state.kill.load(Ordering::Relaxed) {
                        panic!("epoch ticker killed (fault injection)");
                    }
                }
                drop(heartbeat);
            })?;
        let watched = state.clone();
        let interval = (tick * 10).max(Duration::from_millis(100));
        let stale_after = (tick * 20).max(Duration::from_millis(500));
        std::thread::Builder::new()
            .name("berth-epoch-watch".into())
            .spawn(move || {
                while !watched.stop.load(Ordering::Relaxed) {
                    #[allow(clippy::disallowed_methods, reason = "dedicated watchdog thread")]
                    std::thread::sleep(interval);
                    let silent = watched.since_last_tick();
                    if silent > stale_after && !watched.stop.load(Ordering::Relaxed) {
                        report(format!(
                            "the epoch ticker has not ticked for {} ms",
                            silent.as_millis()
                        ));
                        engine.increment_epoch();
                    }
                }
            })?;
        Ok(Self { state })
    }

    /// Makes the ticker thread panic, as a fault would (tests).
    #[cfg(test)]
    fn kill(&self) {
        self.state.kill.store(true, Ordering::Relaxed);
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::{Config, Instance, Module, Store};

    use super::*;

    /// `(func (export "run") (loop (br 0)))`, encoded by hand.
    const SPIN: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
        0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
        0x03, 0x02, 0x01, 0x00, // func 0 has type 0
        0x07, 0x07, 0x01, 0x03, b'r', b'u', b'n', 0x00, 0x00, // export "run"
        0x0a, 0x09, 0x01, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b, // loop br 0
    ];

    /// Runs the spinning function with an epoch deadline of `ticks` on a
    /// thread; whether it was interrupted within `within`.
    fn interrupted(engine: &Engine, ticks: u64, within: Duration) -> bool {
        let module = Module::new(engine, SPIN).unwrap();
        let mut store = Store::new(engine, ());
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let run = instance
            .get_typed_func::<(), ()>(&mut store, "run")
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(run.call(&mut store, ()).is_err());
        });
        rx.recv_timeout(within).unwrap_or(false)
    }

    fn engine() -> Engine {
        let mut config = Config::new();
        config.epoch_interruption(true);
        Engine::new(&config).unwrap()
    }

    #[test]
    fn a_dead_ticker_is_reported_and_guests_are_still_stopped() {
        let engine = engine();
        let ticker = EpochTicker::start(engine.clone(), Duration::from_millis(5)).unwrap();
        assert!(interrupted(&engine, 2, Duration::from_secs(5)));
        ticker.kill();
        std::thread::sleep(Duration::from_millis(50));
        // The ticker is gone: the watchdog's ticks alone end this loop
        // (10 ticks of 100 ms).
        assert!(interrupted(&engine, 10, Duration::from_secs(10)));
        let fault = ticker_fault().expect("the fault is recorded");
        assert!(fault.contains("epoch ticker"), "{fault}");
    }

    #[test]
    fn a_ticker_dropped_on_purpose_stops_both_threads() {
        let engine = engine();
        let ticker = EpochTicker::start(engine.clone(), Duration::from_millis(5)).unwrap();
        drop(ticker);
        std::thread::sleep(Duration::from_millis(300));
        // Nothing advances the epoch any more, the watchdog included: the
        // loop is not interrupted...
        assert!(!interrupted(&engine, 1, Duration::from_millis(1500)));
        // ...until the test moves the epoch itself, which ends it.
        engine.increment_epoch();
    }
}
