//! The join side of a task (what a `JoinHandle` holds, type-erased over the work) and what the
//! live set can do to it.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::time::Duration;

// See `accounts` on the clock.
use quanta::Instant;

use super::{Failed, Output, TaskCell, WorkKind};
use crate::diag::task::{TaskDump, TaskState};
use crate::dispatcher::executor::{Holding, all_busy_here};
use crate::dispatcher::live::LiveTask;
use crate::dispatcher::task::runner::TaskFuture;
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
    /// Awaited on a thread of the pool the task waits in (work pinned to that pool awaiting
    /// a job it queued there) while every thread of that pool is busy, a queued closure runs
    /// here and now: it could otherwise wait behind its own awaiter for good. True when it ran.
    fn help(self: Arc<Self>) -> bool;
    /// Whether [`help`](Self::help) could run it here: cheap, so the pending path of every
    /// join pays no reference count for it.
    fn may_help(&self) -> bool;
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

    fn may_help(&self) -> bool {
        let h = &self.header;
        // Only while every thread of its pool is busy (this one with the awaiting job): a
        // free thread would start it soon, as if nothing special happened.
        // (`all_busy_here` is false off that pool's threads.)
        h.work == WorkKind::Blocking
            && h.state.is_queued()
            && all_busy_here(Holding::id(&*h.accounts))
    }

    fn help(self: Arc<Self>) -> bool {
        if !self.may_help() {
            return false;
        }
        // Only a pool keeps a queued task's work in its cell; whoever takes it runs it.
        let Some(pending) = self.take_pending() else {
            return false;
        };
        let mut runner = std::pin::pin!(TaskFuture::from_pending(self, pending));
        // A closure's runner is done after its one poll.
        let _ = runner
            .as_mut()
            .poll(&mut Context::from_waker(std::task::Waker::noop()));
        true
    }

    fn detach(&self) {
        self.header.probe.detached();
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

    fn is_live(&self) -> bool {
        !self.header.state.is_decided() || self.header.probe.read_running()
    }

    fn dump(&self, now: Instant) -> TaskDump {
        let h = &self.header;
        let probed = h.probe.read(h.submitted_at, now);
        let blocking = h.work == WorkKind::Blocking;
        let state = if h.state.is_queued() {
            TaskState::Queued
        } else if h.state.is_decided() {
            TaskState::Abandoned
        } else if blocking {
            TaskState::RunningBlocking
        } else if probed.in_poll {
            TaskState::Running
        } else {
            TaskState::Idle
        };
        let mut dump = TaskDump {
            id: h.info.id,
            name: h.info.name.clone(),
            dispatcher: h.accounts.name.clone(),
            parent: h.info.parent.clone(),
            detached: probed.detached,
            location: h.info.location,
            state,
            blocking,
            // Abandoned: cancelled while it ran blocking code, which runs on.
            cancel_requested: h.state.cancel_requested() || state == TaskState::Abandoned,
            age: now.saturating_duration_since(h.submitted_at),
            since_last_poll: probed.since_last_poll,
            polls: probed.polls,
            busy: probed.busy,
            // Read from the registry's trees by the dump (`diag/dump.rs`).
            await_tree: None,
        };
        if probed.in_poll {
            // The poll under way counts as busy time already: a blocking closure's one poll is
            // its whole run, and async work that does not yield holds its thread all along.
            dump.busy += dump.since_last_poll.unwrap_or_default();
        }
        dump
    }
}
