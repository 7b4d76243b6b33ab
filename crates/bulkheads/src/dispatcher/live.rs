//! The live set: every admitted, undecided task of one dispatcher.
//!
//! Shutdown walks it to cancel what is left; dumps read it. Registering a
//! task is a push onto the submitting thread's shard (an uncontended lock, on a cache line that
//! stays with that thread); deciding one costs nothing here. Decided tasks are dropped from a
//! shard whenever it has doubled since it was last pruned, and every shard is pruned once a
//! second by the registry's control thread: under load a shard holds at most about twice its
//! live tasks plus a constant, and after a burst it lets go.
//!
//! Entries are weak: a task lives as long as its executor or its caller holds it, never
//! because it is listed here. (A task's cell holds its dispatcher's accounts, which hold this
//! set: strong entries would make a cycle, and a dropped view would never be freed.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

// See `accounts` on the clock.
use quanta::Instant;

use super::task::id::TaskInfo;
use crate::diag::task::{TaskDump, TaskState};
use crate::sync::{lock, thread_shard};

const SHARDS: usize = 8;
/// A shard is not pruned below this many entries.
const PRUNE_FLOOR: usize = 64;

/// What the live set, shutdown and dumps can do with any task.
pub(crate) trait LiveTask: Send + Sync {
    fn cancel(&self);
    fn force_abandon(&self);
    fn is_decided(&self) -> bool;
    /// Undecided, or decided while its code still runs (abandoned): a dump shows it.
    fn is_live(&self) -> bool;
    /// The task as a dump shows it, at `now`.
    fn dump(&self, now: Instant) -> TaskDump;
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
        self.tasks.retain(is_live);
        self.prune_at = PRUNE_FLOOR.max(2 * self.tasks.len());
        self.tasks.shrink_to(self.prune_at);
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

    /// Registers a task.
    pub(crate) fn register(&self, task: Weak<dyn LiveTask>) {
        // The submitting thread's own shard: nobody else takes this lock but a pruner or a
        // snapshot, so it is uncontended.
        let mut shard = lock(&self.shards[thread_shard(SHARDS)]);
        if shard.tasks.len() >= shard.prune_at {
            shard.tasks.retain(is_live);
            shard.prune_at = PRUNE_FLOOR.max(2 * shard.tasks.len());
        }
        shard.tasks.push(task);
    }

    /// Drops decided tasks, skipping shards another thread holds.
    pub(crate) fn prune(&self) {
        for shard in &self.shards {
            if let Ok(mut shard) = shard.try_lock() {
                shard.prune();
            }
        }
    }

    /// Every live task (undecided, or abandoned and still running), in no particular order.
    /// Each shard's lock is held only while its references are copied.
    pub(crate) fn live(&self) -> Vec<Arc<dyn LiveTask>> {
        self.collect(|t| t.is_live())
    }

    /// Whether any task is live (what [`live`](Self::live) would list), without listing them.
    pub(crate) fn any_live(&self) -> bool {
        self.shards
            .iter()
            .any(|shard| lock(shard).tasks.iter().any(is_live))
    }

    /// Every task undecided now, in no particular order.
    pub(crate) fn snapshot(&self) -> Vec<Arc<dyn LiveTask>> {
        self.collect(|t| !t.is_decided())
    }

    fn collect(&self, keep: impl Fn(&dyn LiveTask) -> bool) -> Vec<Arc<dyn LiveTask>> {
        let mut all = Vec::new();
        for shard in &self.shards {
            all.extend(
                lock(shard)
                    .tasks
                    .iter()
                    .filter_map(Weak::upgrade)
                    .filter(|t| keep(&**t)),
            );
        }
        all
    }
}

/// Still held by someone, and live.
fn is_live(task: &Weak<dyn LiveTask>) -> bool {
    task.upgrade().is_some_and(|t| t.is_live())
}

/// A caller waiting for room (`run*`, `reserve` on a full dispatcher): not a task yet, but a
/// dump shows it, so work stuck at admission is as visible as work stuck in a queue. Registered
/// only on the slow path, when the caller actually has to wait.
pub(crate) struct Waiter {
    info: TaskInfo,
    dispatcher: Arc<str>,
    blocking: bool,
    since: Instant,
    done: AtomicBool,
}

impl Waiter {
    pub(crate) fn new(info: TaskInfo, dispatcher: Arc<str>, blocking: bool) -> Self {
        Waiter {
            info,
            dispatcher,
            blocking,
            since: Instant::now(),
            done: AtomicBool::new(false),
        }
    }

    /// The caller was admitted, rejected or gone: the entry leaves the dump.
    pub(crate) fn done(&self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

impl LiveTask for Waiter {
    // The waiting future belongs to its caller; shutdown answers it through admission.
    fn cancel(&self) {}
    fn force_abandon(&self) {}
    fn is_decided(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }
    fn is_live(&self) -> bool {
        !self.is_decided()
    }
    fn dump(&self, now: Instant) -> TaskDump {
        TaskDump {
            id: self.info.id,
            name: self.info.name.clone(),
            dispatcher: self.dispatcher.clone(),
            parent: self.info.parent.clone(),
            detached: false,
            location: self.info.location,
            state: TaskState::WaitingForAdmission,
            blocking: self.blocking,
            cancel_requested: false,
            age: now.saturating_duration_since(self.since),
            since_last_poll: None,
            polls: 0,
            busy: std::time::Duration::ZERO,
            await_tree: None,
        }
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
        fn is_live(&self) -> bool {
            !self.is_decided()
        }
        fn dump(&self, _now: Instant) -> TaskDump {
            unreachable!("not dumped here")
        }
    }

    #[test]
    fn decided_tasks_leave_and_the_set_stays_bounded() {
        let set = LiveSet::new();
        let mut undecided = Vec::new();
        let mut decided = Vec::new();
        for i in 0..10_000u64 {
            let t: Arc<Fake> = Arc::new(Fake(AtomicBool::new(false)));
            set.register(Arc::downgrade(&t) as Weak<dyn LiveTask>);
            match i % 3 {
                0 => undecided.push(t),
                1 => {
                    t.0.store(true, Ordering::SeqCst); // decided, still referenced
                    decided.push(t);
                }
                _ => drop(t), // undecided, but nobody holds it any more: gone
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
