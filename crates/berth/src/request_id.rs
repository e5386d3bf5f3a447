//! Request ids as clients and log pipelines see them: taken from an
//! incoming `x-request-id` when it is usable, else generated; returned in
//! the response's `x-request-id` and written in the access line and, as
//! the `request` span around the guest's run, on the guest's log lines.
//!
//! An incoming id is usable when it is 1 to 128 visible ASCII characters
//! (`!` to `~`): anything else (empty, too long, spaces, control or
//! non-ASCII bytes) is replaced by a generated one, so a client cannot
//! forge log lines or blow up their size. Generated ids are unique within
//! the process and unlikely to repeat across restarts:
//! `{process nonce}-{counter}` in hex.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderMap;

/// The header carrying the id, both ways.
pub const HEADER: &str = "x-request-id";

/// Longest incoming id kept.
pub const MAX_LEN: usize = 128;

/// The client's id if usable, else a new one.
pub(crate) fn for_request(headers: &HeaderMap) -> Arc<str> {
    let mut values = headers.get_all(HEADER).iter();
    match (values.next(), values.next()) {
        (Some(value), None) if usable(value.as_bytes()) => {
            // Visible ASCII is UTF-8.
            Arc::from(String::from_utf8_lossy(value.as_bytes()).as_ref())
        }
        _ => generate(),
    }
}

fn usable(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len()) && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// A new id, unique in this process.
pub(crate) fn generate() -> Arc<str> {
    static NONCE: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let nonce = NONCE.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        nanos ^ std::process::id().rotate_left(16)
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Arc::from(format!("{nonce:08x}-{n:x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                HEADER,
                http::HeaderValue::from_bytes(value).unwrap_or_else(|_| unreachable!()),
            );
        }
        headers
    }

    #[test]
    fn a_usable_client_id_is_kept_and_anything_else_replaced() {
        assert_eq!(&*for_request(&with(&[b"abc-123_XYZ"])), "abc-123_XYZ");
        let long = vec![b'a'; MAX_LEN];
        assert_eq!(for_request(&with(&[&long])).len(), MAX_LEN);
        let too_long = vec![b'a'; MAX_LEN + 1];
        for bad in [
            &b""[..],
            b"has space",
            b"tab\there",
            &too_long,
            b"\xc3\xa9t\xc3\xa9",
        ] {
            let id = for_request(&with(&[bad]));
            assert_ne!(id.as_bytes(), bad);
            assert!(usable(id.as_bytes()), "{id}");
        }
        // Two ids: neither is trusted.
        let two = for_request(&with(&[b"one", b"two"]));
        assert!(&*two != "one" && &*two != "two");
        assert_ne!(generate(), generate());
    }
}
