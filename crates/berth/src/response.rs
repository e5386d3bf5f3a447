//! Responses the host makes itself (errors), the response body type, and
//! the access log line written when a body ends.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use berth_http::{ErrorCode, GuestBody};
use berth_runtime::HandleError;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

/// The status a failed request is answered with.
pub(crate) fn status_for(err: &HandleError) -> StatusCode {
    match err {
        _ if err.is_overload() => StatusCode::SERVICE_UNAVAILABLE,
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

/// Renders the responses berth makes itself: `404` for no route, `413`,
/// `503` for overload, `504` for a guest over its limits, `500` for a trap…
/// An embedder's renderer replaces berth's short plain-text pages (to
/// serve JSON problem details, or its own branding). Guest details never
/// reach it (they stay in the log); `503` responses get `Retry-After`
/// unless the page sets it, and every page gets `x-request-id`.
///
/// ```
/// struct Json;
/// impl berth::response::ErrorPage for Json {
///     fn render(&self, status: http::StatusCode, request_id: &str) -> http::Response<bytes::Bytes> {
///         let body = format!(r#"{{"status":{},"request_id":"{request_id}"}}"#, status.as_u16());
///         let mut page = http::Response::new(bytes::Bytes::from(body));
///         *page.status_mut() = status;
///         page.headers_mut().insert("content-type", http::HeaderValue::from_static("application/json"));
///         page
///     }
/// }
/// ```
pub trait ErrorPage: Send + Sync + 'static {
    /// The response for `status` (the status of the returned response
    /// is used as is) to the request berth knows as `request_id`.
    fn render(&self, status: StatusCode, request_id: &str) -> http::Response<Bytes>;
}

/// The error page for `status`: `pages`' if given, else berth's own.
pub(crate) fn error_page(
    pages: Option<&std::sync::Arc<dyn ErrorPage>>,
    status: StatusCode,
    request_id: &str,
) -> http::Response<ResponseBody> {
    let Some(pages) = pages else {
        return error_response(status, request_id);
    };
    let mut response = pages.render(status, request_id).map(ResponseBody::fixed);
    if response.status() == StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(http::header::RETRY_AFTER)
    {
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    response
}

/// A short plain-text error response. Guest details stay in the log.
pub(crate) fn error_response(status: StatusCode, request_id: &str) -> http::Response<ResponseBody> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let text = format!("{} {reason} (request {request_id})\n", status.as_u16());
    let mut response = http::Response::new(ResponseBody::fixed(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // Overload is momentary: ask the client to come back shortly.
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    response
}

/// The `Retry-After` of every `503` (seconds).
pub const RETRY_AFTER_SECS: &str = "1";

/// What the access log line says about one request.
#[derive(Debug)]
pub(crate) struct AccessLog {
    request_id: std::sync::Arc<str>,
    /// The app that answered, when the server routes between several.
    app: Option<std::sync::Arc<str>>,
    /// The client's address, when the front-end knows it.
    client: Option<std::net::SocketAddr>,
    version: http::Version,
    method: Method,
    path: String,
    status: StatusCode,
    started: Instant,
    bytes: u64,
    expected: Option<u64>,
    ended: bool,
    failed: bool,
    metrics: Option<crate::metrics::AppMetrics>,
    /// The request's trace span, kept open until the response ends.
    span: Option<tracing::Span>,
}

impl AccessLog {
    /// Starts the record of a request.
    pub(crate) fn new(
        request_id: std::sync::Arc<str>,
        method: Method,
        path: String,
        started: Instant,
    ) -> Self {
        Self {
            request_id,
            app: None,
            client: None,
            version: http::Version::HTTP_11,
            method,
            path,
            status: StatusCode::OK,
            started,
            bytes: 0,
            expected: None,
            ended: false,
            failed: false,
            metrics: None,
            span: None,
        }
    }

    /// Records where the request came from and over which protocol.
    pub(crate) fn with_client(
        mut self,
        client: Option<std::net::SocketAddr>,
        version: http::Version,
    ) -> Self {
        self.client = client;
        self.version = version;
        self
    }

    /// The body length the response head declares (`Content-Length`):
    /// hyper stops reading the body once that much is sent, so reaching it
    /// is the body's end.
    pub(crate) fn with_declared_length(mut self, length: Option<u64>) -> Self {
        self.expected = length;
        self
    }

    /// Keeps the request's trace span open until the response ends, and
    /// records its status there.
    pub(crate) fn with_span(mut self, span: tracing::Span) -> Self {
        self.span = Some(span);
        self
    }

    /// Names the app that answered.
    pub(crate) fn with_app(mut self, app: Option<std::sync::Arc<str>>) -> Self {
        self.app = app;
        self
    }

    /// Counts the request in its app's `metrics` too (in flight from now,
    /// answered when the record ends).
    pub(crate) fn with_metrics(mut self, metrics: Option<crate::metrics::AppMetrics>) -> Self {
        if let Some(metrics) = &metrics {
            metrics.request_started();
        }
        self.metrics = metrics;
        self
    }

    fn app_name(&self) -> &str {
        self.app.as_deref().unwrap_or("-")
    }

    fn outcome(&self) -> &'static str {
        if self.failed {
            "failed"
        } else if self.ended {
            "complete"
        } else {
            "client-gone"
        }
    }
}

/// A value, or `-` when there is none (without allocating).
struct OrDash<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for OrDash<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// The protocol as the access log names it.
fn protocol(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        if let Some(span) = &self.span {
            span.record("http.response.status_code", self.status.as_u16());
            if self.status.is_server_error() || self.failed {
                span.record(
                    "error.type",
                    if self.failed {
                        "aborted"
                    } else {
                        self.status.as_str()
                    },
                );
            }
        }
        tracing::info!(
            target: "berth::access",
            request_id = &*self.request_id,
            app = self.app_name(),
            client = %OrDash(self.client),
            protocol = protocol(self.version),
            method = %self.method,
            path = %self.path,
            status = self.status.as_u16(),
            bytes = self.bytes,
            // Whole microseconds: `0.924`, not `0.9244859999999999`.
            duration_ms = self.started.elapsed().as_micros() as f64 / 1000.0,
            outcome = self.outcome(),
            "{} {} {} {}B",
            self.method,
            self.path,
            self.status.as_u16(),
            self.bytes
        );
        if let Some(metrics) = &self.metrics {
            let took = self.started.elapsed();
            metrics.request_ended(self.status.as_u16(), self.outcome(), took);
        }
    }
}

#[derive(Debug)]
enum Inner {
    Guest {
        /// Frames read ahead while the head was held (see [`hold_head`]).
        held: VecDeque<Result<Frame<Bytes>, ErrorCode>>,
        /// The rest of the body; `None` once it ended.
        rest: Option<GuestBody>,
    },
    Fixed(Option<Bytes>),
}

/// The body of every response berth sends: the guest's, or a fixed one.
/// It carries the access log record, written when the body is dropped.
#[derive(Debug)]
pub struct ResponseBody {
    inner: Inner,
    log: Option<AccessLog>,
    /// Set when the request body broke a limit: the response, already
    /// started, is aborted rather than finished.
    tripwire: Option<crate::limits::Tripwire>,
    /// The request's admission place, released when the body ends.
    place: Option<crate::admission::Place>,
    /// A failure held back for one poll (see [`Body::poll_frame`]).
    failure: Failure,
}

/// A body failure is reported one poll late: hyper's HTTP/1.1 writer
/// buffers the head and body bytes and flushes them when the body is
/// pending, but drops its buffer when the body fails. Yielding once first
/// lets what was written reach the client, so it sees the head and the
/// bytes, then the connection cut — never an empty reply.
#[derive(Debug, Default)]
enum Failure {
    #[default]
    None,
    Deferred(ErrorCode),
    Reported,
}

impl ResponseBody {
    /// A fixed body.
    pub(crate) fn fixed(bytes: Bytes) -> Self {
        Self {
            inner: Inner::Fixed(Some(bytes)),
            log: None,
            tripwire: None,
            place: None,
            failure: Failure::None,
        }
    }

    /// Aborts this (already started) response once the request body it
    /// answers breaks a limit.
    pub(crate) fn abort_on(mut self, tripwire: crate::limits::Tripwire) -> Self {
        self.tripwire = Some(tripwire);
        self
    }

    /// Keeps the request's admission place until this body ends.
    pub(crate) fn holding(mut self, place: crate::admission::Place) -> Self {
        self.place = Some(place);
        self
    }

    /// Attaches the access log record; `status` is what is being sent.
    pub(crate) fn with_log(mut self, mut log: AccessLog, status: StatusCode) -> Self {
        log.status = status;
        log.expected = log.expected.or(self.size_hint().exact());
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
        match std::mem::take(&mut this.failure) {
            Failure::Deferred(err) => {
                this.failure = Failure::Reported;
                return Poll::Ready(Some(Err(err)));
            }
            Failure::Reported => {
                this.failure = Failure::Reported;
                return Poll::Ready(None);
            }
            Failure::None => {}
        }
        let broken = this.tripwire.as_ref().and_then(|t| t.get().copied());
        let frame = match &mut this.inner {
            _ if broken.is_some() => {
                this.tripwire = None;
                Some(Err(match broken {
                    Some(crate::limits::Broken::Stalled) => ErrorCode::ConnectionReadTimeout,
                    _ => ErrorCode::HttpRequestBodySize(None),
                }))
            }
            Inner::Guest { held, rest } => match held.pop_front() {
                Some(frame) => Some(frame),
                None => match rest {
                    Some(body) => ready!(Pin::new(body).poll_frame(cx)),
                    None => None,
                },
            },
            Inner::Fixed(bytes) => bytes.take().map(|b| Ok(Frame::data(b))),
        };
        // hyper stops polling once the body says it has ended.
        let drained = match &this.inner {
            Inner::Guest { held, rest } => held.is_empty() && rest.is_none(),
            Inner::Fixed(bytes) => bytes.is_none(),
        };
        if let Some(log) = &mut this.log {
            match &frame {
                Some(Ok(f)) => {
                    if let Some(data) = f.data_ref() {
                        log.bytes += data.len() as u64;
                        // hyper stops polling once a declared length is sent.
                        if log.expected == Some(log.bytes) {
                            log.ended = true;
                        }
                    }
                    log.ended |= drained;
                }
                Some(Err(err)) => {
                    log.failed = true;
                    tracing::error!(
                        request_id = &*log.request_id,
                        error = %err,
                        "response body failed; aborting the response"
                    );
                }
                None => log.ended = true,
            }
        }
        if let Some(Err(err)) = frame {
            this.failure = Failure::Deferred(err);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        if matches!(self.failure, Failure::Deferred(_)) {
            return false;
        }
        match &self.inner {
            Inner::Guest { held, rest } => {
                held.is_empty() && rest.as_ref().is_none_or(|b| b.is_end_stream())
            }
            Inner::Fixed(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Guest {
                held,
                rest: Some(body),
            } if held.is_empty() => body.size_hint(),
            Inner::Guest { .. } => SizeHint::default(),
            Inner::Fixed(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Inner::Fixed(None) => SizeHint::with_exact(0),
        }
    }
}

/// Longest the head of a response is held back: to learn whether its body
/// fails at once (then the client gets an error response instead of a
/// silent close) and, on HTTP/1.1, the names of undeclared trailers.
pub const HEAD_HOLD_TIME: Duration = Duration::from_millis(200);

/// Most body bytes read ahead while the head is held for trailers.
pub const TRAILER_HOLD_BYTES: usize = 64 * 1024;

/// Whether an HTTP/1.1 exchange needs its head held until the body ends:
/// the client accepts trailers (`TE: trailers`) and the guest neither
/// declared them (`Trailer`) nor fixed the length (`Content-Length`, which
/// rules out chunked framing and with it trailers).
pub(crate) fn needs_trailer_declaration(
    request_te_trailers: bool,
    response: &http::HeaderMap,
) -> bool {
    request_te_trailers
        && !response.contains_key(http::header::TRAILER)
        && !response.contains_key(http::header::CONTENT_LENGTH)
}

/// Task yields [`hold_head`] spends waiting for a body's end once its first
/// frame is in (an end that is not there by then is not waited for).
const END_YIELDS: u32 = 2;

/// How long [`hold_head`] holds a response head back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Until the body's first frame (or its end, or its failure).
    FirstFrame,
    /// Until the body ends, to declare the trailers it ended with (hyper's
    /// HTTP/1.1 encoder sends only trailers named in the `Trailer` header,
    /// which goes out with the head).
    End,
}

/// Holds a guest's response head back for at most [`HEAD_HOLD_TIME`] (and,
/// with [`Hold::End`], [`TRAILER_HOLD_BYTES`] of body) while reading the
/// body ahead, so that hyper sends the head with the first bytes. If the
/// body fails meanwhile, nothing has reached the client yet: the error is
/// returned and the caller answers with an error response instead of a
/// connection that closes with no status (a guest that sets a response and
/// then traps or drops its body unfinished). A body that is slower is sent
/// as is; its later failure aborts the response, and with [`Hold::End`] its
/// undeclared trailers are lost on HTTP/1.1 (HTTP/2 always carries them).
pub(crate) async fn hold_head(
    response: http::Response<GuestBody>,
    request_id: &str,
    hold: Hold,
) -> Result<http::Response<ResponseBody>, ErrorCode> {
    use futures::FutureExt;
    let (mut parts, mut body) = response.into_parts();
    let mut held = VecDeque::new();
    let mut bytes = 0usize;
    let mut ended = body.is_end_stream();
    // Most bodies have their first frame ready: no timer for those.
    let mut deadline = None;
    let mut got_frame = false;
    // Yields left to give the guest's worker a turn before the head goes
    // without the body's end (see below).
    let mut yields = END_YIELDS;
    while !ended && bytes < TRAILER_HOLD_BYTES {
        let frame = match body.frame().now_or_never() {
            Some(frame) => frame,
            // A body whose end is a moment behind its first bytes (a guest
            // that writes, then closes its stream): a yield or two lets the
            // worker deliver the end, so hyper writes head, bytes and end
            // in one go instead of a second write for the end alone.
            None if got_frame && hold == Hold::FirstFrame && yields > 0 => {
                yields -= 1;
                tokio::task::yield_now().await;
                continue;
            }
            // With the first frame in hand, the head goes now, with every
            // frame already waiting — and if what is waiting is a failure
            // (a guest that writes a little, then drops its body or
            // traps), the client gets an error response instead.
            None if got_frame && hold == Hold::FirstFrame => break,
            None => {
                let timer =
                    deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(HEAD_HOLD_TIME)));
                tokio::select! {
                    frame = body.frame() => frame,
                    () = timer.as_mut() => break,
                }
            }
        };
        match frame {
            None => ended = true,
            Some(Err(err)) => return Err(err),
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    if hold == Hold::End {
                        let names: Vec<&str> = trailers.keys().map(|n| n.as_str()).collect();
                        if let Ok(value) = http::HeaderValue::from_str(&names.join(", ")) {
                            parts.headers.insert(http::header::TRAILER, value);
                        }
                    }
                    ended = true;
                } else {
                    bytes += frame.data_ref().map_or(0, |d| d.len());
                }
                held.push_back(Ok(frame));
                got_frame = true;
                ended = ended || body.is_end_stream();
            }
        }
    }
    if hold == Hold::End && !ended {
        tracing::debug!(
            request_id,
            "response head sent before the body ended; undeclared trailers cannot follow on HTTP/1.1"
        );
    }
    let body = ResponseBody {
        inner: Inner::Guest {
            held,
            rest: (!ended).then_some(body),
        },
        log: None,
        tripwire: None,
        place: None,
        failure: Failure::None,
    };
    Ok(http::Response::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use berth_http::body::{BodyKind, guest_body};

    use super::*;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_failing_body_yields_once_so_what_was_written_is_flushed_first() {
        let (mut writer, body) = guest_body(None, BodyKind::Response);
        writer.write(Bytes::from_static(b"partial")).unwrap();
        writer.abort(ErrorCode::InternalError(None));
        let mut body = ResponseBody {
            inner: Inner::Guest {
                held: VecDeque::new(),
                rest: Some(body),
            },
            log: None,
            tripwire: None,
            place: None,
            failure: Failure::None,
        };
        let woken = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        let mut poll = || Pin::new(&mut body).poll_frame(&mut cx);
        let data = poll();
        assert!(
            matches!(&data, Poll::Ready(Some(Ok(f))) if f.data_ref().is_some_and(|d| d == "partial")),
            "{data:?}"
        );
        // The failure is seen, but held back one poll: pending, and woken
        // at once so the writer comes straight back after flushing.
        assert!(poll().is_pending());
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            poll(),
            Poll::Ready(Some(Err(ErrorCode::InternalError(None))))
        ));
        assert!(matches!(poll(), Poll::Ready(None)));
    }
}
