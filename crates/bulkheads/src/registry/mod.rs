//! [`Dispatchers`]: the named set of dispatchers of one service (this file), its builder
//! (`builder.rs`), its shutdown (`shutdown.rs`) and report (`report.rs`), what it shares with
//! every dispatcher (`shared.rs`) and its control thread (`control.rs`). Loading one from a
//! configuration is `config/`'s.
//!
//! All state hangs off a `Dispatchers` value: there is no global pool or runtime, and many
//! registries can live in one process. Building works inside or outside a Tokio runtime.

pub(crate) mod builder;
pub(crate) mod control;
pub(crate) mod report;
pub(crate) mod shared;
pub(crate) mod shutdown;
pub(crate) mod started;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use self::control::Control;
use self::report::ShutdownReport;
use crate::dispatcher::handle::Dispatcher;
use crate::dispatcher::kinds::runtime::OwnedRuntime;
use crate::dispatcher::spawn::DispatcherCore;
use crate::dispatcher::stats::Stats;
use crate::error::UnknownDispatcher;

/// The named dispatchers of one service.
///
/// Owns every pool thread and runtime, the shared `cpu` runtime (always present, even when
/// only pools are declared) and the control thread that runs the library's own timers.
/// [`shutdown`](Self::shutdown) drains them within a deadline and reports what happened to
/// every accepted task. Dropping it signals shutdown
/// without waiting: queued work is cancelled, async work stops at its next `.await`, running
/// blocking jobs are abandoned (they finish on their threads, which then exit; their callers
/// get `Cancelled`, as at a shutdown's deadline); it never blocks, and never
/// panics inside an async context. [`Dispatcher`] handles that outlive it reject new work
/// with `ShuttingDown`.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use bulkheads::{BlockingConfig, DispatchError, Dispatchers, RejectReason};
/// use std::time::Duration;
///
/// let dispatchers = Dispatchers::builder()
///     .cpu_threads(2)
///     .blocking("legacy_db", BlockingConfig::threads(2).queue(4))
///     .build()?;
/// let db = dispatchers.get("legacy_db")?;
/// let n = db.run_blocking(|| 7).await?;
/// assert_eq!(n, 7);
///
/// let report = dispatchers.shutdown(Duration::from_secs(1)).await;
/// assert_eq!(report.completed(), 1);
/// let late = db.run_blocking(|| 8).await.unwrap_err();
/// assert_eq!(late.reject_reason(), Some(&RejectReason::ShuttingDown));
/// # Ok(()) }
/// ```
pub struct Dispatchers {
    cpu: Dispatcher,
    by_name: BTreeMap<Arc<str>, Dispatcher>,
    /// Shutdown order: dependents before what they run on; `cpu` last.
    order: Vec<Dispatcher>,
    /// Runtimes owned by the registry, `cpu` first; taken at shutdown.
    runtimes: Mutex<Vec<OwnedRuntime>>,
    /// Stopped last, after everything it serves.
    control: Control,
    /// The report of the first shutdown, returned to every call (concurrent ones wait for it).
    finished: tokio::sync::OnceCell<ShutdownReport>,
}

impl fmt::Debug for Dispatchers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatchers")
            .field("dispatchers", &self.by_name.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Dispatchers {
    pub(crate) fn assemble(
        cpu: Dispatcher,
        by_name: BTreeMap<Arc<str>, Dispatcher>,
        order: Vec<Dispatcher>,
        control: Control,
        runtimes: Vec<OwnedRuntime>,
    ) -> Self {
        let d = Dispatchers {
            cpu,
            by_name,
            order,
            runtimes: Mutex::new(runtimes),
            control,
            finished: tokio::sync::OnceCell::new(),
        };
        d.start_upkeep();
        d
    }

    /// The dispatcher called `name`. The error lists the names the registry has.
    pub fn get(&self, name: &str) -> Result<Dispatcher, UnknownDispatcher> {
        self.by_name
            .get(name)
            .cloned()
            .ok_or_else(|| UnknownDispatcher {
                name: name.to_owned(),
                known: self.by_name.keys().map(|k| k.to_string()).collect(),
            })
    }

    /// The shared CPU pool, always present.
    pub fn cpu(&self) -> Dispatcher {
        self.cpu.clone()
    }

    /// Every declared dispatcher and `cpu`, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Dispatcher> {
        self.by_name.values()
    }

    /// The declared dispatchers and `cpu`, in shutdown order (views before their bases).
    pub(crate) fn declared(&self) -> &[Dispatcher] {
        &self.order
    }

    /// Stats of every declared dispatcher and `cpu`, by name.
    pub fn stats(&self) -> Vec<Stats> {
        self.by_name.values().map(Dispatcher::stats).collect()
    }

    /// On the control runtime, once a second: prune the live sets of finished tasks (so a
    /// burst's allocations do not outlive it), let go of dropped ad-hoc views that have come
    /// to rest, and warn once if tasks of others run there.
    fn start_upkeep(&self) {
        let cores: Vec<std::sync::Weak<DispatcherCore>> = self
            .by_name
            .values()
            .map(|d| Arc::downgrade(&d.core))
            .collect();
        drop(self.control.handle().spawn(async move {
            let mut warned = false;
            loop {
                tokio::time::sleep(control::UPKEEP_EVERY).await;
                let mut alive = false;
                for core in cores.iter().filter_map(std::sync::Weak::upgrade) {
                    core.accounts.live.prune();
                    core.upkeep_views();
                    alive = true;
                }
                if !alive {
                    return;
                }
                // This task is the only one of ours.
                let tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
                if tasks > 1 && !warned {
                    warned = true;
                    tracing::warn!(
                        target: "bulkheads",
                        "{} task(s) spawned with tokio::spawn from work pinned to a blocking pool run on the bulkheads control thread, beside the library's own timers; spawn them on a dispatcher instead (cpu().spawn(..))",
                        tasks - 1
                    );
                }
            }
        }));
    }
}
