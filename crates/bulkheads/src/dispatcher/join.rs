//! The handle of a task: [`JoinHandle`], and the `run*` calls' variant that cancels on drop.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::task::cell::join::Joinable;
use super::task::id::TaskId;
use crate::error::DispatchError;

/// An owned permission to await a task's result. A `Future` of `Result<T, DispatchError>`.
///
/// Dropping it *detaches* the task (Tokio's convention): the task runs on, and if it then
/// fails, the failure goes to the registry's root failure handler instead.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # let d = bulkheads::Dispatchers::builder().build().unwrap();
/// let cpu = d.cpu();
/// let h = cpu.spawn(async { 6 * 7 });
/// let id = h.id();
/// assert_eq!(h.await.unwrap(), 42);
/// # let _ = id;
/// # }
/// ```
pub struct JoinHandle<T> {
    id: TaskId,
    state: JoinState<T>,
}

enum JoinState<T> {
    Attached(Arc<dyn Joinable<T>>),
    /// Rejected at submission: the error waits to be awaited. Boxed, so that a handle is
    /// three words (fan-outs keep a hundred thousand of them).
    Rejected(Option<Box<DispatchError>>),
    /// The result was returned: nothing left to detach or abort.
    Done,
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("id", &self.id).finish()
    }
}

impl<T: Send + 'static> JoinHandle<T> {
    pub(crate) fn attached(id: TaskId, task: Arc<dyn Joinable<T>>) -> Self {
        JoinHandle {
            id,
            state: JoinState::Attached(task),
        }
    }

    /// Cancels the task. Work not started never starts; async work stops at its next
    /// `.await`; a blocking closure already running finishes on its thread and its result is
    /// dropped (abandoned). Awaiting the handle then gives [`DispatchError::Cancelled`] unless
    /// the task had already finished. Does nothing on a finished or rejected task.
    pub fn abort(&self) {
        if let JoinState::Attached(task) = &self.state {
            task.abort();
        }
    }

    /// True once the task has a result: finished, panicked, cancelled or rejected.
    pub fn is_finished(&self) -> bool {
        match &self.state {
            JoinState::Attached(task) => task.is_finished(),
            JoinState::Rejected(_) | JoinState::Done => true,
        }
    }
}

impl<T> JoinHandle<T> {
    pub(crate) fn rejected(id: TaskId, err: DispatchError) -> Self {
        JoinHandle {
            id,
            state: JoinState::Rejected(Some(Box::new(err))),
        }
    }

    /// The task's id (rejected tasks get one too).
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Rejects the task if it is still queued past its dispatcher's queue deadline.
    pub(crate) fn expire(&self) -> bool {
        match &self.state {
            JoinState::Attached(task) => task.expire(),
            _ => false,
        }
    }

    /// How long until the task passes its dispatcher's queue deadline, if that applies.
    pub(crate) fn time_to_queue_deadline(&self) -> Option<std::time::Duration> {
        match &self.state {
            JoinState::Attached(task) => task.queue_deadline_left(),
            _ => None,
        }
    }

    pub(crate) fn abort_if_pending(&self) {
        if let JoinState::Attached(task) = &self.state {
            task.abort();
        }
    }

    /// The caller is gone: detaches, then cancels, so the task's runner never sees a cancel
    /// request from an attached caller (work that completes in the poll it was cancelled in is
    /// then abandoned, not handed to a caller that left).
    pub(crate) fn abandon(&mut self) {
        if let JoinState::Attached(task) = std::mem::replace(&mut self.state, JoinState::Done) {
            task.detach();
            task.abort();
        }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, DispatchError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let ready = match &mut self.state {
            JoinState::Attached(task) => match task.poll_join(cx) {
                Poll::Ready(r) => r,
                // Awaited from the pool it waits in: run it here if it can be (`help`).
                Poll::Pending if task.may_help() && task.clone().help() => {
                    std::task::ready!(task.poll_join(cx))
                }
                Poll::Pending => return Poll::Pending,
            },
            JoinState::Rejected(err) => match err.take() {
                Some(e) => Err(*e),
                None => panic!("bulkheads::JoinHandle polled after it returned Ready"),
            },
            JoinState::Done => panic!("bulkheads::JoinHandle polled after it returned Ready"),
        };
        // The result is out: dropping the handle now has nothing to detach.
        self.state = JoinState::Done;
        Poll::Ready(ready)
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let JoinState::Attached(task) = &self.state {
            task.detach();
        }
    }
}
