//! The one runner: [`TaskFuture`] drives every task of every kind, closures and futures alike.
//!
//! A closure is wrapped as a future that runs it in its first poll ([`ClosureFuture`]); a pool
//! thread polls a closure's runner once, and drives a future's runner with `block_on`; a Tokio
//! runtime or a view polls it as one of its tasks. Whatever drives it, the runner does the same
//! things in the same order: pass the in-flight gate (capped runtimes and views), start (or find
//! the task cancelled and drop the work), check for a cancel request before each poll, poll the
//! work inside `catch_unwind` with the task's span entered, count activity, and at the end drop
//! the work, free the slot and decide the task. Dropped by its executor before the end, it
//! decides the task as cancelled.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

// See `stats.rs` on the clock.
use quanta::Instant;

use super::cell::{Completion, Pending, TaskCell, TaskSpan, WorkKind};
use crate::dispatcher::admission::{GatePass, Slot};

pin_project_lite::pin_project! {
    /// Drives one task's work; see the module docs.
    #[project = Projection]
    pub(crate) struct TaskFuture<F>
    where
        F: Future,
        F: Send,
        F: 'static,
        F::Output: Send,
        F::Output: 'static,
    {
        cell: Arc<TaskCell<F>>,
        #[pin]
        fut: Option<F>,
        // The admission slot: released when the work has stopped (or was dropped unstarted).
        slot: Option<Slot>,
        // The in-flight gate of a capped runtime or view: passed before the start, held until
        // the work ends.
        gate: Option<GatePass>,
        // A child of the submitter's span, entered around every poll; dropped (contained)
        // with the work.
        span: Option<TaskSpan>,
        // When the work started; `None` until then.
        started: Option<Instant>,
        // True once the work was polled (a later poll reads the clock itself).
        polled: bool,
        done: bool,
    }

    impl<F> PinnedDrop for TaskFuture<F>
    where
        F: Future,
        F: Send,
        F: 'static,
        F::Output: Send,
        F::Output: 'static,
    {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if *this.done {
                return;
            }
            // The executor dropped us (its runtime shut down, or a view was torn down).
            if this.started.is_some() {
                stop(this.cell, this.fut.as_mut(), this.gate, this.span);
                this.cell.finish(Completion::Cancelled, this.slot.take());
            } else {
                // Not started: decide it unless a canceller did.
                let _ = this.cell.cancel_queued();
                stop(this.cell, this.fut.as_mut(), this.gate, this.span);
                drop(this.slot.take());
            }
        }
    }
}

/// Drops the work, the gate pass and the span: each may run user code (the work's `Drop`, a
/// tracing subscriber), so each is contained.
fn stop<F>(
    cell: &TaskCell<F>,
    mut fut: Pin<&mut Option<F>>,
    gate: &mut Option<GatePass>,
    span: &mut Option<TaskSpan>,
) where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| fut.set(None))) {
        cell.header.accounts.report_panic(
            &cell.header.info,
            payload,
            "while dropping the task's work or result",
        );
    }
    drop(gate.take());
    let span = span.take();
    cell.drop_user(span);
    cell.header.probe.stopped();
}

impl<F> TaskFuture<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    pub(crate) fn new(
        cell: Arc<TaskCell<F>>,
        work: F,
        slot: Slot,
        gate: Option<GatePass>,
        span: TaskSpan,
    ) -> Self {
        TaskFuture {
            cell,
            fut: Some(work),
            slot: Some(slot),
            gate,
            span: Some(span),
            started: None,
            polled: false,
            done: false,
        }
    }

    /// The runner of work that waited in a pool's queue.
    pub(crate) fn from_pending(cell: Arc<TaskCell<F>>, pending: Pending<F>) -> Self {
        Self::new(cell, pending.work, pending.slot, None, pending.span)
    }
}

impl<F> Future for TaskFuture<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(());
        }
        let cell = &**this.cell;
        let header = &cell.header;
        let asynchronous = header.work == WorkKind::Async;
        let started_at = match *this.started {
            Some(at) => at,
            None => {
                if let Some(gate) = this.gate.as_mut() {
                    // Register first: a cancel while we wait at the gate wakes us.
                    cell.run_waker.register(cx.waker());
                    let passed = if header.state.is_decided() {
                        false
                    } else {
                        match gate.poll_pass(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(passed) => passed,
                        }
                    };
                    if !passed {
                        // Cancelled while waiting (the canceller decided it; this call is
                        // then a no-op).
                        let _ = cell.cancel_queued();
                        return finish_unstarted(this);
                    }
                }
                // Too late to start: rejected instead (the queue deadline bounds how long admitted
                // work may wait; `expire` decides it, or finds a canceller did).
                if header.accounts.queue_deadline.is_some() && cell.expire() {
                    return finish_unstarted(this);
                }
                if !header.state.try_start() {
                    // Cancelled (or expired) while queued: whoever did it decided it.
                    return finish_unstarted(this);
                }
                header.probe.started();
                let at = header.accounts.started(&header.info, header.submitted_at);
                *this.started = Some(at);
                at
            }
        };
        // Decided already means abandoned by shutdown: stop at this poll too.
        if header.state.cancel_requested() || header.state.is_decided() {
            *this.done = true;
            stop(cell, this.fut.as_mut(), this.gate, this.span);
            cell.finish(Completion::Cancelled, this.slot.take());
            return Poll::Ready(());
        }
        let Some(fut) = this.fut.as_mut().as_pin_mut() else {
            // Unreachable: `fut` is only emptied together with `done`. Fail loudly rather
            // than leave the task undecided and its caller waiting.
            *this.done = true;
            cell.finish(
                Completion::Panicked(Box::new(
                    "bulkheads internal error: task polled without work",
                )),
                this.slot.take(),
            );
            return Poll::Ready(());
        };
        let accounts = &header.accounts;
        // The first poll began when the work started: one clock read fewer. Untracked
        // dispatchers read no clock for dumps.
        let first = !std::mem::replace(this.polled, true);
        let poll_began = match (accounts.track, first) {
            (false, _) => None,
            (true, true) => Some(started_at),
            (true, false) => Some(Instant::now()),
        };
        header.probe.poll_begins(header.submitted_at, poll_began);
        accounts.active_enter(&header.info);
        let span = &*this.span;
        let polled = catch_unwind(AssertUnwindSafe(|| match span {
            Some(span) => span.in_scope(|| fut.poll(cx)),
            None => fut.poll(cx),
        }));
        accounts.active_exit(&header.info);
        // The end of a poll is read for dumps, and for the run's duration once it completes.
        let poll_ended = (accounts.track || !matches!(polled, Ok(Poll::Pending)))
            .then(Instant::now)
            .unwrap_or(started_at);
        header.probe.poll_ends(poll_began, poll_ended);
        let completion = match polled {
            Ok(Poll::Pending) => {
                if asynchronous {
                    // Suspended: a cancel request must wake us. Register, then look again: a
                    // request made before the registration is seen here (the canceller sets
                    // its flag, Release, before it wakes; this load is Acquire). Work done in
                    // one poll never registers. (Blocking work is abandoned, not woken.)
                    cell.run_waker.register(cx.waker());
                    if header.state.cancel_requested() || header.state.is_decided() {
                        cx.waker().wake_by_ref();
                    }
                }
                return Poll::Pending;
            }
            // Asked to stop during this poll by a caller that has gone (a dropped `run*`
            // future, a detached handle): it had no `.await` left to stop at, and nobody will
            // read the value. A caller still holding the handle (an abort, a scope cancelling
            // its children) gets the value, as with Tokio's `JoinHandle`.
            Ok(Poll::Ready(v))
                if asynchronous && header.state.cancel_requested() && cell.is_detached() =>
            {
                Completion::Abandoned(v)
            }
            Ok(Poll::Ready(v)) => Completion::Ok(v),
            Err(payload) => Completion::Panicked(payload),
        };
        *this.done = true;
        stop(cell, this.fut.as_mut(), this.gate, this.span);
        accounts.ran(&header.info, started_at, poll_ended);
        cell.finish(completion, this.slot.take());
        Poll::Ready(())
    }
}

/// The task was decided before it started: drop the work and free the slot.
fn finish_unstarted<F>(this: Projection<'_, F>) -> Poll<()>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    *this.done = true;
    stop(this.cell, this.fut, this.gate, this.span);
    drop(this.slot.take());
    Poll::Ready(())
}

/// A closure as a future that runs it in its first poll: how blocking work runs through the
/// one runner on every kind.
pub(crate) struct ClosureFuture<F>(Option<F>);

impl<F> ClosureFuture<F> {
    pub(crate) fn new(f: F) -> Self {
        ClosureFuture(Some(f))
    }
}

// The closure is never pinned in place: it is moved out and called.
impl<F> Unpin for ClosureFuture<F> {}

impl<F: FnOnce() -> T, T> Future for ClosureFuture<F> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
        match self.0.take() {
            Some(f) => Poll::Ready(f()),
            None => Poll::Pending,
        }
    }
}
