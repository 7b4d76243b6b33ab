//! The live set: every admitted, undecided task of one dispatcher.
//!
//! Shutdown walks it to cancel what is left; the diagnostics dump will read it. It holds weak
//! references and is pruned lazily: registering a task is a push under a shard lock, and
//! deciding one costs nothing here (a removal per task was a sixth of a no-op job's cost on
//! the pool benchmark). A shard drops the entries of decided or freed tasks whenever it has
//! doubled since its last pruning, and every shard is pruned when the dispatcher goes idle:
//! under load it holds at most about twice the live tasks plus a constant, and after a burst
//! it lets go. A dead entry keeps the task's allocation (its work and result are dropped when
//! the task ends, but the cell's memory is freed only with its last reference).
//!
//! Sharded by task id so that submitters on different threads rarely meet on one lock.

use std::sync::{Arc, Mutex, Weak};

use super::task::id::TaskId;
use crate::sync::lock;

const SHARDS: usize = 8;
/// A shard is not pruned below this many entries.
const PRUNE_FLOOR: usize = 64;

/// What the live set and shutdown can do to any task.
pub(crate) trait LiveTask: Send + Sync {
    fn cancel(&self);
    fn force_abandon(&self);
    fn is_decided(&self) -> bool;
}

pub(crate) struct LiveSet {
    shards: [Mutex<Shard>; SHARDS],
}

struct Shard {
    tasks: Vec<Weak<dyn LiveTask>>,
    /// Prune when `tasks` reaches this length.
    prune_at: usize,
}

impl Shard {
    fn prune(&mut self) {
        self.tasks
            .retain(|t| t.upgrade().is_some_and(|t| !t.is_decided()));
        self.tasks.shrink_to(PRUNE_FLOOR.max(2 * self.tasks.len()));
        self.prune_at = PRUNE_FLOOR.max(2 * self.tasks.len());
    }
}

impl LiveSet {
    pub(crate) fn new() -> Self {
        LiveSet {
            shards: std::array::from_fn(|_| {
                Mutex::new(Shard {
                    tasks: Vec::new(),
                    prune_at: PRUNE_FLOOR,
                })
            }),
        }
    }

    /// Registers a task. Called before the task is visible to anyone else.
    pub(crate) fn register(&self, id: TaskId, task: Weak<dyn LiveTask>) {
        let mut shard = lock(&self.shards[(id.0 as usize) % SHARDS]);
        if shard.tasks.len() >= shard.prune_at {
            shard
                .tasks
                .retain(|t| t.upgrade().is_some_and(|t| !t.is_decided()));
            shard.prune_at = PRUNE_FLOOR.max(2 * shard.tasks.len());
        }
        shard.tasks.push(task);
    }

    /// Drops entries of decided or freed tasks, skipping shards another thread holds. Called
    /// when the dispatcher goes idle, so a burst's allocations do not outlive it.
    pub(crate) fn prune(&self) {
        for shard in &self.shards {
            if let Ok(mut shard) = shard.try_lock() {
                shard.prune();
            }
        }
    }

    /// Every task undecided now, in no particular order.
    pub(crate) fn snapshot(&self) -> Vec<Arc<dyn LiveTask>> {
        let mut all = Vec::new();
        for shard in &self.shards {
            all.extend(
                lock(shard)
                    .tasks
                    .iter()
                    .filter_map(Weak::upgrade)
                    .filter(|t| !t.is_decided()),
            );
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Fake(AtomicBool);
    impl LiveTask for Fake {
        fn cancel(&self) {}
        fn force_abandon(&self) {}
        fn is_decided(&self) -> bool {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn decided_and_dropped_tasks_leave_and_the_set_stays_bounded() {
        let set = LiveSet::new();
        let mut undecided = Vec::new();
        let mut decided = Vec::new();
        for i in 0..10_000u64 {
            let t: Arc<Fake> = Arc::new(Fake(AtomicBool::new(false)));
            let weak: Weak<dyn LiveTask> = Arc::downgrade(&(t.clone() as Arc<dyn LiveTask>));
            set.register(TaskId(i), weak);
            match i % 3 {
                0 => undecided.push(t),
                1 => {
                    t.0.store(true, Ordering::SeqCst); // decided, still referenced
                    decided.push(t);
                }
                _ => drop(t), // decided and freed
            }
        }
        assert_eq!(set.snapshot().len(), undecided.len());
        let total: usize = set.shards.iter().map(|s| lock(s).tasks.len()).sum();
        assert!(
            total <= 2 * undecided.len() + SHARDS * PRUNE_FLOOR,
            "{total} entries for {} live tasks",
            undecided.len()
        );
        // Once everything is decided, an idle prune lets go of every entry.
        for t in &undecided {
            t.0.store(true, Ordering::SeqCst);
        }
        set.prune();
        let total: usize = set.shards.iter().map(|s| lock(s).tasks.len()).sum();
        assert_eq!(total, 0);
    }
}
