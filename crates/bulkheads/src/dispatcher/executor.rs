//! The seam between the one spawn path and the kinds: what a dispatcher kind supplies.
//!
//! A kind says *where* work runs and nothing else: admission, naming, counting, the live set,
//! panics, cancellation and tracing context are the spawn path's and the runner's, the same for
//! every kind. A kind is one file of `kinds/` implementing [`Executor`] (and [`WorkerHost`], so
//! views can sit on it), plus one line in the list of `kinds/mod.rs`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::accounts::Accounts;
use super::admission::Admission;
use super::task::NewTask;
use super::task::cell::TaskCell;

/// A boxed view worker.
pub(crate) type Worker = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What a dispatcher kind supplies.
pub(crate) trait Executor: Send + Sync + 'static {
    /// Runs an admitted task: now, or once its turn comes. Returns the task's cell, made the
    /// way the executor keeps the work (see [`NewTask`]).
    fn submit<F>(&self, task: NewTask<F>) -> Arc<TaskCell<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// OS threads this executor owns now (0 for a view).
    fn threads(&self) -> usize;

    /// A view's parallelism; `None` for other kinds.
    fn parallelism(&self) -> Option<usize> {
        None
    }

    /// True when the calling thread is running work that holds one of this executor's slots
    /// (a pool thread of this pool, a worker of this view). A blocking wait from such a thread
    /// for more work of the same executor would wait for a slot the waiter itself holds, so
    /// the spawn path runs that work inline instead.
    fn holds_current_thread(&self) -> bool;

    /// Where the workers of views over this executor run.
    fn host(self: &Arc<Self>) -> Arc<dyn WorkerHost>;

    /// Stops the executor's own machinery at the end of shutdown: work it still queues is
    /// dropped (and so decided as cancelled), its threads exit when idle.
    fn close(&self);
}

/// Runs the workers of views over a dispatcher: as Tokio tasks on a runtime, as jobs in a
/// pool's queue, or as tasks of a parent view.
pub(crate) trait WorkerHost: Send + Sync {
    fn spawn_worker(self: Arc<Self>, worker: Worker);
}

/// What a view needs of the dispatcher it sits on: where its workers run, the admission they
/// take a slot of, and the accounts that count them.
#[derive(Clone)]
pub(crate) struct Base {
    pub host: Arc<dyn WorkerHost>,
    pub admission: Arc<Admission>,
    pub accounts: Arc<Accounts>,
}

thread_local! {
    /// Executors whose slot the current thread holds, innermost last (see
    /// [`Executor::holds_current_thread`]).
    static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// On a pool's thread: the pool (by its [`Holding::id`]) and which of its threads are busy.
    static POOL_THREAD: RefCell<Option<(usize, Arc<BusyThreads>)>> = const { RefCell::new(None) };
}

/// Which of a pool's threads run a job now. Each thread writes only its own flag, on a cache
/// line of its own; [`all_busy_here`] reads them all (rarely: when work pinned to the pool
/// awaits a job queued in it).
pub(crate) struct BusyThreads(Box<[BusyFlag]>);

#[repr(align(64))]
struct BusyFlag(std::sync::atomic::AtomicBool);

impl BusyThreads {
    pub(crate) fn new(threads: usize) -> Self {
        BusyThreads(
            (0..threads)
                .map(|_| BusyFlag(std::sync::atomic::AtomicBool::new(false)))
                .collect(),
        )
    }

    /// Thread `i` takes (`true`) or is done with (`false`) a job.
    pub(crate) fn set(&self, i: usize, busy: bool) {
        if let Some(flag) = self.0.get(i) {
            flag.0.store(busy, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn all(&self) -> bool {
        self.0
            .iter()
            .all(|f| f.0.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// Marks the current thread, for its whole life, as a thread of the pool `id`.
pub(crate) fn enter_pool_thread(id: usize, busy: Arc<BusyThreads>) {
    POOL_THREAD.with(|p| *p.borrow_mut() = Some((id, busy)));
}

/// True on a thread of the pool `id` while every thread of that pool runs a job: a job queued
/// there now would wait for one of them to finish.
pub(crate) fn all_busy_here(id: usize) -> bool {
    POOL_THREAD.with(|p| {
        p.borrow()
            .as_ref()
            .is_some_and(|(pool, busy)| *pool == id && busy.all())
    })
}

/// Marks the current thread as holding a slot of the executor at `id` (its address) until
/// dropped.
pub(crate) struct Holding(usize);

impl Holding {
    pub(crate) fn new<T>(executor: &T) -> Self {
        Self::of(Self::id(executor))
    }

    /// [`Holding::new`] for the executor whose [`Holding::id`] is `id`.
    pub(crate) fn of(id: usize) -> Self {
        HELD.with(|h| h.borrow_mut().push(id));
        Holding(id)
    }

    /// The identity an executor is held by: its address.
    pub(crate) fn id<T>(executor: &T) -> usize {
        std::ptr::from_ref(executor).cast::<()>() as usize
    }

    /// True when the current thread holds a slot of the executor `executor`.
    pub(crate) fn held<T>(executor: &T) -> bool {
        let id = Self::id(executor);
        HELD.with(|h| h.borrow().contains(&id))
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|x| *x == self.0) {
                h.remove(i);
            }
        });
    }
}
