//! Strict parsing of URI authorities, shared by inbound `Host` handling and
//! outgoing requests.

use http::uri::Authority;

/// Parses `host[:port]` strictly: no userinfo, a non-empty host, and when a
/// `:` follows the host, a port of 1–5 digits that fits in `u16`
/// (`example.com:`, `example.com:abc` and `user@host` are all refused;
/// `http::uri::Authority` alone accepts some of them).
pub fn parse_authority(text: &str) -> Option<Authority> {
    let authority: Authority = text.parse().ok()?;
    if text.contains('@') || authority.host().is_empty() {
        return None;
    }
    // The port part starts after the last ':' that is outside an IPv6 literal.
    let after_host = match text.rfind(']') {
        Some(end) => &text[end + 1..],
        None => text,
    };
    if let Some((_, port)) = after_host.rsplit_once(':') {
        let digits =
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
        if !digits || port.parse::<u16>().is_err() {
            return None;
        }
    } else if text.starts_with('[') && !text.ends_with(']') {
        return None;
    }
    Some(authority)
}

/// Validates a guest's `path-with-query`: origin-form (RFC 9112 §3.2.1) or
/// `*` (for `OPTIONS`), byte-exact (nothing the parser would rewrite).
pub fn parse_path_with_query(text: &str) -> Option<http::uri::PathAndQuery> {
    if !(text.starts_with('/') || text == "*") {
        return None;
    }
    match text.parse::<http::uri::PathAndQuery>() {
        Ok(pq) if pq.as_str() == text => Some(pq),
        _ => None,
    }
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
    fn optional_values_parse_or_refuse() {
        use super::{parse_optional, parse_path_with_query};
        assert_eq!(parse_optional(None, parse_path_with_query), Some(None));
        assert!(matches!(
            parse_optional(Some("/a?b"), parse_path_with_query),
            Some(Some(p)) if p.as_str() == "/a?b"
        ));
        assert_eq!(parse_optional(Some("a"), parse_path_with_query), None);
    }
}
