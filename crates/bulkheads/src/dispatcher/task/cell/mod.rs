//! The cell one task's caller and runner share: its header, its result, and the work while it
//! waits in a pool's queue.
//!
//! Invariant: every admitted task is *decided* exactly once (see `state.rs`); the winner counts
//! the outcome and publishes the result. Independently, the task's [`Slot`] is released exactly
//! once, because it is an owned value: it sits beside the work (here while the work waits in a
//! pool's queue, in the runner once it runs) and is dropped with it. A blocking job cancelled
//! while it runs is decided at once (its caller sees `Cancelled` immediately) but keeps its slot
//! until the closure returns: that is what "abandoned" means.
//!
//! Panics reach exactly one place: the join handle while it is attached, the root failure
//! handler otherwise (decided under the cell's lock, so a handle dropped concurrently with the
//! panic cannot make it vanish or appear twice). Every user value the cell drops (work,
//! results) is dropped inside `catch_unwind`.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::Duration;

use atomic_waker::AtomicWaker;
// See `stats.rs` on the clock.
use quanta::Instant;

use super::id::TaskInfo;
use super::probe::Probe;
use super::state::{DONE_CANCELLED, DONE_OK, DONE_PANICKED, Requested, State};
use crate::dispatcher::accounts::Accounts;
use crate::dispatcher::admission::{Admission, Slot};
use crate::dispatcher::stats::Outcome;
use crate::error::RejectReason;
use crate::error::{DispatchError, PanicPayload, panic_message};
use crate::supervisor::failure::{Failure, FailureKind};
use crate::sync::lock;

mod held;
pub(crate) mod join;

use self::held::Held;
pub(crate) use self::held::{Carrier, Pending, TaskSpan};

/// Whether cancelling a running task can stop it (async work, at its next `.await`) or not
/// (a blocking closure, which is abandoned instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkKind {
    Blocking,
    Async,
}

/// What every task carries, whatever its kind.
pub(crate) struct Header {
    pub info: TaskInfo,
    pub submitted_at: Instant,
    pub work: WorkKind,
    pub accounts: Arc<Accounts>,
    pub state: State,
    /// What the runner records for live dumps.
    pub probe: Probe,
}

/// Why a task produced no value, as the cell keeps it: small, since a fan-out holds many
/// cells at once. Made into a [`DispatchError`] (which names the dispatcher and the task) when
/// the caller reads it.
pub(crate) enum Failed {
    Panicked(Box<dyn Any + Send + 'static>),
    Cancelled,
    /// Waited in the queue past the queue deadline (the deadline is the dispatcher's).
    Expired {
        waited: Duration,
    },
}

/// How a task ended, as seen by its runner.
pub(crate) enum Completion<T> {
    Ok(T),
    Panicked(Box<dyn Any + Send + 'static>),
    /// Async work dropped at an `.await` after a cancel request, or by its executor.
    Cancelled,
    /// Async work that completed in the poll during which it was asked to stop by a caller
    /// that has gone: like blocking work cancelled while it ran, it is cancelled and
    /// abandoned, and its value is dropped.
    Abandoned(T),
}

enum Output<T> {
    Pending,
    Ready(Result<T, Failed>),
    Taken,
}

struct Inner<F: Future> {
    /// The work while the task waits in a pool's queue, or the handle of the executor's task
    /// that runs it.
    held: Held<F>,
    output: Output<F::Output>,
    /// The awaiting caller's waker; set by `poll_join`, taken by `publish`.
    join_waker: Option<Waker>,
    /// Set when the join handle is dropped: from then on a failure goes to the root handler.
    detached: bool,
}

/// The shared state of one task.
pub(crate) struct TaskCell<F: Future> {
    pub(crate) header: Header,
    inner: Mutex<Inner<F>>,
    /// The runner's waker, so that a cancel request wakes a suspended async task.
    pub(crate) run_waker: AtomicWaker,
}

impl<F> TaskCell<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    pub(crate) fn new(header: Header, pending: Option<Pending<F>>) -> Self {
        TaskCell {
            header,
            inner: Mutex::new(Inner {
                held: pending.map_or(Held::Nothing, Held::Work),
                output: Output::Pending,
                join_waker: None,
                detached: false,
            }),
            run_waker: AtomicWaker::new(),
        }
    }

    /// Its join handle is gone: nobody will read its result.
    pub(crate) fn is_detached(&self) -> bool {
        lock(&self.inner).detached
    }

    /// Keeps the executor's handle to the task that runs this cell (see [`Carrier`]).
    pub(crate) fn carry(&self, carrier: Carrier) {
        // Set once per cell, by its executor's submit, on a cell whose work is in the runner:
        // nothing was held. Whatever was is dropped after the lock is let go.
        // (A task that finished before its executor's submit returned may have left its spent
        // admission there: replaced, it is dropped here.)
        let before = std::mem::replace(&mut lock(&self.inner).held, Held::Carrier(carrier));
        debug_assert!(
            matches!(before, Held::Nothing | Held::Spent(_)),
            "a cell carried twice"
        );
        drop(before);
    }

    pub(crate) fn take_pending(&self) -> Option<Pending<F>> {
        lock(&self.inner).held.take_work()
    }

    /// A pool's thread reached the cell of a task cancelled in its queue: what the cell kept
    /// for it (a place in the budget of such cells, or its slot) is given back.
    pub(crate) fn leave_queue(&self) {
        let tombstone = lock(&self.inner).held.take_tombstone();
        drop(tombstone);
    }

    /// The runner's end: the work has stopped (returned, panicked, or was dropped). Counts
    /// first, then frees the slot, then publishes: a caller woken by the result that submits
    /// again finds the room its task left.
    pub(crate) fn finish(&self, completion: Completion<F::Output>, slot: Option<Slot>) {
        let accounts = &self.header.accounts;
        let (terminal, outcome) = match &completion {
            Completion::Ok(_) => (DONE_OK, Outcome::Ok),
            Completion::Panicked(_) => (DONE_PANICKED, Outcome::Panicked),
            Completion::Cancelled => (DONE_CANCELLED, Outcome::Cancelled { abandoned: false }),
            Completion::Abandoned(_) => (DONE_CANCELLED, Outcome::Cancelled { abandoned: true }),
        };
        if let Completion::Panicked(_) = &completion {
            accounts.count_failure();
        }
        let won = self.header.state.decide_started(terminal);
        let result = match completion {
            Completion::Ok(v) => Ok(v),
            Completion::Panicked(payload) => Err(Failed::Panicked(payload)),
            Completion::Cancelled => Err(Failed::Cancelled),
            Completion::Abandoned(v) => {
                self.drop_user(v);
                Err(Failed::Cancelled)
            }
        };
        if won {
            // Read without the lock: a handle dropped after this read is still handled by
            // `publish`, which decides under the lock who gets the result.
            if self.header.probe.is_detached() {
                // Nobody will read it: its panic reaches the root handler (or its value is
                // dropped) before the decision is counted, so a shutdown that has seen every
                // decision has seen every failure.
                self.publish(result, None);
                accounts.decided(&self.header.info, outcome, false);
                // After the decision: in flight never exceeds the capacity.
                drop(slot);
            } else {
                // Counted before the caller can see the result: its `Stats` agree with it.
                accounts.decided(&self.header.info, outcome, false);
                // The room is given back before the caller can see the result; the reference
                // to the admission stays with the cell (see `Held::Spent`).
                let spent = slot.and_then(Slot::spend);
                self.publish(result, spent);
            }
        } else {
            drop(slot);
            // Abandoned: its caller already has `Cancelled`. A panic still reaches the root
            // handler; a value is dropped here, contained.
            match result {
                Err(Failed::Panicked(payload)) => self.route_failure(payload),
                other => self.drop_user(other),
            }
        }
    }

    /// Cancels the task: before start it never starts; async work stops at its next `.await`;
    /// a running blocking closure is abandoned (decided now, left to finish on its thread).
    pub(crate) fn cancel(&self) {
        let state = &self.header.state;
        loop {
            if state.is_queued() {
                if self.cancel_queued() {
                    return;
                }
            } else if state.is_running() {
                if self.header.work == WorkKind::Blocking {
                    if self.abandon() {
                        return;
                    }
                } else {
                    if state.request_cancel() == Requested::Now {
                        self.run_waker.wake();
                    }
                    return;
                }
            } else {
                return; // decided already
            }
        }
    }

    /// Decides a started task as cancelled and abandoned, whatever its kind (shutdown gives up
    /// on async work that did not stop within the grace period this way).
    pub(crate) fn force_abandon(&self) {
        self.abandon();
    }

    fn abandon(&self) -> bool {
        if !self.header.state.abandon() {
            return false;
        }
        self.header.accounts.decided(
            &self.header.info,
            Outcome::Cancelled { abandoned: true },
            false,
        );
        self.publish(Err(Failed::Cancelled), None);
        true
    }

    /// `QUEUED -> CANCELLED`: the work never starts. Work waiting in a pool's queue is dropped
    /// here, and its slot given back at once within the pool's budget (see
    /// `Slot::into_tombstone`; the pool skips the cell later). Work an executor holds (a
    /// runtime's or a view's queue) keeps its slot until its runner drops it, so cancelled
    /// tasks still sitting in such a queue count against capacity and an abort storm cannot
    /// grow that queue past it; the runner is woken in case it waits at a gate.
    pub(crate) fn cancel_queued(&self) -> bool {
        if !self.header.state.cancel_queued() {
            return false;
        }
        self.decided_in_queue(Outcome::Cancelled { abandoned: false }, Failed::Cancelled);
        true
    }

    /// `QUEUED -> EXPIRED` once the task has waited past its dispatcher's queue deadline:
    /// rejected, never started. False when it had started or was decided, or is not late.
    pub(crate) fn expire(&self) -> bool {
        let Some(deadline) = self.header.accounts.queue_deadline else {
            return false;
        };
        let waited = self.header.submitted_at.elapsed();
        if waited < deadline || !self.header.state.expire() {
            return false;
        }
        self.decided_in_queue(Outcome::Expired, Failed::Expired { waited });
        true
    }

    /// The end of a task decided before it started: counted, its work dropped (a pool's slot
    /// becomes a tombstone), its runner woken, its result published.
    fn decided_in_queue(&self, outcome: Outcome, failed: Failed) {
        self.header
            .accounts
            .decided(&self.header.info, outcome, true);
        // The slot becomes the tombstone under the lock that gives up the work, so a pool
        // thread that finds no work finds the tombstone (see `leave_queue`).
        let pending = {
            let mut inner = lock(&self.inner);
            inner.held.take_work().map(|Pending { work, slot, span }| {
                inner.held = Held::Tombstone(slot.into_tombstone());
                (work, span)
            })
        };
        self.drop_user(pending);
        self.run_waker.wake();
        self.publish(Err(failed), None);
    }

    /// Publishes the result to the join handle, or routes it if the handle is gone. `spent`
    /// (the admission of a slot already given back) is kept in the cell when it holds nothing
    /// else, and dropped here otherwise.
    fn publish(&self, result: Result<F::Output, Failed>, spent: Option<Arc<Admission>>) {
        let (waker, unobserved, spent) = {
            let mut inner = lock(&self.inner);
            let spent = match spent {
                Some(admission) if matches!(inner.held, Held::Nothing) => {
                    inner.held = Held::Spent(admission);
                    None
                }
                other => other,
            };
            if inner.detached {
                (None, Some(result), spent)
            } else {
                inner.output = Output::Ready(result);
                (inner.join_waker.take(), None, spent)
            }
        };
        drop(spent);
        if let Some(w) = waker {
            w.wake();
        }
        match unobserved {
            Some(Err(Failed::Panicked(payload))) => self.route_failure(payload),
            other => self.drop_user(other),
        }
    }

    /// Drops a user value (work, future, result). A panic from its `Drop` is contained, so it
    /// cannot unwind into a pool thread or a runner, and reported like any other panic: never
    /// silent.
    pub(crate) fn drop_user<V>(&self, value: V) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value))) {
            self.header.accounts.report_panic(
                &self.header.info,
                payload,
                "while dropping the task's work or result",
            );
        }
    }

    /// A panic nobody will read: to the root handler.
    fn route_failure(&self, payload: Box<dyn Any + Send + 'static>) {
        let failure = Failure::new(
            self.header.accounts.name.clone(),
            self.header.info.clone(),
            FailureKind::Panic,
            panic_message(&*payload),
        );
        self.header.accounts.report(failure);
        self.drop_user(payload);
    }

    /// The caller's error for a task that produced no value.
    fn error(&self, failed: Failed) -> DispatchError {
        let dispatcher = self.header.accounts.name.clone();
        let task = self.header.info.clone();
        match failed {
            Failed::Panicked(payload) => DispatchError::Panicked {
                dispatcher,
                task,
                message: panic_message(&*payload),
                payload: PanicPayload::new(payload),
            },
            Failed::Cancelled => DispatchError::Cancelled { dispatcher, task },
            Failed::Expired { waited } => DispatchError::Rejected {
                dispatcher,
                reason: RejectReason::QueueDeadline {
                    waited,
                    // Only a dispatcher with a deadline expires its tasks.
                    deadline: self.header.accounts.queue_deadline.unwrap_or_default(),
                },
            },
        }
    }
}
