//! Calls `response-outparam.send-informational` (an @unstable function)
//! and reports what the host answered: berth returns an error, never traps.

wit_bindgen::generate!({
    path: "../../wit/p2",
    world: "wasi:http/proxy@0.2.12",
    features: ["informational-outbound-responses"],
    generate_all,
});

use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Informational;

export!(Informational);

impl exports::wasi::http::incoming_handler::Guest for Informational {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let hints = Fields::from_list(&[("link".into(), b"</style.css>; rel=preload".to_vec())]).unwrap();
        let text = match out.send_informational(103, hints) {
            Ok(()) => "informational sent\n".to_string(),
            Err(code) => format!("informational refused: {code:?}\n"),
        };
        let resp = OutgoingResponse::new(Fields::new());
        let body = resp.body().unwrap();
        ResponseOutparam::set(out, Ok(resp));
        let stream = body.write().unwrap();
        stream.blocking_write_and_flush(text.as_bytes()).unwrap();
        drop(stream);
        OutgoingBody::finish(body, None).unwrap();
    }
}

fn main() {}
