//! W9, second half: how long a dump of many live tasks takes, and that tasks keep running
//! while it is taken. (The first half, the live set's cost on W1 and W4, is the
//! `track_tasks off` rows of those tables.)
//!
//! [`TASKS`] tasks are spawned on a 2-thread `cpu` pool and left idle at an `.await` (each
//! has been polled once before measuring starts). Dumps are timed first with the pool quiet,
//! then while a churner on the same pool spawns and awaits tiny tasks back to back and counts
//! them: the `churned` column is the smallest number of them that finished during one sample,
//! so a dump that stopped the pool's tasks would show 0 there. On a 2-core machine the
//! churning pool's 2 threads and the dumping thread share the cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bulkheads::Dispatchers;

use crate::measure::{Human, rounds, summarize, wait_until};
use crate::plan::Plan;
use crate::report::{Column, Table};
use crate::workloads::Workload;

/// Live tasks in the dump (divided by 10 with `--quick`).
const TASKS: usize = 100_000;
/// Longest wait for the idle tasks to have been polled, before the run is declared broken.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// Columns of W9's dump table.
const DUMP_COLUMNS: &[Column] = &[
    Column {
        title: "what",
        width: 44,
        left: true,
    },
    Column {
        title: "median",
        width: 10,
        left: false,
    },
    Column {
        title: "per task",
        width: 10,
        left: false,
    },
    Column {
        title: "min",
        width: 10,
        left: false,
    },
    Column {
        title: "max",
        width: 10,
        left: false,
    },
    Column {
        title: "churned",
        width: 8,
        left: false,
    },
];

pub struct DumpWorkload {
    tasks: usize,
}

pub fn workloads(quick: bool) -> Vec<Box<dyn Workload>> {
    let tasks = if quick { TASKS / 10 } else { TASKS };
    vec![Box::new(DumpWorkload { tasks })]
}

#[derive(Clone, Copy)]
enum Step {
    Take,
    TakeAndRender,
}

impl Workload for DumpWorkload {
    fn name(&self) -> &'static str {
        "W9"
    }

    fn heading(&self) -> String {
        format!(
            "W9: Dispatchers::dump() of {} live tasks idle at an .await on a 2-thread cpu pool, \
             quiet, then while a churner on the same pool spawns and awaits tasks back to back \
             (churned: fewest churner tasks finished during one sample; 0 would mean the dump \
             stopped the pool)",
            self.tasks
        )
    }

    fn measure(&self, _rt: &tokio::runtime::Runtime, plan: &Plan) -> Result<Table, String> {
        let d = Dispatchers::builder()
            .cpu_threads(2)
            .build()
            .map_err(|e| format!("bulkheads build: {e}"))?;
        let cpu = d.cpu();
        let (release, released) = tokio::sync::watch::channel(false);
        let polled = Arc::new(AtomicUsize::new(0));
        let mut idle = Vec::with_capacity(self.tasks);
        for _ in 0..self.tasks {
            let mut released = released.clone();
            let polled = polled.clone();
            idle.push(cpu.task("idle").spawn(async move {
                polled.fetch_add(1, Ordering::Relaxed);
                let _ = released.wait_for(|r| *r).await;
            }));
        }
        wait_until(SETTLE_LIMIT, || {
            polled.load(Ordering::Relaxed) >= self.tasks
        })
        .map_err(|_| "W9: the idle tasks were not all polled in time".to_string())?;
        let expected = |len: usize, extra: usize| len >= self.tasks && len <= self.tasks + extra;
        let mut wrong = None;

        // Quiet: nothing else runs on the pool.
        let quiet = rounds(1, plan, |_| {
            let started = Instant::now();
            let dump = d.dump();
            let elapsed = started.elapsed();
            if !expected(dump.len(), 0) {
                wrong = Some(dump.len());
            }
            Ok(elapsed)
        })?;

        let churned = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let churner = {
            let (cpu2, churned, stop) = (cpu.clone(), churned.clone(), stop.clone());
            cpu.task("churner").spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if cpu2.spawn(async {}).await.is_ok() {
                        churned.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        let steps = [Step::Take, Step::TakeAndRender];
        let mut fewest_churned = [u64::MAX; 2];
        let churning = rounds(steps.len(), plan, |i| {
            let before = churned.load(Ordering::Relaxed);
            let started = Instant::now();
            let dump = d.dump();
            let len = dump.len();
            if let Step::TakeAndRender = steps[i] {
                std::hint::black_box(dump.to_string());
            }
            let elapsed = started.elapsed();
            let during = churned.load(Ordering::Relaxed) - before;
            fewest_churned[i] = fewest_churned[i].min(during);
            // The idle tasks, the churner, and at most one churned task.
            if !expected(len, 2) {
                wrong = Some(len);
            }
            Ok(elapsed)
        });
        stop.store(true, Ordering::Relaxed);
        let _ = release.send(true);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| format!("W9 runtime: {e}"))?;
        rt.block_on(async {
            for h in idle {
                h.await.map_err(|e| e.to_string())?;
            }
            churner.await.map_err(|e| e.to_string())
        })?;
        drop(d);
        let churning = churning?;
        if let Some(len) = wrong {
            return Err(format!(
                "W9: a dump held {len} tasks, expected {} to {}",
                self.tasks,
                self.tasks + 2
            ));
        }

        let mut table = Table::new("W9", DUMP_COLUMNS);
        let mut row = |label: &str, samples: Vec<Duration>, churned: Option<u64>| {
            let s = summarize(samples);
            table.row(vec![
                label.to_owned(),
                Human(s.median).to_string(),
                Human(s.median / self.tasks as u32).to_string(),
                Human(s.min).to_string(),
                Human(s.max).to_string(),
                churned.map_or_else(|| "-".to_owned(), |c| c.to_string()),
            ]);
        };
        for samples in quiet {
            row("dump(), pool quiet", samples, None);
        }
        for (i, samples) in churning.into_iter().enumerate() {
            let label = match steps[i] {
                Step::Take => "dump(), pool churning",
                Step::TakeAndRender => "dump() and its Display, pool churning",
            };
            row(label, samples, Some(fewest_churned[i]));
        }
        Ok(table)
    }
}
