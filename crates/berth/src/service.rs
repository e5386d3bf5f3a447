//! `WasiHttpService`: a `tower::Service` that answers HTTP requests with a
//! `wasi:http` component. Mount it in any hyper, axum or tower stack.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use berth_http::ErrorCode;
use berth_http::log_scope::RequestScope;
use berth_runtime::Runtime;
use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http_body::Body;
use http_body_util::BodyExt;
use tracing::Instrument;

use crate::admission::{Admission, AdmissionLimits, Place};
use crate::limits::{BodyLimits, LimitedBody, Tripwire};
use crate::request::{HeadLimits, normalize};
use crate::response::{
    AccessLog, ErrorPage, Hold, ResponseBody, error_page, hold_head, needs_trailer_declaration,
    status_for,
};

/// Serves requests with a component: a `tower::Service` for any hyper,
/// axum or tower stack. Cheap to clone (one reference count); `Error =
/// Infallible` (failures become HTTP responses); `Send + Sync + 'static`,
/// and so are its futures.
///
/// `poll_ready` tells the truth about admission: it reserves one of the
/// app's admission places (waiting at most the admission wait when all are
/// taken), and `call` uses it; a `call` whose `poll_ready` found no place
/// in time answers `503` with `Retry-After` at once. Callers that skip
/// `poll_ready` (hyper's `service_fn`) are admitted in `call`, with the
/// same wait and the same `503`.
///
/// ```no_run
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let bytes = std::fs::read("app.wasm")?;
/// let runtime = berth::Runtime::new(berth::RuntimeConfig::default(), &bytes, "app.wasm")?;
/// let service = berth::WasiHttpService::new(runtime, "localhost:8080".parse()?)
///     .with_body_limits(berth::limits::BodyLimits::default());
/// // axum: Router::new().route_service("/app/{*rest}", service)
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct WasiHttpService {
    inner: Arc<Inner>,
    /// A place reserved by `poll_ready` for the next `call` (never cloned).
    reservation: Reservation,
}

/// What every clone of a service shares.
#[derive(Clone)]
struct Inner {
    runtime: Runtime,
    scheme: Scheme,
    local_authority: Authority,
    limits: BodyLimits,
    head_limits: HeadLimits,
    admission: Arc<Admission>,
    app: Option<Arc<str>>,
    metrics: Option<crate::metrics::Metrics>,
    /// `metrics`' series of this app.
    app_metrics: Option<crate::metrics::AppMetrics>,
    /// The embedder's error pages, if any.
    error_pages: Option<Arc<dyn ErrorPage>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasiHttpService")
            .field("runtime", &self.runtime)
            .field("scheme", &self.scheme)
            .field("local_authority", &self.local_authority)
            .field("limits", &self.limits)
            .field("head_limits", &self.head_limits)
            .field("app", &self.app)
            .field("error_pages", &self.error_pages.is_some())
            .finish_non_exhaustive()
    }
}

/// Waiting for an admission place.
type Admitting = Pin<Box<dyn Future<Output = Option<Place>> + Send>>;

/// The admission place `poll_ready` took (or is waiting for).
#[derive(Default)]
struct Reservation {
    /// Waiting for a place; behind a mutex only to be `Sync` (it is only
    /// ever reached through `&mut`).
    waiting: Option<std::sync::Mutex<Admitting>>,
    /// Decided: a place, or `None` when none came in time (answer 503).
    ready: Option<Option<Place>>,
}

impl Clone for Reservation {
    /// A clone has reserved nothing: a place belongs to one `call`.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("waiting", &self.waiting.is_some())
            .field("ready", &self.ready.as_ref().map(Option::is_some))
            .finish()
    }
}

impl WasiHttpService {
    /// A service for requests arriving over plain HTTP at `local_authority`
    /// (used as the authority of HTTP/1.0 requests without `Host`).
    pub fn new(runtime: Runtime, local_authority: Authority) -> Self {
        let places = usize::try_from(runtime.config().max_instances).unwrap_or(usize::MAX);
        let mut service = Self {
            inner: Arc::new(Inner {
                admission: Admission::new(AdmissionLimits::new(places)),
                runtime,
                scheme: Scheme::HTTP,
                local_authority,
                limits: BodyLimits::default(),
                head_limits: HeadLimits::default(),
                app: None,
                metrics: None,
                app_metrics: None,
                error_pages: None,
            }),
            reservation: Reservation::default(),
        };
        service.observe();
        service
    }

    /// This service's settings, to change (clones made before keep theirs).
    fn settings(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// Counts this service's requests in `metrics` (see
    /// [`crate::metrics`]), labelled with its app name.
    ///
    /// The runtime reports its instances, traps, limit hits and outgoing
    /// requests there too (it is shared by every clone of this service).
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.settings().metrics = Some(metrics);
        self.observe();
        self
    }

    /// Resolves the app's series and points the runtime's observer at them
    /// (and at trace propagation).
    fn observe(&mut self) {
        let inner = self.settings();
        inner.app_metrics = inner
            .metrics
            .as_ref()
            .map(|m| m.for_app(inner.app.as_deref().unwrap_or("-")));
        inner
            .runtime
            .set_observer(Arc::new(crate::observer::AppObserver {
                metrics: inner.app_metrics.clone(),
            }));
    }

    /// Names the app this service answers for in the access log (a server
    /// routing between several apps sets it).
    pub fn with_app_name(mut self, name: Arc<str>) -> Self {
        self.settings().app = Some(name);
        self.observe();
        self
    }

    /// Sets the admission limits (requests at once, queue, wait); past
    /// them requests get `503` with `Retry-After`. See [`crate::admission`].
    /// Clones made before this call keep the previous limits.
    pub fn with_admission(mut self, limits: AdmissionLimits) -> Self {
        self.settings().admission = Admission::new(limits);
        self
    }

    /// Sets the caps on request targets and header counts (`414` / `431`);
    /// see [`HeadLimits`]. [`crate::serve()`] sets them from its
    /// [`crate::ServerConfig`].
    pub fn with_head_limits(mut self, limits: HeadLimits) -> Self {
        self.settings().head_limits = limits;
        self
    }

    /// Sets the request body limits (size cap, idle timeout); see
    /// [`crate::limits`].
    pub fn with_body_limits(mut self, limits: BodyLimits) -> Self {
        self.settings().limits = limits;
        self
    }

    /// Renders the responses berth makes itself (`404`, `413`, `503`,
    /// `504`, `500` …) with `pages` instead of berth's plain-text ones.
    pub fn with_error_pages(mut self, pages: Arc<dyn ErrorPage>) -> Self {
        self.settings().error_pages = Some(pages);
        self
    }

    /// Sets the scheme requests arrive with (`https` behind TLS).
    pub fn with_scheme(mut self, scheme: Scheme) -> Self {
        self.settings().scheme = scheme;
        self
    }

    /// The runtime behind this service.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The metrics this service records into, if any.
    pub fn metrics(&self) -> Option<&crate::metrics::Metrics> {
        self.inner.metrics.as_ref()
    }
}

/// Maps an error reading the client's body to an error-code for the guest.
fn body_error_code(err: &(dyn std::error::Error + 'static)) -> ErrorCode {
    if let Some(h) = err.downcast_ref::<hyper::Error>() {
        if h.is_timeout() {
            return ErrorCode::ConnectionReadTimeout;
        }
        if h.is_incomplete_message() || h.is_closed() || h.is_canceled() {
            return ErrorCode::ConnectionTerminated;
        }
    }
    ErrorCode::classify(err)
}

/// The path as the access log shows it: whole, unless it is over the
/// target cap (then refused), when its first 256 bytes and its length are
/// enough to recognise it.
fn loggable_path(path: &str, max_uri_bytes: usize) -> String {
    if path.len() <= max_uri_bytes {
        return path.to_owned();
    }
    let mut end = 256.min(path.len());
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &path[..end], path.len())
}

/// Whether an HTTP/1.1 client said it accepts trailers (`TE: trailers`).
fn accepts_trailers<B>(request: &http::Request<B>) -> bool {
    request.version() == http::Version::HTTP_11
        && request
            .headers()
            .get_all(http::header::TE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
}

/// The future a [`WasiHttpService`] (or a platform's
/// [`Router`](crate::platform::Router)) returns: the response head, once
/// the guest sent it (or the error response berth made). `Send + 'static`;
/// dropping it before it resolves cancels the guest and frees its
/// instance.
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Result<http::Response<ResponseBody>, Infallible>> + Send>>,
}

impl ResponseFuture {
    pub(crate) fn new(
        future: impl Future<Output = Result<http::Response<ResponseBody>, Infallible>> + Send + 'static,
    ) -> Self {
        Self {
            inner: Box::pin(future),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<http::Response<ResponseBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<B> tower_service::Service<http::Request<B>> for WasiHttpService
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = http::Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    /// Reserves an admission place for the next `call` (see
    /// [`crate::admission`]): ready at once when one is free, else when
    /// one frees up within the admission wait, else ready without one (the
    /// `call` then answers `503` at once).
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.reservation.ready.is_some() {
            return Poll::Ready(Ok(()));
        }
        let waiting = self.reservation.waiting.get_or_insert_with(|| {
            let admission = self.inner.admission.clone();
            std::sync::Mutex::new(Box::pin(async move { admission.admit().await }))
        });
        let future = waiting
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let place = std::task::ready!(future.as_mut().poll(cx));
        self.reservation.waiting = None;
        self.reservation.ready = Some(place);
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let this = self.inner.clone();
        let reserved = self.reservation.ready.take();
        // What clients and logs call this request (see crate::request_id);
        // the runtime numbers its requests itself.
        let rid = crate::request_id::for_request(request.headers());
        let header = http::HeaderValue::from_str(&rid).ok();
        let response = async move {
            let started = Instant::now();
            let id = this.runtime.next_request_id();
            let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
            let path = loggable_path(path, this.head_limits.max_uri_bytes);
            let app = this.app.as_deref().unwrap_or("-");
            // The request's trace span (a no-op unless tracing is on).
            let trace = crate::trace::request_span(&request, &rid, app);
            let client = request
                .extensions()
                .get::<crate::request::ClientAddr>()
                .map(|c| c.0);
            let log = AccessLog::new(rid.clone(), request.method().clone(), path, started)
                .with_app(this.app.clone())
                .with_client(client, request.version())
                .with_metrics(this.app_metrics.clone())
                .with_span(trace.clone());

            let checked = this.head_limits.check(&request);
            if let Err(reason) =
                checked.and_then(|()| normalize(&mut request, &this.scheme, &this.local_authority))
            {
                tracing::debug!(request_id = &*rid, %reason, "request rejected");
                let status = reason.status();
                return Ok(error_page(this.error_pages.as_ref(), status, &rid)
                    .map(|b| b.with_log(log, status)));
            }
            let te_trailers = accepts_trailers(&request);
            let declared = berth_http::body::content_length(request.headers())
                .ok()
                .flatten();
            if declared.is_some_and(|n| n > this.limits.max_bytes) {
                tracing::info!(
                    request_id = &*rid,
                    limit = this.limits.max_bytes,
                    "request body too large: answering 413 without running the guest"
                );
                if let Some(metrics) = &this.app_metrics {
                    metrics.limit_hit(crate::metrics::Limit::BodySize);
                }
                let status = http::StatusCode::PAYLOAD_TOO_LARGE;
                return Ok(error_page(this.error_pages.as_ref(), status, &rid)
                    .map(|b| b.with_log(log, status)));
            }
            let place = match reserved {
                Some(reserved) => reserved,
                None => this.admission.admit().await,
            };
            let Some(place) = place else {
                tracing::warn!(
                    request_id = &*rid,
                    "overloaded: every admission place is taken; answering 503"
                );
                if let Some(metrics) = &this.app_metrics {
                    metrics.admission_rejected();
                }
                let status = http::StatusCode::SERVICE_UNAVAILABLE;
                return Ok(error_page(this.error_pages.as_ref(), status, &rid)
                    .map(|b| b.with_log(log, status)));
            };
            let tripwire = Tripwire::default();
            let request = request.map(|body| {
                // Bodies need not be `Sync` (axum's is not).
                let body = berth_http::body::SyncBody::new(body.map_err(|e| body_error_code(&e)));
                berth_http::body::host_body(LimitedBody::new(body, this.limits, tripwire.clone()))
            });
            // The log's scope: request id and app on every line logged while
            // the guest runs (its `request` span, made only if a line is,
            // hangs below the trace span, when there is one).
            let scope = trace.in_scope(|| RequestScope::new(&rid, app));
            let result = scope
                .run(this.runtime.handle(id, request).instrument(trace.clone()))
                .await;
            if let Some(broken) = tripwire.get() {
                // The guest saw the broken body; the client is told why.
                let status = broken.status();
                if let Some(metrics) = &this.app_metrics {
                    metrics.limit_hit(broken.limit());
                }
                tracing::info!(
                    request_id = &*rid,
                    ?broken,
                    "request body broke a limit: answering {status}"
                );
                return Ok(error_page(this.error_pages.as_ref(), status, &rid)
                    .map(|b| b.with_log(log, status)));
            }
            match result {
                Ok(response) => {
                    let status = response.status();
                    let hold = if needs_trailer_declaration(te_trailers, response.headers()) {
                        Hold::End
                    } else {
                        Hold::FirstFrame
                    };
                    match hold_head(response, &rid, hold).await {
                        Ok(response) => {
                            let declared = berth_http::body::content_length(response.headers())
                                .ok()
                                .flatten();
                            let log = log.with_declared_length(declared);
                            Ok(response
                                .map(|b| b.abort_on(tripwire).holding(place).with_log(log, status)))
                        }
                        Err(code) => {
                            // Nothing reached the client yet: say so properly
                            // (and why, if the request body broke a limit).
                            let status = tripwire
                                .get()
                                .map_or(http::StatusCode::INTERNAL_SERVER_ERROR, |b| b.status());
                            tracing::error!(
                                request_id = &*rid,
                                error = %code,
                                "response body failed before the head was sent: answering {status}"
                            );
                            Ok(error_page(this.error_pages.as_ref(), status, &rid)
                                .map(|b| b.with_log(log, status)))
                        }
                    }
                }
                Err(err) => {
                    let status = status_for(&err);
                    tracing::error!(request_id = &*rid, error = %err, "request failed: answering {status}");
                    Ok(error_page(this.error_pages.as_ref(), status, &rid)
                        .map(|b| b.with_log(log, status)))
                }
            }
        };
        ResponseFuture::new(async move {
            let result: Result<http::Response<ResponseBody>, Infallible> = response.await;
            let Ok(mut response) = result;
            if let Some(header) = header {
                response
                    .headers_mut()
                    .insert(crate::request_id::HEADER, header);
            }
            Ok(response)
        })
    }
}

/// What the service promises embedders, checked at compile time.
const _: () = {
    const fn shareable<T: Clone + Send + Sync + 'static>() {}
    const fn sendable<T: Send + 'static>() {}
    shareable::<WasiHttpService>();
    shareable::<crate::platform::Router>();
    sendable::<ResponseFuture>();
    sendable::<ResponseBody>();
};
