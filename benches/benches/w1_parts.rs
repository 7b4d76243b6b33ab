//! W1 taken apart: where bulkheads' blocking pool spends the time the crossbeam pool does not.
//!
//! ```text
//! cargo bench -p bulkheads-benches --bench w1_parts                       # 20 rounds
//! W1_PARTS_ROUNDS=40 cargo bench -p bulkheads-benches --bench w1_parts
//! W1_PARTS_ONLY=0 cargo bench -p bulkheads-benches --bench w1_parts       # one row alone: 0, 1, 2
//! W1_PARTS_JOBS=2000 cargo bench -p bulkheads-benches --bench w1_parts    # jobs per round
//! ```
//!
//! Part 1 runs W1 of the headline bench (100k no-op blocking jobs fanned out from one thread,
//! then all awaited, 4 pool threads) on bulkheads and on the crossbeam pool with a Tokio
//! oneshot per job, in alternating rounds in one process (the first contender rotates every
//! round, and odd rounds run in reverse order), and reports the two phases apart: the fan-out
//! (submitting every job) and the join (awaiting every handle, by then mostly finished). Each
//! phase is measured in wall time and in the submitting thread's own CPU time (Linux's
//! per-thread CPU clock, which leaves out time the thread was descheduled; "n/a" elsewhere).
//! The submitting thread is the main thread, driving the join with `Runtime::block_on`.
//! `W1_PARTS_JOBS` (100 to 1M) changes the jobs per round, so that a round's task cells fit in
//! the CPU's second-level cache or not.
//!
//! A third row runs the crossbeam pool with a plain result cell of the size of bulkheads'
//! task cell, a lock around the result and the waiter's waker, in place of the
//! oneshot: what a lock and the cell's size cost without the rest of a task.
//!
//! Part 2 measures what the system allocator charges for blocks of the sizes each side asks
//! for per job: as many blocks of one size as a round has jobs, allocated and written, then
//! freed in the same order, as a fan-out and its join do, on one thread, in this process after
//! part 1 (a warm heap).
//! bulkheads allocates one task cell per job (232 bytes with its reference counts, for a
//! closure returning `u64`); the crossbeam pool allocates a Tokio oneshot (72 bytes with its
//! reference counts) and a boxed job (8 bytes, freed by the pool thread). It does not read the
//! blocks back or free them from another thread, as the join and the pool do: it tells only
//! whether the allocator charges more for our cell's size.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

mod support;
use support::{Setup, join_all, median, noop, setting, turn_order};

/// Jobs per round unless `W1_PARTS_JOBS` says otherwise (W1's own count).
const JOBS: usize = 100_000;
const THREADS: usize = 4;

/// The calling thread's CPU time so far (Linux; `None` elsewhere).
#[cfg(target_os = "linux")]
fn thread_cpu() -> Option<Duration> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Some(Duration::new(
        u64::try_from(t.tv_sec).ok()?,
        u32::try_from(t.tv_nsec).ok()?,
    ))
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu() -> Option<Duration> {
    None
}

/// One phase's cost per job: wall time, and the submitting thread's CPU time if known.
#[derive(Clone, Copy)]
struct Phase {
    wall: f64,
    cpu: Option<f64>,
}

struct Mark(Instant, Option<Duration>);

impl Mark {
    fn now() -> Self {
        Mark(Instant::now(), thread_cpu())
    }
    fn phase_since(&self, start: &Mark, jobs: usize) -> Phase {
        let per_job = |d: Duration| d.as_nanos() as f64 / jobs as f64;
        Phase {
            wall: per_job(self.0 - start.0),
            cpu: self.1.zip(start.1).map(|(b, a)| per_job(b - a)),
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A result cell as plain as it gets, padded to the size of bulkheads' task cell for a closure
/// returning `u64` (216 bytes today, 232 with the `Arc`'s counts; the library's tests keep it
/// at most 216): a lock around the result and the waiting task's waker. It shows what a lock
/// and the cell's size cost without the rest.
#[derive(Default)]
struct SizedCell {
    inner: Mutex<(Option<u64>, Option<Waker>)>,
    _room: [u64; 22],
}

impl SizedCell {
    fn publish(&self, v: u64) {
        let waker = {
            let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            inner.0 = Some(v);
            inner.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<SizedCell>() == 216);

struct SizedJoin(Arc<SizedCell>);

impl Future for SizedJoin {
    type Output = Result<u64, Infallible>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut inner = self.0.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match inner.0.take() {
            Some(v) => Poll::Ready(Ok(v)),
            None => {
                inner.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

fn main() -> Result<(), String> {
    let rounds = setting("W1_PARTS_ROUNDS", 1..=10_000)?.unwrap_or(20);
    // W1_PARTS_ONLY=0, 1 or 2 runs one contender alone (for a profiler).
    let only = setting("W1_PARTS_ONLY", 0..=2)?;
    // W1_PARTS_JOBS=2000: a round small enough for its cells to stay in cache.
    let jobs = setting("W1_PARTS_JOBS", 100..=1_000_000)?.unwrap_or(JOBS);
    let Setup {
        runtime,
        registry: _registry,
        pool,
    } = Setup::new(THREADS, jobs)?;
    let (tx, rx) = crossbeam_channel::unbounded::<Job>();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || {
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
        })
        .collect();
    drop(rx);

    println!(
        "W1 parts: {jobs} no-op blocking jobs fanned out, then awaited, {THREADS} pool threads"
    );
    println!("{rounds} rounds after 2 warm-up rounds, contenders alternating; medians per job\n");
    // Per contender: bulkheads, the crossbeam pool with a oneshot, and the crossbeam pool with
    // a mutex-guarded result cell of our task cell's size (`SizedCell`).
    let mut samples: [Vec<(Phase, Phase)>; 3] = Default::default();
    for round in 0..rounds + 2 {
        for turn in 0..3 {
            let contender = turn_order(round, turn, 3);
            if only.is_some_and(|o| o != contender) {
                continue;
            }
            let start = Mark::now();
            let (fanned, sum) = match contender {
                0 => {
                    let handles: Vec<_> = (0..jobs).map(|_| pool.spawn_blocking(noop)).collect();
                    (Mark::now(), join_all(&runtime, handles)?)
                }
                1 => {
                    let handles: Vec<_> = (0..jobs)
                        .map(|_| {
                            let (done, handle) = tokio::sync::oneshot::channel();
                            let _ = tx.send(Box::new(move || {
                                let _ = done.send(noop());
                            }));
                            handle
                        })
                        .collect();
                    (Mark::now(), join_all(&runtime, handles)?)
                }
                _ => {
                    let handles: Vec<_> = (0..jobs)
                        .map(|_| {
                            let cell = Arc::new(SizedCell::default());
                            let done = cell.clone();
                            let _ = tx.send(Box::new(move || done.publish(noop())));
                            SizedJoin(cell)
                        })
                        .collect();
                    (Mark::now(), join_all(&runtime, handles)?)
                }
            };
            let joined = Mark::now();
            if sum != jobs as u64 {
                return Err(format!("{sum} results, expected {jobs}"));
            }
            if round >= 2 {
                samples[contender].push((
                    fanned.phase_since(&start, jobs),
                    joined.phase_since(&fanned, jobs),
                ));
            }
        }
    }
    drop(tx);
    for t in threads {
        let _ = t.join();
    }

    println!(
        "{:<36} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
        "ns per job", "fan-out", "join", "total", "cpu fan", "cpu join", "cpu total"
    );
    let row = |label: &str, v: &[(Phase, Phase)]| {
        if v.is_empty() {
            println!("{label:<36} (not run)");
            return None;
        }
        let fan = median(v.iter().map(|p| p.0.wall));
        let join = median(v.iter().map(|p| p.1.wall));
        let total = median(v.iter().map(|p| p.0.wall + p.1.wall));
        let cpu = |f: &dyn Fn(&(Phase, Phase)) -> Option<f64>| {
            let all: Option<Vec<f64>> = v.iter().map(f).collect();
            all.map_or_else(
                || "n/a".to_string(),
                |c| format!("{:.0}", median(c.into_iter())),
            )
        };
        println!(
            "{label:<36} {fan:>9.0} {join:>9.0} {total:>9.0} | {:>9} {:>9} {:>9}",
            cpu(&|p| p.0.cpu),
            cpu(&|p| p.1.cpu),
            cpu(&|p| Some(p.0.cpu? + p.1.cpu?)),
        );
        Some((fan, join, total))
    };
    let a = row(&format!("bulkheads ({THREADS} threads)"), &samples[0]);
    let b = row(
        &format!("crossbeam pool + oneshot ({THREADS} threads)"),
        &samples[1],
    );
    if let (Some(a), Some(b)) = (a, b) {
        println!(
            "{:<36} {:>8.2}x {:>8.2}x {:>8.2}x",
            "ratio (bulkheads / crossbeam)",
            a.0 / b.0,
            a.1 / b.1,
            a.2 / b.2
        );
    }
    println!();
    row(
        &format!(
            "crossbeam pool + {}-byte mutex cell",
            std::mem::size_of::<SizedCell>()
        ),
        &samples[2],
    );

    println!(
        "\nAllocator cost by block size: {jobs} blocks allocated and written, then freed in order"
    );
    println!(
        "{:<36} {:>9} {:>9} {:>9}",
        "bytes per block", "alloc", "free", "both"
    );
    // The sizes each side asks for per job (64-bit): the peer's boxed job (its closure holds
    // the oneshot's sender, 8 bytes) and its oneshot (72 with the `Arc`'s counts), then our
    // cell (216, 232 with the counts) and two sizes between.
    let base = blocks::<72>(rounds, jobs);
    for (size, (alloc, free)) in [
        (8, blocks::<8>(rounds, jobs)),
        (72, base),
        (112, blocks::<112>(rounds, jobs)),
        (160, blocks::<160>(rounds, jobs)),
        (232, blocks::<232>(rounds, jobs)),
    ] {
        println!(
            "{:<36} {alloc:>9.0} {free:>9.0} {:>9.0}   {:.2}x the 72-byte block",
            size,
            alloc + free,
            (alloc + free) / (base.0 + base.1)
        );
    }
    Ok(())
}

/// Median ns per block to allocate (and write) then free `jobs` blocks of `N` bytes.
fn blocks<const N: usize>(rounds: usize, jobs: usize) -> (f64, f64) {
    let mut alloc = Vec::with_capacity(rounds);
    let mut free = Vec::with_capacity(rounds);
    for round in 0..rounds + 2 {
        let t0 = Instant::now();
        let v: Vec<Box<[u8; N]>> = (0..jobs).map(|i| Box::new([i as u8; N])).collect();
        let t1 = Instant::now();
        drop(black_box(v));
        let t2 = Instant::now();
        if round >= 2 {
            alloc.push((t1 - t0).as_nanos() as f64 / jobs as f64);
            free.push((t2 - t1).as_nanos() as f64 / jobs as f64);
        }
    }
    (median(alloc.into_iter()), median(free.into_iter()))
}
