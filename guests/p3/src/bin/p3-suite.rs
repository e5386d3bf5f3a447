//! wasi:http@0.3.0 test service; the path picks the behaviour:
//!
//! * `/echo`: streams the request body back as it arrives, and the request
//!   trailers back as response trailers (declared if the request declared
//!   them); `x-echo-method` names the method.
//! * `/echo-direct`: returns the request's body stream and trailers future
//!   as the response's, untouched.
//! * `/client`: sends the request (method, body, trailers) on to the URL in
//!   `x-upstream` through `wasi:http/client`, and returns the upstream's
//!   response as its own (streamed). A URL without a path is sent with
//!   `set-path-with-query(some(""))`.
//! * `/fan?n=N`: sends N GETs, one after the other, to the authority in
//!   `x-upstream`, logging a line (with `x-tag`) before and after; answers
//!   `ok/N` and the error codes of the others.
//! * `/trap-mid`: starts a body, waits 200 ms, then traps while writing it.
//! * `/never`: starts a body and never finishes it (nor its trailers).
//! * `/hang`: never answers (waits for a future nobody completes).
//! * `/loop-after`: responds, then loops forever (post-return work).
//! * `/fields`: exercises fields, request-options, status and transmission
//!   futures, and reports each result on a line.
//! * `/stream-flood`: creates streams and futures forever, never dropping
//!   them (host memory must stay bounded).
//! * `/error`: returns `HTTP-request-denied` instead of a response.
//! * `/headers`: reports request headers it sees (`x-*` only), scheme and
//!   authority.
//! * `/trickle?chunks=N&every_ms=M&size=S`: a streaming answer, one chunk
//!   of S bytes (default 64) every M ms (default 1000), N chunks (default
//!   30); `content-length` is declared.
//! * anything else: a fixed hello.

wit_bindgen::generate!({
    path: "../../wit/p3",
    world: "wasi:http/service@0.3.0",
    generate_all,
});

use exports::wasi::http::handler::Guest;
use wasi::http::client;
use wasi::http::types::{ErrorCode, Fields, Request, Response, Scheme, Trailers};
use wit_bindgen::{FutureReader, StreamReader, StreamResult};

struct Suite;

export!(Suite);

type TrailersFuture = FutureReader<Result<Option<Trailers>, ErrorCode>>;

/// The number `name=N` in a query string, if present.
fn query_number(query: &str, name: &str) -> Option<u64> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

fn text_response(status: u16, text: String) -> Response {
    let headers = Fields::from_list(&[("content-type".into(), b"text/plain".to_vec())]).unwrap();
    let (mut tx, rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(headers, Some(rx), trailers_rx);
    response.set_status_code(status).unwrap();
    wit_bindgen::spawn_local(async move {
        tx.write_all(text.into_bytes()).await;
        drop(tx);
        let _ = trailers_tx.write(Ok(None)).await;
    });
    response
}

/// Copies `body` into a new stream as it arrives, then forwards `trailers`.
fn relay(mut body: StreamReader<u8>, trailers: TrailersFuture) -> (StreamReader<u8>, TrailersFuture) {
    let (mut tx, rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    wit_bindgen::spawn_local(async move {
        loop {
            let (result, chunk) = body.read(Vec::with_capacity(64 * 1024)).await;
            if !chunk.is_empty() && !tx.write_all(chunk).await.is_empty() {
                return; // the reader went away
            }
            if let StreamResult::Dropped = result {
                break;
            }
        }
        drop(tx);
        let _ = trailers_tx.write(trailers.await).await;
    });
    (rx, trailers_rx)
}

impl Guest for Suite {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path = request.get_path_with_query().unwrap_or_default();
        match path.split('?').next().unwrap_or("") {
            "/echo" => {
                let method = format!("{:?}", request.get_method());
                // Declare the trailers the client announced, so HTTP/1.1 can
                // carry them back.
                let declared = request.get_headers().get("trailer");
                let (_, result) = wit_future::new(|| Ok(()));
                let (body, trailers) = Request::consume_body(request, result);
                let (contents, trailers) = relay(body, trailers);
                let headers = Fields::from_list(&[("x-echo-method".into(), method.into_bytes())])
                    .unwrap();
                for value in declared {
                    headers.append("trailer", &value).unwrap();
                }
                let (response, _sent) = Response::new(headers, Some(contents), trailers);
                Ok(response)
            }
            "/echo-direct" => {
                // The request's own body stream and trailers future become
                // the response's: host-to-host, the guest never touches them.
                let (_, result) = wit_future::new(|| Ok(()));
                let (body, trailers) = Request::consume_body(request, result);
                let (response, _sent) = Response::new(Fields::new(), Some(body), trailers);
                Ok(response)
            }
            "/client" => {
                let upstream = request.get_headers().get("x-upstream");
                let Some(url) = upstream.first().and_then(|u| String::from_utf8(u.clone()).ok())
                else {
                    return Ok(text_response(400, "x-upstream missing\n".into()));
                };
                let (scheme, rest) = url.split_once("://").unwrap_or(("http", &url));
                // No path in the URL: `some("")`, which the host sends as
                // `/` (WebAssembly/WASI#780).
                let (authority, path) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, ""),
                };
                let method = request.get_method();
                let (_, result) = wit_future::new(|| Ok(()));
                let (body, trailers) = Request::consume_body(request, result);
                let (outgoing, _sent) =
                    Request::new(Fields::new(), Some(body), trailers, None);
                outgoing.set_method(&method).unwrap();
                let scheme = if scheme == "https" { Scheme::Https } else { Scheme::Http };
                outgoing.set_scheme(Some(&scheme)).unwrap();
                outgoing.set_authority(Some(authority)).unwrap();
                outgoing.set_path_with_query(Some(path)).unwrap();
                client::send(outgoing).await
            }
            "/fan" => {
                let headers = request.get_headers();
                let header = |name: &str| {
                    headers
                        .get(name)
                        .first()
                        .and_then(|value| String::from_utf8(value.clone()).ok())
                };
                let tag = header("x-tag").unwrap_or_default();
                let Some(authority) = header("x-upstream") else {
                    return Ok(text_response(400, "x-upstream missing\n".into()));
                };
                let n: usize = path
                    .split_once("?n=")
                    .and_then(|(_, n)| n.parse().ok())
                    .unwrap_or(10);
                println!("fan {tag} start");
                let (mut ok, mut failed) = (0, Vec::new());
                for _ in 0..n {
                    let (_, trailers) = wit_future::new(|| Ok(None));
                    let (outgoing, _sent) = Request::new(Fields::new(), None, trailers, None);
                    outgoing.set_scheme(Some(&Scheme::Http)).unwrap();
                    outgoing.set_authority(Some(&authority)).unwrap();
                    outgoing.set_path_with_query(Some("/")).unwrap();
                    match client::send(outgoing).await {
                        Ok(response) => {
                            drop(response);
                            ok += 1;
                        }
                        Err(code) => failed.push(format!("{code:?}")),
                    }
                }
                println!("fan {tag} done {ok}/{n}");
                Ok(text_response(200, format!("{ok}/{n} {failed:?}\n")))
            }
            "/trap-mid" => {
                let (mut tx, rx) = wit_stream::new();
                let (_trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
                let (response, _sent) = Response::new(Fields::new(), Some(rx), trailers_rx);
                wit_bindgen::spawn_local(async move {
                    tx.write_all(b"partial body, then a trap".to_vec()).await;
                    // Long enough for the host to have sent the head and
                    // these bytes: the trap then cuts a response under way.
                    wasi::clocks::monotonic_clock::wait_for(200_000_000).await;
                    panic!("trap in the middle of the body");
                });
                Ok(response)
            }
            "/hang" => {
                let (never_tx, never_rx) = wit_future::new::<Result<(), ErrorCode>>(|| Ok(()));
                let _ = never_rx.await;
                drop(never_tx);
                Ok(text_response(200, "unreachable\n".into()))
            }
            "/never" => {
                let (mut tx, rx) = wit_stream::new();
                let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
                let (response, _sent) = Response::new(Fields::new(), Some(rx), trailers_rx);
                wit_bindgen::spawn_local(async move {
                    tx.write_all(b"a body that never ends".to_vec()).await;
                    // Hold both ends open forever.
                    let (never_tx, never_rx) =
                        wit_future::new::<Result<(), ErrorCode>>(|| Ok(()));
                    let _ = never_rx.await;
                    drop(never_tx);
                    drop((tx, trailers_tx));
                });
                Ok(response)
            }
            "/loop-after" => {
                let (mut tx, rx) = wit_stream::new();
                let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
                let (response, _sent) = Response::new(Fields::new(), Some(rx), trailers_rx);
                wit_bindgen::spawn_local(async move {
                    tx.write_all(b"responded; now looping\n".to_vec()).await;
                    drop(tx);
                    let _ = trailers_tx.write(Ok(None)).await;
                    // Post-return work that never ends: the CPU limit stops it.
                    let mut n: u64 = 0;
                    loop {
                        n = std::hint::black_box(n.wrapping_add(1));
                    }
                });
                Ok(response)
            }
            "/fields" => Ok(text_response(200, fields_report().await)),
            "/stream-flood" => {
                // Creates streams and futures and never drops them.
                loop {
                    let (tx, rx) = wit_stream::new::<u8>();
                    std::mem::forget((tx, rx));
                    let (tx, rx) = wit_future::new::<Result<(), ErrorCode>>(|| Ok(()));
                    std::mem::forget((tx, rx));
                }
            }
            "/error" => Err(ErrorCode::HttpRequestDenied),
            "/headers" => {
                let mut text = String::new();
                text += &format!("scheme: {:?}\n", request.get_scheme());
                text += &format!("authority: {:?}\n", request.get_authority());
                for (name, value) in request.get_headers().copy_all() {
                    if name.starts_with("x-") {
                        text += &format!("{name}: {}\n", String::from_utf8_lossy(&value));
                    }
                }
                Ok(text_response(200, text))
            }
            "/trickle" => {
                let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
                let chunks = query_number(query, "chunks").unwrap_or(30);
                let every_ms = query_number(query, "every_ms").unwrap_or(1000);
                let size = query_number(query, "size").unwrap_or(64).min(1 << 20);
                let length = (chunks * size).to_string();
                let headers = Fields::from_list(&[("content-length".into(), length.into_bytes())])
                    .unwrap();
                let (mut tx, rx) = wit_stream::new();
                let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
                let (response, _sent) = Response::new(headers, Some(rx), trailers_rx);
                wit_bindgen::spawn_local(async move {
                    for i in 0..chunks {
                        if i > 0 {
                            wasi::clocks::monotonic_clock::wait_for(every_ms * 1_000_000).await;
                        }
                        if !tx.write_all(vec![b'.'; size as usize]).await.is_empty() {
                            return; // the client went away
                        }
                    }
                    drop(tx);
                    let _ = trailers_tx.write(Ok(None)).await;
                });
                Ok(response)
            }
            _ => Ok(text_response(200, "Hello from the wasi:http@0.3.0 suite\n".into())),
        }
    }
}

/// One line per check: what was called and what the host answered.
async fn fields_report() -> String {
    use wasi::http::types::RequestOptions;
    let mut out = String::new();
    let mut line = |label: &str, value: String| out += &format!("{label}: {value}\n");

    line("forbidden", format!("{:?}", Fields::from_list(&[("connection".into(), b"x".to_vec())]).err()));
    line("bad-name", format!("{:?}", Fields::from_list(&[("a b".into(), b"x".to_vec())]).err()));
    let big = Fields::new();
    let mut result = Ok(());
    for i in 0..10_000 {
        result = big.append(&format!("x-{i}"), &[b'v'; 64]);
        if result.is_err() {
            break;
        }
    }
    line("size", format!("{result:?}"));
    let fields = Fields::from_list(&[("x-a".into(), b"1".to_vec())]).unwrap();
    line("get-and-delete", format!("{:?}", fields.get_and_delete("x-a")));
    line("has-after", format!("{}", fields.has("x-a")));

    let headers = Fields::from_list(&[("x-h".into(), b"1".to_vec())]).unwrap();
    let options = RequestOptions::new();
    line("set-timeout", format!("{:?}", options.set_connect_timeout(Some(1_000_000))));
    let (_, trailers) = wit_future::new(|| Ok(None));
    let (request, sent) = Request::new(headers, None, trailers, Some(options));
    line("request-headers-immutable", format!("{:?}", request.get_headers().set("x-h", &[b"2".to_vec()])));
    let view = request.get_options().expect("options attached");
    line("options-kept", format!("{:?}", view.get_connect_timeout()));
    line("options-immutable", format!("{:?}", view.set_connect_timeout(None)));
    line("bad-path", format!("{:?}", request.set_path_with_query(Some("/a b"))));
    line("relative-path", format!("{:?} {:?}", request.set_path_with_query(Some("no-slash")), request.get_path_with_query()));
    line("empty-path", format!("{:?} {:?}", request.set_path_with_query(Some("")), request.get_path_with_query()));
    line("bad-authority", format!("{:?}", request.set_authority(Some("a b"))));
    drop(view);
    drop(request);
    line("dropped-unsent", format!("{:?}", sent.await));

    let response = text_response(200, String::new());
    line("status-99", format!("{:?}", response.set_status_code(99)));
    line("status-600", format!("{:?}", response.set_status_code(600)));
    line("status-kept", format!("{}", response.get_status_code()));
    out
}

fn main() {}
