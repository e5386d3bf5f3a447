//! A start-up function that misbehaves in the way its build asks: a hostile
//! guest for pre-initialisation tests. Built three times by
//! scripts/build-guests.sh with `INIT_BEHAVIOUR` set at compile time:
//! `prints` (opens stdout, a host resource a snapshot cannot keep), `traps`
//! (panics) and `loops` (never returns). Requests answer "ok".

use berth_guest_heavy_init::bindings::exports::wasi::http::incoming_handler::Guest as Handler;
use berth_guest_heavy_init::bindings::wasi::http::types::{IncomingRequest, ResponseOutparam};
use berth_guest_heavy_init::respond_text;

struct Misbehaves;

berth_guest_heavy_init::bindings::export!(Misbehaves with_types_in berth_guest_heavy_init::bindings);

impl berth_guest_heavy_init::bindings::Guest for Misbehaves {
    fn wizer_initialize() {
        match option_env!("INIT_BEHAVIOUR").unwrap_or("prints") {
            "traps" => panic!("start-up failed on purpose"),
            "loops" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            _ => println!("starting up"),
        }
    }
}

impl Handler for Misbehaves {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        respond_text(out, "ok\n");
    }
}

fn main() {}
