//! The isolation workloads I1–I3: the library's own timers measured while the registry's `cpu`
//! pool is saturated by CPU work, next to plain Tokio, whose timers share a runtime saturated
//! the same way.
//!
//! A registry runs its timers (`max_wait`, the `shutdown` deadline) and the time and IO
//! drivers of futures pinned to blocking pools on its control thread, not on the `cpu`
//! runtime; these workloads check that a busy `cpu` pool does not delay them:
//!
//! - I1: how long a `run_blocking` caller waits for room on a full pool with `max_wait` 20 ms
//!   before `WaitTimeout`;
//! - I2: how long `shutdown(200 ms)` takes when `cpu` work never ends: futures that never
//!   reach an `.await` (deadline + `CANCEL_GRACE`), or closures (abandoned at the deadline);
//! - I3: how long a 10 ms `tokio::time::sleep` takes in a future pinned to a pool.
//!
//! Every sample saturates afresh: [`CPU_THREADS`] workers get [`BACKLOG_JOBS`] spins of
//! [`BACKLOG_JOB`] (or, for I2, one spin per worker that never ends by itself), queued before
//! the probe starts and running by then. At the end of every sample, on success or error, the
//! spins are told to stop, and the sample waits until every one of them has ended or been
//! dropped: nothing spins on from one sample or contender into the next.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bulkheads::{BlockingConfig, CANCEL_GRACE, Dispatcher, Dispatchers, RejectReason};
use tokio::runtime::Runtime;

use crate::contenders::keep_selected;
use crate::measure::{Human, rounds, summarize, wait_until};
use crate::plan::Plan;
use crate::report::{self, Table};
use crate::workloads::Workload;

/// Workers of the saturated runtime: the registry's `cpu` pool, and the plain Tokio peer's.
const CPU_THREADS: usize = 2;
/// CPU jobs queued to saturate the workers in I1 and I3.
const BACKLOG_JOBS: usize = 100;
/// How long each of them spins (if the sample does not end first).
const BACKLOG_JOB: Duration = Duration::from_millis(5);
/// I1: the pool's `max_wait`, and the peer's `tokio::time::timeout`.
const MAX_WAIT: Duration = Duration::from_millis(20);
/// I2: the shutdown deadline.
const DEADLINE: Duration = Duration::from_millis(200);
/// I3: the sleep.
const SLEEP: Duration = Duration::from_millis(10);
/// Longest wait for saturating jobs to start or to end, or for a holding job to start,
/// before the run is declared broken.
const SETTLE_LIMIT: Duration = Duration::from_secs(10);
/// Longest wait for a probe (expected to take at most a few hundred ms) before the run is
/// declared broken: a timer that only fires once the saturation ends would otherwise hang
/// the run (a shutdown whose deadline timer shares the stuck workers never returns).
const PROBE_LIMIT: Duration = Duration::from_secs(10);

/// What an isolation workload measures.
#[derive(Clone, Copy, Debug)]
enum Probe {
    /// I1: `max_wait` on a full pool.
    MaxWait,
    /// I2: the shutdown deadline.
    Shutdown,
    /// I3: a timer in a future pinned to a pool.
    PinnedTimer,
}

/// One isolation workload.
struct Isolation {
    name: &'static str,
    probe: Probe,
}

/// I1, I2, I3.
pub fn workloads() -> Vec<Box<dyn Workload>> {
    vec![
        Box::new(Isolation {
            name: "I1",
            probe: Probe::MaxWait,
        }),
        Box::new(Isolation {
            name: "I2",
            probe: Probe::Shutdown,
        }),
        Box::new(Isolation {
            name: "I3",
            probe: Probe::PinnedTimer,
        }),
    ]
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

impl Workload for Isolation {
    fn name(&self) -> &'static str {
        self.name
    }

    fn heading(&self) -> String {
        let backlog = format!(
            "{CPU_THREADS} threads, {BACKLOG_JOBS} CPU jobs of {} queued",
            ms(BACKLOG_JOB)
        );
        let busy = format!(
            "a {CPU_THREADS}-worker Tokio runtime saturated by the same {BACKLOG_JOBS} CPU tasks"
        );
        match self.probe {
            Probe::MaxWait => format!(
                "{}: max_wait {} on a full pool (1 thread, held; queue 0), cpu pool saturated \
                 ({backlog}); time from run_blocking to WaitTimeout\n    \
                 peer: tokio::time::timeout({}) in a task spawned onto {busy}; \
                 time from the spawn to the timeout firing",
                self.name,
                ms(MAX_WAIT),
                ms(MAX_WAIT)
            ),
            Probe::Shutdown => format!(
                "{}: shutdown({}) of a registry whose cpu pool ({CPU_THREADS} threads) runs \
                 {CPU_THREADS} jobs that never end; time of the call. Stuck futures \
                 (cpu.spawn, never reaching an .await) get CANCEL_GRACE ({}) after the \
                 deadline; stuck closures (cpu.spawn_blocking) are abandoned at it\n    \
                 peer: Runtime::shutdown_timeout({}) of a {CPU_THREADS}-worker Tokio runtime \
                 whose workers run {CPU_THREADS} tasks that never end, timed on the calling \
                 thread; expected the timeout (Tokio has no cancel grace)",
                self.name,
                ms(DEADLINE),
                ms(CANCEL_GRACE),
                ms(DEADLINE)
            ),
            Probe::PinnedTimer => format!(
                "{}: a {} tokio::time::sleep in a future pinned to a pool (pool.run, 1 thread), \
                 cpu pool saturated ({backlog}); time of the call\n    \
                 peer: the same sleep in a task spawned onto {busy}; \
                 time from the spawn to the end of the sleep",
                self.name,
                ms(SLEEP)
            ),
        }
    }

    fn measure(&self, rt: &Runtime, plan: &Plan) -> Result<Table, String> {
        let entries = keep_selected(contenders(self.probe)?, |c| c.label.as_str());
        let times = rounds(entries.len(), plan, |i| {
            let c = &entries[i];
            c.sample(rt)
                .map_err(|e| format!("{} / {}: {e}", self.name, c.label))
        })?;
        let mut table = Table::new(self.name, report::ISOLATION_COLUMNS);
        let summaries: Vec<_> = times.into_iter().map(summarize).collect();
        let base = summaries.first().map(|s| s.median);
        for (c, s) in entries.iter().zip(&summaries) {
            table.row(vec![
                c.label.clone(),
                Human(s.median).to_string(),
                report::ratio(s.median, base),
                Human(c.expected).to_string(),
                report::ratio(s.median, Some(c.expected)),
                Human(s.min).to_string(),
                Human(s.max).to_string(),
            ]);
        }
        // Registries and runtimes are dropped here, outside any runtime context.
        drop(entries);
        Ok(table)
    }
}

/// One row of an isolation table.
struct Contender {
    label: String,
    /// What the contender's contract promises.
    expected: Duration,
    kind: Kind,
}

enum Kind {
    /// I1, bulkheads.
    MaxWait(Registry),
    /// I1, plain Tokio.
    Timeout(Busy),
    /// I2, bulkheads: a registry per sample, its cpu workers stuck in futures (`true`) or in
    /// closures (`false`).
    Shutdown { futures: bool },
    /// I2, plain Tokio: a runtime per sample.
    ShutdownTimeout,
    /// I3, bulkheads.
    PinnedSleep(Registry),
    /// I3, plain Tokio.
    Sleep(Busy),
}

fn contenders(probe: Probe) -> Result<Vec<Contender>, String> {
    let c = |label: String, expected: Duration, kind: Kind| Contender {
        label,
        expected,
        kind,
    };
    Ok(match probe {
        Probe::MaxWait => vec![
            c(
                format!("bulkheads run_blocking, max_wait {}", ms(MAX_WAIT)),
                MAX_WAIT,
                Kind::MaxWait(Registry::new(
                    BlockingConfig::threads(1).queue(0).max_wait(MAX_WAIT),
                )?),
            ),
            c(
                format!("tokio timeout({}) on the busy runtime", ms(MAX_WAIT)),
                MAX_WAIT,
                Kind::Timeout(Busy::new()?),
            ),
        ],
        Probe::Shutdown => vec![
            c(
                format!("bulkheads shutdown({}): stuck futures", ms(DEADLINE)),
                DEADLINE + CANCEL_GRACE,
                Kind::Shutdown { futures: true },
            ),
            c(
                format!("bulkheads shutdown({}): stuck closures", ms(DEADLINE)),
                DEADLINE,
                Kind::Shutdown { futures: false },
            ),
            c(
                format!("tokio Runtime::shutdown_timeout({})", ms(DEADLINE)),
                DEADLINE,
                Kind::ShutdownTimeout,
            ),
        ],
        Probe::PinnedTimer => vec![
            c(
                format!("bulkheads pool.run(sleep({})), 1 thread", ms(SLEEP)),
                SLEEP,
                Kind::PinnedSleep(Registry::new(BlockingConfig::threads(1))?),
            ),
            c(
                format!("tokio sleep({}) on the busy runtime", ms(SLEEP)),
                SLEEP,
                Kind::Sleep(Busy::new()?),
            ),
        ],
    })
}

impl Contender {
    /// One sample: saturate, time the probe, stop the saturation and wait until it has.
    fn sample(&self, rt: &Runtime) -> Result<Duration, String> {
        match &self.kind {
            Kind::MaxWait(r) => r.max_wait_sample(rt),
            Kind::Timeout(b) => b.timer_sample(async {
                tokio::time::timeout(MAX_WAIT, std::future::pending::<()>())
                    .await
                    .is_err()
            }),
            Kind::Shutdown { futures } => shutdown_sample(rt, *futures),
            Kind::ShutdownTimeout => shutdown_timeout_sample(),
            Kind::PinnedSleep(r) => r.pinned_sleep_sample(rt),
            Kind::Sleep(b) => b.timer_sample(async {
                tokio::time::sleep(SLEEP).await;
                true
            }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Saturation
// ---------------------------------------------------------------------------------------------

/// CPU work that saturates a runtime's workers. Each job spins for its time (or until stopped)
/// and ends at once when the saturation is stopped; a job dropped without running counts as
/// ended too. Dropping a `Saturation` tells its jobs to stop (on an error path, say).
struct Saturation {
    shared: Arc<Shared>,
    submitted: usize,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    started: AtomicUsize,
    ended: AtomicUsize,
}

/// Moved into each job: counts it as ended when the job returns or is dropped unrun.
struct Ended(Arc<Shared>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.ended.fetch_add(1, Ordering::SeqCst);
    }
}

impl Saturation {
    fn new() -> Saturation {
        Saturation {
            shared: Arc::default(),
            submitted: 0,
        }
    }

    /// A job that spins for `each`, or until stopped if `None`.
    fn job(&mut self, each: Option<Duration>) -> impl FnOnce() + Send + 'static {
        self.submitted += 1;
        let ended = Ended(self.shared.clone());
        move || {
            let ended = ended;
            let s = &ended.0;
            s.started.fetch_add(1, Ordering::SeqCst);
            let start = Instant::now();
            while !s.stop.load(Ordering::Relaxed) && each.is_none_or(|d| start.elapsed() < d) {
                std::hint::spin_loop();
            }
        }
    }

    /// Waits until `n` jobs run (so the workers are busy before the probe starts).
    fn wait_started(&self, n: usize) -> Result<(), String> {
        wait_until(SETTLE_LIMIT, || {
            self.shared.started.load(Ordering::SeqCst) >= n
        })
        .map_err(|waited| {
            format!(
                "only {} of the saturating jobs started within {}",
                self.shared.started.load(Ordering::SeqCst),
                Human(waited)
            )
        })
    }

    /// Tells every job to stop and waits until each has ended or been dropped.
    fn stop(self) -> Result<(), String> {
        self.shared.stop.store(true, Ordering::SeqCst);
        let n = self.submitted;
        wait_until(SETTLE_LIMIT, || {
            self.shared.ended.load(Ordering::SeqCst) == n
        })
        .map_err(|waited| {
            format!(
                "{} of {n} saturating jobs still running {} after being told to stop",
                n - self.shared.ended.load(Ordering::SeqCst),
                Human(waited)
            )
        })
    }
}

impl Drop for Saturation {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

/// Runs `fut` as a task on the timing runtime (the caller's side, as in a request handler,
/// outside the saturated runtime) and blocks until it is done, or fails after
/// [`PROBE_LIMIT`].
fn on_timing_runtime<T: Send + 'static>(
    rt: &Runtime,
    what: &str,
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    // The timeout is made inside the task: its timer needs the runtime's context.
    let task = rt.spawn(async move { tokio::time::timeout(PROBE_LIMIT, fut).await });
    match rt.block_on(task) {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(_)) => Err(format!(
            "{what} had not returned after {} with the cpu pool saturated",
            Human(PROBE_LIMIT)
        )),
        Err(e) => Err(format!("timing task failed: {e}")),
    }
}

// ---------------------------------------------------------------------------------------------
// bulkheads
// ---------------------------------------------------------------------------------------------

/// A registry with a `cpu` pool of [`CPU_THREADS`] and one blocking pool, `pool`.
struct Registry {
    cpu: Dispatcher,
    pool: Dispatcher,
    _dispatchers: Dispatchers,
}

impl Registry {
    fn new(pool: BlockingConfig) -> Result<Registry, String> {
        let dispatchers = Dispatchers::builder()
            .cpu_threads(CPU_THREADS)
            .blocking("pool", pool)
            .build()
            .map_err(|e| format!("bulkheads build: {e}"))?;
        let cpu = dispatchers.cpu();
        let pool = dispatchers
            .get("pool")
            .map_err(|e| format!("bulkheads get: {e}"))?;
        Ok(Registry {
            cpu,
            pool,
            _dispatchers: dispatchers,
        })
    }

    /// Queues the backlog on `cpu` (each job a task on its workers) and waits until the
    /// workers run it.
    fn saturate(&self) -> Result<(Saturation, Vec<bulkheads::JoinHandle<()>>), String> {
        let mut sat = Saturation::new();
        let mut handles = Vec::with_capacity(BACKLOG_JOBS);
        for _ in 0..BACKLOG_JOBS {
            handles.push(self.cpu.spawn_blocking(sat.job(Some(BACKLOG_JOB))));
        }
        sat.wait_started(CPU_THREADS)?;
        Ok((sat, handles))
    }

    /// I1: the pool's one thread held, the cpu pool saturated; time from `run_blocking` to
    /// `WaitTimeout`.
    fn max_wait_sample(&self, rt: &Runtime) -> Result<Duration, String> {
        // The holding job returns once `release` is dropped (at the end of the sample, or on
        // an early return).
        let (release, held) = mpsc::channel::<()>();
        let (started_tx, started) = mpsc::channel::<()>();
        let holder = self.pool.spawn_blocking(move || {
            let _ = started_tx.send(());
            let _ = held.recv();
        });
        started
            .recv_timeout(SETTLE_LIMIT)
            .map_err(|_| "the job holding the pool did not start".to_owned())?;
        let (sat, backlog) = self.saturate()?;

        let pool = self.pool.clone();
        let (elapsed, result) = on_timing_runtime(rt, "run_blocking", async move {
            let start = Instant::now();
            let result = pool.run_blocking(|| ()).await;
            (start.elapsed(), result)
        })?;

        drop(release);
        sat.stop()?;
        drop(backlog);
        rt.block_on(holder)
            .map_err(|e| format!("the job holding the pool failed: {e}"))?;
        match result {
            Err(e) if matches!(e.reject_reason(), Some(RejectReason::WaitTimeout { .. })) => {
                Ok(elapsed)
            }
            Err(e) => Err(format!("expected WaitTimeout, got: {e}")),
            Ok(()) => Err("expected WaitTimeout, but the job ran".to_owned()),
        }
    }

    /// I3: the cpu pool saturated; time of `pool.run(sleep)`.
    fn pinned_sleep_sample(&self, rt: &Runtime) -> Result<Duration, String> {
        let (sat, backlog) = self.saturate()?;
        let pool = self.pool.clone();
        let (elapsed, result) = on_timing_runtime(rt, "pool.run", async move {
            let start = Instant::now();
            // The sleep is made inside the pinned future, so its timer is the pool's (a
            // `Sleep` registers with the runtime current where it is created).
            let result = pool.run(async { tokio::time::sleep(SLEEP).await }).await;
            (start.elapsed(), result)
        })?;
        sat.stop()?;
        drop(backlog);
        result.map_err(|e| format!("pool.run failed: {e}"))?;
        Ok(elapsed)
    }
}

/// I2: a fresh registry whose cpu workers each run a job that never ends by itself (a future
/// spinning in one poll, or a closure); time of `shutdown(DEADLINE)` awaited from the timing
/// runtime.
fn shutdown_sample(rt: &Runtime, futures: bool) -> Result<Duration, String> {
    let dispatchers = Dispatchers::builder()
        .cpu_threads(CPU_THREADS)
        .build()
        .map_err(|e| format!("bulkheads build: {e}"))?;
    let cpu = dispatchers.cpu();
    let mut sat = Saturation::new();
    let mut stuck = Vec::with_capacity(CPU_THREADS);
    for _ in 0..CPU_THREADS {
        let job = sat.job(None);
        stuck.push(if futures {
            cpu.spawn(async move { job() })
        } else {
            cpu.spawn_blocking(job)
        });
    }
    sat.wait_started(CPU_THREADS)?;

    let (elapsed, report, dispatchers) = on_timing_runtime(rt, "shutdown", async move {
        let start = Instant::now();
        let report = dispatchers.shutdown(DEADLINE).await;
        (start.elapsed(), report, dispatchers)
    })?;

    sat.stop()?;
    drop(stuck);
    drop(dispatchers);
    if !report.deadline_hit {
        return Err("shutdown did not report its deadline hit, with jobs that never end".into());
    }
    Ok(elapsed)
}

// ---------------------------------------------------------------------------------------------
// Plain Tokio
// ---------------------------------------------------------------------------------------------

/// A plain Tokio runtime of [`CPU_THREADS`] workers with timers: a whole service whose
/// timers share the workers its CPU work saturates.
struct Busy(Option<Runtime>);

fn tokio_runtime() -> Result<Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(CPU_THREADS)
        .thread_name("busy-tokio")
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

impl Busy {
    fn new() -> Result<Busy, String> {
        tokio_runtime().map(|rt| Busy(Some(rt)))
    }

    fn runtime(&self) -> &Runtime {
        match &self.0 {
            Some(rt) => rt,
            None => unreachable!("the runtime is taken only on drop"),
        }
    }

    /// I1 and I3: the runtime saturated by the backlog; then `timer` in a task spawned onto
    /// it; time from the spawn to the end of `timer` (which says whether it ended as
    /// expected), measured inside the task.
    fn timer_sample(
        &self,
        timer: impl Future<Output = bool> + Send + 'static,
    ) -> Result<Duration, String> {
        let rt = self.runtime();
        let mut sat = Saturation::new();
        let mut backlog = Vec::with_capacity(BACKLOG_JOBS);
        for _ in 0..BACKLOG_JOBS {
            let job = sat.job(Some(BACKLOG_JOB));
            backlog.push(rt.spawn(async move { job() }));
        }
        sat.wait_started(CPU_THREADS)?;

        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        let probe = rt.spawn(async move {
            let ok = timer.await;
            let _ = tx.send((start.elapsed(), ok));
        });
        let reported = rx.recv_timeout(PROBE_LIMIT);

        sat.stop()?;
        drop(backlog);
        drop(probe);
        match reported {
            Ok((elapsed, true)) => Ok(elapsed),
            Ok((_, false)) => Err("the timer ended the wrong way".to_owned()),
            Err(_) => Err(format!(
                "the probe did not report within {}",
                Human(PROBE_LIMIT)
            )),
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// I2 peer: a fresh runtime whose workers each run a task that never ends by itself; time of
/// `shutdown_timeout(DEADLINE)` on this (the calling) thread.
fn shutdown_timeout_sample() -> Result<Duration, String> {
    let rt = tokio_runtime()?;
    let mut sat = Saturation::new();
    let mut stuck = Vec::with_capacity(CPU_THREADS);
    for _ in 0..CPU_THREADS {
        let job = sat.job(None);
        stuck.push(rt.spawn(async move { job() }));
    }
    sat.wait_started(CPU_THREADS)?;

    let start = Instant::now();
    rt.shutdown_timeout(DEADLINE);
    let elapsed = start.elapsed();

    sat.stop()?;
    drop(stuck);
    Ok(elapsed)
}
