//! Bindings shared by the pre-initialisation guests (`src/bin/*`): the
//! wasi:http@0.2 proxy world plus a `wizer-initialize` export, and a helper
//! that answers with a text body.

/// Generated bindings; `export!(T with_types_in berth_guest_heavy_init::bindings)`
/// exports a guest.
pub mod bindings {
    wit_bindgen::generate!({
        path: ["../../wit/p2", "wit"],
        world: "berth:guests/heavy-init",
        generate_all,
        pub_export_macro: true,
    });
}

use bindings::wasi::http::types::{Fields, OutgoingBody, OutgoingResponse, ResponseOutparam};

/// Answers 200 with `text` as a text/plain body.
pub fn respond_text(out: ResponseOutparam, text: &str) {
    let headers = Fields::new();
    let _ = headers.set("content-type", &[b"text/plain".to_vec()]);
    let response = OutgoingResponse::new(headers);
    let body = response.body().expect("a new response has a body");
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().expect("a new body has a stream");
    let _ = stream.blocking_write_and_flush(text.as_bytes());
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}
