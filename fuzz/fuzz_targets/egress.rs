//! The egress IP classifier against an independent reference.
//!
//! The reference is written from the IANA special-purpose address
//! registries as prefix tables over integers (nothing shared with berth's
//! `std::net` predicates): an address is public unless it falls in one of
//! the non-globally-reachable blocks, and the IPv6 forms that carry an IPv4
//! address (mapped, compatible, 6to4, NAT64 well-known and local-use) are
//! judged by the IPv4 address they carry. `check_ip` must allow exactly
//! the public addresses plus those an allow-list entry names literally
//! (on its port, when it has one).

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use berth_outbound::policy::{EgressPolicy, HostPattern};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Addr {
    V4([u8; 4]),
    V6([u8; 16]),
    /// An IPv6 form wrapping an IPv4 address: 0 mapped, 1 compatible,
    /// 2 6to4, 3 NAT64, 4 local-use NAT64.
    Wrapped(u8, [u8; 4], [u8; 16]),
}

#[derive(Debug, Arbitrary)]
struct Entry {
    addr: Addr,
    port: Option<u16>,
}

#[derive(Debug, Arbitrary)]
struct Input {
    addr: Addr,
    port: u16,
    allow: Vec<Entry>,
    /// Also a wildcard or host entry (these never name an IP).
    wildcard: bool,
}

fn ip(addr: &Addr) -> IpAddr {
    match addr {
        Addr::V4(b) => IpAddr::V4(Ipv4Addr::from(*b)),
        Addr::V6(b) => IpAddr::V6(Ipv6Addr::from(*b)),
        Addr::Wrapped(form, v4, noise) => {
            let v4 = u128::from(u32::from_be_bytes(*v4));
            let noise = u128::from_be_bytes(*noise);
            let bits = match form % 5 {
                0 => (0xffff << 32) | v4,
                1 => v4,
                2 => (0x2002 << 112) | (v4 << 80) | (noise & ((1 << 80) - 1)),
                3 => (0x0064_ff9b << 96) | v4,
                _ => {
                    // RFC 6052 /48: v4 octets at bytes 6, 7, 9, 10; byte 8 is 0.
                    let hi = (v4 >> 16) & 0xffff;
                    let lo = v4 & 0xffff;
                    (0x0064_ff9b_0001 << 80) | (hi << 64) | (lo << 40) | (noise & 0xff_ffff_ffff)
                }
            };
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

fn in_v4(a: u32, prefix: u32, len: u32) -> bool {
    len == 0 || (a >> (32 - len)) == (prefix >> (32 - len))
}

fn in_v6(a: u128, prefix: u128, len: u32) -> bool {
    len == 0 || (a >> (128 - len)) == (prefix >> (128 - len))
}

/// IANA IPv4 special-purpose blocks that are not globally reachable.
fn reference_public_v4(a: u32) -> bool {
    const BLOCKS: &[(u32, u32)] = &[
        (0x0000_0000, 8),  // "this network"
        (0x0a00_0000, 8),  // private
        (0x6440_0000, 10), // shared address space (CGNAT)
        (0x7f00_0000, 8),  // loopback
        (0xa9fe_0000, 16), // link-local (cloud metadata)
        (0xac10_0000, 12), // private
        (0xc000_0000, 24), // IETF protocol assignments
        (0xc000_0200, 24), // documentation TEST-NET-1
        (0xc0a8_0000, 16), // private
        (0xc612_0000, 15), // benchmarking
        (0xc633_6400, 24), // documentation TEST-NET-2
        (0xcb00_7100, 24), // documentation TEST-NET-3
        (0xe000_0000, 4),  // multicast
        (0xf000_0000, 4),  // reserved, broadcast
    ];
    !BLOCKS.iter().any(|&(p, l)| in_v4(a, p, l))
}

fn reference_public(ip: IpAddr) -> bool {
    let a = match ip {
        IpAddr::V4(v4) => return reference_public_v4(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    let low32 = (a & 0xffff_ffff) as u32;
    // Forms that carry an IPv4 address.
    if in_v6(a, 0xffff << 32, 96) || in_v6(a, 0, 96) || in_v6(a, 0x0064_ff9b << 96, 96) {
        return reference_public_v4(low32);
    }
    if in_v6(a, 0x2002 << 112, 16) {
        return reference_public_v4(((a >> 80) & 0xffff_ffff) as u32);
    }
    if in_v6(a, 0x0064_ff9b_0001 << 80, 48) {
        let hi = ((a >> 64) & 0xffff) as u32;
        let lo = ((a >> 40) & 0xffff) as u32;
        return reference_public_v4((hi << 16) | lo);
    }
    const BLOCKS: &[(u128, u32)] = &[
        (0x0100 << 112, 64),     // discard-only
        (0x2001 << 112, 23),     // IETF protocol assignments (Teredo, ...)
        (0x2001_0db8 << 96, 32), // documentation
        (0xfc00 << 112, 7),      // unique local
        (0xfe80 << 112, 10),     // link-local
        (0xfec0 << 112, 10),     // site-local (deprecated)
        (0xff00 << 112, 8),      // multicast
    ];
    !BLOCKS.iter().any(|&(p, l)| in_v6(a, p, l))
}

/// The same socket address: `::ffff:a.b.c.d` is `a.b.c.d`.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn run(input: Input) {
    let target = ip(&input.addr);
    let mut patterns = Vec::new();
    let mut named = false;
    for entry in input.allow.iter().take(8) {
        let entry_ip = ip(&entry.addr);
        let text = match (entry_ip, entry.port) {
            (IpAddr::V4(v4), None) => v4.to_string(),
            (IpAddr::V4(v4), Some(p)) => format!("{v4}:{p}"),
            (IpAddr::V6(v6), None) => format!("[{v6}]"),
            (IpAddr::V6(v6), Some(p)) => format!("[{v6}]:{p}"),
        };
        let pattern: HostPattern = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        patterns.push(pattern);
        named |=
            unmapped(entry_ip) == unmapped(target) && entry.port.is_none_or(|p| p == input.port);
    }
    if input.wildcard {
        patterns.push("*".parse().expect("wildcard"));
        patterns.push("*.example.com:443".parse().expect("suffix"));
    }
    let policy = EgressPolicy::new(patterns);
    let want = reference_public(target) || named;
    let got = policy.check_ip(target, input.port).is_ok();
    assert_eq!(
        got,
        want,
        "{target} port {}: berth {}, reference {} (public {}, named {named})",
        input.port,
        if got { "allows" } else { "refuses" },
        if want { "allows" } else { "refuses" },
        reference_public(target),
    );
    assert_eq!(
        berth_outbound::policy::is_public(target),
        reference_public(target),
        "{target}"
    );
}

fuzz_target!(|input: Input| run(input));
