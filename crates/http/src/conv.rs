//! Conversions shared by every `wasi:http` version.
//!
//! The `error-code`, `method` and `scheme` types are the same in 0.2 and 0.3,
//! but bindgen generates one copy per version. `wit_conversions!` expands
//! the conversions for a version module that has `wit` in scope naming its
//! `wasi:http/types` bindings, so the mapping is written once.

/// Maps each listed case of one enum to the same-named case of another.
macro_rules! same_cases {
    ($from:ident => $to:ident; $value:expr; [$($unit:ident),*]; [$($payload:ident),*]; $($rest:tt)*) => {
        match $value {
            $($from::$unit => $to::$unit,)*
            $($from::$payload(p) => $to::$payload(p),)*
            $($rest)*
        }
    };
}

/// `same_cases!` over the `error-code` cases that carry nothing or the same
/// payload in the host and WIT types; `$rest` maps the others. One list
/// serves both directions, so they cannot drift apart.
macro_rules! error_code_cases {
    ($from:ident => $to:ident; $value:expr; $($rest:tt)*) => {
        $crate::conv::same_cases!($from => $to; $value;
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
            $($rest)*)
    };
}

/// Expands `error_code_to_wit`, `error_code_from_wit`, `method_to_wit`,
/// `method_from_wit`, `scheme_to_wit` and `scheme_from_wit` for the bindgen
/// module named `wit` at the call site.
macro_rules! wit_conversions {
    () => {
        /// Converts a host error code to the WIT type.
        pub fn error_code_to_wit(code: $crate::error::ErrorCode) -> wit::ErrorCode {
            use $crate::error::ErrorCode as N;
            use wit::ErrorCode as W;
            $crate::conv::error_code_cases!(N => W; code;
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

        /// Converts a WIT error code to the host's type.
        pub fn error_code_from_wit(code: wit::ErrorCode) -> $crate::error::ErrorCode {
            use $crate::error::ErrorCode as N;
            use wit::ErrorCode as W;
            $crate::conv::error_code_cases!(W => N; code;
                W::DnsError(p) => N::DnsError($crate::error::DnsErrorPayload { rcode: p.rcode, info_code: p.info_code }),
                W::TlsAlertReceived(p) => N::TlsAlertReceived($crate::error::TlsAlertPayload {
                    alert_id: p.alert_id,
                    alert_message: p.alert_message,
                }),
                W::HttpRequestHeaderSize(p) => N::HttpRequestHeaderSize(p.map(field_size_from_wit)),
                W::HttpRequestTrailerSize(p) => N::HttpRequestTrailerSize(field_size_from_wit(p)),
                W::HttpResponseHeaderSize(p) => N::HttpResponseHeaderSize(field_size_from_wit(p)),
                W::HttpResponseTrailerSize(p) => N::HttpResponseTrailerSize(field_size_from_wit(p)),
            )
        }

        fn field_size_to_wit(p: $crate::error::FieldSizePayload) -> wit::FieldSizePayload {
            wit::FieldSizePayload {
                field_name: p.field_name,
                field_size: p.field_size,
            }
        }

        fn field_size_from_wit(p: wit::FieldSizePayload) -> $crate::error::FieldSizePayload {
            $crate::error::FieldSizePayload {
                field_name: p.field_name,
                field_size: p.field_size,
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
    };
}
pub(crate) use {error_code_cases, same_cases, wit_conversions};
