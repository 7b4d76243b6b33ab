//! A blocking pool rejecting overload while the rest of the program stays responsive.
//!
//! A "legacy database" call blocks its thread for 10 ms. We offer it ten times what it can
//! serve, twice: first called inline from async tasks (the naive way), then through a
//! `bulkheads` blocking pool of 4 threads with a queue of 16. Meanwhile a health probe measures
//! how long a trivial task takes to get scheduled on the main runtime.
//!
//! Run: `cargo run --release --example overload`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bulkheads::{BlockingConfig, DispatchError, Dispatchers, RejectReason};

const JOB: Duration = Duration::from_millis(10);
const THREADS: usize = 4;

fn legacy_query() -> u64 {
    std::thread::sleep(JOB); // a driver that blocks its thread
    1
}

/// A health check on the main runtime: every 5 ms it asks to be woken, and records how late
/// it actually ran. Returns the delays seen until `stop`.
fn health_probe(stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<Duration>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let due = tokio::time::Instant::now() + Duration::from_millis(5);
            tokio::time::sleep_until(due).await;
            seen.push(tokio::time::Instant::now() - due);
        }
        seen
    })
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}

/// Offers `n` requests at `per_ms` requests per millisecond, each running `call`.
async fn offer<F, Fut>(n: usize, per_ms: usize, call: F) -> Vec<Result<u64, DispatchError>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<u64, DispatchError>> + Send + 'static,
{
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        handles.push(tokio::spawn(call()));
        if (i + 1) % per_ms == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.push(h.await.expect("request task"));
    }
    out
}

#[tokio::main(worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let capacity_per_s = THREADS as f64 / JOB.as_secs_f64();
    println!(
        "legacy call: {JOB:?} of blocking; pool capacity {capacity_per_s:.0} calls/s; offered 10x that\n"
    );

    // 1. Naive: the blocking call inline in async handlers, on the main runtime's 2 workers.
    let stop = Arc::new(AtomicBool::new(false));
    let probe = health_probe(stop.clone());
    let t = Instant::now();
    let naive = offer(100, 4, || async { Ok(legacy_query()) }).await;
    let naive_elapsed = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let naive_health = probe.await?;
    println!("naive, inline blocking call (100 requests):");
    println!(
        "  served {} in {naive_elapsed:.2?}; nothing rejected, everyone waited",
        naive.len()
    );
    println!(
        "  health probe while overloaded: p50 {:.2?}, p99 {:.2?}, max {:.2?}\n",
        percentile(naive_health.clone(), 0.5),
        percentile(naive_health.clone(), 0.99),
        percentile(naive_health, 1.0)
    );

    // 2. bulkheads: the same call pinned to its own pool, with a bounded queue.
    let dispatchers = Dispatchers::builder()
        .blocking(
            "legacy_db",
            BlockingConfig::threads(THREADS)
                .queue(16)
                .max_wait(Duration::from_millis(20)),
        )
        .build()?;
    let db = dispatchers.get("legacy_db")?;
    let stop = Arc::new(AtomicBool::new(false));
    let probe = health_probe(stop.clone());
    let t = Instant::now();
    let results = offer(2000, 4, || {
        let db = db.clone();
        async move { db.run_blocking(legacy_query).await }
    })
    .await;
    let elapsed = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let health = probe.await?;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let full = results
        .iter()
        .filter(|r| {
            matches!(
                r.as_ref().err().and_then(DispatchError::reject_reason),
                Some(RejectReason::QueueFull { .. })
            )
        })
        .count();
    let timed_out = results
        .iter()
        .filter(|r| {
            matches!(
                r.as_ref().err().and_then(DispatchError::reject_reason),
                Some(RejectReason::WaitTimeout { .. })
            )
        })
        .count();
    println!("bulkheads, pool of {THREADS} threads + queue 16, max_wait 20ms (2000 requests):");
    println!(
        "  served {ok}, rejected {} (queue full {full}, wait timeout {timed_out}) in {elapsed:.2?}",
        full + timed_out
    );
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        println!("  a rejection reads: {e}");
    }
    println!(
        "  health probe while overloaded: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        percentile(health.clone(), 0.5),
        percentile(health.clone(), 0.99),
        percentile(health, 1.0)
    );
    let s = db.stats();
    println!(
        "  pool threads: {} (never more); submitted {} = completed {} + rejected {} + in flight {}\n",
        s.threads,
        s.submitted,
        s.completed,
        s.rejected.total(),
        s.in_flight
    );
    let report = dispatchers.shutdown(Duration::from_secs(1)).await;
    print!("{report}");
    Ok(())
}
