//! How a dispatcher counts: the `Accounts` every task of it reports to, from which its
//! [`Stats`](crate::Stats) are read.
//!
//! Counters are monotonic and sharded by thread: a submitting thread and the pool threads that
//! run its tasks write different cache lines, and nothing is read on the hot path. Gauges
//! (`in_flight`, `queued`, `active`, `waiting`) are differences of monotonic counters, computed
//! when read. A read sums the shards without a lock, so a read taken while tasks move can be a
//! moment out of date; at rest it is exact. Every count is `Relaxed`: they are statistics, and
//! a caller that observed its task's result also observes its counts, because the outcome is
//! counted before the result is published under the task cell's lock (an `Acquire`/`Release`
//! pair that orders these stores for the caller).
//!
//! Everything that calls out of the library here (the metrics recorder, the failure sink) is
//! contained: a panicking recorder is reported as a failure of the task being accounted, and
//! the bookkeeping goes on.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

// A TSC clock where the CPU has a stable one: a quarter of the cost of `clock_gettime` on the
// hot path, where every task reads the clock three times (see docs/design.md).
use quanta::Instant;
use tokio::sync::Notify;

use super::kind::Kind;
use super::live::LiveSet;

mod read;
use super::stats::Outcome;
use super::task::id::TaskInfo;
use crate::error::{RejectReason, panic_message};
use crate::metrics::DispatcherMetrics;
use crate::supervisor::failure::{Failure, FailureKind, FailureSink};

/// Shards per dispatcher. More than the threads that usually touch one dispatcher at once on
/// the machines this runs on; threads beyond that share shards (the counters stay atomic).
const SHARDS: usize = 8;

/// One thread's share of the counters: monotonic, written with `Relaxed` read-modify-writes,
/// on cache lines of their own.
#[derive(Default)]
#[repr(align(128))]
struct Shard {
    admitted: AtomicU64,
    rejected_queue_full: AtomicU64,
    rejected_wait_timeout: AtomicU64,
    rejected_shutting_down: AtomicU64,
    /// Admitted, then rejected: waited past the queue deadline (a decision).
    rejected_queue_deadline: AtomicU64,
    /// `run*` callers dropped while waiting for room: submitted and cancelled, never admitted.
    cancelled_waiting: AtomicU64,
    started: AtomicU64,
    /// Admitted tasks decided before they started (cancelled in the queue).
    decided_queued: AtomicU64,
    completed: AtomicU64,
    panicked: AtomicU64,
    cancelled: AtomicU64,
    abandoned: AtomicU64,
    active_in: AtomicU64,
    active_out: AtomicU64,
    waiting_in: AtomicU64,
    waiting_out: AtomicU64,
    view_workers_in: AtomicU64,
    view_workers_out: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A decision's count: SeqCst, to pair with the SeqCst flag and loads of a drain (see
/// [`Accounts::decided`]). On x86 a read-modify-write is a full barrier anyway.
fn bump_decision(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::SeqCst);
}

/// One dispatcher's bookkeeping, shared by its spawn path and every one of its tasks.
pub(crate) struct Accounts {
    pub name: Arc<str>,
    pub kind: Kind,
    metrics: DispatcherMetrics,
    pub failures: Arc<FailureSink>,
    pub live: LiveSet,
    /// Admitted work that waited longer than this before starting is rejected instead.
    pub queue_deadline: Option<std::time::Duration>,
    /// Whether runners time their polls for dumps (`DispatchersBuilder::track_tasks`).
    pub track: bool,
    shards: [Shard; SHARDS],
    /// Woken after every decision once `draining` is set: shutdown re-reads `in_flight`.
    idle: Notify,
    draining: AtomicBool,
}

impl Accounts {
    pub(crate) fn new(name: Arc<str>, kind: Kind, failures: Arc<FailureSink>) -> Self {
        let metrics = match catch_unwind(|| DispatcherMetrics::register(&name)) {
            Ok(m) => m,
            Err(payload) => {
                tracing_contained(&name, &*payload);
                DispatcherMetrics::noop()
            }
        };
        Accounts {
            name,
            kind,
            metrics,
            failures,
            live: LiveSet::new(),
            queue_deadline: None,
            track: true,
            shards: Default::default(),
            idle: Notify::new(),
            draining: AtomicBool::new(false),
        }
    }

    /// Turns poll timing for dumps on or off (at build).
    pub(crate) fn with_tracking(mut self, track: bool) -> Self {
        self.track = track;
        self
    }

    /// Sets the queue deadline (at build).
    pub(crate) fn with_queue_deadline(mut self, deadline: Option<std::time::Duration>) -> Self {
        self.queue_deadline = deadline;
        self
    }

    fn shard(&self) -> &Shard {
        &self.shards[crate::sync::thread_shard(SHARDS)]
    }

    /// Calls the metrics recorder. A panic in it is reported as a failure of `task` and the
    /// caller's bookkeeping goes on.
    fn record(&self, task: &TaskInfo, f: impl FnOnce(&DispatcherMetrics)) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f(&self.metrics))) {
            self.report_panic(task, payload, "in the metrics recorder");
        }
    }

    // ----- submission ----------------------------------------------------------------------

    /// An admitted task: submitted, in flight, queued.
    pub(crate) fn admitted(&self, task: &TaskInfo) {
        bump(&self.shard().admitted);
        self.record(task, |m| {
            m.submitted.increment(1);
            m.in_flight.increment(1.0);
            m.queue_depth.increment(1.0);
        });
    }

    /// A rejected submission.
    pub(crate) fn rejected(&self, task: &TaskInfo, reason: &RejectReason) {
        let shard = self.shard();
        let counter = match reason {
            RejectReason::QueueFull { .. } => &shard.rejected_queue_full,
            RejectReason::WaitTimeout { .. } => &shard.rejected_wait_timeout,
            RejectReason::ShuttingDown => &shard.rejected_shutting_down,
            // Only decided tasks expire; counted by `decided`.
            RejectReason::QueueDeadline { .. } => return,
        };
        bump(counter);
        self.record(task, |m| {
            m.submitted.increment(1);
            match reason {
                RejectReason::QueueFull { .. } => m.rejected_queue_full.increment(1),
                RejectReason::WaitTimeout { .. } => m.rejected_wait_timeout.increment(1),
                RejectReason::ShuttingDown => m.rejected_shutting_down.increment(1),
                RejectReason::QueueDeadline { .. } => {}
            }
        });
    }

    /// A `run*` caller starts waiting for room.
    pub(crate) fn waiting_enter(&self) {
        bump(&self.shard().waiting_in);
    }

    /// A `run*` caller stops waiting for room; `dropped` when it gave up before a decision,
    /// which counts as submitted and cancelled.
    pub(crate) fn waiting_exit(&self, task: &TaskInfo, dropped: bool) {
        let shard = self.shard();
        bump(&shard.waiting_out);
        if dropped {
            bump(&shard.cancelled_waiting);
            self.record(task, |m| {
                m.submitted.increment(1);
                m.finished_cancelled.increment(1);
            });
        }
    }

    // ----- the task's life -------------------------------------------------------------------

    /// The task starts: returns the start instant.
    pub(crate) fn started(&self, task: &TaskInfo, submitted_at: Instant) -> Instant {
        let now = Instant::now();
        bump(&self.shard().started);
        self.record(task, |m| {
            m.queue_depth.decrement(1.0);
            m.queue_wait
                .record(now.saturating_duration_since(submitted_at).as_secs_f64());
        });
        now
    }

    pub(crate) fn active_enter(&self, task: &TaskInfo) {
        bump(&self.shard().active_in);
        self.record(task, |m| m.active.increment(1.0));
    }

    pub(crate) fn active_exit(&self, task: &TaskInfo) {
        bump(&self.shard().active_out);
        self.record(task, |m| m.active.decrement(1.0));
    }

    /// The task ran from `started_at` to `ended_at`.
    pub(crate) fn ran(&self, task: &TaskInfo, started_at: Instant, ended_at: Instant) {
        self.record(task, |m| {
            m.run_time
                .record(ended_at.saturating_duration_since(started_at).as_secs_f64());
        });
    }

    /// Counts the decision of an admitted task. Called once per task, by whoever decided it;
    /// `was_queued` when it never started.
    pub(crate) fn decided(&self, task: &TaskInfo, outcome: Outcome, was_queued: bool) {
        let shard = self.shard();
        match outcome {
            Outcome::Ok => bump_decision(&shard.completed),
            Outcome::Panicked => bump_decision(&shard.panicked),
            Outcome::Cancelled { abandoned } => {
                if abandoned {
                    bump(&shard.abandoned);
                }
                bump_decision(&shard.cancelled);
            }
            Outcome::Expired => bump_decision(&shard.rejected_queue_deadline),
        }
        if was_queued {
            bump(&shard.decided_queued);
        }
        self.record(task, |m| {
            match outcome {
                Outcome::Ok => m.finished_ok.increment(1),
                Outcome::Panicked => m.finished_panicked.increment(1),
                Outcome::Cancelled { abandoned } => {
                    m.finished_cancelled.increment(1);
                    if abandoned {
                        m.abandoned.increment(1);
                    }
                }
                Outcome::Expired => m.rejected_queue_deadline.increment(1),
            }
            if was_queued {
                m.queue_depth.decrement(1.0);
            }
            m.in_flight.decrement(1.0);
        });
        // No lost wake-up for a drain (`Dispatcher::drained_by`): the drainer stores `draining`,
        // registers for the next decision, then reads the counts; a decider counts, then reads
        // `draining`. All four are SeqCst, so in their single order either the drainer's read
        // comes after this count (and sees it), or this read comes after the drainer's store
        // (and wakes it, registered before its read).
        if self.draining.load(Ordering::SeqCst) {
            self.idle.notify_waiters();
        }
    }

    /// A worker of a view over this dispatcher took (or gave back) one of its slots.
    pub(crate) fn view_worker(&self, holding: bool) {
        let shard = self.shard();
        bump(if holding {
            &shard.view_workers_in
        } else {
            &shard.view_workers_out
        });
    }

    // ----- failures ----------------------------------------------------------------------------

    /// A panic that nobody awaits: counted, and sent to the root handler.
    pub(crate) fn report_panic(
        &self,
        task: &TaskInfo,
        payload: Box<dyn Any + Send + 'static>,
        context: &str,
    ) {
        let message = if context.is_empty() {
            panic_message(&*payload)
        } else {
            format!("{} ({context})", panic_message(&*payload))
        };
        self.count_failure();
        self.report(Failure::new(
            self.name.clone(),
            task.clone(),
            FailureKind::Panic,
            message,
        ));
        // Dropping a payload runs its `Drop`: user code too.
        if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            std::mem::forget(again);
        }
    }

    /// A panic of the library's own bookkeeping, caught by a safety net (a pool thread's loop,
    /// a view's worker): reported to the root handler as a failure of no task in particular.
    #[track_caller]
    pub(crate) fn report_internal(&self, payload: Box<dyn Any + Send + 'static>, context: &str) {
        let task = TaskInfo::new(
            crate::dispatcher::task::id::TaskId(0),
            Some("bulkheads-internal".into()),
            std::panic::Location::caller(),
        );
        self.report_panic(&task, payload, &format!("internal error in {context}"));
    }

    /// Counts a caught panic in `bulkheads_failures_total`, whoever observes it.
    pub(crate) fn count_failure(&self) {
        // A recorder that panics here is not reported again: that could loop.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            self.metrics.failures_panic.increment(1);
        }));
    }

    /// Sends a failure nobody observes to the root handler (or the log).
    pub(crate) fn report(&self, failure: Failure) {
        self.failures.report(&failure);
    }

    /// A failure a scope or supervisor observed in one of its children: counted by kind
    /// (a panic was counted when it was caught) and sent to the root handler.
    pub(crate) fn report_child_failure(&self, failure: Failure) {
        if failure.kind == FailureKind::Error {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                self.metrics.failures_error.increment(1);
            }));
        }
        self.failures.report(&failure);
    }

    // ----- shutdown and reading ------------------------------------------------------------------

    /// From now on every decision wakes [`drained`](Self::drained) waiters.
    pub(crate) fn begin_draining(&self) {
        // SeqCst: see the end of `decided`.
        self.draining.store(true, Ordering::SeqCst);
    }

    /// A future that completes at the next decision after [`begin_draining`](Self::begin_draining).
    pub(crate) fn next_decision(&self) -> tokio::sync::futures::Notified<'_> {
        self.idle.notified()
    }

    /// Admitted tasks not decided yet.
    /// Sets the threads gauge, once, at build (a single writer: it stays exact).
    pub(crate) fn threads_gauge(&self, delta: f64) {
        if let Err(payload) =
            catch_unwind(AssertUnwindSafe(|| self.metrics.threads.increment(delta)))
        {
            tracing_contained(&self.name, &*payload);
        }
    }
}

/// Logs a panic of the metrics recorder outside any task (at build, for example).
fn tracing_contained(dispatcher: &str, payload: &(dyn Any + Send)) {
    let message = panic_message(payload);
    let _ = catch_unwind(AssertUnwindSafe(|| {
        tracing::error!(target: "bulkheads", dispatcher, "the metrics recorder panicked: {message}");
    }));
}
