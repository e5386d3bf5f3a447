//! A wasi:cli command (0.3.0) for `berth run`: `p3-run AUTHORITY PATH` GETs
//! `http://AUTHORITY/PATH` through `wasi:http/client@0.3.0`, prints the
//! status and body and exits 0; any failure prints the error and `run`
//! returns `err` (exit 1).

wit_bindgen::generate!({
    inline: "
        package berth:p3-run;
        world p3-run {
            include wasi:cli/command@0.3.0;
            import wasi:http/client@0.3.0;
        }
    ",
    path: "../../wit/p3",
    world: "berth:p3-run/p3-run",
    generate_all,
});

use exports::wasi::cli::run::Guest;
use wasi::http::client;
use wasi::http::types::{Fields, Request, Scheme};

struct Run;

export!(Run);

impl Guest for Run {
    async fn run() -> Result<(), ()> {
        let args = wasi::cli::environment::get_arguments();
        let (Some(authority), Some(path)) = (args.get(1), args.get(2)) else {
            println!("usage: p3-run AUTHORITY PATH");
            return Err(());
        };
        let (_, trailers) = wit_future::new(|| Ok(None));
        let (request, _sent) = Request::new(Fields::new(), None, trailers, None);
        request.set_scheme(Some(&Scheme::Http)).unwrap();
        request.set_authority(Some(authority)).unwrap();
        request.set_path_with_query(Some(path)).unwrap();
        let response = match client::send(request).await {
            Ok(response) => response,
            Err(code) => {
                println!("error={code:?}");
                return Err(());
            }
        };
        let status = response.get_status_code();
        let (_, result) = wit_future::new(|| Ok(()));
        let (body, _trailers) = wasi::http::types::Response::consume_body(response, result);
        let text = body.collect().await;
        println!("status={status}");
        println!("body={}", String::from_utf8_lossy(&text).trim_end());
        Ok(())
    }
}

fn main() {}
