//! Inbound normalisation: every request reaches the guest with a scheme, an
//! authority and its path-with-query exactly as received.
//!
//! * absolute-form target (`GET http://h/x HTTP/1.1`): scheme and authority
//!   come from the target, which wins over `Host` (RFC 9112 §3.2.2);
//! * HTTP/2: from `:scheme` and `:authority` (hyper puts them in the URI);
//! * origin-form: authority from the one `Host` header, scheme from the
//!   listener. An HTTP/1.1 request without a valid `Host` is a 400
//!   (RFC 9112 §3.2); HTTP/1.0 without one uses the listener's address.

use http::uri::{Authority, Scheme, Uri};
use http::{HeaderMap, Method, Request, StatusCode, Version};

/// The client's address, as a request extension: berth's front-end
/// ([`crate::serve()`], [`crate::ServeHandle`]) adds it to every request;
/// an embedder serving [`crate::WasiHttpService`] itself may add it too.
/// It appears in the access log (`client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// Why a request was refused before reaching the guest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RejectReason {
    /// No usable `Host` header on an HTTP/1.1 request, or several.
    #[error("missing or invalid Host header")]
    BadHost,
    /// The target could not be rebuilt as an absolute URI.
    #[error("invalid request target")]
    BadTarget,
    /// `CONNECT` is never tunnelled for guests.
    #[error("CONNECT is not supported")]
    Connect,
    /// The path-with-query is longer than [`HeadLimits::max_uri_bytes`].
    #[error("request target too long")]
    UriTooLong,
    /// More header fields than [`HeadLimits::max_headers`].
    #[error("too many header fields")]
    TooManyHeaders,
    /// Header fields larger in all than [`HeadLimits::max_header_bytes`].
    #[error("header fields too large")]
    HeadersTooLarge,
}

impl RejectReason {
    /// The status answered to the client.
    pub fn status(&self) -> StatusCode {
        match self {
            RejectReason::Connect => StatusCode::NOT_IMPLEMENTED,
            RejectReason::BadHost | RejectReason::BadTarget => StatusCode::BAD_REQUEST,
            RejectReason::UriTooLong => StatusCode::URI_TOO_LONG,
            RejectReason::TooManyHeaders | RejectReason::HeadersTooLarge => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
        }
    }
}

/// Default cap on a request's path-with-query (8 KiB, as nginx's default
/// large header buffer): longer targets get `414`.
pub const DEFAULT_MAX_URI_BYTES: usize = 8 * 1024;

/// Default cap on the number of header fields of a request (100, hyper's
/// HTTP/1 default): more get `431`.
pub const DEFAULT_MAX_HEADERS: usize = 100;

/// Caps on a request head checked before any guest runs, each answered
/// with a response (`414`, `431`). The HTTP layer has its own backstops:
/// on HTTP/1.1 hyper's head buffer is [`crate::ServerConfig::max_header_bytes`]
/// (a longer head gets hyper's `431`); on HTTP/2 the front-end advertises
/// twice that as `SETTINGS_MAX_HEADER_LIST_SIZE`, so a header list between
/// the two reaches this check and gets a `431` response rather than a
/// stream reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// See [`DEFAULT_MAX_URI_BYTES`].
    pub max_uri_bytes: usize,
    /// See [`DEFAULT_MAX_HEADERS`].
    pub max_headers: usize,
    /// Largest header list, counted as HTTP/2 counts it (each field's name
    /// and value plus 32 bytes). See
    /// [`crate::config::DEFAULT_MAX_HEADER_BYTES`].
    pub max_header_bytes: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self {
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_header_bytes: crate::config::DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

impl HeadLimits {
    /// Refuses a request whose target or header count is over a cap.
    pub fn check<B>(&self, request: &Request<B>) -> Result<(), RejectReason> {
        let target = request
            .uri()
            .path_and_query()
            .map_or(0, |p| p.as_str().len());
        if target > self.max_uri_bytes {
            return Err(RejectReason::UriTooLong);
        }
        if request.headers().len() > self.max_headers {
            return Err(RejectReason::TooManyHeaders);
        }
        let size: usize = request
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum();
        if size > self.max_header_bytes {
            return Err(RejectReason::HeadersTooLarge);
        }
        Ok(())
    }
}

fn host_header(headers: &HeaderMap) -> Result<Option<Authority>, RejectReason> {
    let mut values = headers.get_all(http::header::HOST).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(RejectReason::BadHost);
    }
    let text = first.to_str().map_err(|_| RejectReason::BadHost)?;
    // Userinfo or an empty/non-numeric port make no valid Host (RFC 9110 §7.2).
    berth_http::uri::parse_authority(text)
        .map(Some)
        .ok_or(RejectReason::BadHost)
}

/// Rewrites the request URI to absolute form.
pub(crate) fn normalize<B>(
    request: &mut Request<B>,
    listener_scheme: &Scheme,
    local_authority: &Authority,
) -> Result<(), RejectReason> {
    if request.method() == Method::CONNECT {
        return Err(RejectReason::Connect);
    }
    let uri = request.uri();
    // The asterisk form is for OPTIONS only (RFC 9112 §3.2.4); the guest
    // then sees the path `*`.
    if uri.path_and_query().is_some_and(|p| p.as_str() == "*")
        && request.method() != Method::OPTIONS
    {
        return Err(RejectReason::BadTarget);
    }
    if uri.scheme().is_some() && uri.authority().is_some() {
        return Ok(());
    }
    let authority = match host_header(request.headers())? {
        Some(a) => a,
        None if request.version() == Version::HTTP_11 => return Err(RejectReason::BadHost),
        None => local_authority.clone(),
    };
    let path = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    let rebuilt = Uri::builder()
        .scheme(listener_scheme.clone())
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|_| RejectReason::BadTarget)?;
    *request.uri_mut() = rebuilt;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Authority {
        Authority::from_static("127.0.0.1:8080")
    }

    fn req(target: &str, host: &[&str], version: Version) -> Request<()> {
        let mut b = Request::builder().uri(target).version(version);
        for h in host {
            b = b.header("host", *h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn origin_form_uses_host_and_listener_scheme() {
        let mut r = req("/a%2Fb?q=%00", &["example.com:81"], Version::HTTP_11);
        normalize(&mut r, &Scheme::HTTP, &local()).unwrap();
        assert_eq!(r.uri().to_string(), "http://example.com:81/a%2Fb?q=%00");
    }

    #[test]
    fn absolute_form_wins_over_host() {
        let mut r = req("http://target.test/x", &["other.test"], Version::HTTP_11);
        normalize(&mut r, &Scheme::HTTP, &local()).unwrap();
        assert_eq!(r.uri().authority().unwrap(), "target.test");
    }

    #[test]
    fn bad_hosts_are_rejected() {
        for hosts in [
            &[][..],
            &["a.test", "b.test"],
            &["example.com:abc"],
            &["u@h"],
            &["h:"],
        ] {
            let mut r = req("/", hosts, Version::HTTP_11);
            assert_eq!(
                normalize(&mut r, &Scheme::HTTP, &local()),
                Err(RejectReason::BadHost),
                "{hosts:?}"
            );
        }
    }

    #[test]
    fn http10_without_host_uses_listener_address() {
        let mut r = req("/", &[], Version::HTTP_10);
        normalize(&mut r, &Scheme::HTTP, &local()).unwrap();
        assert_eq!(r.uri().to_string(), "http://127.0.0.1:8080/");
    }

    #[test]
    fn the_asterisk_form_is_for_options_only() {
        let mut r = Request::builder()
            .method(Method::OPTIONS)
            .uri("*")
            .header("host", "a.test")
            .body(())
            .unwrap();
        normalize(&mut r, &Scheme::HTTP, &local()).unwrap();
        assert_eq!(r.uri().path_and_query().unwrap(), "*");
        assert_eq!(r.uri().authority().unwrap(), "a.test");
        let mut r = req("*", &["a.test"], Version::HTTP_11);
        assert_eq!(
            normalize(&mut r, &Scheme::HTTP, &local()),
            Err(RejectReason::BadTarget)
        );
    }

    #[test]
    fn connect_is_refused() {
        let mut r = Request::builder()
            .method(Method::CONNECT)
            .uri("example.com:443")
            .body(())
            .unwrap();
        assert_eq!(
            normalize(&mut r, &Scheme::HTTP, &local()),
            Err(RejectReason::Connect)
        );
    }
}
