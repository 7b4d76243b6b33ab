//! [`Dump`]: every live task of a registry, taken while the tasks run.
//!
//! Taking a dump copies, shard by shard, the references of each dispatcher's live tasks (one
//! shard lock at a time, held only for the copy), then reads each task's header and probe
//! without any lock; rendering happens after, on the copy. Tasks keep running throughout; the
//! picture is consistent per task, not across tasks.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

// See `accounts` on the clock.
use quanta::Instant;

use super::task::{Short, TaskDump, TaskState};
use crate::dispatcher::handle::Dispatcher;
use crate::dispatcher::spawn::DispatcherCore;
use crate::dispatcher::stats::Stats;
use crate::registry::Dispatchers;

/// A snapshot of every live task of a registry; see [`Dispatchers::dump`].
///
/// `Display` renders a tree: each dispatcher with a summary line (running, queued, callers
/// waiting for room, the oldest task's age), then its tasks grouped by scope or supervisor,
/// one line each, each followed by its [await-tree](TaskDump::await_tree) indented below it
/// when it has one (the `await-tree` feature).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Dump {
    /// One entry per dispatcher (declared ones, `cpu`, and ad-hoc views), with its tasks.
    pub dispatchers: Vec<DispatcherDump>,
    /// Scopes open when the dump was taken (for [`Dump::suspects`]).
    pub open_scopes: Vec<Arc<str>>,
    /// How long taking the dump took.
    pub took: Duration,
}

/// One dispatcher in a [`Dump`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DispatcherDump {
    /// Its counters and gauges when the dump was taken.
    pub stats: Stats,
    /// Its live tasks, oldest first.
    pub tasks: Vec<TaskDump>,
}

impl DispatcherDump {
    /// The age of its oldest live task.
    pub fn oldest(&self) -> Option<Duration> {
        self.tasks.iter().map(|t| t.age).max()
    }

    fn count(&self, state: TaskState) -> usize {
        self.tasks.iter().filter(|t| t.state == state).count()
    }
}

impl Dump {
    /// Every live task, dispatcher by dispatcher.
    pub fn tasks(&self) -> impl Iterator<Item = &TaskDump> {
        self.dispatchers.iter().flat_map(|d| d.tasks.iter())
    }

    /// How many live tasks the dump holds.
    pub fn len(&self) -> usize {
        self.dispatchers.iter().map(|d| d.tasks.len()).sum()
    }

    /// True when no task is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dispatcher called `name`.
    pub fn dispatcher(&self, name: &str) -> Option<&DispatcherDump> {
        self.dispatchers.iter().find(|d| &*d.stats.name == name)
    }
}

/// The live tasks of `core`, read at `now`, oldest first, each async one with its await-tree
/// (the `await-tree` feature).
pub(crate) fn tasks_of(core: &DispatcherCore, now: Instant) -> Vec<TaskDump> {
    let trees = &core.shared.trees;
    let mut tasks: Vec<TaskDump> = core
        .accounts
        .live
        .live()
        .iter()
        .map(|t| {
            let mut dump = t.dump(now);
            if !dump.blocking {
                dump.await_tree = trees.render(dump.id);
            }
            dump
        })
        .collect();
    tasks.sort_by(|a, b| b.age.cmp(&a.age).then(a.id.cmp(&b.id)));
    tasks
}

impl Dispatchers {
    /// Every live task of the registry: id, name, dispatcher, scope or supervisor, spawn site,
    /// state (queued, running, idle at an `.await`, running blocking code, abandoned), age,
    /// time since its last poll, polls and busy time; grouped by dispatcher. Tasks keep running
    /// while it is taken (no global lock). Wire it into an admin endpoint, or print it:
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// # let dispatchers = bulkheads::Dispatchers::builder().cpu_threads(1).build().unwrap();
    /// let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    /// let cpu = dispatchers.cpu();
    /// let waiting = cpu.task("waiter").spawn(async move { let _ = rx.await; });
    /// cpu.run(async {}).await.unwrap(); // the one cpu thread has polled it by now
    /// let dump = dispatchers.dump();
    /// assert_eq!(dump.len(), 1);
    /// assert_eq!(dump.tasks().next().unwrap().state, bulkheads::TaskState::Idle);
    /// println!("{dump}");
    /// // bulkheads dump: 1 live task(s) in 1 dispatcher(s), taken in ...
    /// // dispatcher 'cpu' (runtime, 1 thread): 0 running, 1 idle, 0 queued, 0 waiting for room, oldest ...
    /// //   #1 'waiter' idle at an await for ..., ... old, busy ..., 1 poll, spawned at src/main.rs:4:54
    /// tx.send(()).unwrap();
    /// waiting.await.unwrap();
    /// # }
    /// ```
    pub fn dump(&self) -> Dump {
        dump_of(self.declared())
    }
}

/// The dump of a registry's declared dispatchers (with `cpu`) and their live views.
pub(crate) fn dump_of(declared: &[Dispatcher]) -> Dump {
    let started = Instant::now();
    let mut cores: Vec<Arc<DispatcherCore>> = Vec::new();
    for d in declared {
        cores.extend(d.core.live_views());
        cores.push(d.core.clone());
    }
    let now = Instant::now();
    let dispatchers = cores
        .iter()
        .map(|core| DispatcherDump {
            stats: core.stats(),
            tasks: tasks_of(core, now),
        })
        .collect();
    Dump {
        dispatchers,
        open_scopes: declared
            .first()
            .map(Dispatcher::open_scopes)
            .unwrap_or_default(),
        took: started.elapsed(),
    }
}

impl fmt::Display for DispatcherDump {
    /// The dispatcher's summary line: `dispatcher 'legacy' (blocking, 8 threads): 8 running,
    /// 0 idle, 16 queued, 3 waiting for room, oldest 52.1ms` (its tasks are not listed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        write!(f, "dispatcher '{}' ({}", s.name, s.kind)?;
        match s.parallelism {
            Some(p) => write!(f, ", parallelism {p}")?,
            None if s.threads == 1 => f.write_str(", 1 thread")?,
            None => write!(f, ", {} threads", s.threads)?,
        }
        write!(
            f,
            "): {} running, {} idle, {} queued, {} waiting for room",
            self.count(TaskState::Running) + self.count(TaskState::RunningBlocking),
            self.count(TaskState::Idle),
            self.count(TaskState::Queued),
            s.waiting
        )?;
        let abandoned = self.count(TaskState::Abandoned);
        if abandoned > 0 {
            write!(f, ", {abandoned} abandoned still running")?;
        }
        if let Some(oldest) = self.oldest() {
            write!(f, ", oldest {}", Short(oldest))?;
        }
        Ok(())
    }
}

impl fmt::Display for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "bulkheads dump: {} live task(s) in {} dispatcher(s), taken in {}",
            self.len(),
            self.dispatchers.len(),
            Short(self.took)
        )?;
        for d in &self.dispatchers {
            writeln!(f, "{d}")?;
            // Grouped by scope or supervisor, in order of first appearance (oldest first).
            let mut groups: BTreeMap<Option<&str>, Vec<&TaskDump>> = BTreeMap::new();
            for t in &d.tasks {
                groups.entry(t.parent.as_deref()).or_default().push(t);
            }
            for (parent, tasks) in groups {
                let indent = match parent {
                    Some(path) => {
                        writeln!(f, "  {path}")?;
                        "    "
                    }
                    None => "  ",
                };
                for t in tasks {
                    writeln!(f, "{indent}{t}")?;
                    for line in t.await_tree.iter().flat_map(|tree| tree.lines()) {
                        writeln!(f, "{indent}    {line}")?;
                    }
                }
            }
        }
        Ok(())
    }
}
