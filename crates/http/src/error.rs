//! Version-neutral HTTP error codes.
//!
//! [`ErrorCode`] mirrors the `error-code` variant of `wasi:http/types`
//! (identical in 0.2 and 0.3) so that body plumbing, the outbound client and
//! the server front-end can speak one error language. Each version module
//! converts it to its own bindgen type in its `conv.rs`.

use std::fmt;

use wasmtime::component::ResourceTableError;

/// Payload of [`ErrorCode::DnsError`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsErrorPayload {
    /// DNS response code, when known (e.g. `NXDOMAIN`).
    pub rcode: Option<String>,
    /// Extended DNS error info-code, when known.
    pub info_code: Option<u16>,
}

/// Payload of [`ErrorCode::TlsAlertReceived`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsAlertPayload {
    /// The TLS alert number.
    pub alert_id: Option<u8>,
    /// A readable description of the alert.
    pub alert_message: Option<String>,
}

/// Payload of the `*-header-size` and `*-trailer-size` error codes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSizePayload {
    /// The field that was too large, when known.
    pub field_name: Option<String>,
    /// Its size in bytes, when known.
    pub field_size: Option<u32>,
}

/// An HTTP error, in the order and with the meaning of the WIT `error-code`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[allow(missing_docs, reason = "each variant is the WIT case of the same name")]
pub enum ErrorCode {
    DnsTimeout,
    DnsError(DnsErrorPayload),
    DestinationNotFound,
    DestinationUnavailable,
    DestinationIpProhibited,
    DestinationIpUnroutable,
    ConnectionRefused,
    ConnectionTerminated,
    ConnectionTimeout,
    ConnectionReadTimeout,
    ConnectionWriteTimeout,
    ConnectionLimitReached,
    TlsProtocolError,
    TlsCertificateError,
    TlsAlertReceived(TlsAlertPayload),
    HttpRequestDenied,
    HttpRequestLengthRequired,
    HttpRequestBodySize(Option<u64>),
    HttpRequestMethodInvalid,
    HttpRequestUriInvalid,
    HttpRequestUriTooLong,
    HttpRequestHeaderSectionSize(Option<u32>),
    HttpRequestHeaderSize(Option<FieldSizePayload>),
    HttpRequestTrailerSectionSize(Option<u32>),
    HttpRequestTrailerSize(FieldSizePayload),
    HttpResponseIncomplete,
    HttpResponseHeaderSectionSize(Option<u32>),
    HttpResponseHeaderSize(FieldSizePayload),
    HttpResponseBodySize(Option<u64>),
    HttpResponseTrailerSectionSize(Option<u32>),
    HttpResponseTrailerSize(FieldSizePayload),
    HttpResponseTransferCoding(Option<String>),
    HttpResponseContentCoding(Option<String>),
    HttpResponseTimeout,
    HttpUpgradeFailed,
    HttpProtocolError,
    LoopDetected,
    ConfigurationError,
    InternalError(Option<String>),
}

impl fmt::Display for ErrorCode {
    /// The WIT case name (`HTTP-request-denied`, `connection-refused`, …)
    /// and what its payload says, if anything.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.wit_name();
        let field = |f: &mut fmt::Formatter<'_>, p: &FieldSizePayload| match (
            &p.field_name,
            p.field_size,
        ) {
            (Some(n), Some(size)) => write!(f, "{name} ({n}: {size} bytes)"),
            (Some(n), None) => write!(f, "{name} ({n})"),
            (None, Some(size)) => write!(f, "{name} ({size} bytes)"),
            (None, None) => f.write_str(name),
        };
        match self {
            ErrorCode::InternalError(Some(msg)) => write!(f, "internal error: {msg}"),
            ErrorCode::HttpRequestBodySize(Some(n)) => write!(
                f,
                "HTTP request body size does not match its Content-Length ({n} bytes written)"
            ),
            ErrorCode::HttpResponseBodySize(Some(n)) => write!(
                f,
                "HTTP response body size does not match its Content-Length ({n} bytes written)"
            ),
            ErrorCode::DnsError(p) => match (&p.rcode, p.info_code) {
                (Some(rcode), Some(info)) => write!(f, "{name} ({rcode}, info code {info})"),
                (Some(rcode), None) => write!(f, "{name} ({rcode})"),
                (None, Some(info)) => write!(f, "{name} (info code {info})"),
                (None, None) => f.write_str(name),
            },
            ErrorCode::TlsAlertReceived(p) => match (p.alert_id, &p.alert_message) {
                (Some(id), Some(msg)) => write!(f, "{name} ({id}: {msg})"),
                (Some(id), None) => write!(f, "{name} ({id})"),
                (None, Some(msg)) => write!(f, "{name} ({msg})"),
                (None, None) => f.write_str(name),
            },
            ErrorCode::HttpRequestHeaderSize(Some(p)) => field(f, p),
            ErrorCode::HttpRequestTrailerSize(p)
            | ErrorCode::HttpResponseHeaderSize(p)
            | ErrorCode::HttpResponseTrailerSize(p) => field(f, p),
            ErrorCode::HttpRequestHeaderSectionSize(Some(n))
            | ErrorCode::HttpRequestTrailerSectionSize(Some(n))
            | ErrorCode::HttpResponseHeaderSectionSize(Some(n))
            | ErrorCode::HttpResponseTrailerSectionSize(Some(n)) => write!(f, "{name} ({n} bytes)"),
            ErrorCode::HttpResponseTransferCoding(Some(coding))
            | ErrorCode::HttpResponseContentCoding(Some(coding)) => write!(f, "{name} ({coding})"),
            _ => f.write_str(name),
        }
    }
}

impl std::error::Error for ErrorCode {}

impl ErrorCode {
    /// The WIT name of this case (`HTTP-request-denied`, `loop-detected`,
    /// …), without its payload: a bounded label for metrics and logs.
    pub fn wit_name(&self) -> &'static str {
        match self {
            ErrorCode::DnsTimeout => "DNS-timeout",
            ErrorCode::DnsError(_) => "DNS-error",
            ErrorCode::DestinationNotFound => "destination-not-found",
            ErrorCode::DestinationUnavailable => "destination-unavailable",
            ErrorCode::DestinationIpProhibited => "destination-IP-prohibited",
            ErrorCode::DestinationIpUnroutable => "destination-IP-unroutable",
            ErrorCode::ConnectionRefused => "connection-refused",
            ErrorCode::ConnectionTerminated => "connection-terminated",
            ErrorCode::ConnectionTimeout => "connection-timeout",
            ErrorCode::ConnectionReadTimeout => "connection-read-timeout",
            ErrorCode::ConnectionWriteTimeout => "connection-write-timeout",
            ErrorCode::ConnectionLimitReached => "connection-limit-reached",
            ErrorCode::TlsProtocolError => "TLS-protocol-error",
            ErrorCode::TlsCertificateError => "TLS-certificate-error",
            ErrorCode::TlsAlertReceived(_) => "TLS-alert-received",
            ErrorCode::HttpRequestDenied => "HTTP-request-denied",
            ErrorCode::HttpRequestLengthRequired => "HTTP-request-length-required",
            ErrorCode::HttpRequestBodySize(_) => "HTTP-request-body-size",
            ErrorCode::HttpRequestMethodInvalid => "HTTP-request-method-invalid",
            ErrorCode::HttpRequestUriInvalid => "HTTP-request-URI-invalid",
            ErrorCode::HttpRequestUriTooLong => "HTTP-request-URI-too-long",
            ErrorCode::HttpRequestHeaderSectionSize(_) => "HTTP-request-header-section-size",
            ErrorCode::HttpRequestHeaderSize(_) => "HTTP-request-header-size",
            ErrorCode::HttpRequestTrailerSectionSize(_) => "HTTP-request-trailer-section-size",
            ErrorCode::HttpRequestTrailerSize(_) => "HTTP-request-trailer-size",
            ErrorCode::HttpResponseIncomplete => "HTTP-response-incomplete",
            ErrorCode::HttpResponseHeaderSectionSize(_) => "HTTP-response-header-section-size",
            ErrorCode::HttpResponseHeaderSize(_) => "HTTP-response-header-size",
            ErrorCode::HttpResponseBodySize(_) => "HTTP-response-body-size",
            ErrorCode::HttpResponseTrailerSectionSize(_) => "HTTP-response-trailer-section-size",
            ErrorCode::HttpResponseTrailerSize(_) => "HTTP-response-trailer-size",
            ErrorCode::HttpResponseTransferCoding(_) => "HTTP-response-transfer-coding",
            ErrorCode::HttpResponseContentCoding(_) => "HTTP-response-content-coding",
            ErrorCode::HttpResponseTimeout => "HTTP-response-timeout",
            ErrorCode::HttpUpgradeFailed => "HTTP-upgrade-failed",
            ErrorCode::HttpProtocolError => "HTTP-protocol-error",
            ErrorCode::LoopDetected => "loop-detected",
            ErrorCode::ConfigurationError => "configuration-error",
            ErrorCode::InternalError(_) => "internal-error",
        }
    }

    /// An `internal-error` carrying a readable message.
    pub fn internal(msg: impl Into<String>) -> Self {
        ErrorCode::InternalError(Some(msg.into()))
    }

    /// Maps an error from the network side (hyper, io) to the closest
    /// error-code by walking its source chain. An [`ErrorCode`] found in the
    /// chain wins, so codes raised by our own body wrappers survive hyper.
    pub fn classify(err: &(dyn std::error::Error + 'static)) -> ErrorCode {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = cur {
            if let Some(code) = e.downcast_ref::<ErrorCode>() {
                return code.clone();
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if let Some(code) = io.get_ref().and_then(|i| i.downcast_ref::<ErrorCode>()) {
                    return code.clone();
                }
                return match io.kind() {
                    std::io::ErrorKind::TimedOut => ErrorCode::ConnectionReadTimeout,
                    std::io::ErrorKind::ConnectionRefused => ErrorCode::ConnectionRefused,
                    _ => ErrorCode::ConnectionTerminated,
                };
            }
            cur = e.source();
        }
        ErrorCode::HttpProtocolError
    }
}

/// Errors from `fields` operations, mirroring the WIT `header-error` plus the
/// size case that 0.3 has and 0.2 lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// A name is not a token or a value contains CR, LF, NUL or another
    /// control byte.
    #[error("invalid header syntax")]
    InvalidSyntax,
    /// The name is one the host does not let guests set.
    #[error("forbidden header")]
    Forbidden,
    /// The fields are an immutable view.
    #[error("headers are immutable")]
    Immutable,
    /// The fields would exceed the configured size limit.
    #[error("header block exceeds the size limit of {limit} bytes")]
    SizeExceeded {
        /// The configured limit in bytes.
        limit: usize,
    },
}

/// Result of a host function that may return an `error-code` or trap.
pub type HttpResult<T> = Result<T, HttpError>;

/// An `error-code` for the guest, or a trap.
#[derive(Debug)]
#[non_exhaustive]
pub enum HttpError {
    /// Returned to the guest.
    Code(ErrorCode),
    /// Ends the guest's execution.
    Trap(wasmtime::Error),
}

impl From<ErrorCode> for HttpError {
    fn from(code: ErrorCode) -> Self {
        HttpError::Code(code)
    }
}

impl From<ResourceTableError> for HttpError {
    fn from(err: ResourceTableError) -> Self {
        HttpError::Trap(err.into())
    }
}

impl From<wasmtime::Error> for HttpError {
    fn from(err: wasmtime::Error) -> Self {
        HttpError::Trap(err)
    }
}

/// A `header-error` for the guest, or a trap.
#[derive(Debug)]
#[non_exhaustive]
pub enum FieldsError {
    /// Returned to the guest.
    Header(HeaderError),
    /// Ends the guest's execution.
    Trap(wasmtime::Error),
}

impl From<HeaderError> for FieldsError {
    fn from(err: HeaderError) -> Self {
        FieldsError::Header(err)
    }
}

impl From<ResourceTableError> for FieldsError {
    fn from(err: ResourceTableError) -> Self {
        FieldsError::Trap(err.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_finds_error_code_in_chain() {
        let io = std::io::Error::other(ErrorCode::HttpRequestBodySize(Some(3)));
        assert_eq!(
            ErrorCode::classify(&io),
            ErrorCode::HttpRequestBodySize(Some(3))
        );
    }

    #[test]
    fn classify_maps_timeouts() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        assert_eq!(ErrorCode::classify(&io), ErrorCode::ConnectionReadTimeout);
    }

    #[test]
    fn display_is_readable() {
        assert_eq!(
            ErrorCode::internal("boom").to_string(),
            "internal error: boom"
        );
        assert_eq!(
            HeaderError::SizeExceeded { limit: 10 }.to_string(),
            "header block exceeds the size limit of 10 bytes"
        );
    }
}
