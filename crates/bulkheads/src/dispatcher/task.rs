//! One task: its header, its state machine, and the cell its caller and its runner share.
//!
//! Invariant: every admitted task is *decided* exactly once — ok, panicked or cancelled — by
//! whoever wins the compare-and-swap out of `QUEUED`/`RUNNING`. The winner counts the outcome
//! and publishes the result (the live set forgets decided tasks lazily). Independently, the
//! *slot* the task occupies (its admission permit, and for a pool its thread) is released
//! exactly once: by the runner when the work has stopped or been dropped — or, for a task
//! cancelled in a pool's queue, by the canceller at once (the pool sweeps the tombstone). A
//! blocking job cancelled while it runs is decided at once (its caller sees `Cancelled`
//! immediately) but keeps its slot until the closure returns: that is what "abandoned" means.
//!
//! Panics reach exactly one place: the join handle while it is attached, the root failure
//! handler otherwise (decided under the cell's lock, so a handle dropped concurrently with the
//! panic cannot make it vanish or appear twice).

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
// A TSC clock where the CPU has a stable one: a quarter of the cost of `clock_gettime` on
// the hot path, where every task reads the clock three times (see docs/design.md).
use quanta::Instant;

use atomic_waker::AtomicWaker;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

use super::core::{DispatcherCore, Outcome};
use crate::error::{DispatchError, PanicPayload, panic_message};
use crate::failure::{Failure, FailureKind};
use crate::sync::atomic::AtomicU8;
use crate::sync::lock;

/// A task's identity, unique within its registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub(crate) u64);

impl TaskId {
    /// The id as a number.
    pub fn as_u64(&self) -> u64 {
        self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Who a task is: id, optional name, and where it was spawned. Shown in errors, failures and
/// dumps as `task 'name' (#42, spawned at src/main.rs:10:5)`.
#[derive(Debug, Clone)]
pub struct TaskInfo {
    /// The task's id.
    pub id: TaskId,
    /// The name given with [`Dispatcher::task`](crate::Dispatcher::task), if any.
    pub name: Option<Cow<'static, str>>,
    /// The spawn site.
    pub location: &'static Location<'static>,
}

impl fmt::Display for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let loc = self.location;
        match &self.name {
            Some(name) => write!(
                f,
                "task '{name}' ({}, spawned at {}:{}:{})",
                self.id,
                loc.file(),
                loc.line(),
                loc.column()
            ),
            None => write!(
                f,
                "task {} (spawned at {}:{}:{})",
                self.id,
                loc.file(),
                loc.line(),
                loc.column()
            ),
        }
    }
}

// Stages (low three bits of `Header::state`).
const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const DONE_OK: u8 = 2;
const DONE_PANICKED: u8 = 3;
const DONE_CANCELLED: u8 = 4;
const STAGE: u8 = 0b111;
// Flags.
/// Set on a running async task asked to stop; its runner decides at its next poll.
const CANCEL_REQUESTED: u8 = 1 << 3;
/// Set with `DONE_CANCELLED` on work cancelled while it ran on and could not be stopped.
const ABANDONED: u8 = 1 << 4;

/// Whether cancelling a running task can stop it (async work, at its next `.await`) or not
/// (a blocking closure, which is abandoned instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkKind {
    Blocking,
    Async,
}

/// What every task carries, whatever its kind.
pub(crate) struct Header {
    pub id: TaskId,
    pub name: Option<Cow<'static, str>>,
    pub location: &'static Location<'static>,
    pub submitted_at: Instant,
    pub work: WorkKind,
    pub core: Arc<DispatcherCore>,
    /// A child of the submitter's span, entered around every poll or run.
    pub span: tracing::Span,
    state: AtomicU8,
}

impl Header {
    pub(crate) fn new(meta: TaskMeta, work: WorkKind, core: Arc<DispatcherCore>) -> Self {
        Header {
            id: meta.id,
            name: meta.name,
            location: meta.location,
            submitted_at: meta.submitted_at,
            work,
            core,
            span: meta.span,
            state: AtomicU8::new(QUEUED),
        }
    }

    pub(crate) fn info(&self) -> TaskInfo {
        TaskInfo {
            id: self.id,
            name: self.name.clone(),
            location: self.location,
        }
    }

    /// `QUEUED -> RUNNING`. False when the task was cancelled first.
    pub(crate) fn try_start(&self) -> bool {
        // AcqRel: pairs with the canceller's CAS so exactly one of the two wins; Acquire also
        // makes the submitter's writes (the work itself) visible to the runner.
        self.state
            .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn cancel_requested(&self) -> bool {
        // Acquire: pairs with the Release in `cancel`; the waker registration that precedes
        // this load makes a missed request impossible (AtomicWaker's protocol).
        self.state.load(Ordering::Acquire) & CANCEL_REQUESTED != 0
    }

    pub(crate) fn is_decided(&self) -> bool {
        self.state.load(Ordering::Acquire) & STAGE >= DONE_OK
    }

    /// Moves a started task to `terminal`. False if it was decided already (abandoned).
    fn decide_started(&self, terminal: u8) -> bool {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur & STAGE != RUNNING {
                return false;
            }
            // Flags are dropped: a decided task needs none but ABANDONED, never set here.
            match self.state.compare_exchange_weak(
                cur,
                terminal,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }
}

/// What the submit path knows about a task before it exists.
pub(crate) struct TaskMeta {
    pub id: TaskId,
    pub name: Option<Cow<'static, str>>,
    pub location: &'static Location<'static>,
    pub submitted_at: Instant,
    pub span: tracing::Span,
}

/// How a task ended, as seen by its runner.
pub(crate) enum Completion<T> {
    Ok(T),
    Panicked(Box<dyn Any + Send + 'static>),
    /// Async work dropped at an `.await` after a cancel request, or by its executor.
    Cancelled,
}

enum Output<T> {
    Pending,
    Ready(Result<T, DispatchError>),
    Taken,
}

struct Inner<W, T> {
    /// The work, while the task waits in a pool queue; taken at start or dropped at cancel.
    work: Option<W>,
    output: Output<T>,
    /// The awaiting caller's waker; set by `poll_join`, taken by `publish`.
    join_waker: Option<Waker>,
    /// Set when the join handle is dropped: from then on a failure goes to the root handler.
    detached: bool,
}

/// The shared state of one task. `W` is the work kept here while queued (a closure or a
/// future waiting for a pool thread), `()` when the executor holds the work.
pub(crate) struct TaskCell<W, T> {
    header: Header,
    inner: Mutex<Inner<W, T>>,
    /// The runner's waker, so that a cancel request wakes a suspended async task.
    run_waker: AtomicWaker,
}

impl<W: Send + 'static, T: Send + 'static> TaskCell<W, T> {
    pub(crate) fn new(header: Header, work: Option<W>) -> Self {
        TaskCell {
            header,
            inner: Mutex::new(Inner {
                work,
                output: Output::Pending,
                join_waker: None,
                detached: false,
            }),
            run_waker: AtomicWaker::new(),
        }
    }

    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    pub(crate) fn take_work(&self) -> Option<W> {
        lock(&self.inner).work.take()
    }

    /// The runner's end: the work has stopped (returned, panicked, or was dropped).
    pub(crate) fn finish(&self, completion: Completion<T>) {
        let core = &self.header.core;
        let (terminal, outcome) = match &completion {
            Completion::Ok(_) => (DONE_OK, Outcome::Ok),
            Completion::Panicked(_) => (DONE_PANICKED, Outcome::Panicked),
            Completion::Cancelled => (DONE_CANCELLED, Outcome::Cancelled { abandoned: false }),
        };
        if let Completion::Panicked(_) = &completion {
            core.metrics.failures_panic.increment(1);
        }
        let won = self.header.decide_started(terminal);
        if won {
            core.count_decided(outcome, false);
        }
        // Counters first, then the slot, then the result: a caller woken by the result that
        // submits again finds the room its task left.
        core.release_slot();
        let result = match completion {
            Completion::Ok(v) => Ok(v),
            Completion::Panicked(payload) => Err(self.panicked(payload)),
            Completion::Cancelled => Err(self.cancelled()),
        };
        if won {
            self.publish(result);
        } else if let Err(e @ DispatchError::Panicked { .. }) = result {
            // Abandoned work that then panicked: its caller already has `Cancelled`.
            self.route_failure(e);
        }
    }

    /// Cancels the task: before start it never starts; async work stops at its next `.await`;
    /// a running blocking closure is abandoned (decided now, left to finish on its thread).
    pub(crate) fn cancel(&self) {
        let mut cur = self.header.state.load(Ordering::Acquire);
        loop {
            match cur & STAGE {
                QUEUED => {
                    if self.cancel_queued() {
                        let core = &self.header.core;
                        core.executor.on_cancelled_in_queue(&core.admission);
                        return;
                    }
                }
                RUNNING if self.header.work == WorkKind::Blocking => {
                    if self.abandon(cur) {
                        return;
                    }
                }
                RUNNING => {
                    if cur & CANCEL_REQUESTED != 0 {
                        return;
                    }
                    // Release: the runner's Acquire load sees the request after its wake.
                    match self.header.state.compare_exchange_weak(
                        cur,
                        cur | CANCEL_REQUESTED,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => {
                            self.run_waker.wake();
                            return;
                        }
                        Err(actual) => {
                            cur = actual;
                            continue;
                        }
                    }
                }
                _ => return,
            }
            cur = self.header.state.load(Ordering::Acquire);
        }
    }

    /// Decides a started task as cancelled and abandoned, whatever its kind (shutdown gives up
    /// on async work that did not stop within the grace period this way).
    pub(crate) fn force_abandon(&self) {
        let mut cur = self.header.state.load(Ordering::Acquire);
        while cur & STAGE == RUNNING {
            if self.abandon(cur) {
                return;
            }
            cur = self.header.state.load(Ordering::Acquire);
        }
    }

    fn abandon(&self, cur: u8) -> bool {
        if self
            .header
            .state
            .compare_exchange(
                cur,
                DONE_CANCELLED | ABANDONED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return false;
        }
        self.header
            .core
            .count_decided(Outcome::Cancelled { abandoned: true }, false);
        self.publish(Err(self.cancelled()));
        true
    }

    /// `QUEUED -> CANCELLED`: the work never starts. Its slot is *not* released here: a pool
    /// releases it at once (it sweeps its queue of tombstones, see `on_cancelled_in_queue`);
    /// on a runtime or a view the runner releases it when it drops the work, so cancelled
    /// tasks still sitting in an executor's queue count against capacity and an abort storm
    /// cannot grow that queue past it.
    pub(crate) fn cancel_queued(&self) -> bool {
        if self
            .header
            .state
            .compare_exchange(QUEUED, DONE_CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        let core = &self.header.core;
        core.count_decided(Outcome::Cancelled { abandoned: false }, true);
        let work = self.take_work();
        self.drop_user(work);
        // A runner waiting at its dispatcher's gate drops the work and leaves the gate's queue.
        self.run_waker.wake();
        self.publish(Err(self.cancelled()));
        true
    }

    fn publish(&self, result: Result<T, DispatchError>) {
        let (waker, unobserved) = {
            let mut inner = lock(&self.inner);
            if inner.detached {
                (None, Some(result))
            } else {
                inner.output = Output::Ready(result);
                (inner.join_waker.take(), None)
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
        match unobserved {
            Some(Err(e @ DispatchError::Panicked { .. })) => self.route_failure(e),
            other => self.drop_user(other),
        }
    }

    /// Drops a user value (work, future, result). A panic from its `Drop` is contained, so it
    /// cannot unwind into a pool thread or a runner, and reported like any other panic: never
    /// silent.
    pub(crate) fn drop_user<V>(&self, value: V) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value))) {
            self.report_drop_panic(payload);
        }
    }

    fn report_drop_panic(&self, payload: Box<dyn Any + Send + 'static>) {
        self.header.core.metrics.failures_panic.increment(1);
        let failure = Failure {
            dispatcher: self.header.core.name.clone(),
            task: self.header.info(),
            kind: FailureKind::Panic,
            message: format!(
                "{} (while dropping the task's work or result)",
                panic_message(&*payload)
            ),
        };
        self.header.core.registry.report_failure(&failure);
    }

    /// Drops the runner's pinned future in place, reporting a panic from its `Drop`.
    fn drop_pinned<F>(&self, mut fut: Pin<&mut Option<F>>) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || fut.set(None))) {
            self.report_drop_panic(payload);
        }
    }

    fn route_failure(&self, err: DispatchError) {
        if let DispatchError::Panicked { message, .. } = err {
            let failure = Failure {
                dispatcher: self.header.core.name.clone(),
                task: self.header.info(),
                kind: FailureKind::Panic,
                message,
            };
            self.header.core.registry.report_failure(&failure);
        }
    }

    fn panicked(&self, payload: Box<dyn Any + Send + 'static>) -> DispatchError {
        DispatchError::Panicked {
            dispatcher: self.header.core.name.clone(),
            task: self.header.info(),
            message: panic_message(&*payload),
            payload: PanicPayload::new(payload),
        }
    }

    fn cancelled(&self) -> DispatchError {
        DispatchError::Cancelled {
            dispatcher: self.header.core.name.clone(),
            task: self.header.info(),
        }
    }
}

/// The join side of a task, type-erased over the work it carries.
pub(crate) trait Joinable<T>: Send + Sync {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T, DispatchError>>;
    fn abort(&self);
    fn is_finished(&self) -> bool;
    fn detach(&self);
}

impl<W: Send + 'static, T: Send + 'static> Joinable<T> for TaskCell<W, T> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T, DispatchError>> {
        let mut inner = lock(&self.inner);
        match std::mem::replace(&mut inner.output, Output::Taken) {
            Output::Ready(r) => Poll::Ready(r),
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

    fn is_finished(&self) -> bool {
        self.header.is_decided()
    }

    fn detach(&self) {
        let pending = {
            let mut inner = lock(&self.inner);
            inner.detached = true;
            inner.join_waker = None;
            std::mem::replace(&mut inner.output, Output::Taken)
        };
        match pending {
            Output::Ready(Err(e @ DispatchError::Panicked { .. })) => self.route_failure(e),
            other => self.drop_user(other),
        }
    }
}

/// What the live set and shutdown can do to any task.
pub(crate) trait LiveTask: Send + Sync {
    fn cancel(&self);
    fn force_abandon(&self);
    fn is_decided(&self) -> bool;
}

impl<W: Send + 'static, T: Send + 'static> LiveTask for TaskCell<W, T> {
    fn cancel(&self) {
        TaskCell::cancel(self)
    }
    fn force_abandon(&self) {
        TaskCell::force_abandon(self)
    }
    fn is_decided(&self) -> bool {
        self.header.is_decided()
    }
}

pin_project_lite::pin_project! {
    /// Drives async work (or a closure wrapped as one poll) for any executor: starts it,
    /// checks for cancellation before each poll, catches panics, counts activity, and decides
    /// the task when the work ends or the executor drops it.
    pub(crate) struct TaskFuture<W, F>
    where
        W: Send,
        W: 'static,
        F: Future,
        F::Output: Send,
        F::Output: 'static,
    {
        cell: Arc<TaskCell<W, F::Output>>,
        #[pin]
        fut: Option<F>,
        // When the work started; `None` until then.
        started: Option<Instant>,
        // The in-flight cap of a runtime or view with `max_concurrent`: passed before start,
        // held until the work ends.
        gate: Option<Gate>,
        done: bool,
    }

    impl<W, F> PinnedDrop for TaskFuture<W, F>
    where
        W: Send,
        W: 'static,
        F: Future,
        F::Output: Send,
        F::Output: 'static,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.done {
                return;
            }
            // The executor dropped us (its runtime shut down, or a view was torn down).
            if this.started.is_some() {
                this.cell.drop_pinned(this.fut);
                this.cell.finish(Completion::Cancelled);
            } else {
                // Not started: decide it unless a canceller did, and free its slot (the
                // canceller of a queued task leaves that to us).
                let _ = this.cell.cancel_queued();
                this.cell.drop_pinned(this.fut);
                this.cell.header().core.release_slot();
            }
        }
    }
}

impl<W, F> TaskFuture<W, F>
where
    W: Send + 'static,
    F: Future,
    F::Output: Send + 'static,
{
    /// `started` is the start instant when the caller already moved the task to `RUNNING`;
    /// `gate` the in-flight cap to pass before starting, if any.
    pub(crate) fn new(
        cell: Arc<TaskCell<W, F::Output>>,
        fut: F,
        started: Option<Instant>,
        gate: Option<Arc<Semaphore>>,
    ) -> Self {
        TaskFuture {
            cell,
            fut: Some(fut),
            started,
            gate: gate.map(Gate::join),
            done: false,
        }
    }
}

impl<W, F> Future for TaskFuture<W, F>
where
    W: Send + 'static,
    F: Future,
    F::Output: Send + 'static,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(());
        }
        let header = this.cell.header();
        let started_at = match *this.started {
            Some(at) => at,
            None => {
                if let Some(gate) = this.gate.as_mut() {
                    // Register first: a cancel while we wait at the gate wakes us.
                    this.cell.run_waker.register(cx.waker());
                    match gate.poll_pass(cx, header) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(true) => {}
                        Poll::Ready(false) => {
                            // Cancelled while waiting (the canceller decided it; this call
                            // is then a no-op), or the gate is gone.
                            let _ = this.cell.cancel_queued();
                            *this.done = true;
                            this.cell.drop_pinned(this.fut);
                            header.core.release_slot();
                            return Poll::Ready(());
                        }
                    }
                }
                if !header.try_start() {
                    // Cancelled while queued: the canceller decided it; the slot is ours to free.
                    *this.done = true;
                    this.cell.drop_pinned(this.fut);
                    header.core.release_slot();
                    return Poll::Ready(());
                }
                let at = header.core.on_start(header);
                *this.started = Some(at);
                at
            }
        };
        // Register before checking: a cancel request after this point wakes us again.
        this.cell.run_waker.register(cx.waker());
        // Decided already means abandoned by shutdown: stop at this poll too.
        if header.cancel_requested() || header.is_decided() {
            *this.done = true;
            this.cell.drop_pinned(this.fut);
            *this.gate = None;
            this.cell.finish(Completion::Cancelled);
            return Poll::Ready(());
        }
        let Some(fut) = this.fut.as_mut().as_pin_mut() else {
            *this.done = true;
            return Poll::Ready(());
        };
        let core = &header.core;
        core.active_enter();
        let polled = {
            let _entered = header.span.enter();
            catch_unwind(AssertUnwindSafe(|| fut.poll(cx)))
        };
        core.active_exit();
        let completion = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(v)) => Completion::Ok(v),
            Err(payload) => Completion::Panicked(payload),
        };
        *this.done = true;
        this.cell.drop_pinned(this.fut);
        *this.gate = None;
        core.record_run_time(started_at);
        this.cell.finish(completion);
        Poll::Ready(())
    }
}

/// Waiting for a permit of the in-flight cap.
type Acquire = dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send;

/// A task's pass through its dispatcher's in-flight cap.
pub(crate) struct Gate {
    sem: Arc<Semaphore>,
    acquire: Option<Pin<Box<Acquire>>>,
    /// Held from start to end; dropping it lets the next queued task start.
    permit: Option<OwnedSemaphorePermit>,
}

impl Gate {
    /// Joins the gate's FIFO queue now, at submission, so tasks pass it in the order they
    /// were submitted, not in the order an executor first polls them (Tokio runs the newest
    /// task first from its LIFO slot). The real waker replaces the no-op one at the first poll.
    fn join(sem: Arc<Semaphore>) -> Gate {
        let mut acquire: Pin<Box<Acquire>> = Box::pin(sem.clone().acquire_owned());
        let mut cx = Context::from_waker(Waker::noop());
        let permit = match acquire.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(permit)) => Some(permit),
            _ => None,
        };
        Gate {
            sem,
            acquire: if permit.is_some() {
                None
            } else {
                Some(acquire)
            },
            permit,
        }
    }

    /// Ready(true) once passed; Ready(false) when the task was cancelled while waiting.
    fn poll_pass(&mut self, cx: &mut Context<'_>, header: &Header) -> Poll<bool> {
        if self.permit.is_some() {
            return Poll::Ready(true);
        }
        if header.is_decided() {
            return Poll::Ready(false);
        }
        let sem = &self.sem;
        let acquire = self
            .acquire
            .get_or_insert_with(|| Box::pin(sem.clone().acquire_owned()));
        match acquire.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(permit)) => {
                self.acquire = None;
                self.permit = Some(permit);
                Poll::Ready(true)
            }
            // The gate is never closed; treat it as a cancellation if it ever were.
            Poll::Ready(Err(_)) => Poll::Ready(false),
        }
    }
}

/// A closure as a future that runs it in its first poll: how blocking work runs on a Tokio
/// runtime's workers or in a view.
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

#[cfg(all(test, bulkheads_loom))]
mod loom_tests {
    //! The task state machine under loom: a runner starting and finishing a blocking job races
    //! a canceller. Whatever the interleaving, the task is decided exactly once, its slot is
    //! released exactly once (the admission capacity comes back whole), and the caller's result
    //! agrees with the counts.
    use std::panic::Location;
    use std::sync::{Arc, OnceLock};

    use super::*;
    use crate::dispatcher::blocking::Closure;
    use crate::dispatcher::core::{DispatcherCore, Executor, RegistryShared};
    use crate::dispatcher::{AdmissionConfig, Kind};

    fn runtime() -> tokio::runtime::Handle {
        static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
        RT.get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        })
        .handle()
        .clone()
    }

    /// A dispatcher with capacity 1, and one admitted blocking task on it, not started.
    fn one_task() -> (Arc<DispatcherCore>, Arc<TaskCell<Closure<fn() -> u8>, u8>>) {
        let handle = runtime();
        let registry = Arc::new(RegistryShared::new(None, handle.clone()));
        let core = Arc::new(DispatcherCore::new(
            "loom".into(),
            Kind::Runtime,
            AdmissionConfig {
                max_concurrent: Some(1),
                queue: 0,
                max_wait: std::time::Duration::ZERO,
            },
            Executor::Tokio(handle),
            registry,
        ));
        core.admit_now().unwrap();
        let meta = core.meta(None, Location::caller());
        let job: fn() -> u8 = || 7;
        let cell = core.register(meta, WorkKind::Blocking, Some(Closure(job)));
        (core, cell)
    }

    /// What a runner on a runtime does with the task (`TaskFuture` around a closure): a task
    /// cancelled before it started is decided by the canceller, and its slot freed here.
    fn run(cell: &TaskCell<Closure<fn() -> u8>, u8>) {
        if !cell.header().try_start() {
            cell.header().core.release_slot();
            return;
        }
        if let Some(Closure(f)) = cell.take_work() {
            cell.finish(Completion::Ok(f()));
        }
    }

    fn check_exactly_once(core: &DispatcherCore, cell: &TaskCell<Closure<fn() -> u8>, u8>) {
        let s = core.stats();
        assert_eq!(s.completed + s.cancelled, 1, "{s:?}");
        assert_eq!(s.in_flight, 0, "{s:?}");
        assert!(cell.header().is_decided());
        // The slot came back exactly once: one admission fits, a second does not.
        assert!(core.admission.try_admit().is_ok());
        assert!(core.admission.try_admit().is_err());
        let waker = futures_noop_waker();
        let mut cx = Context::from_waker(&waker);
        match Joinable::poll_join(cell, &mut cx) {
            Poll::Ready(Ok(7)) => assert_eq!(s.completed, 1),
            Poll::Ready(Err(e)) => {
                assert!(e.is_cancelled());
                assert_eq!(s.cancelled, 1);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn futures_noop_waker() -> Waker {
        Waker::noop().clone()
    }

    #[test]
    fn loom_cancel_races_start_and_finish() {
        loom::model(|| {
            let (core, cell) = one_task();
            let runner = {
                let cell = cell.clone();
                loom::thread::spawn(move || run(&cell))
            };
            cell.cancel();
            runner.join().unwrap();
            check_exactly_once(&core, &cell);
        });
    }

    #[test]
    fn loom_two_cancellers_and_a_runner() {
        loom::model(|| {
            let (core, cell) = one_task();
            let runner = {
                let cell = cell.clone();
                loom::thread::spawn(move || run(&cell))
            };
            let other = {
                let cell = cell.clone();
                loom::thread::spawn(move || cell.cancel())
            };
            cell.cancel();
            runner.join().unwrap();
            other.join().unwrap();
            check_exactly_once(&core, &cell);
        });
    }
}
