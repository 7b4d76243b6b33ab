//! What a task's runner records for live dumps: polls, time spent in them, when the last one
//! began, whether one is under way, whether the runner still runs at all.
//!
//! One writer (the runner) for everything but `detached`; plain `Relaxed` loads and stores, no
//! read-modify-write on the hot path: a dump reads a moment's picture, which is all it needs.
//! A task that never yields is seen `in_poll` (running), never idle.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

// See `accounts` on the clock.
use quanta::Instant;

#[derive(Default)]
pub(crate) struct Probe {
    polls: AtomicU32,
    /// Nanoseconds from submission to the start of the last poll (0 before the first).
    last_poll: AtomicU64,
    /// Nanoseconds spent in polls (the whole run, for a blocking closure).
    busy: AtomicU64,
    /// Set around every poll.
    in_poll: AtomicBool,
    /// Set from the start until the runner has stopped the work: a task abandoned while it runs
    /// (decided, its caller gone) stays visible, as a zombie, until its code returns.
    running: AtomicBool,
    /// Set when the task's join handle is dropped.
    detached: AtomicBool,
}

/// A moment's picture of a [`Probe`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probed {
    pub polls: u32,
    pub since_last_poll: Option<Duration>,
    pub busy: Duration,
    pub in_poll: bool,
    pub detached: bool,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Probe {
    pub(crate) fn started(&self) {
        self.running.store(true, Ordering::Relaxed);
    }

    pub(crate) fn stopped(&self) {
        self.running.store(false, Ordering::Relaxed);
        self.in_poll.store(false, Ordering::Relaxed);
    }

    pub(crate) fn read_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    pub(crate) fn detached(&self) {
        // Release: pairs with `is_detached` (see `TaskCell::finish`).
        self.detached.store(true, Ordering::Release);
    }

    /// Whether the join handle was dropped, read without the cell's lock: a hint for the order
    /// in which a finishing runner counts and publishes (the cell's lock decides who reads the
    /// result).
    pub(crate) fn is_detached(&self) -> bool {
        self.detached.load(Ordering::Acquire)
    }

    /// A poll begins, at `at` when polls are timed.
    pub(crate) fn poll_begins(&self, submitted_at: Instant, at: Option<Instant>) {
        // One writer: load and store rather than a read-modify-write.
        let polls = self.polls.load(Ordering::Relaxed);
        self.polls.store(polls.saturating_add(1), Ordering::Relaxed);
        if let Some(at) = at {
            self.last_poll.store(
                nanos(at.saturating_duration_since(submitted_at)).max(1),
                Ordering::Relaxed,
            );
        }
        self.in_poll.store(true, Ordering::Relaxed);
    }

    /// The poll that began at `began` (when polls are timed) ends at `at`.
    pub(crate) fn poll_ends(&self, began: Option<Instant>, at: Instant) {
        if let Some(began) = began {
            let busy = self.busy.load(Ordering::Relaxed);
            self.busy.store(
                busy.saturating_add(nanos(at.saturating_duration_since(began))),
                Ordering::Relaxed,
            );
        }
        self.in_poll.store(false, Ordering::Relaxed);
    }

    /// The picture at `now`, for a task submitted at `submitted_at`.
    pub(crate) fn read(&self, submitted_at: Instant, now: Instant) -> Probed {
        let last = self.last_poll.load(Ordering::Relaxed);
        let age = now.saturating_duration_since(submitted_at);
        Probed {
            polls: self.polls.load(Ordering::Relaxed),
            since_last_poll: (last != 0).then(|| age.saturating_sub(Duration::from_nanos(last))),
            busy: Duration::from_nanos(self.busy.load(Ordering::Relaxed)),
            in_poll: self.in_poll.load(Ordering::Relaxed),
            detached: self.detached.load(Ordering::Relaxed),
        }
    }
}
