//! The `limited` kind: a view over a base that runs at most `parallelism` of its tasks at the
//! same instant, owns no threads, and keeps FIFO order among its runnable tasks.
//!
//! Contract (kotlinx.coroutines' `LimitedDispatcher`, the model): *parallelism, not
//! concurrency*. A task suspended at `.await` holds no slot; only being polled (or run, for a
//! blocking closure) does. The view never hands its tasks to the base directly. It keeps its own
//! queue of runnable tasks (`async_task::Runnable`s, whose schedule function pushes them here)
//! and a count of *workers*, at most `parallelism`. Submitting pushes the task, then starts a
//! worker on the base if fewer than `parallelism` run. A worker pops and runs tasks one after
//! another; after a batch of [`BATCH`] tasks, or when Tokio's cooperative budget is spent, it
//! yields to the base (keeping its slot), so other views and tasks on the same base progress.
//! When the queue is empty it gives its slot back.
//!
//! The lost-wakeup race every such design must close (a task pushed between a worker's "queue
//! empty" and its "give the slot back") cannot happen here: both steps, and the push with its
//! "start a worker?" decision, happen under one lock ([`SlotQueue`]). A loom model checks it
//! (`RUSTFLAGS="--cfg bulkheads_loom" cargo test -p bulkheads --lib loom`).
//!
//! A worker is a Tokio task on a runtime base, a runnable of the parent view on a view base
//! (so a view of a view takes the smaller cap), and a pool job on a blocking-pool base, which
//! re-queues itself at the pool's tail after each batch.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use super::blocking::{BlockingPool, PoolJob};
use super::core::Executor;

#[cfg(bulkheads_loom)]
use loom::sync::Mutex as SlotMutex;
#[cfg(not(bulkheads_loom))]
use std::sync::Mutex as SlotMutex;

/// Tasks a worker runs before it gives the base a turn (kotlinx.coroutines uses 16 too).
pub const BATCH: usize = 16;

/// Configuration of a `limited` dispatcher: a view over a base.
///
/// ```
/// use bulkheads::LimitedConfig;
/// // At most 2 thumbnails rendered at once; at most 64 admitted, 1024 more queued.
/// let thumbnails = LimitedConfig::parallelism(2).max_concurrent(64).queue(1024);
/// # let _ = thumbnails;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitedConfig {
    pub(crate) parallelism: usize,
    pub(crate) admission: super::AdmissionConfig,
}

impl LimitedConfig {
    /// Most tasks a view may run at once.
    pub const MAX_PARALLELISM: usize = 4096;

    /// A view running at most `n` (1 to 4096) of its tasks at the same instant, with no cap
    /// on how many it admits.
    pub fn parallelism(n: usize) -> Self {
        LimitedConfig {
            parallelism: n,
            admission: super::AdmissionConfig::default(),
        }
    }

    /// Caps admitted, unfinished tasks (suspended ones included) at `n`; see
    /// [`AdmissionConfig`](super::AdmissionConfig).
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.admission.max_concurrent = Some(n);
        self
    }

    /// Tasks admitted beyond `max_concurrent`, waiting to start.
    pub fn queue(mut self, n: usize) -> Self {
        self.admission.queue = n;
        self
    }

    /// How long `run*` callers wait for room when full.
    pub fn max_wait(mut self, d: std::time::Duration) -> Self {
        self.admission.max_wait = d;
        self
    }
}

impl From<usize> for LimitedConfig {
    fn from(parallelism: usize) -> Self {
        LimitedConfig::parallelism(parallelism)
    }
}

/// A FIFO queue with a count of workers draining it, at most `limit`. The whole protocol is
/// these two methods and one lock.
pub(crate) struct SlotQueue<T> {
    state: SlotMutex<SlotState<T>>,
    limit: usize,
}

struct SlotState<T> {
    items: VecDeque<T>,
    /// Workers holding a slot: running an item, or between items, or yielded to the base.
    workers: usize,
    closed: bool,
}

/// What a push asks of the caller.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed<T> {
    /// Queued; a worker holding a slot will take it.
    Queued,
    /// Queued, and a slot was taken for a new worker: the caller must start it.
    StartWorker,
    /// The queue is closed: the item is handed back.
    Closed(T),
}

impl<T> SlotQueue<T> {
    pub(crate) fn new(limit: usize) -> Self {
        SlotQueue {
            state: SlotMutex::new(SlotState {
                items: VecDeque::new(),
                workers: 0,
                closed: false,
            }),
            limit,
        }
    }

    fn lock(&self) -> impl std::ops::DerefMut<Target = SlotState<T>> + '_ {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn push(&self, item: T) -> Pushed<T> {
        let mut s = self.lock();
        if s.closed {
            return Pushed::Closed(item);
        }
        s.items.push_back(item);
        // Decided under the same lock as the worker's give-back: see the module docs.
        if s.workers < self.limit {
            s.workers += 1;
            Pushed::StartWorker
        } else {
            Pushed::Queued
        }
    }

    /// The next item for a worker, or `None`: then the queue was empty and the worker's slot
    /// has been given back (the worker must stop).
    pub(crate) fn pop(&self) -> Option<T> {
        let mut s = self.lock();
        let item = s.items.pop_front();
        if item.is_none() {
            s.workers -= 1;
        }
        item
    }

    /// Closes the queue and hands back what it held.
    pub(crate) fn close(&self) -> VecDeque<T> {
        let mut s = self.lock();
        s.closed = true;
        std::mem::take(&mut s.items)
    }

    #[cfg(any(test, bulkheads_loom))]
    pub(crate) fn workers(&self) -> usize {
        self.lock().workers
    }

    #[cfg(bulkheads_loom)]
    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }
}

/// A view: its runnable queue, its worker slots, and the base its workers run on.
pub(crate) struct LimitedView {
    queue: SlotQueue<async_task::Runnable>,
    base: Executor,
}

impl LimitedView {
    pub(crate) fn new(parallelism: usize, base: Executor) -> Arc<Self> {
        Arc::new(LimitedView {
            queue: SlotQueue::new(parallelism),
            base,
        })
    }

    pub(crate) fn parallelism(&self) -> usize {
        self.queue.limit
    }

    /// Runs `fut` as a task of this view: counted against its parallelism, nothing else.
    /// Admission and accounting happened before (the spawn path, or a child view's worker).
    pub(crate) fn spawn<F>(self: &Arc<Self>, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let view = self.clone();
        let (runnable, task) = async_task::spawn(fut, move |r| view.schedule(r));
        // The task's result is `()`; our own cell carries the real one.
        task.detach();
        runnable.schedule();
    }

    fn schedule(self: &Arc<Self>, runnable: async_task::Runnable) {
        match self.queue.push(runnable) {
            Pushed::Queued => {}
            Pushed::StartWorker => self.start_worker(),
            // Closed at shutdown: dropping the runnable drops its future, which decides the
            // task as cancelled if it was not already.
            Pushed::Closed(r) => drop(r),
        }
    }

    fn start_worker(self: &Arc<Self>) {
        match &self.base {
            Executor::Tokio(handle) => {
                drop(handle.spawn(drive(self.clone())));
            }
            Executor::View(parent) => parent.spawn(drive(self.clone())),
            Executor::Pool(pool) => pool.push(Arc::new(PoolWorker(self.clone()))),
        }
    }

    /// Stops the view: queued runnables are dropped (their tasks decided as cancelled).
    pub(crate) fn close(&self) {
        let dropped = self.queue.close();
        drop(dropped);
    }
}

/// A worker on a runtime or a parent view: batches, yields, gives its slot back when idle.
async fn drive(view: Arc<LimitedView>) {
    loop {
        for _ in 0..BATCH {
            let Some(runnable) = view.queue.pop() else {
                return;
            };
            runnable.run();
            if !tokio::task::coop::has_budget_remaining() {
                break;
            }
        }
        // Keeps the slot: the base gets a turn, then this worker goes on.
        tokio::task::yield_now().await;
    }
}

/// A worker on a blocking pool: one batch per pool job, then back to the pool's tail.
struct PoolWorker(Arc<LimitedView>);

impl PoolJob for PoolWorker {
    fn run(self: Arc<Self>, pool: &BlockingPool) {
        // Futures of the view create timers and IO on the cpu runtime, as pinned ones do.
        let _ctx = pool.runtime().enter();
        for _ in 0..BATCH {
            let Some(runnable) = self.0.queue.pop() else {
                return;
            };
            runnable.run();
        }
        pool.push(self);
    }

    fn is_tombstone(&self) -> bool {
        false
    }
}

#[cfg(all(test, not(bulkheads_loom)))]
mod tests {
    use super::*;

    #[test]
    fn push_starts_workers_up_to_the_limit_and_pop_gives_slots_back() {
        let q = SlotQueue::new(2);
        assert_eq!(q.push(1), Pushed::StartWorker);
        assert_eq!(q.push(2), Pushed::StartWorker);
        assert_eq!(q.push(3), Pushed::Queued);
        assert_eq!(q.workers(), 2);
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), Some(3));
        assert_eq!(q.pop(), None);
        assert_eq!(q.workers(), 1);
        assert_eq!(q.pop(), None);
        assert_eq!(q.workers(), 0);
        assert_eq!(q.push(4), Pushed::StartWorker);
        assert_eq!(q.close().into_iter().collect::<Vec<_>>(), vec![4]);
        assert_eq!(q.push(5), Pushed::Closed(5));
    }
}

#[cfg(all(test, bulkheads_loom))]
mod loom_tests {
    //! The view's protocol under every interleaving loom finds: workers never exceed the
    //! limit, and no pushed item is stranded with no worker to run it.
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::thread;

    /// A worker as `drive` runs it: pop until `None` (the slot is then given back).
    fn worker(q: &SlotQueue<usize>, ran: &AtomicUsize, running: &AtomicUsize, limit: usize) {
        while let Some(_item) = q.pop() {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            assert!(now <= limit, "{now} items running with limit {limit}");
            ran.fetch_add(1, Ordering::SeqCst);
            running.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// `producers` threads each push `per_producer` items; a push that must start a worker
    /// runs it right there (as a base thread would), so the model stays small.
    fn check(limit: usize, producers: usize, per_producer: usize) {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(move || {
            let q = Arc::new(SlotQueue::new(limit));
            let ran = Arc::new(AtomicUsize::new(0));
            let running = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..producers)
                .map(|p| {
                    let (q, ran, running) = (q.clone(), ran.clone(), running.clone());
                    thread::spawn(move || {
                        for i in 0..per_producer {
                            match q.push(p * 10 + i) {
                                Pushed::StartWorker => worker(&q, &ran, &running, limit),
                                Pushed::Queued => {}
                                Pushed::Closed(_) => unreachable!("never closed here"),
                            }
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            // Every item ran, nothing is left queued, and every slot was given back.
            assert_eq!(ran.load(Ordering::SeqCst), producers * per_producer);
            assert_eq!(q.len(), 0);
            assert_eq!(q.workers(), 0);
        });
    }

    #[test]
    fn loom_one_slot_two_producers() {
        check(1, 2, 2);
    }

    #[test]
    fn loom_two_slots_three_producers() {
        check(2, 3, 1);
    }
}
