//! W1 on a task core of another shape: how far below the bare pool a one-allocation task can
//! go, and what bulkheads' per-task bookkeeping costs on top of it.
//!
//! ```text
//! cargo bench -p bulkheads-benches --bench w1_floor                    # 20 rounds of 100k jobs
//! W1_FLOOR_JOBS=2000 W1_FLOOR_ROUNDS=300 cargo bench -p bulkheads-benches --bench w1_floor
//! W1_FLOOR_PARTS=admission,counters cargo bench -p bulkheads-benches --bench w1_floor
//! ```
//!
//! Four contenders run W1 (no-op jobs fanned out from one thread, then all awaited in order,
//! 4 pool threads) in alternating rounds in one process (the first contender rotates every
//! round, and odd rounds run in reverse order); one crossbeam channel and its 4 threads serve
//! the first three:
//!
//! - the bare pool: a boxed job and a Tokio oneshot per job (W1's crossbeam peer);
//! - `async-task`: the job is an `async-task` task (smol's task core: one allocation holding
//!   the future, its output and one atomic state word, written with `unsafe` inside the
//!   crate) whose schedule function sends it down the channel; the caller awaits its `Task`;
//! - `async-task` plus bookkeeping of the kind bulkheads does per task, emulated. Every such
//!   task holds a reference to the shared bookkeeping; the parts, each on or off with
//!   `W1_FLOOR_PARTS` (a comma list; all four when unset, none when set but empty), are:
//!   - `admission`: a compare-and-swap on an in-flight count against a capacity, given back
//!     by the pool thread when the job ends;
//!   - `counters`: a per-thread-sharded "admitted" count on submit and "decided" count on the
//!     pool thread, a task id from a shared counter and a clock read;
//!   - `record`: a second allocation holding what a dump shows of the task (its id, its
//!     state, its submission time), made by the submitter; without `live` the pool thread
//!     drops it;
//!   - `live`: that record entered weakly in a sharded live set pruned as it doubles (with
//!     `record` only), so that its memory is freed by the submitter's prune;
//! - bulkheads' blocking pool itself.
//!
//! The emulation leaves out much of what bulkheads does per task (names, spans, metrics,
//! contained panics, exactly-once decisions, cancellation, owned slots): it is not a design,
//! and a core built this way would cost at least what it measures. What it tells apart is how
//! much of W1's cost is the task core and how much the bookkeeping.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Instant;

mod support;
use support::{Setup, join_all, median, noop, setting, turn_order};

const JOBS: usize = 100_000;
const THREADS: usize = 4;
const SHARDS: usize = 8;

enum Job {
    Boxed(Box<dyn FnOnce() + Send>),
    Task(async_task::Runnable),
}

/// The channel's sending side, for `async-task`'s schedule function (which then captures
/// nothing: no reference count per task).
static QUEUE: OnceLock<crossbeam_channel::Sender<Job>> = OnceLock::new();

fn schedule(task: async_task::Runnable) {
    if let Some(queue) = QUEUE.get() {
        let _ = queue.send(Job::Task(task));
    }
}

/// Which parts of the bookkeeping the third contender does.
#[derive(Clone, Copy)]
struct Parts {
    admission: bool,
    counters: bool,
    record: bool,
    live: bool,
}

impl Parts {
    fn from_env() -> Result<Self, String> {
        let Some(list) = support::env("W1_FLOOR_PARTS")? else {
            return Ok(Parts {
                admission: true,
                counters: true,
                record: true,
                live: true,
            });
        };
        let mut parts = Parts {
            admission: false,
            counters: false,
            record: false,
            live: false,
        };
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "admission" => parts.admission = true,
                "counters" => parts.counters = true,
                "record" => parts.record = true,
                "live" => parts.live = true,
                other => {
                    return Err(format!(
                        "W1_FLOOR_PARTS: unknown part {other:?}; \
                         the parts are admission, counters, record, live"
                    ));
                }
            }
        }
        if parts.live && !parts.record {
            return Err(
                "W1_FLOOR_PARTS: `live` enters the task's record, so it needs `record`".into(),
            );
        }
        Ok(parts)
    }

    fn label(self) -> String {
        let names: Vec<&str> = [
            (self.admission, "admission"),
            (self.counters, "counters"),
            (self.record, "record"),
            (self.live, "live"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if names.is_empty() {
            "a reference to it only".into()
        } else {
            names.join(",")
        }
    }
}

/// What a dump would show of a task.
struct Record {
    id: u64,
    decided: AtomicU8,
    submitted: quanta::Instant,
}

#[derive(Default)]
#[repr(align(128))]
struct Shard {
    admitted: AtomicU64,
    decided: AtomicU64,
}

struct LiveShard {
    records: Vec<Weak<Record>>,
    prune_at: usize,
}

/// A value on cache lines of its own, so that counters written by different threads do not
/// share one.
#[derive(Default)]
#[repr(align(128))]
struct Padded<T>(T);

struct Book {
    ids: Padded<AtomicU64>,
    in_flight: Padded<AtomicUsize>,
    capacity: usize,
    /// Read for records made without `counters` (which reads the clock per task).
    epoch: quanta::Instant,
    shards: [Shard; SHARDS],
    live: [Padded<Mutex<LiveShard>>; SHARDS],
}

fn thread_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
    SHARD.with(|s| *s)
}

impl Book {
    fn new(capacity: usize) -> Self {
        Book {
            ids: Padded(AtomicU64::new(1)),
            in_flight: Padded(AtomicUsize::new(0)),
            capacity,
            epoch: quanta::Instant::now(),
            shards: Default::default(),
            live: std::array::from_fn(|_| {
                Padded(Mutex::new(LiveShard {
                    records: Vec::new(),
                    prune_at: 64,
                }))
            }),
        }
    }

    fn admit(&self) -> bool {
        self.in_flight
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok()
    }

    fn enter(&self, record: &Arc<Record>) {
        let mut shard = self.live[thread_shard()]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if shard.records.len() >= shard.prune_at {
            shard.records.retain(|r| {
                r.upgrade()
                    .is_some_and(|r| r.decided.load(Ordering::Relaxed) == 0)
            });
            shard.prune_at = 64.max(2 * shard.records.len());
        }
        shard.records.push(Arc::downgrade(record));
    }

    /// Submits one job the third contender's way.
    fn submit(self: &Arc<Self>, parts: Parts) -> Result<async_task::Task<u64>, String> {
        if parts.admission && !self.admit() {
            return Err("the emulated admission rejected a job".into());
        }
        let (mut id, mut submitted) = (0, None);
        if parts.counters {
            self.shards[thread_shard()]
                .admitted
                .fetch_add(1, Ordering::Relaxed);
            id = self.ids.0.fetch_add(1, Ordering::Relaxed);
            submitted = Some(quanta::Instant::now());
        }
        let record = parts.record.then(|| {
            Arc::new(Record {
                id,
                decided: AtomicU8::new(0),
                submitted: submitted.unwrap_or(self.epoch),
            })
        });
        if let (true, Some(record)) = (parts.live, &record) {
            self.enter(record);
        }
        let book = self.clone();
        let (runnable, task) = async_task::spawn(
            async move {
                let v = noop();
                if let Some(record) = record {
                    std::hint::black_box((record.id, record.submitted));
                    record.decided.store(1, Ordering::Release);
                }
                if parts.counters {
                    book.shards[thread_shard()]
                        .decided
                        .fetch_add(1, Ordering::Relaxed);
                }
                if parts.admission {
                    book.in_flight.0.fetch_sub(1, Ordering::AcqRel);
                }
                v
            },
            schedule,
        );
        runnable.schedule();
        Ok(task)
    }
}

/// An `async-task` handle as the join loop awaits it.
struct Joined(async_task::Task<u64>);

impl std::future::Future for Joined {
    type Output = Result<u64, std::convert::Infallible>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(Ok)
    }
}

fn main() -> Result<(), String> {
    let jobs = setting("W1_FLOOR_JOBS", 100..=1_000_000)?.unwrap_or(JOBS);
    let rounds = setting("W1_FLOOR_ROUNDS", 1..=10_000)?.unwrap_or(20);
    let parts = Parts::from_env()?;
    let Setup {
        runtime,
        registry: _registry,
        pool,
    } = Setup::new(THREADS, jobs)?;
    let (tx, rx) = crossbeam_channel::unbounded::<Job>();
    for _ in 0..THREADS {
        let rx = rx.clone();
        // The threads park on the channel until the process exits (`QUEUE` keeps it open).
        std::thread::spawn(move || {
            while let Ok(job) = rx.recv() {
                match job {
                    Job::Boxed(f) => f(),
                    Job::Task(t) => {
                        t.run();
                    }
                }
            }
        });
    }
    drop(rx);
    QUEUE
        .set(tx.clone())
        .map_err(|_| "the queue was set twice".to_string())?;
    let book = Arc::new(Book::new(jobs + THREADS));

    let labels = [
        format!("crossbeam pool + oneshot ({THREADS} threads)"),
        "async-task on the same pool".to_string(),
        format!("async-task + bookkeeping ({})", parts.label()),
        format!("bulkheads ({THREADS} threads)"),
    ];
    println!("W1 floor: {jobs} no-op jobs fanned out, then awaited, {THREADS} pool threads");
    println!(
        "{rounds} rounds after 2 warm-up rounds, contenders alternating; ns per job \
         (median, fastest and slowest round), and the median's ratio to the bare pool's\n"
    );
    let mut samples: [Vec<f64>; 4] = Default::default();
    for round in 0..rounds + 2 {
        for turn in 0..4 {
            let contender = turn_order(round, turn, 4);
            let start = Instant::now();
            let sum = match contender {
                0 => {
                    let handles: Vec<_> = (0..jobs)
                        .map(|_| {
                            let (done, handle) = tokio::sync::oneshot::channel();
                            let _ = tx.send(Job::Boxed(Box::new(move || {
                                let _ = done.send(noop());
                            })));
                            handle
                        })
                        .collect();
                    join_all(&runtime, handles)?
                }
                1 => {
                    let handles: Vec<_> = (0..jobs)
                        .map(|_| {
                            let (runnable, task) = async_task::spawn(async { noop() }, schedule);
                            runnable.schedule();
                            Joined(task)
                        })
                        .collect();
                    join_all(&runtime, handles)?
                }
                2 => {
                    let mut handles = Vec::with_capacity(jobs);
                    for _ in 0..jobs {
                        handles.push(Joined(book.submit(parts)?));
                    }
                    join_all(&runtime, handles)?
                }
                _ => {
                    let handles: Vec<_> = (0..jobs).map(|_| pool.spawn_blocking(noop)).collect();
                    join_all(&runtime, handles)?
                }
            };
            let took = start.elapsed();
            if sum != jobs as u64 {
                return Err(format!(
                    "{}: {sum} results, expected {jobs}",
                    labels[contender]
                ));
            }
            if round >= 2 {
                samples[contender].push(took.as_nanos() as f64 / jobs as f64);
            }
        }
    }
    let base = median(samples[0].iter().copied());
    for (label, v) in labels.iter().zip(&samples) {
        let m = median(v.iter().copied());
        let (lo, hi) = v
            .iter()
            .fold((f64::INFINITY, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        println!(
            "{label:<60} {m:>6.0} ns  ({lo:.0}–{hi:.0})  {:>5.2}x the bare pool",
            m / base
        );
    }
    Ok(())
}
