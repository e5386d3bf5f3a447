//! Conversions between `wasi:http@0.2` bindgen types and the host's own.

use crate::error::{self as neutral, HeaderError};
use crate::p2::bindings::http::types as wit;

macro_rules! same_cases {
    ($from:ident => $to:ident; $value:expr; [$($unit:ident),*]; [$($payload:ident),*]; $($rest:tt)*) => {
        match $value {
            $($from::$unit => $to::$unit,)*
            $($from::$payload(p) => $to::$payload(p),)*
            $($rest)*
        }
    };
}

/// Converts a host error code to the 0.2 WIT type.
pub fn error_code_to_wit(code: neutral::ErrorCode) -> wit::ErrorCode {
    use neutral::ErrorCode as N;
    use wit::ErrorCode as W;
    same_cases!(N => W; code;
        [DnsTimeout, DestinationNotFound, DestinationUnavailable, DestinationIpProhibited,
         DestinationIpUnroutable, ConnectionRefused, ConnectionTerminated, ConnectionTimeout,
         ConnectionReadTimeout, ConnectionWriteTimeout, ConnectionLimitReached, TlsProtocolError,
         TlsCertificateError, HttpRequestDenied, HttpRequestLengthRequired,
         HttpRequestMethodInvalid, HttpRequestUriInvalid, HttpRequestUriTooLong,
         HttpResponseIncomplete, HttpResponseTimeout, HttpUpgradeFailed, HttpProtocolError,
         LoopDetected, ConfigurationError];
        [HttpRequestBodySize, HttpRequestHeaderSectionSize, HttpRequestTrailerSectionSize,
         HttpResponseHeaderSectionSize, HttpResponseBodySize, HttpResponseTrailerSectionSize,
         HttpResponseTransferCoding, HttpResponseContentCoding, InternalError];
        N::DnsError(p) => W::DnsError(wit::DnsErrorPayload { rcode: p.rcode, info_code: p.info_code }),
        N::TlsAlertReceived(p) => W::TlsAlertReceived(wit::TlsAlertReceivedPayload {
            alert_id: p.alert_id,
            alert_message: p.alert_message,
        }),
        N::HttpRequestHeaderSize(p) => W::HttpRequestHeaderSize(p.map(field_size_to_wit)),
        N::HttpRequestTrailerSize(p) => W::HttpRequestTrailerSize(field_size_to_wit(p)),
        N::HttpResponseHeaderSize(p) => W::HttpResponseHeaderSize(field_size_to_wit(p)),
        N::HttpResponseTrailerSize(p) => W::HttpResponseTrailerSize(field_size_to_wit(p)),
    )
}

/// Converts a 0.2 WIT error code to the host's type.
pub fn error_code_from_wit(code: wit::ErrorCode) -> neutral::ErrorCode {
    use neutral::ErrorCode as N;
    use wit::ErrorCode as W;
    same_cases!(W => N; code;
        [DnsTimeout, DestinationNotFound, DestinationUnavailable, DestinationIpProhibited,
         DestinationIpUnroutable, ConnectionRefused, ConnectionTerminated, ConnectionTimeout,
         ConnectionReadTimeout, ConnectionWriteTimeout, ConnectionLimitReached, TlsProtocolError,
         TlsCertificateError, HttpRequestDenied, HttpRequestLengthRequired,
         HttpRequestMethodInvalid, HttpRequestUriInvalid, HttpRequestUriTooLong,
         HttpResponseIncomplete, HttpResponseTimeout, HttpUpgradeFailed, HttpProtocolError,
         LoopDetected, ConfigurationError];
        [HttpRequestBodySize, HttpRequestHeaderSectionSize, HttpRequestTrailerSectionSize,
         HttpResponseHeaderSectionSize, HttpResponseBodySize, HttpResponseTrailerSectionSize,
         HttpResponseTransferCoding, HttpResponseContentCoding, InternalError];
        W::DnsError(p) => N::DnsError(neutral::DnsErrorPayload { rcode: p.rcode, info_code: p.info_code }),
        W::TlsAlertReceived(p) => N::TlsAlertReceived(neutral::TlsAlertPayload {
            alert_id: p.alert_id,
            alert_message: p.alert_message,
        }),
        W::HttpRequestHeaderSize(p) => N::HttpRequestHeaderSize(p.map(field_size_from_wit)),
        W::HttpRequestTrailerSize(p) => N::HttpRequestTrailerSize(field_size_from_wit(p)),
        W::HttpResponseHeaderSize(p) => N::HttpResponseHeaderSize(field_size_from_wit(p)),
        W::HttpResponseTrailerSize(p) => N::HttpResponseTrailerSize(field_size_from_wit(p)),
    )
}

fn field_size_to_wit(p: neutral::FieldSizePayload) -> wit::FieldSizePayload {
    wit::FieldSizePayload {
        field_name: p.field_name,
        field_size: p.field_size,
    }
}

fn field_size_from_wit(p: wit::FieldSizePayload) -> neutral::FieldSizePayload {
    neutral::FieldSizePayload {
        field_name: p.field_name,
        field_size: p.field_size,
    }
}

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

/// The WIT method for an `http::Method`, keeping the case of extension
/// methods (`PURGE` stays `other("PURGE")`).
pub fn method_to_wit(method: &http::Method) -> wit::Method {
    match *method {
        http::Method::GET => wit::Method::Get,
        http::Method::HEAD => wit::Method::Head,
        http::Method::POST => wit::Method::Post,
        http::Method::PUT => wit::Method::Put,
        http::Method::DELETE => wit::Method::Delete,
        http::Method::CONNECT => wit::Method::Connect,
        http::Method::OPTIONS => wit::Method::Options,
        http::Method::TRACE => wit::Method::Trace,
        http::Method::PATCH => wit::Method::Patch,
        ref other => wit::Method::Other(other.as_str().to_owned()),
    }
}

/// The `http::Method` for a WIT method; `None` when `other` is not a token.
pub fn method_from_wit(method: &wit::Method) -> Option<http::Method> {
    Some(match method {
        wit::Method::Get => http::Method::GET,
        wit::Method::Head => http::Method::HEAD,
        wit::Method::Post => http::Method::POST,
        wit::Method::Put => http::Method::PUT,
        wit::Method::Delete => http::Method::DELETE,
        wit::Method::Connect => http::Method::CONNECT,
        wit::Method::Options => http::Method::OPTIONS,
        wit::Method::Trace => http::Method::TRACE,
        wit::Method::Patch => http::Method::PATCH,
        wit::Method::Other(s) => http::Method::from_bytes(s.as_bytes()).ok()?,
    })
}

/// The WIT scheme for an `http` scheme.
pub fn scheme_to_wit(scheme: &http::uri::Scheme) -> wit::Scheme {
    if *scheme == http::uri::Scheme::HTTP {
        wit::Scheme::Http
    } else if *scheme == http::uri::Scheme::HTTPS {
        wit::Scheme::Https
    } else {
        wit::Scheme::Other(scheme.as_str().to_owned())
    }
}

/// The `http` scheme for a WIT scheme; `None` when `other` is not valid
/// scheme syntax (RFC 3986 §3.1).
pub fn scheme_from_wit(scheme: &wit::Scheme) -> Option<http::uri::Scheme> {
    match scheme {
        wit::Scheme::Http => Some(http::uri::Scheme::HTTP),
        wit::Scheme::Https => Some(http::uri::Scheme::HTTPS),
        wit::Scheme::Other(s) => {
            let mut chars = s.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            if valid { s.parse().ok() } else { None }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
