//! wasi:http@0.3.0 hello: answers every request with a fixed text body.

wit_bindgen::generate!({
    path: "../../wit/p3",
    world: "wasi:http/service@0.3.0",
    generate_all,
});

use exports::wasi::http::handler::Guest;
use wasi::http::types::{ErrorCode, Fields, Request, Response};

struct Hello;

export!(Hello);

impl Guest for Hello {
    async fn handle(_request: Request) -> Result<Response, ErrorCode> {
        let headers = Fields::from_list(&[("content-type".into(), b"text/plain".to_vec())])
            .map_err(|_| ErrorCode::InternalError(None))?;
        let (mut body_tx, body_rx) = wit_stream::new();
        let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
        let (response, _sent) = Response::new(headers, Some(body_rx), trailers_rx);
        wit_bindgen::spawn_local(async move {
            body_tx.write_all(b"Hello from a wasi:http@0.3.0 component\n".to_vec()).await;
            drop(body_tx);
            let _ = trailers_tx.write(Ok(None)).await;
        });
        Ok(response)
    }
}

fn main() {}
