//! The test-suite component: one route per behaviour berth's integration
//! tests exercise, including hostile ones (traps, loops, floods).

use berth_guests::{copy, read_to_end, respond, trailers_of, write_all};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, HeaderError, IncomingRequest, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, RequestOptions, ResponseOutparam, Scheme,
};

wasip2::http::proxy::export!(Suite);

struct Suite;

/// `/trickle?chunks=N&every_ms=M&size=S`: one chunk of S bytes (default
/// 64) every M ms (default 1000), N chunks (default 30), `content-length`
/// declared; a long-lived streaming answer.
fn trickle(path: &str, out: ResponseOutparam) {
    let number = |key, default: u64| {
        query_param(path, key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (chunks, every_ms, size) = (number("chunks", 30), number("every_ms", 1000), number("size", 64).min(4096));
    let fields = Fields::new();
    fields.append("content-length", (chunks * size).to_string().as_bytes()).unwrap();
    let resp = OutgoingResponse::new(fields);
    let body = resp.body().unwrap();
    ResponseOutparam::set(out, Ok(resp));
    let stream = body.write().unwrap();
    let chunk = vec![b'.'; size as usize];
    for i in 0..chunks {
        if i > 0 {
            wasip2::clocks::monotonic_clock::subscribe_duration(every_ms * 1_000_000).block();
        }
        if stream.blocking_write_and_flush(&chunk).is_err() {
            return; // the client went away
        }
    }
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}

fn query_param(path: &str, key: &str) -> Option<String> {
    let query = path.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

impl wasip2::exports::http::incoming_handler::Guest for Suite {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        // Route on the first path segment; the rest is free for tests.
        let route = path.split('?').next().unwrap_or("");
        let route = format!("/{}", route.trim_start_matches('/').split('/').next().unwrap_or(""));
        match route.as_str() {
            "/hello" => respond(out, 200, &[("content-type", "text/plain")], b"hello from berth\n"),
            "/info" => info(request, out),
            "/echo" => echo(request, out),
            "/trickle" => trickle(&path, out),
            "/fields" => fields_report(request, out),
            "/fields-flood" => fields_flood(out),
            "/copy-flood" => copy_flood(out),
            "/body-flood" => body_flood(out),
            "/message-flood" => message_flood(out),
            "/trap" => panic!("the suite guest traps on purpose"),
            "/trap-after" => trap_after(out),
            "/loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "/never" => {
                // Blocked in the host: only the wall-clock limit can end this.
                wasip2::clocks::monotonic_clock::subscribe_duration(3_600_000_000_000).block();
                respond(out, 200, &[], b"woke up\n");
            }
            "/sleep" => {
                // Waits in the host (no CPU), then answers: a slow, healthy request.
                let ms: u64 = query_param(&path, "ms").and_then(|m| m.parse().ok()).unwrap_or(100);
                wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                respond(out, 200, &[], b"slept\n");
            }
            "/no-set" => drop(out),
            "/drop-body" => drop_body(out),
            "/set-then-trap" => {
                // As a componentize-js guest that throws: the response is
                // set, then the guest fails before writing any of its body.
                let resp = OutgoingResponse::new(Fields::new());
                let _body = resp.body().unwrap();
                ResponseOutparam::set(out, Ok(resp));
                panic!("the suite guest fails after setting its response");
            }
            "/cl-mismatch" => cl_mismatch(out),
            "/status" => {
                let code: u16 = query_param(&path, "code").and_then(|c| c.parse().ok()).unwrap_or(200);
                let resp = OutgoingResponse::new(Fields::new());
                let accepted = resp.set_status_code(code).is_ok();
                let body = resp.body().unwrap();
                ResponseOutparam::set(out, Ok(resp));
                let s = body.write().unwrap();
                write_all(&s, format!("accepted={accepted}\n").as_bytes());
                drop(s);
                OutgoingBody::finish(body, None).unwrap();
            }
            "/env" => {
                let mut text = String::new();
                for (k, v) in std::env::vars() {
                    text.push_str(&format!("{k}={v}\n"));
                }
                text.push_str(&format!("args={}\n", std::env::args().count()));
                respond(out, 200, &[], text.as_bytes());
            }
            "/stdio" => {
                use std::io::Read;
                println!("line one from the guest");
                print!("partial ");
                println!("line two");
                eprintln!("to stderr \x1b[31m with escape");
                let mut input = Vec::new();
                let n = std::io::stdin().read_to_end(&mut input).unwrap_or(usize::MAX);
                respond(out, 200, &[], format!("stdin={n}\n").as_bytes());
            }
            "/memory" => {
                let mut hog: Vec<Vec<u8>> = Vec::new();
                loop {
                    hog.push(vec![1u8; 16 << 20]);
                }
            }
            "/outgoing" => outgoing(out),
            "/fanout" => fanout(&path, out),
            "/secret" => {
                // Reports what an earlier request left in linear memory, then
                // leaves a secret: instances must never carry it over.
                static SECRET: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let mut heap = vec![0u8; 64 << 10];
                let found = SECRET.swap(0x5ec2e7, std::sync::atomic::Ordering::Relaxed);
                let dirty = heap.iter().filter(|b| **b != 0).count();
                heap.fill(0xAA);
                std::hint::black_box(&heap);
                std::mem::forget(heap);
                respond(out, 200, &[], format!("found={found:#x} dirty={dirty}\n").as_bytes());
            }
            "/outgoing-flood" => {
                // 60 requests in one invocation: the host caps them (50).
                let mut report = std::collections::BTreeMap::<String, u32>::new();
                for _ in 0..60 {
                    let req = OutgoingRequest::new(Fields::new());
                    req.set_scheme(Some(&Scheme::Http)).unwrap();
                    req.set_authority(Some("denied.test")).unwrap();
                    let key = match outgoing_handler::handle(req, None) {
                        Ok(_) => "sent".to_string(),
                        Err(e) => format!("{e:?}"),
                    };
                    *report.entry(key).or_default() += 1;
                }
                let text: String = report.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                respond(out, 200, &[], text.as_bytes());
            }
            "/sandbox" => {
                // No ambient authority: no preopened directories, no sockets.
                let fs = match std::fs::read_dir("/") {
                    Ok(_) => "fs=open".to_string(),
                    Err(e) => format!("fs=denied ({:?})", e.kind()),
                };
                let net = match std::net::TcpStream::connect("127.0.0.1:9") {
                    Ok(_) => "net=open".to_string(),
                    Err(e) => format!("net=denied ({:?})", e.kind()),
                };
                let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| "none".into());
                respond(out, 200, &[], format!("{fs}\n{net}\ncwd={cwd}\n").as_bytes());
            }
            "/recurse" => {
                #[allow(unconditional_recursion, reason = "recurses until the stack overflows")]
                fn deep(n: u64) -> u64 {
                    let pad = std::hint::black_box([n; 64]);
                    deep(n + 1) + pad[3]
                }
                let depth = deep(0);
                respond(out, 200, &[], format!("{depth}").as_bytes());
            }
            "/resources" => {
                // Never dropped: the host's resource-table cap must stop this.
                let mut kept = Vec::new();
                loop {
                    kept.push(Fields::new());
                    if kept.len() == usize::MAX {
                        break;
                    }
                }
                respond(out, 200, &[], b"unreachable\n");
            }
            "/final-1xx" => {
                let resp = OutgoingResponse::new(Fields::new());
                resp.set_status_code(101).unwrap();
                ResponseOutparam::set(out, Ok(resp));
            }
            "/error-code" => ResponseOutparam::set(out, Err(ErrorCode::ConnectionRefused)),
            "/trailers" => {
                let resp = OutgoingResponse::new(Fields::new());
                let body = resp.body().unwrap();
                ResponseOutparam::set(out, Ok(resp));
                let s = body.write().unwrap();
                write_all(&s, b"body before trailers\n");
                drop(s);
                let trailers = Fields::from_list(&[("x-trailer".into(), b"yes".to_vec())]).unwrap();
                OutgoingBody::finish(body, Some(trailers)).unwrap();
            }
            "/large" => {
                let n: usize = query_param(&path, "bytes").and_then(|c| c.parse().ok()).unwrap_or(1 << 20);
                let resp = OutgoingResponse::new(
                    Fields::from_list(&[("content-length".into(), n.to_string().into_bytes())]).unwrap(),
                );
                let body = resp.body().unwrap();
                ResponseOutparam::set(out, Ok(resp));
                let s = body.write().unwrap();
                let chunk = vec![b'x'; 4096];
                let mut left = n;
                while left > 0 {
                    let k = left.min(chunk.len());
                    s.blocking_write_and_flush(&chunk[..k]).unwrap();
                    left -= k;
                }
                drop(s);
                OutgoingBody::finish(body, None).unwrap();
            }
            _ => respond(out, 404, &[], format!("no route {route}\n").as_bytes()),
        }
    }
}

fn scheme_text(s: Option<Scheme>) -> String {
    match s {
        Some(Scheme::Http) => "http".into(),
        Some(Scheme::Https) => "https".into(),
        Some(Scheme::Other(o)) => o,
        None => "none".into(),
    }
}

/// `other:NAME` marks extension methods so tests see how they arrived.
fn method_text(m: Method) -> String {
    match m {
        Method::Other(o) => format!("other:{o}"),
        known => berth_guests::method_name(&known),
    }
}

/// Reports the request as the guest sees it, one `key=value` per line.
fn info(request: IncomingRequest, out: ResponseOutparam) {
    let mut text = format!(
        "method={}\nscheme={}\nauthority={}\npath={}\n",
        method_text(request.method()),
        scheme_text(request.scheme()),
        request.authority().unwrap_or_else(|| "none".into()),
        request.path_with_query().unwrap_or_else(|| "none".into()),
    );
    for (name, value) in request.headers().entries() {
        text.push_str(&format!("header:{name}={}\n", String::from_utf8_lossy(&value)));
    }
    let body = request.consume().unwrap();
    let stream = body.stream().unwrap();
    let bytes = read_to_end(&stream);
    drop(stream);
    let (future, trailers) = trailers_of(body);
    text.push_str(&format!("body-bytes={}\n", bytes.len()));
    text.push_str(&format!("trailers={}\n", trailers.is_some()));
    drop(trailers);
    drop(future);
    respond(out, 200, &[("content-type", "text/plain")], text.as_bytes());
}

/// Streams the request body back; request trailers come back as response
/// trailers. A `trailer` request header is echoed so HTTP/1.1 clients that
/// sent `TE: trailers` get the declared trailers.
fn echo(request: IncomingRequest, out: ResponseOutparam) {
    let headers = Fields::new();
    for (name, value) in request.headers().entries() {
        if name == "content-length" || name == "trailer" || name == "content-type" {
            headers.append(&name, &value).unwrap();
        }
    }
    let resp = OutgoingResponse::new(headers);
    let out_body = resp.body().unwrap();
    ResponseOutparam::set(out, Ok(resp));
    let in_body = request.consume().unwrap();
    let input = in_body.stream().unwrap();
    let output = out_body.write().unwrap();
    copy(&input, &output);
    drop(input);
    drop(output);
    let (future, trailers) = trailers_of(in_body);
    OutgoingBody::finish(out_body, trailers).unwrap();
    drop(future);
}

fn fields_flood(out: ResponseOutparam) {
    let fields = Fields::new();
    for i in 0.. {
        // Each append adds an entry; the host bounds the total.
        if fields.append(&format!("x-flood-{i}"), b"").is_err() {
            break;
        }
    }
    respond(out, 200, &[], b"flood was refused with an error\n");
}

/// Builds 60 KiB header blocks forever, keeping every one: each is a copy
/// in the host, beyond the guest's own memory, which the host must stop at
/// the instance's memory limit.
fn copy_flood(out: ResponseOutparam) {
    let value = vec![b'v'; 60 * 1024];
    let mut copies = Vec::new();
    loop {
        match Fields::from_list(&[("x-big".into(), value.clone())]) {
            Ok(fields) => copies.push(fields),
            Err(err) => {
                let text = format!("refused after {} copies: {err:?}\n", copies.len());
                return respond(out, 200, &[], text.as_bytes());
            }
        }
    }
}

/// Fills body after body that nobody reads: each holds what the host
/// buffers for it (its channel of 64 KiB chunks), all kept alive.
fn body_flood(out: ResponseOutparam) {
    let chunk = vec![b'b'; 64 * 1024];
    let mut kept = Vec::new();
    let mut buffered = 0usize;
    loop {
        let resp = OutgoingResponse::new(Fields::new());
        let body = resp.body().unwrap();
        let stream = body.write().unwrap();
        loop {
            match stream.check_write() {
                Ok(0) => break,
                Ok(n) => {
                    let n = (n as usize).min(chunk.len());
                    if let Err(err) = stream.write(&chunk[..n]) {
                        let text = format!("refused after {buffered} bytes in {} bodies: {err:?}\n", kept.len());
                        // Let go of the hoard first: the answer's own body
                        // needs room in the budget.
                        drop(kept);
                        return respond(out, 200, &[], text.as_bytes());
                    }
                    buffered += n;
                }
                Err(err) => {
                    let text = format!("refused after {buffered} bytes in {} bodies: {err:?}\n", kept.len());
                    drop(kept);
                    return respond(out, 200, &[], text.as_bytes());
                }
            }
        }
        // Children first when dropped: the stream, then its body.
        kept.push((stream, body, resp));
    }
}

/// Moves a 60 KiB header block into message after message, all kept
/// alive: the headers leave the `fields` table entry but not the host.
fn message_flood(out: ResponseOutparam) {
    let value = vec![b'v'; 60 * 1024];
    let mut kept = Vec::new();
    loop {
        let fields = Fields::from_list(&[("x-big".into(), value.clone())]).unwrap();
        kept.push(OutgoingRequest::new(fields));
        if kept.len() == usize::MAX {
            break;
        }
    }
    respond(out, 200, &[], b"unreachable\n");
}

fn trap_after(out: ResponseOutparam) {
    let resp = OutgoingResponse::new(Fields::new());
    let body = resp.body().unwrap();
    ResponseOutparam::set(out, Ok(resp));
    let s = body.write().unwrap();
    write_all(&s, b"the beginning of a body that never ends\n");
    // Long enough for the host to have sent the head and these bytes: the
    // trap then cuts a response already under way.
    wasip2::clocks::monotonic_clock::subscribe_duration(200_000_000).block();
    panic!("trap after the response head was sent");
}

fn drop_body(out: ResponseOutparam) {
    let resp = OutgoingResponse::new(Fields::new());
    let body = resp.body().unwrap();
    ResponseOutparam::set(out, Ok(resp));
    let s = body.write().unwrap();
    write_all(&s, b"unfinished");
    drop(s);
    drop(body);
}

fn cl_mismatch(out: ResponseOutparam) {
    let resp = OutgoingResponse::new(
        Fields::from_list(&[("content-length".into(), b"10".to_vec())]).unwrap(),
    );
    let body = resp.body().unwrap();
    ResponseOutparam::set(out, Ok(resp));
    let s = body.write().unwrap();
    write_all(&s, b"12345");
    drop(s);
    let result = OutgoingBody::finish(body, None);
    // The host reports the mismatch; the response is aborted.
    println!("finish with a short body: {result:?}");
}

fn outgoing(out: ResponseOutparam) {
    let req = OutgoingRequest::new(Fields::new());
    req.set_scheme(Some(&Scheme::Http)).unwrap();
    req.set_authority(Some("127.0.0.1:9")).unwrap();
    req.set_path_with_query(Some("/")).unwrap();
    let text = match outgoing_handler::handle(req, None) {
        Ok(_) => "sent\n".to_string(),
        Err(e) => format!("error={e:?}\n"),
    };
    respond(out, 200, &[], text.as_bytes());
}

/// Sends `n` (query `n`, default 8) GET requests to
/// `http://$UPSTREAM/slow` all at once, waits for every one, and reports
/// how each ended (`200=8`, or error codes).
fn fanout(path: &str, out: ResponseOutparam) {
    let n: usize = query_param(path, "n").and_then(|n| n.parse().ok()).unwrap_or(8);
    let upstream = std::env::var("UPSTREAM").unwrap_or_default();
    let mut report = std::collections::BTreeMap::<String, u32>::new();
    let mut pending = Vec::new();
    for _ in 0..n {
        let req = OutgoingRequest::new(Fields::new());
        req.set_scheme(Some(&Scheme::Http)).unwrap();
        req.set_authority(Some(&upstream)).unwrap();
        req.set_path_with_query(Some("/slow")).unwrap();
        match outgoing_handler::handle(req, None) {
            Ok(future) => pending.push(future),
            Err(e) => *report.entry(format!("{e:?}")).or_default() += 1,
        }
    }
    while !pending.is_empty() {
        let pollables: Vec<_> = pending.iter().map(|f| f.subscribe()).collect();
        let refs: Vec<_> = pollables.iter().collect();
        let ready = wasip2::io::poll::poll(&refs);
        drop(pollables);
        let mut ready: Vec<usize> = ready.into_iter().map(|i| i as usize).collect();
        ready.sort_unstable_by(|a, b| b.cmp(a));
        for index in ready {
            let future = pending.swap_remove(index);
            let key = match future.get() {
                Some(Ok(Ok(response))) => response.status().to_string(),
                Some(Ok(Err(e))) => format!("{e:?}"),
                Some(Err(())) | None => "lost".to_string(),
            };
            *report.entry(key).or_default() += 1;
        }
    }
    let text: String = report.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    respond(out, 200, &[], text.as_bytes());
}

/// Exercises every fields and message method with good and bad input;
/// reports one `check: ok|FAIL` line each.
fn fields_report(request: IncomingRequest, out: ResponseOutparam) {
    let mut report = String::new();
    let mut check = |name: &str, ok: bool| {
        report.push_str(&format!("{name}: {}\n", if ok { "ok" } else { "FAIL" }));
    };

    // fields: construction and validation
    let f = Fields::from_list(&[("a".into(), b"1".to_vec()), ("A".into(), b"2".to_vec())]).unwrap();
    check("from-list merges case", f.get("a") == vec![b"1".to_vec(), b"2".to_vec()]);
    check("has", f.has("A") && !f.has("b"));
    check("get of invalid name is empty", f.get("bad name").is_empty());
    check(
        "from-list invalid name",
        matches!(Fields::from_list(&[("bad name".into(), b"x".to_vec())]), Err(HeaderError::InvalidSyntax)),
    );
    for (label, value) in [("CR", &b"a\rb"[..]), ("LF", b"a\nb"), ("NUL", b"a\0b")] {
        check(
            &format!("value with {label} is invalid-syntax"),
            matches!(f.append("x", value), Err(HeaderError::InvalidSyntax)),
        );
    }
    for name in ["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "transfer-encoding", "upgrade", "host", "http2-settings", "Host"] {
        check(&format!("{name} is forbidden (append)"), matches!(f.append(name, b"x"), Err(HeaderError::Forbidden)));
        check(&format!("{name} is forbidden (set)"), matches!(f.set(name, &[b"x".to_vec()]), Err(HeaderError::Forbidden)));
        check(
            &format!("{name} is forbidden (from-list)"),
            matches!(Fields::from_list(&[(name.into(), b"x".to_vec())]), Err(HeaderError::Forbidden)),
        );
    }
    check("set replaces", f.set("a", &[b"3".to_vec()]).is_ok() && f.get("a") == vec![b"3".to_vec()]);
    check("append adds", f.append("a", b"4").is_ok() && f.get("a").len() == 2);
    check("delete removes", f.delete("a").is_ok() && !f.has("a"));
    f.append("b", b"x").unwrap();
    check("entries", f.entries() == vec![("b".to_string(), b"x".to_vec())]);
    let c = f.clone();
    c.append("c", b"y").unwrap();
    check("clone is independent", !f.has("c") && c.has("c") && c.has("b"));

    // incoming-request: immutable headers, consume once
    let h = request.headers();
    check("incoming headers immutable (append)", matches!(h.append("x", b"1"), Err(HeaderError::Immutable)));
    check("incoming headers immutable (set)", matches!(h.set("x", &[]), Err(HeaderError::Immutable)));
    check("incoming headers immutable (delete)", matches!(h.delete("x"), Err(HeaderError::Immutable)));
    let mutable_copy = h.clone();
    check("clone of immutable is mutable", mutable_copy.append("x", b"1").is_ok());
    drop(h);
    let body = request.consume();
    check("consume once", body.is_ok());
    check("consume twice fails", request.consume().is_err());
    let body = body.unwrap();
    let stream = body.stream();
    check("stream once", stream.is_ok());
    check("stream twice fails", body.stream().is_err());
    drop(stream);
    let (future, trailers) = trailers_of(body);
    check("no request trailers is none", trailers.is_none());
    check("trailers can be taken only once", matches!(future.get(), Some(Err(()))));

    // outgoing-response
    let resp = OutgoingResponse::new(Fields::from_list(&[("x-r".into(), b"1".to_vec())]).unwrap());
    check("default status 200", resp.status_code() == 200);
    for bad in [0u16, 99, 600, 999] {
        check(&format!("status {bad} refused"), resp.set_status_code(bad).is_err() && resp.status_code() == 200);
    }
    check("status 100 accepted", resp.set_status_code(100).is_ok());
    check("status 599 accepted", resp.set_status_code(599).is_ok());
    check("status 201 accepted", resp.set_status_code(201).is_ok() && resp.status_code() == 201);
    let rh = resp.headers();
    check("response headers visible", rh.get("x-r") == vec![b"1".to_vec()]);
    check("response headers immutable", matches!(rh.append("y", b"1"), Err(HeaderError::Immutable)));
    drop(rh);
    let rbody = resp.body();
    check("response body once", rbody.is_ok());
    check("response body twice fails", resp.body().is_err());
    let rbody = rbody.unwrap();
    let w = rbody.write();
    check("write once", w.is_ok());
    check("write twice fails", rbody.write().is_err());
    drop(w);

    // outgoing-request setters validate
    let req = OutgoingRequest::new(Fields::new());
    check("default method GET", matches!(req.method(), Method::Get));
    check("bad method refused", req.set_method(&Method::Other("bad method".into())).is_err());
    check("extension method kept", req.set_method(&Method::Other("PURGE".into())).is_ok()
        && matches!(req.method(), Method::Other(m) if m == "PURGE"));
    check("bad scheme refused", req.set_scheme(Some(&Scheme::Other("1x".into()))).is_err());
    check("https scheme", req.set_scheme(Some(&Scheme::Https)).is_ok() && matches!(req.scheme(), Some(Scheme::Https)));
    check("userinfo authority kept", req.set_authority(Some("user@host")).is_ok()
        && req.authority().as_deref() == Some("user@host"));
    let with_userinfo = OutgoingRequest::new(Fields::new());
    with_userinfo.set_authority(Some("user:pass@example.com")).unwrap();
    check(
        "userinfo is never sent",
        matches!(outgoing_handler::handle(with_userinfo, None), Err(ErrorCode::HttpRequestUriInvalid)),
    );
    check("empty port refused", req.set_authority(Some("example.com:")).is_err());
    check("bad port refused", req.set_authority(Some("example.com:abc")).is_err());
    check("authority ok", req.set_authority(Some("example.com:8080")).is_ok()
        && req.authority().as_deref() == Some("example.com:8080"));
    check("relative path kept", req.set_path_with_query(Some("noslash")).is_ok()
        && req.path_with_query().as_deref() == Some("noslash"));
    check("empty path is /", req.set_path_with_query(Some("")).is_ok()
        && req.path_with_query().as_deref() == Some("/"));
    check("path with space refused", req.set_path_with_query(Some("/a b")).is_err());
    check("path ok", req.set_path_with_query(Some("/p?q=1")).is_ok()
        && req.path_with_query().as_deref() == Some("/p?q=1"));
    check("outgoing request headers immutable", matches!(req.headers().append("x", b"1"), Err(HeaderError::Immutable)));
    let opts = RequestOptions::new();
    check("connect timeout", opts.set_connect_timeout(Some(5_000_000)).is_ok() && opts.connect_timeout() == Some(5_000_000));
    check("first-byte timeout", opts.set_first_byte_timeout(Some(7)).is_ok() && opts.first_byte_timeout() == Some(7));
    check("between-bytes timeout", opts.set_between_bytes_timeout(None).is_ok() && opts.between_bytes_timeout().is_none());
    check(
        "outgoing request denied without egress",
        matches!(outgoing_handler::handle(req, Some(opts)), Err(ErrorCode::HttpRequestDenied)),
    );
    let bad = OutgoingRequest::new(Fields::new());
    check(
        "outgoing request without authority is URI-invalid",
        matches!(outgoing_handler::handle(bad, None), Err(ErrorCode::HttpRequestUriInvalid)),
    );
    let connect = OutgoingRequest::new(Fields::new());
    connect.set_authority(Some("example.com:443")).unwrap();
    connect.set_method(&Method::Connect).unwrap();
    check(
        "outgoing CONNECT is method-invalid",
        matches!(outgoing_handler::handle(connect, None), Err(ErrorCode::HttpRequestMethodInvalid)),
    );
    let ftp = OutgoingRequest::new(Fields::new());
    ftp.set_authority(Some("example.com")).unwrap();
    ftp.set_scheme(Some(&Scheme::Other("ftp".into()))).unwrap();
    check(
        "outgoing ftp scheme fails before connecting",
        matches!(outgoing_handler::handle(ftp, None), Err(ErrorCode::HttpProtocolError)),
    );

    // outgoing-body finish with forbidden trailers is stripped, not fatal
    drop(rbody);
    respond(out, 200, &[("content-type", "text/plain")], report.as_bytes());
}

fn main() {}
