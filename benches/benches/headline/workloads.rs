//! The workload table: every workload the harness knows, in the order it runs them, and the
//! job workloads W1–W5 (their jobs, shapes and sizes) with how they are measured.
//!
//! A workload is anything that implements [`Workload`]: a name to filter on, a heading, and a
//! measurement that returns a [`Table`]. A new kind of workload (its own contenders, its own
//! columns) implements the trait in its own module and adds itself to [`all`].

use std::time::{Duration, Instant};

use crate::contenders::{self, Set};
use crate::measure::{Human, rounds, summarize};
use crate::plan::Plan;
use crate::report::{self, Table};
use crate::{isolation, layers, overload};

/// One named workload of the run.
pub trait Workload {
    /// What filters match against (case-insensitive substring), e.g. `W1`, `I2`.
    fn name(&self) -> &'static str;
    /// The line(s) printed before the workload is measured.
    fn heading(&self) -> String;
    /// Builds the contenders, measures every one of them per [`Plan`], and tears them down.
    /// Called outside any runtime context, from the main thread.
    fn measure(&self, rt: &tokio::runtime::Runtime, plan: &Plan) -> Result<Table, String>;
}

/// Every workload, in the order they run: the job workloads, the layer workload (W6), the
/// overload memory workload (W8), the dump workload (W9), then the isolation ones. `quick`
/// shrinks the job, layer, overload and dump workloads (the isolation ones have one size).
pub fn all(quick: bool) -> Vec<Box<dyn Workload>> {
    let mut all: Vec<Box<dyn Workload>> = Vec::new();
    for w in job_workloads(quick) {
        all.push(Box::new(w));
    }
    all.extend(layers::workloads(quick));
    all.extend(overload::workloads(quick));
    all.extend(crate::diag::workloads(quick));
    all.extend(isolation::workloads());
    all
}

// ---------------------------------------------------------------------------------------------
// Job workloads: W1–W5
// ---------------------------------------------------------------------------------------------

/// The no-op job: returns 1 so that the sum of results counts the jobs.
fn noop() -> u64 {
    std::hint::black_box(1)
}

/// A CPU job of 100 µs (a spin, so it holds its thread as computing would).
fn cpu_100us() -> u64 {
    let until = Instant::now() + Duration::from_micros(100);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
    1
}

/// A job that holds its thread for 1 ms.
fn sleep_1ms() -> u64 {
    std::thread::sleep(Duration::from_millis(1));
    1
}

/// How jobs are submitted and awaited.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// Submit all jobs, keep their handles, then await them in submission order.
    FanOut,
    /// Submit one job, await it, repeat.
    RoundTrip,
}

/// A workload of many small jobs, run against one [`Set`] of contenders. Every result is
/// awaited and summed, and the sum is checked against the job count.
pub struct JobWorkload {
    pub name: &'static str,
    pub set: Set,
    pub what: String,
    pub shape: Shape,
    pub job: fn() -> u64,
    pub jobs: usize,
    /// Threads of every sized pool.
    pub threads: usize,
    /// The best possible wall time, where one follows from the workload.
    pub ideal: Option<Duration>,
}

fn job_workloads(quick: bool) -> Vec<JobWorkload> {
    let scale = if quick { 10 } else { 1 };
    let w1 = 100_000 / scale;
    let w2 = 10_000 / scale;
    let w5 = 2_000 / scale;
    let w5_threads = 64;
    let w3 = 1_000 / scale;
    let w4 = 100_000 / scale;
    vec![
        JobWorkload {
            name: "W1",
            set: Set::Pools,
            what: format!("{w1} no-op blocking jobs fanned out, then all awaited"),
            shape: Shape::FanOut,
            job: noop,
            jobs: w1,
            threads: 4,
            ideal: None,
        },
        JobWorkload {
            name: "W2",
            set: Set::Pools,
            what: format!("{w2} sequential blocking round trips (submit one no-op, await it)"),
            shape: Shape::RoundTrip,
            job: noop,
            jobs: w2,
            threads: 4,
            ideal: None,
        },
        JobWorkload {
            name: "W3",
            set: Set::CappedCpu,
            what: format!("{w3} CPU jobs of 100 µs through a parallelism cap of 2, on 2 workers"),
            shape: Shape::FanOut,
            job: cpu_100us,
            jobs: w3,
            threads: 2,
            ideal: Some(Duration::from_micros(100) * w3.div_ceil(2) as u32),
        },
        JobWorkload {
            name: "W4",
            set: Set::Spawns,
            what: format!("{w4} no-op async tasks spawned, then all joined"),
            shape: Shape::FanOut,
            job: noop,
            jobs: w4,
            threads: 2,
            ideal: None,
        },
        JobWorkload {
            name: "W5",
            set: Set::Pools,
            what: format!("{w5} jobs of 1 ms thread::sleep fanned out, then all awaited"),
            shape: Shape::FanOut,
            job: sleep_1ms,
            jobs: w5,
            threads: w5_threads,
            ideal: Some(Duration::from_millis(1) * w5.div_ceil(w5_threads) as u32),
        },
    ]
}

impl Workload for JobWorkload {
    fn name(&self) -> &'static str {
        self.name
    }

    fn heading(&self) -> String {
        let mut s = format!(
            "{}: {} ({} threads per sized pool)",
            self.name, self.what, self.threads
        );
        if let Some(ideal) = self.ideal {
            s.push_str(&format!(", ideal {}", Human(ideal)));
        }
        s
    }

    fn measure(&self, rt: &tokio::runtime::Runtime, plan: &Plan) -> Result<Table, String> {
        let entries = contenders::contenders(self, rt)?;
        let (shape, job, n) = (self.shape, self.job, self.jobs);
        let times = rounds(entries.len(), plan, |i| {
            let runner = entries[i].runner.clone();
            // The awaiting side is a task on a runtime worker, as in a request handler.
            let task = rt.spawn(async move {
                let start = Instant::now();
                let sum = runner.run(shape, job, n).await;
                (start.elapsed(), sum)
            });
            let label = &entries[i].label;
            let (elapsed, sum) = rt
                .block_on(task)
                .map_err(|e| format!("{} / {label}: timing task failed: {e}", self.name))?;
            let sum = sum.map_err(|e| format!("{} / {label}: {e}", self.name))?;
            if sum != n as u64 {
                return Err(format!("{} / {label}: sum {sum}, expected {n}", self.name));
            }
            Ok(elapsed)
        })?;
        let mut table = Table::new(self.name, report::JOB_COLUMNS);
        let summaries: Vec<_> = times.into_iter().map(summarize).collect();
        let base = summaries.first().map(|s| s.median);
        for (c, s) in entries.iter().zip(&summaries) {
            table.row(vec![
                c.label.clone(),
                Human(s.median).to_string(),
                report::ratio(s.median, base),
                Human(s.median / n as u32).to_string(),
                Human(s.min).to_string(),
                Human(s.max).to_string(),
            ]);
        }
        // The contenders are dropped here, outside any runtime context.
        drop(entries);
        Ok(table)
    }
}
