//! Guest stdout and stderr, line-buffered into the server log.
//!
//! Each complete line becomes one `tracing` event at INFO (stdout) or WARN
//! (stderr), tagged with the request id. Control characters are escaped so a
//! guest cannot forge log lines or drive the operator's terminal, and the
//! bytes logged per request are capped.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

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

#[derive(Debug)]
struct LineBuffer {
    request_id: u64,
    /// The span current when the request's log began (a front-end's
    /// `request` span carries the id clients see): the guest's lines are
    /// written in it, whichever task flushes them.
    span: tracing::Span,
    stream: LogStream,
    pending: Vec<u8>,
    budget: usize,
    truncated: bool,
}

impl LineBuffer {
    fn emit(&self, line: &[u8]) {
        let text = escape(line);
        let _in_request = self.span.enter();
        match self.stream {
            LogStream::Stdout => {
                tracing::info!(target: "berth::guest", request_id = self.request_id, stream = "stdout", "{text}")
            }
            LogStream::Stderr => {
                tracing::warn!(target: "berth::guest", request_id = self.request_id, stream = "stderr", "{text}")
            }
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        if bytes.len() > self.budget {
            bytes = &bytes[..self.budget];
            if !self.truncated {
                self.truncated = true;
                let _in_request = self.span.enter();
                tracing::warn!(
                    target: "berth::guest",
                    request_id = self.request_id,
                    "guest log limit reached; further output of this request is dropped"
                );
            }
        }
        self.budget -= bytes.len();
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

impl Drop for LineBuffer {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
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
                request_id,
                span: tracing::Span::current(),
                stream,
                pending: Vec::new(),
                budget,
                truncated: false,
            })),
        }
    }

    /// Starts the log of a new request on a reused instance: flushes a
    /// pending partial line and resets the id and the byte budget.
    pub fn restart(&self, request_id: u64, budget: usize) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if !inner.pending.is_empty() {
            let line = std::mem::take(&mut inner.pending);
            inner.emit(&line);
        }
        inner.request_id = request_id;
        inner.span = tracing::Span::current();
        inner.budget = budget;
        inner.truncated = false;
    }

    fn write(&self, bytes: &[u8]) {
        // A poisoned lock only means an earlier write panicked mid-line.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.push(bytes);
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
    fn budget_caps_logged_bytes() {
        let log = GuestLog::new(1, LogStream::Stdout, 4);
        log.write(b"abcdef\n");
        let inner = log.inner.lock().unwrap();
        assert_eq!(inner.budget, 0);
        assert!(inner.truncated);
        assert_eq!(inner.pending, b"abcd");
    }
}
