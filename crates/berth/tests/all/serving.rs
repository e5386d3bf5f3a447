//! Serving behaviour of the wasi:http@0.2 host over HTTP/1.1 and HTTP/2.

use crate::support::*;

#[tokio::test]
async fn hello_over_both_protocols() {
    let server = TestServer::start("suite").await;
    for proto in PROTOS {
        let (status, body) = get(&server, proto, "/hello").await;
        assert_eq!(
            (status, body.as_str()),
            (200, "hello from berth\n"),
            "{proto:?}"
        );
    }
}

#[tokio::test]
async fn guest_sees_scheme_authority_and_exact_path() {
    let server = TestServer::start("suite").await;
    let path = "/info/a%2Fb/%00/..%2f?x=%20&y=&&z";
    for proto in PROTOS {
        let (status, body) = get(&server, proto, path).await;
        assert_eq!(status, 200);
        assert!(body.contains("scheme=http\n"), "{proto:?}: {body}");
        assert!(
            body.contains(&format!("authority={}\n", server.addr)),
            "{body}"
        );
        assert!(
            body.contains(&format!("path={path}\n")),
            "{proto:?}: {body}"
        );
        assert!(body.contains("method=GET\n"));
        assert!(body.contains("trailers=false\n"));
    }
}

#[tokio::test]
async fn extension_methods_keep_their_case() {
    let server = TestServer::start("suite").await;
    for proto in PROTOS {
        let req = for_proto(request("PURGE", &server.url("/info"), empty()), proto);
        let (body, _) = read_body(send(server.addr, proto, req).await)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&body).contains("method=other:PURGE\n"));
    }
}

#[tokio::test]
async fn absolute_form_target_sets_authority() {
    let server = TestServer::start("suite").await;
    let req = http::Request::builder()
        .uri("http://tenant.test:1234/info?q=1")
        .header("host", "ignored.test")
        .body(empty())
        .unwrap();
    let (body, _) = read_body(send(server.addr, Proto::H1, req).await)
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("authority=tenant.test:1234\n"), "{body}");
    assert!(body.contains("path=/info?q=1\n"), "{body}");
}

#[tokio::test]
async fn echo_streams_large_bodies_both_ways() {
    let server = TestServer::start("suite").await;
    for proto in PROTOS {
        let chunks = 64;
        let size = 64 * 1024;
        let req = for_proto(
            request(
                "POST",
                &server.url("/echo"),
                streaming_body(chunks, size, None),
            ),
            proto,
        );
        let resp = send(server.addr, proto, req).await;
        assert_eq!(resp.status(), 200);
        let (body, _) = read_body(resp).await.expect("complete echo");
        assert_eq!(body.len(), chunks * size, "{proto:?}");
        for (i, piece) in body.chunks(size).enumerate() {
            assert!(
                piece.iter().all(|b| *b == b'a' + (i % 26) as u8),
                "chunk {i} corrupted"
            );
        }
    }
}

#[tokio::test]
async fn echo_with_content_length_round_trips() {
    let server = TestServer::start("suite").await;
    for proto in PROTOS {
        let payload = vec![7u8; 300_000];
        let mut req = for_proto(
            request("PUT", &server.url("/echo"), full(payload.clone())),
            proto,
        );
        req.headers_mut()
            .insert("content-length", "300000".parse().unwrap());
        let resp = send(server.addr, proto, req).await;
        assert_eq!(resp.headers()["content-length"], "300000");
        let (body, _) = read_body(resp).await.unwrap();
        assert_eq!(body.as_ref(), payload.as_slice());
    }
}

#[tokio::test]
async fn trailers_round_trip_over_http2() {
    let server = TestServer::start("suite").await;
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-checksum", "abc123".parse().unwrap());
    let req = for_proto(
        request(
            "POST",
            &server.url("/echo"),
            streaming_body(4, 1000, Some(trailers)),
        ),
        Proto::H2,
    );
    let (body, trailers) = read_body(send(server.addr, Proto::H2, req).await)
        .await
        .unwrap();
    assert_eq!(body.len(), 4000);
    assert_eq!(trailers.expect("response trailers")["x-checksum"], "abc123");
}

#[tokio::test]
async fn trailers_round_trip_over_http1_chunked() {
    let server = TestServer::start("suite").await;
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-checksum", "abc123".parse().unwrap());
    let mut req = for_proto(
        request(
            "POST",
            &server.url("/echo"),
            streaming_body(3, 1000, Some(trailers)),
        ),
        Proto::H1,
    );
    req.headers_mut().insert("te", "trailers".parse().unwrap());
    req.headers_mut()
        .insert("trailer", "x-checksum".parse().unwrap());
    let (body, trailers) = read_body(send(server.addr, Proto::H1, req).await)
        .await
        .unwrap();
    assert_eq!(body.len(), 3000);
    assert_eq!(trailers.expect("response trailers")["x-checksum"], "abc123");
}

#[tokio::test]
async fn undeclared_guest_trailers_reach_clients() {
    let server = TestServer::start("suite").await;
    for proto in PROTOS {
        let mut req = for_proto(request("GET", &server.url("/trailers"), empty()), proto);
        req.headers_mut().insert("te", "trailers".parse().unwrap());
        let (body, trailers) = read_body(send(server.addr, proto, req).await)
            .await
            .unwrap();
        assert_eq!(body.as_ref(), b"body before trailers\n");
        assert_eq!(trailers.expect("trailers")["x-trailer"], "yes", "{proto:?}");
    }
}

#[tokio::test]
async fn request_trailers_reach_the_guest() {
    let server = TestServer::start("suite").await;
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-t", "1".parse().unwrap());
    let req = for_proto(
        request(
            "POST",
            &server.url("/info"),
            streaming_body(1, 10, Some(trailers)),
        ),
        Proto::H2,
    );
    let (body, _) = read_body(send(server.addr, Proto::H2, req).await)
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("body-bytes=10\n") && body.contains("trailers=true\n"),
        "{body}"
    );
}

#[tokio::test]
async fn every_fields_and_message_method_behaves_as_documented() {
    let server = TestServer::start("suite").await;
    for proto in PROTOS {
        let (status, body) = get(&server, proto, "/fields").await;
        assert_eq!(status, 200);
        let failures: Vec<&str> = body.lines().filter(|l| !l.ends_with(": ok")).collect();
        assert!(failures.is_empty(), "{failures:#?}");
        assert!(body.lines().count() > 70, "report too short:\n{body}");
    }
}

#[tokio::test]
async fn components_built_against_wasi_http_0_2_0_are_served() {
    let server = TestServer::start("legacy").await;
    for proto in PROTOS {
        let (status, body) = get(&server, proto, "/old?x=1").await;
        assert_eq!(
            (status, body.as_str()),
            (200, "hello from wasi:http@0.2.0 at /old?x=1\n")
        );
    }
}

#[tokio::test]
async fn guest_environment_is_only_what_was_configured() {
    let server = TestServer::start("suite").await;
    let (_, body) = get(&server, Proto::H1, "/env").await;
    assert_eq!(body, "GREETING=hi\nargs=0\n");
}

#[tokio::test]
async fn guest_stdin_is_at_eof_and_stdout_does_not_break_requests() {
    let server = TestServer::start("suite").await;
    let (status, body) = get(&server, Proto::H1, "/stdio").await;
    assert_eq!((status, body.as_str()), (200, "stdin=0\n"));
}

#[tokio::test]
async fn outgoing_requests_are_denied_without_egress() {
    let server = TestServer::start("suite").await;
    let (_, body) = get(&server, Proto::H1, "/outgoing").await;
    assert_eq!(body, "error=ErrorCode::HttpRequestDenied\n");
}

#[tokio::test]
async fn status_codes_are_validated() {
    let server = TestServer::start("suite").await;
    for (code, expect_status, accepted) in [(404, 404, true), (99, 200, false), (600, 200, false)] {
        let (status, body) = get(&server, Proto::H1, &format!("/status?code={code}")).await;
        assert_eq!(status, expect_status);
        assert_eq!(body, format!("accepted={accepted}\n"));
    }
}

#[tokio::test]
async fn demo_component_describes_the_request() {
    let server = TestServer::start("demo").await;
    let (status, body) = get(&server, Proto::H2, "/some/path?q=1&r=2").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("<code>/some/path?q=1&amp;r=2</code>"),
        "{body}"
    );
    assert!(body.contains("berth"));
}

#[tokio::test]
async fn send_informational_returns_an_error_and_never_traps() {
    let server = TestServer::start("informational").await;
    for proto in PROTOS {
        let (status, body) = get(&server, proto, "/").await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.starts_with("informational refused: ErrorCode::InternalError"),
            "{body}"
        );
        assert!(body.contains("not supported by this host"), "{body}");
    }
}

#[tokio::test]
async fn guests_have_no_filesystem_or_network_authority() {
    let server = TestServer::start("suite").await;
    let (status, body) = get(&server, Proto::H1, "/sandbox").await;
    assert_eq!(status, 200);
    // No preopens: nothing to open. No network: connect is refused by policy.
    assert!(body.contains("fs=denied"), "{body}");
    assert!(body.contains("net=denied (PermissionDenied)"), "{body}");
}
