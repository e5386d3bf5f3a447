//! Strict parsing of URI authorities (inbound `Host` handling and the
//! guest setters) and of guests' paths.

use http::uri::{Authority, PathAndQuery};

/// Parses `host[:port]` strictly: no userinfo, a non-empty host, and when a
/// `:` follows the host, a port of 1–5 digits that fits in `u16`
/// (`example.com:`, `example.com:abc` and `user@host` are all refused;
/// `http::uri::Authority` alone accepts some of them). For what clients
/// send (`Host`, `:authority`).
pub fn parse_authority(text: &str) -> Option<Authority> {
    if text.contains('@') {
        return None;
    }
    parse_guest_authority(text)
}

/// Parses a guest's `authority`: `[userinfo@]host[:port]` (RFC 3986
/// §3.2), with the host and port as strict as [`parse_authority`]. The
/// wasi-testsuite expects userinfo to round-trip through the setter; a
/// request carrying it is refused when sent (RFC 9110 §4.2.4: senders must
/// not generate userinfo in http(s) URIs), see [`has_userinfo`].
pub fn parse_guest_authority(text: &str) -> Option<Authority> {
    let authority: Authority = text.parse().ok()?;
    let host_port = text.rsplit_once('@').map_or(text, |(_, rest)| rest);
    if authority.host().is_empty() {
        return None;
    }
    // The port part starts after the last ':' that is outside an IPv6 literal.
    let after_host = match host_port.rfind(']') {
        Some(end) => &host_port[end + 1..],
        None => host_port,
    };
    if let Some((_, port)) = after_host.rsplit_once(':') {
        let digits =
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
        if !digits || port.parse::<u16>().is_err() {
            return None;
        }
    } else if host_port.starts_with('[') && !host_port.ends_with(']') {
        return None;
    }
    Some(authority)
}

/// Whether an authority carries userinfo (`user[:pass]@`).
pub fn has_userinfo(authority: &Authority) -> bool {
    authority.as_str().contains('@')
}

/// A request's `path-with-query`: what the getter shows, and the target
/// sent on the wire (always origin-form, `*`, or `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestPath {
    target: PathAndQuery,
    /// The guest gave a relative form (`a/b`, `?q`): the target is it with
    /// a `/` in front, and the getter shows it without.
    relative: bool,
}

impl GuestPath {
    /// What `path-with-query` returns: exactly what the guest set (`/` for
    /// the empty string).
    pub fn as_str(&self) -> &str {
        let target = self.target.as_str();
        if self.relative { &target[1..] } else { target }
    }

    /// The request target to send.
    pub fn target(&self) -> &PathAndQuery {
        &self.target
    }

    /// Consumes the path, yielding the request target to send.
    pub fn into_target(self) -> PathAndQuery {
        self.target
    }
}

impl From<PathAndQuery> for GuestPath {
    /// An origin-form path (one that came from the network).
    fn from(target: PathAndQuery) -> Self {
        Self {
            target,
            relative: false,
        }
    }
}

/// Validates a guest's `path-with-query`, byte-exact (anything the parser
/// would rewrite, such as a `#fragment`, is refused). Besides origin-form
/// (RFC 9112 §3.2.1) and `*`, relative forms (`a/b`, `?q`) are accepted as
/// other hosts accept them (WebAssembly/wasi-http#178) and sent from the
/// root (`/a/b`, `/?q`); the empty string is taken as `/`
/// (WebAssembly/WASI#780).
pub fn parse_path_with_query(text: &str) -> Option<GuestPath> {
    let exact = |text: &str| match text.parse::<PathAndQuery>() {
        Ok(pq) if pq.as_str() == text => Some(pq),
        _ => None,
    };
    if text.is_empty() {
        return Some(GuestPath::from(PathAndQuery::from_static("/")));
    }
    if text.starts_with('/') || text == "*" {
        return exact(text).map(GuestPath::from);
    }
    Some(GuestPath {
        target: exact(&format!("/{text}"))?,
        relative: true,
    })
}

/// Parses an optional value a guest set: `Some(None)` for `none`,
/// `Some(Some(v))` when it parses, `None` when it does not (the setter then
/// returns an error and leaves the message unchanged).
pub fn parse_optional<T: ?Sized, U>(
    value: Option<&T>,
    parse: impl FnOnce(&T) -> Option<U>,
) -> Option<Option<U>> {
    match value {
        None => Some(None),
        Some(v) => parse(v).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_authority;

    #[test]
    fn accepts_hosts_ports_and_ipv6() {
        for ok in [
            "example.com",
            "example.com:8080",
            "127.0.0.1:1",
            "[::1]",
            "[::1]:443",
        ] {
            assert!(parse_authority(ok).is_some(), "{ok}");
        }
    }

    #[test]
    fn refuses_userinfo_empty_and_bad_ports() {
        for bad in [
            "",
            "user@host",
            "example.com:",
            "example.com:abc",
            "h:70000",
            "h:-1",
            "[::1",
            "h:+80",
        ] {
            assert!(parse_authority(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn guests_may_set_userinfo_but_clients_may_not_send_it() {
        use super::{has_userinfo, parse_guest_authority};
        for ok in [
            "user@1.2.3.4:80",
            "user:pass@example.com:80",
            "user:pass%20@localhost:80",
            "example.com",
        ] {
            let authority = parse_guest_authority(ok).expect(ok);
            assert_eq!(authority.as_str(), ok);
            assert_eq!(has_userinfo(&authority), ok.contains('@'));
            assert_eq!(parse_authority(ok).is_some(), !ok.contains('@'), "{ok}");
        }
        for bad in [
            "::",
            ":@",
            "@@",
            "@:",
            " ",
            "",
            "#",
            "localhost:what",
            "[",
            "u@h:",
        ] {
            assert!(parse_guest_authority(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn optional_values_parse_or_refuse() {
        use super::{parse_optional, parse_path_with_query};
        assert_eq!(parse_optional(None, parse_path_with_query), Some(None));
        assert!(matches!(
            parse_optional(Some("/a?b"), parse_path_with_query),
            Some(Some(p)) if p.as_str() == "/a?b"
        ));
        for bad in ["/a#b", "/a b", "/<", "a b", ""] {
            let refused = parse_optional(Some(bad), parse_path_with_query).is_none();
            assert_eq!(refused, !bad.is_empty(), "{bad:?}");
        }
    }

    #[test]
    fn empty_and_relative_paths_are_accepted_and_sent_from_the_root() {
        use super::parse_path_with_query;
        // WebAssembly/WASI#780: `some("")` is `/`, also as the getter shows it.
        let empty = parse_path_with_query("").unwrap();
        assert_eq!((empty.as_str(), empty.target().as_str()), ("/", "/"));
        for (given, on_the_wire) in [
            ("a/b/c", "/a/b/c"),
            ("../..", "/../.."),
            ("?foo", "/?foo"),
            ("/a/../../bar", "/a/../../bar"),
            ("/\u{e9}", "/\u{e9}"),
            ("*", "*"),
        ] {
            let path = parse_path_with_query(given).expect(given);
            assert_eq!(path.as_str(), given);
            assert_eq!(path.into_target().as_str(), on_the_wire);
        }
    }
}
