//! Isolation: one dispatcher's trouble must not reach another's. A saturated cpu pool must not
//! delay another dispatcher's timers or futures, nor shutdown; a view over a pool must pass the
//! pool's admission; work that waits for more work on its own pool must not deadlock; closures
//! on a pool see a Tokio context; a runtime's own blocking pool is bounded.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bulkheads::{BlockingConfig, Dispatcher, Dispatchers, RejectReason, RuntimeConfig};
use common::{Gate, Latch, occupy, os_threads_named};

/// Runs its closure when dropped, so gates are opened and spinners stopped even when an
/// assertion fails first.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// Opens `gate` when dropped.
fn open_on_drop(gate: &Gate) -> OnDrop<impl FnMut()> {
    let gate = gate.clone();
    OnDrop(move || gate.open())
}

/// Occupies `jobs` cpu workers with jobs that spin until the returned guard is dropped; returns
/// once every one of them runs. (Blocking closures on the cpu runtime run on its workers.)
fn saturate_cpu(d: &Dispatchers, jobs: usize) -> OnDrop<impl FnMut()> {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Latch::new(jobs);
    for _ in 0..jobs {
        let (stop, started) = (stop.clone(), started.clone());
        drop(d.cpu().spawn_blocking(move || {
            started.arrive();
            while !stop.load(Ordering::Relaxed) {
                // Spins as CPU work would, but lets the other tests' threads have the core.
                std::thread::yield_now();
            }
        }));
    }
    started.wait();
    OnDrop(move || stop.store(true, Ordering::Relaxed))
}

fn registry(name: &str, config: BlockingConfig) -> (Dispatchers, Dispatcher) {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking(name, config)
        .build()
        .unwrap();
    let p = d.get(name).unwrap();
    (d, p)
}

/// A `run_blocking` caller of a full pool with `max_wait` 20 ms gets `WaitTimeout` in well
/// under a second although the cpu pool (whose runtime drives the library's timers today) is
/// saturated by CPU work that never ends.
#[tokio::test]
async fn max_wait_fires_on_time_while_the_cpu_pool_is_saturated() {
    let (d, pool) = registry(
        "iso-maxwait",
        BlockingConfig::threads(1)
            .queue(0)
            .max_wait(Duration::from_millis(20)),
    );
    let (gate, _held) = occupy(&pool, 1);
    let _release = open_on_drop(&gate);
    let _spinning = saturate_cpu(&d, 1);

    let t0 = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(3), pool.run_blocking(|| ())).await;
    let elapsed = t0.elapsed();
    let Ok(result) = outcome else {
        panic!("a 20 ms max_wait had not fired after 3 s while the cpu pool was saturated");
    };
    let err = result.expect_err("the pool is full: the caller must be rejected");
    assert!(
        matches!(err.reject_reason(), Some(RejectReason::WaitTimeout { .. })),
        "expected WaitTimeout, got {err}"
    );
    assert!(
        elapsed < Duration::from_secs(1),
        "a 20 ms max_wait fired after {elapsed:?} while the cpu pool was saturated"
    );
}

/// `shutdown` with a 200 ms deadline returns in well under 2 s although a cpu job never ends
/// (it is abandoned); the job stops only after shutdown returned.
#[tokio::test]
async fn shutdown_keeps_its_deadline_while_a_cpu_job_never_ends() {
    let d = Dispatchers::builder().cpu_threads(1).build().unwrap();
    let _spinning = saturate_cpu(&d, 1);

    let t0 = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        d.shutdown(Duration::from_millis(200)),
    )
    .await;
    let elapsed = t0.elapsed();
    let Ok(report) = outcome else {
        panic!("shutdown(200ms) had not returned after 5 s while a cpu job ran on");
    };
    assert!(
        elapsed < Duration::from_secs(2),
        "shutdown(200ms) took {elapsed:?}"
    );
    assert!(report.deadline_hit, "{report}");
    assert_eq!(report.dispatcher("cpu").unwrap().abandoned, 1, "{report}");
}

/// A future pinned to a blocking pool that sleeps 10 ms completes in well under a second while
/// the cpu pool is saturated (today its timer lives on the cpu runtime, whose only worker is
/// busy).
#[tokio::test]
async fn a_pinned_future_sleeps_on_time_while_the_cpu_pool_is_saturated() {
    let (d, pool) = registry("iso-pinned", BlockingConfig::threads(1).queue(0));
    let _spinning = saturate_cpu(&d, 1);

    let t0 = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(3),
        pool.run(async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            1
        }),
    )
    .await;
    let elapsed = t0.elapsed();
    let Ok(result) = outcome else {
        panic!(
            "a pinned future's 10 ms sleep had not ended after 3 s while the cpu pool was saturated"
        );
    };
    assert_eq!(result.unwrap(), 1);
    assert!(
        elapsed < Duration::from_secs(1),
        "a pinned future's 10 ms sleep took {elapsed:?} while the cpu pool was saturated"
    );
}

/// A view's job running on a pool occupies one of the pool's slots: with one thread and no
/// queue, a direct submission is then rejected at once with `QueueFull`, not queued behind it.
#[tokio::test]
async fn a_view_job_takes_a_slot_of_its_pools_admission() {
    let (_d, pool) = registry("iso-viewadm", BlockingConfig::threads(1).queue(0));
    let view = pool.limited(1);
    let gate = Gate::new();
    let _release = open_on_drop(&gate);
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let held = {
        let gate = gate.clone();
        view.spawn_blocking(move || {
            started_tx.send(()).unwrap();
            gate.wait();
        })
    };
    started_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the view's job never started");

    let direct = pool.spawn_blocking(|| ());
    assert!(
        direct.is_finished(),
        "the pool's only thread runs a view's job and it has no queue, yet a direct job was \
         admitted (queued behind the view's job) instead of rejected; stats: {:?}",
        pool.stats()
    );
    let err = tokio::time::timeout(Duration::from_secs(1), direct)
        .await
        .expect("a rejection resolves at once")
        .expect_err("a full pool rejects");
    assert_eq!(
        err.reject_reason(),
        Some(&RejectReason::QueueFull { capacity: 1 }),
        "{err}"
    );

    gate.open();
    tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("the view's job never finished")
        .unwrap();
}

/// A pool of one thread and `queue` queue slots, and a clone of it for nested calls.
fn nested_pool(name: &str, queue: usize) -> (Dispatchers, Dispatcher, Dispatcher) {
    let (d, pool) = registry(name, BlockingConfig::threads(1).queue(queue));
    let inner = pool.clone();
    (d, pool, inner)
}

/// A closure on a pool that blocks on more work for its own pool, through the Tokio context
/// it runs in (`Handle::current()`), completes: the nested work runs inline on the caller's
/// thread, which already holds a slot of the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_run_blocking_through_the_current_handle_completes_inline() {
    let (d, pool, inner) = nested_pool("iso-nest-cur", 0);
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        pool.run_blocking(move || {
            tokio::runtime::Handle::current().block_on(inner.run_blocking(|| 5))
        }),
    )
    .await;
    let Ok(result) = outcome else {
        panic!("nested work on the caller's own pool deadlocked (no result after 5 s)");
    };
    let nested = result.unwrap_or_else(|e| panic!("the outer job failed: {e}"));
    assert_eq!(
        nested.unwrap_or_else(|e| panic!("the nested job failed: {e}")),
        5
    );
    drop(d); // cancels whatever is left, so no pool thread stays blocked
}

/// The same with a handle of the test's (multi-thread) runtime captured outside: the closure
/// blocks on nested work for its own pool; it completes inline instead of being rejected
/// (no queue) or deadlocking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_run_blocking_through_a_captured_handle_completes_inline() {
    let (d, pool, inner) = nested_pool("iso-nest-cap", 0);
    let h = tokio::runtime::Handle::current();
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        pool.run_blocking(move || h.block_on(inner.run_blocking(|| 5))),
    )
    .await;
    let Ok(result) = outcome else {
        panic!("nested work on the caller's own pool deadlocked (no result after 5 s)");
    };
    let nested = result.unwrap_or_else(|e| panic!("the outer job failed: {e}"));
    assert_eq!(
        nested.unwrap_or_else(|e| panic!("the nested job failed: {e}")),
        5
    );
    drop(d);
}

/// As above, with a queue: the nested job must not be queued behind the job waiting for it
/// (a deadlock: the pool's only thread waits for itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_run_blocking_behind_a_queue_does_not_deadlock() {
    let (d, pool, inner) = nested_pool("iso-nest-q", 4);
    let h = tokio::runtime::Handle::current();
    let outcome = tokio::time::timeout(
        Duration::from_secs(3),
        pool.run_blocking(move || h.block_on(inner.run_blocking(|| 5))),
    )
    .await;
    // Dropping the registry cancels the queued nested job, which frees the blocked thread.
    let stats = pool.stats();
    drop(d);
    let Ok(result) = outcome else {
        panic!(
            "nested work on the caller's own pool deadlocked (no result after 3 s); stats: {stats:?}"
        );
    };
    let nested = result.unwrap_or_else(|e| panic!("the outer job failed: {e}"));
    assert_eq!(
        nested.unwrap_or_else(|e| panic!("the nested job failed: {e}")),
        5
    );
}

/// A future pinned to a pool that awaits more work on the same pool (one thread, no queue)
/// completes: the nested closure runs inline.
#[tokio::test]
async fn nested_run_blocking_in_a_pinned_future_completes_inline() {
    let (d, pool, inner) = nested_pool("iso-nest-fut", 0);
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        pool.run(async move { inner.run_blocking(|| 5).await }),
    )
    .await;
    let Ok(result) = outcome else {
        panic!("nested work on the caller's own pool deadlocked (no result after 5 s)");
    };
    let nested = result.unwrap_or_else(|e| panic!("the outer future failed: {e}"));
    assert_eq!(
        nested.unwrap_or_else(|e| panic!("the nested job failed: {e}")),
        5
    );
    drop(d);
}

/// As above, with a queue: the nested job must not wait in the queue for the thread that
/// waits for it.
#[tokio::test]
async fn nested_run_blocking_in_a_pinned_future_behind_a_queue_does_not_deadlock() {
    let (d, pool, inner) = nested_pool("iso-nest-futq", 4);
    // Dropping the outer future at the timeout cancels it at its `.await`, which cancels the
    // queued nested job too: the thread is freed.
    let outcome = tokio::time::timeout(
        Duration::from_secs(3),
        pool.run(async move { inner.run_blocking(|| 5).await }),
    )
    .await;
    let stats = pool.stats();
    drop(d);
    let Ok(result) = outcome else {
        panic!(
            "nested work on the caller's own pool deadlocked (no result after 3 s); stats: {stats:?}"
        );
    };
    let nested = result.unwrap_or_else(|e| panic!("the outer future failed: {e}"));
    assert_eq!(
        nested.unwrap_or_else(|e| panic!("the nested job failed: {e}")),
        5
    );
}

/// Awaits `work` for at most 5 s, so that a deadlock fails the test instead of hanging it.
async fn within_5s<T>(what: &str, work: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(5), work).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: deadlocked (no result after 5 s)"),
    }
}

/// A job spawned (not run) from work pinned to its own full pool, then awaited there: it would
/// wait in the queue behind its own awaiter; the awaiting thread runs it instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_spawned_on_its_own_full_pool_and_awaited_there_runs_on_the_awaiting_thread() {
    let (d, pool, inner) = nested_pool("iso-nest-spawn", 4);
    let name = || std::thread::current().name().map(str::to_owned);
    let (outer, nested) = within_5s(
        "spawn_blocking awaited in a pinned future",
        pool.run(async move {
            let outer = name();
            (outer, inner.spawn_blocking(name).await)
        }),
    )
    .await
    .unwrap();
    assert_eq!(nested.unwrap(), outer);
    assert_eq!(outer.as_deref(), Some("iso-nest-spawn-0"));

    // The same through `block_on` inside a closure.
    let inner = pool.clone();
    let nested = within_5s(
        "spawn_blocking awaited with block_on in a closure",
        pool.run_blocking(move || {
            tokio::runtime::Handle::current().block_on(inner.spawn_blocking(|| 6))
        }),
    )
    .await
    .unwrap();
    assert_eq!(nested.unwrap(), 6);

    // And as the child of a scope opened there.
    let (dd, inner) = (Arc::new(d), pool.clone());
    let d2 = dd.clone();
    let scoped = within_5s(
        "a scope's child on the pool its scope runs on",
        pool.run(async move {
            d2.scope(|s| async move { s.spawn_blocking_on(&inner, || Ok::<_, String>(7)).await })
                .await
        }),
    )
    .await
    .unwrap();
    assert_eq!(scoped.unwrap(), 7);
    let s = pool.stats();
    assert_eq!((s.completed, s.in_flight), (6, 0), "{s:?}");
}

/// With a thread free, the same job is left to that thread: a job runs on the awaiting thread
/// only when no other thread of its pool could start it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_awaited_on_its_own_pool_with_a_thread_free_runs_on_that_thread() {
    let (d, pool) = registry("iso-nest-free", BlockingConfig::threads(2).queue(4));
    let inner = pool.clone();
    let name = || std::thread::current().name().map(str::to_owned);
    let (outer, nested) = within_5s(
        "spawn_blocking awaited with a thread free",
        pool.run(async move { (name(), inner.spawn_blocking(name).await) }),
    )
    .await
    .unwrap();
    let nested = nested.unwrap();
    assert_ne!(nested, outer, "the free thread ran it");
    assert!(nested.is_some_and(|n| n.starts_with("iso-nest-free-")));
    drop(d);
}

/// A task of a runtime dispatcher with an in-flight cap holds its slot while it awaits: a
/// `run*` it awaits on the same dispatcher would wait at the cap behind it; it runs inline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_run_on_a_runtime_with_an_in_flight_cap_runs_inline() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .runtime(
            "iso-gated",
            RuntimeConfig::workers(1).max_concurrent(1).queue(2),
        )
        .build()
        .unwrap();
    let rt = d.get("iso-gated").unwrap();
    let inner = rt.clone();
    let v = within_5s(
        "run awaited in a task of the same capped runtime",
        rt.run(async move { inner.run(async { 1 }).await }),
    )
    .await;
    assert_eq!(v.unwrap().unwrap(), 1);
    let inner = rt.clone();
    let v = within_5s(
        "run_blocking awaited in a task of the same capped runtime",
        rt.run(async move { inner.run_blocking(|| 2).await }),
    )
    .await;
    assert_eq!(v.unwrap().unwrap(), 2);
    // Each nested call counted as a task of its own.
    let s = rt.stats();
    assert_eq!((s.completed, s.in_flight), (4, 0), "{s:?}");
}

/// A closure on a blocking pool runs inside a Tokio context, as it does in
/// `tokio::task::spawn_blocking` and on a view over the same pool.
#[tokio::test]
async fn a_pool_closure_runs_inside_a_tokio_context() {
    let (_d, pool) = registry("iso-ctx-pool", BlockingConfig::threads(1));
    let has_context = tokio::time::timeout(
        Duration::from_secs(5),
        pool.run_blocking(|| tokio::runtime::Handle::try_current().is_ok()),
    )
    .await
    .expect("the job never ran")
    .unwrap();
    assert!(
        has_context,
        "a closure on a blocking pool has no Tokio context"
    );
}

/// A closure on a view over a pool runs inside a Tokio context. (Passes today: the view's
/// worker enters the cpu runtime; kept so the pool and its views stay alike.)
#[tokio::test]
async fn a_closure_on_a_view_over_a_pool_runs_inside_a_tokio_context() {
    let (_d, pool) = registry("iso-ctx-view", BlockingConfig::threads(1));
    let view = pool.limited(1);
    let has_context = tokio::time::timeout(
        Duration::from_secs(5),
        view.run_blocking(|| tokio::runtime::Handle::try_current().is_ok()),
    )
    .await
    .expect("the job never ran")
    .unwrap();
    assert!(
        has_context,
        "a closure on a view over a pool has no Tokio context"
    );
}

/// A closure on the cpu dispatcher runs inside a Tokio context. (Passes today: it runs as a
/// task on the cpu runtime's workers; kept for completeness.)
#[tokio::test]
async fn a_cpu_closure_runs_inside_a_tokio_context() {
    let d = Dispatchers::builder().cpu_threads(1).build().unwrap();
    let has_context = tokio::time::timeout(
        Duration::from_secs(5),
        d.cpu()
            .run_blocking(|| tokio::runtime::Handle::try_current().is_ok()),
    )
    .await
    .expect("the job never ran")
    .unwrap();
    assert!(
        has_context,
        "a closure on the cpu pool has no Tokio context"
    );
}

/// On `cpu` a closure runs on an async worker: `Handle::current()` works there, but Tokio
/// refuses `block_on` as inside any of its tasks. As documented on `run_blocking`, the closure
/// fails with that panic and the worker serves the next job.
#[tokio::test]
async fn block_on_in_a_cpu_closure_is_refused_by_tokio_and_the_worker_goes_on() {
    common::quiet_panics("within a runtime");
    let d = Dispatchers::builder().cpu_threads(1).build().unwrap();
    let cpu = d.cpu();
    let err = cpu
        .run_blocking(|| tokio::runtime::Handle::current().block_on(async { 1 }))
        .await
        .unwrap_err();
    assert!(err.is_panic(), "{err}");
    assert!(err.to_string().contains("within a runtime"), "{err}");
    assert_eq!(cpu.run_blocking(|| 2).await.unwrap(), 2);
}

/// A `runtime` dispatcher's own Tokio blocking pool is bounded: 64 `spawn_blocking` jobs
/// waiting on a gate inside one of its tasks do not make 64 more threads carrying its name.
#[tokio::test]
async fn a_runtime_dispatchers_blocking_pool_is_bounded() {
    const JOBS: usize = 64;
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .runtime("isorb", RuntimeConfig::workers(1))
        .build()
        .unwrap();
    let rt = d.get("isorb").unwrap();
    let gate = Gate::new();
    let _release = open_on_drop(&gate);
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let spawner = {
        let gate = gate.clone();
        rt.spawn(async move {
            for _ in 0..JOBS {
                let (gate, started) = (gate.clone(), started_tx.clone());
                drop(tokio::task::spawn_blocking(move || {
                    let _ = started.send(());
                    gate.wait();
                }));
            }
        })
    };
    tokio::time::timeout(Duration::from_secs(5), spawner)
        .await
        .expect("the spawning task never ran")
        .unwrap();
    // Every job that can start does so at once; a bounded pool leaves the rest queued, so
    // stop counting once no job has started for half a second.
    let mut started = 0;
    while started < JOBS && started_rx.recv_timeout(Duration::from_millis(500)).is_ok() {
        started += 1;
    }
    let threads = os_threads_named("isorb-");
    assert!(
        threads.len() < 40,
        "{} OS threads named isorb-* for 1 worker ({started} of {JOBS} blocking jobs running at once): \
         the runtime's blocking pool is unbounded",
        threads.len()
    );
    gate.open();
}

/// Runs `jobs` `tokio::task::spawn_blocking` jobs from a task of `d` that wait for a gate;
/// returns once `expect_running` run, with how many ran by then and the gate.
async fn hold_blocking_pool(d: &Dispatcher, jobs: usize, expect_running: usize) -> (usize, Gate) {
    let gate = Gate::new();
    let started = Latch::new(expect_running);
    let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (g, s, r) = (gate.clone(), started.clone(), ran.clone());
    d.run(async move {
        for _ in 0..jobs {
            let (g, s, r) = (g.clone(), s.clone(), r.clone());
            drop(tokio::task::spawn_blocking(move || {
                r.fetch_add(1, Ordering::SeqCst);
                s.arrive();
                g.wait();
            }));
        }
    })
    .await
    .unwrap();
    tokio::task::spawn_blocking(move || started.wait())
        .await
        .unwrap();
    (ran.load(Ordering::SeqCst), gate)
}

/// A runtime dispatcher's own blocking pool has exactly the configured threads, named
/// `<name>-blk-<n>`; jobs beyond them wait.
#[tokio::test]
async fn a_runtime_dispatchers_blocking_pool_has_its_configured_size_and_names() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .runtime("rtblk", RuntimeConfig::workers(1).blocking_threads(2))
        .build()
        .unwrap();
    let (ran, gate) = hold_blocking_pool(&d.get("rtblk").unwrap(), 6, 2).await;
    let _open = open_on_drop(&gate);
    assert_eq!(ran, 2, "only the pool's two threads run jobs");
    assert_eq!(os_threads_named("rtblk-blk-").len(), 2);
    assert_eq!(
        os_threads_named("rtblk-").len(),
        3,
        "one worker, two blocking"
    );
}

/// The same for the cpu runtime, set in a configuration file.
#[tokio::test]
async fn the_cpu_runtimes_blocking_pool_is_configured_from_a_file() {
    let d = Dispatchers::from_toml_str(
        "[cpu]\nthreads = 1\nblocking_threads = 1\n\n[dispatchers.filert]\nkind = \"runtime\"\nworkers = 1\nblocking_threads = 3\n",
    )
    .unwrap();
    let (ran, gate) = hold_blocking_pool(&d.get("filert").unwrap(), 5, 3).await;
    let _open = open_on_drop(&gate);
    assert_eq!(ran, 3);
    assert_eq!(os_threads_named("filert-blk-").len(), 3);
    // cpu's blocking threads are named after it too (other tests' registries have their own
    // cpu runtimes, so only the name is checked here, through a job of this registry).
    let name = d
        .cpu()
        .run(async {
            tokio::task::spawn_blocking(|| std::thread::current().name().map(str::to_owned))
                .await
                .unwrap()
        })
        .await
        .unwrap();
    assert_eq!(name.as_deref(), Some("cpu-blk-0"));
}

/// Work pinned to a pool runs on the pool's threads, never on the control thread, which only
/// drives its timers.
#[tokio::test]
async fn pinned_work_runs_on_pool_threads_not_on_the_control_thread() {
    let (_d, pool) = registry("ctlpin", BlockingConfig::threads(1));
    let name = pool
        .run(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            std::thread::current().name().map(str::to_owned)
        })
        .await
        .unwrap();
    assert_eq!(name.as_deref(), Some("ctlpin-0"));
    let name = pool
        .run_blocking(|| std::thread::current().name().map(str::to_owned))
        .await
        .unwrap();
    assert_eq!(name.as_deref(), Some("ctlpin-0"));
}
