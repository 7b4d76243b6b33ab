//! One task: who it is (`id.rs`), its state word (`state.rs`), the cell its caller and runner
//! share (`cell.rs`), and the one runner that drives it on every kind (`runner.rs`).
//!
//! The spawn path creates a [`NewTask`] and hands it to its dispatcher's executor, which
//! chooses where the work waits before it runs: in the executor's own queue as a runner
//! ([`NewTask::runner`]: Tokio runtimes, views), or in the cell, with the cell queued
//! ([`NewTask::queued`]: blocking pools, whose queue then holds one pointer per task).

pub(crate) mod cell;
pub(crate) mod id;
#[cfg(all(test, bulkheads_loom))]
mod loom;
pub(crate) mod probe;
pub(crate) mod runner;
pub(crate) mod state;

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Weak};
use std::task::{Context, Waker};

use self::cell::{Header, Pending, TaskCell, TaskSpan};
use self::runner::TaskFuture;
use crate::dispatcher::admission::{GatePass, Slot};
use crate::dispatcher::live::LiveTask;

/// An admitted task on its way to its executor, which chooses where its work waits and so
/// how its cell is made.
pub(crate) struct NewTask<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    pub(crate) header: Header,
    pub(crate) work: F,
    pub(crate) slot: Slot,
    pub(crate) gate: Option<GatePass>,
    pub(crate) span: TaskSpan,
}

impl<F> NewTask<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// The cell and the runner, for executors that keep the work in their own queue.
    pub(crate) fn runner(self) -> (Arc<TaskCell<F>>, TaskFuture<F>) {
        let cell = live(Arc::new(TaskCell::new(self.header, None)));
        let runner = TaskFuture::new(cell.clone(), self.work, self.slot, self.gate, self.span);
        (cell, runner)
    }

    /// The cell holding the work, for executors that queue cells (blocking pools). Such
    /// executors have no gate: their threads are their in-flight cap.
    pub(crate) fn queued(self) -> Arc<TaskCell<F>> {
        debug_assert!(self.gate.is_none(), "queued tasks pass no gate");
        live(Arc::new(TaskCell::new(
            self.header,
            Some(Pending {
                work: self.work,
                slot: self.slot,
                span: self.span,
            }),
        )))
    }
}

/// Registers a new cell in its dispatcher's live set, before an executor can run it: a task
/// that has run is always one a dump can see.
fn live<F>(cell: Arc<TaskCell<F>>) -> Arc<TaskCell<F>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let entry: Weak<dyn LiveTask> = Arc::downgrade(&cell) as Weak<dyn LiveTask>;
    cell.header.accounts.live.register(entry);
    cell
}

/// Drives a future to its end on the calling thread (a pool's `Handle::block_on` of the
/// registry's control runtime).
pub(crate) trait BlockOn {
    fn block_on(&self, fut: Pin<&mut dyn Future<Output = ()>>);
}

/// A task whose work waits in its cell while the cell waits in an executor's queue.
pub(crate) trait QueuedTask: Send + Sync {
    /// Runs the task on this thread: a closure at once, a future driven with `host` until it
    /// ends. For a task cancelled while queued, only gives back what its cell kept.
    fn run(self: Arc<Self>, host: &dyn BlockOn);
    /// The executor skipped the cell of a task decided while queued: it no longer waits.
    fn leave_queue(&self);
    /// Cancels the task (its executor stopped before running it).
    fn cancel(&self);
}

impl<F> QueuedTask for TaskCell<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn run(self: Arc<Self>, host: &dyn BlockOn) {
        let Some(pending) = self.take_pending() else {
            // Cancelled while queued: decided; give back what its cell kept.
            self.leave_queue();
            return;
        };
        let mut runner = pin!(TaskFuture::from_pending(self, pending));
        // A closure's runner is done after one poll; a future's goes on with a real waker.
        if runner
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready()
        {
            return;
        }
        host.block_on(runner);
    }

    fn leave_queue(&self) {
        TaskCell::leave_queue(self);
    }

    fn cancel(&self) {
        TaskCell::cancel(self);
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use super::cell::TaskCell;
    use super::runner::ClosureFuture;

    /// A fan-out holds one cell per task (100k no-op jobs: 100k cells live at once), and the
    /// caller that joins them reads every cache line of each: their size is part of the cost
    /// of a task (W1 in docs/performance.md). A field added to the cell should say why it
    /// cannot share the room of one already there.
    #[test]
    fn a_closure_tasks_cell_stays_within_216_bytes() {
        let size = std::mem::size_of::<TaskCell<ClosureFuture<fn() -> u64>>>();
        assert!(size <= 216, "a closure task's cell is {size} bytes");
    }
}
