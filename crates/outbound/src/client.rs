//! `DefaultClient`: the production [`OutboundClient`].

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use berth_http::body::host_body;
use berth_http::outbound::ResponseFuture;
use berth_http::{ErrorCode, HostBody, OutboundClient, RequestTimeouts};
use http::uri::Scheme;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
#[cfg(feature = "tls")]
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::body::UpstreamBody;
use crate::config::{OutboundConfig, Timeouts};
use crate::dial::{Dial, Resolve, SystemResolver, TcpDialer};
#[cfg(feature = "tls")]
use crate::error::tls_error;
use crate::error::{connect_error, dns_error, request_error};
use crate::policy::EgressPolicy;
use crate::pool::{Origin, Pool, Sender};
#[cfg(feature = "tls")]
use crate::tls::LazyConnector;
use crate::tls::TlsConfigError;

/// Largest response head accepted from an upstream (64 KiB).
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// The `CDN-Loop` header (RFC 8586) used for loop detection.
const CDN_LOOP: &str = "cdn-loop";

/// Sends guests' requests: pooled, HTTP/1.1 and HTTP/2, TLS, egress policy.
#[derive(Clone)]
pub struct DefaultClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: OutboundConfig,
    /// `config.h2c_hosts` as a matcher, built once.
    h2c: EgressPolicy,
    /// Origins known to speak HTTP/2 (h2c by configuration, or ALPN seen):
    /// concurrent first requests to them share one new connection.
    h2_origins: Mutex<HashSet<Origin>>,
    /// Per-origin locks held while connecting to an HTTP/2 origin.
    connecting: Mutex<HashMap<Origin, Arc<tokio::sync::Mutex<()>>>>,
    policy: EgressPolicy,
    #[cfg(feature = "tls")]
    tls: LazyConnector,
    pool: Pool,
    /// One permit per open connection (`config.max_connections`), held by
    /// the task that drives it.
    connections: Arc<Semaphore>,
    /// Whether the reaper task runs (started by the first request, inside
    /// the runtime that serves it).
    reaper: AtomicBool,
    resolver: Arc<dyn Resolve>,
    dialer: Arc<dyn Dial>,
}

impl std::fmt::Debug for DefaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefaultClient")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl DefaultClient {
    /// A client for `config` with the system resolver and plain TCP.
    pub fn new(config: OutboundConfig) -> Result<Self, TlsConfigError> {
        Self::with_hooks(
            config,
            Arc::new(SystemResolver::default()),
            Arc::new(TcpDialer),
        )
    }

    /// A client with its own resolver and dialer (tests; embedders with
    /// their own network stack).
    pub fn with_hooks(
        config: OutboundConfig,
        resolver: Arc<dyn Resolve>,
        dialer: Arc<dyn Dial>,
    ) -> Result<Self, TlsConfigError> {
        // With an empty allow-list no connection can ever be made: do not
        // spend start-up CPU on the certificate store.
        let warm_up = !config.allow.is_empty();
        #[cfg(feature = "tls")]
        let tls = LazyConnector::new(&config.ca_files, config.system_roots, warm_up)?;
        #[cfg(not(feature = "tls"))]
        let _ = warm_up;
        Ok(Self {
            inner: Arc::new(Inner {
                h2_origins: Mutex::new(HashSet::new()),
                connecting: Mutex::new(HashMap::new()),
                policy: EgressPolicy::new(config.allow.clone()),
                h2c: EgressPolicy::new(config.h2c_hosts.clone()),
                pool: Pool::new(config.pool_idle_timeout, config.max_connections_per_origin),
                connections: Arc::new(Semaphore::new(config.max_connections.max(1))),
                reaper: AtomicBool::new(false),
                #[cfg(feature = "tls")]
                tls,
                resolver,
                dialer,
                config,
            }),
        })
    }

    /// Connections held by the pool (busy or idle).
    pub fn pooled_connections(&self) -> usize {
        self.inner.pool.len()
    }

    /// Connections open now, pooled or not (at most
    /// [`OutboundConfig::max_connections`]).
    pub fn open_connections(&self) -> usize {
        self.inner.config.max_connections.max(1) - self.inner.connections.available_permits()
    }

    /// Origins the client keeps any state for: pooled connections, learned
    /// HTTP/2 support, connection locks. Origins not used for the pool's
    /// idle timeout are forgotten.
    pub fn tracked_origins(&self) -> usize {
        let inner = &self.inner;
        let mut origins: HashSet<Origin> = lock(&inner.h2_origins).clone();
        origins.extend(lock(&inner.connecting).keys().cloned());
        origins.extend(inner.pool.origins());
        origins.len()
    }

    /// A handle that reads [`DefaultClient::pooled_connections`] without
    /// keeping the client alive (for metrics that outlive an app).
    pub fn pool_gauge(&self) -> PoolGauge {
        PoolGauge(Arc::downgrade(&self.inner))
    }
}

/// Reads a [`DefaultClient`]'s pooled connections while the client lives.
#[derive(Clone)]
pub struct PoolGauge(Weak<Inner>);

impl std::fmt::Debug for PoolGauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PoolGauge")
            .field(&self.connections())
            .finish()
    }
}

impl PoolGauge {
    /// Connections the client's pool holds; `None` once the client is gone.
    pub fn connections(&self) -> Option<usize> {
        self.0.upgrade().map(|inner| inner.pool.len())
    }
}

impl OutboundClient for DefaultClient {
    fn send(&self, request: http::Request<HostBody>, timeouts: RequestTimeouts) -> ResponseFuture {
        let inner = self.inner.clone();
        Box::pin(async move {
            // Started when first polled: inside the runtime that serves the
            // request, wherever the future was made.
            if !inner.reaper.swap(true, Ordering::Relaxed) {
                reap_every(Arc::downgrade(&inner));
            }
            inner.send(request, timeouts).await
        })
    }
}

/// How often the reaper looks at the pool: half the idle timeout, between
/// 100 ms and 30 s.
fn reap_interval(idle_timeout: Duration) -> Duration {
    (idle_timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(30))
}

/// Runs [`Inner::reap`] on a timer until the client is dropped.
fn reap_every(client: Weak<Inner>) {
    let Some(interval) = client
        .upgrade()
        .map(|c| reap_interval(c.config.pool_idle_timeout))
    else {
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(inner) = client.upgrade() else {
                return;
            };
            inner.reap();
        }
    });
}

impl Inner {
    /// Closes idle connections past their timeout and forgets origins that
    /// have nothing left: no connection, no connection being opened.
    fn reap(&self) {
        self.pool.reap();
        lock(&self.connecting).retain(|_, gate| Arc::strong_count(gate) > 1);
        lock(&self.h2_origins).retain(|origin| self.pool.holds(origin));
    }

    /// A place under the connection cap: at once, or by closing the least
    /// recently used idle connection, or by waiting for one to close, at
    /// most the connect timeout (`connection-limit-reached` after that).
    async fn connection_place(&self, wait: Duration) -> Result<OwnedSemaphorePermit, ErrorCode> {
        if let Ok(place) = self.connections.clone().try_acquire_owned() {
            return Ok(place);
        }
        // The evicted connection's task ends, and returns its place, once
        // hyper sees its sender gone.
        self.pool.evict_idle();
        match tokio::time::timeout(wait, self.connections.clone().acquire_owned()).await {
            Ok(Ok(place)) => Ok(place),
            _ => {
                let _in_request = berth_http::log_scope::enter();
                tracing::info!(
                    max = self.config.max_connections,
                    "outgoing request refused: the client's connection cap is reached"
                );
                Err(ErrorCode::ConnectionLimitReached)
            }
        }
    }

    async fn send(
        &self,
        mut request: http::Request<HostBody>,
        asked: RequestTimeouts,
    ) -> Result<http::Response<HostBody>, ErrorCode> {
        let timeouts = self.config.timeouts(asked);
        let uri = request.uri().clone();
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => return Err(ErrorCode::HttpProtocolError),
        };
        let authority = uri.authority().ok_or(ErrorCode::HttpRequestUriInvalid)?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        self.policy.check_authority(&host, port)?;
        self.mark_loop(&mut request)?;

        let origin = Origin { https, host, port };
        let sender = self.sender_for(&origin, &timeouts).await?;
        let response = self
            .dispatch(origin, sender, request, authority.as_str(), &timeouts)
            .await?;
        let head_size = berth_http::fields::fields_size(response.headers());
        if head_size > MAX_RESPONSE_HEAD {
            return Err(ErrorCode::HttpResponseHeaderSize(Default::default()));
        }
        Ok(response.map(|body| host_body(UpstreamBody::new(body, timeouts.between_bytes))))
    }

    /// Whether cleartext HTTP/2 (prior knowledge) is configured for `origin`.
    fn h2c_allowed(&self, origin: &Origin) -> bool {
        self.h2c.check_authority(&origin.host, origin.port).is_ok()
    }

    fn expects_h2(&self, origin: &Origin) -> bool {
        (!origin.https && self.h2c_allowed(origin)) || lock(&self.h2_origins).contains(origin)
    }

    /// A pooled sender, or a new connection. For HTTP/2 origins, concurrent
    /// callers wait for one connection instead of each opening their own.
    async fn sender_for(&self, origin: &Origin, timeouts: &Timeouts) -> Result<Sender, ErrorCode> {
        if let Some(sender) = self.pool.checkout(origin) {
            return Ok(sender);
        }
        if !self.expects_h2(origin) {
            return self.connect(origin, timeouts).await;
        }
        let gate = lock(&self.connecting)
            .entry(origin.clone())
            .or_default()
            .clone();
        let _connecting = gate.lock().await;
        if let Some(sender) = self.pool.checkout(origin) {
            return Ok(sender);
        }
        let sender = self.connect(origin, timeouts).await?;
        if let Sender::H2(s) = &sender {
            self.pool.checkin(origin.clone(), Sender::H2(s.clone()));
        }
        Ok(sender)
    }

    /// Refuses a request that already passed through this server, and
    /// marks the ones that leave.
    fn mark_loop(&self, request: &mut http::Request<HostBody>) -> Result<(), ErrorCode> {
        let identity = &self.config.loop_identity;
        let seen = request
            .headers()
            .get_all(CDN_LOOP)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|entry| {
                entry
                    .split(';')
                    .next()
                    .is_some_and(|id| id.trim() == identity)
            });
        if seen {
            return Err(ErrorCode::LoopDetected);
        }
        let value =
            http::HeaderValue::from_str(identity).map_err(|_| ErrorCode::ConfigurationError)?;
        request.headers_mut().append(CDN_LOOP, value);
        Ok(())
    }

    /// Resolves, checks every address against the policy, then dials the
    /// first allowed one (TLS and ALPN for https).
    async fn connect(&self, origin: &Origin, timeouts: &Timeouts) -> Result<Sender, ErrorCode> {
        let addrs: Vec<SocketAddr> = match origin.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, origin.port)],
            Err(_) => {
                let lookup = self.resolver.resolve(&origin.host, origin.port);
                match tokio::time::timeout(timeouts.connect, lookup).await {
                    Err(_) => return Err(ErrorCode::DnsTimeout),
                    Ok(Err(err)) => return Err(dns_error(&err)),
                    Ok(Ok(addrs)) => addrs,
                }
            }
        };
        if addrs.is_empty() {
            return Err(ErrorCode::DestinationNotFound);
        }
        let mut allowed = Vec::new();
        let mut refusal = None;
        for addr in addrs {
            match self.policy.check_ip(addr.ip(), addr.port()) {
                Ok(()) => allowed.push(addr),
                Err(code) => refusal = Some(code),
            }
        }
        if allowed.is_empty() {
            let _in_request = berth_http::log_scope::enter();
            tracing::info!(host = %origin.host, "outgoing request refused: destination address prohibited");
            return Err(refusal.unwrap_or(ErrorCode::DestinationIpProhibited));
        }

        let place = self.connection_place(timeouts.connect).await?;
        let dial = async {
            let mut last = ErrorCode::ConnectionRefused;
            for addr in allowed {
                match self.dialer.dial(addr).await {
                    Ok(stream) => return Ok(stream),
                    Err(err) => last = connect_error(&err),
                }
            }
            Err(last)
        };
        let connect_and_handshake = async {
            let tcp = dial.await?;
            #[cfg(not(feature = "tls"))]
            if origin.https {
                drop(tcp);
                let _in_request = berth_http::log_scope::enter();
                tracing::info!(
                    host = %origin.host,
                    "outgoing HTTPS refused: berth-outbound was built without its `tls` feature"
                );
                return Err(ErrorCode::ConfigurationError);
            }
            #[cfg(feature = "tls")]
            if origin.https {
                let name = ServerName::try_from(origin.host.clone())
                    .map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
                let tls = self
                    .tls
                    .get()
                    .connect(name, tcp)
                    .await
                    .map_err(|e| tls_error(&e))?;
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                if h2 {
                    lock(&self.h2_origins).insert(origin.clone());
                }
                return handshake(tls, h2, place).await;
            }
            let h2 = self.h2c_allowed(origin);
            handshake(tcp, h2, place).await
        };
        tokio::time::timeout(timeouts.connect, connect_and_handshake)
            .await
            .map_err(|_| ErrorCode::ConnectionTimeout)?
    }

    async fn dispatch(
        &self,
        origin: Origin,
        sender: Sender,
        mut request: http::Request<HostBody>,
        authority: &str,
        timeouts: &Timeouts,
    ) -> Result<http::Response<hyper::body::Incoming>, ErrorCode> {
        let first_byte = timeouts.first_byte;
        match sender {
            Sender::H1(mut s) => {
                // HTTP/1.1: origin-form target and a Host header.
                let target = request
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .parse()
                    .map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
                *request.uri_mut() = target;
                let host = http::HeaderValue::from_str(authority)
                    .map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
                request.headers_mut().insert(http::header::HOST, host);
                // Let the upstream send response trailers (it must declare
                // them; hyper sends only declared request trailers too).
                request
                    .headers_mut()
                    .entry(http::header::TE)
                    .or_insert(http::HeaderValue::from_static("trailers"));
                let sent = tokio::time::timeout(first_byte, s.send_request(request)).await;
                let response = sent
                    .map_err(|_| ErrorCode::ConnectionReadTimeout)?
                    .map_err(|e| request_error(&e))?;
                if !self.pool.checkin(origin, Sender::H1(s)) {
                    tracing::trace!("origin at its pooled-connection limit; not keeping this one");
                }
                Ok(response)
            }
            Sender::H2(mut s) => {
                *request.version_mut() = http::Version::HTTP_2;
                self.pool.checkin(origin, Sender::H2(s.clone()));
                let sent = tokio::time::timeout(first_byte, s.send_request(request)).await;
                sent.map_err(|_| ErrorCode::ConnectionReadTimeout)?
                    .map_err(|e| request_error(&e))
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them inconsistent.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs a connection's I/O until it closes (the senders hold the other
/// end), holding its place under the client's connection cap.
fn drive<F>(conn: F, protocol: &'static str, place: OwnedSemaphorePermit)
where
    F: Future<Output = Result<(), hyper::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(err) = conn.await {
            tracing::debug!("upstream {protocol} connection ended: {err}");
        }
        drop(place);
    });
}

async fn handshake<T>(io: T, h2: bool, place: OwnedSemaphorePermit) -> Result<Sender, ErrorCode>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let io = TokioIo::new(io);
    if h2 {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .max_header_list_size(MAX_RESPONSE_HEAD as u32)
            .handshake(io)
            .await
            .map_err(|e| request_error(&e))?;
        drive(conn, "HTTP/2", place);
        Ok(Sender::H2(sender))
    } else {
        let (sender, conn) = http1::Builder::new()
            .max_buf_size(MAX_RESPONSE_HEAD.max(8192))
            .handshake(io)
            .await
            .map_err(|e| request_error(&e))?;
        drive(conn, "HTTP/1.1", place);
        Ok(Sender::H1(sender))
    }
}
