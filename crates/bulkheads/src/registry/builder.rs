//! [`DispatchersBuilder`]: declares dispatchers, validates them all at once
//! (`validate.rs`), and starts them, bases before the views over them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::Dispatchers;
use super::shared::Shared;
use super::started::{Started, start_err};
use crate::dispatcher::accounts::Accounts;
use crate::dispatcher::admission::Admission;
use crate::dispatcher::executor::Base;
use crate::dispatcher::handle::Dispatcher;
use crate::dispatcher::kind::Kind;
use crate::dispatcher::kinds::blocking::{BlockingConfig, BlockingPool};
use crate::dispatcher::kinds::limited::{LimitedConfig, LimitedView};
use crate::dispatcher::kinds::runtime::{self, OwnedRuntime, RuntimeConfig, TokioRuntime};
use crate::dispatcher::spawn::DispatcherCore;
use crate::error::{ConfigError, ConfigProblem};
use crate::supervisor::failure::{Failure, FailureHandler, FailureSink};
use crate::validate::{CPU, Declared, MAIN, Spec};

/// Builds a [`Dispatchers`]; see [`Dispatchers::builder`]. Every problem is reported at
/// once by [`build`](Self::build).
#[must_use]
pub struct DispatchersBuilder {
    declared: Declared,
    on_failure: Option<FailureHandler>,
    track_tasks: bool,
}

impl fmt::Debug for DispatchersBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatchersBuilder")
            .field("cpu_threads", &self.declared.cpu_threads)
            .field(
                "dispatchers",
                &self
                    .declared
                    .specs
                    .iter()
                    .map(|(n, _)| n)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Dispatchers {
    /// Starts describing a registry.
    pub fn builder() -> DispatchersBuilder {
        DispatchersBuilder {
            declared: Declared::default(),
            on_failure: None,
            track_tasks: true,
        }
    }
}

impl DispatchersBuilder {
    /// Threads of the shared CPU pool (1 to 1024). Default: the machine's available
    /// parallelism.
    pub fn cpu_threads(mut self, n: usize) -> Self {
        self.declared.cpu_threads = Some(n);
        self
    }

    /// Whether task runners time every poll for [`Dispatchers::dump`] (default `true`).
    ///
    /// Every task is in its dispatcher's live set either way (shutdown needs it), and dumps
    /// show each one's state and poll count. With `false` no clock is read for dumps: they
    /// show no time since the last poll and no busy time, and [`Dump::suspects`] judges how
    /// long a task has been idle or blocking by its age instead. The cost of `true` is two
    /// clock reads per poll; `docs/performance.md` measures it.
    ///
    /// [`Dump::suspects`]: crate::Dump::suspects
    pub fn track_tasks(mut self, on: bool) -> Self {
        self.track_tasks = on;
        self
    }

    /// Threads of the cpu runtime's own Tokio blocking pool (1 to 4096), which runs
    /// `tokio::fs`, DNS lookups and `tokio::task::spawn_blocking` called from cpu tasks.
    /// Default [`RuntimeConfig::DEFAULT_BLOCKING_THREADS`].
    pub fn cpu_blocking_threads(mut self, n: usize) -> Self {
        self.declared.cpu_blocking_threads = Some(n);
        self
    }

    /// The most threads the registry may start, all dispatchers together (default
    /// [`DEFAULT_MAX_THREADS`](crate::DEFAULT_MAX_THREADS)): the control thread and its
    /// blocking pool (9), the cpu pool and its blocking pool, every pool's threads, every
    /// runtime's workers and blocking pool. A declaration above it is refused at validation,
    /// naming the total and its parts, instead of failing half-way through starting threads.
    pub fn max_threads(mut self, n: usize) -> Self {
        self.declared.max_threads = Some(n);
        self
    }

    /// Adds a `blocking` dispatcher: a fixed pool of OS threads named `<name>-<n>`.
    pub fn blocking(mut self, name: impl Into<String>, config: BlockingConfig) -> Self {
        self.declared
            .specs
            .push((name.into(), Spec::Blocking(config)));
        self
    }

    /// Adds a `limited` dispatcher: a view over `base` (`"cpu"`, `"main"` — the Tokio runtime
    /// current when the registry is built — or another dispatcher) that runs at most
    /// `parallelism` of its tasks at once and owns no threads. The third argument is a
    /// parallelism or a full [`LimitedConfig`].
    ///
    /// ```
    /// # fn main() -> Result<(), bulkheads::ConfigError> {
    /// use bulkheads::{Dispatchers, LimitedConfig};
    /// let d = Dispatchers::builder()
    ///     .limited("thumbnails", "cpu", 2)
    ///     .limited("reports", "cpu", LimitedConfig::parallelism(1).max_concurrent(8).queue(32))
    ///     .build()?;
    /// assert_eq!(d.get("thumbnails").unwrap().stats().parallelism, Some(2));
    /// # Ok(()) }
    /// ```
    pub fn limited(
        mut self,
        name: impl Into<String>,
        base: impl Into<String>,
        config: impl Into<LimitedConfig>,
    ) -> Self {
        self.declared.specs.push((
            name.into(),
            Spec::Limited {
                base: base.into(),
                config: config.into(),
            },
        ));
        self
    }

    /// Adds a `runtime` dispatcher: a dedicated Tokio runtime with its own threads, IO and
    /// time drivers.
    pub fn runtime(mut self, name: impl Into<String>, config: RuntimeConfig) -> Self {
        self.declared
            .specs
            .push((name.into(), Spec::Runtime(config)));
        self
    }

    /// Sets the root failure handler: it receives every failure nobody awaited (a detached
    /// task's panic, a panic after its `run*` caller left, a panic while dropping a task's
    /// value, a panicking metrics recorder). Without one, such failures are logged through
    /// `tracing` at `ERROR`. A handler that panics is contained.
    pub fn on_failure(mut self, handler: impl Fn(&Failure) + Send + Sync + 'static) -> Self {
        self.on_failure = Some(Arc::new(handler));
        self
    }

    /// Validates everything without starting anything: every problem at once. (A view over
    /// `main` is checked for a current runtime only by [`build`](Self::build).) Handy in a
    /// service's own config check.
    pub fn check(&self) -> Result<(), ConfigError> {
        invalid(self.declared.problems())
    }

    /// A view whose parallelism exceeds what its base can ever run is allowed (a file written
    /// for a big machine still loads on a small one) but logged: the cap will never bind.
    fn warn_unreachable_parallelism(&self) {
        for (name, spec) in &self.declared.specs {
            if let Spec::Limited { base, config } = spec {
                if let Some(cap) = self.declared.capacity_of(base) {
                    if config.parallelism > cap {
                        tracing::warn!(
                            target: "bulkheads",
                            dispatcher = %name,
                            "dispatchers.{name}.parallelism is {} but its base '{base}' runs at most {cap} at once; the view's cap will never bind",
                            config.parallelism
                        );
                    }
                }
            }
        }
    }

    /// Validates everything, then starts the control thread, the cpu pool and every dispatcher,
    /// bases before the views over them. On error nothing keeps running: threads already
    /// started are stopped (pool threads and the control thread are joined).
    pub fn build(self) -> Result<Dispatchers, ConfigError> {
        invalid(self.declared.problems())?;
        // `main` is the runtime current now; a view over it needs one.
        let main = tokio::runtime::Handle::try_current().ok();
        if main.is_none() {
            invalid(
                self.declared
                    .specs
                    .iter()
                    .filter(|(_, spec)| matches!(spec, Spec::Limited { base, .. } if base == MAIN))
                    .map(|(name, _)| {
                        ConfigProblem::new(
                            format!("dispatchers.{name}.base"),
                            "'main' is the Tokio runtime current when the registry is built, and there is none: build inside a runtime, or use 'cpu'",
                        )
                    })
                    .collect(),
            )?;
        }
        crate::metrics::describe();
        self.warn_unreachable_parallelism();
        let mut started = Started::start()?;
        let failures = Arc::new(FailureSink::new(self.on_failure));
        let shared = Shared::new(started.control_handle());
        let track = self.track_tasks;
        let account = |name: &str, kind| {
            Arc::new(Accounts::new(name.into(), kind, failures.clone()).with_tracking(track))
        };
        let account_with = |name: &str, kind, deadline| {
            Arc::new(
                Accounts::new(name.into(), kind, failures.clone())
                    .with_queue_deadline(deadline)
                    .with_tracking(track),
            )
        };

        let cpu_rt = runtime::build(
            CPU,
            self.declared.cpu_threads(),
            self.declared.cpu_blocking_threads(),
        )
        .map_err(start_err(CPU))?;
        let cpu_accounts = account(CPU, Kind::Runtime);
        let cpu = Dispatcher::new(Arc::new(DispatcherCore::new(
            cpu_accounts.clone(),
            Admission::capped(&Default::default()),
            TokioRuntime::new(cpu_rt.handle().clone()).into(),
            shared.clone(),
        )));
        cpu_accounts.threads_gauge(self.declared.cpu_threads() as f64);
        started.runtimes.push(OwnedRuntime::new(cpu_rt));

        let mut by_name: BTreeMap<Arc<str>, Dispatcher> = BTreeMap::new();
        by_name.insert(CPU.into(), cpu.clone());
        // Bases first: validation ruled out cycles and unknown bases, so every pass builds one.
        let mut pending = self.declared.specs;
        let mut built = Vec::new();
        while !pending.is_empty() {
            let Some(i) = pending.iter().position(|(_, spec)| match spec {
                Spec::Limited { base, .. } => base == MAIN || by_name.contains_key(base.as_str()),
                _ => true,
            }) else {
                return Err(internal(format!(
                    "no buildable dispatcher left among {:?}",
                    pending.iter().map(|(n, _)| n).collect::<Vec<_>>()
                )));
            };
            let (name, spec) = pending.remove(i);
            let core = match spec {
                Spec::Blocking(c) => {
                    let accounts = account_with(&name, Kind::Blocking, c.queue_deadline);
                    let pool =
                        BlockingPool::start(accounts.clone(), c.threads, shared.control.clone())
                            .map_err(start_err(&name))?;
                    started.pools.push(pool.clone());
                    DispatcherCore::new(
                        accounts,
                        Admission::pool(c.threads, c.queue, c.max_wait),
                        pool.into(),
                        shared.clone(),
                    )
                }
                Spec::Runtime(c) => {
                    let rt = runtime::build(&name, c.workers, c.blocking_threads)
                        .map_err(start_err(&name))?;
                    let accounts = account_with(&name, Kind::Runtime, c.admission.queue_deadline);
                    accounts.threads_gauge(c.workers as f64);
                    // Gated: its tasks hold a slot while they await (see `TokioRuntime::gated`).
                    let executor = if c.admission.max_concurrent.is_some() {
                        TokioRuntime::gated(rt.handle().clone())
                    } else {
                        TokioRuntime::new(rt.handle().clone())
                    };
                    started.runtimes.push(OwnedRuntime::new(rt));
                    DispatcherCore::new(
                        accounts,
                        Admission::capped(&c.admission),
                        executor.into(),
                        shared.clone(),
                    )
                }
                Spec::Limited { base, config } => {
                    let base = match (base.as_str(), &main) {
                        (MAIN, Some(handle)) => Base {
                            host: TokioRuntime::new(handle.clone()),
                            admission: Arc::new(Admission::capped(&Default::default())),
                            accounts: account(MAIN, Kind::Runtime),
                        },
                        (b, _) => match by_name.get(b) {
                            Some(d) => d.core.as_base(),
                            None => {
                                return Err(internal(format!("base '{b}' of '{name}' not built")));
                            }
                        },
                    };
                    let accounts =
                        account_with(&name, Kind::Limited, config.admission.queue_deadline);
                    let view = LimitedView::new(config.parallelism, base, accounts.clone());
                    DispatcherCore::new(
                        accounts,
                        Admission::capped(&config.admission),
                        view.into(),
                        shared.clone(),
                    )
                }
            };
            let d = Dispatcher::new(Arc::new(core));
            built.push(d.clone());
            by_name.insert(name.into(), d);
        }
        // Shutdown order: views before their bases, `cpu` last.
        built.reverse();
        built.push(cpu.clone());
        let (control, runtimes) = started.finish();
        Ok(Dispatchers::assemble(
            cpu, by_name, built, control, runtimes,
        ))
    }
}

/// `Err(Invalid)` when there are problems.
fn invalid(problems: Vec<ConfigProblem>) -> Result<(), ConfigError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// A branch believed unreachable: fail loudly, with a message that says so.
fn internal(what: String) -> ConfigError {
    ConfigError::Invalid(vec![ConfigProblem::new(
        "",
        format!("bulkheads internal error while building the registry: {what}; please report it"),
    )])
}
