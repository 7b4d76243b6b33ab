//! The one spawn path. Every task of every kind, whatever call created it, is admitted,
//! named, counted, registered as live, run under its caller's span, decided exactly once and
//! recorded here. A dispatcher kind only supplies *how to run* a task (`Executor`).

use std::borrow::Cow;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
// A TSC clock where the CPU has a stable one: a quarter of the cost of `clock_gettime` on
// the hot path, where every task reads the clock three times (see docs/design.md).
use quanta::Instant;

use tokio::runtime::Handle;
use tokio::sync::Notify;

use super::admission::Admission;
use super::blocking::BlockingPool;
use super::limited::LimitedView;
use super::live::LiveSet;
use super::task::{ClosureFuture, Header, TaskCell, TaskFuture, TaskId, TaskMeta, WorkKind};
use super::{AdmissionConfig, JoinHandle, Kind, RejectedCounts, Stats};
use crate::error::{DispatchError, RejectReason};
use crate::failure::{self, Failure, FailureHandler};
use crate::metrics::DispatcherMetrics;

/// What a whole registry shares with each of its dispatchers.
pub(crate) struct RegistryShared {
    pub failure_handler: Option<FailureHandler>,
    /// Views made with `Dispatcher::limited`, so shutdown drains and reports them too; and
    /// whether shutdown began (a view made after that is closed at once). One lock for both,
    /// so a view is either in shutdown's list or closed.
    adopted: std::sync::Mutex<Adopted>,
    next_task_id: AtomicU64,
    /// The cpu runtime: its clock measures admission waits and its drivers serve futures
    /// pinned to blocking pools. Shut down last.
    pub cpu: Handle,
}

impl RegistryShared {
    pub(crate) fn new(failure_handler: Option<FailureHandler>, cpu: Handle) -> Self {
        RegistryShared {
            failure_handler,
            adopted: std::sync::Mutex::new(Adopted::default()),
            next_task_id: AtomicU64::new(1),
            cpu,
        }
    }

    pub(crate) fn next_id(&self) -> TaskId {
        // Relaxed: uniqueness needs atomicity only.
        TaskId(self.next_task_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Keeps track of an ad-hoc view; a registry already shutting down closes it at once, so
    /// it rejects everything (`ShuttingDown`) rather than queue work nobody will run.
    pub(crate) fn adopt(&self, d: &super::Dispatcher) {
        let mut adopted = crate::sync::lock(&self.adopted);
        if adopted.closing {
            drop(adopted);
            d.core.close();
            d.core.stop_executor();
            return;
        }
        adopted.views.retain(|w| w.strong_count() > 0);
        adopted.views.push(Arc::downgrade(&d.core));
    }

    /// Marks the registry as shutting down and returns the ad-hoc views alive now, newest
    /// first (a view of a view before its parent). Views adopted later are closed at birth.
    pub(crate) fn begin_shutdown(&self) -> Vec<super::Dispatcher> {
        let mut adopted = crate::sync::lock(&self.adopted);
        adopted.closing = true;
        adopted
            .views
            .iter()
            .rev()
            .filter_map(std::sync::Weak::upgrade)
            .map(super::Dispatcher::new)
            .collect()
    }

    pub(crate) fn report_failure(&self, failure: &Failure) {
        failure::report(self.failure_handler.as_ref(), failure);
    }
}

#[derive(Default)]
pub(crate) struct Adopted {
    views: Vec<std::sync::Weak<DispatcherCore>>,
    closing: bool,
}

/// How a dispatcher kind runs work.
#[derive(Clone)]
pub(crate) enum Executor {
    /// A fixed pool of OS threads with its own queue.
    Pool(Arc<BlockingPool>),
    /// Tasks on a Tokio runtime (the cpu pool, a dedicated runtime, or `main`).
    Tokio(Handle),
    /// Tasks of a limited-parallelism view, run by its workers on its base.
    View(Arc<LimitedView>),
}

impl Executor {
    /// A queued task was cancelled. A pool frees its slot now and counts it as a tombstone to
    /// sweep; elsewhere the runner frees the slot when it drops the work.
    pub(crate) fn on_cancelled_in_queue(&self, admission: &Admission) {
        if let Executor::Pool(pool) = self {
            admission.release();
            pool.on_tombstone();
        }
    }

    fn threads(&self) -> usize {
        match self {
            Executor::Pool(pool) => pool.live_threads(),
            Executor::Tokio(handle) => handle.metrics().num_workers(),
            Executor::View(_) => 0,
        }
    }

    /// Runs a task future (not a pool's: those wait in the pool's queue).
    fn spawn_task<F: Future<Output = ()> + Send + 'static>(&self, fut: F) {
        match self {
            // Tokio's own handle is not kept: our cell is the task's identity.
            Executor::Tokio(handle) => drop(handle.spawn(fut)),
            Executor::View(view) => view.spawn(fut),
            // Never reached: the spawn path sends pool work through the pool's queue, whose
            // canceller frees slots itself. Were a task sent here, dropping it would still
            // decide it as cancelled and free its slot, so nothing would be lost.
            Executor::Pool(_) => {
                tracing::error!(target: "bulkheads", "internal: pool work sent to spawn_task");
                drop(fut);
            }
        }
    }
}

/// How a decided task ended, for the counters.
#[derive(Clone, Copy)]
pub(crate) enum Outcome {
    Ok,
    Panicked,
    Cancelled { abandoned: bool },
}

/// Relaxed atomics throughout: they are statistics. A caller that has observed a task's
/// result also observes its counts, because `count_decided` runs before the result is
/// published under the cell's lock.
///
/// Grouped by who writes them, each group on its own cache lines: submitters, runners and
/// the gauges both touch would otherwise invalidate each other's lines on every task.
#[derive(Default)]
pub(crate) struct Counters {
    submit: Padded<SubmitCounters>,
    outcomes: Padded<OutcomeCounters>,
    in_flight: Padded<AtomicUsize>,
    queued: Padded<AtomicUsize>,
    active: Padded<AtomicUsize>,
}

#[derive(Default)]
struct SubmitCounters {
    submitted: AtomicU64,
    rejected_queue_full: AtomicU64,
    rejected_wait_timeout: AtomicU64,
    rejected_shutting_down: AtomicU64,
    waiting: AtomicUsize,
}

#[derive(Default)]
struct OutcomeCounters {
    completed: AtomicU64,
    panicked: AtomicU64,
    cancelled: AtomicU64,
    abandoned: AtomicU64,
}

/// Keeps its content on cache lines of its own (128 bytes: adjacent-line prefetch pairs lines).
#[derive(Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

pub(crate) struct DispatcherCore {
    pub name: Arc<str>,
    pub kind: Kind,
    pub admission: Admission,
    pub executor: Executor,
    pub registry: Arc<RegistryShared>,
    pub metrics: DispatcherMetrics,
    pub live: LiveSet,
    /// The in-flight cap (`max_concurrent`) of a runtime or a view: tasks pass it before
    /// they start. `None` for pools (their threads are the cap) and uncapped dispatchers.
    gate: Option<Arc<tokio::sync::Semaphore>>,
    counters: Counters,
    /// Woken whenever `in_flight` drops to zero while `draining`.
    idle: Notify,
    draining: AtomicBool,
}

impl DispatcherCore {
    pub(crate) fn new(
        name: Arc<str>,
        kind: Kind,
        admission: AdmissionConfig,
        executor: Executor,
        registry: Arc<RegistryShared>,
    ) -> Self {
        let metrics = DispatcherMetrics::register(&name);
        let (admission, gate) = match (&executor, admission.max_concurrent) {
            (Executor::Pool(pool), _) => (
                Admission::bounded(pool.threads() + admission.queue, admission.max_wait),
                None,
            ),
            (_, Some(cap)) => (
                Admission::bounded(cap + admission.queue, admission.max_wait),
                Some(Arc::new(tokio::sync::Semaphore::new(cap))),
            ),
            (_, None) => (Admission::unbounded(), None),
        };
        let core = DispatcherCore {
            name,
            kind,
            admission,
            executor,
            registry,
            metrics,
            live: LiveSet::new(),
            gate,
            counters: Counters::default(),
            idle: Notify::new(),
            draining: AtomicBool::new(false),
        };
        core.metrics.threads.set(core.executor.threads() as f64);
        core
    }

    // ----- submission --------------------------------------------------------------------

    pub(crate) fn meta(
        &self,
        name: Option<Cow<'static, str>>,
        location: &'static Location<'static>,
    ) -> TaskMeta {
        let parent = tracing::Span::current();
        let span = if parent.is_none() {
            parent
        } else {
            let child =
                tracing::debug_span!(parent: &parent, "bulkheads.task", dispatcher = %self.name);
            if child.is_disabled() { parent } else { child }
        };
        TaskMeta {
            id: self.registry.next_id(),
            name,
            location,
            submitted_at: Instant::now(),
            span,
        }
    }

    /// The admission decision for one submission: counted here, once.
    fn admitted(&self, decision: Result<(), RejectReason>) -> Result<(), RejectReason> {
        self.counters
            .submit
            .submitted
            .fetch_add(1, Ordering::Relaxed);
        self.metrics.submitted.increment(1);
        match decision {
            Ok(()) => {
                let in_flight = self.counters.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
                let queued = self.counters.queued.fetch_add(1, Ordering::Relaxed) + 1;
                self.metrics.in_flight.set(in_flight as f64);
                self.metrics.queue_depth.set(queued as f64);
                Ok(())
            }
            Err(reason) => {
                let (counter, metric) = match reason {
                    RejectReason::QueueFull { .. } => (
                        &self.counters.submit.rejected_queue_full,
                        &self.metrics.rejected_queue_full,
                    ),
                    RejectReason::WaitTimeout { .. } => (
                        &self.counters.submit.rejected_wait_timeout,
                        &self.metrics.rejected_wait_timeout,
                    ),
                    RejectReason::ShuttingDown => (
                        &self.counters.submit.rejected_shutting_down,
                        &self.metrics.rejected_shutting_down,
                    ),
                };
                counter.fetch_add(1, Ordering::Relaxed);
                metric.increment(1);
                Err(reason)
            }
        }
    }

    /// Admits now (the `spawn*` calls).
    pub(crate) fn admit_now(&self) -> Result<(), RejectReason> {
        self.admitted(self.admission.try_admit())
    }

    /// Admits within `max_wait` (the `run*` calls). A caller dropped while waiting counts as
    /// submitted and cancelled, so the accounting identity holds for it too.
    pub(crate) async fn admit_within_max_wait(&self) -> Result<(), RejectReason> {
        struct Waiting<'a>(&'a DispatcherCore, bool);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0
                    .counters
                    .submit
                    .waiting
                    .fetch_sub(1, Ordering::Relaxed);
                if !self.1 {
                    // Dropped before a decision: a cancelled submission.
                    self.0
                        .counters
                        .submit
                        .submitted
                        .fetch_add(1, Ordering::Relaxed);
                    self.0.metrics.submitted.increment(1);
                    self.0.count_cancelled(false);
                }
            }
        }
        if let ok @ Ok(()) = self.admission.try_admit() {
            return self.admitted(ok);
        }
        self.counters.submit.waiting.fetch_add(1, Ordering::Relaxed);
        let mut waiting = Waiting(self, false);
        let decision = self.admission.admit(&self.registry.cpu).await;
        waiting.1 = true;
        self.admitted(decision)
    }

    pub(crate) fn rejected<T>(&self, id: TaskId, reason: RejectReason) -> JoinHandle<T> {
        JoinHandle::rejected(
            id,
            DispatchError::Rejected {
                dispatcher: self.name.clone(),
                reason,
            },
        )
    }

    /// Spawns admitted async work on this dispatcher's executor.
    pub(crate) fn spawn_future<F>(
        self: &Arc<Self>,
        name: Option<Cow<'static, str>>,
        location: &'static Location<'static>,
        fut: F,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let meta = self.meta(name, location);
        let id = meta.id;
        match &self.executor {
            Executor::Pool(pool) => {
                // Kept in the cell until a pool thread takes it and blocks on it.
                let cell = self.register(meta, WorkKind::Async, Some(super::blocking::Pinned(fut)));
                pool.push(cell.clone());
                JoinHandle::attached(id, cell)
            }
            executor => {
                let cell = self.register::<(), F::Output>(meta, WorkKind::Async, None);
                executor.spawn_task(TaskFuture::new(cell.clone(), fut, None, self.gate.clone()));
                JoinHandle::attached(id, cell)
            }
        }
    }

    /// Spawns an admitted blocking closure on this dispatcher's executor.
    pub(crate) fn spawn_closure<F, T>(
        self: &Arc<Self>,
        name: Option<Cow<'static, str>>,
        location: &'static Location<'static>,
        f: F,
    ) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let meta = self.meta(name, location);
        let id = meta.id;
        match &self.executor {
            Executor::Pool(pool) => {
                let cell =
                    self.register(meta, WorkKind::Blocking, Some(super::blocking::Closure(f)));
                pool.push(cell.clone());
                JoinHandle::attached(id, cell)
            }
            executor => {
                let cell = self.register::<(), T>(meta, WorkKind::Blocking, None);
                executor.spawn_task(TaskFuture::new(
                    cell.clone(),
                    ClosureFuture::new(f),
                    None,
                    self.gate.clone(),
                ));
                JoinHandle::attached(id, cell)
            }
        }
    }

    pub(crate) fn register<W: Send + 'static, T: Send + 'static>(
        self: &Arc<Self>,
        meta: TaskMeta,
        work_kind: WorkKind,
        work: Option<W>,
    ) -> Arc<TaskCell<W, T>> {
        let id = meta.id;
        let cell = Arc::new(TaskCell::new(
            Header::new(meta, work_kind, self.clone()),
            work,
        ));
        let live: Arc<dyn super::task::LiveTask> = cell.clone();
        self.live.register(id, Arc::downgrade(&live));
        cell
    }

    // ----- the task's life ---------------------------------------------------------------

    /// The task starts: returns the start instant.
    pub(crate) fn on_start(&self, header: &Header) -> Instant {
        let now = Instant::now();
        let queued = self.counters.queued.fetch_sub(1, Ordering::Relaxed) - 1;
        self.metrics.queue_depth.set(queued as f64);
        self.metrics.queue_wait.record(
            now.saturating_duration_since(header.submitted_at)
                .as_secs_f64(),
        );
        now
    }

    pub(crate) fn active_enter(&self) {
        let active = self.counters.active.fetch_add(1, Ordering::Relaxed) + 1;
        self.metrics.active.set(active as f64);
    }

    pub(crate) fn active_exit(&self) {
        let active = self.counters.active.fetch_sub(1, Ordering::Relaxed) - 1;
        self.metrics.active.set(active as f64);
    }

    pub(crate) fn record_run_time(&self, started_at: Instant) {
        self.metrics
            .run_time
            .record(started_at.elapsed().as_secs_f64());
    }

    /// Counts the decision of an admitted task and drops it from the live set. Called once
    /// per task, by whoever decided it.
    pub(crate) fn count_decided(&self, outcome: Outcome, was_queued: bool) {
        match outcome {
            Outcome::Ok => {
                self.counters
                    .outcomes
                    .completed
                    .fetch_add(1, Ordering::Relaxed);
                self.metrics.finished_ok.increment(1);
            }
            Outcome::Panicked => {
                self.counters
                    .outcomes
                    .panicked
                    .fetch_add(1, Ordering::Relaxed);
                self.metrics.finished_panicked.increment(1);
            }
            Outcome::Cancelled { abandoned } => self.count_cancelled(abandoned),
        }
        if was_queued {
            let queued = self.counters.queued.fetch_sub(1, Ordering::Relaxed) - 1;
            self.metrics.queue_depth.set(queued as f64);
        }
        // Release: a drain that reads zero (Acquire) sees the outcome counted above.
        let in_flight = self.counters.in_flight.fetch_sub(1, Ordering::AcqRel) - 1;
        self.metrics.in_flight.set(in_flight as f64);
        if in_flight == 0 {
            // Idle: let go of finished tasks' allocations now rather than at the next burst.
            self.live.prune();
            if self.draining.load(Ordering::Acquire) {
                self.idle.notify_waiters();
            }
        }
    }

    fn count_cancelled(&self, abandoned: bool) {
        self.counters
            .outcomes
            .cancelled
            .fetch_add(1, Ordering::Relaxed);
        self.metrics.finished_cancelled.increment(1);
        if abandoned {
            self.counters
                .outcomes
                .abandoned
                .fetch_add(1, Ordering::Relaxed);
            self.metrics.abandoned.increment(1);
        }
    }

    /// The task's slot is free again.
    pub(crate) fn release_slot(&self) {
        self.admission.release();
    }

    // ----- shutdown ----------------------------------------------------------------------

    /// Stops admission; waiters and new submissions get `ShuttingDown`.
    pub(crate) fn close(&self) {
        self.draining.store(true, Ordering::Release);
        self.admission.close();
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.counters.in_flight.load(Ordering::Acquire)
    }

    /// Waits until nothing is in flight or `deadline` passes. True when drained.
    pub(crate) async fn drained_by(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            // Registered before the check, so a decision after it wakes us.
            idle.as_mut().enable();
            if self.in_flight() == 0 {
                return true;
            }
            let sleep = {
                let _ctx = self.registry.cpu.enter();
                tokio::time::sleep_until(deadline)
            };
            tokio::select! {
                () = idle => {}
                () = sleep => return self.in_flight() == 0,
            }
        }
    }

    /// Cancels every live task: queued ones never start, async ones stop at their next
    /// `.await`, running blocking ones are abandoned.
    pub(crate) fn cancel_all(&self) {
        for task in self.live.snapshot() {
            task.cancel();
        }
    }

    /// Gives up on whatever is still live: decided as cancelled and abandoned.
    pub(crate) fn abandon_all(&self) {
        for task in self.live.snapshot() {
            task.force_abandon();
        }
    }

    /// Stops the executor's own machinery at the end of shutdown (a view drops what it still
    /// queues; pools and runtimes are stopped by the registry, which owns them).
    pub(crate) fn stop_executor(&self) {
        if let Executor::View(view) = &self.executor {
            view.close();
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            name: self.name.clone(),
            kind: self.kind,
            threads: self.executor.threads(),
            parallelism: match &self.executor {
                Executor::View(view) => Some(view.parallelism()),
                _ => None,
            },
            capacity: self.admission.capacity(),
            queued: c.queued.load(Ordering::Relaxed),
            active: c.active.load(Ordering::Relaxed),
            in_flight: c.in_flight.load(Ordering::Relaxed),
            waiting: c.submit.waiting.load(Ordering::Relaxed),
            submitted: c.submit.submitted.load(Ordering::Relaxed),
            completed: c.outcomes.completed.load(Ordering::Relaxed),
            panicked: c.outcomes.panicked.load(Ordering::Relaxed),
            cancelled: c.outcomes.cancelled.load(Ordering::Relaxed),
            abandoned: c.outcomes.abandoned.load(Ordering::Relaxed),
            rejected: RejectedCounts {
                queue_full: c.submit.rejected_queue_full.load(Ordering::Relaxed),
                wait_timeout: c.submit.rejected_wait_timeout.load(Ordering::Relaxed),
                shutting_down: c.submit.rejected_shutting_down.load(Ordering::Relaxed),
            },
        }
    }
}
