//! Egress policy: which destinations a guest may reach.
//!
//! Two checks, both before any connection is made:
//!
//! 1. the request's host and port must match an allow-list pattern
//!    (deny-by-default) → otherwise `HTTP-request-denied`;
//! 2. after DNS resolution every address is classified; loopback, private,
//!    link-local (169.254.169.254 included), CGNAT, ULA, site-local,
//!    unspecified, multicast, documentation, benchmarking, the IETF
//!    blocks (192.0.0/24, 2001::/23), and every IPv6 form that embeds an IPv4
//!    address (IPv4-mapped, IPv4-compatible, 6to4, NAT64 `64:ff9b::/96`
//!    and the local-use `64:ff9b:1::/48`) judged by the IPv4 address it
//!    carries, are refused unless an allow-list entry names that IP
//!    literally — and, when the entry has a port, only on that port →
//!    otherwise `destination-IP-prohibited`. The connection then goes to
//!    the checked address itself, so a second DNS answer cannot sneak past
//!    (rebinding).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use berth_http::ErrorCode;

/// One allow-list entry: `host`, `*.domain`, `*`, or an IP literal, each
/// with an optional `:port` (any port when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: HostMatch,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    Exact(String),
    Suffix(String),
    Ip(IpAddr),
}

/// Why a pattern did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host pattern {0:?}: expected host, *.domain, * or an IP, with an optional :port")]
pub struct PatternError(String);

impl FromStr for HostPattern {
    type Err = PatternError;

    fn from_str(text: &str) -> Result<Self, PatternError> {
        let err = || PatternError(text.to_owned());
        let (host, port) = split_host_port(text).ok_or_else(err)?;
        let port = match port {
            Some(p) => Some(p.parse::<u16>().map_err(|_| err())?),
            None => None,
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            if domain.is_empty() || domain.contains('*') {
                return Err(err());
            }
            HostMatch::Suffix(format!(".{domain}"))
        } else if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            HostMatch::Ip(ip)
        } else if !host.is_empty() && !host.contains('*') && !host.contains('/') {
            HostMatch::Exact(host)
        } else {
            return Err(err());
        };
        Ok(Self { host, port })
    }
}

fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?))),
        };
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port))),
        Some(_) => Some((text, None)), // a bare IPv6 literal
        None => Some((text, None)),
    }
}

impl HostPattern {
    fn matches_host(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match &self.host {
            HostMatch::Any => true,
            HostMatch::Exact(h) => host.eq_ignore_ascii_case(h),
            HostMatch::Suffix(s) => host.len() > s.len() && host.to_ascii_lowercase().ends_with(s),
            HostMatch::Ip(ip) => host.parse::<IpAddr>().is_ok_and(|h| h == *ip),
        }
    }

    /// Whether this entry names `ip` (or its IPv4-mapped twin, the same
    /// socket address) and allows `port`.
    fn names_ip(&self, ip: IpAddr, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
            && matches!(self.host, HostMatch::Ip(allowed) if unmapped(allowed) == unmapped(ip))
    }
}

/// The allow-list and address rules.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    allow: Vec<HostPattern>,
}

impl EgressPolicy {
    /// A policy allowing exactly `allow`.
    pub fn new(allow: Vec<HostPattern>) -> Self {
        Self { allow }
    }

    /// Check 1: may a request go to `host:port` at all?
    pub fn check_authority(&self, host: &str, port: u16) -> Result<(), ErrorCode> {
        if self.allow.iter().any(|p| p.matches_host(host, port)) {
            Ok(())
        } else {
            Err(ErrorCode::HttpRequestDenied)
        }
    }

    /// Check 2: may a connection be made to this resolved address and
    /// port? A non-public address needs an entry naming it, with that port
    /// or none.
    pub fn check_ip(&self, ip: IpAddr, port: u16) -> Result<(), ErrorCode> {
        if is_public(ip) || self.allow.iter().any(|p| p.names_ip(ip, port)) {
            Ok(())
        } else {
            Err(ErrorCode::DestinationIpProhibited)
        }
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`: the same socket address.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The IPv4 address an IPv6 address carries, when it is one of the forms
/// that reach (or translate to) IPv4: IPv4-mapped `::ffff:0:0/96`,
/// IPv4-compatible `::/96` (deprecated, still routed by some stacks), 6to4
/// `2002::/16`, NAT64 `64:ff9b::/96` and local-use NAT64 `64:ff9b:1::/48`
/// (RFC 6052's /48 layout: octets at bytes 6, 7, 9 and 10).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let b = v6.octets();
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let last32 = || Ipv4Addr::new(b[12], b[13], b[14], b[15]);
    if s[..6] == [0; 6] {
        // IPv4-compatible; `::` and `::1` land on 0.0.0.0 and 0.0.0.1,
        // which are not public either.
        return Some(last32());
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(b[2], b[3], b[4], b[5]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return Some(last32());
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return Some(Ipv4Addr::new(b[6], b[7], b[9], b[10]));
    }
    None
}

/// An address as the IPv4 address it embeds, if any.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether an address is on the public internet: not in one of the IANA
/// special-purpose blocks that are not globally reachable (loopback,
/// private, link-local, CGNAT, ULA, site-local, unspecified, multicast,
/// broadcast, documentation, benchmarking, IETF protocol assignments
/// such as Teredo, reserved).
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF 192.0.0/24
        || (a == 192 && b == 0 && ip.octets()[2] == 2) // documentation 192.0.2/24
        || (a == 198 && b == 51 && ip.octets()[2] == 100) // documentation 198.51.100/24
        || (a == 203 && b == 0 && ip.octets()[2] == 113) // documentation 203.0.113/24
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // ULA fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated, still routed)
        || (s[0] == 0x100 && s[1..4] == [0, 0, 0]) // discard 100::/64
        // IETF protocol assignments 2001::/23: Teredo, benchmarking, ORCHID;
        // the anycast services in it (AMT, AS112) are no HTTP origins.
        || (s[0] == 0x2001 && s[1] < 0x200)
        || (s[0] == 0x2001 && s[1] == 0xdb8)) // documentation
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(patterns: &[&str]) -> EgressPolicy {
        EgressPolicy::new(patterns.iter().map(|p| p.parse().unwrap()).collect())
    }

    #[test]
    fn allow_list_is_deny_by_default() {
        let p = policy(&[]);
        assert_eq!(
            p.check_authority("example.com", 443),
            Err(ErrorCode::HttpRequestDenied)
        );
    }

    #[test]
    fn patterns_match_hosts_suffixes_and_ports() {
        let p = policy(&["api.test", "*.cdn.test:443", "127.0.0.1:8080"]);
        assert!(p.check_authority("API.test", 80).is_ok());
        assert!(p.check_authority("a.b.cdn.test", 443).is_ok());
        assert!(p.check_authority("cdn.test", 443).is_err());
        assert!(p.check_authority("x.cdn.test", 80).is_err());
        assert!(p.check_authority("127.0.0.1", 8080).is_ok());
        assert!(p.check_authority("127.0.0.1", 8081).is_err());
        assert!(p.check_authority("evilapi.test", 80).is_err());
    }

    #[test]
    fn bad_patterns_are_rejected() {
        for bad in ["", "a*b.test", "*.", "host:port", "[::1", "*.*.test"] {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad:?}");
        }
        assert!("[::1]:443".parse::<HostPattern>().is_ok());
    }

    #[test]
    fn private_and_special_addresses_are_prohibited() {
        let p = policy(&["*"]);
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::7f00:1",
            "::ffff:169.254.169.254",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.255",
            "2001::1",
            "2001:1ff::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(
                p.check_ip(ip, 80),
                Err(ErrorCode::DestinationIpProhibited),
                "{ip}"
            );
        }
        for ip in ["93.184.216.34", "2606:4700::1", "8.8.8.8", "2001:200::1"] {
            assert!(p.check_ip(ip.parse().unwrap(), 80).is_ok(), "{ip}");
        }
    }

    #[test]
    fn an_ip_literal_in_the_allow_list_permits_that_ip_only() {
        let p = policy(&["127.0.0.1:8080"]);
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert!(p.check_ip(ip("127.0.0.1"), 8080).is_ok());
        assert!(p.check_ip(ip("::ffff:127.0.0.1"), 8080).is_ok());
        assert!(p.check_ip(ip("127.0.0.2"), 8080).is_err());
        // Other forms that embed it are not the same socket address.
        assert!(p.check_ip(ip("2002:7f00:1::"), 8080).is_err());
        assert!(p.check_ip(ip("64:ff9b::7f00:1"), 8080).is_err());
    }

    #[test]
    fn an_ip_literal_with_a_port_permits_only_that_port() {
        // A wildcard lets any name through check 1; a name that resolves
        // to the allowed private IP must still use the allowed port.
        let p = policy(&["*", "127.0.0.1:8080", "[::1]:9000", "10.0.0.7"]);
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert!(p.check_ip(ip("127.0.0.1"), 8080).is_ok());
        assert_eq!(
            p.check_ip(ip("127.0.0.1"), 22),
            Err(ErrorCode::DestinationIpProhibited)
        );
        assert!(p.check_ip(ip("::1"), 9000).is_ok());
        assert!(p.check_ip(ip("::1"), 9001).is_err());
        // Without a port, any port.
        assert!(p.check_ip(ip("10.0.0.7"), 22).is_ok());
        assert!(p.check_ip(ip("10.0.0.7"), 443).is_ok());
    }

    #[test]
    fn ipv6_forms_are_judged_by_the_ipv4_or_scope_they_embed() {
        let p = policy(&["*"]);
        let prohibited = [
            "::127.0.0.1",            // IPv4-compatible loopback
            "::10.0.0.1",             // IPv4-compatible private
            "::169.254.169.254",      // IPv4-compatible metadata
            "2002:7f00:1::",          // 6to4 of 127.0.0.1
            "2002:a9fe:a9fe::1",      // 6to4 of 169.254.169.254
            "2002:c0a8:101::",        // 6to4 of 192.168.1.1
            "64:ff9b:1:7f00:0:100::", // local-use NAT64 of 127.0.0.1
            "64:ff9b:1:a00:0:100::",  // local-use NAT64 of 10.0.0.1
            "fec0::1",                // site-local
            "feff::1",                // site-local, top of the range
        ];
        for text in prohibited {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(
                p.check_ip(ip, 80),
                Err(ErrorCode::DestinationIpProhibited),
                "{text}"
            );
        }
        let public = [
            "::8.8.8.8",             // IPv4-compatible public
            "2002:808:808::",        // 6to4 of 8.8.8.8
            "64:ff9b::808:808",      // NAT64 of 8.8.8.8
            "64:ff9b:1:808:8:800::", // local-use NAT64 of 8.8.8.8
            "2001:4860::8888",
        ];
        for text in public {
            assert!(p.check_ip(text.parse().unwrap(), 80).is_ok(), "{text}");
        }
    }

    #[test]
    fn embedded_addresses_are_extracted_by_an_independent_layout() {
        // Build each form bit by bit from the IPv4 octets and check the
        // extraction returns them.
        let v4 = Ipv4Addr::new(203, 0, 113, 9);
        let [a, b, c, d] = v4.octets();
        let forms: [[u8; 16]; 5] = [
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, a, b, c, d],
            [0x20, 0x02, a, b, c, d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, a, b, c, d],
            [0, 0x64, 0xff, 0x9b, 0, 1, a, b, 0, c, d, 0, 0, 0, 0, 0],
        ];
        for octets in forms {
            assert_eq!(embedded_v4(Ipv6Addr::from(octets)), Some(v4), "{octets:?}");
        }
        assert_eq!(embedded_v4("2001:db8::1".parse().unwrap()), None);
    }
}
