//! Version-neutral body plumbing between hyper and guests.
//!
//! Two concrete body types sit at the edges:
//!
//! * [`HostBody`]: bytes flowing *to* a guest (an incoming request body, or a
//!   response an upstream sent back). Any `http_body::Body` can become one.
//! * [`GuestBody`]: bytes a guest writes, flowing *out* to hyper. It is fed
//!   by a [`BodyWriter`] through a bounded channel, so a guest that writes
//!   faster than the peer reads is back-pressured and at most
//!   [`DEFAULT_BODY_CHANNEL_CHUNKS`] × [`MAX_WRITE_CHUNK`] bytes are in flight.
//!
//! When the writer is charged to an instance's memory budget
//! ([`BodyWriter::charge_to`]), every chunk in the channel holds its bytes
//! against that budget until the reader takes it: a guest that fills body
//! after body nobody reads is stopped by its memory limit, not by the
//! number of bodies it may open.
//!
//! A `GuestBody` ends cleanly only when the guest *finished* it (optionally
//! with trailers) and the byte count matches any declared `Content-Length`.
//! Every other ending (guest dropped the body, trapped, overran or underran
//! its length) yields an error, which makes hyper abort the response: no
//! final chunk on HTTP/1.1, `RST_STREAM` on HTTP/2. A broken body never looks
//! complete.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use tokio::sync::{mpsc, oneshot};

use crate::error::ErrorCode;
use crate::memory::{Charge, HostMemory};

/// A body flowing from the host to a guest.
pub type HostBody = BoxBody<Bytes, ErrorCode>;

/// Wraps any body whose errors convert to [`ErrorCode`] as a [`HostBody`].
pub fn host_body<B>(body: B) -> HostBody
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<ErrorCode>,
{
    body.map_err(Into::into).boxed()
}

/// A body that is `Send` but not `Sync` (axum's, hyper's `Incoming` is
/// both), made `Sync` so it can become a [`HostBody`]. It is only ever
/// polled through `&mut`, so the mutex is never contended: it is there for
/// the type system, and costs one uncontended check per frame.
pub struct SyncBody<B>(std::sync::Mutex<Pin<Box<B>>>);

impl<B> SyncBody<B> {
    /// Wraps `body`.
    pub fn new(body: B) -> Self {
        Self(std::sync::Mutex::new(Box::pin(body)))
    }

    fn body(&mut self) -> Pin<&mut B> {
        self.0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_mut()
    }
}

impl<B> std::fmt::Debug for SyncBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncBody").finish_non_exhaustive()
    }
}

impl<B: Body> Body for SyncBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.body().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .map(|body| body.is_end_stream())
            .unwrap_or(false)
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .lock()
            .map(|body| body.size_hint())
            .unwrap_or_default()
    }
}

/// An empty [`HostBody`].
pub fn empty_host_body() -> HostBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// Largest write a guest may make in one call, and the size of one slot in
/// the body channel. 64 KiB matches the frame sizes hyper writes well.
pub const MAX_WRITE_CHUNK: usize = 64 * 1024;

/// Number of chunks a [`GuestBody`] channel holds before the guest waits.
pub const DEFAULT_BODY_CHANNEL_CHUNKS: usize = 4;

/// Which message a guest body belongs to; decides the error-code used for a
/// `Content-Length` mismatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// The body of a request the guest sends.
    Request,
    /// The body of a response the guest returns.
    Response,
}

impl BodyKind {
    fn size_error(self, written: u64) -> ErrorCode {
        match self {
            BodyKind::Request => ErrorCode::HttpRequestBodySize(Some(written)),
            BodyKind::Response => ErrorCode::HttpResponseBodySize(Some(written)),
        }
    }
}

/// How a guest body ended, sent once from the writer to the reader.
type Outcome = Result<Option<HeaderMap>, ErrorCode>;

/// One chunk in a guest body's channel, holding its bytes against the
/// writer's budget until the reader takes it (or the channel is dropped).
#[derive(Debug)]
struct Chunk {
    bytes: Bytes,
    _charge: Charge,
}

/// Creates the two ends of a guest body.
pub fn guest_body(content_length: Option<u64>, kind: BodyKind) -> (BodyWriter, GuestBody) {
    let (data_tx, data_rx) = mpsc::channel(DEFAULT_BODY_CHANNEL_CHUNKS);
    let (outcome_tx, outcome_rx) = oneshot::channel();
    let writer = BodyWriter {
        sender: SenderState::Idle(data_tx),
        outcome: Some(outcome_tx),
        written: 0,
        content_length,
        kind,
        memory: None,
    };
    let body = GuestBody {
        data: data_rx,
        outcome: Some(outcome_rx),
        content_length,
        remaining: content_length,
        delivered: Vec::new(),
    };
    (writer, body)
}

/// Why a write to a guest body failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteError {
    /// The reader went away (the client disconnected or hyper dropped the
    /// body, e.g. for a `HEAD` response).
    Closed,
    /// The write broke a rule; the body has been aborted.
    Failed(ErrorCode),
}

/// Waiting for channel capacity (from [`BodyWriter::poll_ready`]).
type Reserving = Pin<
    Box<dyn Future<Output = Result<mpsc::OwnedPermit<Chunk>, mpsc::error::SendError<()>>> + Send>,
>;

enum SenderState {
    Idle(mpsc::Sender<Chunk>),
    Reserving(Reserving),
    Permitted(mpsc::OwnedPermit<Chunk>),
    Closed,
}

impl std::fmt::Debug for SenderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SenderState::Idle(_) => "Idle",
            SenderState::Reserving(_) => "Reserving",
            SenderState::Permitted(_) => "Permitted",
            SenderState::Closed => "Closed",
        })
    }
}

/// The guest's end of a [`GuestBody`].
#[derive(Debug)]
pub struct BodyWriter {
    sender: SenderState,
    outcome: Option<oneshot::Sender<Outcome>>,
    written: u64,
    content_length: Option<u64>,
    kind: BodyKind,
    /// The budget buffered chunks are charged to, if any.
    memory: Option<HostMemory>,
}

impl BodyWriter {
    /// Charges the bytes this writer has in the channel (written, not yet
    /// read) to `memory`; a write that does not fit fails and aborts the
    /// body.
    pub fn charge_to(&mut self, memory: HostMemory) {
        self.memory = Some(memory);
    }

    /// Bytes the guest may write now without waiting: 0 when the channel is
    /// full (wait with [`BodyWriter::ready`]), otherwise up to
    /// [`MAX_WRITE_CHUNK`].
    pub fn check_write(&mut self) -> Result<usize, WriteError> {
        if self.outcome.is_none() {
            return Err(WriteError::Closed);
        }
        match std::mem::replace(&mut self.sender, SenderState::Closed) {
            SenderState::Permitted(p) => {
                self.sender = SenderState::Permitted(p);
                Ok(MAX_WRITE_CHUNK)
            }
            SenderState::Idle(tx) => match tx.try_reserve_owned() {
                Ok(p) => {
                    self.sender = SenderState::Permitted(p);
                    Ok(MAX_WRITE_CHUNK)
                }
                Err(mpsc::error::TrySendError::Full(tx)) => {
                    self.sender = SenderState::Idle(tx);
                    Ok(0)
                }
                Err(mpsc::error::TrySendError::Closed(_)) => Err(WriteError::Closed),
            },
            SenderState::Reserving(mut fut) => {
                match fut
                    .as_mut()
                    .poll(&mut Context::from_waker(std::task::Waker::noop()))
                {
                    Poll::Ready(Ok(p)) => {
                        self.sender = SenderState::Permitted(p);
                        Ok(MAX_WRITE_CHUNK)
                    }
                    Poll::Ready(Err(_)) => Err(WriteError::Closed),
                    Poll::Pending => {
                        self.sender = SenderState::Reserving(fut);
                        Ok(0)
                    }
                }
            }
            SenderState::Closed => Err(WriteError::Closed),
        }
    }

    /// Polls until a write of up to [`MAX_WRITE_CHUNK`] bytes is possible
    /// (a permit is held) or the body is closed; the waker in `cx` is woken
    /// when capacity frees up. For callers that are poll-based (wasi:http
    /// 0.3 stream consumers).
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match std::mem::replace(&mut self.sender, SenderState::Closed) {
                SenderState::Idle(tx) => match tx.try_reserve_owned() {
                    Ok(p) => self.sender = SenderState::Permitted(p),
                    Err(mpsc::error::TrySendError::Full(tx)) => {
                        self.sender = SenderState::Reserving(Box::pin(tx.reserve_owned()));
                        continue;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                },
                SenderState::Reserving(mut fut) => match fut.as_mut().poll(cx) {
                    Poll::Ready(Ok(p)) => self.sender = SenderState::Permitted(p),
                    Poll::Ready(Err(_)) => {}
                    Poll::Pending => {
                        self.sender = SenderState::Reserving(fut);
                        return Poll::Pending;
                    }
                },
                state @ (SenderState::Permitted(_) | SenderState::Closed) => self.sender = state,
            }
            return Poll::Ready(());
        }
    }

    /// Waits until a write of up to [`MAX_WRITE_CHUNK`] bytes is possible or
    /// the body is closed. Cancel-safe: dropping the future loses nothing.
    pub async fn ready(&mut self) {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await
    }

    /// Writes `bytes`, which must fit the permit [`BodyWriter::check_write`]
    /// gave. Exceeding a declared `Content-Length` aborts the body.
    pub fn write(&mut self, bytes: Bytes) -> Result<(), WriteError> {
        if bytes.is_empty() {
            return Ok(());
        }
        if bytes.len() > MAX_WRITE_CHUNK {
            return Err(WriteError::Failed(ErrorCode::internal(format!(
                "write of {} bytes exceeds the permitted {MAX_WRITE_CHUNK}",
                bytes.len()
            ))));
        }
        let written = self.written + bytes.len() as u64;
        if let Some(limit) = self.content_length
            && written > limit
        {
            let err = self.kind.size_error(written);
            self.abort(err.clone());
            return Err(WriteError::Failed(err));
        }
        let charge = match &self.memory {
            Some(memory) => match memory.charge(bytes.len()) {
                Ok(charge) => charge,
                Err(over) => {
                    let err = ErrorCode::internal(format!("body write refused: {over}"));
                    self.abort(err.clone());
                    return Err(WriteError::Failed(err));
                }
            },
            None => Charge::none(),
        };
        let bytes = Chunk {
            bytes,
            _charge: charge,
        };
        match std::mem::replace(&mut self.sender, SenderState::Closed) {
            SenderState::Permitted(p) => {
                self.sender = SenderState::Idle(p.send(bytes));
                self.written = written;
                Ok(())
            }
            SenderState::Idle(tx) => {
                // No permit was taken: behave like a non-blocking send.
                match tx.try_send(bytes) {
                    Ok(()) => {
                        self.sender = SenderState::Idle(tx);
                        self.written = written;
                        Ok(())
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        self.sender = SenderState::Idle(tx);
                        Err(WriteError::Failed(ErrorCode::internal(
                            "write without a permit from check-write",
                        )))
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => Err(WriteError::Closed),
                }
            }
            SenderState::Reserving(fut) => {
                self.sender = SenderState::Reserving(fut);
                Err(WriteError::Failed(ErrorCode::internal(
                    "write without a permit from check-write",
                )))
            }
            SenderState::Closed => Err(WriteError::Closed),
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Ends the body, with optional trailers. Fails (and aborts the body) when
    /// fewer bytes than a declared `Content-Length` were written.
    pub fn finish(mut self, trailers: Option<HeaderMap>) -> Result<(), ErrorCode> {
        if let Some(limit) = self.content_length
            && self.written != limit
        {
            let err = self.kind.size_error(self.written);
            self.abort(err.clone());
            return Err(err);
        }
        if let Some(tx) = self.outcome.take() {
            // The reader may be gone (client disconnected); nothing to report.
            let _ = tx.send(Ok(trailers));
        }
        Ok(())
    }

    /// Aborts the body: the reader sees `err` instead of a clean end.
    pub fn abort(&mut self, err: ErrorCode) {
        self.sender = SenderState::Closed;
        if let Some(tx) = self.outcome.take() {
            let _ = tx.send(Err(err));
        }
    }
}

/// A body written by a guest, read by hyper. See the module docs.
#[derive(Debug)]
pub struct GuestBody {
    data: mpsc::Receiver<Chunk>,
    outcome: Option<oneshot::Receiver<Outcome>>,
    content_length: Option<u64>,
    remaining: Option<u64>,
    delivered: Vec<oneshot::Sender<Result<(), ErrorCode>>>,
}

impl GuestBody {
    /// A body that is already complete and empty (a response whose body the
    /// guest never asked for).
    pub fn empty() -> Self {
        let (writer, body) = guest_body(None, BodyKind::Response);
        // An empty writer with no length cannot fail to finish.
        let _ = writer.finish(None);
        body
    }

    /// Tells `tx` how delivery ended: `Ok` once the reader (hyper) has
    /// taken the last frame, or the error that ended the body, or
    /// `connection-terminated` if the body is dropped before its end (the
    /// peer went away). wasi:http 0.3 reports this to the guest as the
    /// transmission result of a request or response.
    /// Several listeners may register.
    pub fn on_delivery(&mut self, tx: oneshot::Sender<Result<(), ErrorCode>>) {
        self.delivered.push(tx);
    }

    fn report(&mut self, result: Result<(), ErrorCode>) {
        for tx in self.delivered.drain(..) {
            let _ = tx.send(result.clone());
        }
    }
}

impl Drop for GuestBody {
    fn drop(&mut self) {
        self.report(Err(ErrorCode::ConnectionTerminated));
    }
}

impl Body for GuestBody {
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        let this = &mut *self;
        if let Some(Chunk { bytes, .. }) = ready!(this.data.poll_recv(cx)) {
            if let Some(rem) = &mut this.remaining {
                *rem = rem.saturating_sub(bytes.len() as u64);
            }
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        let Some(rx) = &mut this.outcome else {
            return Poll::Ready(None);
        };
        let outcome = ready!(Pin::new(rx).poll(cx));
        this.outcome = None;
        let frame = match outcome {
            Ok(Ok(Some(trailers))) => Some(Ok(Frame::trailers(trailers))),
            Ok(Ok(None)) => None,
            Ok(Err(err)) => Some(Err(err)),
            Err(_) => Some(Err(ErrorCode::internal(
                "the guest dropped the body without finishing it",
            ))),
        };
        this.report(match &frame {
            Some(Err(err)) => Err(err.clone()),
            _ => Ok(()),
        });
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.outcome.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (self.content_length, self.remaining) {
            (Some(_), Some(rem)) => SizeHint::with_exact(rem),
            _ => SizeHint::default(),
        }
    }
}

/// Parses a `Content-Length` header strictly (RFC 9110 §8.6): one value,
/// digits only. Several identical values are accepted, as the RFC allows.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ErrorCode> {
    let mut found: Option<u64> = None;
    for value in headers.get_all(http::header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|b| *b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err(ErrorCode::internal("invalid content-length header"));
            }
            let n: u64 = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| ErrorCode::internal("invalid content-length header"))?;
            match found {
                Some(prev) if prev != n => {
                    return Err(ErrorCode::internal("conflicting content-length headers"));
                }
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn collect(body: GuestBody) -> Result<(Vec<u8>, Option<HeaderMap>), ErrorCode> {
        let collected = body.collect().await?;
        let trailers = collected.trailers().cloned();
        Ok((collected.to_bytes().to_vec(), trailers))
    }

    #[tokio::test]
    async fn finished_body_delivers_data_and_trailers() {
        let (mut w, body) = guest_body(None, BodyKind::Response);
        assert_eq!(w.check_write(), Ok(MAX_WRITE_CHUNK));
        w.write(Bytes::from_static(b"hello")).unwrap();
        let mut t = HeaderMap::new();
        t.insert("x-t", "1".parse().unwrap());
        w.finish(Some(t)).unwrap();
        let (data, trailers) = collect(body).await.unwrap();
        assert_eq!(data, b"hello");
        assert_eq!(trailers.unwrap()["x-t"], "1");
    }

    #[tokio::test]
    async fn buffered_chunks_hold_their_bytes_until_read() {
        let memory = HostMemory::new(10);
        let (mut w, mut body) = guest_body(None, BodyKind::Response);
        w.charge_to(memory.clone());
        w.check_write().unwrap();
        w.write(Bytes::from_static(b"123456")).unwrap();
        assert_eq!(memory.host_bytes(), 6);
        w.check_write().unwrap();
        // Past the budget: refused, and the body is aborted.
        assert!(matches!(
            w.write(Bytes::from_static(b"78901")),
            Err(WriteError::Failed(ErrorCode::InternalError(Some(_))))
        ));
        assert_eq!(memory.host_bytes(), 6);
        // The reader takes the chunk: its bytes are released.
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "123456");
        assert_eq!(memory.host_bytes(), 0);

        // Chunks nobody reads are released with the body.
        let (mut w, body) = guest_body(None, BodyKind::Response);
        w.charge_to(memory.clone());
        w.check_write().unwrap();
        w.write(Bytes::from_static(b"abc")).unwrap();
        assert_eq!(memory.host_bytes(), 3);
        drop(body);
        assert_eq!(memory.host_bytes(), 0);
    }

    #[tokio::test]
    async fn dropped_writer_is_an_error_not_an_end() {
        let (mut w, body) = guest_body(None, BodyKind::Response);
        w.check_write().unwrap();
        w.write(Bytes::from_static(b"partial")).unwrap();
        drop(w);
        assert!(collect(body).await.is_err());
    }

    #[tokio::test]
    async fn content_length_overrun_and_underrun_abort() {
        let (mut w, body) = guest_body(Some(3), BodyKind::Response);
        w.check_write().unwrap();
        assert_eq!(
            w.write(Bytes::from_static(b"toolong")),
            Err(WriteError::Failed(ErrorCode::HttpResponseBodySize(Some(7))))
        );
        assert!(collect(body).await.is_err());

        let (mut w, body) = guest_body(Some(3), BodyKind::Request);
        w.check_write().unwrap();
        w.write(Bytes::from_static(b"ab")).unwrap();
        assert_eq!(w.finish(None), Err(ErrorCode::HttpRequestBodySize(Some(2))));
        assert_eq!(
            collect(body).await.unwrap_err(),
            ErrorCode::HttpRequestBodySize(Some(2))
        );
    }

    #[tokio::test]
    async fn full_channel_back_pressures_until_read() {
        let (mut w, mut body) = guest_body(None, BodyKind::Response);
        for _ in 0..DEFAULT_BODY_CHANNEL_CHUNKS {
            assert_eq!(w.check_write(), Ok(MAX_WRITE_CHUNK));
            w.write(Bytes::from_static(b"x")).unwrap();
        }
        assert_eq!(w.check_write(), Ok(0));
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "x");
        w.ready().await;
        assert_eq!(w.check_write(), Ok(MAX_WRITE_CHUNK));
    }

    #[tokio::test]
    async fn reader_gone_means_closed() {
        let (mut w, body) = guest_body(None, BodyKind::Response);
        drop(body);
        assert_eq!(w.check_write(), Err(WriteError::Closed));
    }

    #[test]
    fn content_length_parsing_is_strict() {
        let mut h = HeaderMap::new();
        assert_eq!(content_length(&h), Ok(None));
        h.insert("content-length", "5".parse().unwrap());
        assert_eq!(content_length(&h), Ok(Some(5)));
        for bad in ["+5", "-1", "5,6", "0x5", ""] {
            h.insert("content-length", bad.parse().unwrap());
            assert!(content_length(&h).is_err(), "{bad:?}");
        }
        h.insert("content-length", "5, 5".parse().unwrap());
        assert_eq!(content_length(&h), Ok(Some(5)));
    }
}
