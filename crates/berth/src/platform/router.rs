//! [`Router`]: the `tower::Service` in front of a platform's apps. Each
//! request reads the routing table current when it arrives and keeps its
//! app until it ends, so a reload never moves a request between versions.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use http_body::Body;

use super::Platform;
use crate::response::{AccessLog, ResponseBody, error_page};
use crate::service::ResponseFuture;

/// Routes requests to the apps of a [`Platform`]: `404` when no route
/// matches, `400` when the host is unusable (several `Host` headers, or
/// one that is not text). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Router {
    platform: Platform,
    /// The series of requests no app takes (`app="-"`).
    unrouted: crate::metrics::AppMetrics,
}

impl Router {
    pub(crate) fn new(platform: Platform) -> Self {
        let unrouted = platform.metrics().for_app("-");
        Self { platform, unrouted }
    }

    /// The platform whose apps this router serves.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    fn refuse<B>(&self, request: &http::Request<B>, status: StatusCode) -> ResponseFuture {
        let rid = crate::request_id::for_request(request.headers());
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .chars()
            .take(256)
            .collect();
        let client = request
            .extensions()
            .get::<crate::request::ClientAddr>()
            .map(|c| c.0);
        let log = AccessLog::new(rid.clone(), request.method().clone(), path, Instant::now())
            .with_client(client, request.version())
            .with_metrics(Some(self.unrouted.clone()));
        let pages = self.platform.error_pages();
        let mut response = error_page(pages, status, &rid).map(|body| body.with_log(log, status));
        if let Ok(header) = http::HeaderValue::from_str(&rid) {
            response
                .headers_mut()
                .insert(crate::request_id::HEADER, header);
        }
        ResponseFuture::new(std::future::ready(Ok(response)))
    }
}

/// The host a request is routed by: the URI's authority (HTTP/2, absolute
/// form), else its one `Host` header, else none (HTTP/1.0): `Err` when
/// unusable.
fn routing_host<B>(request: &http::Request<B>) -> Result<&str, ()> {
    if let Some(authority) = request.uri().authority() {
        return Ok(authority.as_str());
    }
    let mut hosts = request.headers().get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) => Ok(""),
        (Some(host), None) => host.to_str().map_err(|_| ()),
        (Some(_), Some(_)) => Err(()),
    }
}

impl<B> tower_service::Service<http::Request<B>> for Router
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = http::Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    /// Always ready: each app admits requests in its own `call`.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let table = self.platform.table();
        let Ok(host) = routing_host(&request) else {
            return self.refuse(&request, StatusCode::BAD_REQUEST);
        };
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        match table.routes.find(host, path) {
            Some(app) => {
                let mut service = app.service.clone();
                // The app (and its version of the config) lives until the
                // response future is done with it.
                let app = Arc::clone(app);
                let response = tower_service::Service::call(&mut service, request);
                ResponseFuture::new(async move {
                    let response = response.await;
                    drop(app);
                    response
                })
            }
            None => {
                tracing::debug!(host, path, "no route");
                self.refuse(&request, StatusCode::NOT_FOUND)
            }
        }
    }
}
