//! The live set: every admitted, undecided task of one dispatcher.
//!
//! Shutdown walks it to cancel what is left; the diagnostics dump will read it. Sharded by
//! task id so that submitters on different threads rarely meet on one lock.

use std::sync::{Arc, Mutex};

use slab::Slab;

use super::task::{LiveTask, TaskId};
use crate::sync::lock;

const SHARDS: usize = 8;

pub(crate) struct LiveSet {
    shards: [Mutex<Slab<Arc<dyn LiveTask>>>; SHARDS],
}

impl LiveSet {
    pub(crate) fn new() -> Self {
        LiveSet {
            shards: std::array::from_fn(|_| Mutex::new(Slab::new())),
        }
    }

    fn shard(&self, id: TaskId) -> &Mutex<Slab<Arc<dyn LiveTask>>> {
        &self.shards[(id.0 as usize) % SHARDS]
    }

    /// Builds a task with its live key and registers it, in one step, so the key is known to
    /// the task before anyone else can see it.
    pub(crate) fn register<C: LiveTask + 'static>(
        &self,
        id: TaskId,
        build: impl FnOnce(usize) -> Arc<C>,
    ) -> Arc<C> {
        let mut shard = lock(self.shard(id));
        let entry = shard.vacant_entry();
        let task = build(entry.key());
        entry.insert(task.clone());
        task
    }

    pub(crate) fn remove(&self, id: TaskId, key: usize) {
        let removed = lock(self.shard(id)).try_remove(key);
        // Dropped outside the lock.
        drop(removed);
    }

    /// Every live task now, in no particular order.
    pub(crate) fn snapshot(&self) -> Vec<Arc<dyn LiveTask>> {
        let mut all = Vec::new();
        for shard in &self.shards {
            all.extend(lock(shard).iter().map(|(_, t)| t.clone()));
        }
        all
    }
}
