//! [`Bulkhead`] for HTTP: the generic service, with what the dispatcher decides turned into a
//! response.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::http::Request;
use axum::response::{IntoResponse, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::Responder;

/// An HTTP service behind a dispatcher; made by [`BulkheadLayer`](super::BulkheadLayer).
///
/// `poll_ready` and `call` are those of [`crate::Bulkhead`]: admission in `poll_ready` (at
/// once, or within `max_wait`), the handler run with the slot in `call`. Its error type is
/// `Infallible`: a rejection, a panic or a cancellation is a response. A `call` without a
/// successful `poll_ready` before it runs nothing and answers `500 Internal Server Error`
/// (logged as a `tracing` error).
pub struct Bulkhead<S> {
    inner: crate::Bulkhead<S>,
    /// Shared with every clone; set when the layer made this service.
    responder: Arc<Responder>,
}

impl<S> Bulkhead<S> {
    pub(crate) fn new(inner: crate::Bulkhead<S>, responder: Arc<Responder>) -> Self {
        Bulkhead { inner, responder }
    }

    /// The service admitting requests, without the HTTP mapping.
    pub fn get_ref(&self) -> &crate::Bulkhead<S> {
        &self.inner
    }
}

impl<S, B> Service<Request<B>> for Bulkhead<S>
where
    S: Service<Request<B>, Error = Infallible>,
    S::Response: IntoResponse + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The generic service fails in `poll_ready` only with the inner service's error, which
        // is `Infallible` here; any other outcome leaves `call` to answer.
        let _ = ready!(self.inner.poll_ready(cx));
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ResponseFuture::new(self.inner.call(request), self.responder.clone())
    }
}

impl<S: Clone> Clone for Bulkhead<S> {
    /// The generic service's clone (no slot of its own) and the shared responder.
    fn clone(&self) -> Self {
        Bulkhead {
            inner: self.inner.clone(),
            responder: self.responder.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Bulkhead<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("inner", &self.inner)
            .finish()
    }
}
