//! Stress: a million submissions over every kind, with random panics, aborts,
//! detached handles, waiting `run*` callers, and a shutdown in the middle of it all. Every
//! handle must resolve, each exactly once, and the accounting must balance exactly.
//!
//! Heavy, so ignored by the default test run; CI runs it in release mode:
//! `cargo test --release -p bulkheads --test stress -- --ignored`

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bulkheads::{BlockingConfig, Dispatcher, Dispatchers, LimitedConfig, RuntimeConfig};

/// xorshift64*: deterministic per seed, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[derive(Default)]
struct Seen {
    ok: AtomicU64,
    panicked: AtomicU64,
    cancelled: AtomicU64,
    rejected: AtomicU64,
}

impl Seen {
    fn record<T>(&self, r: Result<T, bulkheads::DispatchError>) {
        let c = match r {
            Ok(_) => &self.ok,
            Err(e) if e.is_panic() => &self.panicked,
            Err(e) if e.is_cancelled() => &self.cancelled,
            Err(e) if e.is_rejected() => &self.rejected,
            Err(e) => panic!("unexpected {e}"),
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

async fn load(
    d: Dispatcher,
    seed: u64,
    n: usize,
    seen: Arc<Seen>,
    detached: Arc<AtomicU64>,
    halfway: tokio::sync::mpsc::Sender<()>,
) {
    let mut rng = Rng(seed | 1);
    let mut handles = Vec::new();
    let mut runs = tokio::task::JoinSet::new();
    for i in 0..n {
        // First in the body: the arms below may `continue`.
        if i == n / 2 {
            let _ = halfway.send(()).await;
        }
        if i % 1024 == 0 {
            tokio::task::yield_now().await;
        }
        let r = rng.next();
        let panics = r % 23 == 0;
        let work = r % 7;
        match r % 10 {
            0..=5 => {
                let h = if r % 2 == 0 {
                    d.spawn_blocking(move || {
                        if panics {
                            panic!("stress-boom");
                        }
                        std::hint::black_box(work)
                    })
                } else {
                    d.spawn(async move {
                        if work % 3 == 0 {
                            tokio::task::yield_now().await;
                        }
                        if panics {
                            panic!("stress-boom");
                        }
                        work
                    })
                };
                match (r >> 8) % 8 {
                    0 => h.abort(),
                    1 => {
                        // Detached: its outcome is counted, nobody sees it.
                        detached.fetch_add(1, Ordering::Relaxed);
                        drop(h);
                        continue;
                    }
                    _ => {}
                }
                handles.push(h);
            }
            _ => {
                let d = d.clone();
                let seen = seen.clone();
                runs.spawn(async move {
                    let r = d
                        .run(async move {
                            if panics {
                                panic!("stress-boom");
                            }
                            work
                        })
                        .await;
                    seen.record(r);
                });
            }
        }
    }
    for h in handles {
        seen.record(h.await);
    }
    while let Some(joined) = runs.join_next().await {
        joined.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "heavy: run with --release -- --ignored"]
async fn a_storm_with_a_shutdown_in_the_middle_balances_exactly() {
    common::quiet_panics("stress-boom");
    let d = Dispatchers::builder()
        .cpu_threads(2)
        .blocking(
            "spool",
            BlockingConfig::threads(4)
                .queue(512)
                .max_wait(Duration::from_micros(200)),
        )
        .runtime(
            "srt",
            RuntimeConfig::workers(2).max_concurrent(64).queue(256),
        )
        .limited(
            "sview",
            "spool",
            LimitedConfig::parallelism(2)
                .max_concurrent(32)
                .queue(64)
                .max_wait(Duration::from_micros(100)),
        )
        .limited("scpu", "cpu", 3)
        .build()
        .unwrap();
    let names = ["spool", "srt", "sview", "scpu", "cpu"];
    // A million submissions in all; the shutdown comes halfway through.
    let per_dispatcher = 200_000;
    let seen: Vec<Arc<Seen>> = names.iter().map(|_| Arc::new(Seen::default())).collect();
    let detached: Vec<Arc<AtomicU64>> = names.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
    let mut loads = tokio::task::JoinSet::new();
    let (halfway_tx, mut halfway) = tokio::sync::mpsc::channel(names.len());
    for (k, name) in names.iter().enumerate() {
        loads.spawn(load(
            d.get(name).unwrap(),
            0x9E37_79B9_7F4A_7C15 ^ k as u64,
            per_dispatcher,
            seen[k].clone(),
            detached[k].clone(),
            halfway_tx.clone(),
        ));
    }
    // Shut down while the load is still being submitted: once every load is halfway.
    for _ in 0..names.len() {
        halfway.recv().await.unwrap();
    }
    let report = d.shutdown(Duration::from_millis(50)).await;
    let all_done = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(r) = loads.join_next().await {
            r.unwrap();
        }
    })
    .await;
    assert!(all_done.is_ok(), "some handle never resolved");
    let mut refused_after = 0;
    for (k, name) in names.iter().enumerate() {
        let s = d.get(name).unwrap().stats();
        let line = report.dispatcher(name).unwrap();
        assert_eq!(line.in_flight, 0, "{line:?}");
        // After the report, only rejections can be added.
        assert_eq!(
            (s.completed, s.panicked, s.cancelled),
            (line.completed, line.panicked, line.cancelled),
            "{name}: {s:?} vs {line:?}"
        );
        assert!(s.is_balanced(), "{name}: {s:?}");
        assert_eq!(s.in_flight, 0, "{name}");
        let seen = &seen[k];
        let observed = seen.ok.load(Ordering::Relaxed)
            + seen.panicked.load(Ordering::Relaxed)
            + seen.cancelled.load(Ordering::Relaxed)
            + seen.rejected.load(Ordering::Relaxed);
        // Every submission is either observed by its caller exactly once or was detached, and
        // no caller saw an outcome the counters do not have.
        assert_eq!(
            observed + detached[k].load(Ordering::Relaxed),
            s.submitted,
            "{name}: {s:?}"
        );
        assert!(seen.ok.load(Ordering::Relaxed) <= s.completed, "{name}");
        assert!(
            seen.panicked.load(Ordering::Relaxed) <= s.panicked,
            "{name}"
        );
        assert!(
            seen.cancelled.load(Ordering::Relaxed) <= s.cancelled,
            "{name}"
        );
        assert!(
            seen.rejected.load(Ordering::Relaxed) <= s.rejected.total(),
            "{name}"
        );
        assert_eq!(s.submitted as usize, per_dispatcher, "{name}");
        assert!(s.completed > 0, "{name}: {s:?}");
        refused_after += s.rejected.shutting_down;
        eprintln!("{name}: {s:?}");
    }
    // The shutdown came mid-flight: submissions were still arriving and were refused.
    assert!(refused_after > 0);
}

/// Views made and dropped while their tasks run (dropped views become orphans of `cpu` until
/// their tasks end), and work pinned to a pool awaiting closures it spawns on that same pool
/// (run on the awaiting thread when no other is free): every handle resolves once, nothing
/// stays live, and every task is counted exactly once, on the view it ran on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "heavy: run with --release -- --ignored"]
async fn dropped_views_and_own_pool_awaits_balance_exactly() {
    common::quiet_panics("stress-boom");
    let d = Dispatchers::builder()
        .cpu_threads(2)
        .blocking("own", BlockingConfig::threads(2).queue(4096))
        .build()
        .unwrap();
    let own = d.get("own").unwrap();
    let mut rng = Rng(0x5DEE_CE66_D1CE_4E5B);
    let seen = Seen::default();
    let mut detached = 0u64;
    let mut view_tasks = 0u64;
    let mut handles = Vec::new();
    let mut view = d.cpu().limited(2);
    let mut nested = Vec::new();
    for i in 0..100_000u64 {
        if i % 97 == 0 {
            // The old view is dropped with its tasks still in flight.
            view = d.cpu().limited(2);
        }
        let r = rng.next();
        let panics = r % 29 == 0;
        if r % 11 == 0 {
            // Pinned work awaiting two closures it spawns on its own pool.
            let inner = own.clone();
            nested.push(own.spawn(async move {
                let a = inner.spawn_blocking(move || {
                    if panics {
                        panic!("stress-boom");
                    }
                    1u64
                });
                let b = inner.spawn_blocking(|| 2u64);
                let (a, b) = (a.await, b.await);
                a.unwrap_or(0) + b.unwrap_or(0)
            }));
            continue;
        }
        view_tasks += 1;
        let h = view.spawn(async move {
            if r % 3 == 0 {
                tokio::task::yield_now().await;
            }
            if panics {
                panic!("stress-boom");
            }
            r
        });
        match (r >> 8) % 8 {
            0 => {
                h.abort();
                handles.push(h);
            }
            1 => {
                detached += 1;
                drop(h);
            }
            _ => handles.push(h),
        }
        if i % 1024 == 0 {
            tokio::task::yield_now().await;
        }
    }
    drop(view);
    let all = tokio::time::timeout(Duration::from_secs(120), async {
        for h in handles {
            seen.record(h.await);
        }
        for h in nested {
            let v = h.await.expect("the pinned work itself never fails");
            assert!(v == 2 || v == 3, "{v}");
        }
    })
    .await;
    assert!(all.is_ok(), "some handle never resolved");
    bulkheads::testing::assert_no_leaks_within(&d, Duration::from_secs(10)).await;
    let report = d.shutdown(Duration::from_secs(10)).await;
    assert!(!report.deadline_hit, "{report}");
    let views = report
        .dispatcher("cpu.limited(2)")
        .expect("the views' line");
    assert_eq!(views.submitted, view_tasks, "{report}");
    assert_eq!(views.in_flight, 0, "{report}");
    assert_eq!(
        views.completed + views.panicked + views.cancelled,
        view_tasks,
        "{report}"
    );
    let observed = seen.ok.load(Ordering::Relaxed)
        + seen.panicked.load(Ordering::Relaxed)
        + seen.cancelled.load(Ordering::Relaxed);
    assert_eq!(observed + detached, view_tasks);
    assert_eq!(seen.rejected.load(Ordering::Relaxed), 0);
    let own_line = report.dispatcher("own").unwrap();
    assert_eq!(own_line.in_flight, 0, "{report}");
    assert_eq!(
        own_line.submitted,
        own_line.completed + own_line.panicked + own_line.cancelled,
        "{report}"
    );
}
