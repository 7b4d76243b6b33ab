//! Restarting supervisors: OTP's strategies and restart types (starts counted per child),
//! intensity and escalation (once, counted, every child stopped), shutdown order and
//! timeouts, nesting, the root handler's view of every child failure, backoff.
//!
//! Synchronisation is by events the children record (awaited, with generous hang guards);
//! time is only measured as loose lower bounds.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkheads::{
    Backoff, BlockingConfig, Child, ChildState, Dispatchers, Failure, FailureKind, Restart,
    Strategy, Supervisor, SupervisorError,
};
use common::Gate;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};
use tokio::sync::watch;

const MARK: &str = "supervised-panic";
const GUARD: Duration = Duration::from_secs(30);

/// What children did, in order (`start a`, `stop a`, `fail a`, ...) and when, awaitable.
#[derive(Clone)]
struct Events(Arc<watch::Sender<Vec<(String, Instant)>>>);

impl Events {
    fn new() -> Self {
        Events(Arc::new(watch::channel(Vec::new()).0))
    }
    fn push(&self, e: impl Into<String>) {
        let e = (e.into(), Instant::now());
        self.0.send_modify(|v| v.push(e));
    }
    fn all(&self) -> Vec<String> {
        self.0.borrow().iter().map(|(e, _)| e.clone()).collect()
    }
    fn count(&self, e: &str) -> usize {
        self.0.borrow().iter().filter(|(x, _)| x == e).count()
    }
    /// When `e` happened for the `n`-th time (from 1).
    fn at(&self, e: &str, n: usize) -> Instant {
        let v = self.0.borrow();
        v.iter().filter(|(x, _)| x == e).nth(n - 1).unwrap().1
    }
    /// Waits until `e` happened `n` times.
    async fn wait(&self, e: &str, n: usize) {
        let mut rx = self.0.subscribe();
        let seen = rx.wait_for(|v| v.iter().filter(|(x, _)| x == e).count() >= n);
        tokio::time::timeout(GUARD, seen)
            .await
            .unwrap_or_else(|_| panic!("never saw {e:?} x{n}: {:?}", self.all()))
            .unwrap();
    }
    /// The events after the first `from`.
    fn since(&self, from: usize) -> Vec<String> {
        self.all()[from..].to_vec()
    }
}

/// Records `stop <name>` when the child's future is dropped (cancelled or ended).
struct OnDrop(Events, String);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.push(format!("stop {}", self.1));
    }
}

/// What a child does on one of its starts.
#[derive(Clone, Copy, Debug)]
enum Act {
    /// Runs until cancelled.
    Run,
    /// Returns `Err` at once.
    Fail,
    /// Panics at once.
    Panic,
    /// Returns `Ok` at once.
    Return,
    /// Waits for an event, then returns `Err`.
    FailAfter(&'static str),
    /// Runs this many milliseconds, then returns `Err`.
    FailIn(u64),
}

/// A child that records `start <name>` (and `stop <name>` when its future is dropped), then
/// does `acts[n - 1]` on its n-th start (`Run` past the end).
fn child(events: &Events, name: &'static str, acts: &'static [Act]) -> Child {
    let (events, starts) = (events.clone(), Arc::new(AtomicUsize::new(0)));
    Child::new(name, move || {
        let (events, n) = (events.clone(), starts.fetch_add(1, Ordering::SeqCst));
        async move {
            events.push(format!("start {name}"));
            let _guard = OnDrop(events.clone(), name.to_owned());
            match acts.get(n).copied().unwrap_or(Act::Run) {
                Act::Run => std::future::pending().await,
                Act::Return => Ok(()),
                Act::Panic => panic!("{MARK}: {name} panicked on start {}", n + 1),
                Act::Fail => {
                    events.push(format!("fail {name}"));
                    Err(format!("{name} broke on start {}", n + 1))
                }
                Act::FailIn(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    events.push(format!("fail {name}"));
                    Err(format!("{name} broke on start {}", n + 1))
                }
                Act::FailAfter(event) => {
                    events.wait(event, 1).await;
                    events.push(format!("fail {name}"));
                    Err(format!("{name} broke on start {}", n + 1))
                }
            }
        }
    })
}

/// A registry whose `cpu` has one thread (children start in the order they are spawned), a
/// small pool, and a root handler that keeps every failure and records `failure <task>`.
fn registry(events: &Events) -> (Dispatchers, Arc<Mutex<Vec<Failure>>>) {
    common::quiet_panics(MARK);
    let failures = Arc::new(Mutex::new(Vec::new()));
    let (sink, events) = (failures.clone(), events.clone());
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("pool", BlockingConfig::threads(2))
        .on_failure(move |f: &Failure| {
            sink.lock().unwrap().push(f.clone());
            events.push(format!("failure {}", f.task.name.as_deref().unwrap_or("?")));
        })
        .build()
        .unwrap();
    (d, failures)
}

/// Waits until the supervisor reports these child states and restart counts.
async fn settle(sup: &bulkheads::SupervisorHandle, want: &[(ChildState, u64)]) {
    let started = Instant::now();
    while states(sup) != want {
        assert!(started.elapsed() < GUARD, "{:?} != {want:?}", states(sup));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn starts(events: &Events, names: &[&str]) -> Vec<usize> {
    names
        .iter()
        .map(|n| events.count(&format!("start {n}")))
        .collect()
}

fn ev(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn states(sup: &bulkheads::SupervisorHandle) -> Vec<(ChildState, u64)> {
    sup.children()
        .iter()
        .map(|c| (c.state, c.restarts))
        .collect()
}

use Act::*;
use ChildState::{Abandoned, Exited, Removed, Running, Stopped};

#[tokio::test]
async fn one_for_one_restarts_only_the_child_that_failed() {
    let e = Events::new();
    let (d, failures) = registry(&e);
    let sup = Supervisor::builder("s")
        .child(child(&e, "a", &[]))
        .child(child(&e, "b", &[Fail]))
        .child(child(&e, "c", &[]))
        .start(&d)
        .unwrap();
    e.wait("start b", 2).await;
    e.wait("start c", 1).await;
    assert_eq!(starts(&e, &["a", "b", "c"]), [1, 2, 1]);
    assert_eq!(states(&sup), [(Running, 0), (Running, 1), (Running, 0)]);
    sup.shutdown().await;
    let f = failures.lock().unwrap().clone();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].kind, f[0].restarting), (FailureKind::Error, true));
    assert_eq!(f[0].path(), Some("supervisor 's'/child 'b'"));
    assert_eq!(f[0].task.name.as_deref(), Some("b"));
    assert_eq!(f[0].message, "b broke on start 1");
    assert_eq!(&*f[0].dispatcher, "cpu");
    // The spawn site is the line that declared the child, not the library's loop.
    assert!(
        f[0].task.location.file().ends_with("supervisors.rs"),
        "{}",
        f[0].task
    );
}

#[tokio::test]
async fn one_for_all_stops_the_others_in_reverse_then_starts_all_in_order() {
    let e = Events::new();
    let (d, _failures) = registry(&e);
    let sup = Supervisor::builder("all")
        .strategy(Strategy::OneForAll)
        .child(child(&e, "a", &[]))
        .child(child(&e, "b", &[Return, Return]).restart(Restart::Transient))
        .child(child(&e, "t", &[]).restart(Restart::Temporary))
        .child(child(&e, "d", &[FailAfter("stop b")]))
        .start(&d)
        .unwrap();
    e.wait("start d", 2).await;
    e.wait("stop b", 2).await;
    // b had returned (transient: not restarted by itself), yet the group restart starts it
    // again, as OTP does; the temporary t is stopped and removed.
    assert_eq!(starts(&e, &["a", "b", "t", "d"]), [2, 2, 1, 2]);
    let all = e.all();
    let at = all.iter().position(|x| x == "fail d").unwrap();
    let expected = [
        "fail d",
        "stop d",
        "failure d",
        "stop t",
        "stop a",
        "start a",
        "start b",
        "stop b",
        "start d",
    ];
    assert_eq!(all[at..], ev(&expected)[..]);
    settle(
        &sup,
        &[(Running, 1), (Exited, 1), (Removed, 0), (Running, 1)],
    )
    .await;
    sup.shutdown().await;
    assert!(sup.join().await.is_ok());
}

#[tokio::test]
async fn rest_for_one_restarts_the_failed_child_and_those_after_it() {
    let e = Events::new();
    let (d, _failures) = registry(&e);
    let sup = Supervisor::builder("rest")
        .strategy(Strategy::RestForOne)
        .child(child(&e, "a", &[]))
        .child(child(&e, "b", &[FailAfter("start d")]))
        .child(child(&e, "c", &[]))
        .child(child(&e, "d", &[]))
        .start(&d)
        .unwrap();
    e.wait("start d", 2).await;
    assert_eq!(starts(&e, &["a", "b", "c", "d"]), [1, 2, 2, 2]);
    let all = e.all();
    let at = all.iter().position(|x| x == "fail b").unwrap();
    assert_eq!(
        all[at..],
        ev(&[
            "fail b",
            "stop b",
            "failure b",
            "stop d",
            "stop c",
            "start b",
            "start c",
            "start d"
        ])[..]
    );
    sup.shutdown().await;
    // Shutdown: reverse start order.
    let n = all.len();
    assert_eq!(e.since(n), ev(&["stop d", "stop c", "stop b", "stop a"]));
}

#[tokio::test]
async fn restart_types_decide_what_comes_back() {
    let e = Events::new();
    let (d, failures) = registry(&e);
    let sup = Supervisor::builder("types")
        .intensity(10, Duration::from_secs(10))
        .child(child(&e, "perm", &[Return]))
        .child(child(&e, "trans_ok", &[Return]).restart(Restart::Transient))
        .child(child(&e, "trans_err", &[Fail]).restart(Restart::Transient))
        .child(child(&e, "temp_ok", &[Return]).restart(Restart::Temporary))
        .child(child(&e, "temp_err", &[Fail]).restart(Restart::Temporary))
        .child(child(&e, "last", &[]))
        .start(&d)
        .unwrap();
    e.wait("start perm", 2).await;
    e.wait("start trans_err", 2).await;
    e.wait("failure temp_err", 1).await;
    settle(
        &sup,
        &[
            (Running, 1),
            (Exited, 0),
            (Running, 1),
            (Removed, 0),
            (Removed, 0),
            (Running, 0),
        ],
    )
    .await;
    e.wait("start last", 1).await;
    sup.shutdown().await;
    let names = [
        "perm",
        "trans_ok",
        "trans_err",
        "temp_ok",
        "temp_err",
        "last",
    ];
    assert_eq!(starts(&e, &names), [2, 1, 2, 1, 1, 1]);
    assert_eq!(
        states(&sup),
        [
            (Stopped, 1),
            (Exited, 0),
            (Stopped, 1),
            (Removed, 0),
            (Removed, 0),
            (Stopped, 0)
        ]
    );
    let mut f: Vec<_> = failures
        .lock()
        .unwrap()
        .iter()
        .map(|f| (f.task.name.clone().unwrap().to_string(), f.restarting))
        .collect();
    f.sort();
    assert_eq!(f, [("temp_err".into(), false), ("trans_err".into(), true)]);
}

type Snapshot = Vec<(
    CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;

/// A counter's value in `snap` (one snapshot: taking one drains the recorder's counters).
fn counter(snap: &Snapshot, name: &str, labels: &[(&str, &str)]) -> u64 {
    let found = snap
        .iter()
        .find(|(k, _, _, _): &&(CompositeKey, _, _, DebugValue)| {
            k.kind() == MetricKind::Counter
                && k.key().name() == name
                && k.key().labels().count() == labels.len()
                && labels
                    .iter()
                    .all(|(lk, lv)| k.key().labels().any(|l| l.key() == *lk && l.value() == *lv))
        });
    match found.map(|(_, _, _, v)| v) {
        Some(DebugValue::Counter(v)) => *v,
        other => panic!("{name} {labels:?}: {other:?}"),
    }
}

#[tokio::test]
async fn intensity_exceeded_stops_every_child_and_escalates_once() {
    let e = Events::new();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (d, failures, sup) = metrics::with_local_recorder(&recorder, || {
        let (d, failures) = registry(&e);
        let sup = Supervisor::builder("ingest")
            .intensity(2, Duration::from_secs(60))
            .child(child(&e, "steady", &[]))
            .child(child(&e, "bad", &[Fail, Fail, Fail]))
            .start(&d)
            .unwrap();
        (d, failures, sup)
    });
    let err = tokio::time::timeout(GUARD, sup.join())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "supervisor 'ingest' gave up: more than 2 restart(s) within 60s; child 'bad' failed: bad broke on start 3"
    );
    assert!(matches!(
        &err,
        SupervisorError::GaveUp { supervisor, max_restarts: 2, child, .. }
            if &**supervisor == "ingest" && &**child == "bad"
    ));
    // Every child was stopped before the supervisor failed.
    assert_eq!(e.count("stop steady"), 1);
    assert_eq!(states(&sup), [(Stopped, 0), (Stopped, 2)]);
    let f = failures.lock().unwrap().clone();
    let flags: Vec<_> = f
        .iter()
        .map(|f| (f.task.name.as_deref().unwrap().to_owned(), f.restarting))
        .collect();
    assert_eq!(
        flags,
        [
            ("bad".into(), true),
            ("bad".into(), true),
            ("bad".into(), false),
            ("ingest".into(), false)
        ]
    );
    let escalation = &f[3];
    assert_eq!(escalation.kind, FailureKind::Error);
    assert_eq!(escalation.message, err.to_string());
    assert_eq!(escalation.path(), Some("supervisor 'ingest'"));
    let snap = snapshotter.snapshot().into_vec();
    let c = |name, labels: &[(&str, &str)]| counter(&snap, name, labels);
    assert_eq!(
        c(
            "bulkheads_supervisor_escalations_total",
            &[("supervisor", "ingest")]
        ),
        1
    );
    let bad = [("supervisor", "ingest"), ("child", "bad")];
    assert_eq!(c("bulkheads_supervisor_restarts_total", &bad), 2);
    let steady = [("supervisor", "ingest"), ("child", "steady")];
    assert_eq!(c("bulkheads_supervisor_restarts_total", &steady), 0);
    let errors = [("dispatcher", "cpu"), ("kind", "error")];
    assert_eq!(c("bulkheads_failures_total", &errors), 4);
    // Shutting down an ended supervisor changes nothing.
    sup.shutdown().await;
    assert!(matches!(
        sup.join().await,
        Err(SupervisorError::GaveUp { .. })
    ));
    d.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn intensity_zero_gives_up_at_the_first_restart() {
    let e = Events::new();
    let (d, failures) = registry(&e);
    // A permanent child that returns normally asks for a restart too (OTP).
    let sup = Supervisor::builder("strict")
        .intensity(0, Duration::from_secs(1))
        .child(child(&e, "once", &[Return]))
        .start(&d)
        .unwrap();
    let err = sup.join().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "supervisor 'strict' gave up: more than 0 restart(s) within 1s; child 'once' returned"
    );
    assert_eq!(starts(&e, &["once"]), [1]);
    let names: Vec<_> = failures
        .lock()
        .unwrap()
        .iter()
        .map(|f| f.task.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["strict"]);
}

#[tokio::test]
async fn bad_declarations_are_refused_naming_the_supervisor() {
    let (d, _) = registry(&Events::new());
    let e = Events::new();
    let refuse = |b: bulkheads::SupervisorBuilder| b.start(&d).unwrap_err().to_string();
    assert_eq!(
        refuse(Supervisor::builder("p").intensity(1, Duration::ZERO)),
        "supervisor 'p' cannot start: the intensity period must be above zero"
    );
    assert_eq!(
        refuse(
            Supervisor::builder("dup")
                .child(child(&e, "x", &[]))
                .child(child(&e, "x", &[]))
        ),
        "supervisor 'dup' cannot start: two children are named 'x'"
    );
    assert_eq!(
        refuse(Supervisor::builder("").child(child(&e, "x", &[]))),
        "supervisor '' cannot start: a supervisor's name must not be empty"
    );
    let ms = Duration::from_millis;
    assert_eq!(
        refuse(Supervisor::builder("b").backoff(Backoff::exponential(ms(10), ms(5)))),
        "supervisor 'b' cannot start: the maximum backoff (5ms) is below the minimum (10ms)"
    );
    assert_eq!(
        refuse(Supervisor::builder("j").backoff(Backoff::exponential(ms(1), ms(5)).jitter(2.0))),
        "supervisor 'j' cannot start: the backoff jitter must be between 0 and 1, got 2"
    );
    // Nested declarations are checked with the rest, and name themselves; a nested
    // supervisor shares its parent's namespace of child names.
    let inner = Supervisor::builder("inner").intensity(1, Duration::ZERO);
    assert_eq!(
        refuse(Supervisor::builder("outer").child(Child::supervisor(inner))),
        "supervisor 'inner' cannot start: the intensity period must be above zero"
    );
    let clash = Supervisor::builder("x");
    assert_eq!(
        refuse(
            Supervisor::builder("o")
                .child(child(&e, "x", &[]))
                .child(Child::supervisor(clash))
        ),
        "supervisor 'o' cannot start: two children are named 'x'"
    );
    // After the registry shut down, nothing starts.
    d.shutdown(Duration::from_secs(5)).await;
    let late = Supervisor::builder("late").start(&d).unwrap_err();
    assert!(
        matches!(late, SupervisorError::RegistryClosed { .. }),
        "{late}"
    );
    assert_eq!(e.all(), Vec::<String>::new());
}

#[tokio::test]
async fn a_supervisor_without_children_runs_until_shut_down() {
    let (d, _) = registry(&Events::new());
    let sup = Supervisor::builder("empty").start(&d).unwrap();
    assert!(sup.children().is_empty());
    assert!(!sup.is_finished());
    sup.shutdown().await;
    assert!(sup.is_finished());
    assert!(sup.join().await.is_ok());
}

#[tokio::test]
async fn shutdown_stops_children_in_reverse_start_order_on_any_dispatcher() {
    let e = Events::new();
    let (d, failures) = registry(&e);
    let pool = d.get("pool").unwrap();
    let view = d.cpu().limited(1);
    let sup = Supervisor::builder("order")
        .child(child(&e, "a", &[]).on(&pool))
        .child(child(&e, "b", &[]).on(&view))
        .child(child(&e, "c", &[]))
        .start(&d)
        .unwrap();
    for name in ["start a", "start b", "start c"] {
        e.wait(name, 1).await;
    }
    let n = e.all().len();
    tokio::time::timeout(GUARD, sup.shutdown()).await.unwrap();
    assert_eq!(e.since(n), ev(&["stop c", "stop b", "stop a"]));
    assert_eq!(states(&sup), [(Stopped, 0); 3]);
    assert!(failures.lock().unwrap().is_empty());
    // A second shutdown, and join, return at once.
    sup.shutdown().await;
    assert!(sup.join().await.is_ok());
    d.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_hanging_child_is_abandoned_after_its_timeout_and_shutdown_returns() {
    let e = Events::new();
    let (d, failures) = registry(&e);
    let gate = Gate::new();
    let (g, ev2) = (gate.clone(), e.clone());
    // Blocking code inside a future on a pool: cancelling cannot interrupt it.
    let stuck = Child::new("stuck", move || {
        let (g, e) = (g.clone(), ev2.clone());
        async move {
            e.push("start stuck");
            g.wait();
        }
    })
    .on(&d.get("pool").unwrap())
    .shutdown(Duration::from_millis(50));
    let sup = Supervisor::builder("hang")
        .child(child(&e, "first", &[]))
        .child(stuck)
        .child(child(&e, "last", &[]))
        .start(&d)
        .unwrap();
    e.wait("start stuck", 1).await;
    e.wait("start last", 1).await;
    let n = e.all().len();
    let t = Instant::now();
    tokio::time::timeout(GUARD, sup.shutdown()).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(50),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(e.since(n), ev(&["stop last", "stop first"]));
    assert_eq!(states(&sup), [(Stopped, 0), (Abandoned, 0), (Stopped, 0)]);
    assert!(sup.join().await.is_ok());
    gate.open();
    d.shutdown(Duration::from_secs(5)).await;
    assert!(failures.lock().unwrap().is_empty());
}

/// Panics when dropped (unless already unwinding).
struct Boom;

impl Drop for Boom {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{MARK}: boom in drop");
        }
    }
}

#[tokio::test]
async fn a_panic_in_drop_while_stopping_is_contained_and_reported() {
    let e = Events::new();
    let (d, failures) = registry(&e);
    let ev2 = e.clone();
    let boom = Child::new("boom", move || {
        let e = ev2.clone();
        async move {
            let _boom = Boom;
            e.push("start boom");
            std::future::pending::<()>().await
        }
    });
    let sup = Supervisor::builder("dropper")
        .child(boom)
        .start(&d)
        .unwrap();
    e.wait("start boom", 1).await;
    tokio::time::timeout(GUARD, sup.shutdown()).await.unwrap();
    assert_eq!(states(&sup), [(Stopped, 0)]);
    e.wait("failure boom", 1).await;
    let f = failures.lock().unwrap().clone();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].kind, f[0].restarting), (FailureKind::Panic, false));
    assert!(f[0].message.contains("boom in drop"), "{}", f[0]);
    assert_eq!(f[0].path(), Some("supervisor 'dropper'/child 'boom'"));
}

#[tokio::test]
async fn panics_in_a_child_or_in_its_factory_are_failures() {
    let e = Events::new();
    let (d, failures) = registry(&e);
    let calls = Arc::new(AtomicUsize::new(0));
    let (c2, ev2) = (calls.clone(), e.clone());
    // The factory itself panics on its first call (a child that fails on start).
    let factory = Child::new("factory", move || {
        if c2.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("{MARK}: no connection");
        }
        let e = ev2.clone();
        async move {
            e.push("start factory");
            std::future::pending::<()>().await
        }
    });
    let sup = Supervisor::builder("p")
        .intensity(5, Duration::from_secs(60))
        .child(child(&e, "a", &[Panic]).on(&d.get("pool").unwrap()))
        .child(factory)
        .start(&d)
        .unwrap();
    e.wait("start a", 2).await;
    e.wait("start factory", 1).await;
    sup.shutdown().await;
    assert_eq!(states(&sup), [(Stopped, 1), (Stopped, 1)]);
    let mut f = failures.lock().unwrap().clone();
    f.sort_by_key(|f| f.task.name.clone());
    let seen: Vec<_> = f
        .iter()
        .map(|f| {
            let name = f.task.name.as_deref().unwrap().to_owned();
            (name, f.kind, f.restarting, f.dispatcher.to_string())
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("a".into(), FailureKind::Panic, true, "pool".into()),
            ("factory".into(), FailureKind::Panic, true, "cpu".into())
        ]
    );
    assert!(f[0].message.contains("a panicked on start 1"), "{}", f[0]);
    assert!(f[1].message.contains("no connection"), "{}", f[1]);
    assert_eq!(f[1].path(), Some("supervisor 'p'/child 'factory'"));
    // The failure's one line says it all.
    let line = f[0].to_string();
    assert!(
        line.contains("in supervisor 'p'/child 'a'") && line.ends_with("(restarting)"),
        "{line}"
    );
}

#[tokio::test]
async fn nested_supervisor_escalates_to_its_parent() {
    let e = Events::new();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (d, failures, outer) = metrics::with_local_recorder(&recorder, || {
        let (d, failures) = registry(&e);
        let inner = Supervisor::builder("inner")
            .intensity(0, Duration::from_secs(1))
            .child(child(&e, "flaky", &[Fail, Fail]));
        let outer = Supervisor::builder("outer")
            .intensity(1, Duration::from_secs(60))
            .child(child(&e, "steady", &[]))
            .child(Child::supervisor(inner))
            .start(&d)
            .unwrap();
        (d, failures, outer)
    });
    let err = tokio::time::timeout(GUARD, outer.join())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, SupervisorError::GaveUp { supervisor, child, .. }
            if &**supervisor == "outer" && &**child == "inner"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("child 'inner' failed: supervisor 'inner' gave up"),
        "{err}"
    );
    assert_eq!(starts(&e, &["steady", "flaky"]), [1, 2]);
    assert_eq!(e.count("stop steady"), 1);
    assert_eq!(states(&outer), [(Stopped, 0), (Stopped, 1)]);
    let f = failures.lock().unwrap().clone();
    let seen: Vec<_> = f
        .iter()
        .map(|f| (f.path().unwrap().to_owned(), f.restarting))
        .collect();
    let flaky = "supervisor 'outer'/supervisor 'inner'/child 'flaky'";
    let inner = "supervisor 'outer'/supervisor 'inner'";
    assert_eq!(
        seen,
        [
            (flaky.into(), false),
            (inner.into(), true),
            (flaky.into(), false),
            (inner.into(), false),
            ("supervisor 'outer'".into(), false),
        ]
    );
    let snap = snapshotter.snapshot().into_vec();
    let esc = |s| {
        counter(
            &snap,
            "bulkheads_supervisor_escalations_total",
            &[("supervisor", s)],
        )
    };
    assert_eq!((esc("inner"), esc("outer")), (2, 1));
    let restarts = [("supervisor", "outer"), ("child", "inner")];
    assert_eq!(
        counter(&snap, "bulkheads_supervisor_restarts_total", &restarts),
        1
    );
    d.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn backoff_delays_restarts_and_resets_after_a_quiet_period() {
    let e = Events::new();
    let (d, _) = registry(&e);
    let ms = Duration::from_millis;
    // Delays 20 ms, 200 ms, 2 s...; reset once a child ran 100 ms without failing.
    let backoff = Backoff::exponential(ms(20), ms(5_000))
        .factor(10.0)
        .reset_after(ms(100));
    let sup = Supervisor::builder("slow")
        .intensity(100, Duration::from_secs(60))
        .backoff(backoff)
        .child(child(&e, "x", &[Fail, Fail, FailIn(300)]))
        .start(&d)
        .unwrap();
    e.wait("start x", 4).await;
    let gap = |n| e.at("start x", n + 1).duration_since(e.at("fail x", n));
    assert!(gap(1) >= ms(20), "{:?}", gap(1));
    assert!(gap(2) >= ms(200), "{:?}", gap(2));
    // The third run lasted 300 ms: the delay went back to 20 ms instead of 2 s.
    assert!(gap(3) >= ms(20) && gap(3) < ms(1_500), "{:?}", gap(3));
    assert_eq!(states(&sup), [(Running, 3)]);
    sup.shutdown().await;
}

#[tokio::test]
async fn a_refused_start_is_a_failure() {
    common::quiet_panics(MARK);
    let failures = Arc::new(Mutex::new(Vec::new()));
    let sink = failures.clone();
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("tiny", BlockingConfig::threads(1).queue(0))
        .on_failure(move |f: &Failure| sink.lock().unwrap().push(f.clone()))
        .build()
        .unwrap();
    let tiny = d.get("tiny").unwrap();
    let (gate, held) = common::occupy(&tiny, 1);
    let e = Events::new();
    let sup = Supervisor::builder("full")
        .intensity(0, Duration::from_secs(1))
        .child(child(&e, "x", &[]).on(&tiny))
        .start(&d)
        .unwrap();
    let err = tokio::time::timeout(GUARD, sup.join())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("could not start: dispatcher 'tiny' rejected the task: queue full"),
        "{err}"
    );
    let f = failures.lock().unwrap().clone();
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!((f[0].kind, f[0].restarting), (FailureKind::Error, false));
    assert_eq!(f[0].path(), Some("supervisor 'full'/child 'x'"));
    assert_eq!(&*f[0].dispatcher, "tiny");
    assert_eq!(starts(&e, &["x"]), [0]);
    gate.open();
    for h in held {
        h.await.unwrap();
    }
}

#[tokio::test]
async fn dropping_the_handle_shuts_the_supervisor_down_in_the_background() {
    let e = Events::new();
    let (d, _) = registry(&e);
    let sup = Supervisor::builder("dropped")
        .child(child(&e, "a", &[]))
        .child(child(&e, "b", &[]))
        .start(&d)
        .unwrap();
    e.wait("start b", 1).await;
    let n = e.all().len();
    drop(sup);
    e.wait("stop a", 1).await;
    assert_eq!(e.since(n), ev(&["stop b", "stop a"]));
}

#[tokio::test]
async fn a_registry_shutdown_ends_its_supervisors() {
    let e = Events::new();
    let (d, failures) = registry(&e);
    let sup = Supervisor::builder("tenant")
        .child(child(&e, "a", &[]))
        .start(&d)
        .unwrap();
    e.wait("start a", 1).await;
    d.shutdown(Duration::from_millis(50)).await;
    let err = tokio::time::timeout(GUARD, sup.join())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, SupervisorError::RegistryClosed { .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "supervisor 'tenant' stopped: its registry is shutting down"
    );
    e.wait("stop a", 1).await;
    assert_eq!(starts(&e, &["a"]), [1]);
    assert!(failures.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_child_failing_in_a_tight_loop_is_stopped_by_intensity_without_busy_looping() {
    let e = Events::new();
    let (d, failures) = registry(&e);
    let ms = Duration::from_millis;
    let t = Instant::now();
    let sup = Supervisor::builder("tight")
        .intensity(3, Duration::from_secs(60))
        .backoff(Backoff::exponential(ms(10), ms(1_000)))
        .child(child(&e, "x", &[Fail, Fail, Fail, Fail, Fail]))
        .start(&d)
        .unwrap();
    let err = tokio::time::timeout(GUARD, sup.join())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err,
            SupervisorError::GaveUp {
                max_restarts: 3,
                ..
            }
        ),
        "{err}"
    );
    // Three restarts, 10 + 20 + 40 ms apart at least; the fourth failure gives up.
    assert_eq!(starts(&e, &["x"]), [4]);
    assert!(t.elapsed() >= ms(70), "{:?}", t.elapsed());
    let flags: Vec<_> = failures
        .lock()
        .unwrap()
        .iter()
        .map(|f| f.restarting)
        .collect();
    assert_eq!(flags, [true, true, true, false, false]);
}
