//! Conversions between `wasi:http@0.2` bindgen types and the host's own.

use crate::error::HeaderError;
use crate::p2::bindings::http::types as wit;

crate::conv::wit_conversions!();

/// Converts a header error to the 0.2 WIT type. 0.2 has no size case: the
/// caller traps instead (see [`crate::p2`] docs), so this returns `None` for it.
pub fn header_error_to_wit(err: HeaderError) -> Option<wit::HeaderError> {
    match err {
        HeaderError::InvalidSyntax => Some(wit::HeaderError::InvalidSyntax),
        HeaderError::Forbidden => Some(wit::HeaderError::Forbidden),
        HeaderError::Immutable => Some(wit::HeaderError::Immutable),
        HeaderError::SizeExceeded { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error as neutral;

    #[test]
    fn error_codes_round_trip() {
        let codes = [
            neutral::ErrorCode::DnsError(neutral::DnsErrorPayload {
                rcode: Some("NXDOMAIN".into()),
                info_code: Some(3),
            }),
            neutral::ErrorCode::HttpResponseBodySize(Some(7)),
            neutral::ErrorCode::HttpRequestTrailerSize(neutral::FieldSizePayload::default()),
            neutral::ErrorCode::InternalError(Some("x".into())),
            neutral::ErrorCode::LoopDetected,
        ];
        for code in codes {
            assert_eq!(error_code_from_wit(error_code_to_wit(code.clone())), code);
        }
    }

    #[test]
    fn methods_keep_extension_case() {
        let purge = http::Method::from_bytes(b"PURGE").unwrap();
        let wit = method_to_wit(&purge);
        assert!(matches!(&wit, wit::Method::Other(s) if s == "PURGE"));
        assert_eq!(method_from_wit(&wit), Some(purge));
        assert_eq!(
            method_from_wit(&wit::Method::Other("bad method".into())),
            None
        );
    }

    #[test]
    fn schemes_validate_syntax() {
        assert_eq!(scheme_from_wit(&wit::Scheme::Other("1x".into())), None);
        assert_eq!(scheme_from_wit(&wit::Scheme::Other("a b".into())), None);
        assert!(scheme_from_wit(&wit::Scheme::Other("ws+x".into())).is_some());
    }
}
