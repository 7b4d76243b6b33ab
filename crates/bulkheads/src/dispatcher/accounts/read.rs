//! Reading the accounts: the exact in-flight count a drain needs, and [`Stats`].

use std::sync::atomic::{AtomicU64, Ordering};

use super::{Accounts, Shard};
use crate::dispatcher::stats::{RejectedCounts, Stats};

impl Accounts {
    pub(super) fn sum(&self, field: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| field(s).load(Ordering::Relaxed))
            .sum()
    }

    /// Exact at the instant it returns, for a drain: the decisions are read before and after
    /// the admissions and the read is repeated until no decision came in between.
    pub(crate) fn in_flight(&self) -> usize {
        // SeqCst loads: see the end of `decided`.
        let decided = || -> u64 {
            self.shards
                .iter()
                .map(|s| {
                    s.completed.load(Ordering::SeqCst)
                        + s.panicked.load(Ordering::SeqCst)
                        + s.cancelled.load(Ordering::SeqCst)
                        + s.rejected_queue_deadline.load(Ordering::SeqCst)
                })
                .sum()
        };
        loop {
            let before = decided();
            let admitted: u64 = self
                .shards
                .iter()
                .map(|s| s.admitted.load(Ordering::SeqCst))
                .sum();
            if decided() == before {
                return admitted.saturating_sub(before) as usize;
            }
        }
    }

    /// A snapshot; `threads`, `parallelism` and `capacity` come from the executor and the
    /// admission, which the accounts do not know.
    pub(crate) fn stats(
        &self,
        threads: usize,
        parallelism: Option<usize>,
        capacity: Option<usize>,
    ) -> Stats {
        let diff = |a: u64, b: u64| a.saturating_sub(b) as usize;
        let admitted = self.sum(|s| &s.admitted);
        let completed = self.sum(|s| &s.completed);
        let panicked = self.sum(|s| &s.panicked);
        let cancelled_admitted = self.sum(|s| &s.cancelled);
        let cancelled_waiting = self.sum(|s| &s.cancelled_waiting);
        let rejected = RejectedCounts {
            queue_full: self.sum(|s| &s.rejected_queue_full),
            wait_timeout: self.sum(|s| &s.rejected_wait_timeout),
            shutting_down: self.sum(|s| &s.rejected_shutting_down),
            queue_deadline: self.sum(|s| &s.rejected_queue_deadline),
        };
        let decided = completed + panicked + cancelled_admitted + rejected.queue_deadline;
        Stats {
            name: self.name.clone(),
            kind: self.kind,
            threads,
            parallelism,
            capacity,
            queued: diff(
                admitted,
                self.sum(|s| &s.started) + self.sum(|s| &s.decided_queued),
            ),
            active: diff(self.sum(|s| &s.active_in), self.sum(|s| &s.active_out)),
            in_flight: diff(admitted, decided),
            waiting: diff(self.sum(|s| &s.waiting_in), self.sum(|s| &s.waiting_out)),
            view_workers: diff(
                self.sum(|s| &s.view_workers_in),
                self.sum(|s| &s.view_workers_out),
            ),
            // Expired tasks were admitted: counted once, in `admitted`.
            submitted: admitted + rejected.total() - rejected.queue_deadline + cancelled_waiting,
            completed,
            panicked,
            cancelled: cancelled_admitted + cancelled_waiting,
            abandoned: self.sum(|s| &s.abandoned),
            rejected,
        }
    }
}
