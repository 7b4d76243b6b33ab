//! `headline`: bulkheads side by side with its peers, in one run on one machine (DESIGN.md §8).
//!
//! ```text
//! cargo bench -p bulkheads-benches --bench headline                # full run
//! cargo bench -p bulkheads-benches --bench headline -- W1          # only workloads matching "W1"
//! cargo bench -p bulkheads-benches --bench headline -- --quick     # smoke run, seconds
//! HEADLINE_SAMPLES=21 cargo bench -p bulkheads-benches --bench headline
//! HEADLINE_CONTENDERS=bulkheads,crossbeam cargo bench -p bulkheads-benches --bench headline
//! ```
//!
//! Every workload is driven from a task on a Tokio multi-thread runtime with 2 workers (the
//! awaiting side is async). Each contender runs the workload `HEADLINE_SAMPLES` times (default
//! 11, after 2 warm-up rounds); contenders are interleaved round-robin within each round, with
//! the starting contender rotated per round, so machine noise hits all of them alike. The table
//! shows the median wall time, the ratio contender median / bulkheads median (above 1 means
//! bulkheads is faster), and min and max. Every result is awaited and summed, and the sum is
//! checked against the job count.
//!
//! Without `--bench` (what `cargo bench` passes, and `cargo test --benches` does not) the binary
//! runs in test mode: quick sizes, one sample, no warm-up, so a test run stays short.

use std::convert::Infallible;
use std::fmt::{self, Display};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bulkheads::{BlockingConfig, DispatchError, Dispatcher, Dispatchers};

/// Worker threads of the runtime that drives every workload.
const TIMING_WORKERS: usize = 2;
/// Tokio's default `max_blocking_threads`.
const TOKIO_DEFAULT_MAX_BLOCKING: usize = 512;
/// The `blocking` crate's default thread limit when `BLOCKING_MAX_THREADS` is unset.
const BLOCKING_CRATE_DEFAULT_MAX: usize = 500;

// ---------------------------------------------------------------------------------------------
// Jobs and workloads
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
enum Shape {
    /// Submit all jobs, keep their handles, then await them in submission order.
    FanOut,
    /// Submit one job, await it, repeat.
    RoundTrip,
}

/// Which contenders a workload is run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Set {
    /// Blocking pools (W1, W2, W5).
    Pools,
    /// CPU jobs through a parallelism cap (W3).
    CappedCpu,
    /// No-op async tasks spawned and joined (W4).
    Spawns,
}

/// One row group of the table.
struct Workload {
    name: &'static str,
    set: Set,
    what: String,
    shape: Shape,
    job: fn() -> u64,
    jobs: usize,
    /// Threads of every sized pool.
    threads: usize,
    /// The best possible wall time, where one follows from the workload.
    ideal: Option<Duration>,
}

fn workloads(quick: bool) -> Vec<Workload> {
    let scale = if quick { 10 } else { 1 };
    let w1 = 100_000 / scale;
    let w2 = 10_000 / scale;
    let w5 = 2_000 / scale;
    let w5_threads = 64;
    let w3 = 1_000 / scale;
    let w4 = 100_000 / scale;
    vec![
        Workload {
            name: "W1",
            set: Set::Pools,
            what: format!("{w1} no-op blocking jobs fanned out, then all awaited"),
            shape: Shape::FanOut,
            job: noop,
            jobs: w1,
            threads: 4,
            ideal: None,
        },
        Workload {
            name: "W2",
            set: Set::Pools,
            what: format!("{w2} sequential blocking round trips (submit one no-op, await it)"),
            shape: Shape::RoundTrip,
            job: noop,
            jobs: w2,
            threads: 4,
            ideal: None,
        },
        Workload {
            name: "W3",
            set: Set::CappedCpu,
            what: format!("{w3} CPU jobs of 100 µs through a parallelism cap of 2, on 2 workers"),
            shape: Shape::FanOut,
            job: cpu_100us,
            jobs: w3,
            threads: 2,
            ideal: Some(Duration::from_micros(100) * w3.div_ceil(2) as u32),
        },
        Workload {
            name: "W4",
            set: Set::Spawns,
            what: format!("{w4} no-op async tasks spawned, then all joined"),
            shape: Shape::FanOut,
            job: noop,
            jobs: w4,
            threads: 2,
            ideal: None,
        },
        Workload {
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

// ---------------------------------------------------------------------------------------------
// Contenders
// ---------------------------------------------------------------------------------------------

/// A pool that runs one job and hands back a future of its result.
trait Pool: Send + Sync + 'static {
    type Error: Display;
    type Handle: Future<Output = Result<u64, Self::Error>> + Send + 'static;
    fn submit(&self, job: fn() -> u64) -> Self::Handle;
}

async fn fan_out<P: Pool>(pool: &P, job: fn() -> u64, n: usize) -> Result<u64, String> {
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        handles.push(pool.submit(job));
    }
    let mut sum = 0;
    for h in handles {
        sum += h.await.map_err(|e| e.to_string())?;
    }
    Ok(sum)
}

async fn round_trips<P: Pool>(pool: &P, job: fn() -> u64, n: usize) -> Result<u64, String> {
    let mut sum = 0;
    for _ in 0..n {
        sum += pool.submit(job).await.map_err(|e| e.to_string())?;
    }
    Ok(sum)
}

type Run = Pin<Box<dyn Future<Output = Result<u64, String>> + Send>>;

/// A pool with its generic drivers behind one object-safe call.
trait Runner: Send + Sync {
    fn run(self: Arc<Self>, shape: Shape, job: fn() -> u64, n: usize) -> Run;
}

impl<P: Pool> Runner for P {
    fn run(self: Arc<Self>, shape: Shape, job: fn() -> u64, n: usize) -> Run {
        Box::pin(async move {
            match shape {
                Shape::FanOut => fan_out(&*self, job, n).await,
                Shape::RoundTrip => round_trips(&*self, job, n).await,
            }
        })
    }
}

/// Adapts a future that cannot fail to the `Result` that [`Pool::Handle`] wants.
struct AlwaysOk<F>(F);

impl<F: Future + Unpin> Future for AlwaysOk<F> {
    type Output = Result<F::Output, Infallible>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(Ok)
    }
}

/// Contender 1: bulkheads: a `blocking` dispatcher with a queue that holds the whole fan-out.
struct Bulkheads {
    pool: Dispatcher,
    _registry: Dispatchers,
}

impl Bulkheads {
    fn new(threads: usize, queue: usize) -> Result<Self, String> {
        let registry = Dispatchers::builder()
            .cpu_threads(1)
            .blocking("pool", BlockingConfig::threads(threads).queue(queue))
            .build()
            .map_err(|e| format!("bulkheads build: {e}"))?;
        let pool = registry
            .get("pool")
            .map_err(|e| format!("bulkheads get: {e}"))?;
        Ok(Bulkheads {
            pool,
            _registry: registry,
        })
    }
}

impl Pool for Bulkheads {
    type Error = DispatchError;
    type Handle = bulkheads::JoinHandle<u64>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        self.pool.spawn_blocking(job)
    }
}

/// Contender 2: `tokio::task::spawn_blocking` on the timing runtime (default limit, 512 threads).
struct TokioDefault;

impl Pool for TokioDefault {
    type Error = tokio::task::JoinError;
    type Handle = tokio::task::JoinHandle<u64>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        tokio::task::spawn_blocking(job)
    }
}

/// Contender 3: `spawn_blocking` on a separate runtime, its blocking pool sized to the workload.
struct TokioSized {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl TokioSized {
    fn new(threads: usize) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(threads)
            .thread_name("tokio-sized")
            .build()
            .map_err(|e| format!("tokio sized runtime: {e}"))?;
        let handle = runtime.handle().clone();
        Ok(TokioSized {
            runtime: Some(runtime),
            handle,
        })
    }
}

impl Drop for TokioSized {
    fn drop(&mut self) {
        // Never blocks, so dropping is safe from any context.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Pool for TokioSized {
    type Error = tokio::task::JoinError;
    type Handle = tokio::task::JoinHandle<u64>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        self.handle.spawn_blocking(job)
    }
}

/// Contender 4: `blocking::unblock`: the `blocking` crate's global pool, at its own default size.
struct BlockingCrate;

impl Pool for BlockingCrate {
    type Error = Infallible;
    type Handle = AlwaysOk<blocking::Task<u64>>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        AlwaysOk(blocking::unblock(job))
    }
}

/// Contender 5: `threadpool::ThreadPool` with a Tokio oneshot per job.
struct ThreadPoolPeer(threadpool::ThreadPool);

impl Pool for ThreadPoolPeer {
    type Error = tokio::sync::oneshot::error::RecvError;
    type Handle = tokio::sync::oneshot::Receiver<u64>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.0.execute(move || {
            let _ = tx.send(job());
        });
        rx
    }
}

type BoxedJob = Box<dyn FnOnce() + Send + 'static>;

/// Contender 6: A hand-rolled pool: N threads receiving boxed closures from one unbounded crossbeam
/// channel, with a Tokio oneshot per job.
struct CrossbeamPool {
    tx: Option<crossbeam_channel::Sender<BoxedJob>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CrossbeamPool {
    fn new(n: usize) -> Result<Self, String> {
        let (tx, rx) = crossbeam_channel::unbounded::<BoxedJob>();
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let rx = rx.clone();
            let t = std::thread::Builder::new()
                .name(format!("crossbeam-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })
                .map_err(|e| format!("crossbeam pool thread: {e}"))?;
            threads.push(t);
        }
        Ok(CrossbeamPool {
            tx: Some(tx),
            threads,
        })
    }
}

impl Drop for CrossbeamPool {
    fn drop(&mut self) {
        drop(self.tx.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Pool for CrossbeamPool {
    type Error = tokio::sync::oneshot::error::RecvError;
    type Handle = tokio::sync::oneshot::Receiver<u64>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Some(pool) = &self.tx {
            // On failure the closure, and with it `tx`, is dropped: `rx` then reports it.
            let _ = pool.send(Box::new(move || {
                let _ = tx.send(job());
            }));
        }
        rx
    }
}

/// bulkheads: a limited view of the given parallelism over `main` (the runtime current at
/// build). CPU jobs go through `spawn_blocking` (run on the base's workers), async ones
/// through `spawn`.
struct BulkheadsView {
    view: Dispatcher,
    asynchronous: bool,
    _registry: Dispatchers,
}

impl BulkheadsView {
    fn new(parallelism: usize, asynchronous: bool) -> Result<Self, String> {
        let registry = Dispatchers::builder()
            .cpu_threads(1)
            .limited("view", "main", parallelism)
            .build()
            .map_err(|e| format!("bulkheads build: {e}"))?;
        let view = registry
            .get("view")
            .map_err(|e| format!("bulkheads get: {e}"))?;
        Ok(BulkheadsView {
            view,
            asynchronous,
            _registry: registry,
        })
    }
}

impl Pool for BulkheadsView {
    type Error = DispatchError;
    type Handle = bulkheads::JoinHandle<u64>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        if self.asynchronous {
            self.view.spawn(async move { job() })
        } else {
            self.view.spawn_blocking(job)
        }
    }
}

/// `tokio::spawn` with a `Semaphore` permit held around the work: what people use today to
/// cap a subsystem (it caps concurrency; for CPU jobs that is parallelism).
struct TokioSemaphore(Arc<tokio::sync::Semaphore>);

impl Pool for TokioSemaphore {
    type Error = tokio::task::JoinError;
    type Handle = tokio::task::JoinHandle<u64>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        let sem = self.0.clone();
        tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            job()
        })
    }
}

/// A rayon pool with a Tokio oneshot per job.
struct RayonPool(rayon::ThreadPool);

impl RayonPool {
    fn new(n: usize) -> Result<Self, String> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("rayon-{i}"))
            .build()
            .map(RayonPool)
            .map_err(|e| format!("rayon pool: {e}"))
    }
}

impl Pool for RayonPool {
    type Error = tokio::sync::oneshot::error::RecvError;
    type Handle = tokio::sync::oneshot::Receiver<u64>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.0.spawn(move || {
            let _ = tx.send(job());
        });
        rx
    }
}

/// Plain `tokio::spawn` on the timing runtime.
struct TokioSpawn;

impl Pool for TokioSpawn {
    type Error = tokio::task::JoinError;
    type Handle = tokio::task::JoinHandle<u64>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        tokio::spawn(async move { job() })
    }
}

/// The alternative shape for a view (DESIGN.md 4): a plain `tokio::spawn` whose every poll
/// must hold one of n permits of a fair semaphore. Keeps Tokio's task identity; pays a wasted
/// wake per denied poll.
struct PollGatePeer(Arc<tokio::sync::Semaphore>);

struct PollGated<F> {
    fut: Pin<Box<F>>,
    sem: Arc<tokio::sync::Semaphore>,
    acquire: Option<Pin<Box<AcquireFuture>>>,
}

type AcquireFuture = dyn Future<Output = Result<tokio::sync::OwnedSemaphorePermit, tokio::sync::AcquireError>>
    + Send;

impl<F: Future> Future for PollGated<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let permit = match this.sem.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let sem = this.sem.clone();
                let acquire = this
                    .acquire
                    .get_or_insert_with(|| Box::pin(sem.acquire_owned()));
                match acquire.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(p)) => {
                        this.acquire = None;
                        p
                    }
                    Poll::Ready(Err(_)) => return Poll::Pending,
                }
            }
        };
        let out = this.fut.as_mut().poll(cx);
        drop(permit);
        out
    }
}

impl Pool for PollGatePeer {
    type Error = tokio::task::JoinError;
    type Handle = tokio::task::JoinHandle<u64>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        tokio::spawn(PollGated {
            fut: Box::pin(async move { job() }),
            sem: self.0.clone(),
            acquire: None,
        })
    }
}

struct Contender {
    label: String,
    runner: Arc<dyn Runner>,
}

fn contenders(w: &Workload, rt: &tokio::runtime::Runtime) -> Result<Vec<Contender>, String> {
    let all = match w.set {
        Set::Pools => pool_contenders(w)?,
        Set::CappedCpu | Set::Spawns => capped_contenders(w, rt)?,
    };
    // HEADLINE_CONTENDERS=bulkheads,crossbeam keeps only contenders whose label contains one
    // of the words (for profiling one contender alone).
    Ok(match std::env::var("HEADLINE_CONTENDERS") {
        Ok(words) => all
            .into_iter()
            .filter(|c| words.split(',').any(|w| c.label.contains(w.trim())))
            .collect(),
        Err(_) => all,
    })
}

fn capped_contenders(w: &Workload, rt: &tokio::runtime::Runtime) -> Result<Vec<Contender>, String> {
    let n = w.threads;
    let c = |label: String, runner: Arc<dyn Runner>| Contender { label, runner };
    // Views over `main`: the timing runtime itself, the same 2 workers every peer here uses.
    let asynchronous = w.set == Set::Spawns;
    let view = {
        let _ctx = rt.enter();
        BulkheadsView::new(n, asynchronous)?
    };
    let mut all = vec![c(
        format!("bulkheads view (parallelism {n}, over main)"),
        Arc::new(view),
    )];
    match w.set {
        Set::CappedCpu => {
            all.push(c(
                format!("tokio::spawn + Semaphore({n})"),
                Arc::new(TokioSemaphore(Arc::new(tokio::sync::Semaphore::new(n)))),
            ));
            all.push(c(
                format!("rayon pool ({n} threads) + oneshot"),
                Arc::new(RayonPool::new(n)?),
            ));
        }
        _ => all.push(c("tokio::spawn".to_owned(), Arc::new(TokioSpawn))),
    }
    all.push(c(
        format!("poll gate prototype ({n} permits)"),
        Arc::new(PollGatePeer(Arc::new(tokio::sync::Semaphore::new(n)))),
    ));
    Ok(all)
}

fn pool_contenders(w: &Workload) -> Result<Vec<Contender>, String> {
    let n = w.threads;
    // Headroom over the fan-out so that a permit released a moment late never rejects.
    let queue = w.jobs + n;
    let c = |label: String, runner: Arc<dyn Runner>| Contender { label, runner };
    let all = vec![
        c(
            format!("bulkheads ({n} threads)"),
            Arc::new(Bulkheads::new(n, queue)?),
        ),
        c(
            format!("tokio spawn_blocking default ({TOKIO_DEFAULT_MAX_BLOCKING} max)"),
            Arc::new(TokioDefault),
        ),
        c(
            format!("tokio spawn_blocking sized ({n} max)"),
            Arc::new(TokioSized::new(n)?),
        ),
        c(
            format!("blocking::unblock ({} max)", blocking_crate_max()),
            Arc::new(BlockingCrate),
        ),
        c(
            format!("threadpool + oneshot ({n} threads)"),
            Arc::new(ThreadPoolPeer(threadpool::ThreadPool::new(n))),
        ),
        c(
            format!("crossbeam pool + oneshot ({n} threads)"),
            Arc::new(CrossbeamPool::new(n)?),
        ),
    ];
    Ok(all)
}

/// The `blocking` crate's thread limit as it will read it (only reading the variable here).
fn blocking_crate_max() -> String {
    match std::env::var("BLOCKING_MAX_THREADS") {
        Ok(v) => format!("BLOCKING_MAX_THREADS={v}"),
        Err(_) => format!("default {BLOCKING_CRATE_DEFAULT_MAX}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------------

struct Plan {
    quick: bool,
    test_mode: bool,
    samples: usize,
    warmup: usize,
    filters: Vec<String>,
}

/// Runs every round and returns, per contender, its sample times.
fn measure(
    rt: &tokio::runtime::Runtime,
    w: &Workload,
    entries: &[Contender],
    plan: &Plan,
) -> Result<Vec<Vec<Duration>>, String> {
    let mut times = vec![Vec::with_capacity(plan.samples); entries.len()];
    for round in 0..plan.warmup + plan.samples {
        for k in 0..entries.len() {
            let i = (round + k) % entries.len();
            let runner = entries[i].runner.clone();
            let (shape, job, n) = (w.shape, w.job, w.jobs);
            // The awaiting side is a task on a runtime worker, as in a request handler.
            let task = rt.spawn(async move {
                let start = Instant::now();
                let sum = runner.run(shape, job, n).await;
                (start.elapsed(), sum)
            });
            let (elapsed, sum) = rt.block_on(task).map_err(|e| {
                format!("{} / {}: timing task failed: {e}", w.name, entries[i].label)
            })?;
            let sum = sum.map_err(|e| format!("{} / {}: {e}", w.name, entries[i].label))?;
            if sum != n as u64 {
                return Err(format!(
                    "{} / {}: sum {sum}, expected {n}",
                    w.name, entries[i].label
                ));
            }
            if round >= plan.warmup {
                times[i].push(elapsed);
            }
        }
    }
    Ok(times)
}

struct Summary {
    median: Duration,
    min: Duration,
    max: Duration,
}

fn summarize(mut v: Vec<Duration>) -> Summary {
    v.sort_unstable();
    let len = v.len();
    let median = if len % 2 == 1 {
        v[len / 2]
    } else {
        (v[len / 2 - 1] + v[len / 2]) / 2
    };
    Summary {
        median,
        min: v[0],
        max: v[len - 1],
    }
}

/// A duration with three significant-ish digits and a unit that fits.
struct Human(Duration);

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

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

const USAGE: &str =
    "usage: cargo bench -p bulkheads-benches --bench headline -- [--quick] [FILTER...]
  FILTER     run only workloads whose name contains it (case-insensitive), e.g. W1
  --quick    fewer samples (3, 1 warm-up) and sizes divided by 10: a smoke run of seconds
env:
  HEADLINE_SAMPLES       samples per contender (default 11, or 3 with --quick)
  BLOCKING_MAX_THREADS   read by the `blocking` crate itself (default 500)";

fn parse_args() -> Result<(Plan, Vec<String>), String> {
    let mut quick = false;
    let mut bench_flag = false;
    let mut filters = Vec::new();
    let mut shown = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--bench" => bench_flag = true,
            "--quick" => {
                quick = true;
                shown.push(arg);
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            a if a.starts_with('-') => return Err(format!("unknown flag {a}\n{USAGE}")),
            _ => {
                filters.push(arg.to_lowercase());
                shown.push(arg);
            }
        }
    }
    let test_mode = !bench_flag;
    let (mut samples, warmup) = match (test_mode, quick) {
        (true, _) => (1, 0),
        (false, true) => (3, 1),
        (false, false) => (11, 2),
    };
    if let Ok(v) = std::env::var("HEADLINE_SAMPLES") {
        samples = match v.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(format!(
                    "HEADLINE_SAMPLES must be a whole number >= 1, got {v:?}"
                ));
            }
        };
    }
    let plan = Plan {
        quick: quick || test_mode,
        test_mode,
        samples,
        warmup,
        filters,
    };
    Ok((plan, shown))
}

fn main() {
    match run() {
        Ok(()) => {}
        Err(e) => {
            eprintln!("headline: {e}");
            std::process::exit(1);
        }
    }
}

fn run() -> Result<(), String> {
    let (plan, shown) = parse_args()?;
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);

    let selected: Vec<Workload> = workloads(plan.quick)
        .into_iter()
        .filter(|w| {
            plan.filters.is_empty()
                || plan
                    .filters
                    .iter()
                    .any(|f| w.name.to_lowercase().contains(f))
        })
        .collect();
    if selected.is_empty() {
        return Err(format!("no workload matches {:?}", plan.filters));
    }

    let mut command = String::new();
    if let Ok(v) = std::env::var("HEADLINE_SAMPLES") {
        command.push_str(&format!("HEADLINE_SAMPLES={v} "));
    }
    if let Ok(v) = std::env::var("BLOCKING_MAX_THREADS") {
        command.push_str(&format!("BLOCKING_MAX_THREADS={v} "));
    }
    command.push_str("cargo bench -p bulkheads-benches --bench headline");
    if !shown.is_empty() {
        command.push_str(" -- ");
        command.push_str(&shown.join(" "));
    }

    println!("headline: bulkheads side by side with its peers (DESIGN.md section 8)");
    println!("command:  {command}");
    if plan.test_mode {
        println!("mode:     test mode (no --bench argument): quick sizes, 1 sample, no warm-up");
    }
    println!(
        "machine:  {cores} cores (available_parallelism), {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    println!(
        "driver:   tokio multi-thread runtime, {TIMING_WORKERS} workers; \
         each sample awaited from a task on it"
    );
    println!(
        "samples:  {} per contender after {} warm-up round(s), contenders interleaved round-robin",
        plan.samples, plan.warmup
    );
    println!("ratio:    contender median / bulkheads median (above 1: bulkheads is faster)");
    println!("note:     tokio default and blocking::unblock are not sized to the workload:");
    println!(
        "          tokio default uses the driving runtime's blocking pool \
         ({TOKIO_DEFAULT_MAX_BLOCKING} max);"
    );
    println!(
        "          blocking::unblock uses its own global pool ({}), \
         set only through the environment",
        blocking_crate_max()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(TIMING_WORKERS)
        .thread_name("headline")
        .enable_all()
        .build()
        .map_err(|e| format!("timing runtime: {e}"))?;

    let label_width = 44;
    for w in &selected {
        println!();
        print!(
            "{}: {} ({} threads per sized pool)",
            w.name, w.what, w.threads
        );
        match w.ideal {
            Some(ideal) => println!(", ideal {}", Human(ideal)),
            None => println!(),
        }
        let entries = contenders(w, &rt)?;
        let times = measure(&rt, w, &entries, &plan)?;
        // Contenders are dropped here, outside any runtime context.
        println!(
            "{:<4} {:<label_width$} {:>10} {:>7} {:>10} {:>10} {:>10}",
            "", "contender", "median", "ratio", "per job", "min", "max"
        );
        let summaries: Vec<Summary> = times.into_iter().map(summarize).collect();
        let base = summaries[0].median.as_secs_f64();
        for (c, s) in entries.iter().zip(&summaries) {
            let ratio = if base > 0.0 {
                s.median.as_secs_f64() / base
            } else {
                f64::NAN
            };
            println!(
                "{:<4} {:<label_width$} {:>10} {:>7.2} {:>10} {:>10} {:>10}",
                w.name,
                c.label,
                Human(s.median),
                ratio,
                Human(s.median / w.jobs as u32),
                Human(s.min),
                Human(s.max),
            );
        }
        drop(entries);
    }
    Ok(())
}
