//! `wasi:http@0.2` body resources bridged to wasi:io streams.
//!
//! * [`IncomingBody`] hands its [`HostBody`] to an [`IncomingBodyStream`]
//!   (an `input-stream`). When the guest drops the stream, the stream sends
//!   back what is left (unread body, or trailers, or the error) so that
//!   `incoming-body.finish` can still produce the trailers.
//! * [`OutgoingBody`] lends its [`BodyWriter`] to an [`OutgoingBodyStream`]
//!   (an `output-stream`) the same way; `outgoing-body.finish` takes it back
//!   and ends the body.
//!
//! Nothing here spawns a task: streams poll the body directly when the guest
//! reads or waits, so a body nobody reads costs nothing.

use bytes::Bytes;
use futures::FutureExt;
use http::HeaderMap;
use http_body_util::BodyExt;
use tokio::sync::oneshot;
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{InputStream, OutputStream, StreamError, StreamResult};

use crate::body::{BodyWriter, HostBody, WriteError};
use crate::error::ErrorCode;

/// What is left of an incoming body when its stream goes away.
#[derive(Debug)]
enum BodyRest {
    Unfinished(HostBody),
    Ended(Result<Option<HeaderMap>, ErrorCode>),
}

/// One step of reading a body.
enum Step {
    Data(Bytes),
    End(Result<Option<HeaderMap>, ErrorCode>),
}

fn step(frame: Option<Result<http_body::Frame<Bytes>, ErrorCode>>) -> Step {
    match frame {
        None => Step::End(Ok(None)),
        Some(Err(err)) => Step::End(Err(err)),
        Some(Ok(frame)) => match frame.into_data() {
            Ok(data) => Step::Data(data),
            Err(frame) => Step::End(Ok(frame
                .into_trailers()
                .ok()
                .map(crate::fields::hide_forbidden))),
        },
    }
}

/// An `incoming-body`.
#[derive(Debug)]
pub struct IncomingBody {
    state: IncomingState,
}

#[derive(Debug)]
enum IncomingState {
    Unread(HostBody),
    Streaming(oneshot::Receiver<BodyRest>),
}

impl IncomingBody {
    /// Wraps a body for a guest.
    pub fn new(body: HostBody) -> Self {
        Self {
            state: IncomingState::Unread(body),
        }
    }

    /// Takes the stream out, once. Returns `None` the second time.
    pub(crate) fn take_stream(&mut self) -> Option<IncomingBodyStream> {
        let (tx, rx) = oneshot::channel();
        match std::mem::replace(&mut self.state, IncomingState::Streaming(rx)) {
            IncomingState::Unread(body) => Some(IncomingBodyStream {
                body: Some(body),
                buffer: Bytes::new(),
                end: None,
                rest: Some(tx),
            }),
            previous => {
                self.state = previous;
                None
            }
        }
    }

    /// Turns the body into its trailers future (`incoming-body.finish`).
    pub(crate) fn into_trailers(self) -> FutureTrailers {
        let state = match self.state {
            IncomingState::Unread(body) => TrailersState::Draining(body),
            IncomingState::Streaming(mut rx) => match rx.try_recv() {
                Ok(BodyRest::Unfinished(body)) => TrailersState::Draining(body),
                Ok(BodyRest::Ended(result)) => TrailersState::Ready(result),
                // The stream is a child resource, so it is gone by now and has
                // sent its rest; a missing rest means it ended abnormally.
                Err(_) => TrailersState::Ready(Err(ErrorCode::internal("body stream lost"))),
            },
        };
        FutureTrailers { state }
    }
}

/// The `input-stream` of an incoming body.
#[derive(Debug)]
pub struct IncomingBodyStream {
    body: Option<HostBody>,
    buffer: Bytes,
    end: Option<Result<Option<HeaderMap>, ErrorCode>>,
    rest: Option<oneshot::Sender<BodyRest>>,
}

impl IncomingBodyStream {
    fn absorb(&mut self, step: Step) {
        match step {
            Step::Data(data) => self.buffer = data,
            Step::End(end) => {
                self.body = None;
                self.end = Some(end);
            }
        }
    }

    fn read_buffered(&mut self, size: usize) -> Bytes {
        let n = size.min(self.buffer.len());
        self.buffer.split_to(n)
    }

    fn end_result(&mut self) -> StreamResult<Bytes> {
        match &self.end {
            Some(Err(err)) => {
                let err = err.clone();
                // Report the failure once; afterwards the stream is closed.
                self.end = Some(Ok(None));
                Err(StreamError::LastOperationFailed(wasmtime::Error::new(err)))
            }
            _ => Err(StreamError::Closed),
        }
    }
}

#[async_trait::async_trait]
impl Pollable for IncomingBodyStream {
    async fn ready(&mut self) {
        while self.buffer.is_empty() && self.end.is_none() {
            let Some(body) = &mut self.body else { return };
            let s = step(body.frame().await);
            self.absorb(s);
        }
    }
}

#[async_trait::async_trait]
impl InputStream for IncomingBodyStream {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        while self.buffer.is_empty() && self.end.is_none() {
            let Some(body) = &mut self.body else { break };
            match body.frame().now_or_never() {
                Some(frame) => self.absorb(step(frame)),
                None => return Ok(Bytes::new()),
            }
        }
        if !self.buffer.is_empty() {
            return Ok(self.read_buffered(size));
        }
        self.end_result()
    }
}

impl Drop for IncomingBodyStream {
    fn drop(&mut self) {
        let rest = match (self.body.take(), self.end.take()) {
            (Some(body), _) => BodyRest::Unfinished(body),
            (None, Some(end)) => BodyRest::Ended(end),
            (None, None) => BodyRest::Ended(Ok(None)),
        };
        if let Some(tx) = self.rest.take() {
            let _ = tx.send(rest);
        }
    }
}

/// A `future-trailers`.
#[derive(Debug)]
pub struct FutureTrailers {
    state: TrailersState,
}

#[derive(Debug)]
enum TrailersState {
    /// Unread data is discarded until the trailers (or the end) arrive.
    Draining(HostBody),
    Ready(Result<Option<HeaderMap>, ErrorCode>),
    Taken,
}

impl FutureTrailers {
    /// Advances without blocking; returns the result once, then `Err(())`.
    #[allow(clippy::type_complexity, reason = "mirrors the WIT signature")]
    pub(crate) fn poll_now(&mut self) -> Option<Result<Result<Option<HeaderMap>, ErrorCode>, ()>> {
        while let TrailersState::Draining(body) = &mut self.state {
            match body.frame().now_or_never() {
                None => return None,
                Some(frame) => {
                    if let Step::End(end) = step(frame) {
                        self.state = TrailersState::Ready(end);
                    }
                }
            }
        }
        match std::mem::replace(&mut self.state, TrailersState::Taken) {
            TrailersState::Ready(result) => Some(Ok(result)),
            _ => Some(Err(())),
        }
    }
}

#[async_trait::async_trait]
impl Pollable for FutureTrailers {
    async fn ready(&mut self) {
        while let TrailersState::Draining(body) = &mut self.state {
            if let Step::End(end) = step(body.frame().await) {
                self.state = TrailersState::Ready(end);
            }
        }
    }
}

/// An `outgoing-body`.
#[derive(Debug)]
pub struct OutgoingBody {
    writer: WriterSlot,
}

#[derive(Debug)]
enum WriterSlot {
    Here(BodyWriter),
    Lent(oneshot::Receiver<BodyWriter>),
}

impl OutgoingBody {
    pub(crate) fn new(writer: BodyWriter) -> Self {
        Self {
            writer: WriterSlot::Here(writer),
        }
    }

    /// Lends the writer to an output stream, once.
    pub(crate) fn take_stream(&mut self) -> Option<OutgoingBodyStream> {
        let (tx, rx) = oneshot::channel();
        match std::mem::replace(&mut self.writer, WriterSlot::Lent(rx)) {
            WriterSlot::Here(writer) => Some(OutgoingBodyStream {
                writer: Some(writer),
                back: Some(tx),
            }),
            previous => {
                self.writer = previous;
                None
            }
        }
    }

    /// Takes the writer back for `finish`. `None` if the stream is still
    /// alive (the resource table prevents that) or was lost.
    pub(crate) fn into_writer(self) -> Option<BodyWriter> {
        match self.writer {
            WriterSlot::Here(writer) => Some(writer),
            WriterSlot::Lent(mut rx) => rx.try_recv().ok(),
        }
    }
}

/// The `output-stream` of an outgoing body.
#[derive(Debug)]
pub struct OutgoingBodyStream {
    writer: Option<BodyWriter>,
    back: Option<oneshot::Sender<BodyWriter>>,
}

impl OutgoingBodyStream {
    fn writer(&mut self) -> StreamResult<&mut BodyWriter> {
        self.writer.as_mut().ok_or(StreamError::Closed)
    }
}

fn stream_error(err: WriteError) -> StreamError {
    match err {
        WriteError::Closed => StreamError::Closed,
        WriteError::Failed(code) => StreamError::LastOperationFailed(wasmtime::Error::new(code)),
    }
}

#[async_trait::async_trait]
impl Pollable for OutgoingBodyStream {
    async fn ready(&mut self) {
        if let Some(writer) = &mut self.writer {
            writer.ready().await;
        }
    }
}

#[async_trait::async_trait]
impl OutputStream for OutgoingBodyStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.writer()?.write(bytes).map_err(stream_error)
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Written bytes are already on their way to the reader.
        self.writer()?
            .check_write()
            .map(|_| ())
            .map_err(stream_error)
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.writer()?.check_write().map_err(stream_error)
    }
}

impl Drop for OutgoingBodyStream {
    fn drop(&mut self) {
        if let (Some(writer), Some(back)) = (self.writer.take(), self.back.take()) {
            let _ = back.send(writer);
        }
    }
}
