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

// The tests, by theme, in `tests/supervisors/` (beside the helpers below).
#[path = "supervisors/faults.rs"]
mod faults;
#[path = "supervisors/limits.rs"]
mod limits;
#[path = "supervisors/strategies.rs"]
mod strategies;

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
