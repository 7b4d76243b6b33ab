//! [`Running`]: a task its caller awaits. Dropping it cancels the task; at the dispatcher's
//! queue deadline it rejects the task if it is still queued, so an admitted caller never waits
//! longer than `queue_deadline` for its work to start.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::join::JoinHandle;
use super::task::id::TaskId;
use crate::error::DispatchError;

/// Work run on a dispatcher by an awaiting caller: what [`Reservation::run`] and
/// [`Reservation::run_here`](crate::Reservation::run_here) return (and what the `run*` calls
/// await). A `Future` of `Result<T, DispatchError>`.
///
/// Dropping it cancels the task (unlike dropping a [`JoinHandle`], which detaches it): work
/// not started never starts, async work stops at its next `.await`, a running blocking
/// closure is abandoned. If the dispatcher has a queue deadline and the work is still queued
/// when it passes, the task is rejected then, with
/// [`RejectReason::QueueDeadline`](crate::RejectReason::QueueDeadline).
///
/// [`Reservation::run`]: crate::Reservation::run
#[must_use = "dropping a Running cancels its task"]
pub struct Running<T> {
    handle: JoinHandle<T>,
    /// The queue deadline, armed on the registry's control runtime; `None` once fired or when
    /// the dispatcher has none.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The runner of work run here (admission only), polled in the caller's task.
    here: Option<Pin<Box<dyn Future<Output = ()> + Send + 'static>>>,
    /// Work run here arms its deadline after the runner's first poll, and only if it is still
    /// waiting then (at an in-flight gate): most of it has started by then.
    arm: Option<tokio::runtime::Handle>,
}

impl<T> fmt::Debug for Running<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("task", &self.handle.id())
            .finish()
    }
}

impl<T: Send + 'static> Running<T> {
    /// Awaits `handle`, arming its queue deadline (if any) on `timer`.
    pub(crate) fn new(handle: JoinHandle<T>, timer: &tokio::runtime::Handle) -> Self {
        let deadline = Self::deadline(&handle, timer);
        Running {
            handle,
            deadline,
            here: None,
            arm: None,
        }
    }

    /// Awaits `handle`, whose work its caller runs inline to its end before awaiting this:
    /// never queued, so no deadline.
    pub(crate) fn inline(handle: JoinHandle<T>) -> Self {
        Running {
            handle,
            deadline: None,
            here: None,
            arm: None,
        }
    }

    /// Awaits `handle`, whose runner `here` is polled by the caller itself; its queue deadline
    /// (if any: the wait at an in-flight gate) is armed on `timer` after the runner's first
    /// poll, if the work is still waiting then.
    pub(crate) fn here(
        handle: JoinHandle<T>,
        here: Pin<Box<dyn Future<Output = ()> + Send + 'static>>,
        timer: &tokio::runtime::Handle,
    ) -> Self {
        Running {
            deadline: None,
            handle,
            here: Some(here),
            arm: Some(timer.clone()),
        }
    }

    fn deadline(
        handle: &JoinHandle<T>,
        timer: &tokio::runtime::Handle,
    ) -> Option<Pin<Box<tokio::time::Sleep>>> {
        handle.time_to_queue_deadline().map(|left| {
            let _ctx = timer.enter();
            Box::pin(tokio::time::sleep(left))
        })
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.handle.id()
    }
}

impl<T: Send + 'static> Future for Running<T> {
    type Output = Result<T, DispatchError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(here) = self.here.as_mut() {
            if here.as_mut().poll(cx).is_ready() {
                self.here = None;
            }
        }
        if let Some(timer) = self.arm.take() {
            self.deadline = Self::deadline(&self.handle, &timer);
        }
        if let Some(deadline) = self.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                self.deadline = None;
                // Still queued: rejected now (started or decided already: nothing to do).
                self.handle.expire();
            }
        }
        Pin::new(&mut self.handle).poll(cx)
    }
}

impl<T> Drop for Running<T> {
    fn drop(&mut self) {
        self.handle.abandon();
    }
}
