//! A plain `wasi:cli` command component (no wasi:http export): berth must
//! refuse it with a clear error.

fn main() {
    println!("I am a command, not an HTTP handler");
}
