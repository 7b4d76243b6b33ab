//! W8: what an overload costs in memory. [`SUBMISSIONS`] blocking jobs are offered to a pool
//! whose threads are all held busy, and the process's RSS is watched while they are submitted.
//!
//! bulkheads: a `blocking` dispatcher of [`THREADS`] threads and a queue of [`QUEUE`], its
//! threads held on a gate, so the first [`QUEUE`] submissions are queued and every later one is
//! rejected at once (each rejection is checked to be `QueueFull` with capacity threads + queue,
//! and their count to be submissions − queue). Two rows: `spawn_blocking` (the handle is
//! polled once and dropped, as a caller answering "busy" would), and `run_blocking` with
//! `max_wait` 0, the async caller's path (its future polled once). Peer: Tokio's
//! `spawn_blocking` on a runtime with `max_blocking_threads` = [`THREADS`], held the same way;
//! its queue has no bound, so every submission is queued (the handles are dropped: the task
//! lives on in the queue). Each job captures the same payload, a [`PAYLOAD`]-byte `Vec<u8>`.
//!
//! Growth is peak RSS during the submissions (the high-water mark `VmHWM`, reset through
//! `/proc/self/clear_refs` just before them, and `VmRSS` read every [`SAMPLE_EVERY`]
//! submissions) minus `VmRSS` just before them, all from `/proc/self/status`: W8 runs on Linux
//! only. Then the gate opens and the run waits until every job has either run or been dropped
//! (`settle`), and reads RSS again (`after`, also minus before). Tokio is measured twice: with
//! the backlog drained by its runtime, and with the runtime shut down (`shutdown_timeout`)
//! while its blocking threads are still held, to see what a shutdown does to a queued
//! backlog (`ran`: how many queued jobs ran; a note says how many of them ran before the gate
//! opened: a multi-thread runtime's workers are threads of its blocking pool, and a shutdown
//! frees them).
//!
//! RSS is a property of the whole process, and the allocator keeps what earlier work freed, so
//! every sample runs in a process of its own: the harness starts itself again
//! (`std::env::current_exe()`) with the hidden arguments `--w8-child MODE SUBMISSIONS`; the
//! child sets up its contender, measures, and prints one line of `key=value` fields, which the
//! parent parses. Contenders are interleaved round-robin as elsewhere; there is no warm-up (a
//! fresh process has nothing to warm).

use std::future::Future;
use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bulkheads::{BlockingConfig, DispatchError, Dispatchers, RejectReason};

use crate::contenders::keep_selected;
use crate::measure::{Human, summarize, wait_until};
use crate::plan::Plan;
use crate::report::{Column, Table};
use crate::workloads::Workload;

/// The hidden first argument that makes the binary a W8 child.
pub const CHILD_FLAG: &str = "--w8-child";
/// Submissions per sample (divided by 10 with `--quick` and in test mode).
const SUBMISSIONS: usize = 1_000_000;
/// Threads of every pool, all held busy.
const THREADS: usize = 4;
/// The bulkheads pool's queue: the only submissions it admits.
const QUEUE: usize = 64;
/// Bytes each job's payload holds.
const PAYLOAD: usize = 64;
/// Submissions between two reads of `VmRSS`.
const SAMPLE_EVERY: usize = 10_000;
/// Samples per contender with `--quick` and in test mode.
const QUICK_SAMPLES: usize = 3;
/// How long Tokio's `shutdown_timeout` waits for its blocking threads (which are held).
const SHUTDOWN_WAIT: Duration = Duration::from_millis(100);
/// Longest wait for the held threads to start, or for the backlog to settle, before the
/// child declares the run broken.
const SETTLE_LIMIT: Duration = Duration::from_secs(120);

const MIB: f64 = 1024.0 * 1024.0;

/// Columns of W8's table: sizes are RSS differences from just before the submissions.
const COLUMNS: &[Column] = &[
    Column {
        title: "contender",
        width: 44,
        left: true,
    },
    Column {
        title: "growth",
        width: 10,
        left: false,
    },
    Column {
        title: "ratio",
        width: 7,
        left: false,
    },
    Column {
        title: "per sub",
        width: 8,
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
        title: "after",
        width: 10,
        left: false,
    },
    Column {
        title: "settle",
        width: 10,
        left: false,
    },
    Column {
        title: "ran",
        width: 8,
        left: false,
    },
];

/// How a child submits, and what it does with the backlog afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// bulkheads `spawn_blocking`; the queued jobs run once the gate opens.
    BulkheadsSpawn,
    /// bulkheads `run_blocking`, `max_wait` 0; the queued callers are awaited.
    BulkheadsRun,
    /// Tokio `spawn_blocking`; the runtime drains the backlog once the gate opens.
    TokioDrain,
    /// Tokio `spawn_blocking`; the runtime is shut down before the gate opens.
    TokioShutdown,
}

const MODES: [Mode; 4] = [
    Mode::BulkheadsSpawn,
    Mode::BulkheadsRun,
    Mode::TokioDrain,
    Mode::TokioShutdown,
];

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::BulkheadsSpawn => "bulkheads-spawn",
            Mode::BulkheadsRun => "bulkheads-run",
            Mode::TokioDrain => "tokio-drain",
            Mode::TokioShutdown => "tokio-shutdown",
        }
    }

    fn label(self) -> String {
        match self {
            Mode::BulkheadsSpawn => {
                format!("bulkheads spawn_blocking ({THREADS} thr, queue {QUEUE})")
            }
            Mode::BulkheadsRun => "bulkheads run_blocking, max_wait 0".to_owned(),
            Mode::TokioDrain => format!("tokio spawn_blocking (max {THREADS}), drained"),
            Mode::TokioShutdown => format!("tokio spawn_blocking (max {THREADS}), shut down"),
        }
    }

    /// Submissions the pool queues rather than rejects.
    fn admits(self, submissions: usize) -> usize {
        match self {
            Mode::BulkheadsSpawn | Mode::BulkheadsRun => QUEUE.min(submissions),
            Mode::TokioDrain | Mode::TokioShutdown => submissions,
        }
    }
}

/// W8 (one workload; its rows are the contenders).
pub struct OverloadMemory {
    submissions: usize,
}

pub fn workloads(quick: bool) -> Vec<Box<dyn Workload>> {
    let submissions = if quick { SUBMISSIONS / 10 } else { SUBMISSIONS };
    vec![Box::new(OverloadMemory { submissions })]
}

impl Workload for OverloadMemory {
    fn name(&self) -> &'static str {
        "W8"
    }

    fn heading(&self) -> String {
        format!(
            "W8: RSS growth while {n} blocking jobs (each capturing a {PAYLOAD}-byte Vec<u8>) are \
             offered to {THREADS} threads held busy; a process per sample; growth = peak RSS \
             during the submissions - RSS before\n    \
             bulkheads: queue {QUEUE}, so {rejected} are rejected (QueueFull, checked); \
             tokio: spawn_blocking, max_blocking_threads {THREADS}, every one queued\n    \
             after: RSS once every job ran or was dropped - before; settle: time from the end \
             of the submissions to that; ran: queued jobs that ran; ratio: growth / bulkheads \
             spawn_blocking growth",
            n = self.submissions,
            rejected = self.submissions - QUEUE.min(self.submissions),
        )
    }

    fn measure(&self, _rt: &tokio::runtime::Runtime, plan: &Plan) -> Result<Table, String> {
        let mut table = Table::new("W8", COLUMNS);
        let modes = keep_selected(
            MODES.iter().map(|&m| (m, m.label())).collect::<Vec<_>>(),
            |(_, label)| label.as_str(),
        );
        if !cfg!(target_os = "linux") {
            table.note("skipped: W8 reads RSS from /proc/self/status, which only Linux has".into());
            return Ok(table);
        }
        let exe = std::env::current_exe().map_err(|e| format!("W8: current_exe: {e}"))?;
        let samples = if plan.quick {
            QUICK_SAMPLES
        } else {
            plan.samples
        };
        let mut runs: Vec<Vec<Measured>> = vec![Vec::with_capacity(samples); modes.len()];
        for round in 0..samples {
            for k in 0..modes.len() {
                let i = (round + k) % modes.len();
                let (mode, label) = &modes[i];
                let m = run_child(&exe, *mode, self.submissions)
                    .map_err(|e| format!("W8 / {label}: {e}"))?;
                runs[i].push(m);
            }
        }

        let n = self.submissions as f64;
        let mut base = None;
        for ((mode, label), runs) in modes.iter().zip(runs) {
            let growth = summarize(runs.iter().map(|m| m.peak - m.before).collect());
            let after = summarize(runs.iter().map(|m| m.after - m.before).collect());
            let settle = summarize(runs.iter().map(|m| m.settle).collect());
            let ran = summarize(runs.iter().map(|m| m.ran as i64).collect());
            let base = *base.get_or_insert(growth.median);
            let ratio = match growth.median as f64 / base as f64 {
                r if !r.is_finite() => "-".to_owned(),
                r if r >= 10.0 => format!("{r:.0}"),
                r => format!("{r:.2}"),
            };
            if *mode == Mode::TokioShutdown {
                let early = summarize(runs.iter().map(|m| m.ran_before_gate as i64).collect());
                table.note(format!(
                    "{label}: Runtime::shutdown_timeout({} ms) with the blocking threads held; \
                     {} of {} queued jobs (median; {} to {}) ran before it returned, on the \
                     runtime's worker threads, which the shutdown frees into the same blocking \
                     pool; the rest ran once the gate opened: {} of {} ran in all (least of \
                     any sample), {} dropped unrun (most of any sample)",
                    SHUTDOWN_WAIT.as_millis(),
                    early.median,
                    self.submissions,
                    early.min,
                    early.max,
                    ran.min,
                    self.submissions,
                    self.submissions as i64 - ran.min,
                ));
            }
            let ran = if ran.min == ran.max {
                ran.median.to_string()
            } else {
                format!("{}-{}", ran.min, ran.max)
            };
            table.row(vec![
                label.clone(),
                Size(growth.median).to_string(),
                ratio,
                per_submission(growth.median as f64 / n),
                Size(growth.min).to_string(),
                Size(growth.max).to_string(),
                Size(after.median).to_string(),
                Human(settle.median).to_string(),
                ran,
            ]);
        }
        Ok(table)
    }
}

/// A size in bytes: KiB under 1 MiB (RSS moves in pages), MiB with one decimal above.
struct Size(i64);

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = self.0 as f64;
        let s = if bytes.abs() < MIB {
            format!("{:.0} KiB", bytes / 1024.0)
        } else {
            format!("{:.1} MiB", bytes / MIB)
        };
        f.pad(&s)
    }
}

/// Bytes per submission, a decimal under 10.
fn per_submission(bytes: f64) -> String {
    if bytes.abs() < 10.0 {
        format!("{bytes:.1} B")
    } else {
        format!("{bytes:.0} B")
    }
}

/// What one child measured. Sizes in bytes.
#[derive(Clone, Debug)]
struct Measured {
    /// `VmRSS` just before the first submission.
    before: i64,
    /// The highest RSS seen during the submissions.
    peak: i64,
    /// `VmRSS` once every job ran or was dropped.
    after: i64,
    /// From the end of the submissions until every job ran or was dropped.
    settle: Duration,
    /// Queued jobs that ran.
    ran: usize,
    /// Queued jobs that ran before the gate opened (only a shut-down Tokio runtime runs any).
    ran_before_gate: usize,
}

/// Runs one child and parses its line.
fn run_child(exe: &std::path::Path, mode: Mode, submissions: usize) -> Result<Measured, String> {
    let out = Command::new(exe)
        .args([CHILD_FLAG, mode.arg(), &submissions.to_string()])
        .output()
        .map_err(|e| format!("starting {}: {e}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "child {} failed ({}): {}{}",
            mode.arg(),
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let line = stdout
        .lines()
        .find(|l| l.starts_with("w8 "))
        .ok_or_else(|| format!("child {} printed no `w8 ` line: {stdout:?}", mode.arg()))?;
    let field = |key: &str| -> Result<i64, String> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("child line without a number for {key}: {line:?}"))
    };
    let m = Measured {
        before: field("before")?,
        peak: field("peak")?,
        after: field("after")?,
        settle: Duration::from_nanos(field("settle_ns")? as u64),
        ran: field("ran")? as usize,
        ran_before_gate: field("ran_before_gate")? as usize,
    };
    // What a shut-down runtime does with its backlog is what the row reports, not a rule.
    let expected = mode.admits(submissions);
    if mode != Mode::TokioShutdown && (m.ran != expected || m.ran_before_gate != 0) {
        return Err(format!(
            "{} queued jobs ran ({} before the gate opened), expected {expected} (0)",
            m.ran, m.ran_before_gate
        ));
    }
    Ok(m)
}

// ---------------------------------------------------------------------------------------------
// The child
// ---------------------------------------------------------------------------------------------

/// Jobs that ran.
static RAN: AtomicUsize = AtomicUsize::new(0);
/// Payloads dropped: every job's, once it ran, was rejected, or was dropped unrun.
static ENDED: AtomicUsize = AtomicUsize::new(0);

/// What each job captures; counts itself in [`ENDED`] when dropped.
struct Payload(Vec<u8>);

impl Drop for Payload {
    fn drop(&mut self) {
        ENDED.fetch_add(1, Ordering::Relaxed);
    }
}

/// The job of submission `i`.
fn job(i: usize) -> impl FnOnce() -> usize + Send + 'static {
    let payload = Payload(vec![i as u8; PAYLOAD]);
    move || {
        RAN.fetch_add(1, Ordering::Relaxed);
        std::hint::black_box(&payload.0).len()
    }
}

/// Holds the pool's threads: every holding job waits until the gate opens.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    holding: AtomicUsize,
}

impl Gate {
    fn hold(self: &Arc<Self>) -> impl FnOnce() + Send + 'static {
        let gate = self.clone();
        move || {
            gate.holding.fetch_add(1, Ordering::SeqCst);
            let mut open = gate.open.lock().unwrap_or_else(|p| p.into_inner());
            while !*open {
                open = gate.opened.wait(open).unwrap_or_else(|p| p.into_inner());
            }
        }
    }

    fn wait_holding(&self, n: usize) -> Result<(), String> {
        wait_until(SETTLE_LIMIT, || self.holding.load(Ordering::SeqCst) >= n)
            .map_err(|_| format!("the {n} holding jobs did not all start"))
    }

    fn open(&self) {
        *self.open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.opened.notify_all();
    }
}

/// Times the settle from now, on a thread of its own (so it also sees a backlog that ends
/// while the child is blocked, in a shutdown): until all `n` payloads have been dropped.
fn settle_timer(n: usize) -> std::thread::JoinHandle<Result<Duration, String>> {
    let start = Instant::now();
    std::thread::spawn(move || {
        wait_until(SETTLE_LIMIT, || ENDED.load(Ordering::SeqCst) == n).map_err(|waited| {
            format!(
                "{} of {n} jobs had neither run nor been dropped after {}",
                n - ENDED.load(Ordering::SeqCst),
                Human(waited)
            )
        })?;
        Ok(start.elapsed())
    })
}

/// Waits for [`settle_timer`]'s result.
fn settled(timer: std::thread::JoinHandle<Result<Duration, String>>) -> Result<Duration, String> {
    timer
        .join()
        .map_err(|_| "the settle timer panicked".to_owned())?
}

/// Reads `/proc/self/status`.
struct Rss {
    buf: String,
}

impl Rss {
    fn new() -> Rss {
        Rss {
            buf: String::with_capacity(4096),
        }
    }

    /// The field `key` (`VmRSS`, `VmHWM`) in bytes.
    fn read(&mut self, key: &str) -> Result<i64, String> {
        use std::io::Read;
        self.buf.clear();
        std::fs::File::open("/proc/self/status")
            .and_then(|mut f| f.read_to_string(&mut self.buf))
            .map_err(|e| format!("/proc/self/status: {e}"))?;
        let kib = self
            .buf
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<i64>().ok())
            .ok_or_else(|| format!("/proc/self/status has no {key}"))?;
        Ok(kib * 1024)
    }

    /// Resets `VmHWM` to the current RSS (Linux 4.0 and later). Where the kernel refuses, the
    /// high-water mark still covers the submissions, and the setup before them stays small.
    fn reset_peak(&self) {
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .open("/proc/self/clear_refs")
            .and_then(|mut f| f.write_all(b"5"));
    }
}

/// Watches RSS during the submissions.
struct Watch {
    rss: Rss,
    before: i64,
    peak: i64,
}

impl Watch {
    fn start() -> Result<Watch, String> {
        let mut rss = Rss::new();
        rss.reset_peak();
        let before = rss.read("VmRSS")?;
        Ok(Watch {
            rss,
            before,
            peak: before,
        })
    }

    /// Called after submission `i`: reads RSS every [`SAMPLE_EVERY`].
    fn tick(&mut self, i: usize) -> Result<(), String> {
        if i % SAMPLE_EVERY == 0 {
            self.peak = self.peak.max(self.rss.read("VmRSS")?);
        }
        Ok(())
    }

    fn peak(&mut self) -> Result<i64, String> {
        let hwm = self.rss.read("VmHWM")?;
        Ok(self.peak.max(hwm).max(self.rss.read("VmRSS")?))
    }
}

/// The child's entry: `args` are the ones after [`CHILD_FLAG`]. Prints its `w8 ` line.
pub fn child(args: &[String]) -> Result<(), String> {
    let (mode, n) = match args {
        [mode, n] => {
            let mode = MODES
                .into_iter()
                .find(|m| m.arg() == mode)
                .ok_or_else(|| format!("unknown W8 child mode {mode:?}"))?;
            let n = n
                .parse::<usize>()
                .map_err(|_| format!("W8 child: submissions must be a number, got {n:?}"))?;
            (mode, n)
        }
        _ => return Err(format!("usage: {CHILD_FLAG} MODE SUBMISSIONS")),
    };
    let m = match mode {
        Mode::BulkheadsSpawn | Mode::BulkheadsRun => bulkheads_child(mode, n)?,
        Mode::TokioDrain | Mode::TokioShutdown => tokio_child(mode, n)?,
    };
    println!(
        "w8 before={} peak={} after={} settle_ns={} ran={} ran_before_gate={}",
        m.before,
        m.peak,
        m.after,
        m.settle.as_nanos(),
        m.ran,
        m.ran_before_gate
    );
    Ok(())
}

/// Checks that `e` is the rejection a full pool of capacity threads + queue gives.
fn check_queue_full(e: &DispatchError) -> Result<(), String> {
    match e.reject_reason() {
        Some(RejectReason::QueueFull { capacity }) if *capacity == THREADS + QUEUE => Ok(()),
        _ => Err(format!(
            "expected QueueFull with capacity {}, got: {e}",
            THREADS + QUEUE
        )),
    }
}

fn bulkheads_child(mode: Mode, n: usize) -> Result<Measured, String> {
    let registry = Dispatchers::builder()
        .cpu_threads(1)
        .blocking(
            "w8",
            BlockingConfig::threads(THREADS)
                .queue(QUEUE)
                .max_wait(Duration::ZERO),
        )
        .build()
        .map_err(|e| format!("bulkheads build: {e}"))?;
    let pool = registry
        .get("w8")
        .map_err(|e| format!("bulkheads get: {e}"))?;
    // Drives the queued callers to their end once the gate opens.
    let driver = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("driver runtime: {e}"))?;
    let gate = Arc::new(Gate::default());
    let holders: Vec<_> = (0..THREADS)
        .map(|_| pool.spawn_blocking(gate.hold()))
        .collect();
    gate.wait_holding(THREADS)?;

    // A rejected submission answers at its first poll; one still pending was queued.
    let mut cx = Context::from_waker(Waker::noop());
    let mut queued_spawns = Vec::with_capacity(QUEUE);
    let mut queued_runs = Vec::with_capacity(QUEUE);
    let mut rejected = 0;
    let mut watch = Watch::start()?;
    for i in 0..n {
        let polled = match mode {
            Mode::BulkheadsSpawn => {
                let mut handle = pool.spawn_blocking(job(i));
                let polled = std::pin::Pin::new(&mut handle).poll(&mut cx);
                if polled.is_pending() {
                    queued_spawns.push(handle);
                }
                polled
            }
            _ => {
                let mut call = Box::pin(pool.run_blocking(job(i)));
                let polled = call.as_mut().poll(&mut cx);
                if polled.is_pending() {
                    queued_runs.push(call);
                }
                polled
            }
        };
        match polled {
            Poll::Ready(Err(e)) => {
                check_queue_full(&e)?;
                rejected += 1;
            }
            Poll::Ready(Ok(_)) => return Err("a job ran while the pool was held".into()),
            Poll::Pending => {}
        }
        watch.tick(i)?;
    }
    let peak = watch.peak()?;
    let queued = n - rejected;
    if queued != QUEUE.min(n) {
        return Err(format!(
            "{rejected} of {n} submissions rejected, expected {}",
            n - QUEUE.min(n)
        ));
    }

    let timer = settle_timer(n);
    let ran_before_gate = RAN.load(Ordering::SeqCst);
    gate.open();
    let settle = settled(timer)?;
    let after = watch.rss.read("VmRSS")?;
    driver.block_on(async {
        for h in queued_spawns {
            h.await.map_err(|e| format!("a queued job failed: {e}"))?;
        }
        for call in queued_runs {
            call.await
                .map_err(|e| format!("a queued call failed: {e}"))?;
        }
        for h in holders {
            h.await.map_err(|e| format!("a holding job failed: {e}"))?;
        }
        Ok::<_, String>(())
    })?;
    drop(registry);
    Ok(Measured {
        before: watch.before,
        peak,
        after,
        settle,
        ran: RAN.load(Ordering::SeqCst),
        ran_before_gate,
    })
}

fn tokio_child(mode: Mode, n: usize) -> Result<Measured, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(crate::report::TIMING_WORKERS)
        .max_blocking_threads(THREADS)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let gate = Arc::new(Gate::default());
    for _ in 0..THREADS {
        drop(rt.spawn_blocking(gate.hold()));
    }
    gate.wait_holding(THREADS)?;

    let mut watch = Watch::start()?;
    for i in 0..n {
        // The handle is dropped: the task stays queued and runs detached.
        drop(rt.spawn_blocking(job(i)));
        watch.tick(i)?;
    }
    let peak = watch.peak()?;

    let timer = settle_timer(n);
    // Shut down, the runtime returns after the wait: the threads of its blocking pool are held
    // (but its worker threads are freed, and they are threads of that same pool). Otherwise
    // it is kept until the backlog is measured.
    let rt = if mode == Mode::TokioShutdown {
        rt.shutdown_timeout(SHUTDOWN_WAIT);
        None
    } else {
        Some(rt)
    };
    let ran_before_gate = RAN.load(Ordering::SeqCst);
    gate.open();
    let settle = settled(timer)?;
    let after = watch.rss.read("VmRSS")?;
    drop(rt);
    Ok(Measured {
        before: watch.before,
        peak,
        after,
        settle,
        ran: RAN.load(Ordering::SeqCst),
        ran_before_gate,
    })
}
