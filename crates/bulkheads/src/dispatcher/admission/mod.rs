//! Admission: the in-flight cap plus the bounded queue, shared by every dispatcher kind, and
//! the *slots* it hands out.
//!
//! Capacity is `cap + queue` (for a blocking pool, `cap` is its thread count). A [`Slot`] is an
//! owned value: taken when a task is admitted, it travels with the work (in the task cell while
//! the work waits in a pool's queue, in the runner once it runs) and is released when it is
//! dropped, so "released exactly once" follows from ownership. `spawn*` takes a slot or is
//! rejected at once; `run*` waits up to `max_wait` in FIFO order.
//!
//! FIFO and no barging come from the slot count's fair queue (`slots.rs`): a released slot goes
//! to the oldest waiter before anyone else can take it, so `try_acquire` fails while anyone
//! waits. A waiter that times out or is dropped leaves the queue and passes on any slot it was
//! handed, so no slot leaks.
//!
//! Runtimes and views with `max_concurrent` also have a *gate*: a second fair semaphore of
//! `cap` permits that admitted tasks pass, in submission order, before they start.
//!
//! Closing (shutdown) turns new submissions and `run*` waiters away with `ShuttingDown`, but
//! never closes the slot count or the gate themselves: the workers of views over this dispatcher still get
//! slots while the registry drains, so admitted work of those views can finish.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::{AcquireError, Notify, OwnedSemaphorePermit, Semaphore};

use self::slots::Slots;

mod slots;

use crate::error::RejectReason;

/// Admission of a runtime or a view: an optional in-flight cap and a bounded queue behind it.
/// (A blocking pool's in-flight cap is its thread count; see [`BlockingConfig`](crate::BlockingConfig).)
///
/// Capacity is `max_concurrent + queue`. When it is full, `spawn*` is rejected at once
/// ([`RejectReason::QueueFull`](crate::RejectReason::QueueFull)) and `run*` waits up to
/// `max_wait`, FIFO, then gets [`RejectReason::WaitTimeout`](crate::RejectReason::WaitTimeout).
/// Admitted tasks beyond `max_concurrent` wait to start, in order. Without `max_concurrent`
/// everything is admitted.
///
/// `max_wait` bounds only the wait for room; the time an admitted task then spends queued
/// before it starts is not part of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdmissionConfig {
    /// Admitted, unfinished tasks at most (suspended ones count). `None`: no cap.
    pub max_concurrent: Option<usize>,
    /// Tasks admitted beyond `max_concurrent`, waiting to start.
    pub queue: usize,
    /// How long `run*` callers wait for room; zero rejects at once. At most
    /// [`MAX_WAIT`](Self::MAX_WAIT).
    pub max_wait: Duration,
    /// Admitted work that waits in the queue longer than this before it starts is not
    /// started: its caller gets [`RejectReason::QueueDeadline`](crate::RejectReason::QueueDeadline).
    /// `None`: no deadline. At most [`MAX_WAIT`](Self::MAX_WAIT).
    pub queue_deadline: Option<Duration>,
}

impl AdmissionConfig {
    /// The longest `max_wait` accepted (one hour): a caller waiting longer than this for a
    /// slot is a bug, not a policy.
    pub const MAX_WAIT: Duration = Duration::from_secs(3600);
}

/// The admission setters of a kind's configuration (`max_concurrent`, `queue`, `max_wait`),
/// written once for every configuration with an `admission: AdmissionConfig` field.
macro_rules! admission_setters {
    () => {
        /// Caps admitted, unfinished tasks (suspended ones included) at `n`; see
        /// [`AdmissionConfig`](crate::AdmissionConfig).
        pub fn max_concurrent(mut self, n: usize) -> Self {
            self.admission.max_concurrent = Some(n);
            self
        }

        /// Tasks admitted beyond `max_concurrent`, waiting to start; needs `max_concurrent`.
        pub fn queue(mut self, n: usize) -> Self {
            self.admission.queue = n;
            self
        }

        /// How long `run*` callers wait for room when full (FIFO), before
        /// [`RejectReason::WaitTimeout`](crate::RejectReason::WaitTimeout); zero rejects at
        /// once. At most one hour.
        pub fn max_wait(mut self, d: std::time::Duration) -> Self {
            self.admission.max_wait = d;
            self
        }

        /// Admitted work that waits in the queue longer than `d` before it starts is not
        /// started: its caller gets
        /// [`RejectReason::QueueDeadline`](crate::RejectReason::QueueDeadline) (a `run*`
        /// caller at the deadline itself). With `max_wait`, this bounds how long an admitted
        /// call can take to start. At most one hour; no deadline unless set.
        pub fn queue_deadline(mut self, d: std::time::Duration) -> Self {
            self.admission.queue_deadline = Some(d);
            self
        }
    };
}
pub(crate) use admission_setters;

/// An admitted task's place in its dispatcher's capacity. Released when dropped.
pub(crate) struct Slot(Option<Arc<Admission>>);

impl Slot {
    /// The slot of an unbounded dispatcher, or of work that runs inline on a thread that
    /// already holds a slot of its dispatcher: nothing to release.
    pub(crate) fn unbounded() -> Self {
        Slot(None)
    }

    /// The task was cancelled while its work waited in a pool's queue, where its cell stays
    /// until a thread reaches it. The room is given back at once while the pool's queue holds
    /// fewer such cells than its capacity (so a caller that gives up frees its place for the
    /// next); beyond that the slot stays with the cell until a thread reaches it, so that a
    /// storm of cancellations cannot grow the queue past twice its capacity.
    pub(crate) fn into_tombstone(mut self) -> Tombstone {
        match self.0.take() {
            Some(admission) if admission.take_tombstone() => {
                admission.release_slot();
                Tombstone::Counted(admission)
            }
            Some(admission) => Tombstone::Holding(Slot(Some(admission))),
            None => Tombstone::Free,
        }
    }
}

impl Slot {
    /// Gives the room back now and returns the reference the slot held, for its owner to
    /// drop later (a task's cell keeps it, see `Held::Spent`). `None` for an unbounded slot.
    pub(crate) fn spend(mut self) -> Option<Arc<Admission>> {
        let admission = self.0.take()?;
        admission.release_slot();
        Some(admission)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(admission) = self.0.take() {
            admission.release_slot();
        }
    }
}

/// What a cancelled task's cell holds while it waits in a pool's queue: a place in the pool's
/// budget of such cells, or its slot. Released when the pool's thread reaches the cell (or
/// the cell is dropped).
pub(crate) enum Tombstone {
    Free,
    Counted(Arc<Admission>),
    Holding(#[allow(dead_code, reason = "held for its Drop")] Slot),
}

impl Drop for Tombstone {
    fn drop(&mut self) {
        if let Tombstone::Counted(admission) = self {
            // Relaxed: a budget count; the queue itself orders the cells.
            admission.tombstones_left.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub(crate) struct Admission {
    /// `cap + queue` slots; `None` when the dispatcher has no cap. A slot taken is given back
    /// by the [`Slot`] that owns it, when that is dropped.
    slots: Option<Slots>,
    capacity: usize,
    /// `max_concurrent` permits of a capped runtime or view.
    gate: Option<Arc<Semaphore>>,
    max_wait: Duration,
    /// Set once, at shutdown.
    closed: AtomicBool,
    /// Wakes `run*` callers waiting for room when admission closes.
    closing: Notify,
    /// Cancelled tasks a pool's queue may still hold with their slot given back.
    tombstones_left: AtomicUsize,
}

impl Admission {
    /// A pool: `threads + queue` slots, its threads are the gate.
    pub(crate) fn pool(threads: usize, queue: usize, max_wait: Duration) -> Self {
        let a = Self::new(Some(threads + queue), None, max_wait);
        a.tombstones_left.store(threads + queue, Ordering::Relaxed);
        a
    }

    /// A runtime or a view: bounded only with `max_concurrent`.
    pub(crate) fn capped(config: &AdmissionConfig) -> Self {
        match config.max_concurrent {
            Some(cap) => Self::new(Some(cap + config.queue), Some(cap), config.max_wait),
            None => Self::new(None, None, Duration::ZERO),
        }
    }

    fn new(capacity: Option<usize>, gate: Option<usize>, max_wait: Duration) -> Self {
        Admission {
            slots: capacity.map(Slots::new),
            capacity: capacity.unwrap_or(usize::MAX),
            gate: gate.map(|n| Arc::new(Semaphore::new(n))),
            max_wait,
            closed: AtomicBool::new(false),
            closing: Notify::new(),
            tombstones_left: AtomicUsize::new(0),
        }
    }

    /// `None` when unbounded.
    /// How long `run*` callers wait for room.
    pub(crate) fn max_wait(&self) -> Duration {
        self.max_wait
    }

    pub(crate) fn capacity(&self) -> Option<usize> {
        self.slots.as_ref().map(|_| self.capacity)
    }

    /// The in-flight gate of a capped runtime or view.
    pub(crate) fn gate(&self) -> Option<&Arc<Semaphore>> {
        self.gate.as_ref()
    }

    pub(crate) fn is_closed(&self) -> bool {
        // Acquire: pairs with the Release in `close`.
        self.closed.load(Ordering::Acquire)
    }

    /// A slot taken from `slots`, given back by its `Drop`.
    fn slot(self: &Arc<Self>) -> Slot {
        Slot(Some(self.clone()))
    }

    fn release_slot(&self) {
        if let Some(slots) = &self.slots {
            slots.release();
        }
    }

    /// Takes a place in the budget of cancelled cells a pool's queue may hold.
    fn take_tombstone(&self) -> bool {
        // Relaxed: a budget count; the slot released after it is ordered by the slot count.
        self.tombstones_left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Takes a slot now or says why not.
    pub(crate) fn try_admit(self: &Arc<Self>) -> Result<Slot, RejectReason> {
        if self.is_closed() {
            return Err(RejectReason::ShuttingDown);
        }
        let Some(slots) = &self.slots else {
            return Ok(Slot::unbounded());
        };
        if slots.try_acquire() {
            Ok(self.slot())
        } else {
            Err(RejectReason::QueueFull {
                capacity: self.capacity,
            })
        }
    }

    /// Takes a slot, waiting up to `max_wait` in FIFO order. `timer` is the runtime whose
    /// clock measures the wait (the registry's control runtime, whatever runtime the caller is
    /// on). Dropping the returned future leaves the queue and frees the waiter's place.
    pub(crate) async fn admit(self: &Arc<Self>, timer: &Handle) -> Result<Slot, RejectReason> {
        match self.try_admit() {
            Err(RejectReason::QueueFull { .. }) if !self.max_wait.is_zero() => {}
            other => return other,
        }
        let Some(slots) = &self.slots else {
            return Ok(Slot::unbounded());
        };
        let closing = self.closing.notified();
        tokio::pin!(closing);
        // Registered before the check, so a close after it wakes us.
        closing.as_mut().enable();
        if self.is_closed() {
            return Err(RejectReason::ShuttingDown);
        }
        let started = Instant::now();
        let deadline = {
            let _ctx = timer.enter();
            tokio::time::sleep(self.max_wait)
        };
        let slot = tokio::select! {
            // Biased: the slot count first, so a slot handed over at the deadline is taken.
            biased;
            () = slots.acquire() => self.slot(),
            () = &mut closing => return Err(RejectReason::ShuttingDown),
            () = deadline => return Err(RejectReason::WaitTimeout {
                waited: started.elapsed(),
            }),
        };
        // Closed while the slot was being handed over: give it back.
        if self.is_closed() {
            return Err(RejectReason::ShuttingDown);
        }
        Ok(slot)
    }

    /// A slot for a worker of a view over this dispatcher: waits in the same FIFO as
    /// submitters, without a deadline, and is served while the registry drains. With a gate,
    /// the worker passes it too: it runs tasks, so it counts as started work.
    pub(crate) async fn worker_slot(self: &Arc<Self>) -> WorkerSlot {
        let slot = match &self.slots {
            Some(s) => {
                s.acquire().await;
                self.slot()
            }
            None => Slot::unbounded(),
        };
        let gate = match &self.gate {
            Some(g) => g.clone().acquire_owned().await.ok(),
            None => None,
        };
        WorkerSlot {
            _slot: slot,
            _gate: gate,
        }
    }

    /// Stops admission: later calls and every waiter get `ShuttingDown`.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.closing.notify_waiters();
    }
}

/// What a view's worker holds of its base while it runs a batch.
pub(crate) struct WorkerSlot {
    _slot: Slot,
    _gate: Option<OwnedSemaphorePermit>,
}

/// Waiting for a permit of the in-flight gate.
type Acquire = dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send;

/// A task's pass through its dispatcher's in-flight gate.
pub(crate) struct GatePass {
    sem: Arc<Semaphore>,
    acquire: Option<Pin<Box<Acquire>>>,
    /// Held from start to end; dropping it lets the next queued task start.
    permit: Option<OwnedSemaphorePermit>,
}

impl GatePass {
    /// Joins the gate's FIFO queue now, at submission, so tasks pass it in the order they
    /// were submitted, not in the order an executor first polls them (Tokio runs the newest
    /// task first from its LIFO slot). The real waker replaces the no-op one at the first poll.
    pub(crate) fn join(sem: Arc<Semaphore>) -> Self {
        // A free permit means nobody queues for one (a release hands permits to waiters
        // first): taking it keeps the order, without a future to box.
        if let Ok(permit) = sem.clone().try_acquire_owned() {
            return GatePass {
                sem,
                acquire: None,
                permit: Some(permit),
            };
        }
        let mut acquire: Pin<Box<Acquire>> = Box::pin(sem.clone().acquire_owned());
        let mut cx = Context::from_waker(Waker::noop());
        let permit = match acquire.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(permit)) => Some(permit),
            _ => None,
        };
        GatePass {
            sem,
            acquire: if permit.is_some() {
                None
            } else {
                Some(acquire)
            },
            permit,
        }
    }

    /// Ready(true) once passed; Ready(false) if the gate were ever closed.
    pub(crate) fn poll_pass(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if self.permit.is_some() {
            return Poll::Ready(true);
        }
        let sem = &self.sem;
        let acquire = self
            .acquire
            .get_or_insert_with(|| Box::pin(sem.clone().acquire_owned()));
        match acquire.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(permit)) => {
                self.acquire = None;
                self.permit = Some(permit);
                Poll::Ready(true)
            }
            Poll::Ready(Err(_)) => Poll::Ready(false),
        }
    }
}
