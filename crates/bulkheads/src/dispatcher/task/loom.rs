//! The task state machine under loom: a pool thread running a queued blocking job races
//! cancellers. Whatever the interleaving, the task is decided exactly once, its slot is
//! released exactly once (the admission capacity comes back whole), and the caller's result
//! agrees with the counts.
//!
//! `RUSTFLAGS="--cfg bulkheads_loom" cargo test -p bulkheads --lib --release loom`

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use quanta::Instant;

use super::cell::join::Joinable;
use super::cell::{Header, Pending, TaskCell, TaskSpan, WorkKind};
use super::id::{TaskId, TaskInfo};
use super::runner::ClosureFuture;
use super::state::State;
use super::{BlockOn, QueuedTask};
use crate::dispatcher::accounts::Accounts;
use crate::dispatcher::admission::Admission;
use crate::dispatcher::kind::Kind;
use crate::supervisor::failure::FailureSink;

type Job = ClosureFuture<fn() -> u8>;

/// A pool's `block_on` is never reached: a closure's runner is done after one poll.
struct NoBlockOn;

impl BlockOn for NoBlockOn {
    fn block_on(&self, _fut: Pin<&mut dyn Future<Output = ()>>) {
        panic!("a closure's runner needs one poll");
    }
}

/// A pool with capacity 1, and one admitted blocking task waiting in its queue.
fn one_task() -> (Arc<Accounts>, Arc<Admission>, Arc<TaskCell<Job>>) {
    one_task_of(WorkKind::Blocking)
}

fn one_task_of(work: WorkKind) -> (Arc<Accounts>, Arc<Admission>, Arc<TaskCell<Job>>) {
    let accounts = Arc::new(Accounts::new(
        "loom".into(),
        Kind::Blocking,
        Arc::new(FailureSink::new(None)),
    ));
    let admission = Arc::new(Admission::pool(1, 0, Duration::ZERO));
    let slot = admission.try_admit().unwrap();
    let info = TaskInfo::new(TaskId(1), None, Location::caller());
    accounts.admitted(&info);
    let job: fn() -> u8 = || 7;
    let cell = Arc::new(TaskCell::new(
        Header {
            info,
            submitted_at: Instant::now(),
            work,
            accounts: accounts.clone(),
            state: State::new(),
            probe: Default::default(),
        },
        Some(Pending {
            work: ClosureFuture::new(job),
            slot,
            span: TaskSpan::none(),
        }),
    ));
    (accounts, admission, cell)
}

fn check_exactly_once(accounts: &Accounts, admission: &Arc<Admission>, cell: &TaskCell<Job>) {
    let s = accounts.stats(1, None, Some(1));
    assert_eq!(s.completed + s.cancelled, 1, "{s:?}");
    assert_eq!(s.in_flight, 0, "{s:?}");
    assert!(cell.header.state.is_decided());
    // The slot came back exactly once: one admission fits, a second does not.
    let first = admission.try_admit();
    assert!(first.is_ok());
    assert!(admission.try_admit().is_err());
    let mut cx = Context::from_waker(Waker::noop());
    match Joinable::poll_join(cell, &mut cx) {
        Poll::Ready(Ok(7)) => assert_eq!(s.completed, 1),
        Poll::Ready(Err(e)) => {
            assert!(e.is_cancelled());
            assert_eq!(s.cancelled, 1);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn loom_cancel_races_start_and_finish() {
    loom::model(|| {
        let (accounts, admission, cell) = one_task();
        let runner = {
            let cell = cell.clone();
            loom::thread::spawn(move || QueuedTask::run(cell, &NoBlockOn))
        };
        cell.cancel();
        runner.join().unwrap();
        check_exactly_once(&accounts, &admission, &cell);
    });
}

#[test]
fn loom_two_cancellers_and_a_runner() {
    loom::model(|| {
        let (accounts, admission, cell) = one_task();
        let runner = {
            let cell = cell.clone();
            loom::thread::spawn(move || QueuedTask::run(cell, &NoBlockOn))
        };
        let other = {
            let cell = cell.clone();
            loom::thread::spawn(move || cell.cancel())
        };
        cell.cancel();
        runner.join().unwrap();
        other.join().unwrap();
        check_exactly_once(&accounts, &admission, &cell);
    });
}

/// Shutdown's decision path: cancel everything, then give up on what did not stop
/// (`force_abandon`), racing the runner of async work that completes. Decided exactly once,
/// its slot released exactly once, and the caller's result agrees.
#[test]
fn loom_shutdown_cancel_and_abandon_race_a_finishing_runner() {
    loom::model(|| {
        let (accounts, admission, cell) = one_task_of(WorkKind::Async);
        let runner = {
            let cell = cell.clone();
            loom::thread::spawn(move || QueuedTask::run(cell, &NoBlockOn))
        };
        cell.cancel();
        cell.force_abandon();
        runner.join().unwrap();
        check_exactly_once(&accounts, &admission, &cell);
    });
}
