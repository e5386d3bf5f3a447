//! The built-in demo component, served when no COMPONENT is given.
//!
//! Built from `guests/src/bin/demo.rs` by `scripts/build-guests.sh`; the
//! prebuilt file is committed so the binary builds without the wasm target.

/// The demo component's bytes.
pub(crate) const DEMO_COMPONENT: &[u8] = include_bytes!("../../../guests/prebuilt/demo.wasm");
