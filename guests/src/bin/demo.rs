//! berth's built-in demo: a small page describing the request it received.

use berth_guests::{method_name, respond};
use wasip2::http::types::{IncomingRequest, ResponseOutparam, Scheme};

wasip2::http::proxy::export!(Demo);

struct Demo;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl wasip2::exports::http::incoming_handler::Guest for Demo {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let scheme = match request.scheme() {
            Some(Scheme::Http) => "http".to_string(),
            Some(Scheme::Https) => "https".to_string(),
            Some(Scheme::Other(s)) => s,
            None => "(none)".to_string(),
        };
        let mut rows = String::new();
        for (name, value) in request.headers().entries() {
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td></tr>\n",
                escape(&name),
                escape(&String::from_utf8_lossy(&value))
            ));
        }
        let page = format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>berth demo</title></head>\n\
             <body>\n<h1>berth is serving a wasi:http component</h1>\n\
             <p>This page was produced by berth's built-in demo component. \
             Serve your own with <code>berth serve app.wasm</code>.</p>\n\
             <h2>The request you sent</h2>\n<ul>\n\
             <li>method: <code>{}</code></li>\n<li>scheme: <code>{}</code></li>\n\
             <li>authority: <code>{}</code></li>\n<li>path with query: <code>{}</code></li>\n</ul>\n\
             <h2>Headers</h2>\n<table>\n{}</table>\n</body></html>\n",
            escape(&method_name(&request.method())),
            escape(&scheme),
            escape(&request.authority().unwrap_or_default()),
            escape(&request.path_with_query().unwrap_or_default()),
            rows
        );
        respond(out, 200, &[("content-type", "text/html; charset=utf-8")], page.as_bytes());
    }
}

fn main() {}
