//! Conversions between `wasi:http@0.3.0` bindgen types and the host's own.

use crate::error::HeaderError;
use crate::p3::bindings::http::types as wit;

crate::conv::wit_conversions!();

/// Converts a header error to the 0.3 WIT type (which, unlike 0.2, has a
/// `size-exceeded` case).
pub fn header_error_to_wit(err: HeaderError) -> wit::HeaderError {
    match err {
        HeaderError::InvalidSyntax => wit::HeaderError::InvalidSyntax,
        HeaderError::Forbidden => wit::HeaderError::Forbidden,
        HeaderError::Immutable => wit::HeaderError::Immutable,
        HeaderError::SizeExceeded { .. } => wit::HeaderError::SizeExceeded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn error_codes_round_trip() {
        for code in [
            ErrorCode::HttpResponseBodySize(Some(7)),
            ErrorCode::ConnectionLimitReached,
            ErrorCode::InternalError(Some("x".into())),
        ] {
            assert_eq!(error_code_from_wit(error_code_to_wit(code.clone())), code);
        }
    }

    #[test]
    fn size_exceeded_has_its_own_case() {
        assert!(matches!(
            header_error_to_wit(HeaderError::SizeExceeded { limit: 1 }),
            wit::HeaderError::SizeExceeded
        ));
    }
}
