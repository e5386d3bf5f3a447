//! A wasi:http@0.3.0 service that imports `wasi:config/store`: answers with
//! the value of `greeting` and every key it sees.

wit_bindgen::generate!({
    inline: "
        package berth:p3-config;
        world p3-config {
            include wasi:http/service@0.3.0;
            import wasi:config/store@0.2.0-rc.1;
        }
    ",
    path: ["../../wit/p3", "../../wit/config/deps/config"],
    world: "berth:p3-config/p3-config",
    generate_all,
});

use exports::wasi::http::handler::Guest;
use wasi::config::store;
use wasi::http::types::{ErrorCode, Fields, Request, Response};

struct Config;

export!(Config);

impl Guest for Config {
    async fn handle(_request: Request) -> Result<Response, ErrorCode> {
        let greeting = store::get("greeting").map_err(|e| internal(&e))?;
        let keys: Vec<String> = store::get_all()
            .map_err(|e| internal(&e))?
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let text = format!("greeting={greeting:?}\nall={}\n", keys.join(","));
        let (mut tx, rx) = wit_stream::new();
        let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
        let (response, _sent) = Response::new(Fields::new(), Some(rx), trailers_rx);
        wit_bindgen::spawn_local(async move {
            tx.write_all(text.into_bytes()).await;
            drop(tx);
            let _ = trailers_tx.write(Ok(None)).await;
        });
        Ok(response)
    }
}

fn internal(err: &store::Error) -> ErrorCode {
    ErrorCode::InternalError(Some(format!("{err:?}")))
}

fn main() {}
