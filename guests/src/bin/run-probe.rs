//! A wasi:cli command (0.2) for `berth run`; the first argument picks what
//! it does:
//!
//! * `env CODE`: prints its arguments and `GREETING`, exits with `CODE`.
//! * `fs`: reads `/data/in.txt` and writes it upper-cased to
//!   `/data/out.txt` (needs `--dir HOST::/data`).
//! * `stdin`: copies stdin to stdout.
//! * `http AUTHORITY PATH`: GETs `http://AUTHORITY/PATH` through
//!   `wasi:http/outgoing-handler`; prints the status and body, or the error
//!   code (exit 3).
//! * `trap`: panics.

use std::io::{Read, Write};

use berth_guests::read_to_end;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, OutgoingRequest, Scheme};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("env") => {
            println!("args={:?}", &args[1..]);
            println!("GREETING={:?}", std::env::var("GREETING").ok());
            let code = args.get(2).and_then(|c| c.parse().ok()).unwrap_or(0);
            std::process::exit(code);
        }
        Some("fs") => {
            let text = std::fs::read_to_string("/data/in.txt").expect("read /data/in.txt");
            std::fs::write("/data/out.txt", text.to_uppercase()).expect("write /data/out.txt");
            println!("copied {} bytes", text.len());
        }
        Some("stdin") => {
            let mut input = Vec::new();
            std::io::stdin().read_to_end(&mut input).expect("read stdin");
            std::io::stdout().write_all(&input).expect("write stdout");
        }
        Some("http") => {
            let req = OutgoingRequest::new(Fields::new());
            req.set_scheme(Some(&Scheme::Http)).unwrap();
            req.set_authority(args.get(2).map(String::as_str)).unwrap();
            req.set_path_with_query(args.get(3).map(String::as_str)).unwrap();
            let future = match outgoing_handler::handle(req, None) {
                Ok(future) => future,
                Err(code) => {
                    println!("error={code:?}");
                    std::process::exit(3);
                }
            };
            future.subscribe().block();
            match future.get() {
                Some(Ok(Ok(response))) => {
                    let body = response.consume().unwrap();
                    let text = read_to_end(&body.stream().unwrap());
                    println!("status={}", response.status());
                    println!("body={}", String::from_utf8_lossy(&text).trim_end());
                }
                Some(Ok(Err(code))) => {
                    println!("error={code:?}");
                    std::process::exit(3);
                }
                other => panic!("unexpected future state: {other:?}"),
            }
        }
        Some("trap") => panic!("run-probe traps on purpose"),
        other => {
            eprintln!("unknown mode {other:?}");
            std::process::exit(2);
        }
    }
}
