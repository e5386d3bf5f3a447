//! Mapping transport failures to precise `error-code`s.

use std::io;

#[cfg(feature = "tls")]
use berth_http::error::TlsAlertPayload;
use berth_http::{ErrorCode, error::DnsErrorPayload};

/// A DNS lookup failure. getaddrinfo reports no rcode, so the common
/// messages are translated to the rcode they stand for.
pub(crate) fn dns_error(err: &io::Error) -> ErrorCode {
    let text = err.to_string();
    let rcode = if text.contains("not known") || text.contains("No address associated") {
        Some("NXDOMAIN".to_owned())
    } else if text.contains("Temporary failure") {
        Some("SERVFAIL".to_owned())
    } else {
        None
    };
    ErrorCode::DnsError(DnsErrorPayload {
        rcode,
        info_code: None,
    })
}

/// A TCP connect failure.
pub(crate) fn connect_error(err: &io::Error) -> ErrorCode {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => ErrorCode::ConnectionRefused,
        io::ErrorKind::TimedOut => ErrorCode::ConnectionTimeout,
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            ErrorCode::DestinationUnavailable
        }
        io::ErrorKind::AddrNotAvailable => ErrorCode::DestinationIpUnroutable,
        _ => ErrorCode::ConnectionTerminated,
    }
}

/// A TLS handshake failure (rustls errors arrive wrapped in io::Error).
#[cfg(feature = "tls")]
pub(crate) fn tls_error(err: &io::Error) -> ErrorCode {
    let rustls_err = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    match rustls_err {
        Some(rustls::Error::InvalidCertificate(_))
        | Some(rustls::Error::NoCertificatesPresented)
        | Some(rustls::Error::UnsupportedNameType) => ErrorCode::TlsCertificateError,
        Some(rustls::Error::AlertReceived(alert)) => ErrorCode::TlsAlertReceived(TlsAlertPayload {
            alert_id: Some(u8::from(*alert)),
            alert_message: Some(format!("{alert:?}")),
        }),
        Some(_) => ErrorCode::TlsProtocolError,
        None => match err.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
                ErrorCode::TlsProtocolError
            }
            _ => connect_error(err),
        },
    }
}

/// An error from hyper while sending a request or reading the head.
pub(crate) fn request_error(err: &hyper::Error) -> ErrorCode {
    if let Some(code) = find_code(err) {
        return code;
    }
    if err.is_parse_too_large() {
        return ErrorCode::HttpResponseHeaderSize(Default::default());
    }
    if err.is_parse() || err.is_parse_status() {
        return ErrorCode::HttpProtocolError;
    }
    if err.is_incomplete_message() {
        return ErrorCode::HttpResponseIncomplete;
    }
    if err.is_timeout() {
        return ErrorCode::ConnectionReadTimeout;
    }
    if err.is_canceled() || err.is_closed() {
        return ErrorCode::ConnectionTerminated;
    }
    ErrorCode::classify(err)
}

/// An error from hyper while reading a response body.
pub(crate) fn body_error(err: &hyper::Error) -> ErrorCode {
    if err.is_incomplete_message() || err.is_body_write_aborted() {
        return ErrorCode::HttpResponseIncomplete;
    }
    match ErrorCode::classify(err) {
        ErrorCode::ConnectionTerminated | ErrorCode::HttpProtocolError => {
            // A cut or reset mid-body means the response is incomplete.
            ErrorCode::HttpResponseIncomplete
        }
        other => other,
    }
}

/// An [`ErrorCode`] raised by our own body wrappers somewhere in the chain.
fn find_code(err: &(dyn std::error::Error + 'static)) -> Option<ErrorCode> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(code) = e.downcast_ref::<ErrorCode>() {
            return Some(code.clone());
        }
        cur = e.source();
    }
    None
}
