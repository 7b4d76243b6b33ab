//! [`Dispatchers`]: the named set of dispatchers of one service, its builder, and shutdown.
//!
//! All state hangs off a `Dispatchers` value: there is no global pool or runtime, and many
//! registries can live in one process. Building works inside or outside a Tokio runtime.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::dispatcher::blocking::BlockingPool;
use crate::dispatcher::core::{DispatcherCore, Executor, RegistryShared};
use crate::dispatcher::limited::{LimitedConfig, LimitedView};
use crate::dispatcher::{AdmissionConfig, Dispatcher, Kind, Stats, runtime};
use crate::error::{ConfigError, ConfigProblem, UnknownDispatcher};
use crate::failure::{Failure, FailureHandler};
use crate::sync::lock;
use crate::{BlockingConfig, RuntimeConfig};

/// The name of the shared CPU pool, always present.
pub const CPU: &str = "cpu";

/// The base name that means the Tokio runtime current when the registry is built.
pub const MAIN: &str = "main";

/// How long shutdown waits, after its deadline, for cancelled async work to reach its next
/// `.await`; work still running after that is reported as abandoned.
pub const CANCEL_GRACE: Duration = Duration::from_millis(100);

/// The named dispatchers of one service.
///
/// Owns every pool thread and runtime. [`shutdown`](Self::shutdown) drains them within a
/// deadline and reports what happened to every accepted task. Dropping it signals shutdown
/// without waiting: queued work is cancelled, async work stops at its next `.await`, running
/// blocking jobs finish on their threads, and the threads exit; it never blocks, and never
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
    /// Runtimes owned by the registry, `cpu` last; taken at shutdown.
    runtimes: Mutex<Vec<runtime::OwnedRuntime>>,
    pools: Vec<Arc<BlockingPool>>,
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

enum Spec {
    Blocking(BlockingConfig),
    Runtime(RuntimeConfig),
    Limited { base: String, config: LimitedConfig },
}

/// Builds a [`Dispatchers`]; see [`Dispatchers::builder`]. Every problem is reported at
/// once by [`build`](Self::build).
#[must_use]
pub struct DispatchersBuilder {
    cpu_threads: Option<usize>,
    specs: Vec<(String, Spec)>,
    on_failure: Option<FailureHandler>,
}

impl fmt::Debug for DispatchersBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatchersBuilder")
            .field("cpu_threads", &self.cpu_threads)
            .field(
                "dispatchers",
                &self.specs.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Dispatchers {
    /// Starts describing a registry.
    pub fn builder() -> DispatchersBuilder {
        DispatchersBuilder {
            cpu_threads: None,
            specs: Vec::new(),
            on_failure: None,
        }
    }

    /// Builds the registry a TOML document declares, with `BULKHEADS__<NAME>__<KEY>`
    /// environment overrides applied on top. Every problem of the document is reported at
    /// once, with key paths, lines and columns; nothing starts unless all is valid. See
    /// [`Config`](crate::Config) and `docs/config.md`.
    ///
    /// ```
    /// # fn main() -> Result<(), bulkheads::ConfigError> {
    /// let d = bulkheads::Dispatchers::from_toml_str(r#"
    ///     [cpu]
    ///     threads = 2
    ///
    ///     [dispatchers.legacy_db]
    ///     kind = "blocking"
    ///     threads = 4
    ///     queue = 16
    ///     max_wait = "50ms"
    ///
    ///     [dispatchers.thumbnails]
    ///     kind = "limited"
    ///     base = "cpu"
    ///     parallelism = 2
    /// "#)?;
    /// assert_eq!(d.get("legacy_db").unwrap().stats().capacity, Some(20));
    /// # Ok(()) }
    /// ```
    pub fn from_toml_str(text: &str) -> Result<Dispatchers, ConfigError> {
        let doc = crate::config::Document::parse(text)?;
        let mut config = doc.config.clone();
        doc.locate(config.apply_env())?;
        doc.locate(config.to_builder().build())
    }

    /// [`from_toml_str`](Self::from_toml_str) on a file's contents.
    pub fn from_toml_path(path: impl AsRef<std::path::Path>) -> Result<Dispatchers, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// Builds the registry a [`Config`](crate::Config) declares (embedded in a service's own
    /// configuration, say). No environment overrides are applied; call
    /// [`Config::apply_env`](crate::Config::apply_env) first for them.
    pub fn from_config(config: &crate::Config) -> Result<Dispatchers, ConfigError> {
        config.to_builder().build()
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

    /// Every dispatcher, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Dispatcher> {
        self.by_name.values()
    }

    /// Stats of every dispatcher, by name.
    pub fn stats(&self) -> Vec<Stats> {
        self.by_name.values().map(Dispatcher::stats).collect()
    }

    /// Shuts every dispatcher down within `deadline` and reports what happened to every task.
    ///
    /// Admission stops at once (`ShuttingDown`). Running and queued work may finish until the
    /// deadline; then queued work is cancelled, async work is cancelled at its next `.await`
    /// (given [`CANCEL_GRACE`] to get there), and blocking jobs still running are abandoned:
    /// they finish on their threads, which exit after them, and their results are dropped.
    /// Dispatchers are drained in dependency order (`cpu`, which serves the others, last).
    ///
    /// Calling it again, or concurrently, returns the first call's report.
    ///
    /// Await it from outside the registry's own dispatchers (from `main`, say): a task of one
    /// of them is itself in flight, so its dispatcher would not drain until the deadline, and
    /// then the task awaiting `shutdown` would be cancelled with the rest.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.finished
            .get_or_init(|| self.shut_down(deadline))
            .await
            .clone()
    }

    async fn shut_down(&self, deadline: Duration) -> ShutdownReport {
        let started = Instant::now();
        let until = tokio::time::Instant::now() + deadline;
        let order = self.shutdown_order();
        // Admission stops everywhere at once; a view's running work still reaches its base,
        // whose workers take the view's tasks without going through admission.
        for d in &order {
            d.core.close();
        }
        // Dependents drain first, while what they run on still serves them.
        let mut drained = true;
        for d in &order {
            drained &= d.core.drained_by(until).await;
        }
        if !drained {
            for d in &order {
                d.core.cancel_all();
            }
            let grace = tokio::time::Instant::now() + CANCEL_GRACE;
            for d in &order {
                if !d.core.drained_by(grace).await {
                    d.core.abandon_all();
                }
            }
        }
        self.stop_executors(&order);
        ShutdownReport {
            dispatchers: order
                .iter()
                .map(|d| DispatcherReport::from_stats(d.stats()))
                .collect(),
            elapsed: started.elapsed(),
            deadline_hit: !drained,
        }
    }

    /// Ad-hoc views (newest first), then the declared dispatchers (views before bases, `cpu`
    /// last). From this call on, a new ad-hoc view is closed at birth.
    fn shutdown_order(&self) -> Vec<Dispatcher> {
        let mut order = self.cpu.core.registry.begin_shutdown();
        order.extend(self.order.iter().cloned());
        order
    }

    fn stop_executors(&self, order: &[Dispatcher]) {
        for d in order {
            d.core.stop_executor();
        }
        for pool in &self.pools {
            pool.close();
        }
        // Dropping an `OwnedRuntime` shuts it down in the background, in vector order.
        drop(std::mem::take(&mut *lock(&self.runtimes)));
    }
}

impl Drop for Dispatchers {
    fn drop(&mut self) {
        if self.finished.initialized() {
            return;
        }
        let order = self.shutdown_order();
        for d in &order {
            d.core.close();
        }
        for d in &order {
            d.core.cancel_all();
        }
        self.stop_executors(&order);
    }
}

impl DispatchersBuilder {
    /// Threads of the shared CPU pool (1 to 1024). Default: the machine's available
    /// parallelism.
    pub fn cpu_threads(mut self, n: usize) -> Self {
        self.cpu_threads = Some(n);
        self
    }

    /// Adds a `blocking` dispatcher: a fixed pool of OS threads named `<name>-<n>`.
    pub fn blocking(mut self, name: impl Into<String>, config: BlockingConfig) -> Self {
        self.specs.push((name.into(), Spec::Blocking(config)));
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
        self.specs.push((
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
        self.specs.push((name.into(), Spec::Runtime(config)));
        self
    }

    /// Sets the root failure handler: it receives every failure nobody awaited (a detached
    /// task's panic, a panic after its `run*` caller left). Without one, such failures are
    /// logged through `tracing` at `ERROR`. A handler that panics is contained.
    pub fn on_failure(mut self, handler: impl Fn(&Failure) + Send + Sync + 'static) -> Self {
        self.on_failure = Some(Arc::new(handler));
        self
    }

    fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if let Some(n) = self.cpu_threads {
            check_range(
                &mut problems,
                "cpu.threads",
                n,
                1,
                RuntimeConfig::MAX_WORKERS,
            );
        }
        let mut seen: BTreeMap<&str, ()> = BTreeMap::new();
        for (name, spec) in &self.specs {
            let key = format!("dispatchers.{name}");
            if let Err(why) = check_name(name) {
                problems.push(ConfigProblem::new(&key, why));
            } else if seen.insert(name, ()).is_some() {
                problems.push(ConfigProblem::new(
                    &key,
                    format!("dispatcher '{name}' is declared twice; names must be unique"),
                ));
            }
            match spec {
                Spec::Blocking(c) => {
                    check_range(
                        &mut problems,
                        &format!("{key}.threads"),
                        c.threads,
                        1,
                        BlockingConfig::MAX_THREADS,
                    );
                    check_range(
                        &mut problems,
                        &format!("{key}.queue"),
                        c.queue,
                        0,
                        BlockingConfig::MAX_QUEUE,
                    );
                    check_max_wait(&mut problems, &key, c.max_wait);
                }
                Spec::Runtime(c) => {
                    check_range(
                        &mut problems,
                        &format!("{key}.workers"),
                        c.workers,
                        1,
                        RuntimeConfig::MAX_WORKERS,
                    );
                    check_admission(&mut problems, &key, &c.admission);
                }
                Spec::Limited { base, config } => {
                    check_range(
                        &mut problems,
                        &format!("{key}.parallelism"),
                        config.parallelism,
                        1,
                        LimitedConfig::MAX_PARALLELISM,
                    );
                    check_admission(&mut problems, &key, &config.admission);
                    let known =
                        base == CPU || base == MAIN || self.specs.iter().any(|(n, _)| n == base);
                    if !known {
                        let mut valid: Vec<&str> = vec![CPU, MAIN];
                        valid.extend(
                            self.specs
                                .iter()
                                .map(|(n, _)| n.as_str())
                                .filter(|n| n != name),
                        );
                        problems.push(ConfigProblem::new(
                            format!("{key}.base"),
                            format!(
                                "unknown base '{base}'{}",
                                crate::config::suggest(base, &valid, "bases")
                            ),
                        ));
                    }
                }
            }
        }
        for cycle in self.view_cycles() {
            problems.push(ConfigProblem::new(
                format!("dispatchers.{}.base", cycle[0]),
                format!(
                    "views form a cycle: {}; a view's base must lead to cpu, main, a blocking pool or a runtime",
                    cycle.join(" -> ")
                ),
            ));
        }
        problems
    }

    /// A view whose parallelism exceeds what its base can ever run is allowed (a file written
    /// for a big machine still loads on a small one) but logged: the cap will never bind.
    fn warn_unreachable_parallelism(&self, cpu_threads: usize) {
        let capacity_of = |name: &str| -> Option<usize> {
            if name == CPU {
                return Some(cpu_threads);
            }
            self.specs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, spec)| match spec {
                    Spec::Blocking(c) => c.threads,
                    Spec::Runtime(c) => c.workers,
                    Spec::Limited { config, .. } => config.parallelism,
                })
        };
        for (name, spec) in &self.specs {
            if let Spec::Limited { base, config } = spec {
                if let Some(cap) = capacity_of(base) {
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

    /// Each cycle of views through their bases, once, starting at its smallest name.
    fn view_cycles(&self) -> Vec<Vec<String>> {
        let base_of = |name: &str| {
            self.specs.iter().find_map(|(n, spec)| match spec {
                Spec::Limited { base, .. } if n == name => Some(base.as_str()),
                _ => None,
            })
        };
        let mut cycles: Vec<Vec<String>> = Vec::new();
        for (start, _) in &self.specs {
            let mut path = vec![start.as_str()];
            let mut at = start.as_str();
            while let Some(next) = base_of(at) {
                if let Some(i) = path.iter().position(|p| *p == next) {
                    let mut cycle: Vec<String> = path[i..].iter().map(|s| s.to_string()).collect();
                    let min = (0..cycle.len()).min_by_key(|&k| &cycle[k]).unwrap_or(0);
                    cycle.rotate_left(min);
                    cycle.push(cycle[0].clone());
                    if !cycles.contains(&cycle) {
                        cycles.push(cycle);
                    }
                    break;
                }
                path.push(next);
                at = next;
            }
        }
        cycles
    }

    /// Validates everything without starting anything: every problem at once. (A view over
    /// `main` is checked for a current runtime only by [`build`](Self::build).) Handy in a
    /// service's own config check.
    pub fn check(&self) -> Result<(), ConfigError> {
        let problems = self.validate();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Validates everything, then starts every thread and runtime, bases before the views over
    /// them. On error nothing keeps running.
    pub fn build(self) -> Result<Dispatchers, ConfigError> {
        let problems = self.validate();
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        // `main` is the runtime current now; a view over it needs one.
        let main = tokio::runtime::Handle::try_current().ok();
        let no_main: Vec<ConfigProblem> = self
            .specs
            .iter()
            .filter(|(_, spec)| matches!(spec, Spec::Limited { base, .. } if base == MAIN))
            .filter(|_| main.is_none())
            .map(|(name, _)| {
                ConfigProblem::new(
                    format!("dispatchers.{name}.base"),
                    "'main' is the Tokio runtime current when the registry is built, and there is none: build inside a runtime, or use 'cpu'",
                )
            })
            .collect();
        if !no_main.is_empty() {
            return Err(ConfigError::Invalid(no_main));
        }
        crate::metrics::describe();
        let cpu_threads = self.cpu_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        self.warn_unreachable_parallelism(cpu_threads);
        let start_err = |dispatcher: &str| {
            let dispatcher = dispatcher.to_owned();
            move |source| ConfigError::Start { dispatcher, source }
        };
        let cpu_rt = runtime::build(CPU, cpu_threads).map_err(start_err(CPU))?;
        let cpu_handle = cpu_rt.handle().clone();
        // From here on, an early return drops runtimes without blocking or panicking.
        let cpu_rt = runtime::OwnedRuntime::new(cpu_rt);
        let shared = Arc::new(RegistryShared::new(self.on_failure, cpu_handle.clone()));
        let cpu = Dispatcher::new(Arc::new(DispatcherCore::new(
            CPU.into(),
            Kind::Runtime,
            AdmissionConfig::default(),
            Executor::Tokio(cpu_handle),
            shared.clone(),
        )));
        let mut runtimes = vec![cpu_rt];
        let mut registry = Dispatchers {
            cpu: cpu.clone(),
            by_name: BTreeMap::new(),
            order: Vec::new(),
            runtimes: Mutex::new(Vec::new()),
            pools: Vec::new(),
            finished: tokio::sync::OnceCell::new(),
        };
        registry.by_name.insert(CPU.into(), cpu.clone());
        // Bases first: validation ruled out cycles, so every pass builds at least one.
        let mut pending = self.specs;
        let mut built_order = Vec::new();
        while !pending.is_empty() {
            let ready = pending.iter().position(|(_, spec)| match spec {
                Spec::Limited { base, .. } => {
                    base == MAIN || registry.by_name.contains_key(base.as_str())
                }
                _ => true,
            });
            let Some(i) = ready else { break };
            let (name, spec) = pending.remove(i);
            let name: Arc<str> = name.into();
            let core = match spec {
                Spec::Blocking(c) => {
                    // On error `registry` drops and stops what was started so far.
                    let pool = BlockingPool::start(&name, c.threads, shared.cpu.clone())
                        .map_err(start_err(&name))?;
                    registry.pools.push(pool.clone());
                    DispatcherCore::new(
                        name.clone(),
                        Kind::Blocking,
                        AdmissionConfig {
                            max_concurrent: None,
                            queue: c.queue,
                            max_wait: c.max_wait,
                        },
                        Executor::Pool(pool),
                        shared.clone(),
                    )
                }
                Spec::Runtime(c) => {
                    let rt = runtime::build(&name, c.workers).map_err(start_err(&name))?;
                    let handle = rt.handle().clone();
                    runtimes.push(runtime::OwnedRuntime::new(rt));
                    DispatcherCore::new(
                        name.clone(),
                        Kind::Runtime,
                        c.admission,
                        Executor::Tokio(handle),
                        shared.clone(),
                    )
                }
                Spec::Limited { base, config } => {
                    let base_executor = match (base.as_str(), &main) {
                        (MAIN, Some(handle)) => Executor::Tokio(handle.clone()),
                        (b, _) => match registry.by_name.get(b) {
                            Some(d) => d.core.executor.clone(),
                            None => break, // unreachable after validation; leaves it pending
                        },
                    };
                    DispatcherCore::new(
                        name.clone(),
                        Kind::Limited,
                        config.admission,
                        Executor::View(LimitedView::new(config.parallelism, base_executor)),
                        shared.clone(),
                    )
                }
            };
            let d = Dispatcher::new(Arc::new(core));
            built_order.push(d.clone());
            registry.by_name.insert(name, d);
        }
        // Shutdown order: views before their bases, `cpu` last.
        built_order.reverse();
        built_order.push(cpu);
        registry.order = built_order;
        // The cpu runtime serves the others (timers, pinned futures): shut down last.
        runtimes.rotate_left(1);
        *lock(&registry.runtimes) = runtimes;
        Ok(registry)
    }
}

fn check_admission(problems: &mut Vec<ConfigProblem>, key: &str, a: &AdmissionConfig) {
    check_max_wait(problems, key, a.max_wait);
    match a.max_concurrent {
        Some(n) => check_range(
            problems,
            &format!("{key}.max_concurrent"),
            n,
            1,
            BlockingConfig::MAX_QUEUE,
        ),
        None if a.queue > 0 => problems.push(ConfigProblem::new(
            format!("{key}.queue"),
            "needs max_concurrent: the queue holds tasks admitted beyond the in-flight cap",
        )),
        None => {}
    }
    check_range(
        problems,
        &format!("{key}.queue"),
        a.queue,
        0,
        BlockingConfig::MAX_QUEUE,
    );
}

/// The valid range of a numeric key, by its last path segment. One table for the builder and
/// the config reader.
pub(crate) fn limits(key: &str) -> (usize, usize) {
    match key {
        "threads" => (1, BlockingConfig::MAX_THREADS),
        "workers" => (1, RuntimeConfig::MAX_WORKERS),
        "parallelism" => (1, LimitedConfig::MAX_PARALLELISM),
        "max_concurrent" => (1, BlockingConfig::MAX_QUEUE),
        "queue" => (0, BlockingConfig::MAX_QUEUE),
        _ => (0, usize::MAX),
    }
}

/// Longest `max_wait`: a caller waiting longer than this for a slot is a bug, not a policy.
pub const MAX_WAIT_LIMIT: Duration = Duration::from_secs(3600);

fn check_max_wait(problems: &mut Vec<ConfigProblem>, key: &str, d: Duration) {
    if d > MAX_WAIT_LIMIT {
        problems.push(ConfigProblem::new(
            format!("{key}.max_wait"),
            format!("must be at most 1h, got {}", humantime::format_duration(d)),
        ));
    }
}

fn check_range(problems: &mut Vec<ConfigProblem>, key: &str, got: usize, min: usize, max: usize) {
    if got < min || got > max {
        problems.push(ConfigProblem::new(
            key,
            format!("must be between {min} and {max}, got {got}"),
        ));
    }
}

/// Dispatcher names: 1 to 64 characters of `a-z`, `0-9`, `_` and `-`, not `cpu` or `main`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!(
            "dispatcher names must be 1 to 64 characters long, got {} in '{name}'",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
    {
        return Err(format!(
            "invalid character {bad:?} in dispatcher name '{name}'; use a-z, 0-9, '_' and '-'"
        ));
    }
    if name == CPU || name == MAIN {
        return Err(format!(
            "'{name}' is reserved (the shared cpu pool, the current runtime); choose another name"
        ));
    }
    Ok(())
}

/// What [`Dispatchers::shutdown`] did to every task.
///
/// For each dispatcher, `submitted == completed + panicked + cancelled + rejected`: every
/// accepted task is accounted for. `Display` prints a table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// One line per dispatcher, in shutdown order.
    pub dispatchers: Vec<DispatcherReport>,
    /// How long shutdown took.
    pub elapsed: Duration,
    /// True when the deadline passed with work still in flight, which was then cancelled.
    pub deadline_hit: bool,
}

impl ShutdownReport {
    /// Tasks that finished with a value, over all dispatchers.
    pub fn completed(&self) -> u64 {
        self.dispatchers.iter().map(|d| d.completed).sum()
    }

    /// Tasks cancelled, over all dispatchers (abandoned ones included).
    pub fn cancelled(&self) -> u64 {
        self.dispatchers.iter().map(|d| d.cancelled).sum()
    }

    /// Started work left running, over all dispatchers.
    pub fn abandoned(&self) -> u64 {
        self.dispatchers.iter().map(|d| d.abandoned).sum()
    }

    /// The line of dispatcher `name`.
    pub fn dispatcher(&self, name: &str) -> Option<&DispatcherReport> {
        self.dispatchers.iter().find(|d| &*d.name == name)
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "shutdown in {:?}{}",
            self.elapsed,
            if self.deadline_hit {
                " (deadline hit)"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "{:<16} {:>10} {:>10} {:>9} {:>10} {:>10} {:>9} {:>11}",
            "dispatcher",
            "submitted",
            "completed",
            "panicked",
            "cancelled",
            "abandoned",
            "rejected",
            "in_flight"
        )?;
        for d in &self.dispatchers {
            writeln!(
                f,
                "{:<16} {:>10} {:>10} {:>9} {:>10} {:>10} {:>9} {:>11}",
                d.name,
                d.submitted,
                d.completed,
                d.panicked,
                d.cancelled,
                d.abandoned,
                d.rejected,
                d.in_flight
            )?;
        }
        Ok(())
    }
}

/// One dispatcher's line in a [`ShutdownReport`]: lifetime counts at the end of shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DispatcherReport {
    /// The dispatcher.
    pub name: Arc<str>,
    /// Offered tasks (admitted or rejected).
    pub submitted: u64,
    /// Finished with a value.
    pub completed: u64,
    /// Finished with a panic.
    pub panicked: u64,
    /// Cancelled (never started, cut at an `.await`, or abandoned).
    pub cancelled: u64,
    /// Of `cancelled`: started work left to finish on its thread, its result dropped.
    pub abandoned: u64,
    /// Rejected at admission (any reason).
    pub rejected: u64,
    /// Undecided tasks left; zero after a shutdown, by construction.
    pub in_flight: usize,
}

impl DispatcherReport {
    fn from_stats(s: Stats) -> Self {
        DispatcherReport {
            name: s.name,
            submitted: s.submitted,
            completed: s.completed,
            panicked: s.panicked,
            cancelled: s.cancelled,
            abandoned: s.abandoned,
            rejected: s.rejected.total(),
            in_flight: s.in_flight,
        }
    }
}
