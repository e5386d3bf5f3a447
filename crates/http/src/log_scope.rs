//! Whose request a log line belongs to, without a span per request.
//!
//! Every line berth logs while serving a request (a guest's output, a
//! refused outgoing request, a failure) sits in a `request` span carrying
//! the request id clients see and the app's name. Creating that span for
//! every request and entering it on every poll of the request's futures
//! cost a reused instance some 18% of its throughput (the subscriber's
//! registry and filters work on each enter and exit), although most
//! requests log nothing at all while they run.
//!
//! A [`RequestScope`] carries the id and app instead. It is current while
//! the request's futures are polled ([`RequestScope::run`], [`in_current`]
//! for spawned tasks), which costs two thread-local moves per poll; the
//! `request` span is made from it only when a line is logged ([`enter`]),
//! once per request, with the name, fields and parent the eager span had,
//! so subscribers see the same thing as before.
//!
//! ```
//! use berth_http::log_scope::{self, RequestScope};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let scope = RequestScope::new("req-1", "shop");
//! scope
//!     .run(async {
//!         let _in_request = log_scope::enter();
//!         tracing::info!("logged in span `request` with request_id=req-1 app=shop");
//!     })
//!     .await;
//! # });
//! ```

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tracing::Instrument;

/// The log identity of one request: its id and app, and the `request`
/// span made from them when first needed. Cheap to clone.
#[derive(Clone, Default)]
pub struct RequestScope(Option<Arc<Inner>>);

struct Inner {
    request_id: Box<str>,
    app: Box<str>,
    /// The span current when the scope was made (the trace span, when
    /// traces are exported): the `request` span's parent.
    parent: tracing::Span,
    span: OnceLock<tracing::Span>,
}

impl std::fmt::Debug for RequestScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(inner) => f
                .debug_struct("RequestScope")
                .field("request_id", &inner.request_id)
                .field("app", &inner.app)
                .finish(),
            None => f.write_str("RequestScope(none)"),
        }
    }
}

thread_local! {
    /// The scope of the request whose future this thread is polling.
    static CURRENT: Cell<Option<Arc<Inner>>> = const { Cell::new(None) };
}

impl RequestScope {
    /// The scope of request `request_id` of `app`, its span to be made
    /// below the span current now.
    pub fn new(request_id: &str, app: &str) -> Self {
        Self(Some(Arc::new(Inner {
            request_id: request_id.into(),
            app: app.into(),
            parent: tracing::Span::current(),
            span: OnceLock::new(),
        })))
    }

    /// The scope current on this thread (none outside a request).
    pub fn current() -> Self {
        CURRENT.with(|current| {
            let inner = current.take();
            let copy = inner.clone();
            current.set(inner);
            Self(copy)
        })
    }

    /// Whether this scope names a request.
    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }

    /// The request's `request` span, made on first use; without a scope,
    /// the span current now.
    pub fn span(&self) -> tracing::Span {
        match &self.0 {
            Some(inner) => inner
                .span
                .get_or_init(|| {
                    tracing::info_span!(
                        parent: &inner.parent,
                        "request",
                        request_id = &*inner.request_id,
                        app = &*inner.app
                    )
                })
                .clone(),
            None => tracing::Span::current(),
        }
    }

    /// Calls `f` with this scope current.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let outer = CURRENT.with(|current| current.replace(self.0.clone()));
        let mut mine = None;
        let _restore = Restore {
            slot: &mut mine,
            outer,
        };
        f()
    }

    /// Polls `future` with this scope current.
    pub fn run<F: Future>(self, future: F) -> Scoped<F> {
        Scoped {
            scope: self.0,
            future,
        }
    }
}

/// Enters the current request's `request` span (made now if it was not
/// yet): log lines written while the guard lives carry the request's id.
/// Outside a request, enters the current span (a no-op).
pub fn enter() -> tracing::span::EnteredSpan {
    RequestScope::current().span().entered()
}

/// `future` with the current request scope and the current span, for
/// `tokio::spawn`: what `Instrument::in_current_span` was for the
/// `request` span.
pub fn in_current<F: Future>(future: F) -> Scoped<tracing::instrument::Instrumented<F>> {
    RequestScope::current().run(future.in_current_span())
}

pin_project_lite::pin_project! {
    /// A future polled with a [`RequestScope`] current (see
    /// [`RequestScope::run`]).
    pub struct Scoped<F> {
        scope: Option<Arc<Inner>>,
        #[pin]
        future: F,
    }
}

/// Puts the outer scope back when a poll ends (also by panic) and hands
/// the inner one back to its future.
struct Restore<'a> {
    slot: &'a mut Option<Arc<Inner>>,
    outer: Option<Arc<Inner>>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let outer = self.outer.take();
        *self.slot = CURRENT.with(|current| current.replace(outer));
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let outer = CURRENT.with(|current| current.replace(this.scope.take()));
        let _restore = Restore {
            slot: this.scope,
            outer,
        };
        this.future.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current_id() -> Option<String> {
        RequestScope::current()
            .0
            .map(|inner| inner.request_id.to_string())
    }

    #[tokio::test]
    async fn a_scope_is_current_only_while_its_future_runs() {
        assert_eq!(current_id(), None);
        let outer = RequestScope::new("outer", "app").run(async {
            assert_eq!(current_id().as_deref(), Some("outer"));
            RequestScope::new("inner", "app")
                .run(async {
                    assert_eq!(current_id().as_deref(), Some("inner"));
                    tokio::task::yield_now().await;
                    assert_eq!(current_id().as_deref(), Some("inner"));
                })
                .await;
            assert_eq!(current_id().as_deref(), Some("outer"));
        });
        outer.await;
        assert_eq!(current_id(), None);
    }

    #[tokio::test]
    async fn spawned_tasks_keep_the_scope_they_were_made_in() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        RequestScope::new("spawner", "app")
            .run(async {
                tokio::spawn(in_current(async move {
                    tokio::task::yield_now().await;
                    let _ = tx.send(current_id());
                }));
            })
            .await;
        assert_eq!(current_id(), None);
        assert_eq!(rx.await.unwrap().as_deref(), Some("spawner"));
    }

    #[test]
    fn a_panicking_poll_leaves_no_scope_behind() {
        let caught = std::panic::catch_unwind(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime.block_on(RequestScope::new("doomed", "app").run(async {
                panic!("guest host call panicked");
            }))
        });
        assert!(caught.is_err());
        assert_eq!(current_id(), None);
    }

    #[test]
    fn in_scope_sets_the_scope_for_one_call() {
        let scope = RequestScope::new("call", "app");
        assert_eq!(scope.in_scope(current_id).as_deref(), Some("call"));
        assert_eq!(current_id(), None);
    }

    #[test]
    fn the_span_is_made_once_and_only_when_asked_for() {
        let scope = RequestScope::new("once", "app");
        let inner = scope.0.clone().unwrap();
        assert!(inner.span.get().is_none());
        let _ = scope.span();
        let _ = scope.span();
        assert!(inner.span.get().is_some());
    }
}
