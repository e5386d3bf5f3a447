//! Bodies of `wasi:http@0.3.0` messages: `stream<u8>` contents plus a
//! `future` of trailers, bridged to the version-neutral [`HostBody`] and
//! [`GuestBody`].
//!
//! * Host → guest ([`Body::Host`] consumed by a guest): a [`StreamProducer`]
//!   hands each data frame of the `HostBody` to the guest's reads without
//!   copying it first, and a [`FutureProducer`] delivers the trailers once
//!   the data has ended.
//! * Guest → host ([`Body::Guest`] sent to hyper or upstream): a
//!   [`StreamConsumer`] writes into a [`BodyWriter`] (bounded channel, so a
//!   slow peer back-pressures the guest's writes), and a [`FutureConsumer`]
//!   takes the trailers. The body finishes only when both the stream has
//!   ended and the trailers future resolved; `Content-Length` is enforced
//!   by the writer.
//! * Guest → guest (a middleware passing a body on): the stream and future
//!   handles move as they are; no host copy.
//!
//! Every guest-built body comes with a transmission future
//! (`request.new` / `response.new`); it resolves `ok` only once the reader
//! took the last frame, with the error that ended the body otherwise, and
//! with an error if the message was dropped unsent.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::Body as _;
use http_body_util::BodyExt as _;
use tokio::sync::oneshot;
use wasmtime::component::{
    Destination, FutureConsumer, FutureProducer, FutureReader, Resource, Source, StreamConsumer,
    StreamProducer, StreamReader, StreamResult,
};
use wasmtime::{AsContextMut, StoreContextMut};

use crate::body::{BodyKind, BodyWriter, GuestBody, HostBody, MAX_WRITE_CHUNK, guest_body};
use crate::ctx::HttpCtxView;
use crate::error::ErrorCode;
use crate::fields::FieldMap;
use crate::p3::bindings::http::types as wit;
use crate::p3::conv;

/// The trailers future's payload.
pub type TrailersResult = Result<Option<Resource<FieldMap>>, wit::ErrorCode>;

/// How the transmission of a message ended, as its sender learns it.
pub type Delivery = oneshot::Sender<Result<(), ErrorCode>>;

/// Finds the `wasi:http` view in a store's data.
pub type Getter<D> = fn(&mut D) -> HttpCtxView<'_>;

/// The body of a request or response resource.
pub enum Body {
    /// Bytes from the host: a request from the network or a response from
    /// an upstream.
    Host {
        /// The bytes and trailers.
        body: HostBody,
        /// Told how the guest's processing of the body ended, if anyone
        /// wants to know.
        delivered: Option<Delivery>,
    },
    /// A body a guest built with `request.new` / `response.new`.
    Guest {
        /// The guest's stream, `None` for an empty body.
        contents: Option<StreamReader<u8>>,
        /// The guest's trailers future.
        trailers: FutureReader<TrailersResult>,
        /// Resolves the transmission future the guest holds.
        delivered: Delivery,
    },
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Body::Host { .. } => "Body::Host",
            Body::Guest { .. } => "Body::Guest",
        })
    }
}

fn lock(sink: &Mutex<Sink>) -> std::sync::MutexGuard<'_, Sink> {
    sink.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Body {
    /// A guest-built body and the transmission future handed back to it.
    pub fn new_guest(
        mut store: impl AsContextMut,
        contents: Option<StreamReader<u8>>,
        trailers: FutureReader<TrailersResult>,
    ) -> wasmtime::Result<(Self, FutureReader<Result<(), wit::ErrorCode>>)> {
        let (delivered, outcome) = oneshot::channel();
        let sent = FutureReader::new(&mut store, async move {
            Ok::<_, wasmtime::Error>(match outcome.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(code)) => Err(conv::error_code_to_wit(code)),
                Err(_) => Err(wit::ErrorCode::InternalError(Some(
                    "the message was dropped before it was sent".into(),
                ))),
            })
        })?;
        let body = Body::Guest {
            contents,
            trailers,
            delivered,
        };
        Ok((body, sent))
    }

    /// `consume-body`: the contents stream and trailers future for a guest
    /// to read. `result` is the guest's report on its processing, passed to
    /// whoever built the body.
    pub fn consume<S>(
        self,
        mut store: S,
        result: FutureReader<Result<(), wit::ErrorCode>>,
        getter: Getter<S::Data>,
    ) -> wasmtime::Result<(StreamReader<u8>, FutureReader<TrailersResult>)>
    where
        S: AsContextMut,
        S::Data: Send + 'static,
    {
        match self {
            Body::Guest {
                contents,
                trailers,
                delivered,
            } => {
                result.pipe(&mut store, ReportConsumer(Some(delivered)))?;
                let contents = match contents {
                    Some(stream) => stream,
                    None => StreamReader::new(&mut store, std::iter::empty())?,
                };
                Ok((contents, trailers))
            }
            Body::Host { body, delivered } => {
                match delivered {
                    Some(tx) => result.pipe(&mut store, ReportConsumer(Some(tx)))?,
                    None => {
                        let mut result = result;
                        result.close(&mut store)?;
                    }
                }
                let (trailers_tx, trailers_rx) = oneshot::channel();
                let contents = StreamReader::new(
                    &mut store,
                    HostBodyProducer {
                        body,
                        trailers: Some(trailers_tx),
                    },
                )?;
                let trailers = FutureReader::new(
                    &mut store,
                    HostTrailersProducer {
                        trailers: trailers_rx,
                        getter,
                    },
                )?;
                Ok((contents, trailers))
            }
        }
    }

    /// Releases a body nobody will read (its message was dropped).
    pub fn discard(self, mut store: impl AsContextMut) -> wasmtime::Result<()> {
        if let Body::Guest {
            contents,
            mut trailers,
            ..
        } = self
        {
            if let Some(mut contents) = contents {
                contents.close(&mut store)?;
            }
            trailers.close(&mut store)?;
        }
        Ok(())
    }

    /// Turns the body into one hyper can send, enforcing `content_length`.
    /// The [`BodyAbort`] ends it early (a deadline passed).
    pub fn into_guest_body<S>(
        self,
        mut store: S,
        getter: Getter<S::Data>,
        content_length: Option<u64>,
        kind: BodyKind,
    ) -> wasmtime::Result<(GuestBody, BodyAbort)>
    where
        S: AsContextMut,
        S::Data: Send + 'static,
    {
        match self {
            Body::Host { body, delivered } => {
                let (mut out, task) = pump(body, content_length, kind);
                if let Some(tx) = delivered {
                    out.on_delivery(tx);
                }
                Ok((out, BodyAbort(AbortTarget::Task(task))))
            }
            Body::Guest {
                contents,
                trailers,
                delivered,
            } => {
                let (writer, mut out) = guest_body(content_length, kind);
                out.on_delivery(delivered);
                let sink = Arc::new(Mutex::new(Sink {
                    writer: Some(writer),
                    stream_done: contents.is_none(),
                    trailers: None,
                }));
                if let Some(contents) = contents {
                    contents.pipe(&mut store, GuestBodyConsumer { sink: sink.clone() })?;
                }
                trailers.pipe(
                    &mut store,
                    TrailersConsumer {
                        sink: Some(sink.clone()),
                        getter,
                    },
                )?;
                Ok((out, BodyAbort(AbortTarget::Sink(sink))))
            }
        }
    }
}

/// Ends a body early: the reader sees the error instead of a clean end.
#[derive(Debug)]
pub struct BodyAbort(AbortTarget);

#[derive(Debug)]
enum AbortTarget {
    Sink(Arc<Mutex<Sink>>),
    Task(tokio::task::AbortHandle),
}

impl BodyAbort {
    /// Aborts the body with `err` (no effect once it has ended).
    pub fn abort(&self, err: ErrorCode) {
        match &self.0 {
            AbortTarget::Sink(sink) => {
                let mut sink = lock(sink);
                sink.trailers = Some(Err(err));
                sink.settle();
            }
            // The writer is dropped with the task: the body ends in error.
            AbortTarget::Task(task) => task.abort(),
        }
    }
}

/// Copies a host body into a [`GuestBody`] (a guest returned an upstream's
/// response as its own, or sends a host body upstream).
fn pump(
    mut body: HostBody,
    content_length: Option<u64>,
    kind: BodyKind,
) -> (GuestBody, tokio::task::AbortHandle) {
    let (mut writer, out) = guest_body(content_length, kind);
    let task = tokio::spawn(async move {
        loop {
            match body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(mut data) => {
                        while !data.is_empty() {
                            writer.ready().await;
                            let chunk = data.split_to(data.len().min(MAX_WRITE_CHUNK));
                            if writer.write(chunk).is_err() {
                                return;
                            }
                        }
                    }
                    Err(frame) => {
                        let trailers = frame.into_trailers().ok();
                        let _ = writer.finish(trailers);
                        return;
                    }
                },
                Some(Err(err)) => {
                    writer.abort(err);
                    return;
                }
                None => {
                    let _ = writer.finish(None);
                    return;
                }
            }
        }
    });
    (out, task.abort_handle())
}

/// Writes the guest's transmission report (`consume-body`'s future) to
/// the body's builder.
struct ReportConsumer(Option<Delivery>);

impl<D> FutureConsumer<D> for ReportConsumer {
    type Item = Result<(), wit::ErrorCode>;

    fn poll_consume(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        mut store: StoreContextMut<'_, D>,
        mut source: Source<'_, Self::Item>,
        _: bool,
    ) -> Poll<wasmtime::Result<()>> {
        let mut value = None;
        source.read(&mut store, &mut value)?;
        if let (Some(value), Some(tx)) = (value, self.0.take()) {
            let _ = tx.send(value.map_err(conv::error_code_from_wit));
        }
        Poll::Ready(Ok(()))
    }
}

/// Feeds a host body's data frames to a guest's reads.
struct HostBodyProducer {
    body: HostBody,
    trailers: Option<oneshot::Sender<Result<Option<HeaderMap>, ErrorCode>>>,
}

impl HostBodyProducer {
    fn end(&mut self, result: Result<Option<HeaderMap>, ErrorCode>) -> StreamResult {
        if let Some(tx) = self.trailers.take() {
            let _ = tx.send(result);
        }
        StreamResult::Dropped
    }
}

impl Drop for HostBodyProducer {
    fn drop(&mut self) {
        // The guest closed the stream before its end.
        self.end(Err(ErrorCode::internal(
            "the body stream was closed before its end",
        )));
    }
}

impl<D> StreamProducer<D> for HostBodyProducer {
    type Item = u8;
    type Buffer = Bytes;

    fn poll_produce<'a>(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<'a, D>,
        mut destination: Destination<'a, u8, Bytes>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        if destination.remaining(&mut store) == Some(0) {
            // A readiness probe: say ready; a real read will wait if needed.
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        loop {
            let frame = match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending if finish => return Poll::Ready(Ok(StreamResult::Cancelled)),
                Poll::Pending => return Poll::Pending,
                Poll::Ready(frame) => frame,
            };
            let result = match frame {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if data.is_empty() => continue,
                    Ok(data) => {
                        destination.set_buffer(data);
                        StreamResult::Completed
                    }
                    Err(frame) => self.end(Ok(frame.into_trailers().ok())),
                },
                Some(Err(err)) => self.end(Err(err)),
                None => self.end(Ok(None)),
            };
            return Poll::Ready(Ok(result));
        }
    }
}

/// Delivers a host body's trailers once its data has ended.
struct HostTrailersProducer<D: 'static> {
    trailers: oneshot::Receiver<Result<Option<HeaderMap>, ErrorCode>>,
    getter: Getter<D>,
}

impl<D: 'static> FutureProducer<D> for HostTrailersProducer<D> {
    type Item = TrailersResult;

    fn poll_produce(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<'_, D>,
        finish: bool,
    ) -> Poll<wasmtime::Result<Option<TrailersResult>>> {
        let outcome = match Pin::new(&mut self.trailers).poll(cx) {
            Poll::Pending if finish => return Poll::Ready(Ok(None)),
            Poll::Pending => return Poll::Pending,
            Poll::Ready(outcome) => outcome,
        };
        let value = match outcome {
            Ok(Ok(Some(map))) => {
                let view = (self.getter)(store.data_mut());
                let map = crate::fields::hide_forbidden(map);
                let fields = FieldMap::new_immutable(map).charged(&view.ctx.memory)?;
                Ok(Some(view.table.push(fields)?))
            }
            Ok(Ok(None)) => Ok(None),
            Ok(Err(code)) => Err(conv::error_code_to_wit(code)),
            Err(_) => Err(wit::ErrorCode::InternalError(Some(
                "the body ended without trailers".into(),
            ))),
        };
        Poll::Ready(Ok(Some(value)))
    }
}

/// Where a guest body's two halves (data and trailers) meet.
#[derive(Debug)]
struct Sink {
    writer: Option<BodyWriter>,
    stream_done: bool,
    trailers: Option<Result<Option<HeaderMap>, ErrorCode>>,
}

impl Sink {
    /// Ends the body once both halves are in (or at once on an error).
    fn settle(&mut self) {
        let ready = match &self.trailers {
            Some(Err(_)) => true,
            Some(Ok(_)) => self.stream_done,
            None => false,
        };
        if !ready {
            return;
        }
        if let (Some(mut writer), Some(trailers)) = (self.writer.take(), self.trailers.take()) {
            match trailers {
                // A length mismatch aborts the body inside `finish`.
                Ok(trailers) => drop(writer.finish(trailers)),
                Err(code) => writer.abort(code),
            }
        }
    }
}

/// Takes a guest's body writes into the [`BodyWriter`].
struct GuestBodyConsumer {
    sink: Arc<Mutex<Sink>>,
}

impl Drop for GuestBodyConsumer {
    fn drop(&mut self) {
        let mut sink = lock(&self.sink);
        sink.stream_done = true;
        sink.settle();
    }
}

impl<D> StreamConsumer<D> for GuestBodyConsumer {
    type Item = u8;

    fn poll_consume(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        store: StoreContextMut<'_, D>,
        source: Source<'_, u8>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let mut sink = lock(&self.sink);
        let Some(writer) = sink.writer.as_mut() else {
            return Poll::Ready(Ok(StreamResult::Dropped));
        };
        if writer.poll_ready(cx).is_pending() {
            return if finish {
                Poll::Ready(Ok(StreamResult::Cancelled))
            } else {
                Poll::Pending
            };
        }
        let permitted = match writer.check_write() {
            Ok(n) => n,
            Err(_) => return Poll::Ready(Ok(StreamResult::Dropped)),
        };
        let mut source = source.as_direct(store);
        let available = source.remaining();
        let n = available.len().min(permitted);
        if n == 0 {
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let chunk = Bytes::copy_from_slice(&available[..n]);
        match writer.write(chunk) {
            Ok(()) => {
                source.mark_read(n);
                Poll::Ready(Ok(StreamResult::Completed))
            }
            // Closed: the reader went away. Failed: the write overran a
            // declared Content-Length and the body is aborted.
            Err(_) => Poll::Ready(Ok(StreamResult::Dropped)),
        }
    }
}

/// Takes a guest body's trailers (or the error that ends it).
struct TrailersConsumer<D: 'static> {
    sink: Option<Arc<Mutex<Sink>>>,
    getter: Getter<D>,
}

impl<D: 'static> Drop for TrailersConsumer<D> {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            let mut sink = lock(&sink);
            sink.trailers = Some(Err(ErrorCode::internal(
                "the guest dropped the trailers future without writing it",
            )));
            sink.settle();
        }
    }
}

impl<D: Send + 'static> FutureConsumer<D> for TrailersConsumer<D> {
    type Item = TrailersResult;

    fn poll_consume(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        mut store: StoreContextMut<'_, D>,
        mut source: Source<'_, TrailersResult>,
        _: bool,
    ) -> Poll<wasmtime::Result<()>> {
        let mut value = None;
        source.read(&mut store, &mut value)?;
        let Some(value) = value else {
            return Poll::Ready(Ok(()));
        };
        let trailers = match value {
            Ok(Some(fields)) => {
                let mut view = (self.getter)(store.data_mut());
                Ok(Some(view.take_fields_for_sending(fields)?))
            }
            Ok(None) => Ok(None),
            Err(code) => Err(conv::error_code_from_wit(code)),
        };
        if let Some(sink) = self.sink.take() {
            let mut sink = lock(&sink);
            sink.trailers = Some(trailers);
            sink.settle();
        }
        Poll::Ready(Ok(()))
    }
}
