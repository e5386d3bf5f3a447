//! wasi:http@0.3.0 middleware: adds `x-through: header` to the request and
//! appends `header` to the response's `x-middleware`, passing bodies and
//! trailers through untouched (as streams).

wit_bindgen::generate!({
    path: "../../wit/p3",
    world: "wasi:http/middleware@0.3.0",
    generate_all,
});

use exports::wasi::http::handler::Guest;
use wasi::http::handler;
use wasi::http::types::{ErrorCode, Request, Response};

struct HeaderMiddleware;

export!(HeaderMiddleware);

impl Guest for HeaderMiddleware {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let headers = request.get_headers().clone();
        headers
            .append("x-through", b"header")
            .map_err(|e| ErrorCode::InternalError(Some(format!("{e:?}"))))?;
        let method = request.get_method();
        let scheme = request.get_scheme();
        let authority = request.get_authority();
        let path = request.get_path_with_query();
        let (_, result) = wit_future::new(|| Ok(()));
        let (body, trailers) = Request::consume_body(request, result);
        let (forwarded, _sent) = Request::new(headers, Some(body), trailers, None);
        forwarded.set_method(&method).unwrap();
        forwarded.set_scheme(scheme.as_ref()).unwrap();
        forwarded.set_authority(authority.as_deref()).unwrap();
        forwarded.set_path_with_query(path.as_deref()).unwrap();

        let response = handler::handle(forwarded).await?;
        let status = response.get_status_code();
        let headers = response.get_headers().clone();
        headers
            .append("x-middleware", b"header")
            .map_err(|e| ErrorCode::InternalError(Some(format!("{e:?}"))))?;
        let (_, result) = wit_future::new(|| Ok(()));
        let (body, trailers) = Response::consume_body(response, result);
        let (out, _sent) = Response::new(headers, Some(body), trailers);
        out.set_status_code(status).unwrap();
        Ok(out)
    }
}

fn main() {}
