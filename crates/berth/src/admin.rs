//! The admin listener: health and readiness for orchestrators and load
//! balancers, on an address of its own — never the traffic port, never
//! reachable through a guest route.
//!
//! * `GET /metrics` → the Prometheus (OpenMetrics text) metrics of the
//!   platform served (see [`crate::metrics`]).
//! * `GET /healthz` → `200` while the process is up and its CPU limits
//!   hold; `503` once an epoch ticker has failed
//!   ([`berth_runtime::engine::ticker_fault`]), so an orchestrator
//!   restarts it.
//! * `GET /readyz` → `200` once the traffic listener serves loaded apps;
//!   `503` while draining (from the shutdown call on, before the traffic
//!   listener closes, so a load balancer stops sending first) and while no
//!   app is loaded.
//!
//! Anything else is `404` (`405` for methods other than GET and HEAD).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::handle::Readiness;
use crate::platform::Platform;

/// What `/readyz` looks at: the traffic front-end's drain state and, when
/// serving a platform, whether it has apps.
#[derive(Debug, Clone)]
pub struct Probe {
    readiness: Readiness,
    platform: Option<Platform>,
}

impl Probe {
    /// A probe of the front-end behind `readiness` (see
    /// [`crate::ServeHandle::readiness`]), serving `platform`'s apps if
    /// given.
    pub fn new(readiness: Readiness, platform: Option<Platform>) -> Self {
        Self {
            readiness,
            platform,
        }
    }

    /// `Ok` when ready, else why not.
    pub fn ready(&self) -> Result<(), &'static str> {
        if self.readiness.is_draining() {
            return Err("draining");
        }
        if self.platform.as_ref().is_some_and(|p| p.apps().is_empty()) {
            return Err("no app loaded");
        }
        Ok(())
    }
}

fn text(status: StatusCode, body: &'static str) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

/// Answers one admin request.
fn answer<B>(probe: &Probe, request: &http::Request<B>) -> http::Response<Full<Bytes>> {
    let known = matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics");
    if known && !matches!(*request.method(), Method::GET | Method::HEAD) {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match request.uri().path() {
        "/healthz" => match berth_runtime::engine::ticker_fault() {
            None => text(StatusCode::OK, "ok\n"),
            Some(_) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "unhealthy: the epoch ticker failed, CPU limits no longer hold\n",
            ),
        },
        "/metrics" => match &probe.platform {
            Some(platform) => {
                let mut response = text(StatusCode::OK, "");
                *response.body_mut() = Full::new(Bytes::from(platform.metrics().encode()));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                response
            }
            None => text(
                StatusCode::NOT_FOUND,
                "no metrics: not serving a platform\n",
            ),
        },
        "/readyz" => match probe.ready() {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err("draining") => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
            Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "no app loaded\n"),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /healthz or /readyz\n",
        ),
    }
}

/// Serves the admin endpoints on `listener` until the task is dropped
/// (spawn it; it lives as long as the process, so `/healthz` answers
/// until exit). Connections are HTTP/1.1 or h2c.
pub async fn serve_admin(listener: TcpListener, probe: Probe) {
    let probe = Arc::new(probe);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!("admin accept failed: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let probe = probe.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let response = answer(&probe, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(err) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, "admin connection ended: {err}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn get(probe: &Probe, method: Method, path: &str) -> (StatusCode, Bytes) {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap_or_else(|_| unreachable!());
        let response = answer(probe, &request);
        let status = response.status();
        let body = response.into_body().collect().await;
        (status, body.map(|c| c.to_bytes()).unwrap_or_default())
    }

    #[tokio::test]
    async fn health_stays_up_and_readiness_follows_the_drain() {
        let readiness = Readiness::default();
        let probe = Probe::new(readiness.clone(), None);
        assert_eq!(get(&probe, Method::GET, "/healthz").await.0, StatusCode::OK);
        let ready = get(&probe, Method::GET, "/readyz").await;
        assert_eq!(ready, (StatusCode::OK, Bytes::from("ready\n")));
        readiness.start_draining();
        let draining = get(&probe, Method::GET, "/readyz").await;
        assert_eq!(
            draining,
            (StatusCode::SERVICE_UNAVAILABLE, Bytes::from("draining\n"))
        );
        assert_eq!(
            get(&probe, Method::HEAD, "/healthz").await.0,
            StatusCode::OK
        );
        let post = get(&probe, Method::POST, "/healthz").await.0;
        assert_eq!(post, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            get(&probe, Method::GET, "/metrics").await.0,
            StatusCode::NOT_FOUND
        );
    }
}
