//! What a cell holds besides its result: the work while it waits in a pool's queue (with its
//! slot and span) and its tombstone once it is cancelled there, or the handle of the
//! executor's task that runs it.

use std::sync::Arc;

use crate::dispatcher::admission::{Admission, Slot, Tombstone};

/// Work waiting in a pool's queue: taken by the thread that runs it, or dropped by a canceller
/// (which frees its slot at once).
pub(crate) struct Pending<F> {
    pub work: F,
    pub slot: Slot,
    pub span: TaskSpan,
}

/// A child of the submitter's span, kept only when there is one (tracing on): eight bytes in
/// the cell otherwise, which matters when a fan-out holds a hundred thousand cells at once.
pub(crate) struct TaskSpan(Option<Box<tracing::Span>>);

impl TaskSpan {
    pub(crate) fn new(span: tracing::Span) -> Self {
        TaskSpan(if span.is_none() {
            None
        } else {
            Some(Box::new(span))
        })
    }

    #[cfg(bulkheads_loom)]
    pub(crate) fn none() -> Self {
        TaskSpan(None)
    }

    /// Enters the span for the duration of `f`.
    pub(crate) fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.0 {
            Some(span) => {
                let _entered = span.enter();
                f()
            }
            None => f(),
        }
    }
}

/// What a cell holds besides its result: a pool's task keeps its work here while it waits in
/// the pool's queue, and its tombstone once it is cancelled there; a runtime's or a view's
/// task keeps the handle of the executor's task that runs it. One at a time, so they share
/// the room.
pub(super) enum Held<F> {
    Nothing,
    Work(Pending<F>),
    /// What a task cancelled in a pool's queue keeps until the pool's thread reaches it.
    Tombstone(Tombstone),
    Carrier(#[expect(dead_code, reason = "held only to be dropped with the cell")] Carrier),
    /// The admission a finished task's slot came from, once the slot is given back (see
    /// [`Slot::spend`]): dropped with the cell, so that the pool thread that ran the task does
    /// not touch the admission's reference count, a cache line the submitter writes with every
    /// task.
    Spent(#[expect(dead_code, reason = "held only to be dropped with the cell")] Arc<Admission>),
}

impl<F> Held<F> {
    pub(super) fn take_work(&mut self) -> Option<Pending<F>> {
        match std::mem::replace(self, Held::Nothing) {
            Held::Work(pending) => Some(pending),
            other => {
                *self = other;
                None
            }
        }
    }

    pub(super) fn take_tombstone(&mut self) -> Option<Tombstone> {
        match std::mem::replace(self, Held::Nothing) {
            Held::Tombstone(tombstone) => Some(tombstone),
            other => {
                *self = other;
                None
            }
        }
    }
}

/// The handle an executor's own task (the one that runs a cell's work) gives back when it is
/// spawned: a view's `async-task` task or a runtime's Tokio task. The cell keeps it, so that
/// the executor's task memory is freed with the cell, on the thread of whoever drops the cell
/// last (in practice the caller that joined it), rather than by the worker that ran it.
/// Freeing on the thread that allocated avoids contending with the submitter for the
/// allocator's per-thread arena: on glibc that contention cost a futex wake-up per task on a
/// busy fan-out.
///
/// Dropping it never cancels anything: the cell is dropped only after its runner, that is
/// after the task's future is gone (the runner holds the cell).
#[expect(dead_code, reason = "held only to be dropped with the cell")]
pub(crate) enum Carrier {
    AsyncTask(async_task::Task<()>),
    Tokio(tokio::task::JoinHandle<()>),
}
