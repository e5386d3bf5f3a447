//! berth's integration tests: real components (prebuilt from guests/) served
//! over real loopback sockets, driven by real HTTP/1.1 and HTTP/2 clients.

mod failures;
mod hardening;
mod serving;
mod support;
