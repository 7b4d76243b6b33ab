//! The `blocking` kind: a fixed pool of named OS threads with its own FIFO queue.
//!
//! Invariants: the pool owns exactly `threads` threads, created at build and never more (none
//! is ever spawned on demand, none is replaced: every job is contained, so no thread dies);
//! jobs start in the order they were queued; a cancelled queued job is left in the queue as a
//! tombstone that costs a pointer (its work and slot were dropped by the canceller), and the
//! queue is swept of tombstones whenever it grows past twice the pool's capacity, so it never
//! holds more than about that.
//!
//! Every pool thread enters the registry's control runtime for its whole life: closures see a
//! Tokio context (`Handle::current()` works, as in `tokio::task::spawn_blocking`), and futures
//! pinned to the pool are driven with that runtime's `Handle::block_on`, whose IO and time
//! drivers the control thread runs: no user work can delay them.
//!
//! Admission (capacity = threads + queue) happens before a job reaches this queue; the queue
//! itself is therefore unbounded in type but bounded in fact. The workers of views over the
//! pool are jobs too: each takes a slot of the pool's admission while it runs their tasks.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::dispatcher::accounts::Accounts;
use crate::dispatcher::executor::{Executor, Holding, Worker, WorkerHost};
use crate::dispatcher::task::{BlockOn, NewTask, QueuedTask};
use crate::sync::lock;

/// Configuration of a `blocking` dispatcher: a fixed pool of OS threads with a bounded queue.
///
/// ```
/// use bulkheads::BlockingConfig;
/// use std::time::Duration;
/// // 16 threads, 256 queued jobs at most; `run_blocking` callers wait up to 50 ms for room.
/// let legacy_db = BlockingConfig::threads(16).queue(256).max_wait(Duration::from_millis(50));
/// # let _ = legacy_db;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingConfig {
    pub(crate) threads: usize,
    pub(crate) queue: usize,
    pub(crate) max_wait: Duration,
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
}

/// What a pool thread runs.
enum Job {
    /// A task; its work waits in its cell.
    Task(Arc<dyn QueuedTask>),
    /// A step of a view's worker.
    Worker(async_task::Runnable),
}

impl Job {
    fn is_tombstone(&self) -> bool {
        match self {
            Job::Task(t) => t.is_decided(),
            Job::Worker(_) => false,
        }
    }
}

struct Queue {
    jobs: VecDeque<Job>,
    /// Threads waiting on `available`; a push wakes one only when this is non-zero.
    idle: usize,
    /// Set at shutdown: threads exit once `jobs` is empty.
    closed: bool,
}

pub(crate) struct BlockingPool {
    queue: Mutex<Queue>,
    available: Condvar,
    /// `queue.jobs.len()`, readable without the lock by spinning threads. Written under it.
    len: AtomicUsize,
    /// Threads looking for work without sleeping. A push wakes a sleeper only when nobody
    /// spins, and a thread that pops a job wakes a sleeper when the jobs left outnumber the
    /// spinners (each spinner takes one): so a job is never stranded behind a sleeping thread.
    /// A spinner re-checks the queue under the lock after leaving this count, so it either
    /// takes a job or is counted idle before a pusher or popper looks.
    spinning: AtomicUsize,
    live_threads: AtomicUsize,
    /// Threads + queue: the queue is swept of tombstones when it grows past twice this.
    capacity: usize,
    control: tokio::runtime::Handle,
    accounts: Arc<Accounts>,
    /// The threads, joined only when a failed build takes back what it started.
    handles: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// At most this many threads spin at once; the rest sleep at once.
const MAX_SPINNERS: usize = 2;
/// Spin steps before sleeping: 2^0..2^5 pause loops, then `yield_now`s (crossbeam's backoff).
const SPIN_STEPS: u32 = 30;
/// The queue is never swept below this length.
const SWEEP_FLOOR: usize = 64;

impl BlockingPool {
    /// Starts `threads` threads named `<name>-<n>`, and returns once every one runs (so that
    /// `Stats::threads` and the OS agree from the start). On failure, the threads already
    /// started are stopped and joined: nothing is left half-started.
    pub(crate) fn start(
        accounts: Arc<Accounts>,
        threads: usize,
        queue: usize,
        control: tokio::runtime::Handle,
    ) -> std::io::Result<Arc<Self>> {
        let pool = Arc::new(BlockingPool {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                idle: 0,
                closed: false,
            }),
            available: Condvar::new(),
            len: AtomicUsize::new(0),
            spinning: AtomicUsize::new(0),
            live_threads: AtomicUsize::new(0),
            capacity: threads + queue,
            control,
            accounts,
            handles: Mutex::new(Vec::with_capacity(threads)),
        });
        let (arrival, arrivals) = crate::sync::arrivals();
        for n in 0..threads {
            let worker = pool.clone();
            let up = arrival.clone();
            pool.live_threads.fetch_add(1, Ordering::Relaxed);
            let spawned =
                crate::sync::spawn_thread(format!("{}-{n}", pool.accounts.name), move || {
                    let _ctx = worker.control.enter();
                    let _holding = Holding::new(&*worker);
                    up.arrive();
                    drop(up);
                    worker.work();
                });
            match spawned {
                Ok(handle) => lock(&pool.handles).push(handle),
                Err(e) => {
                    pool.live_threads.fetch_sub(1, Ordering::Relaxed);
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
        let swept = {
            let mut q = lock(&self.queue);
            if q.closed {
                // Stopped: nobody would run it. A task is decided as cancelled now rather
                // than left for a caller to wait on forever.
                drop(q);
                if let Job::Task(task) = &job {
                    task.cancel();
                }
                return;
            }
            q.jobs.push_back(job);
            let swept = if q.jobs.len() > SWEEP_FLOOR.max(2 * self.capacity) {
                self.sweep(&mut q)
            } else {
                Vec::new()
            };
            self.len.store(q.jobs.len(), Ordering::Release);
            // A spinner will take it; otherwise wake a sleeper. Further jobs that one spinner
            // cannot take are passed on by `next_job` when it pops (see there).
            // SeqCst pairs with the spinner's SeqCst decrement: see `spinning`.
            let wake = q.idle > 0 && self.spinning.load(Ordering::SeqCst) == 0;
            drop(q);
            if wake {
                self.available.notify_one();
            }
            swept
        };
        drop(swept); // outside the lock
    }

    /// Takes the tombstones out of the queue. Only cancelled tasks' cells are in them (their
    /// work and slot were dropped by the canceller), so dropping them runs no user code.
    fn sweep(&self, q: &mut Queue) -> Vec<Job> {
        let (tombstones, kept): (VecDeque<Job>, VecDeque<Job>) =
            q.jobs.drain(..).partition(Job::is_tombstone);
        q.jobs = kept;
        tombstones.into()
    }

    fn work(self: Arc<Self>) {
        while let Some(job) = self.next_job() {
            // Every job contains its own panics; this guard keeps the thread alive even if
            // our bookkeeping around one ever panicked, and reports it.
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| self.run(job))) {
                self.accounts
                    .report_internal(payload, "a pool thread's job");
            }
        }
        self.live_threads.fetch_sub(1, Ordering::Relaxed);
    }

    fn run(&self, job: Job) {
        match job {
            Job::Task(task) => task.run(self),
            Job::Worker(runnable) => {
                runnable.run();
            }
        }
    }

    fn next_job(&self) -> Option<Job> {
        loop {
            {
                let mut q = lock(&self.queue);
                while let Some(job) = q.jobs.pop_front() {
                    self.len.store(q.jobs.len(), Ordering::Release);
                    if job.is_tombstone() {
                        continue;
                    }
                    // Pass work on: more jobs wait than spinners will take, and someone sleeps.
                    let pass_on = q.idle > 0 && q.jobs.len() > self.spinning.load(Ordering::SeqCst);
                    drop(q);
                    if pass_on {
                        self.available.notify_one();
                    }
                    return Some(job);
                }
                if q.closed {
                    return None;
                }
            }
            // Empty. Spin briefly before sleeping: a job that arrives within microseconds
            // (fan-outs, round trips) is taken without a futex wake on either side.
            if self.spin_for_work() {
                continue;
            }
            let mut q = lock(&self.queue);
            if q.jobs.is_empty() && !q.closed {
                q.idle += 1;
                q = self
                    .available
                    .wait(q)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                q.idle -= 1;
            }
        }
    }

    /// Spins until work shows up (true) or the backoff is spent (false). Leaves the spinning
    /// count before returning, so the caller re-checks under the lock.
    fn spin_for_work(&self) -> bool {
        if self.spinning.fetch_add(1, Ordering::SeqCst) >= MAX_SPINNERS {
            self.spinning.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        let mut found = false;
        for step in 0..SPIN_STEPS {
            if step < 6 {
                for _ in 0..(1u32 << step) {
                    std::hint::spin_loop();
                }
            } else {
                std::thread::yield_now();
            }
            if self.len.load(Ordering::Acquire) > 0 {
                found = true;
                break;
            }
        }
        self.spinning.fetch_sub(1, Ordering::SeqCst);
        found
    }
}

impl BlockOn for BlockingPool {
    fn block_on(&self, fut: Pin<&mut dyn Future<Output = ()>>) {
        self.control.block_on(fut);
    }
}

impl Executor for BlockingPool {
    fn submit<F>(&self, task: NewTask<F>)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.push(Job::Task(task.queued()));
    }

    fn threads(&self) -> usize {
        self.live_threads.load(Ordering::Relaxed)
    }

    fn holds_current_thread(&self) -> bool {
        Holding::held(self)
    }

    fn host(self: &Arc<Self>) -> Arc<dyn WorkerHost> {
        self.clone()
    }

    /// Threads exit once the queue is empty.
    fn close(&self) {
        lock(&self.queue).closed = true;
        self.available.notify_all();
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
