//! Raw HTTP/1.1 bytes into berth's own front-end.
//!
//! One server (berth's `ServeHandle`, the CLI's defaults, the suite guest
//! with short CPU and wall limits) runs for the whole fuzzing session on a
//! loopback port. Each input is written on a fresh connection, the write
//! side is closed, and everything the server sends is read back. Oracle:
//! no panic anywhere in the process (libFuzzer's hook aborts on one, in any
//! thread), the connection ends within a bound, and every byte the server
//! sent is a sequence of well-formed HTTP/1.x responses: a status line and
//! headers that parse, a status in 100–599, and a body framed by
//! `Content-Length` or chunked encoding.

#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use berth::{RuntimeConfig, ServeHandle, ServerConfig, WasiHttpService};
use libfuzzer_sys::fuzz_target;

const SUITE: &[u8] = include_bytes!("../../guests/prebuilt/suite.wasm");

/// Longest one connection may take, from the last byte sent to the close.
/// The guest's wall limit plus slack; past it the server hangs.
const CONNECTION_BOUND: Duration = Duration::from_secs(10);

fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                let config = RuntimeConfig {
                    cpu_time_limit: Duration::from_millis(50),
                    wall_time_limit: Duration::from_secs(2),
                    ..RuntimeConfig::default()
                };
                let runtime =
                    berth::Runtime::new(config, SUITE, "suite.wasm").expect("suite loads");
                let service =
                    WasiHttpService::new(runtime, "127.0.0.1:0".parse().expect("authority"));
                let server_config = ServerConfig {
                    header_read_timeout: Duration::from_secs(2),
                    ..ServerConfig::default()
                };
                let handle =
                    ServeHandle::bind("127.0.0.1:0".parse().expect("addr"), service, server_config)
                        .await
                        .expect("bind");
                tx.send(handle.local_addr().expect("bound"))
                    .expect("send addr");
                std::future::pending::<()>().await;
            });
        });
        rx.recv().expect("server started")
    })
}

/// The methods of the requests at the start of `input`, as far as they can
/// be told apart (requests without a body, or with a `Content-Length`).
fn request_methods(mut input: &[u8]) -> Vec<String> {
    let mut methods = Vec::new();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut request = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(n)) = request.parse(input) else {
            return methods;
        };
        let Some(method) = request.method else {
            return methods;
        };
        methods.push(method.to_owned());
        let mut length = 0usize;
        for h in request.headers.iter() {
            if h.name.eq_ignore_ascii_case("transfer-encoding") {
                return methods;
            }
            if h.name.eq_ignore_ascii_case("content-length") {
                match std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                {
                    Some(l) => length = l,
                    None => return methods,
                }
            }
        }
        let Some(rest) = input.get(n + length..) else {
            return methods;
        };
        input = rest;
    }
}

/// Checks that `out` is a sequence of HTTP/1.x responses with heads that
/// parse and bodies framed as their headers say, for the requests that can
/// be told apart in `input` (the last body may be cut short: the server
/// closes mid-body on errors after the head).
fn well_formed(mut out: &[u8], input: &[u8]) {
    let methods = request_methods(input);
    let mut index = 0;
    while !out.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(out) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => panic!(
                "a response head cut short: {:?}\ninput: {:?}",
                String::from_utf8_lossy(out),
                String::from_utf8_lossy(input)
            ),
            Err(e) => panic!(
                "a malformed response ({e}): {:?}\ninput: {:?}",
                String::from_utf8_lossy(out),
                String::from_utf8_lossy(input)
            ),
        };
        let status = response.code.expect("complete heads have a code");
        assert!((100..=599).contains(&status), "status {status}");
        let header = |name: &str| {
            response
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
                .collect::<Vec<_>>()
        };
        let lengths = header("content-length");
        let chunked = header("transfer-encoding")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("chunked"));
        assert!(lengths.len() <= 1, "several Content-Length headers");
        assert!(
            !(chunked && !lengths.is_empty()),
            "both Content-Length and chunked"
        );
        out = &out[head_len..];
        if (100..200).contains(&status) {
            continue;
        }
        // Which request this answers: beyond those told apart, stop (an
        // error response to garbage closes the connection anyway).
        let Some(method) = methods.get(index) else {
            return;
        };
        index += 1;
        if status == 204 || status == 304 || method == "HEAD" {
            continue;
        }
        if let Some(len) = lengths.first() {
            let len: usize = len.trim().parse().expect("a numeric Content-Length");
            if out.len() < len {
                return; // aborted mid-body
            }
            out = &out[len..];
        } else if chunked {
            loop {
                let Some(end) = out.windows(2).position(|w| w == b"\r\n") else {
                    return;
                };
                let size = std::str::from_utf8(&out[..end]).expect("chunk size line");
                let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                    .expect("hex chunk size");
                out = &out[end + 2..];
                if size == 0 {
                    // The blank line at once, or trailers and then it.
                    let end = if out.starts_with(b"\r\n") {
                        Some(2)
                    } else {
                        out.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
                    };
                    let Some(end) = end else {
                        return;
                    };
                    out = &out[end..];
                    break;
                }
                if out.len() < size + 2 {
                    return;
                }
                assert_eq!(&out[size..size + 2], b"\r\n", "chunk not followed by CRLF");
                out = &out[size + 2..];
            }
        } else {
            // Close-delimited: the rest is the body.
            return;
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let addr = server();
    let Ok(mut stream) = TcpStream::connect(addr) else {
        panic!("the server stopped accepting")
    };
    stream
        .set_read_timeout(Some(CONNECTION_BOUND))
        .expect("timeout");
    // The server may answer and close before reading everything.
    let _ = stream.write_all(input);
    let _ = stream.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    match stream.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "the connection did not end within {CONNECTION_BOUND:?} ({e}); input: {:?}",
            String::from_utf8_lossy(input)
        ),
    }
    // The HTTP/2 connection preface switches the connection to HTTP/2:
    // its replies are frames, checked only for not crashing the server.
    if !input.starts_with(b"PRI * HTTP/2.0") {
        well_formed(&out, input);
    }
});
