//! Malformed or abusive client traffic (rows of shared/design/hardening.md
//! section A): refused before the guest runs, server keeps serving.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Sends raw bytes and returns whatever the server answers before closing.
async fn raw(server: &TestServer, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut out),
    )
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

#[tokio::test]
async fn http11_without_host_is_400() {
    let server = TestServer::start("suite").await;
    let resp = raw(&server, b"GET /info HTTP/1.1\r\nconnection: close\r\n\r\n").await;
    assert_eq!(status_line(&resp), "HTTP/1.1 400 Bad Request", "{resp}");
}

#[tokio::test]
async fn bad_or_duplicate_host_is_400() {
    let server = TestServer::start("suite").await;
    for host in [
        "host: example.com:abc\r\n",
        "host: a.test\r\nhost: b.test\r\n",
        "host: u@h\r\n",
    ] {
        let req = format!("GET /info HTTP/1.1\r\n{host}connection: close\r\n\r\n");
        let resp = raw(&server, req.as_bytes()).await;
        assert_eq!(
            status_line(&resp),
            "HTTP/1.1 400 Bad Request",
            "{host:?}: {resp}"
        );
    }
}

#[tokio::test]
async fn http10_without_host_uses_the_listener_address() {
    let server = TestServer::start("suite").await;
    let resp = raw(&server, b"GET /info HTTP/1.0\r\n\r\n").await;
    assert!(
        resp.contains(&format!("authority={}", server.addr)),
        "{resp}"
    );
}

#[tokio::test]
async fn connect_is_never_tunnelled() {
    let server = TestServer::start("suite").await;
    let resp = raw(
        &server,
        b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n",
    )
    .await;
    assert_eq!(status_line(&resp), "HTTP/1.1 501 Not Implemented", "{resp}");
}

#[tokio::test]
async fn garbage_and_invalid_bytes_are_refused_and_serving_continues() {
    let server = TestServer::start("suite").await;
    for junk in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage-tls-hello"[..],
        b"GET /a\x01b HTTP/1.1\r\nhost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\xff\xff\xff\xff",
    ] {
        let resp = raw(&server, junk).await;
        // A 400, a bare close, or (for the broken HTTP/2 preface) a GOAWAY.
        assert!(
            !resp.contains(" 200 "),
            "{:?} got {resp}",
            String::from_utf8_lossy(junk)
        );
        assert!(
            resp.is_empty() || resp.starts_with("HTTP/1.1 400") || !resp.starts_with("HTTP"),
            "{:?} got {resp}",
            String::from_utf8_lossy(junk)
        );
    }
    assert_eq!(get(&server, Proto::H1, "/hello").await.0, 200);
}

#[tokio::test]
async fn oversized_headers_are_431_on_http1_and_http2() {
    let server = TestServer::start("suite").await;
    let big = "x".repeat(70 * 1024);
    let req = format!("GET /info HTTP/1.1\r\nhost: a\r\nx-big: {big}\r\n\r\n");
    let resp = raw(&server, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 431"), "{}", status_line(&resp));
    // HTTP/2: over berth's cap (64 KiB) and under the HTTP/2 layer's
    // (twice that), so berth answers the 431 itself, as a response rather
    // than a stream reset.
    let mut req = for_proto(request("GET", &server.url("/info"), empty()), Proto::H2);
    req.headers_mut().insert("x-big", big.parse().unwrap());
    let resp = try_send(server.addr, Proto::H2, req)
        .await
        .unwrap_or_else(|err| panic!("no 431 response: {err}"));
    assert_eq!(resp.status(), 431);
    // Just under the cap is served.
    let mut req = for_proto(request("GET", &server.url("/info"), empty()), Proto::H2);
    req.headers_mut()
        .insert("x-big", "x".repeat(60 * 1024).parse().unwrap());
    assert_eq!(send(server.addr, Proto::H2, req).await.status(), 200);
    assert_eq!(get(&server, Proto::H2, "/hello").await.0, 200);
    server.assert_idle().await;
}

#[tokio::test]
async fn upgrade_requests_never_get_101() {
    let server = TestServer::start("suite").await;
    let resp = raw(
        &server,
        b"GET /hello HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
    )
    .await;
    assert_eq!(status_line(&resp), "HTTP/1.1 200 OK", "{resp}");
}

#[tokio::test]
async fn slowloris_headers_are_cut_off() {
    // The test server's header read timeout is 2 s.
    let server = TestServer::start("suite").await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nhost: a\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut buf),
    )
    .await;
    assert!(read.is_ok(), "connection still open after 10 s");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    assert_eq!(get(&server, Proto::H1, "/hello").await.0, 200);
}

#[tokio::test]
async fn too_many_headers_are_431_with_bounded_work() {
    let server = TestServer::start("suite").await;
    for count in [150, 10_000] {
        let mut req = String::from("GET /info HTTP/1.1\r\nhost: a\r\n");
        for i in 0..count {
            req.push_str(&format!("x-h{i}: v\r\n"));
        }
        req.push_str("\r\n");
        let started = std::time::Instant::now();
        let resp = raw(&server, req.as_bytes()).await;
        assert!(
            resp.starts_with("HTTP/1.1 431"),
            "{count}: {}",
            status_line(&resp)
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
    // HTTP/2 has no count limit of its own: berth's cap (100) applies.
    let mut req = for_proto(request("GET", &server.url("/info"), empty()), Proto::H2);
    for i in 0..150 {
        req.headers_mut().insert(
            format!("x-h{i}").parse::<http::HeaderName>().unwrap(),
            "v".parse().unwrap(),
        );
    }
    assert_eq!(send(server.addr, Proto::H2, req).await.status(), 431);
    server.assert_idle().await;
}

#[tokio::test]
async fn long_request_targets_are_414_on_http1_and_http2() {
    let server = TestServer::start("suite").await;
    // 16 KiB fits hyper's head buffer: berth's 8 KiB target cap answers.
    let query = "q".repeat(16 * 1024);
    let req = format!("GET /info?{query} HTTP/1.1\r\nhost: a\r\n\r\n");
    let resp = raw(&server, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 414"), "{}", status_line(&resp));
    let req = for_proto(
        request("GET", &server.url(&format!("/info?{query}")), empty()),
        Proto::H2,
    );
    assert_eq!(send(server.addr, Proto::H2, req).await.status(), 414);
    // Past the head cap (64 KiB) the head never completes in hyper's
    // buffer, so which part is long cannot be told: the whole head is too
    // large, 431.
    let req = format!(
        "GET /info?{} HTTP/1.1\r\nhost: a\r\n\r\n",
        "q".repeat(70 * 1024)
    );
    let resp = raw(&server, req.as_bytes()).await;
    assert_eq!(
        status_line(&resp),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // Just under the cap is served.
    let path = format!("/info?{}", "q".repeat(8 * 1024 - 6));
    assert_eq!(get(&server, Proto::H1, &path).await.0, 200);
    server.assert_idle().await;
}

/// Sockets that send nothing, part of the HTTP/2 preface, or a preface and
/// no request hold connection slots only until the header-read timeout
/// (2 s here): with every slot taken by them, a real client is still
/// served once they are closed.
#[tokio::test]
async fn silent_and_half_open_connections_are_closed_at_the_header_timeout() {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let server = TestServer::start_with_server_config(
        "suite",
        berth::ServerConfig {
            max_connections: 300,
            ..test_server_config()
        },
    )
    .await;
    let mut idle = Vec::new();
    for i in 0..300 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        match i % 3 {
            0 => {}
            1 => stream.write_all(&PREFACE[..10]).await.unwrap(),
            _ => {
                stream.write_all(PREFACE).await.unwrap();
                // An empty SETTINGS frame, then nothing.
                stream
                    .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
                    .await
                    .unwrap();
            }
        }
        idle.push(stream);
    }
    let started = std::time::Instant::now();
    // Every slot is taken: this client waits in the accept queue until the
    // idle ones are closed, then is served.
    let (status, _) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        get(&server, Proto::H1, "/hello"),
    )
    .await
    .expect("served once the idle connections were closed");
    assert_eq!(status, 200);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    for (i, mut stream) in idle.into_iter().enumerate() {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_to_end(&mut buf),
        )
        .await;
        assert!(read.is_ok(), "idle connection {i} is still open");
    }
}

/// The scale: 5 000 sockets that send nothing or part of the
/// HTTP/2 preface, under the default connection cap. A healthy client is
/// served (HTTP/1.1 and HTTP/2) while every one of them is still open,
/// all are closed at the header-read timeout (5 s here), and memory stays
/// bounded. The bound is loose because this process also holds the
/// test's own 5 000 client sockets and runs other tests at the same time
/// (alone it grows ~44 MiB); `scripts/bench-idle-conns.sh` measures the
/// server alone.
#[tokio::test]
async fn five_thousand_silent_sockets_never_block_a_client_and_are_closed() {
    let _alone = one_at_a_time().await;
    const SOCKETS: usize = 5_000;
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let server = TestServer::start_with_server_config(
        "suite",
        berth::ServerConfig {
            header_read_timeout: std::time::Duration::from_secs(5),
            ..test_server_config()
        },
    )
    .await;
    let before = rss_kib();
    let first = std::time::Instant::now();
    let mut idle = Vec::with_capacity(SOCKETS);
    for i in 0..SOCKETS {
        let mut stream = TcpStream::connect(server.addr).await.unwrap_or_else(|e| {
            panic!("socket {i}: {e} (the test needs ~10 500 file descriptors)")
        });
        if i % 2 == 1 {
            stream.write_all(&PREFACE[..10]).await.unwrap();
        }
        idle.push(stream);
    }
    eprintln!("{SOCKETS} silent sockets opened in {:?}", first.elapsed());
    for proto in PROTOS {
        assert_eq!(get(&server, proto, "/hello").await.0, 200);
    }
    let grown = rss_kib().saturating_sub(before);
    eprintln!("{SOCKETS} silent sockets: process RSS grew by {grown} KiB");
    assert!(grown < 256 * 1024, "grew by {grown} KiB");
    // Served before the first silent socket could have been closed.
    assert!(first.elapsed() < std::time::Duration::from_secs(5));
    for (i, mut stream) in idle.into_iter().enumerate() {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.read_to_end(&mut buf),
        )
        .await;
        assert!(read.is_ok(), "silent socket {i} is still open");
    }
}

fn small_limits() -> berth::limits::BodyLimits {
    berth::limits::BodyLimits {
        max_bytes: 1000,
        idle_timeout: std::time::Duration::from_millis(300),
    }
}

#[tokio::test]
async fn a_declared_body_over_the_cap_is_413_before_the_guest() {
    for component in ["suite", "p3-suite"] {
        let server = TestServer::start_with_limits(component, small_limits()).await;
        let resp = raw(
            &server,
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5000\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(
            status_line(&resp),
            "HTTP/1.1 413 Payload Too Large",
            "{component}: {resp}"
        );
        // No instance was started for it.
        assert_eq!(server.runtime.live_instances(), 0);
        let hello = if component == "suite" { "/hello" } else { "/" };
        assert_eq!(get(&server, Proto::H1, hello).await.0, 200, "{component}");
    }
}

#[tokio::test]
async fn a_streamed_body_over_the_cap_never_looks_complete() {
    let chunk = || {
        Ok(hyper::body::Frame::data(bytes::Bytes::from(vec![
            b'a';
            400
        ])))
    };
    for component in ["suite", "p3-suite"] {
        let server = TestServer::start_with_limits(component, small_limits()).await;
        for proto in PROTOS {
            let (tx, body) = channel_body();
            let req = for_proto(request("POST", &server.url("/echo"), body), proto);
            let response = tokio::spawn(try_send(server.addr, proto, req));
            // 400 bytes, under the 1000-byte cap: the echo answers with
            // them, so the head goes out.
            tx.send(chunk()).await.unwrap();
            let resp = response
                .await
                .unwrap()
                .unwrap_or_else(|err| panic!("{component} {proto:?}: no response head: {err}"));
            assert_eq!(resp.status(), 200, "{component} {proto:?}");
            // Then past the cap: the echo's input fails, and its response
            // body must be cut, not ended as if the input had been whole.
            // (The client stops taking frames once the server gives up, so
            // the sends go on in a task of their own.)
            let feeder = tokio::spawn(async move {
                for _ in 0..3 {
                    if tx.send(chunk()).await.is_err() {
                        break;
                    }
                }
            });
            let result = read_body(resp).await;
            assert!(
                result.is_err(),
                "{component} {proto:?} ended cleanly: {result:?}"
            );
            feeder.abort();
        }
        server.assert_idle().await;
    }
}

#[tokio::test]
async fn a_stalled_body_is_408_or_aborted_and_the_instance_is_freed() {
    for component in ["suite", "p3-suite"] {
        let server = TestServer::start_with_limits(component, small_limits()).await;
        let started = std::time::Instant::now();
        // Declares 100 bytes, sends 10, then stalls.
        let resp = raw(
            &server,
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\nconnection: close\r\n\r\n0123456789",
        )
        .await;
        let status = status_line(&resp);
        assert!(
            status == "HTTP/1.1 408 Request Timeout" || status == "HTTP/1.1 200 OK",
            "{component}: {resp}"
        );
        if status.ends_with("200 OK") {
            // Started: the response must not be complete.
            assert!(
                !resp.contains("0123456789\r\n0\r\n\r\n"),
                "{component}: {resp}"
            );
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
        server.assert_idle().await;
    }
}

/// Sends `bytes` on one connection and returns what came back and how many
/// requests reached the service (request ids handed out meanwhile).
async fn smuggle(server: &TestServer, bytes: &[u8]) -> (String, u64) {
    let before = server.runtime.next_request_id();
    let answer = raw(server, bytes).await;
    let after = server.runtime.next_request_id();
    (answer, after - before - 1)
}

/// Hardening A5: ambiguous or malformed framing is refused (400, connection
/// closed) before any guest runs, and bytes hidden in a body are never
/// executed as a request of their own.
#[tokio::test]
async fn request_smuggling_framings_are_refused_and_never_run_twice() {
    let server = TestServer::start("suite").await;
    let hidden = "GET /info/smuggled HTTP/1.1\r\nhost: x\r\n\r\n";
    let refused: Vec<(&str, String)> = vec![
        (
            "two different Content-Lengths",
            format!(
                "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!{hidden}"
            ),
        ),
        (
            "Content-Length +5",
            format!("POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: +5\r\n\r\nhello{hidden}"),
        ),
        (
            "Content-Length -1",
            format!("POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: -1\r\n\r\n{hidden}"),
        ),
        (
            "Content-Length 5,6",
            format!("POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5,6\r\n\r\nhello!{hidden}"),
        ),
        (
            "Transfer-Encoding xchunked",
            format!(
                "POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n{hidden}"
            ),
        ),
        (
            "Transfer-Encoding chunked, identity",
            format!(
                "POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n{hidden}"
            ),
        ),
        (
            "chunk size overflow",
            format!(
                "POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nhello\r\n0\r\n\r\n{hidden}"
            ),
        ),
        (
            "huge chunk extension",
            format!(
                "POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5;{}\r\nhello\r\n0\r\n\r\n{hidden}",
                "x".repeat(64 * 1024)
            ),
        ),
    ];
    for (case, bytes) in &refused {
        let (answer, ran) = smuggle(&server, bytes.as_bytes()).await;
        assert!(!answer.contains("smuggled"), "{case}: {answer}");
        // Either refused before the guest, or (chunk errors) cut off while
        // the guest read the body: never a second request.
        assert!(ran <= 1, "{case}: {ran} requests ran\n{answer}");
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{case}: {answer}");
        let status = status_line(&answer);
        if ran == 0 {
            assert_eq!(status, "HTTP/1.1 400 Bad Request", "{case}: {answer}");
        } else if status == "HTTP/1.1 200 OK" {
            // The echo had started its response when the body broke: the
            // response is aborted, never completed.
            assert!(!answer.ends_with("0\r\n\r\n"), "{case}: {answer}");
        } else {
            assert!(
                status.starts_with("HTTP/1.1 4") || status.starts_with("HTTP/1.1 5"),
                "{case}: {answer}"
            );
        }
    }

    // Content-Length and Transfer-Encoding together: chunked framing wins
    // and the connection is not kept alive, so what follows the chunked
    // body is never read as a request.
    let both = format!(
        "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n{hidden}"
    );
    let (answer, ran) = smuggle(&server, both.as_bytes()).await;
    assert!(ran <= 1, "CL+TE: {ran} requests ran\n{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "CL+TE: {answer}");
    assert!(!answer.contains("smuggled"), "CL+TE: {answer}");

    // Transfer-Encoding on HTTP/1.0 is not chunked framing.
    let old = format!(
        "POST /echo HTTP/1.0\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n{hidden}"
    );
    let (answer, ran) = smuggle(&server, old.as_bytes()).await;
    assert!(ran <= 1, "TE on 1.0: {ran} requests ran\n{answer}");
    assert!(
        answer.matches("HTTP/1.").count() <= 1,
        "TE on 1.0: {answer}"
    );
    assert!(!answer.contains("smuggled"), "TE on 1.0: {answer}");

    // A request hidden in a GET's declared body is body, not a request;
    // the properly framed request after it runs normally.
    let get_body = format!(
        "GET /hello HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{hidden}GET /hello HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        hidden.len()
    );
    let (answer, ran) = smuggle(&server, get_body.as_bytes()).await;
    assert_eq!(ran, 2, "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer}");
    assert!(!answer.contains("smuggled"), "{answer}");

    // The server keeps serving.
    let (status, body) = get(&server, Proto::H1, "/hello").await;
    assert_eq!((status, body.as_str()), (200, "hello from berth\n"));
    server.shutdown().await;
}

/// Opens one HTTP/2 connection and sends `streams` requests to `/never`
/// (blocked in the host for an hour), resetting each one after `pause`
/// (none: at once, the Rapid Reset pattern). Returns how many were sent
/// before the server closed the connection, and how many reached the
/// service.
async fn reset_flood(
    server: &TestServer,
    path: &str,
    streams: usize,
    pause: Option<std::time::Duration>,
) -> (usize, u64) {
    let before = server.runtime.next_request_id();
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut client = Some(client);
    let mut sent = 0;
    for _ in 0..streams {
        let Some(Ok(mut ready)) = (match client.take() {
            Some(c) => Some(c.ready().await),
            None => None,
        }) else {
            break; // the server closed the connection (GOAWAY)
        };
        let request = http::Request::get(format!("http://{}{path}", server.addr))
            .body(())
            .unwrap();
        let Ok((response, body)) = ready.send_request(request, true) else {
            break;
        };
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
        // Dropping both halves resets the stream (RST_STREAM CANCEL).
        drop((response, body));
        client = Some(ready);
        sent += 1;
    }
    drop(client);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), connection).await;
    let after = server.runtime.next_request_id();
    (sent, after - before - 1)
}

/// Hardening A12, HTTP/2 Rapid Reset: streams opened and reset at once
/// never pile up guest work, and streams reset while their guest runs
/// cancel it promptly (long before the 60 s wall clock); no instance
/// outlives either flood, and the server keeps serving.
#[tokio::test]
async fn http2_rapid_reset_cancels_guests_and_leaks_nothing() {
    let config = berth::RuntimeConfig {
        wall_time_limit: std::time::Duration::from_secs(60),
        ..test_config()
    };
    let server = TestServer::start_with("suite", config).await;

    let (sent, reached) = reset_flood(&server, "/never", 2000, None).await;
    assert!(sent > 0);
    assert!(reached as usize <= sent, "{reached} of {sent}");
    wait_until_idle(&server, std::time::Duration::from_secs(5)).await;

    // Resets that arrive after the guest started: each cancels its guest.
    let pause = Some(std::time::Duration::from_millis(5));
    let (sent, reached) = reset_flood(&server, "/never", 100, pause).await;
    assert_eq!(sent, 100);
    assert!(reached >= 50, "only {reached} of {sent} reached a guest");
    wait_until_idle(&server, std::time::Duration::from_secs(5)).await;

    let (status, body) = get(&server, Proto::H2, "/hello").await;
    assert_eq!((status, body.as_str()), (200, "hello from berth\n"));
    server.shutdown().await;
}

/// The same against a wasi:http@0.3 app, whose instances serve several
/// requests: a guest whose client reset the stream before the response
/// head gets a second's grace, then its instance is retired and dropped,
/// instead of running to the 60 s wall clock.
#[tokio::test]
async fn http2_rapid_reset_on_a_p3_app_cancels_guests_and_leaks_nothing() {
    let config = berth::RuntimeConfig {
        wall_time_limit: std::time::Duration::from_secs(60),
        ..test_config()
    };
    let server = TestServer::start_with("p3-suite", config).await;

    let (sent, reached) = reset_flood(&server, "/hang", 2000, None).await;
    assert!(sent > 0);
    assert!(reached as usize <= sent, "{reached} of {sent}");
    wait_until_idle(&server, std::time::Duration::from_secs(5)).await;

    // Resets that arrive after the guest started.
    let pause = Some(std::time::Duration::from_millis(5));
    let (sent, reached) = reset_flood(&server, "/hang", 100, pause).await;
    assert_eq!(sent, 100);
    assert!(reached >= 50, "only {reached} of {sent} reached a guest");
    wait_until_idle(&server, std::time::Duration::from_secs(5)).await;

    let (status, _) = get(&server, Proto::H2, "/").await;
    assert_eq!(status, 200);
    server.shutdown().await;
}

/// A client that stops reading a large response: the write makes no
/// progress for the write timeout (1 s here), the connection is closed and
/// the guest instance behind it freed.
#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_its_instance_freed() {
    // A wall-clock limit far beyond the test: only the write timeout can
    // free the instance in time.
    let config = berth::RuntimeConfig {
        wall_time_limit: std::time::Duration::from_secs(60),
        ..test_config()
    };
    let server = TestServer::start_configured(
        "suite",
        config,
        berth::ServerConfig {
            write_timeout: std::time::Duration::from_secs(1),
            ..test_server_config()
        },
    )
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /large?bytes=268435456 HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    // Read nothing until the server must have given up.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(server.runtime.live_instances(), 0, "the instance is freed");
    let mut sink = vec![0u8; 1 << 20];
    let drained = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut total = 0usize;
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    })
    .await
    .expect("the connection was closed");
    assert!(
        drained < 268_435_456,
        "the whole body arrived ({drained} bytes)"
    );
    assert_eq!(get(&server, Proto::H1, "/hello").await.0, 200);
}

/// Idle connections are closed: HTTP/1.1 keep-alive at the header-read
/// timeout (2 s), HTTP/2 with no stream in flight at the idle timeout.
#[tokio::test]
async fn idle_keep_alive_and_http2_connections_are_closed() {
    let server = TestServer::start_with_server_config(
        "suite",
        berth::ServerConfig {
            idle_timeout: std::time::Duration::from_secs(1),
            ..test_server_config()
        },
    )
    .await;
    let mut h1 = TcpStream::connect(server.addr).await.unwrap();
    h1.write_all(b"GET /hello HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = h1.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut h2, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let h2_done = tokio::spawn(conn);
    let req = http::Request::get(server.url("/hello"))
        .body(empty())
        .unwrap();
    let resp = h2.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    read_body(resp).await.unwrap();

    let started = std::time::Instant::now();
    tokio::time::timeout(std::time::Duration::from_secs(5), h2_done)
        .await
        .expect("the idle HTTP/2 connection was closed")
        .unwrap()
        .ok();
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), h1.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
}
