//! The built-in demo component: a `wasi:http@0.2` handler that answers
//! every request with a page describing it. The CLI serves it when given no
//! component; the examples use it the same way.
//!
//! Built from `guests/src/bin/demo.rs` by `scripts/build-guests.sh`; the
//! prebuilt file is committed so that berth builds without the wasm target.

/// The demo component's bytes.
pub const COMPONENT: &[u8] = include_bytes!("../assets/demo.wasm");
