//! A dispatcher: a named place where work runs, with its own admission, counts and metrics.
//!
//! Every kind supports the same four calls:
//!
//! | call | blocking pool | cpu / runtime |
//! |---|---|---|
//! | [`spawn`](Dispatcher::spawn) / [`run`](Dispatcher::run) | the future is driven to its end on one pool thread, with the cpu runtime's IO and time drivers | a task on that runtime |
//! | [`spawn_blocking`](Dispatcher::spawn_blocking) / [`run_blocking`](Dispatcher::run_blocking) | the closure runs on a pool thread | the closure runs as a task on the runtime's workers |
//!
//! `spawn*` returns a [`JoinHandle`] at once; a rejection shows when it is awaited. `run*`
//! waits up to `max_wait` for room, runs the work and returns its value; dropping it cancels.

pub(crate) mod admission;
pub(crate) mod blocking;
pub(crate) mod core;
pub(crate) mod limited;
pub(crate) mod live;
pub(crate) mod runtime;
pub(crate) mod task;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use self::core::DispatcherCore;
use self::task::Joinable;
pub use self::task::{TaskId, TaskInfo};
use crate::error::DispatchError;

/// A handle to one named dispatcher. Cheap to clone (one `Arc`), `Send + Sync`.
///
/// Obtained from [`Dispatchers::get`](crate::Dispatchers::get) or
/// [`Dispatchers::cpu`](crate::Dispatchers::cpu). A handle that outlives its registry rejects
/// everything with [`RejectReason::ShuttingDown`](crate::RejectReason::ShuttingDown).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use bulkheads::{BlockingConfig, Dispatchers};
/// let dispatchers = Dispatchers::builder()
///     .blocking("legacy_db", BlockingConfig::threads(4).queue(16))
///     .build()?;
/// let db = dispatchers.get("legacy_db")?;
///
/// // Call and await.
/// let rows = db.run_blocking(|| 40 + 2).await?;
/// assert_eq!(rows, 42);
///
/// // Fire, then join; name it so it shows in failure reports.
/// let h = db.task("checksum").spawn_blocking(|| "ok");
/// assert_eq!(h.await?, "ok");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Dispatcher {
    pub(crate) core: Arc<DispatcherCore>,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("name", &self.core.name)
            .field("kind", &self.core.kind)
            .finish()
    }
}

/// What kind of dispatcher a [`Dispatcher`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A fixed pool of OS threads with a bounded queue.
    Blocking,
    /// A dedicated Tokio runtime (the registry's `cpu` pool is one).
    Runtime,
    /// A limited-parallelism view over a base; owns no threads.
    Limited,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Blocking => "blocking",
            Kind::Runtime => "runtime",
            Kind::Limited => "limited",
        })
    }
}

impl Dispatcher {
    pub(crate) fn new(core: Arc<DispatcherCore>) -> Self {
        Dispatcher { core }
    }

    /// The dispatcher's name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The dispatcher's kind.
    pub fn kind(&self) -> Kind {
        self.core.kind
    }

    /// A snapshot of the dispatcher's gauges and counters.
    pub fn stats(&self) -> Stats {
        self.core.stats()
    }

    /// A view over this dispatcher that runs at most `parallelism` of its tasks at the same
    /// instant. It costs no threads. A view of a view takes the smaller cap (its tasks count
    /// against both). `parallelism` 0 is taken as 1. The view belongs to the registry: its
    /// shutdown drains and reports it with the rest.
    ///
    /// *Parallelism is not concurrency*: a task suspended at `.await` holds no slot, so a view
    /// of parallelism 2 can have thousands of tasks in flight. To cap those too, declare a
    /// `limited` dispatcher with [`LimitedConfig::max_concurrent`](crate::LimitedConfig::max_concurrent).
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// # let d = bulkheads::Dispatchers::builder().cpu_threads(2).build().unwrap();
    /// use std::sync::Arc;
    /// use tokio::sync::Notify;
    ///
    /// let one_at_a_time = d.cpu().limited(1);
    /// // A task parked at an .await holds no slot...
    /// let parked = Arc::new(Notify::new());
    /// let p = parked.clone();
    /// let waiter = one_at_a_time.spawn(async move { p.notified().await; "woken" });
    /// // ...so a second task runs although the first is still in flight.
    /// assert_eq!(one_at_a_time.run(async { 2 + 2 }).await.unwrap(), 4);
    /// parked.notify_one();
    /// assert_eq!(waiter.await.unwrap(), "woken");
    /// # }
    /// ```
    pub fn limited(&self, parallelism: usize) -> Dispatcher {
        let n = parallelism.max(1);
        let core = &self.core;
        let view = limited::LimitedView::new(n, core.executor.clone());
        let d = Dispatcher::new(Arc::new(DispatcherCore::new(
            format!("{}.limited({n})", core.name).into(),
            Kind::Limited,
            AdmissionConfig::default(),
            self::core::Executor::View(view),
            core.registry.clone(),
        )));
        core.registry.adopt(&d);
        d
    }

    /// Names the next task, for dumps and failure reports.
    ///
    /// ```
    /// # let d = bulkheads::Dispatchers::builder()
    /// #     .blocking("db", bulkheads::BlockingConfig::threads(1)).build().unwrap();
    /// # let db = d.get("db").unwrap();
    /// let vacuum = db.task("nightly-vacuum").spawn_blocking(|| { /* VACUUM */ });
    /// # drop(vacuum);
    /// ```
    pub fn task(&self, name: impl Into<Cow<'static, str>>) -> TaskBuilder<'_> {
        TaskBuilder {
            dispatcher: self,
            name: Some(name.into()),
        }
    }

    /// Spawns a future on this dispatcher and returns at once. A rejection (queue full,
    /// shutting down) shows when the handle is awaited. Dropping the handle detaches the task.
    #[track_caller]
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.unnamed().spawn(fut)
    }

    /// Spawns a blocking closure on this dispatcher and returns at once.
    #[track_caller]
    pub fn spawn_blocking<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.unnamed().spawn_blocking(f)
    }

    /// Runs a future on this dispatcher and returns its output. Waits up to `max_wait` for
    /// room (FIFO), then [`RejectReason::WaitTimeout`](crate::RejectReason::WaitTimeout).
    /// Dropping the returned future cancels: work not started never starts, started work stops
    /// at its next `.await`.
    #[track_caller]
    pub fn run<F>(
        &self,
        fut: F,
    ) -> impl Future<Output = Result<F::Output, DispatchError>> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.unnamed().run(fut)
    }

    /// Runs a blocking closure on this dispatcher and returns its value. Waits up to
    /// `max_wait` for room (FIFO). Dropping the returned future before the closure starts
    /// means it never runs; after it started, it runs to its end and its result is dropped
    /// (counted as abandoned).
    #[track_caller]
    pub fn run_blocking<F, T>(
        &self,
        f: F,
    ) -> impl Future<Output = Result<T, DispatchError>> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.unnamed().run_blocking(f)
    }

    /// The four calls without a name. `#[track_caller]` all the way down keeps the user's
    /// call site as the spawn site.
    fn unnamed(&self) -> TaskBuilder<'_> {
        TaskBuilder {
            dispatcher: self,
            name: None,
        }
    }
}

/// A task about to be submitted with a name; see [`Dispatcher::task`]. Offers the same four
/// calls as [`Dispatcher`].
#[derive(Debug)]
pub struct TaskBuilder<'a> {
    dispatcher: &'a Dispatcher,
    name: Option<Cow<'static, str>>,
}

impl TaskBuilder<'_> {
    /// [`Dispatcher::spawn`] with this task's name.
    #[track_caller]
    pub fn spawn<F>(self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let core = &self.dispatcher.core;
        match core.admit_now() {
            Ok(()) => core.spawn_future(self.name, Location::caller(), fut),
            Err(reason) => core.rejected(core.registry.next_id(), reason),
        }
    }

    /// [`Dispatcher::spawn_blocking`] with this task's name.
    #[track_caller]
    pub fn spawn_blocking<F, T>(self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let core = &self.dispatcher.core;
        match core.admit_now() {
            Ok(()) => core.spawn_closure(self.name, Location::caller(), f),
            Err(reason) => core.rejected(core.registry.next_id(), reason),
        }
    }

    /// [`Dispatcher::run`] with this task's name.
    #[track_caller]
    pub fn run<F>(
        self,
        fut: F,
    ) -> impl Future<Output = Result<F::Output, DispatchError>> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (core, name, location) = (self.dispatcher.core.clone(), self.name, Location::caller());
        async move {
            match core.admit_within_max_wait().await {
                Ok(()) => AbortOnDrop(core.spawn_future(name, location, fut)).await,
                Err(reason) => core.rejected(core.registry.next_id(), reason).await,
            }
        }
    }

    /// [`Dispatcher::run_blocking`] with this task's name.
    #[track_caller]
    pub fn run_blocking<F, T>(
        self,
        f: F,
    ) -> impl Future<Output = Result<T, DispatchError>> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (core, name, location) = (self.dispatcher.core.clone(), self.name, Location::caller());
        async move {
            match core.admit_within_max_wait().await {
                Ok(()) => AbortOnDrop(core.spawn_closure(name, location, f)).await,
                Err(reason) => core.rejected(core.registry.next_id(), reason).await,
            }
        }
    }
}

/// The join handle of a `run*` call: dropping it cancels the task instead of detaching it.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T: Send + 'static> Future for AbortOnDrop<T> {
    type Output = Result<T, DispatchError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort_if_pending();
    }
}

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
    /// Rejected at submission: the error waits to be awaited.
    Rejected(Option<DispatchError>),
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
            state: JoinState::Rejected(Some(err)),
        }
    }

    /// The task's id (rejected tasks get one too).
    pub fn id(&self) -> TaskId {
        self.id
    }

    fn abort_if_pending(&self) {
        if let JoinState::Attached(task) = &self.state {
            task.abort();
        }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, DispatchError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let ready = match &mut self.state {
            JoinState::Attached(task) => std::task::ready!(task.poll_join(cx)),
            JoinState::Rejected(err) => match err.take() {
                Some(e) => Err(e),
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

/// A snapshot of one dispatcher's gauges and counters; see [`Dispatcher::stats`].
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
    /// Rejected at admission, by reason.
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
}

/// Admission of a runtime or a view: an optional in-flight cap and a bounded queue behind it.
/// (A blocking pool's in-flight cap is its thread count; see [`BlockingConfig`](crate::BlockingConfig).)
///
/// Capacity is `max_concurrent + queue`. When it is full, `spawn*` is rejected at once
/// ([`RejectReason::QueueFull`](crate::RejectReason::QueueFull)) and `run*` waits up to
/// `max_wait`, FIFO, then gets [`RejectReason::WaitTimeout`](crate::RejectReason::WaitTimeout).
/// Admitted tasks beyond `max_concurrent` wait to start, in order. Without `max_concurrent`
/// everything is admitted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Admitted, unfinished tasks at most (suspended ones count). `None`: no cap.
    pub max_concurrent: Option<usize>,
    /// Tasks admitted beyond `max_concurrent`, waiting to start.
    pub queue: usize,
    /// How long `run*` callers wait for room; zero rejects at once.
    pub max_wait: std::time::Duration,
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
}

impl RejectedCounts {
    /// All rejections.
    pub fn total(&self) -> u64 {
        self.queue_full + self.wait_timeout + self.shutting_down
    }
}
