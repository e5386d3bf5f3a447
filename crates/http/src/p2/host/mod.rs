//! `Host` trait impls for the `wasi:http@0.2` interfaces, one file each.

mod outgoing_handler;
mod types;
