//! Responses the host makes itself (errors), the response body type, and
//! the access log line written when a body ends.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use berth_http::{ErrorCode, GuestBody};
use berth_runtime::HandleError;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body::{Body, Frame, SizeHint};

/// The status a failed request is answered with.
pub fn status_for(err: &HandleError) -> StatusCode {
    match err {
        HandleError::Timeout(_) | HandleError::CpuLimit(_) => StatusCode::GATEWAY_TIMEOUT,
        HandleError::Guest(code) => status_for_guest_error(code),
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A guest that answers `response-outparam.set(err(code))` reports why it
/// could not produce a response; upstream failures become 502/504.
fn status_for_guest_error(code: &ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        ConnectionTimeout | ConnectionReadTimeout | HttpResponseTimeout | DnsTimeout => {
            StatusCode::GATEWAY_TIMEOUT
        }
        DnsError(_)
        | DestinationNotFound
        | DestinationUnavailable
        | DestinationIpUnroutable
        | ConnectionRefused
        | ConnectionTerminated
        | TlsProtocolError
        | TlsCertificateError
        | TlsAlertReceived(_)
        | HttpResponseIncomplete
        | HttpProtocolError => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A short plain-text error response. Guest details stay in the log.
pub fn error_response(status: StatusCode, request_id: u64) -> http::Response<ResponseBody> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let text = format!("{} {reason} (request {request_id})\n", status.as_u16());
    let mut response = http::Response::new(ResponseBody::fixed(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// What the access log line says about one request.
#[derive(Debug)]
pub struct AccessLog {
    request_id: u64,
    method: Method,
    path: String,
    status: StatusCode,
    started: Instant,
    bytes: u64,
    ended: bool,
    failed: bool,
}

impl AccessLog {
    /// Starts the record of a request.
    pub fn new(request_id: u64, method: Method, path: String, started: Instant) -> Self {
        Self {
            request_id,
            method,
            path,
            status: StatusCode::OK,
            started,
            bytes: 0,
            ended: false,
            failed: false,
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        tracing::info!(
            target: "berth::access",
            request_id = self.request_id,
            method = %self.method,
            path = %self.path,
            status = self.status.as_u16(),
            bytes = self.bytes,
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            outcome = if self.failed {
                "failed"
            } else if self.ended {
                "complete"
            } else {
                "client-gone"
            },
            "{} {} {} {}B",
            self.method,
            self.path,
            self.status.as_u16(),
            self.bytes
        );
    }
}

#[derive(Debug)]
enum Inner {
    Guest(GuestBody),
    Fixed(Option<Bytes>),
}

/// The body of every response berth sends: the guest's, or a fixed one.
/// It carries the access log record, written when the body is dropped.
#[derive(Debug)]
pub struct ResponseBody {
    inner: Inner,
    log: Option<AccessLog>,
}

impl ResponseBody {
    /// A guest-written body.
    pub fn guest(body: GuestBody) -> Self {
        Self {
            inner: Inner::Guest(body),
            log: None,
        }
    }

    /// A fixed body.
    pub fn fixed(bytes: Bytes) -> Self {
        Self {
            inner: Inner::Fixed(Some(bytes)),
            log: None,
        }
    }

    /// Attaches the access log record; `status` is what is being sent.
    pub fn with_log(mut self, mut log: AccessLog, status: StatusCode) -> Self {
        log.status = status;
        self.log = Some(log);
        self
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        let this = &mut *self;
        let frame = match &mut this.inner {
            Inner::Guest(body) => ready!(Pin::new(body).poll_frame(cx)),
            Inner::Fixed(bytes) => bytes.take().map(|b| Ok(Frame::data(b))),
        };
        if let Some(log) = &mut this.log {
            match &frame {
                Some(Ok(f)) => {
                    if let Some(data) = f.data_ref() {
                        log.bytes += data.len() as u64;
                    }
                }
                Some(Err(err)) => {
                    log.failed = true;
                    tracing::error!(
                        request_id = log.request_id,
                        error = %err,
                        "response body failed; aborting the response"
                    );
                }
                None => log.ended = true,
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Guest(body) => body.is_end_stream(),
            Inner::Fixed(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Guest(body) => body.size_hint(),
            Inner::Fixed(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Inner::Fixed(None) => SizeHint::with_exact(0),
        }
    }
}
