//! The `blocking` kind: a fixed pool of named OS threads with its own FIFO queue.
//!
//! Invariants: the pool owns exactly `threads` threads, created at build and never more (none
//! is ever spawned on demand, none is replaced: a job's panic is caught so no thread dies);
//! jobs start in the order they were queued; a cancelled queued job is left in the queue as a
//! tombstone that costs a pointer, and tombstones are swept once they outnumber the live jobs,
//! so the queue never holds more than about twice its capacity.
//!
//! Admission (capacity = threads + queue) happens before a job reaches this queue; the queue
//! itself is therefore unbounded in type but bounded in fact.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::task::{Completion, TaskCell, TaskFuture};
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
    /// order, before `WaitTimeout`. Zero rejects at once.
    pub fn max_wait(mut self, d: Duration) -> Self {
        self.max_wait = d;
        self
    }
}

/// A closure waiting in a pool queue.
pub(crate) struct Closure<F>(pub F);

/// A future waiting in a pool queue, to be driven to its end on one pool thread.
pub(crate) struct Pinned<F>(pub F);

/// What a pool thread can run: a task, or a view's worker.
pub(crate) trait PoolJob: Send + Sync {
    fn run(self: Arc<Self>, pool: &BlockingPool);
    /// A cancelled task left in the queue: skipped and swept.
    fn is_tombstone(&self) -> bool;
}

impl<F, T> PoolJob for TaskCell<Closure<F>, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn is_tombstone(&self) -> bool {
        self.header().is_decided()
    }

    fn run(self: Arc<Self>, _pool: &BlockingPool) {
        let header = self.header();
        if !header.try_start() {
            return; // cancelled while queued: already decided, its slot already freed
        }
        let core = &header.core;
        let started_at = core.on_start(header);
        let Some(Closure(f)) = self.take_work() else {
            return;
        };
        core.active_enter();
        let ran = {
            let _entered = header.span.enter();
            catch_unwind(AssertUnwindSafe(f))
        };
        core.active_exit();
        core.record_run_time(started_at);
        self.finish(match ran {
            Ok(v) => Completion::Ok(v),
            Err(payload) => Completion::Panicked(payload),
        });
    }
}

impl<F> PoolJob for TaskCell<Pinned<F>, F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn is_tombstone(&self) -> bool {
        self.header().is_decided()
    }

    fn run(self: Arc<Self>, pool: &BlockingPool) {
        let header = self.header();
        if !header.try_start() {
            return;
        }
        let started_at = header.core.on_start(header);
        let Some(Pinned(fut)) = self.take_work() else {
            return;
        };
        // Pinned to this thread until it ends; the cpu runtime's drivers serve its IO and timers.
        pool.runtime
            .block_on(TaskFuture::new(self.clone(), fut, Some(started_at), None));
    }
}

struct Queue {
    jobs: VecDeque<Arc<dyn PoolJob>>,
    /// Threads waiting on `available`; a push wakes one only when this is non-zero.
    idle: usize,
    /// Cancelled jobs still in `jobs` (an estimate: it only decides when to sweep).
    tombstones: usize,
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
    threads: usize,
    runtime: tokio::runtime::Handle,
}

/// At most this many threads spin at once; the rest sleep at once.
const MAX_SPINNERS: usize = 2;
/// Spin steps before sleeping: 2^0..2^5 pause loops, then `yield_now`s (crossbeam's backoff).
const SPIN_STEPS: u32 = 30;

impl BlockingPool {
    /// Starts `threads` threads named `<name>-<n>`. On failure, threads already started exit.
    pub(crate) fn start(
        name: &str,
        threads: usize,
        runtime: tokio::runtime::Handle,
    ) -> std::io::Result<Arc<Self>> {
        let pool = Arc::new(BlockingPool {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                idle: 0,
                tombstones: 0,
                closed: false,
            }),
            available: Condvar::new(),
            len: AtomicUsize::new(0),
            spinning: AtomicUsize::new(0),
            live_threads: AtomicUsize::new(0),
            threads,
            runtime,
        });
        // Each thread reports once it runs (and so carries its OS name), so that when the
        // registry is built every thread exists: `Stats::threads` and `top` agree from the start.
        let (up_tx, up_rx) = std::sync::mpsc::channel::<()>();
        for n in 0..threads {
            let worker = pool.clone();
            let up = up_tx.clone();
            pool.live_threads.fetch_add(1, Ordering::Relaxed);
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{n}"))
                .spawn(move || {
                    let _ = up.send(());
                    worker.work()
                });
            if let Err(e) = spawned {
                pool.live_threads.fetch_sub(1, Ordering::Relaxed);
                pool.close();
                return Err(e);
            }
        }
        drop(up_tx);
        for _ in 0..threads {
            // An error means a thread died before reporting; nothing to wait for then.
            if up_rx.recv().is_err() {
                break;
            }
        }
        Ok(pool)
    }

    /// The runtime whose drivers serve futures run on this pool.
    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// Threads the pool was built with.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    pub(crate) fn live_threads(&self) -> usize {
        self.live_threads.load(Ordering::Relaxed)
    }

    pub(crate) fn push(&self, job: Arc<dyn PoolJob>) {
        let mut q = lock(&self.queue);
        q.jobs.push_back(job);
        self.len.store(q.jobs.len(), Ordering::Release);
        // A spinner will take it; otherwise wake a sleeper. Further jobs that one spinner
        // cannot take are passed on by `next_job` when it pops (see there).
        // SeqCst pairs with the spinner's SeqCst decrement: see `spinning`.
        let wake = q.idle > 0 && self.spinning.load(Ordering::SeqCst) == 0;
        drop(q);
        if wake {
            self.available.notify_one();
        }
    }

    /// A queued job was cancelled. Sweeps the queue once tombstones outnumber live jobs, so a
    /// storm of cancellations cannot grow the queue past about twice its capacity.
    pub(crate) fn on_tombstone(&self) {
        let swept = {
            let mut q = lock(&self.queue);
            q.tombstones += 1;
            if q.tombstones >= 32 && q.tombstones * 2 >= q.jobs.len() {
                let mut swept = Vec::new();
                let mut kept = VecDeque::with_capacity(q.jobs.len());
                for job in q.jobs.drain(..) {
                    if job.is_tombstone() {
                        swept.push(job);
                    } else {
                        kept.push_back(job);
                    }
                }
                q.jobs = kept;
                q.tombstones = 0;
                self.len.store(q.jobs.len(), Ordering::Release);
                swept
            } else {
                Vec::new()
            }
        };
        drop(swept); // outside the lock
    }

    /// Threads exit once the queue is empty.
    pub(crate) fn close(&self) {
        lock(&self.queue).closed = true;
        self.available.notify_all();
    }

    fn work(self: Arc<Self>) {
        while let Some(job) = self.next_job() {
            // The job contains its own panics; this guard keeps the thread alive even if our
            // bookkeeping around it ever panicked.
            let _ = catch_unwind(AssertUnwindSafe(|| job.run(&self)));
        }
        self.live_threads.fetch_sub(1, Ordering::Relaxed);
    }

    fn next_job(&self) -> Option<Arc<dyn PoolJob>> {
        loop {
            {
                let mut q = lock(&self.queue);
                while let Some(job) = q.jobs.pop_front() {
                    self.len.store(q.jobs.len(), Ordering::Release);
                    if job.is_tombstone() {
                        q.tombstones = q.tombstones.saturating_sub(1);
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
