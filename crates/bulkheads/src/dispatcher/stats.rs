//! What a dispatcher reports about itself: [`Stats`], a snapshot of its gauges and counters.
//!
//! Invariant: for every dispatcher, at any quiescent moment,
//! `submitted = completed + panicked + cancelled + rejected + in_flight`. The counting itself
//! is `accounts.rs`.

use std::sync::Arc;

use super::kind::Kind;

/// A snapshot of one dispatcher's gauges and counters; see
/// [`Dispatcher::stats`](crate::Dispatcher::stats).
///
/// At any quiescent moment:
/// `submitted == completed + panicked + cancelled + rejected.total() + in_flight`.
/// `abandoned` is the part of `cancelled` that had already started and ran on to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The dispatcher's name.
    pub name: Arc<str>,
    /// Its kind.
    pub kind: Kind,
    /// OS threads it owns (pool threads or runtime workers); 0 for a view.
    pub threads: usize,
    /// A view's parallelism; `None` for other kinds.
    pub parallelism: Option<usize>,
    /// In-flight cap plus queue; `None` when unbounded.
    pub capacity: Option<usize>,
    /// Admitted, not started.
    pub queued: usize,
    /// Being polled or run at this instant.
    pub active: usize,
    /// Admitted, not finished (queued or started).
    pub in_flight: usize,
    /// `run*` callers waiting for room.
    pub waiting: usize,
    /// Workers of views over this dispatcher that hold one of its slots now: each runs that
    /// view's tasks on this dispatcher's threads, and counts against its capacity like a task.
    pub view_workers: usize,
    /// Offered: admitted or rejected (a `run*` caller dropped while waiting counts, as
    /// cancelled).
    pub submitted: u64,
    /// Finished with a value.
    pub completed: u64,
    /// Finished with a panic.
    pub panicked: u64,
    /// Cancelled: before start, at an `.await`, or abandoned.
    pub cancelled: u64,
    /// Of `cancelled`: work that had started and could not be stopped; it ran to its end and
    /// its result was dropped.
    pub abandoned: u64,
    /// Rejected, by reason.
    pub rejected: RejectedCounts,
}

impl Stats {
    /// True when the accounting identity holds:
    /// `submitted == completed + panicked + cancelled + rejected + in_flight`.
    pub fn is_balanced(&self) -> bool {
        self.submitted
            == self.completed
                + self.panicked
                + self.cancelled
                + self.rejected.total()
                + self.in_flight as u64
    }

    /// Adds the counts of `other` (another instance of a view with the same name) to these.
    pub(crate) fn absorb(&mut self, other: &Stats) {
        self.queued += other.queued;
        self.active += other.active;
        self.in_flight += other.in_flight;
        self.waiting += other.waiting;
        self.view_workers += other.view_workers;
        self.submitted += other.submitted;
        self.completed += other.completed;
        self.panicked += other.panicked;
        self.cancelled += other.cancelled;
        self.abandoned += other.abandoned;
        self.rejected.queue_full += other.rejected.queue_full;
        self.rejected.wait_timeout += other.rejected.wait_timeout;
        self.rejected.shutting_down += other.rejected.shutting_down;
        self.rejected.queue_deadline += other.rejected.queue_deadline;
    }
}

/// Rejections by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RejectedCounts {
    /// Full at submission (or `max_wait` zero).
    pub queue_full: u64,
    /// No room within `max_wait`.
    pub wait_timeout: u64,
    /// Submitted during or after shutdown.
    pub shutting_down: u64,
    /// Admitted, then not started: it waited in the queue past the queue deadline.
    pub queue_deadline: u64,
}

impl RejectedCounts {
    /// All rejections.
    pub fn total(&self) -> u64 {
        self.queue_full + self.wait_timeout + self.shutting_down + self.queue_deadline
    }
}

/// How a decided task ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Panicked,
    Cancelled {
        abandoned: bool,
    },
    /// Waited in the queue past the queue deadline: rejected, never started.
    Expired,
}
