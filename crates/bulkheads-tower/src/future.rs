//! [`ResponseFuture`]: the response future of a [`Bulkhead`](crate::Bulkhead).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bulkheads::Running;

use crate::error::BulkheadError;

/// The response future of a [`Bulkhead`](crate::Bulkhead): the inner service's future running
/// on (or admitted by) the dispatcher, or the rejection decided in `poll_ready`.
///
/// Dropping it cancels the request's work: work not started never starts, and its slot is
/// free for the next request at once on a blocking pool (on a runtime or a view, when that
/// runtime next polls the task); started work stops at its next `.await`. A blocking call
/// already running inside it cannot be interrupted: it runs to its end on its thread first.
#[must_use = "futures do nothing unless polled; dropping this one cancels the request"]
pub struct ResponseFuture<R, E> {
    state: State<R, E>,
}

enum State<R, E> {
    /// Admitted: the inner future, run by the dispatcher. Set by `call` with a reservation;
    /// polled until it resolves.
    Running {
        running: Running<Result<R, E>>,
        /// The dispatcher's name, for an inner error.
        dispatcher: Arc<str>,
    },
    /// Decided without running anything (rejected, or called without `poll_ready`). Set by
    /// `call`; taken by the first poll.
    Failed(Option<BulkheadError<E>>),
}

// No field is ever pinned in place: `Running` is `Unpin`, and the error is only moved out.
impl<R, E> Unpin for ResponseFuture<R, E> {}

impl<R, E> fmt::Debug for ResponseFuture<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Running { .. } => "running",
            State::Failed(Some(_)) => "failed",
            State::Failed(None) => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<R, E> ResponseFuture<R, E> {
    pub(crate) fn running(running: Running<Result<R, E>>, dispatcher: Arc<str>) -> Self {
        ResponseFuture {
            state: State::Running {
                running,
                dispatcher,
            },
        }
    }

    pub(crate) fn failed(error: BulkheadError<E>) -> Self {
        ResponseFuture {
            state: State::Failed(Some(error)),
        }
    }
}

impl<R, E> Future for ResponseFuture<R, E>
where
    R: Send + 'static,
    E: Send + 'static,
{
    type Output = Result<R, BulkheadError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            State::Running {
                running,
                dispatcher,
            } => Pin::new(running).poll(cx).map(|outcome| match outcome {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(source)) => Err(BulkheadError::Inner {
                    dispatcher: dispatcher.clone(),
                    source,
                }),
                Err(e) => Err(BulkheadError::Dispatch(e)),
            }),
            State::Failed(error) => match error.take() {
                Some(e) => Poll::Ready(Err(e)),
                None => panic!("ResponseFuture polled after it completed"),
            },
        }
    }
}
