//! The one spawn path. Every task of every kind, whatever call created it, is admitted,
//! named, counted, registered as live, given a child of its caller's span (and, for async
//! work with the `await-tree` feature, its own await-tree) and handed to its dispatcher's
//! executor here; the runner (`task/runner.rs`) then decides and records it. A kind only
//! supplies *how to run* a task (`executor.rs`).
//!
//! Work awaited with `run*` from a thread that holds a slot of the same dispatcher (a job on a
//! pool waiting for more work on that pool, a view's task waiting for the view) runs inline, on
//! the waiting thread: queued behind the waiter's own slot it could never start, and the waiter
//! already holds a slot of that dispatcher, so the caps still hold.

use std::borrow::Cow;
use std::future::Future;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::sync::{Arc, Mutex, Weak};

use quanta::Instant;

use super::accounts::Accounts;
use super::admission::{Admission, GatePass, Slot};
use super::executor::Base;
use super::kind::Kind;
use super::kinds::AnyExecutor;
use super::live::{LiveTask, Waiter};
use super::stats::Stats;
use super::task::NewTask;
use super::task::cell::join::Joinable;
use super::task::cell::{Header, TaskCell, TaskSpan, WorkKind};
use super::task::id::{TaskId, TaskInfo};
use super::task::probe::Probe;
use super::task::runner::TaskFuture;
use super::task::state::State;
use crate::error::{DispatchError, RejectReason};
use crate::registry::shared::Shared;

/// Who a task will be, settled at the call (its span is the caller's context then).
pub(crate) struct Meta {
    pub info: TaskInfo,
    pub span: tracing::Span,
}

/// A task handed to the caller: its id and its join side.
pub(crate) type Spawned<T> = (TaskId, Arc<dyn Joinable<T>>);

pub(crate) struct DispatcherCore {
    pub accounts: Arc<Accounts>,
    pub admission: Arc<Admission>,
    pub executor: AnyExecutor,
    pub shared: Arc<Shared>,
    /// Views made on this dispatcher with `Dispatcher::limited`, and the counts of those
    /// already dropped, so that shutdown drains and reports them all (see `views.rs`).
    pub(super) adhoc: Mutex<AdHoc>,
    /// For an ad-hoc view: the dispatcher it was made on, which keeps its counts once it is
    /// dropped.
    pub(super) parent: Option<Arc<DispatcherCore>>,
}

#[derive(Default)]
pub(super) struct AdHoc {
    pub(super) views: Vec<Weak<DispatcherCore>>,
    /// Dropped views whose tasks still run or wait: held here until they come to rest, so
    /// dumps still show those tasks and shutdown still drains, cancels and reports them.
    pub(super) orphans: Vec<Arc<DispatcherCore>>,
    /// Final counts of dropped views, merged by name.
    pub(super) retired: Vec<Stats>,
    /// Set when shutdown collects the views: a view made later is closed at birth.
    pub(super) closing: bool,
    /// Set when shutdown has taken the last orphans (`take_late_orphans`): a view dropped
    /// later keeps only its counts.
    pub(super) stopped: bool,
}

impl DispatcherCore {
    pub(crate) fn new(
        accounts: Arc<Accounts>,
        admission: Admission,
        executor: AnyExecutor,
        shared: Arc<Shared>,
    ) -> Self {
        DispatcherCore {
            accounts,
            admission: Arc::new(admission),
            executor,
            shared,
            adhoc: Mutex::new(AdHoc::default()),
            parent: None,
        }
    }

    pub(crate) fn name(&self) -> &Arc<str> {
        &self.accounts.name
    }

    pub(crate) fn kind(&self) -> Kind {
        self.accounts.kind
    }

    /// What views over this dispatcher sit on.
    pub(crate) fn as_base(&self) -> Base {
        Base {
            host: self.executor.host(),
            admission: self.admission.clone(),
            accounts: self.accounts.clone(),
        }
    }

    // ----- submission --------------------------------------------------------------------------

    /// Names a task at its call site. A tracing subscriber that panics is contained: the task
    /// then runs without a span, and the panic is reported.
    pub(crate) fn meta(
        &self,
        name: Option<Cow<'static, str>>,
        location: &'static Location<'static>,
    ) -> Meta {
        let info = TaskInfo::new(self.shared.ids.next(), name, location);
        let span = match catch_unwind(AssertUnwindSafe(|| {
            let parent = tracing::Span::current();
            if parent.is_none() {
                return parent;
            }
            let child =
                tracing::debug_span!(parent: &parent, "bulkheads.task", dispatcher = %self.name());
            if child.is_disabled() { parent } else { child }
        })) {
            Ok(span) => span,
            Err(payload) => {
                self.accounts.report_panic(
                    &info,
                    payload,
                    "in the tracing subscriber, creating its span",
                );
                tracing::Span::none()
            }
        };
        Meta { info, span }
    }

    /// Admits now (the `spawn*` calls). A rejection is counted here.
    pub(crate) fn try_admit(&self, meta: &Meta) -> Result<Slot, RejectReason> {
        self.admission.try_admit().inspect_err(|reason| {
            self.accounts.rejected(&meta.info, reason);
        })
    }

    /// Admits within `max_wait` (the `run*` calls and `reserve`; `blocking` says which kind of
    /// work waits, for dumps). A caller dropped while waiting counts as submitted and
    /// cancelled, so the accounting identity holds for it too. A caller that has to wait is
    /// in the live set meanwhile, so dumps show it.
    pub(crate) async fn admit(&self, meta: &Meta, blocking: bool) -> Result<Slot, RejectReason> {
        struct Waiting<'a>(&'a Accounts, &'a TaskInfo, bool, Arc<Waiter>);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.3.done();
                self.0.waiting_exit(self.1, !self.2);
            }
        }
        if let Ok(slot) = self.admission.try_admit() {
            return Ok(slot);
        }
        self.accounts.waiting_enter();
        let waiter = Arc::new(Waiter::new(
            meta.info.clone(),
            self.accounts.name.clone(),
            blocking,
        ));
        let entry: Weak<dyn LiveTask> = Arc::downgrade(&waiter) as Weak<dyn LiveTask>;
        self.accounts.live.register(entry);
        let mut waiting = Waiting(&self.accounts, &meta.info, false, waiter);
        let decision = self.admission.admit(&self.shared.control).await;
        waiting.2 = true;
        drop(waiting);
        decision.inspect_err(|reason| self.accounts.rejected(&meta.info, reason))
    }

    /// The error of a rejected task.
    pub(crate) fn rejection(&self, reason: RejectReason) -> DispatchError {
        DispatchError::Rejected {
            dispatcher: self.name().clone(),
            reason,
        }
    }

    /// An admitted task, counted, on its way to an executor. Its work is rooted in an
    /// await-tree here, the one place every task passes (async work, `await-tree` feature;
    /// otherwise the work is unchanged).
    fn new_task<F>(
        &self,
        meta: Meta,
        work: WorkKind,
        fut: F,
        slot: Slot,
        gated: bool,
    ) -> NewTask<impl Future<Output = F::Output> + Send + use<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.accounts.admitted(&meta.info);
        let fut = self
            .shared
            .trees
            .instrument(&meta.info, work == WorkKind::Async, fut);
        NewTask {
            header: Header {
                info: meta.info,
                submitted_at: Instant::now(),
                work,
                accounts: self.accounts.clone(),
                state: State::new(),
                probe: Probe::default(),
            },
            work: fut,
            slot,
            gate: if gated {
                self.admission.gate().cloned().map(GatePass::join)
            } else {
                None
            },
            span: TaskSpan::new(meta.span),
        }
    }

    /// The caller's side of a task (its cell was registered in the live set when it was made).
    fn spawned<F>(cell: Arc<TaskCell<F>>) -> Spawned<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        (cell.header.info.id, cell)
    }

    /// Hands an admitted task to the executor.
    pub(crate) fn spawn<F>(
        self: &Arc<Self>,
        meta: Meta,
        work: WorkKind,
        fut: F,
        slot: Slot,
    ) -> Spawned<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = self.new_task(meta, work, fut, slot, true);
        let cell = self.executor.submit(task);
        Self::spawned(cell)
    }

    /// True when a `run*` awaited here must run inline (see the module docs).
    pub(crate) fn runs_inline(&self) -> bool {
        self.executor.holds_current_thread()
    }

    /// An admitted task that the caller runs inline: it is counted and live like any other,
    /// takes no slot (the caller's thread already holds one of this dispatcher) and passes no
    /// gate.
    pub(crate) fn spawn_inline<F>(
        self: &Arc<Self>,
        meta: Meta,
        work: WorkKind,
        fut: F,
    ) -> (
        Spawned<F::Output>,
        TaskFuture<impl Future<Output = F::Output> + Send + use<F>>,
    )
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (cell, runner) = self
            .new_task(meta, work, fut, Slot::unbounded(), false)
            .runner();
        (Self::spawned(cell), runner)
    }

    /// An admitted task its caller runs in its own task (admission only): counted, live, in
    /// its slot, through the gate; the caller polls the runner.
    pub(crate) fn spawn_here<F>(
        self: &Arc<Self>,
        meta: Meta,
        fut: F,
        slot: Slot,
    ) -> (
        Spawned<F::Output>,
        TaskFuture<impl Future<Output = F::Output> + Send + use<F>>,
    )
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (cell, runner) = self
            .new_task(meta, WorkKind::Async, fut, slot, true)
            .runner();
        (Self::spawned(cell), runner)
    }

    // ----- shutdown and reading ------------------------------------------------------------------

    /// Stops admission; waiters and new submissions get `ShuttingDown`.
    pub(crate) fn close(&self) {
        self.accounts.begin_draining();
        self.admission.close();
    }

    /// Waits until nothing is in flight or `deadline` passes, on the control runtime's clock.
    /// True when drained.
    pub(crate) async fn drained_by(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let next = self.accounts.next_decision();
            tokio::pin!(next);
            // Registered before the check, so a decision after it wakes us.
            next.as_mut().enable();
            if self.accounts.in_flight() == 0 {
                return true;
            }
            let sleep = {
                let _ctx = self.shared.control.enter();
                tokio::time::sleep_until(deadline)
            };
            tokio::select! {
                () = next => {}
                () = sleep => return self.accounts.in_flight() == 0,
            }
        }
    }

    /// Cancels every live task: queued ones never start, async ones stop at their next
    /// `.await`, running blocking ones are abandoned.
    pub(crate) fn cancel_all(&self) {
        for task in self.accounts.live.snapshot() {
            task.cancel();
        }
    }

    /// Gives up on whatever is still live: decided as cancelled and abandoned.
    pub(crate) fn abandon_all(&self) {
        for task in self.accounts.live.snapshot() {
            task.force_abandon();
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        self.accounts.stats(
            self.executor.threads(),
            self.executor.parallelism(),
            self.admission.capacity(),
        )
    }
}
