//! One live task as a dump shows it: plain data, read from the task's header and probe.

use std::borrow::Cow;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use crate::dispatcher::task::id::TaskId;

/// What a live task is doing, as far as its dispatcher can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskState {
    /// Not admitted yet: its caller waits for room in a full dispatcher (`run*` and
    /// `reserve` wait up to `max_wait`). The work does not exist as a task yet; its id is the
    /// one the task will have.
    WaitingForAdmission,
    /// Admitted, waiting for a thread (or for its turn at an in-flight cap).
    Queued,
    /// Being polled now (async work).
    Running,
    /// Async work suspended at an `.await`, holding no thread.
    Idle,
    /// A blocking closure running on its thread.
    RunningBlocking,
    /// Cancelled while it ran blocking code, which cannot be interrupted: its caller has its
    /// answer, the code still runs on its thread.
    Abandoned,
}

impl TaskState {
    /// A short label (`waiting for admission`, `queued`, `running`, `idle at an await`,
    /// `running blocking code`, `abandoned, still running`).
    pub fn label(&self) -> &'static str {
        match self {
            TaskState::WaitingForAdmission => "waiting for admission",
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Idle => "idle at an await",
            TaskState::RunningBlocking => "running blocking code",
            TaskState::Abandoned => "abandoned, still running",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One live task in a [`Dump`](crate::Dump).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TaskDump {
    /// The task's id.
    pub id: TaskId,
    /// Its name, if it was given one.
    pub name: Option<Cow<'static, str>>,
    /// The dispatcher it belongs to.
    pub dispatcher: Arc<str>,
    /// The scope or supervisor it belongs to (`scope #12`, `supervisor 'ingest'/...`), if any.
    pub parent: Option<Arc<str>>,
    /// True when its join handle was dropped: nobody awaits it.
    pub detached: bool,
    /// Where it was spawned.
    pub location: &'static Location<'static>,
    /// What it is doing.
    pub state: TaskState,
    /// True for a blocking closure, false for async work.
    pub blocking: bool,
    /// True when it was asked to stop (cancelled) but has not stopped yet.
    pub cancel_requested: bool,
    /// Time since it was submitted.
    pub age: Duration,
    /// Time since its last poll began (for blocking work: since it started); `None` before
    /// it first ran.
    pub since_last_poll: Option<Duration>,
    /// Times it was polled (1 for a blocking closure that started).
    pub polls: u32,
    /// Time spent being polled (or running, for blocking work).
    pub busy: Duration,
    /// Which `.await` the task is parked on (the `await-tree` feature): its await-tree
    /// rendered when the dump was taken, one span per line, children indented by two spaces,
    /// each with the time since it was first polled (a coarse clock: a few milliseconds), the
    /// span being polled now marked `<== current`. The root names the task (its name, or
    /// `task #42`); below it come the futures it awaits that were marked with
    /// [`instrument_await`](https://docs.rs/await-tree/0.3/await_tree/trait.InstrumentAwait.html),
    /// nested as they nest. Unmarked awaits do not show.
    ///
    /// Every async task started through bulkheads runs in its own tree, keyed by its id;
    /// nothing needs setting up but the marks. Mark with the trait re-exported as
    /// `bulkheads::await_tree::InstrumentAwait` (or depend on the same 0.3 version of
    /// `await-tree`): a future marked with another version's trait finds no tree.
    ///
    /// ```
    /// # #[cfg(not(feature = "await-tree"))] fn main() {}
    /// # #[cfg(feature = "await-tree")]
    /// # #[tokio::main] async fn main() {
    /// use bulkheads::await_tree::InstrumentAwait;
    ///
    /// let dispatchers = bulkheads::Dispatchers::builder().cpu_threads(1).build().unwrap();
    /// let cpu = dispatchers.cpu();
    /// let (reply_tx, reply_rx) = tokio::sync::oneshot::channel::<u32>();
    /// let task = cpu.task("fetch-user").spawn(async move {
    ///     reply_rx.instrument_await("waiting for the reply").await
    /// });
    /// cpu.run(async {}).await.unwrap(); // the one cpu thread has polled it by now
    ///
    /// let dump = dispatchers.dump();
    /// let tree = dump.tasks().next().unwrap().await_tree.as_deref().unwrap();
    /// assert!(tree.starts_with("fetch-user ["));
    /// assert!(tree.contains("\n  waiting for the reply ["));
    /// println!("{dump}");
    /// // bulkheads dump: 1 live task(s) in 1 dispatcher(s), taken in ...
    /// // dispatcher 'cpu' (runtime, 1 thread): 0 running, 1 idle, 0 queued, 0 waiting for room, ...
    /// //   #1 'fetch-user' idle at an await for ..., 1 poll, spawned at src/main.rs:8:37
    /// //       fetch-user [1.204s]
    /// //         waiting for the reply [1.204s]
    /// reply_tx.send(7).unwrap();
    /// assert_eq!(task.await.unwrap(), Ok(7));
    /// # }
    /// ```
    ///
    /// `None` for blocking closures (they have no `.await`), callers waiting for admission,
    /// and every task when the feature is off. The field is there with or without the
    /// feature, so code that reads it compiles either way.
    pub await_tree: Option<String>,
}

impl TaskDump {
    /// The task's name, or, for a task spawned without one, a name derived from where it was
    /// spawned: the source file's name and the line, such as `handlers.rs:42`. Tasks spawned
    /// from the same line share it; the [`id`](Self::id) tells them apart.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let dispatchers = bulkheads::Dispatchers::builder().cpu_threads(1).build().unwrap();
    /// let cpu = dispatchers.cpu();
    /// let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    /// let named = cpu.task("poller").spawn(std::future::pending::<()>());
    /// let unnamed = cpu.spawn(async move { rx.await.ok() });
    ///
    /// let dump = dispatchers.dump();
    /// for task in dump.tasks() {
    ///     match &task.name {
    ///         Some(name) => assert_eq!(task.display_name(), name.as_ref()),
    ///         // The file and line of the `cpu.spawn` call, such as `main.rs:6`.
    ///         None => assert!(task.display_name().contains(".rs:")),
    ///     }
    /// }
    /// assert_eq!(dump.tasks().count(), 2);
    /// # named.abort();
    /// # tx.send(()).unwrap();
    /// # unnamed.await.unwrap();
    /// # }
    /// ```
    pub fn display_name(&self) -> Cow<'_, str> {
        match &self.name {
            Some(name) => Cow::Borrowed(name.as_ref()),
            None => {
                let file = self.location.file();
                let file = file.rsplit(['/', '\\']).next().unwrap_or(file);
                Cow::Owned(format!("{file}:{}", self.location.line()))
            }
        }
    }
}

impl fmt::Display for TaskDump {
    /// One line, such as `#42 'nightly-vacuum' running blocking code for 1.20s, 1.20s old,
    /// busy 1.20s, 1 poll, detached, spawned at src/main.rs:10:5` (busy time and polls only
    /// once the task has started). An await-tree is not part of it: [`Dump`](crate::Dump)
    /// shows it under the line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id)?;
        if let Some(name) = &self.name {
            write!(f, " '{name}'")?;
        }
        write!(f, " {}", self.state)?;
        match (self.state, self.since_last_poll) {
            (TaskState::Queued | TaskState::WaitingForAdmission, _) | (_, None) => {}
            (_, Some(d)) => write!(f, " for {}", Short(d))?,
        }
        write!(f, ", {} old", Short(self.age))?;
        // Work that has not started has no busy time or polls to show.
        if self.polls > 0 {
            if self.since_last_poll.is_some() {
                write!(f, ", busy {}", Short(self.busy))?;
            }
            write!(
                f,
                ", {} poll{}",
                self.polls,
                if self.polls == 1 { "" } else { "s" }
            )?;
        }
        if self.cancel_requested {
            f.write_str(", asked to stop")?;
        }
        if self.detached {
            f.write_str(", detached")?;
        }
        let loc = self.location;
        write!(
            f,
            ", spawned at {}:{}:{}",
            loc.file(),
            loc.line(),
            loc.column()
        )
    }
}

/// A duration with three significant digits and a unit that fits.
pub(crate) struct Short(pub Duration);

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs_f64();
        if s >= 1.0 {
            write!(f, "{s:.2}s")
        } else if s >= 1e-3 {
            write!(f, "{:.1}ms", s * 1e3)
        } else {
            write!(f, "{:.0}µs", s * 1e6)
        }
    }
}
