//! A waki handler: answers with the path and the headers it was shown
//! (`name=value`, comma separated), so tests see exactly what the guest saw.

use waki::{ErrorCode, Request, Response, handler};

#[handler]
fn hello(request: Request) -> Result<Response, ErrorCode> {
    let mut names: Vec<String> = request
        .headers()
        .iter()
        .map(|(name, value)| format!("{name}={}", value.to_str().unwrap_or("?")))
        .collect();
    names.sort();
    let text = format!("waki saw {} [{}]\n", request.path(), names.join(","));
    Response::builder().body(text.into_bytes()).build()
}
