//! [`ResponseFuture`] for HTTP: the generic response future, its outcome made a response and
//! counted.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::layer::Responder;
use crate::error::BulkheadError;

/// The response future of an HTTP [`Bulkhead`](super::Bulkhead). Dropping it cancels the
/// request's work, as [`crate::future::ResponseFuture`] does.
#[must_use = "futures do nothing unless polled; dropping this one cancels the request"]
pub struct ResponseFuture<R> {
    /// The generic response future, made by `call`; polled until it resolves.
    inner: crate::future::ResponseFuture<R, Infallible>,
    /// The layer's responder, cloned by `call`: turns the outcome into a response and counts
    /// it.
    responder: Arc<Responder>,
}

impl<R> ResponseFuture<R> {
    pub(crate) fn new(
        inner: crate::future::ResponseFuture<R, Infallible>,
        responder: Arc<Responder>,
    ) -> Self {
        ResponseFuture { inner, responder }
    }
}

impl<R> fmt::Debug for ResponseFuture<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<R> Future for ResponseFuture<R>
where
    R: IntoResponse + Send + 'static,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let response = match ready!(Pin::new(&mut this.inner).poll(cx)) {
            Ok(response) => response.into_response(),
            Err(BulkheadError::Dispatch(e)) => this.responder.respond(&e),
            Err(BulkheadError::Inner { source, .. }) => match source {},
            Err(e @ BulkheadError::NotReady { .. }) => {
                tracing::error!(target: "bulkheads_tower", "{e}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n").into_response()
            }
        };
        this.responder.count(&response);
        Poll::Ready(Ok(response))
    }
}
