//! Guest stdout and stderr, line-buffered into the server log.
//!
//! Each complete line becomes one `tracing` event at INFO (stdout) or WARN
//! (stderr), tagged with the request id. Control characters are escaped so a
//! guest cannot forge log lines or drive the operator's terminal, the
//! bytes logged per request are capped, and an app's instances together
//! share a rate limit ([`OutputRate`]): lines beyond it are dropped and
//! counted, so one noisy app cannot flood the log pipeline.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::observe::{Event, ObserverSlot};
use berth_http::log_scope::RequestScope;

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line kept; longer lines are emitted in pieces.
const MAX_LINE: usize = 16 * 1024;

/// Which guest stream a [`GuestLog`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// `wasi:cli/stdout`.
    Stdout,
    /// `wasi:cli/stderr`.
    Stderr,
}

/// Whose output the buffer is collecting: one request's id, log scope and
/// byte budget.
#[derive(Debug)]
struct Scope {
    request_id: u64,
    /// The request scope current when the request's log began (a
    /// front-end's scope carries the id clients see): the guest's lines are
    /// written in its `request` span, whichever task flushes them.
    log: RequestScope,
    budget: usize,
    truncated: bool,
}

impl Scope {
    fn new(request_id: u64, budget: usize) -> Self {
        Self {
            request_id,
            log: RequestScope::current(),
            budget,
            truncated: false,
        }
    }
}

#[derive(Debug)]
struct LineBuffer {
    /// The request whose output this is now.
    scope: Scope,
    /// wasi:http@0.3: the other requests the instance serves (see
    /// [`GuestLog::open`]).
    parked: HashMap<u64, Scope>,
    stream: LogStream,
    pending: Vec<u8>,
    /// The app's rate limit, shared by its instances.
    rate: Option<Arc<OutputRate>>,
}

impl LineBuffer {
    fn emit(&self, line: &[u8]) {
        if let Some(rate) = &self.rate
            && !rate.allow(line.len() + 1)
        {
            return;
        }
        let text = escape(line);
        let request_id = self.scope.request_id;
        let _in_request = self.scope.log.span().entered();
        match self.stream {
            LogStream::Stdout => {
                tracing::info!(target: "berth::guest", request_id, stream = "stdout", "{text}")
            }
            LogStream::Stderr => {
                tracing::warn!(target: "berth::guest", request_id, stream = "stderr", "{text}")
            }
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        let scope = &mut self.scope;
        if bytes.len() > scope.budget {
            bytes = &bytes[..scope.budget];
            if !scope.truncated {
                scope.truncated = true;
                let _in_request = scope.log.span().entered();
                tracing::warn!(
                    target: "berth::guest",
                    request_id = scope.request_id,
                    "guest log limit reached; further output of this request is dropped"
                );
            }
        }
        scope.budget -= bytes.len();
        for &b in bytes {
            if b == b'\n' {
                let line = std::mem::take(&mut self.pending);
                self.emit(&line);
            } else {
                self.pending.push(b);
                if self.pending.len() >= MAX_LINE {
                    let line = std::mem::take(&mut self.pending);
                    self.emit(&line);
                }
            }
        }
    }
}

impl LineBuffer {
    /// Writes out a pending partial line.
    fn flush(&mut self) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Escapes control characters (and invalid UTF-8) in a guest's line.
fn escape(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// How long a rate-limited app's output may burst above its rate, in
/// seconds of that rate.
const BURST_SECONDS: f64 = 4.0;

/// How often the "lines dropped" warning of one app is repeated at most.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// An app's budget of guest output, in bytes per second with a burst of a
/// few seconds' worth (a token bucket), shared by all its instances. Lines
/// beyond it are dropped whole; each is reported to the runtime's observer
/// ([`Event::GuestOutputDropped`]) and a warning says so at most every ten
/// seconds.
#[derive(Debug)]
pub struct OutputRate {
    bytes_per_sec: u64,
    bucket: Mutex<Bucket>,
    observer: Arc<ObserverSlot>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
    dropped: u64,
    warned: Option<Instant>,
}

impl OutputRate {
    /// A budget of `bytes_per_sec`, reporting drops to `observer`.
    pub(crate) fn new(bytes_per_sec: u64, observer: Arc<ObserverSlot>) -> Self {
        Self {
            bytes_per_sec,
            bucket: Mutex::new(Bucket {
                tokens: bytes_per_sec as f64 * BURST_SECONDS,
                refilled: Instant::now(),
                dropped: 0,
                warned: None,
            }),
            observer,
        }
    }

    /// Takes `bytes` from the budget; `false` (and the line counted as
    /// dropped) when there is not enough.
    fn allow(&self, bytes: usize) -> bool {
        let rate = self.bytes_per_sec as f64;
        let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate * BURST_SECONDS);
        bucket.refilled = now;
        if bucket.tokens >= bytes as f64 {
            bucket.tokens -= bytes as f64;
            return true;
        }
        bucket.dropped += 1;
        if bucket
            .warned
            .is_none_or(|at| now.duration_since(at) >= WARN_EVERY)
        {
            let dropped = std::mem::take(&mut bucket.dropped);
            bucket.warned = Some(now);
            drop(bucket);
            tracing::warn!(
                target: "berth::guest",
                limit_bytes_per_sec = self.bytes_per_sec,
                dropped,
                "guest output over the app's rate limit; lines dropped"
            );
        } else {
            drop(bucket);
        }
        self.observer.report(Event::GuestOutputDropped);
        false
    }
}

/// A guest output stream feeding the server log. Cheap to clone; all
/// clones share one line buffer.
#[derive(Debug, Clone)]
pub struct GuestLog {
    inner: Arc<Mutex<LineBuffer>>,
}

impl GuestLog {
    /// A log for `stream` of request `request_id`, sharing `budget` bytes.
    pub fn new(request_id: u64, stream: LogStream, budget: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(LineBuffer {
                scope: Scope::new(request_id, budget),
                parked: HashMap::new(),
                stream,
                pending: Vec::new(),
                rate: None,
            })),
        }
    }

    /// Holds this stream's lines to `rate` as well (shared by every stream
    /// of the app).
    pub fn limit_rate(&self, rate: Arc<OutputRate>) {
        self.lock().rate = Some(rate);
    }

    /// Starts the log of a new request on a reused instance: flushes a
    /// pending partial line and resets the id and the byte budget.
    pub fn restart(&self, request_id: u64, budget: usize) {
        let mut inner = self.lock();
        inner.flush();
        inner.scope = Scope::new(request_id, budget);
    }

    /// wasi:http@0.3: opens the log of request `request_id`, which the
    /// instance serves beside others; its lines are tagged with it (and
    /// count against its own `budget`) while it is [selected](Self::select).
    pub fn open(&self, request_id: u64, budget: usize) {
        let mut inner = self.lock();
        if inner.scope.request_id == request_id {
            // The instance's first request: its log began before its scope
            // was current.
            inner.scope.log = RequestScope::current();
        } else {
            inner
                .parked
                .insert(request_id, Scope::new(request_id, budget));
        }
    }

    /// wasi:http@0.3: output from now on is request `request_id`'s (a
    /// pending partial line goes out as the previous request's). Unknown
    /// ids leave the selection as it is.
    pub fn select(&self, request_id: u64) {
        let mut inner = self.lock();
        if inner.scope.request_id == request_id {
            return;
        }
        let Some(next) = inner.parked.remove(&request_id) else {
            return;
        };
        inner.flush();
        let previous = std::mem::replace(&mut inner.scope, next);
        inner.parked.insert(previous.request_id, previous);
    }

    /// wasi:http@0.3: request `request_id` is answered; its log scope (and
    /// span) is let go, its id and budget still apply to later output.
    pub fn close(&self, request_id: u64) {
        let mut inner = self.lock();
        if inner.scope.request_id == request_id {
            inner.scope.log = RequestScope::default();
        } else if let Some(scope) = inner.parked.get_mut(&request_id) {
            scope.log = RequestScope::default();
        }
    }

    /// wasi:http@0.3: request `request_id` can write no more (its guest
    /// task is gone and its id reused): its parked log is dropped, so an
    /// instance serving a million requests keeps no million entries. A
    /// selected request keeps its place until the next one is selected.
    pub fn forget(&self, request_id: u64) {
        self.lock().parked.remove(&request_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LineBuffer> {
        // A poisoned lock only means an earlier write panicked mid-line.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, bytes: &[u8]) {
        self.lock().push(bytes);
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    /// Writes at once, inside the guest's call (wasmtime-wasi's default
    /// adapter writes from a background task later): the bytes go to the
    /// request the call was made for, which a wasi:http@0.3 instance
    /// serving several requests switches between calls.
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

/// Most bytes a guest may hand over in one write: more than a line buffer,
/// less than a log budget.
const WRITE_PERMIT: usize = 64 * 1024;

impl OutputStream for GuestLog {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        GuestLog::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestLog {
    /// Always ready: writes never wait.
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters() {
        assert_eq!(escape(b"a\x1b[31mb\r"), "a\\u{1b}[31mb");
        assert_eq!(escape(b"tab\there"), "tab\there");
        assert_eq!(escape(b"\xff"), "\u{fffd}");
    }

    #[test]
    fn the_rate_limit_drops_lines_past_the_burst_and_refills() {
        let rate = Arc::new(OutputRate::new(100, Arc::default()));
        // The burst: four seconds' worth.
        assert!(rate.allow(400));
        assert!(!rate.allow(10), "empty");
        std::thread::sleep(Duration::from_millis(120));
        assert!(rate.allow(10), "refilled at 100 bytes/s");
        let log = GuestLog::new(1, LogStream::Stdout, 1 << 20);
        log.limit_rate(rate.clone());
        log.write(b"a line that does not fit\n");
        assert_eq!(rate.bucket.lock().unwrap().dropped, 1);
    }

    #[test]
    fn forgotten_requests_leave_nothing_parked() {
        // An instance serving request after request: each opened, selected,
        // closed, then forgotten when its task id comes round again.
        let log = GuestLog::new(1, LogStream::Stdout, 1 << 20);
        for id in 2..10_000u64 {
            log.open(id, 1 << 20);
            log.select(id);
            log.write(b"a line\n");
            log.close(id);
            if id > 4 {
                log.forget(id - 2);
            }
        }
        let inner = log.inner.lock().unwrap();
        assert!(inner.parked.len() <= 3, "{} parked", inner.parked.len());
    }

    #[test]
    fn budget_caps_logged_bytes() {
        let log = GuestLog::new(1, LogStream::Stdout, 4);
        log.write(b"abcdef\n");
        let inner = log.inner.lock().unwrap();
        assert_eq!(inner.scope.budget, 0);
        assert!(inner.scope.truncated);
        assert_eq!(inner.pending, b"abcd");
    }
}
