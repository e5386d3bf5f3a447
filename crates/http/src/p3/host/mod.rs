//! Host implementations of the `wasi:http@0.3.0` interfaces, one file per
//! WIT interface.

mod client;
pub(crate) mod handler;
mod types;
