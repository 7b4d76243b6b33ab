//! Every check of a declared registry, in one place: used by
//! [`DispatchersBuilder`](crate::DispatchersBuilder) for registries made in code and by the
//! configuration loader for files (which adds positions). Ranges, names, bases, cycles of
//! views, `max_wait` limits and the registry-wide thread budget. A message says what is wrong
//! and what would be valid.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::dispatcher::admission::AdmissionConfig;
use crate::dispatcher::kinds::blocking::BlockingConfig;
use crate::dispatcher::kinds::limited::LimitedConfig;
use crate::dispatcher::kinds::runtime::RuntimeConfig;
use crate::error::ConfigProblem;
use crate::registry::control;

/// The name of the shared CPU pool, always present.
pub const CPU: &str = "cpu";

/// The base name that means the Tokio runtime current when the registry is built.
pub const MAIN: &str = "main";

/// Most threads a registry starts, unless set otherwise with
/// [`DispatchersBuilder::max_threads`](crate::DispatchersBuilder::max_threads).
pub const DEFAULT_MAX_THREADS: usize = 8192;

/// The largest thread budget that can be set.
pub(crate) const MAX_MAX_THREADS: usize = 1 << 20;

/// One declared dispatcher.
#[derive(Debug, Clone)]
pub(crate) enum Spec {
    Blocking(BlockingConfig),
    Runtime(RuntimeConfig),
    Limited { base: String, config: LimitedConfig },
}

/// A whole declared registry, as the builder holds it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Declared {
    pub cpu_threads: Option<usize>,
    pub cpu_blocking_threads: Option<usize>,
    pub max_threads: Option<usize>,
    pub specs: Vec<(String, Spec)>,
}

impl Declared {
    /// The cpu pool's workers: as set, or the machine's available parallelism.
    pub(crate) fn cpu_threads(&self) -> usize {
        self.cpu_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    pub(crate) fn cpu_blocking_threads(&self) -> usize {
        self.cpu_blocking_threads
            .unwrap_or(RuntimeConfig::DEFAULT_BLOCKING_THREADS)
    }

    /// Every problem, in declaration order.
    pub(crate) fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let p = &mut problems;
        if let Some(n) = self.cpu_threads {
            check_range(p, "cpu.threads", n, limits_at("cpu.threads"));
        }
        if let Some(n) = self.cpu_blocking_threads {
            check_range(p, "cpu.blocking_threads", n, limits("blocking_threads"));
        }
        if let Some(n) = self.max_threads {
            check_range(p, "max_threads", n, limits("max_threads"));
        }
        let mut seen = BTreeSet::new();
        for (name, spec) in &self.specs {
            let key = format!("dispatchers.{name}");
            if let Err(why) = check_name(name) {
                p.push(ConfigProblem::new(&key, why));
            } else if !seen.insert(name.as_str()) {
                p.push(ConfigProblem::new(
                    &key,
                    format!("dispatcher '{name}' is declared twice; names must be unique"),
                ));
            }
            let sub = |leaf: &str| format!("{key}.{leaf}");
            match spec {
                Spec::Blocking(c) => {
                    check_range(p, &sub("threads"), c.threads, limits("threads"));
                    check_range(p, &sub("queue"), c.queue, limits("queue"));
                    check_max_wait(p, &key, c.max_wait);
                    check_queue_deadline(p, &key, c.queue_deadline);
                }
                Spec::Runtime(c) => {
                    check_range(p, &sub("workers"), c.workers, limits("workers"));
                    check_range(
                        p,
                        &sub("blocking_threads"),
                        c.blocking_threads,
                        limits("blocking_threads"),
                    );
                    check_admission(p, &key, &c.admission);
                }
                Spec::Limited { base, config } => {
                    check_range(
                        p,
                        &sub("parallelism"),
                        config.parallelism,
                        limits("parallelism"),
                    );
                    check_admission(p, &key, &config.admission);
                    self.check_base(p, name, base);
                }
            }
        }
        for cycle in self.view_cycles() {
            p.push(ConfigProblem::new(
                format!("dispatchers.{}.base", cycle[0]),
                format!(
                    "views form a cycle: {}; a view's base must lead to cpu, main, a blocking pool or a runtime",
                    cycle.join(" -> ")
                ),
            ));
        }
        // Only when each part is valid: a sum of out-of-range numbers says nothing new.
        if problems.is_empty() {
            self.check_thread_budget(&mut problems);
        }
        problems
    }

    fn check_base(&self, problems: &mut Vec<ConfigProblem>, name: &str, base: &str) {
        let known = base == CPU || base == MAIN || self.specs.iter().any(|(n, _)| n == base);
        if known {
            return;
        }
        let mut valid: Vec<&str> = vec![CPU, MAIN];
        valid.extend(
            self.specs
                .iter()
                .map(|(n, _)| n.as_str())
                .filter(|n| *n != name),
        );
        problems.push(ConfigProblem::new(
            format!("dispatchers.{name}.base"),
            format!("unknown base '{base}'{}", suggest(base, &valid, "bases")),
        ));
    }

    /// The threads the registry would start, each with what starts it.
    pub(crate) fn threads(&self) -> Vec<(String, usize)> {
        let mut parts = vec![
            ("control".to_owned(), 1 + control::BLOCKING_THREADS),
            (
                CPU.to_owned(),
                self.cpu_threads() + self.cpu_blocking_threads(),
            ),
        ];
        for (name, spec) in &self.specs {
            match spec {
                Spec::Blocking(c) => parts.push((name.clone(), c.threads)),
                Spec::Runtime(c) => parts.push((name.clone(), c.workers + c.blocking_threads)),
                Spec::Limited { .. } => {}
            }
        }
        parts
    }

    /// Thread creation failing half-way through a build is an abort waiting to happen (or a
    /// registry that cannot start): refuse at validation what exceeds the budget.
    fn check_thread_budget(&self, problems: &mut Vec<ConfigProblem>) {
        let budget = self.max_threads.unwrap_or(DEFAULT_MAX_THREADS);
        let parts = self.threads();
        let total: usize = parts.iter().map(|(_, n)| n).sum();
        if total <= budget {
            return;
        }
        let list = parts
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        problems.push(ConfigProblem::new(
            "max_threads",
            format!(
                "the registry would start {total} threads ({list}), more than max_threads {budget}; use fewer threads or raise max_threads (at most {MAX_MAX_THREADS})"
            ),
        ));
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

    /// What a view's parallelism can reach at most on its base (its threads, or its own cap).
    pub(crate) fn capacity_of(&self, name: &str) -> Option<usize> {
        if name == CPU {
            return Some(self.cpu_threads());
        }
        self.specs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, spec)| match spec {
                Spec::Blocking(c) => c.threads,
                Spec::Runtime(c) => c.workers,
                Spec::Limited { config, .. } => config.parallelism,
            })
    }
}

fn check_admission(problems: &mut Vec<ConfigProblem>, key: &str, a: &AdmissionConfig) {
    check_max_wait(problems, key, a.max_wait);
    check_queue_deadline(problems, key, a.queue_deadline);
    match a.max_concurrent {
        Some(n) => check_range(
            problems,
            &format!("{key}.max_concurrent"),
            n,
            limits("max_concurrent"),
        ),
        None if a.queue > 0 => problems.push(ConfigProblem::new(
            format!("{key}.queue"),
            "needs max_concurrent: the queue holds tasks admitted beyond the in-flight cap",
        )),
        None => {}
    }
    check_range(problems, &format!("{key}.queue"), a.queue, limits("queue"));
}

/// The valid range of the numeric key at `path` (`cpu.threads`, `dispatchers.db.queue`).
pub(crate) fn limits_at(path: &str) -> (usize, usize) {
    // The cpu pool is a runtime: its threads are workers.
    if path == "cpu.threads" {
        return limits("workers");
    }
    limits(path.rsplit('.').next().unwrap_or(path))
}

/// The valid range of a numeric key, by its last path segment. One table for the builder and
/// the config reader.
pub(crate) fn limits(key: &str) -> (usize, usize) {
    match key {
        "threads" => (1, BlockingConfig::MAX_THREADS),
        "workers" => (1, RuntimeConfig::MAX_WORKERS),
        "blocking_threads" => (1, RuntimeConfig::MAX_BLOCKING_THREADS),
        "parallelism" => (1, LimitedConfig::MAX_PARALLELISM),
        "max_concurrent" => (1, BlockingConfig::MAX_QUEUE),
        "queue" => (0, BlockingConfig::MAX_QUEUE),
        "max_threads" => (1, MAX_MAX_THREADS),
        _ => (0, usize::MAX),
    }
}

fn check_max_wait(problems: &mut Vec<ConfigProblem>, key: &str, d: Duration) {
    if d > AdmissionConfig::MAX_WAIT {
        problems.push(ConfigProblem::new(
            format!("{key}.max_wait"),
            format!("must be at most 1h, got {}", humantime::format_duration(d)),
        ));
    }
}

fn check_queue_deadline(problems: &mut Vec<ConfigProblem>, key: &str, d: Option<Duration>) {
    match d {
        Some(d) if d.is_zero() => problems.push(ConfigProblem::new(
            format!("{key}.queue_deadline"),
            "must be more than 0s (a zero deadline would reject every queued task); leave it out for no deadline",
        )),
        Some(d) if d > AdmissionConfig::MAX_WAIT => problems.push(ConfigProblem::new(
            format!("{key}.queue_deadline"),
            format!("must be at most 1h, got {}", humantime::format_duration(d)),
        )),
        _ => {}
    }
}

fn check_range(
    problems: &mut Vec<ConfigProblem>,
    key: &str,
    got: usize,
    (min, max): (usize, usize),
) {
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

/// `; did you mean 'x'? valid <what>: a, b` when a valid word is close enough, else
/// `; valid <what>: a, b`.
pub(crate) fn suggest(got: &str, valid: &[&str], what: &str) -> String {
    let list = valid.join(", ");
    let near = valid
        .iter()
        .map(|v| (strsim::damerau_levenshtein(got, v), *v))
        .filter(|(d, v)| *d <= 2.max(v.len() / 3))
        .min_by_key(|(d, _)| *d);
    match near {
        Some((_, v)) => format!("; did you mean '{v}'? valid {what}: {list}"),
        None => format!("; valid {what}: {list}"),
    }
}
