//! The public handle of a dispatcher: [`Dispatcher`], its four calls and its views.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::join::JoinHandle;
use super::kind::Kind;
use super::kinds::limited::LimitedConfig;
use super::spawn::DispatcherCore;
use super::stats::Stats;
use super::task::id::TaskInfo;
use super::task_builder::TaskBuilder;
use crate::error::{ConfigError, ConfigProblem, DispatchError};
use crate::supervisor::failure::{Failure, FailureKind};

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
            .field("name", self.core.name())
            .field("kind", &self.core.kind())
            .finish()
    }
}

impl Dispatcher {
    pub(crate) fn new(core: Arc<DispatcherCore>) -> Self {
        Dispatcher { core }
    }

    /// The dispatcher's name.
    pub fn name(&self) -> &str {
        self.core.name()
    }

    /// The dispatcher's kind.
    pub fn kind(&self) -> Kind {
        self.core.kind()
    }

    /// A snapshot of the dispatcher's gauges and counters.
    pub fn stats(&self) -> Stats {
        self.core.stats()
    }

    /// How long `run*` and [`reserve`](Self::reserve) wait for room when the dispatcher is
    /// full (its `max_wait`); zero when they are rejected at once, as `spawn*` always is.
    pub fn max_wait(&self) -> std::time::Duration {
        self.core.admission.max_wait()
    }

    /// How long admitted work may stay queued before it is rejected instead of started (its
    /// `queue_deadline`), if it has one.
    pub fn queue_deadline(&self) -> Option<std::time::Duration> {
        self.core.accounts.queue_deadline
    }

    /// A view over this dispatcher that runs at most `parallelism` of its tasks at the same
    /// instant. It costs no threads. A view of a view takes the smaller cap (its tasks count
    /// against both), and a view's running work counts against its base's capacity. The view
    /// belongs to the registry: its shutdown drains and reports it with the rest, also after
    /// the view's handles are dropped (tasks still running then stay in dumps and are
    /// drained or cancelled by shutdown). Views are named `<base>.limited(<n>)`.
    ///
    /// *Parallelism is not concurrency*: a task suspended at `.await` holds no slot, so a view
    /// of parallelism 2 can have thousands of tasks in flight. To cap those too, declare a
    /// `limited` dispatcher with [`LimitedConfig::max_concurrent`](crate::LimitedConfig::max_concurrent).
    ///
    /// # Panics
    ///
    /// If `parallelism` is 0 or above [`LimitedConfig::MAX_PARALLELISM`], as a configuration
    /// would be refused; [`try_limited`](Self::try_limited) returns the error instead.
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
    #[track_caller]
    pub fn limited(&self, parallelism: usize) -> Dispatcher {
        match self.try_limited(parallelism) {
            Ok(view) => view,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`limited`](Self::limited), with a [`ConfigError`] instead of a panic for a parallelism
    /// of 0 or above [`LimitedConfig::MAX_PARALLELISM`].
    ///
    /// ```
    /// # let d = bulkheads::Dispatchers::builder().cpu_threads(1).build().unwrap();
    /// let err = d.cpu().try_limited(0).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid bulkheads configuration: cpu.limited(0): parallelism must be between 1 and 4096, got 0"
    /// );
    /// ```
    pub fn try_limited(&self, parallelism: usize) -> Result<Dispatcher, ConfigError> {
        if !(1..=LimitedConfig::MAX_PARALLELISM).contains(&parallelism) {
            return Err(ConfigError::Invalid(vec![ConfigProblem::new(
                format!("{}.limited({parallelism})", self.name()),
                format!(
                    "parallelism must be between 1 and {}, got {parallelism}",
                    LimitedConfig::MAX_PARALLELISM
                ),
            )]));
        }
        Ok(Dispatcher::new(self.core.make_view(parallelism)))
    }

    /// Names the next task, for errors and failure reports.
    ///
    /// ```
    /// # let d = bulkheads::Dispatchers::builder()
    /// #     .blocking("db", bulkheads::BlockingConfig::threads(1)).build().unwrap();
    /// # let db = d.get("db").unwrap();
    /// let vacuum = db.task("nightly-vacuum").spawn_blocking(|| { /* VACUUM */ });
    /// # drop(vacuum);
    /// ```
    pub fn task(&self, name: impl Into<Cow<'static, str>>) -> TaskBuilder<'_> {
        TaskBuilder::new(&self.core, Some(name.into()))
    }

    /// The four calls for a task named `name` (if any) in the scope or supervisor at `path`.
    pub(crate) fn child(&self, name: Option<Cow<'static, str>>, path: Arc<str>) -> TaskBuilder<'_> {
        TaskBuilder::new(&self.core, name).in_parent(path)
    }

    /// Hands `failure` to the root handler (an error is counted here; a panic was counted
    /// when it was caught), as a failure nobody will observe.
    pub(crate) fn report_failure(&self, failure: Failure) {
        self.core.accounts.report_child_failure(failure);
    }

    /// Runs `f`, a call into user code made on this dispatcher's behalf outside any task (a
    /// tower layer's metrics recorder counting an HTTP response, say), and contains its panic
    /// as the dispatcher contains its tasks' panics: counted in
    /// `bulkheads_failures_total{kind="panic"}` and reported to the root failure handler as a
    /// failure of task #0, spawned at the line that called `contain`, with the message
    /// `"<panic message> (<context>)"`. Returns `f`'s value, or `None` if it panicked.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # std::panic::set_hook(Box::new(|_| {}));
    /// let (tx, failures) = std::sync::mpsc::channel();
    /// let tx = std::sync::Mutex::new(tx);
    /// let d = bulkheads::Dispatchers::builder()
    ///     .blocking("db", bulkheads::BlockingConfig::threads(1))
    ///     .on_failure(move |f| tx.lock().unwrap().send(f.message.clone()).unwrap())
    ///     .build()?;
    /// let db = d.get("db")?;
    /// assert_eq!(db.contain("in my recorder", || 42), Some(42));
    /// assert_eq!(db.contain("in my recorder", || -> u32 { panic!("boom") }), None);
    /// assert_eq!(failures.recv()?, "boom (in my recorder)");
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn contain<R>(&self, context: &str, f: impl FnOnce() -> R) -> Option<R> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(value) => Some(value),
            Err(payload) => {
                let task = TaskInfo::new(
                    super::task::id::TaskId(0),
                    None,
                    std::panic::Location::caller(),
                );
                self.core.accounts.report_panic(&task, payload, context);
                None
            }
        }
    }

    /// Counts a panic caught outside a task (a scope's body), in `bulkheads_failures_total`.
    pub(crate) fn count_panic(&self) {
        self.core.accounts.count_failure();
    }

    /// Reports a failure a scope or supervisor observed in a child of this dispatcher to the
    /// registry's root failure handler (counted in `bulkheads_failures_total`).
    pub(crate) fn report_child_failure(
        &self,
        task: TaskInfo,
        kind: FailureKind,
        message: String,
        restarting: bool,
    ) {
        let mut failure = Failure::new(self.core.name().clone(), task, kind, message);
        failure.restarting = restarting;
        self.core.accounts.report_child_failure(failure);
    }

    /// The paths of the registry's scopes running now.
    pub(crate) fn open_scopes(&self) -> Vec<Arc<str>> {
        self.core.shared.open_scopes()
    }

    /// Marks a scope as running (`true`) or ended (`false`), for dumps.
    pub(crate) fn scope_running(&self, path: &Arc<str>, running: bool) {
        if running {
            self.core.shared.scope_opened(path);
        } else {
            self.core.shared.scope_closed(path);
        }
    }

    /// A number for a new scope's path, unique in the registry.
    pub(crate) fn next_scope_id(&self) -> u64 {
        self.core.shared.ids.next().as_u64()
    }

    /// The registry's control runtime: where library-owned loops (supervisors) and timers run.
    pub(crate) fn control(&self) -> &tokio::runtime::Handle {
        &self.core.shared.control
    }

    /// Spawns a future on this dispatcher and returns at once. A rejection (queue full,
    /// shutting down) shows when the handle is awaited. Dropping the handle detaches the task.
    ///
    /// Work that waits for what it spawns on its *own* dispatcher should use [`run`](Self::run)
    /// instead: a future spawned on a full pool by that pool's own work, or on a runtime with
    /// `max_concurrent` by that runtime's own tasks, waits for a slot its awaiter holds
    /// (`run` runs such work inline; closures from [`spawn_blocking`](Self::spawn_blocking)
    /// awaited on their own pool's thread run there too).
    #[track_caller]
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        TaskBuilder::new(&self.core, None).spawn(fut)
    }

    /// Spawns a blocking closure on this dispatcher and returns at once.
    ///
    /// On a blocking pool, a handle awaited (or `block_on`-ed) on one of that pool's own
    /// threads while the closure is still queued runs the closure there and then: queued
    /// behind its awaiter, it might never start otherwise. (A *future* spawned on a full pool
    /// and awaited from that pool's threads still waits for a free thread.)
    #[track_caller]
    pub fn spawn_blocking<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        TaskBuilder::new(&self.core, None).spawn_blocking(f)
    }

    /// Runs a future on this dispatcher and returns its output. Waits up to `max_wait` for
    /// room (FIFO), then [`RejectReason::WaitTimeout`](crate::RejectReason::WaitTimeout).
    /// Dropping the returned future cancels: work not started never starts, started work stops
    /// at its next `.await`. Work that was inside a poll when its caller left (a blocking call
    /// in an async handler, say) and completes in that poll is counted as cancelled and
    /// abandoned, like a blocking job left to finish, and its value is dropped. (An aborted
    /// [`JoinHandle`](crate::JoinHandle) still awaited gets such a value, as with Tokio.)
    ///
    /// Awaited from work that holds a slot of this same dispatcher (a future pinned to this
    /// pool, a task of this view, a task of this runtime when it has a `max_concurrent` cap),
    /// the future runs inline on the caller's thread: it could not start behind the caller's
    /// own slot, and the caller's slot already counts it.
    ///
    /// On a blocking pool the future is driven on a pool thread, with the registry's control
    /// runtime current (its timers and IO are served by the control thread). A future made
    /// before the call belongs to the runtime it was made in: `pool.run(tokio::time::sleep(d))`
    /// arms its timer in the caller's runtime; write `pool.run(async move { sleep(d).await })`
    /// to make it on the pool. A task spawned with `tokio::spawn` from inside such a future
    /// runs on the control thread: spawn it on a dispatcher instead.
    #[track_caller]
    pub fn run<F>(
        &self,
        fut: F,
    ) -> impl Future<Output = Result<F::Output, DispatchError>> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        TaskBuilder::new(&self.core, None).run(fut)
    }

    /// Runs a blocking closure on this dispatcher and returns its value. Waits up to
    /// `max_wait` for room (FIFO). Dropping the returned future before the closure starts
    /// means it never runs; after it started, it runs to its end and its result is dropped
    /// (counted as abandoned).
    ///
    /// Awaited (or `block_on`-ed) from a thread of this same pool, a task of this same view or
    /// of this same capped runtime, the closure runs inline on that thread, so a job that
    /// waits for more work on its own pool completes instead of hanging the pool. (So does a
    /// closure *spawned* on a pool and awaited from one of that pool's threads: see
    /// [`spawn_blocking`](Self::spawn_blocking).)
    ///
    /// The closure runs with a Tokio context entered, so `Handle::current()` works on every
    /// kind. On a blocking pool, `Handle::current().block_on(..)` works as in Tokio's own
    /// `spawn_blocking`; on `cpu`, a runtime or a view over them the closure runs on an async
    /// worker, where Tokio refuses `block_on` ("Cannot start a runtime from within a runtime",
    /// reported as [`Panicked`](crate::DispatchError::Panicked)).
    #[track_caller]
    pub fn run_blocking<F, T>(
        &self,
        f: F,
    ) -> impl Future<Output = Result<T, DispatchError>> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        TaskBuilder::new(&self.core, None).run_blocking(f)
    }
}

/// Compile-time checks of what the docs promise: handles cross threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Dispatcher>();
    send_sync::<JoinHandle<u64>>();
    send_sync::<DispatchError>();
};
