//! The `limited` kind: a view over a base that runs at most `parallelism` of its tasks at the
//! same instant, owns no threads, and keeps FIFO order among its runnable tasks.
//!
//! Contract (kotlinx.coroutines' `LimitedDispatcher`, the model): *parallelism, not
//! concurrency*. A task suspended at `.await` holds no slot; only being polled (or run, for a
//! blocking closure) does. The view never hands its tasks to the base directly. It keeps its own
//! queue of runnable tasks (`async_task::Runnable`s, whose schedule function pushes them here)
//! and a count of *workers*, at most `parallelism` ([`SlotQueue`]). Submitting pushes the task,
//! then starts a worker on the base if fewer than `parallelism` run. A worker pops and runs
//! tasks one after another; after a batch of 16 tasks, or when Tokio's cooperative budget is
//! spent, it yields to the base (keeping its view slot), so other views and tasks on the same
//! base progress. When the queue is empty it gives its slot back.
//!
//! **A base's capacity covers the view's work.** A worker runs its batches holding a slot of
//! its base's admission, taken in the same FIFO as the base's own submitters and given back at
//! every yield: a pool whose threads run a view's tasks counts them, and rejects a direct
//! submission by its own rules rather than queue it behind them. The wait for that slot cannot
//! deadlock: the worker holds no base slot while it waits, and every base slot is held by work
//! that ends on its own (a task, or another worker's batch of at most 16 tasks), unless that
//! work itself blocks its thread waiting for this view, which no design can serve.
//!
//! A worker is a Tokio task on a runtime base, a task of the parent view on a view base (so a
//! view of a view takes the smaller cap), and an `async-task` task queued at a blocking pool's
//! tail on a pool base (holding no pool thread while it waits for a slot).

pub(crate) mod slot_queue;

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Weak};

use self::slot_queue::{Pushed, SlotQueue};
use crate::dispatcher::accounts::Accounts;
use crate::dispatcher::admission::AdmissionConfig;
use crate::dispatcher::executor::{Base, Executor, Holding, Worker, WorkerHost};
use crate::dispatcher::task::NewTask;
use crate::dispatcher::task::cell::{Carrier, TaskCell};

/// Tasks a worker runs before it gives the base a turn (kotlinx.coroutines uses 16 too).
const BATCH: usize = 16;

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
    pub(crate) admission: AdmissionConfig,
}

impl LimitedConfig {
    /// Most tasks a view may run at once.
    pub const MAX_PARALLELISM: usize = 4096;

    /// A view running at most `n` (1 to 4096) of its tasks at the same instant, with no cap
    /// on how many it admits.
    pub fn parallelism(n: usize) -> Self {
        LimitedConfig {
            parallelism: n,
            admission: AdmissionConfig::default(),
        }
    }

    crate::dispatcher::admission::admission_setters!();
}

impl From<usize> for LimitedConfig {
    fn from(parallelism: usize) -> Self {
        LimitedConfig::parallelism(parallelism)
    }
}

/// A view: its runnable queue, its worker slots, and the base its workers run on.
pub(crate) struct LimitedView {
    queue: SlotQueue<async_task::Runnable>,
    base: Base,
    /// The view's own accounts, for panics its workers catch.
    accounts: Arc<Accounts>,
    me: Weak<LimitedView>,
}

impl LimitedView {
    pub(crate) fn new(parallelism: usize, base: Base, accounts: Arc<Accounts>) -> Arc<Self> {
        Arc::new_cyclic(|me| LimitedView {
            queue: SlotQueue::new(parallelism),
            base,
            accounts,
            me: me.clone(),
        })
    }

    /// Runs `fut` as a task of this view: counted against its parallelism, nothing else.
    /// Admission and accounting happened before (the spawn path, or a child view's worker).
    /// `keep` receives the task's handle before it can run (the task's result is `()`; our
    /// own cell carries the real one).
    fn spawn<F>(self: Arc<Self>, fut: F, keep: impl FnOnce(async_task::Task<()>))
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (runnable, task) = async_task::spawn(fut, move |r| self.schedule(r));
        keep(task);
        runnable.schedule();
    }

    fn schedule(self: &Arc<Self>, runnable: async_task::Runnable) {
        match self.queue.push(runnable) {
            Pushed::Queued => {}
            Pushed::StartWorker => {
                let worker = drive(self.clone());
                self.base.host.clone().spawn_worker(Box::pin(worker));
            }
            // Closed at shutdown: dropping the runnable drops its future, which decides the
            // task as cancelled if it was not already.
            Pushed::Closed(r) => drop(r),
        }
    }
}

/// A worker: batches under a slot of the base, yields, gives its view slot back when idle.
async fn drive(view: Arc<LimitedView>) {
    // Gives the view slot back if this future is dropped before it could (its base shut down).
    let mut slot = ViewSlot(Some(&view));
    loop {
        let base_slot = view.base.admission.worker_slot().await;
        view.base.accounts.view_worker(true);
        let emptied = run_batch(&view);
        view.base.accounts.view_worker(false);
        drop(base_slot);
        if emptied {
            slot.0 = None; // `pop` gave it back
            return;
        }
        // Keeps the view slot: the base gets a turn, then this worker goes on.
        tokio::task::yield_now().await;
    }
}

/// Runs up to a batch of the view's tasks; true when the queue was found empty (and the
/// worker's view slot given back).
fn run_batch(view: &LimitedView) -> bool {
    let _holding = Holding::new(view);
    for _ in 0..BATCH {
        let Some(runnable) = view.queue.pop() else {
            return true;
        };
        // The runner contains the task's own panics; this guard keeps the worker (and its
        // slot) alive if anything around them ever panicked, and reports it.
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| runnable.run())) {
            view.accounts.report_internal(payload, "a view's worker");
        }
        if !tokio::task::coop::has_budget_remaining() {
            break;
        }
    }
    false
}

struct ViewSlot<'a>(Option<&'a LimitedView>);

impl Drop for ViewSlot<'_> {
    fn drop(&mut self) {
        if let Some(view) = self.0 {
            view.queue.give_back();
        }
    }
}

impl Executor for LimitedView {
    fn submit<F>(&self, task: NewTask<F>) -> Arc<TaskCell<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (cell, runner) = task.runner();
        match self.me.upgrade() {
            // The cell keeps the handle, so the task's memory is freed where the cell is.
            Some(view) => view.spawn(runner, |task| cell.carry(Carrier::AsyncTask(task))),
            // Unreachable while `&self` is borrowed from an `Arc`; dropping the runner would
            // still decide the task as cancelled.
            None => drop(runner),
        }
        cell
    }

    fn threads(&self) -> usize {
        0
    }

    fn parallelism(&self) -> Option<usize> {
        Some(self.queue.limit())
    }

    fn holds_current_thread(&self) -> bool {
        Holding::held(self)
    }

    fn host(self: &Arc<Self>) -> Arc<dyn WorkerHost> {
        self.clone()
    }

    /// Stops the view: queued runnables are dropped (their tasks decided as cancelled).
    fn close(&self) {
        let dropped = self.queue.close();
        drop(dropped);
    }
}

impl WorkerHost for LimitedView {
    fn spawn_worker(self: Arc<Self>, worker: Worker) {
        self.spawn(worker, async_task::Task::detach);
    }
}
