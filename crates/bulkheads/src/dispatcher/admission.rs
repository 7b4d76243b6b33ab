//! Admission: the in-flight cap plus the bounded queue, shared by every dispatcher kind.
//!
//! Capacity is `cap + queue` (for a blocking pool, `cap` is its thread count). A slot is taken
//! when a task is admitted and given back when it has physically stopped (or was cancelled
//! before it started). `spawn*` takes a slot or is rejected at once; `run*` waits up to
//! `max_wait` in FIFO order. The FIFO and the no-barging rule come from Tokio's fair
//! semaphore: a released permit goes to the oldest waiter before anyone else can take it, so
//! `try_acquire` fails while anyone waits. A waiter that times out or is dropped leaves the
//! queue and returns any permit it was handed (Tokio's `Acquire` drop), so no permit leaks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::{Semaphore, TryAcquireError};

use crate::error::RejectReason;

pub(crate) struct Admission {
    /// `None` when the dispatcher has no cap: everything is admitted until shutdown.
    slots: Option<Semaphore>,
    capacity: usize,
    max_wait: Duration,
    /// Set once, at shutdown, before the semaphore closes and long before the timer runtime
    /// stops, so no waiter polls a timer of a runtime that is gone.
    closed: AtomicBool,
}

impl Admission {
    pub(crate) fn bounded(capacity: usize, max_wait: Duration) -> Self {
        Admission {
            slots: Some(Semaphore::new(capacity)),
            capacity,
            max_wait,
            closed: AtomicBool::new(false),
        }
    }

    pub(crate) fn unbounded() -> Self {
        Admission {
            slots: None,
            capacity: usize::MAX,
            max_wait: Duration::ZERO,
            closed: AtomicBool::new(false),
        }
    }

    /// `None` when unbounded.
    pub(crate) fn capacity(&self) -> Option<usize> {
        self.slots.as_ref().map(|_| self.capacity)
    }

    pub(crate) fn is_closed(&self) -> bool {
        // Acquire: pairs with the Release in `close`.
        self.closed.load(Ordering::Acquire)
    }

    /// Takes a slot now or says why not.
    pub(crate) fn try_admit(&self) -> Result<(), RejectReason> {
        if self.is_closed() {
            return Err(RejectReason::ShuttingDown);
        }
        let Some(slots) = &self.slots else {
            return Ok(());
        };
        match slots.try_acquire() {
            Ok(permit) => {
                // Given back explicitly by `release`, when the task stops.
                permit.forget();
                Ok(())
            }
            Err(TryAcquireError::NoPermits) => Err(RejectReason::QueueFull {
                capacity: self.capacity,
            }),
            Err(TryAcquireError::Closed) => Err(RejectReason::ShuttingDown),
        }
    }

    /// Takes a slot, waiting up to `max_wait` in FIFO order. `timer` is the runtime whose
    /// clock measures the wait (the registry's cpu runtime, whatever runtime the caller is on).
    /// Dropping the returned future leaves the queue and frees the waiter's place.
    pub(crate) async fn admit(&self, timer: &Handle) -> Result<(), RejectReason> {
        match self.try_admit() {
            Err(RejectReason::QueueFull { .. }) if !self.max_wait.is_zero() => {}
            other => return other,
        }
        let Some(slots) = &self.slots else {
            return Ok(());
        };
        let started = Instant::now();
        let deadline = {
            let _ctx = timer.enter();
            tokio::time::sleep(self.max_wait)
        };
        tokio::select! {
            // Biased: the semaphore first, so a slot handed over at the deadline is taken, and
            // a closed semaphore is seen before the timer is polled.
            biased;
            acquired = slots.acquire() => match acquired {
                Ok(permit) => {
                    permit.forget();
                    Ok(())
                }
                Err(_closed) => Err(RejectReason::ShuttingDown),
            },
            () = deadline, if !self.is_closed() => Err(RejectReason::WaitTimeout {
                waited: started.elapsed(),
            }),
        }
    }

    /// Gives a slot back.
    pub(crate) fn release(&self) {
        if let Some(slots) = &self.slots {
            slots.add_permits(1);
        }
    }

    /// Stops admission: later calls and every waiter get `ShuttingDown`.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(slots) = &self.slots {
            slots.close();
        }
    }
}
