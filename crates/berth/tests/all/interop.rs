//! Components from other toolchains (componentize-py, componentize-js),
//! built by scripts/build-interop.sh into $BERTH_INTEROP_DIR
//! (default ~/.cache/berth-interop). scripts/test.sh builds them and sets
//! BERTH_REQUIRE_INTEROP=1, so in CI a missing component fails the test.

use std::path::PathBuf;

use crate::support::*;

fn interop_component(name: &str) -> Option<Vec<u8>> {
    let dir = std::env::var_os("BERTH_INTEROP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/berth-interop")
        });
    let path = dir.join(format!("{name}.wasm"));
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(err) if std::env::var_os("BERTH_REQUIRE_INTEROP").is_some() => {
            panic!(
                "{} is required (BERTH_REQUIRE_INTEROP): {err}",
                path.display()
            )
        }
        Err(_) => {
            eprintln!(
                "skipping: {} not built (run scripts/build-interop.sh)",
                path.display()
            );
            None
        }
    }
}

async fn post(server: &TestServer, proto: Proto, path: &str, body: &'static str) -> (u16, String) {
    let req = for_proto(request("POST", &server.url(path), full(body)), proto);
    let resp = send(server.addr, proto, req).await;
    let status = resp.status().as_u16();
    let (body, _) = read_body(resp).await.expect("complete body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn componentize_py_component_is_served() {
    let Some(bytes) = interop_component("python") else {
        return;
    };
    let server = TestServer::start_bytes(&bytes, "python.wasm", test_config()).await;
    for proto in PROTOS {
        let (status, body) = post(&server, proto, "/py?x=1", "hi from the test").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            format!(
                "python says hello\nscheme=http\nauthority={}\npath=/py?x=1\nbody=hi from the test\n",
                server.addr
            )
        );
    }
}

#[tokio::test]
async fn componentize_js_component_is_served() {
    let Some(bytes) = interop_component("js") else {
        return;
    };
    let server = TestServer::start_bytes(&bytes, "js.wasm", test_config()).await;
    for proto in PROTOS {
        let (status, body) = post(&server, proto, "/js?x=1", "hi js").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            format!(
                "javascript says hello\nurl=http://{}/js?x=1\npath=/js?x=1\nmethod=POST\nbody=hi js\n",
                server.addr
            )
        );
    }
}

/// A componentize-js guest whose response body throws before its first
/// byte: the client gets berth's error response (500 with the request id)
/// instead of a connection closed with no status.
#[tokio::test]
async fn componentize_js_body_that_throws_is_a_500() {
    let Some(bytes) = interop_component("js") else {
        return;
    };
    let server = TestServer::start_bytes(&bytes, "js.wasm", test_config()).await;
    for proto in PROTOS {
        let (status, body) = get(&server, proto, "/throw").await;
        assert_eq!(status, 500, "{proto:?}: {body}");
        assert!(
            body.starts_with("500 Internal Server Error (request "),
            "{body}"
        );
    }
    server.assert_idle().await;
}
