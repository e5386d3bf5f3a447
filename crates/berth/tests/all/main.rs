//! berth's integration tests: real components (prebuilt from guests/) served
//! over real loopback sockets, driven by real HTTP/1.1 and HTTP/2 clients.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test on unexpected errors"
)]

mod compat;
mod failures;
mod h2_abuse;
mod hardening;
mod interop;
mod library;
mod outbound;
mod p3;
mod platform;
mod preinit;
mod serving;
mod support;
mod tls;
