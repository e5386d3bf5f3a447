//! A lone wasi:http@0.3.0 middleware (it imports `handler` and nothing is
//! linked after it), built the way services of the 0.3 release candidates
//! sent requests: it copies every incoming header into a new request (with
//! `fields.from-list`, so a header the host forbids would fail it), adds
//! `x-forwarded-by: p3-forward`, points the request at the authority in the
//! `UPSTREAM` environment variable and hands it to the imported `handler`.
//! The upstream's response is returned as is.

wit_bindgen::generate!({
    path: "../../wit/p3",
    world: "wasi:http/middleware@0.3.0",
    generate_all,
});

use exports::wasi::http::handler::Guest;
use wasi::http::handler;
use wasi::http::types::{ErrorCode, Fields, Request, Response, Scheme};

struct Forward;

export!(Forward);

fn internal(what: &str, err: impl std::fmt::Debug) -> ErrorCode {
    ErrorCode::InternalError(Some(format!("{what}: {err:?}")))
}

impl Guest for Forward {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let upstream = std::env::var("UPSTREAM").map_err(|e| internal("UPSTREAM", e))?;
        let mut entries = request.get_headers().copy_all();
        entries.push(("x-forwarded-by".into(), b"p3-forward".to_vec()));
        let headers = Fields::from_list(&entries).map_err(|e| internal("copying headers", e))?;
        let method = request.get_method();
        let path = request.get_path_with_query();
        let (_, result) = wit_future::new(|| Ok(()));
        let (body, trailers) = Request::consume_body(request, result);
        let (forwarded, _sent) = Request::new(headers, Some(body), trailers, None);
        forwarded.set_method(&method).map_err(|e| internal("method", e))?;
        forwarded.set_scheme(Some(&Scheme::Http)).map_err(|e| internal("scheme", e))?;
        forwarded.set_authority(Some(&upstream)).map_err(|e| internal("authority", e))?;
        forwarded.set_path_with_query(path.as_deref()).map_err(|e| internal("path", e))?;
        handler::handle(forwarded).await
    }
}

fn main() {}
