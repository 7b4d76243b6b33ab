//! Panics are contained: pool threads survive, and every panic reaches exactly one place —
//! the awaiting caller, or the root failure handler when nobody awaits.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bulkheads::{BlockingConfig, Dispatchers, Failure, FailureKind};
use common::{Gate, Latch, os_threads_named};

const MARK: &str = "contained-panic";

struct Seen {
    failures: Arc<Mutex<Vec<Failure>>>,
    arrivals: Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Seen {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Failure>> {
        self.failures.lock().unwrap()
    }
    /// Waits for `n` failures to reach the handler (the timeout only guards against a hang).
    fn wait_for(&self, n: usize) {
        let rx = self.arrivals.lock().unwrap();
        for _ in 0..n {
            rx.recv_timeout(std::time::Duration::from_secs(30))
                .expect("failure never reached the handler");
        }
    }
}

fn with_handler(name: &str, threads: usize) -> (Dispatchers, Seen) {
    common::quiet_panics(MARK);
    let failures = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = failures.clone();
    let tx = Mutex::new(tx);
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking(name, BlockingConfig::threads(threads).queue(10_000))
        .on_failure(move |f: &Failure| {
            sink.lock().unwrap().push(f.clone());
            let _ = tx.lock().unwrap().send(());
        })
        .build()
        .unwrap();
    (
        d,
        Seen {
            failures,
            arrivals: Mutex::new(rx),
        },
    )
}

#[tokio::test]
async fn ten_thousand_panics_leave_every_thread_serving() {
    let (d, seen) = with_handler("panicky", 4);
    let p = d.get("panicky").unwrap();
    let handles: Vec<_> = (0..10_000)
        .map(|_| p.spawn_blocking(|| -> u8 { panic!("{MARK}") }))
        .collect();
    for h in handles {
        let err = h.await.unwrap_err();
        assert!(err.is_panic(), "{err}");
    }
    assert!(
        seen.lock().is_empty(),
        "awaited panics do not reach the handler"
    );
    let s = p.stats();
    assert_eq!(s.threads, 4);
    assert_eq!(s.panicked, 10_000);
    assert_eq!(os_threads_named("panicky-").len(), 4);
    // All four threads still take work at once.
    let (gate, held) = common::occupy(&p, 4);
    gate.open();
    for h in held {
        h.await.unwrap();
    }
}

#[tokio::test]
async fn detached_panics_reach_the_root_handler_exactly_once() {
    let (d, seen) = with_handler("detached", 2);
    let p = d.get("detached").unwrap();
    for i in 0..100 {
        drop(
            p.task(format!("job-{i}"))
                .spawn_blocking(|| panic!("{MARK}")),
        );
    }
    seen.wait_for(100);
    let failures = seen.lock().clone();
    assert_eq!(failures.len(), 100);
    let mut names: Vec<_> = failures
        .iter()
        .map(|f| f.task.name.clone().unwrap().into_owned())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 100, "each failure exactly once");
    let f = &failures[0];
    assert_eq!(f.kind, FailureKind::Panic);
    assert_eq!(&*f.dispatcher, "detached");
    let line = f.to_string();
    assert!(
        line.contains("on dispatcher 'detached' panicked: contained-panic"),
        "{line}"
    );
    assert!(
        line.contains("panics.rs"),
        "the spawn site is named: {line}"
    );
}

#[tokio::test]
async fn a_panic_after_its_caller_left_goes_to_the_handler() {
    let (d, seen) = with_handler("leftcaller", 1);
    let p = d.get("leftcaller").unwrap();
    let gate = Gate::new();
    let started = Latch::new(1);
    let mut call = {
        let (gate, started) = (gate.clone(), started.clone());
        tokio_test::task::spawn(p.run_blocking(move || {
            started.arrive();
            gate.wait();
            panic!("{MARK}");
        }))
    };
    assert!(call.poll().is_pending());
    started.wait();
    drop(call); // the job runs on: abandoned
    gate.open();
    seen.wait_for(1);
    p.run_blocking(|| ()).await.unwrap();
    assert_eq!(seen.lock().len(), 1);
    let s = p.stats();
    assert_eq!((s.cancelled, s.abandoned, s.panicked), (1, 1, 0));
    assert!(s.is_balanced(), "{s:?}");
}

#[tokio::test]
async fn a_panicking_root_handler_is_contained() {
    common::quiet_panics(MARK);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("badhandler", BlockingConfig::threads(1))
        .on_failure(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
            panic!("{MARK} in handler");
        })
        .build()
        .unwrap();
    let p = d.get("badhandler").unwrap();
    drop(p.spawn_blocking(|| panic!("{MARK}")));
    // The thread survives the handler's panic and serves the next job.
    assert_eq!(p.run_blocking(|| 9).await.unwrap(), 9);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(p.stats().threads, 1);
}

#[tokio::test]
async fn panics_on_runtime_dispatchers_are_contained_too() {
    let (d, seen) = with_handler("unused", 1);
    let cpu = d.cpu();
    let r: Result<(), _> = cpu.run(async { panic!("{MARK}") }).await;
    let err = r.unwrap_err();
    assert!(err.is_panic());
    let r: Result<(), _> = cpu.run_blocking(|| panic!("{MARK}")).await;
    let err = r.unwrap_err();
    assert!(err.is_panic());
    assert_eq!(
        err.into_panic()
            .unwrap()
            .downcast_ref::<String>()
            .map(String::as_str),
        Some(MARK)
    );
    assert!(seen.lock().is_empty());
    assert_eq!(cpu.run(async { 1 }).await.unwrap(), 1);
}
