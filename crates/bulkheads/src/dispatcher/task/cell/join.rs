//! The join side of a task (what a `JoinHandle` holds, type-erased over the work) and what the
//! live set can do to it.

use std::future::Future;
use std::task::{Context, Poll};

use std::time::Duration;

use super::{Failed, Output, TaskCell};
use crate::dispatcher::live::LiveTask;
use crate::error::DispatchError;
use crate::sync::lock;

/// The join side of a task, type-erased over the work it carries.
pub(crate) trait Joinable<T>: Send + Sync {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T, DispatchError>>;
    fn abort(&self);
    /// Rejects the task if it is still queued past its queue deadline.
    fn expire(&self) -> bool;
    /// How long until the task passes its dispatcher's queue deadline (zero if it has), or
    /// `None` when the dispatcher has none or the task is no longer queued.
    fn queue_deadline_left(&self) -> Option<Duration>;
    fn is_finished(&self) -> bool;
    fn detach(&self);
}

impl<F> Joinable<F::Output> for TaskCell<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, DispatchError>> {
        let mut inner = lock(&self.inner);
        match std::mem::replace(&mut inner.output, Output::Taken) {
            Output::Ready(r) => {
                drop(inner);
                Poll::Ready(r.map_err(|failed| self.error(failed)))
            }
            Output::Pending => {
                inner.output = Output::Pending;
                match &inner.join_waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => inner.join_waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Output::Taken => {
                drop(inner);
                panic!("bulkheads::JoinHandle polled after it returned Ready")
            }
        }
    }

    fn abort(&self) {
        self.cancel();
    }

    fn expire(&self) -> bool {
        TaskCell::expire(self)
    }

    fn queue_deadline_left(&self) -> Option<Duration> {
        let deadline = self.header.accounts.queue_deadline?;
        if !self.header.state.is_queued() {
            return None;
        }
        Some(deadline.saturating_sub(self.header.submitted_at.elapsed()))
    }

    fn is_finished(&self) -> bool {
        self.header.state.is_decided()
    }

    fn detach(&self) {
        let pending = {
            let mut inner = lock(&self.inner);
            inner.detached = true;
            inner.join_waker = None;
            std::mem::replace(&mut inner.output, Output::Taken)
        };
        match pending {
            Output::Ready(Err(Failed::Panicked(payload))) => self.route_failure(payload),
            other => self.drop_user(other),
        }
    }
}

impl<F> LiveTask for TaskCell<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn cancel(&self) {
        TaskCell::cancel(self)
    }
    fn force_abandon(&self) {
        TaskCell::force_abandon(self)
    }
    fn is_decided(&self) -> bool {
        self.header.state.is_decided()
    }
}
