//! A task's state word: its stage and two flags, and every transition between them.
//!
//! ```text
//! QUEUED ──try_start──▶ RUNNING ──decide_started──▶ OK | PANICKED | CANCELLED
//!    │                     │  └─request_cancel: sets CANCEL_REQUESTED (async work stops at
//!    │                     │    its next poll, and its runner decides it then)
//!    │                     └─abandon──▶ CANCELLED + ABANDONED (blocking work cannot be stopped:
//!    │                       decided now, it runs on and its result is dropped)
//!    ├─cancel_queued──▶ CANCELLED (the work never starts)
//!    └─expire──▶ EXPIRED (it waited past the queue deadline: rejected, never starts)
//! ```
//!
//! Invariant: a task leaves `QUEUED` once and is *decided* (reaches a `DONE_*` stage) once;
//! whoever wins the compare-and-swap that decides it counts the outcome and publishes the
//! result. Each flag may be set only while the task is `RUNNING`: `CANCEL_REQUESTED` by a
//! canceller of async work, `ABANDONED` together with `DONE_CANCELLED` by `abandon`.

use std::sync::atomic::Ordering;

use crate::sync::atomic::AtomicU8;

// Stages (low three bits).
const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
pub(crate) const DONE_OK: u8 = 2;
pub(crate) const DONE_PANICKED: u8 = 3;
pub(crate) const DONE_CANCELLED: u8 = 4;
/// Rejected after admission: it waited in the queue past its dispatcher's queue deadline.
pub(crate) const DONE_EXPIRED: u8 = 5;
const STAGE: u8 = 0b111;
/// Set on a running async task asked to stop; its runner decides at its next poll.
const CANCEL_REQUESTED: u8 = 1 << 3;
/// Set with `DONE_CANCELLED` on work cancelled while it ran on and could not be stopped.
const ABANDONED: u8 = 1 << 4;

/// What a cancel request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Requested {
    /// The flag is set now: the runner must be woken.
    Now,
    /// Someone asked before, or the task is not running (queued or decided).
    Not,
}

pub(crate) struct State(AtomicU8);

impl State {
    pub(crate) fn new() -> Self {
        State(AtomicU8::new(QUEUED))
    }

    /// `QUEUED -> RUNNING`. False when the task was cancelled first.
    pub(crate) fn try_start(&self) -> bool {
        // AcqRel: pairs with the canceller's CAS so exactly one of the two wins; Acquire also
        // makes the submitter's writes (the work itself) visible to the runner.
        self.0
            .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// `QUEUED -> CANCELLED`. False when the task had started or was decided.
    pub(crate) fn cancel_queued(&self) -> bool {
        // AcqRel: the other side of `try_start`'s race.
        self.0
            .compare_exchange(QUEUED, DONE_CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// `QUEUED -> EXPIRED`. False when the task had started or was decided.
    pub(crate) fn expire(&self) -> bool {
        // AcqRel: the other side of `try_start`'s race, as for `cancel_queued`.
        self.0
            .compare_exchange(QUEUED, DONE_EXPIRED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Moves a started task to `terminal` (a `DONE_*` stage), dropping its flags. False if it
    /// was decided already (abandoned).
    pub(crate) fn decide_started(&self, terminal: u8) -> bool {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            if cur & STAGE != RUNNING {
                return false;
            }
            // AcqRel: one winner against `abandon`; Release publishes the runner's writes.
            match self
                .0
                .compare_exchange_weak(cur, terminal, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Sets `CANCEL_REQUESTED` on running work.
    pub(crate) fn request_cancel(&self) -> Requested {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            if cur & STAGE != RUNNING || cur & CANCEL_REQUESTED != 0 {
                return Requested::Not;
            }
            // Release: the runner's Acquire load after its wake sees the request.
            match self.0.compare_exchange_weak(
                cur,
                cur | CANCEL_REQUESTED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Requested::Now,
                Err(actual) => cur = actual,
            }
        }
    }

    /// `RUNNING -> CANCELLED + ABANDONED`. False when the task is not running.
    pub(crate) fn abandon(&self) -> bool {
        let mut cur = self.0.load(Ordering::Acquire);
        while cur & STAGE == RUNNING {
            // AcqRel: one winner against `decide_started`.
            match self.0.compare_exchange_weak(
                cur,
                DONE_CANCELLED | ABANDONED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
        false
    }

    pub(crate) fn is_running(&self) -> bool {
        self.0.load(Ordering::Acquire) & STAGE == RUNNING
    }

    pub(crate) fn is_queued(&self) -> bool {
        self.0.load(Ordering::Acquire) & STAGE == QUEUED
    }

    pub(crate) fn cancel_requested(&self) -> bool {
        // Acquire: pairs with the Release in `request_cancel`; the waker registration that
        // precedes this load makes a missed request impossible (AtomicWaker's protocol).
        self.0.load(Ordering::Acquire) & CANCEL_REQUESTED != 0
    }

    pub(crate) fn is_decided(&self) -> bool {
        self.0.load(Ordering::Acquire) & STAGE >= DONE_OK
    }
}
