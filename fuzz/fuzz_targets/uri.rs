//! Inbound URI/authority normalisation and the guest-facing URI parsers.
//!
//! * `normalize` (what the front-end does to every request before a guest
//!   sees it): on success the URI is absolute, its authority is the one
//!   `Host` header (strictly parsed) or the listener's, the path is kept,
//!   and the URI survives a print/parse round trip; on failure the reason
//!   is the one the request deserves.
//! * `parse_authority` / `parse_guest_authority` / `parse_path_with_query`:
//!   byte-exact round trips, ports of 1–5 digits that fit in `u16`, no
//!   userinfo from clients, request targets that start with `/` or are `*`.

#![no_main]

use arbitrary::Arbitrary;
use berth::fuzzing::normalize;
use berth::request::RejectReason;
use berth_http::uri::{parse_authority, parse_guest_authority, parse_path_with_query};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Uri, Version};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    method: u8,
    target: String,
    hosts: Vec<String>,
    version: u8,
    https: bool,
    text: String,
}

const METHODS: &[&str] = &[
    "GET", "POST", "CONNECT", "OPTIONS", "PATCH", "get", "X-Custom",
];

/// Properties of the parsers a guest's setters and the `Host` check use.
fn parsers(text: &str) {
    let guest = parse_guest_authority(text);
    if let Some(a) = &guest {
        assert_eq!(a.as_str(), text, "authority not byte-exact");
        assert!(!a.host().is_empty(), "empty host accepted: {text:?}");
        let host_port = text.rsplit_once('@').map_or(text, |(_, rest)| rest);
        let after_host = match host_port.rfind(']') {
            Some(end) => &host_port[end + 1..],
            None => host_port,
        };
        if let Some((_, port)) = after_host.rsplit_once(':') {
            assert!(
                (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit()),
                "bad port accepted: {text:?}"
            );
            assert_eq!(a.port_u16(), port.parse::<u16>().ok(), "{text:?}");
        }
    }
    let client = parse_authority(text);
    assert_eq!(
        client.is_some(),
        guest.is_some() && !text.contains('@'),
        "client and guest authority rules disagree on {text:?}"
    );

    if let Some(path) = parse_path_with_query(text) {
        let shown = if text.is_empty() { "/" } else { text };
        assert_eq!(path.as_str(), shown, "path not byte-exact");
        let target = path.target().as_str();
        assert!(
            target.starts_with('/') || target == "*",
            "bad target {target:?}"
        );
        let again: PathAndQuery = target.parse().expect("a target that does not parse again");
        assert_eq!(again.as_str(), target);
    }
}

fn run(input: Input) {
    parsers(&input.text);
    parsers(&input.target);

    let Ok(uri) = input.target.parse::<Uri>() else {
        return;
    };
    let method = METHODS[usize::from(input.method) % METHODS.len()];
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let version =
        [Version::HTTP_10, Version::HTTP_11, Version::HTTP_2][usize::from(input.version) % 3];
    let mut builder = Request::builder()
        .method(method.clone())
        .uri(uri.clone())
        .version(version);
    for host in &input.hosts {
        builder = builder.header(http::header::HOST, host.as_str());
    }
    // Values hyper would refuse to build never reach berth.
    let Ok(mut request) = builder.body(()) else {
        return;
    };
    let scheme = if input.https {
        Scheme::HTTPS
    } else {
        Scheme::HTTP
    };
    let local = Authority::from_static("127.0.0.1:8080");

    let absolute = uri.scheme().is_some() && uri.authority().is_some();
    let result = normalize(&mut request, &scheme, &local);
    if method == Method::CONNECT {
        assert_eq!(result, Err(RejectReason::Connect));
        return;
    }
    let asterisk = uri.path_and_query().is_some_and(|p| p.as_str() == "*");
    if asterisk && method != Method::OPTIONS {
        assert_eq!(
            result,
            Err(RejectReason::BadTarget),
            "asterisk form on {method}"
        );
        return;
    }
    if absolute {
        assert_eq!(result, Ok(()));
        assert_eq!(request.uri(), &uri, "an absolute URI was rewritten");
        return;
    }
    let host = match input.hosts.as_slice() {
        [] => None,
        [one] => Some(parse_authority(one)),
        _ => {
            assert_eq!(result, Err(RejectReason::BadHost), "several Host headers");
            return;
        }
    };
    let want = match host {
        Some(None) => {
            assert_eq!(
                result,
                Err(RejectReason::BadHost),
                "bad Host {:?}",
                input.hosts
            );
            return;
        }
        Some(Some(authority)) => authority,
        None if version == Version::HTTP_11 => {
            assert_eq!(result, Err(RejectReason::BadHost), "HTTP/1.1 without Host");
            return;
        }
        None => local,
    };
    assert_eq!(result, Ok(()), "a good request refused");
    let out = request.uri();
    assert_eq!(out.scheme(), Some(&scheme));
    assert_eq!(out.authority(), Some(&want));
    let path = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    assert_eq!(out.path_and_query().map(PathAndQuery::as_str), Some(path));
    // The http crate prints the asterisk form with an authority as
    // `http://host*`, which is not a URI: berth only ever uses the parts.
    if asterisk {
        return;
    }
    let again: Uri = out
        .to_string()
        .parse()
        .expect("a normalised URI that does not parse again");
    assert_eq!(&again, out, "normalised URI does not round-trip");
}

fuzz_target!(|input: Input| run(input));
