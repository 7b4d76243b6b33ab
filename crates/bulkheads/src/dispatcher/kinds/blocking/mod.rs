//! The `blocking` kind: a fixed pool of named OS threads with its own FIFO queue.
//!
//! Invariants: the pool owns exactly `threads` threads, created at build and never more (none
//! is ever spawned on demand, none is replaced: every job is contained, so no thread dies);
//! jobs start in the order they were queued; a cancelled queued job is left in the queue as a
//! tombstone (its work was dropped by the canceller, its slot given back within a budget of
//! one pool capacity: see `Slot::into_tombstone`), so the queue never holds more than about
//! twice the pool's capacity.
//!
//! Every pool thread enters the registry's control runtime for its whole life: closures see a
//! Tokio context (`Handle::current()` works, as in `tokio::task::spawn_blocking`), and futures
//! pinned to the pool are driven with that runtime's `Handle::block_on`, whose IO and time
//! drivers the control thread runs: no user work can delay them.
//!
//! Admission (capacity = threads + queue) happens before a job reaches this queue; the queue
//! itself is therefore unbounded in type but bounded in fact. The workers of views over the
//! pool are jobs too: each takes a slot of the pool's admission while it runs their tasks.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use self::queue::JobQueue;

use crate::dispatcher::accounts::Accounts;
mod queue;

use crate::dispatcher::executor::{
    BusyThreads, Executor, Holding, Worker, WorkerHost, enter_pool_thread,
};
use crate::dispatcher::task::cell::TaskCell;
use crate::dispatcher::task::{BlockOn, NewTask, QueuedTask};
use crate::sync::lock;

/// Configuration of a `blocking` dispatcher: a fixed pool of OS threads with a bounded queue.
///
/// ```
/// use bulkheads::BlockingConfig;
/// use std::time::Duration;
/// // 16 threads, 256 queued jobs at most; `run_blocking` callers wait up to 50 ms for room,
/// // and a job still queued after 100 ms is rejected rather than started late.
/// let legacy_db = BlockingConfig::threads(16)
///     .queue(256)
///     .max_wait(Duration::from_millis(50))
///     .queue_deadline(Duration::from_millis(100));
/// # let _ = legacy_db;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingConfig {
    pub(crate) threads: usize,
    pub(crate) queue: usize,
    pub(crate) max_wait: Duration,
    pub(crate) queue_deadline: Option<Duration>,
}

impl BlockingConfig {
    /// Default queue length: jobs admitted beyond the busy threads.
    pub const DEFAULT_QUEUE: usize = 128;
    /// Most threads a pool may have.
    pub const MAX_THREADS: usize = 4096;
    /// Longest queue a pool may have.
    pub const MAX_QUEUE: usize = 1 << 24;

    /// A pool of `n` threads (1 to 4096), queue [`DEFAULT_QUEUE`](Self::DEFAULT_QUEUE), no
    /// waiting for room (`max_wait` zero).
    pub fn threads(n: usize) -> Self {
        BlockingConfig {
            threads: n,
            queue: Self::DEFAULT_QUEUE,
            max_wait: Duration::ZERO,
            queue_deadline: None,
        }
    }

    /// How many jobs may wait for a thread (0 to 2^24). Beyond that, `spawn*` is rejected at
    /// once with `QueueFull` and `run*` waits up to `max_wait`.
    pub fn queue(mut self, n: usize) -> Self {
        self.queue = n;
        self
    }

    /// How long a `run*` caller waits for room when the pool and its queue are full, in FIFO
    /// order, before `WaitTimeout`. Zero rejects at once. At most one hour.
    pub fn max_wait(mut self, d: Duration) -> Self {
        self.max_wait = d;
        self
    }

    /// A job admitted to the queue that waits longer than `d` for a thread is not started:
    /// its caller gets [`RejectReason::QueueDeadline`](crate::RejectReason::QueueDeadline)
    /// (a `run*` caller at the deadline itself, not when a thread frees). With `max_wait`, this
    /// bounds how long an admitted call can take to start: `max_wait + queue_deadline`. At
    /// most one hour; no deadline unless set.
    pub fn queue_deadline(mut self, d: Duration) -> Self {
        self.queue_deadline = Some(d);
        self
    }
}

/// What a pool thread runs.
enum Job {
    /// A task; its work waits in its cell.
    Task(Arc<dyn QueuedTask>),
    /// A step of a view's worker.
    Worker(async_task::Runnable),
}

impl Job {
    /// The pool stopped before the job ran: a task is decided as cancelled (rather than left
    /// for a caller to wait on forever), a worker dropped.
    fn cancel(self) {
        if let Job::Task(task) = self {
            task.cancel();
            task.leave_queue();
        }
    }
}

pub(crate) struct BlockingPool {
    /// FIFO, lock-free; its length is bounded by admission (capacity = threads + queue) plus
    /// cancelled cells (at most the capacity again, see `Slot::into_tombstone`) plus one
    /// worker per view. See `queue.rs` for how it closes.
    queue: JobQueue<Job>,
    threads: usize,
    control: tokio::runtime::Handle,
    accounts: Arc<Accounts>,
    /// Which threads run a job now (see `Joinable::help`).
    busy: Arc<BusyThreads>,
    /// The threads, joined only when a failed build takes back what it started.
    handles: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl BlockingPool {
    /// Starts `threads` threads named `<name>-<n>`, and returns once every one runs (so that
    /// `Stats::threads` and the OS agree from the start). On failure, the threads already
    /// started are stopped and joined: nothing is left half-started.
    pub(crate) fn start(
        accounts: Arc<Accounts>,
        threads: usize,
        control: tokio::runtime::Handle,
    ) -> std::io::Result<Arc<Self>> {
        let pool = Arc::new(BlockingPool {
            queue: JobQueue::new(threads),
            threads,
            control,
            accounts,
            busy: Arc::new(BusyThreads::new(threads)),
            handles: Mutex::new(Vec::with_capacity(threads)),
        });
        let (arrival, arrivals) = crate::sync::arrivals();
        for n in 0..threads {
            let worker = pool.clone();
            let up = arrival.clone();
            let spawned =
                crate::sync::spawn_thread(format!("{}-{n}", pool.accounts.name), move || {
                    let _ctx = worker.control.enter();
                    // Held by its accounts, which its tasks' cells know too (see
                    // `Joinable::help`).
                    let _holding = Holding::new(&*worker.accounts);
                    enter_pool_thread(Holding::id(&*worker.accounts), worker.busy.clone());
                    up.arrive();
                    drop(up);
                    worker.work(n);
                });
            match spawned {
                Ok(handle) => lock(&pool.handles).push(handle),
                Err(e) => {
                    for _ in n..threads {
                        pool.queue.worker_missing();
                    }
                    pool.close();
                    pool.join();
                    return Err(e);
                }
            }
        }
        drop(arrival);
        arrivals.wait(threads);
        pool.accounts.threads_gauge(threads as f64);
        Ok(pool)
    }

    /// Waits for every thread to exit. Only for a pool that was closed while idle (a failed
    /// build): a running job would make this wait for it.
    pub(crate) fn join(&self) {
        let handles = std::mem::take(&mut *lock(&self.handles));
        for h in handles {
            let _ = h.join();
        }
    }

    fn push(&self, job: Job) {
        if let Some(left) = self.queue.push(job) {
            left.into_iter().for_each(Job::cancel);
        }
    }

    /// Thread `n`'s loop.
    fn work(self: Arc<Self>, n: usize) {
        while let Some(job) = self.queue.pop() {
            self.busy.set(n, true);
            match job {
                Job::Task(task) => self.contained(|| task.run(&*self)),
                Job::Worker(runnable) => self.contained(|| {
                    runnable.run();
                }),
            }
            self.busy.set(n, false);
        }
        self.queue.exited().into_iter().for_each(Job::cancel);
    }

    /// Every job contains its own panics; this guard keeps the thread alive even if our
    /// bookkeeping around one ever panicked, and reports it.
    fn contained(&self, f: impl FnOnce()) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
            self.accounts
                .report_internal(payload, "a pool thread's job");
        }
    }
}

impl BlockOn for BlockingPool {
    fn block_on(&self, fut: Pin<&mut dyn Future<Output = ()>>) {
        self.control.block_on(fut);
    }
}

impl Executor for BlockingPool {
    fn submit<F>(&self, task: NewTask<F>) -> Arc<TaskCell<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let cell = task.queued();
        self.push(Job::Task(cell.clone()));
        cell
    }

    fn threads(&self) -> usize {
        self.queue.workers()
    }

    fn holds_current_thread(&self) -> bool {
        Holding::held(&*self.accounts)
    }

    fn host(self: &Arc<Self>) -> Arc<dyn WorkerHost> {
        self.clone()
    }

    /// Threads exit once the jobs queued before now have run (or been skipped).
    fn close(&self) {
        self.queue.close(self.threads);
    }
}

impl WorkerHost for BlockingPool {
    /// The worker becomes an `async-task` task whose every wake queues it at the pool's tail:
    /// while it waits for a slot of the pool it holds no thread.
    fn spawn_worker(self: Arc<Self>, worker: Worker) {
        let pool = Arc::downgrade(&self);
        let (runnable, task) = async_task::spawn(worker, move |r| {
            // A pool that is gone has stopped: dropping the runnable drops the worker.
            if let Some(pool) = pool.upgrade() {
                pool.push(Job::Worker(r));
            }
        });
        task.detach();
        runnable.schedule();
    }
}
