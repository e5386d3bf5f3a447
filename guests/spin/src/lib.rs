//! A Spin SDK HTTP service: answers with the path and the headers it was
//! shown (`name=value`, comma separated).

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

#[http_service]
async fn hello(request: Request) -> impl IntoResponse {
    let mut names: Vec<String> = request
        .headers()
        .iter()
        .map(|(name, value)| format!("{name}={}", value.to_str().unwrap_or("?")))
        .collect();
    names.sort();
    format!("spin saw {} [{}]\n", request.uri().path(), names.join(","))
}
