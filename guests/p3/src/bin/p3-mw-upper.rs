//! wasi:http@0.3.0 middleware: upper-cases (ASCII) the response body as it
//! streams through, appends `upper` to `x-middleware`, and forwards the
//! trailers once the body has ended.

wit_bindgen::generate!({
    path: "../../wit/p3",
    world: "wasi:http/middleware@0.3.0",
    generate_all,
});

use exports::wasi::http::handler::Guest;
use wasi::http::handler;
use wasi::http::types::{ErrorCode, Request, Response};
use wit_bindgen::StreamResult;

struct UpperMiddleware;

export!(UpperMiddleware);

impl Guest for UpperMiddleware {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let response = handler::handle(request).await?;
        let status = response.get_status_code();
        let headers = response.get_headers().clone();
        let _ = headers.delete("content-length");
        headers
            .append("x-middleware", b"upper")
            .map_err(|e| ErrorCode::InternalError(Some(format!("{e:?}"))))?;
        let (_, result) = wit_future::new(|| Ok(()));
        let (mut body, trailers) = Response::consume_body(response, result);
        let (mut tx, rx) = wit_stream::new();
        let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
        wit_bindgen::spawn_local(async move {
            loop {
                let (status, mut chunk) = body.read(Vec::with_capacity(64 * 1024)).await;
                chunk.make_ascii_uppercase();
                if !chunk.is_empty() && !tx.write_all(chunk).await.is_empty() {
                    return;
                }
                if let StreamResult::Dropped = status {
                    break;
                }
            }
            drop(tx);
            let _ = trailers_tx.write(trailers.await).await;
        });
        let (out, _sent) = Response::new(headers, Some(rx), trailers_rx);
        out.set_status_code(status).unwrap();
        Ok(out)
    }
}

fn main() {}
