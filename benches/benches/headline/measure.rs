//! Measuring: the interleaved round-robin every workload's samples go through, the summary of
//! a contender's samples (median, min, max; of durations, or of byte counts for W8), and
//! [`Human`] durations.

use std::fmt::{self, Display};
use std::time::Duration;

use crate::plan::Plan;

/// Runs `plan.warmup + plan.samples` rounds; in each, `sample(i)` once for every contender `i`,
/// starting from a contender rotated per round, so machine noise hits all of them alike.
/// Returns, per contender, its sample times (warm-up rounds dropped).
pub fn rounds(
    contenders: usize,
    plan: &Plan,
    mut sample: impl FnMut(usize) -> Result<Duration, String>,
) -> Result<Vec<Vec<Duration>>, String> {
    let mut times = vec![Vec::with_capacity(plan.samples); contenders];
    for round in 0..plan.warmup + plan.samples {
        for k in 0..contenders {
            let i = (round + k) % contenders;
            let elapsed = sample(i)?;
            if round >= plan.warmup {
                times[i].push(elapsed);
            }
        }
    }
    Ok(times)
}

pub struct Summary<T = Duration> {
    pub median: T,
    pub min: T,
    pub max: T,
}

/// A sample value with a midpoint, for the median of an even number of samples.
pub trait Midpoint: Ord + Copy {
    fn midpoint(a: Self, b: Self) -> Self;
}

impl Midpoint for Duration {
    fn midpoint(a: Self, b: Self) -> Self {
        (a + b) / 2
    }
}

/// Byte counts (W8).
impl Midpoint for i64 {
    fn midpoint(a: Self, b: Self) -> Self {
        (a + b) / 2
    }
}

/// Median, min and max of at least one sample.
pub fn summarize<T: Midpoint>(mut v: Vec<T>) -> Summary<T> {
    v.sort_unstable();
    let len = v.len();
    let median = if len % 2 == 1 {
        v[len / 2]
    } else {
        T::midpoint(v[len / 2 - 1], v[len / 2])
    };
    Summary {
        median,
        min: v[0],
        max: v[len - 1],
    }
}

/// A duration with three significant-ish digits and a unit that fits.
pub struct Human(pub Duration);

impl Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_secs_f64() * 1e9;
        let s = if ns < 1e3 {
            format!("{ns:.0} ns")
        } else if ns < 1e6 {
            format!("{:.2} µs", ns / 1e3)
        } else if ns < 1e9 {
            format!("{:.2} ms", ns / 1e6)
        } else {
            format!("{:.3} s", ns / 1e9)
        };
        f.pad(&s)
    }
}

/// Polls `cond` every 100 µs until it holds; after `limit`, `Err` with the time waited.
pub fn wait_until(limit: Duration, cond: impl Fn() -> bool) -> Result<(), Duration> {
    let start = std::time::Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            return Err(start.elapsed());
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    Ok(())
}
