//! What the W1 side benches (`w1_parts`, `w1_floor`) share: their settings, their set-up,
//! their join loop and their no-op job.

use std::fmt::Display;
use std::future::Future;
use std::hint::black_box;

/// The runtime that drives the join and the bulkheads pool measured, as both benches build
/// them.
pub struct Setup {
    /// 2 workers; the main thread drives the join on it with `block_on`.
    pub runtime: tokio::runtime::Runtime,
    /// Keeps the pool alive.
    pub registry: bulkheads::Dispatchers,
    /// A blocking pool of `threads` threads with room for a whole round.
    pub pool: bulkheads::Dispatcher,
}

impl Setup {
    /// Builds both; an error names what failed.
    pub fn new(threads: usize, jobs: usize) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        let registry = bulkheads::Dispatchers::builder()
            .cpu_threads(1)
            .blocking(
                "pool",
                bulkheads::BlockingConfig::threads(threads).queue(jobs + threads),
            )
            .build()
            .map_err(|e| format!("bulkheads build: {e}"))?;
        let pool = registry.get("pool").map_err(|e| e.to_string())?;
        Ok(Setup {
            runtime,
            registry,
            pool,
        })
    }
}

/// The no-op job of W1.
pub fn noop() -> u64 {
    black_box(1)
}

/// A setting from the environment: `None` when unset, refused when it is not text.
pub fn env(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(format!("{name}={v:?}: not valid text")),
    }
}

/// An optional numeric setting from the environment, refused unless it is in `range`.
pub fn setting(
    name: &str,
    range: std::ops::RangeInclusive<usize>,
) -> Result<Option<usize>, String> {
    match env(name)? {
        None => Ok(None),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "{name}={v:?}: expected a whole number from {} to {}",
                range.start(),
                range.end()
            )),
        },
    }
}

/// Awaits every handle in order on `runtime` (the join phase) and sums the results.
pub fn join_all<H, E>(runtime: &tokio::runtime::Runtime, handles: Vec<H>) -> Result<u64, String>
where
    H: Future<Output = Result<u64, E>>,
    E: Display,
{
    runtime.block_on(async {
        let mut sum = 0;
        for h in handles {
            sum += h.await.map_err(|e| e.to_string())?;
        }
        Ok(sum)
    })
}

/// Which contender runs at `turn` of `round`, out of `n`: the first rotates every round, and
/// odd rounds run in reverse, so that no contender always follows the same one.
pub fn turn_order(round: usize, turn: usize, n: usize) -> usize {
    if round % 2 == 0 {
        (round + turn) % n
    } else {
        (round + n - 1 - turn) % n
    }
}

/// The median of `it` (NaN when empty).
pub fn median(it: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = it.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
