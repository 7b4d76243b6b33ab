//! Property tests over random operation sequences: caps are never exceeded, queued work starts
//! in FIFO order, and every dispatcher's accounting identity holds exactly once all is settled.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bulkheads::{BlockingConfig, Dispatcher, Dispatchers, JoinHandle, RejectReason};
use proptest::prelude::*;

/// What a sequence does with each submission.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// `spawn_blocking` of a job that spins for `micros` µs.
    Spawn { micros: u8 },
    /// The same, then an `abort` of its handle at once.
    SpawnAbort { micros: u8 },
    /// `spawn_blocking` whose handle is dropped (detached).
    Detached { micros: u8 },
    /// `spawn` of async work that yields `yields` times.
    Async { yields: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..50).prop_map(|micros| Op::Spawn { micros }),
        (0u8..50).prop_map(|micros| Op::SpawnAbort { micros }),
        (0u8..50).prop_map(|micros| Op::Detached { micros }),
        (0u8..4).prop_map(|yields| Op::Async { yields }),
    ]
}

/// Counts work running on one dispatcher, and the most ever at once.
#[derive(Default)]
struct Running {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Running {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
    }
    fn exit(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

fn spin(micros: u8) {
    let until = std::time::Instant::now() + std::time::Duration::from_micros(micros.into());
    while std::time::Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Submits `ops` to `d`, counting running work in `running`; returns the attached handles.
fn submit(d: &Dispatcher, ops: &[Op], running: &Arc<Running>) -> Vec<JoinHandle<()>> {
    let mut handles = Vec::new();
    for &op in ops {
        let r = running.clone();
        match op {
            Op::Spawn { micros } | Op::SpawnAbort { micros } | Op::Detached { micros } => {
                let h = d.spawn_blocking(move || {
                    r.enter();
                    spin(micros);
                    r.exit();
                });
                match op {
                    Op::SpawnAbort { .. } => {
                        h.abort();
                        handles.push(h);
                    }
                    Op::Detached { .. } => drop(h),
                    _ => handles.push(h),
                }
            }
            Op::Async { yields } => handles.push(d.spawn(async move {
                for _ in 0..yields {
                    r.enter();
                    spin(5);
                    r.exit();
                    tokio::task::yield_now().await;
                }
            })),
        }
    }
    handles
}

/// Awaits every handle; each resolves exactly once, to a value, a rejection or a cancellation.
async fn settle(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        match h.await {
            Ok(()) => {}
            Err(e) => assert!(e.is_rejected() || e.is_cancelled(), "{e}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A pool never runs more than its threads, and a view never more than its parallelism,
    /// whatever is submitted, aborted or detached; afterwards every count balances.
    #[test]
    fn caps_hold_and_accounting_balances(
        threads in 1usize..4,
        queue in 0usize..8,
        parallelism in 1usize..3,
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let d = Dispatchers::builder()
                .cpu_threads(2)
                .blocking("prop-pool", BlockingConfig::threads(threads).queue(queue))
                .limited("prop-view", "cpu", parallelism)
                .build()
                .unwrap();
            let pool = d.get("prop-pool").unwrap();
            let view = d.get("prop-view").unwrap();
            let on_pool = Arc::new(Running::default());
            let on_view = Arc::new(Running::default());
            let mut handles = submit(&pool, &ops, &on_pool);
            handles.extend(submit(&view, &ops, &on_view));
            settle(handles).await;
            // Detached work may still run: shutdown drains it, then the counts are final.
            let report = d.shutdown(std::time::Duration::from_secs(10)).await;
            assert!(!report.deadline_hit, "{report}");
            assert!(on_pool.max.load(Ordering::SeqCst) <= threads);
            assert!(on_view.max.load(Ordering::SeqCst) <= parallelism);
            for s in [pool.stats(), view.stats()] {
                assert!(s.is_balanced(), "{s:?}");
                assert_eq!(s.in_flight, 0, "{s:?}");
                assert_eq!(s.submitted, ops.len() as u64, "{s:?}");
            }
            // Only the pool has a capacity, so only it rejects, and only as full.
            let ps = pool.stats();
            assert_eq!(ps.rejected.total(), ps.rejected.queue_full);
            assert_eq!(view.stats().rejected.total(), 0);
        });
    }

    /// On a one-thread pool, queued jobs start in the order they were submitted; an aborted
    /// queued job never starts.
    #[test]
    fn queued_jobs_start_in_fifo_order(
        aborts in proptest::collection::vec(any::<bool>(), 1..40),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let d = Dispatchers::builder()
                .cpu_threads(1)
                .blocking("prop-fifo", BlockingConfig::threads(1).queue(aborts.len()))
                .build()
                .unwrap();
            let pool = d.get("prop-fifo").unwrap();
            // Hold the thread so everything queues behind it.
            let (gate, held) = common::occupy(&pool, 1);
            let started = Arc::new(Mutex::new(Vec::new()));
            let handles: Vec<_> = aborts
                .iter()
                .enumerate()
                .map(|(i, &abort)| {
                    let started = started.clone();
                    let h = pool.spawn_blocking(move || started.lock().unwrap().push(i));
                    if abort {
                        h.abort();
                    }
                    h
                })
                .collect();
            gate.open();
            settle(held).await;
            settle(handles).await;
            let expected: Vec<usize> =
                aborts.iter().enumerate().filter(|(_, a)| !**a).map(|(i, _)| i).collect();
            assert_eq!(*started.lock().unwrap(), expected);
            let s = pool.stats();
            assert!(s.is_balanced(), "{s:?}");
            assert_eq!(s.cancelled, aborts.iter().filter(|a| **a).count() as u64);
        });
    }
}

/// Rejections: with the pool held and its queue full, every further submission is rejected
/// as full, naming the capacity; nothing admitted is lost.
#[tokio::test]
async fn a_full_pool_rejects_exactly_the_excess() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("prop-full", BlockingConfig::threads(2).queue(3))
        .build()
        .unwrap();
    let pool = d.get("prop-full").unwrap();
    let (gate, held) = common::occupy(&pool, 2);
    let handles: Vec<_> = (0..10).map(|_| pool.spawn_blocking(|| ())).collect();
    let rejected = handles.iter().filter(|h| h.is_finished()).count();
    assert_eq!(rejected, 7);
    gate.open();
    let mut full = 0;
    for h in handles {
        if let Err(e) = h.await {
            assert_eq!(
                e.reject_reason(),
                Some(&RejectReason::QueueFull { capacity: 5 })
            );
            full += 1;
        }
    }
    settle(held).await;
    assert_eq!(full, 7);
    let s = pool.stats();
    assert_eq!((s.completed, s.rejected.queue_full), (5, 7));
    assert!(s.is_balanced(), "{s:?}");
}
