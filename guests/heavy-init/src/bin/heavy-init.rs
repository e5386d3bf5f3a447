//! A wasi:http@0.2 app whose start-up is expensive: before it can answer it
//! sieves the primes below [`LIMIT`] into a table (milliseconds of CPU),
//! the way real apps parse configuration, compile routes or load models.
//!
//! Without pre-initialisation a fresh instance per request repeats that
//! work on every request. `wizer-initialize` does the same start-up, so
//! `berth serve --pre-init` runs it once and snapshots the result.
//!
//! Every request gets what the table holds and whether this instance had to
//! build it (`built-here: yes`) or found it ready (`built-here: no`).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use berth_guest_heavy_init::bindings::exports::wasi::http::incoming_handler::Guest as Handler;
use berth_guest_heavy_init::bindings::wasi::http::types::{IncomingRequest, ResponseOutparam};
use berth_guest_heavy_init::respond_text;

/// Primes below this are tabled at start-up.
const LIMIT: usize = 2_000_000;

static PRIMES: OnceLock<Vec<u32>> = OnceLock::new();
/// Set when this instance (not a snapshot) built the table.
static BUILT_HERE: AtomicBool = AtomicBool::new(false);

fn primes() -> &'static [u32] {
    PRIMES.get_or_init(|| {
        BUILT_HERE.store(true, Ordering::Relaxed);
        let mut composite = vec![false; LIMIT];
        let mut primes = Vec::new();
        for n in 2..LIMIT {
            if !composite[n] {
                primes.push(n as u32);
                let mut multiple = n * n;
                while multiple < LIMIT {
                    composite[multiple] = true;
                    multiple += n;
                }
            }
        }
        primes
    })
}

struct HeavyInit;

berth_guest_heavy_init::bindings::export!(HeavyInit with_types_in berth_guest_heavy_init::bindings);

impl berth_guest_heavy_init::bindings::Guest for HeavyInit {
    fn wizer_initialize() {
        primes();
        // The snapshot must not claim the serving instance built the table.
        BUILT_HERE.store(false, Ordering::Relaxed);
    }
}

impl Handler for HeavyInit {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let primes = primes();
        let built_here = if BUILT_HERE.load(Ordering::Relaxed) {
            "yes"
        } else {
            "no"
        };
        let text = format!(
            "primes below {LIMIT}: {}, largest {}\nbuilt-here: {built_here}\n",
            primes.len(),
            primes.last().copied().unwrap_or(0),
        );
        respond_text(out, &text);
    }
}

fn main() {}
