//! The mechanism: a supervisor's loop, run on its registry's control runtime. It starts the
//! children in order, waits for any of them to end (or for a backoff timer, or a stop
//! request), applies the policy (`policy.rs`) to decide what restarts, and stops children in
//! reverse order with their timeouts. It only awaits handles and timers; children run on their
//! dispatchers. Stopping children and giving up are `run/stop.rs`'s, how a child ended
//! `run/exit.rs`'s, the containment of the loop's own call-outs `run/contain.rs`'s.

mod contain;
mod exit;
mod stop;

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::watch;
use tokio::time::Instant;

use self::contain::{Contained, log};
use self::exit::{Exit, Failed, Live};
use super::failure::FailureKind;
use super::handle::{
    ChildState, ChildStatus, Outcome, Statuses, SupervisorError, SupervisorHandle, outcome,
};
use super::policy::Restart;
use super::spec::{Plan, Work, bump};
use crate::dispatcher::handle::Dispatcher;
use crate::dispatcher::task::id::TaskInfo;
use crate::sync::lock;

/// Where a supervisor runs and who it is.
pub(crate) struct Place {
    pub plan: Arc<Plan>,
    /// Its path: `supervisor 'a'`, or `<parent path>/supervisor 'a'` when nested.
    pub path: Arc<str>,
    /// The default dispatcher of its children; its control runtime runs the loop.
    pub home: Dispatcher,
    /// The supervisor's own identity, for the report of its escalation.
    pub info: TaskInfo,
    /// A nested supervisor escalates to its parent, not to the root handler.
    pub nested: bool,
}

/// Starts the loop of the supervisor at `place` on the control runtime.
pub(crate) fn launch(place: Place) -> SupervisorHandle {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(None);
    let statuses: Statuses = Arc::new(Mutex::new(
        place
            .plan
            .children
            .iter()
            .map(|c| ChildStatus {
                name: c.label.clone(),
                state: ChildState::Starting,
                restarts: 0,
            })
            .collect(),
    ));
    let name = place.plan.name.clone();
    let (home, info) = (place.home.clone(), place.info.clone());
    let control = place.home.control().clone();
    let run = Run::new(place, stop_rx, statuses.clone());
    let supervisor = name.clone();
    drop(control.spawn(async move {
        let outcome = match Contained(Box::pin(run.supervise())).await {
            Ok(outcome) => outcome,
            Err(message) => {
                home.report_child_failure(info, FailureKind::Panic, message.clone(), false);
                Err(SupervisorError::Crashed {
                    supervisor,
                    message,
                })
            }
        };
        done_tx.send_replace(Some(outcome));
    }));
    SupervisorHandle::new(name, stop_tx, done_rx, statuses)
}

struct Slot {
    live: Option<Live>,
    state: ChildState,
    /// When a `Restarting` child is due.
    due: Option<Instant>,
    /// Consecutive restarts since the backoff was last reset.
    attempts: u32,
    started: Instant,
    /// The current incarnation (its task id, name, spawn site, path).
    task: Option<TaskInfo>,
    /// `<supervisor path>/child 'name'` or `<supervisor path>/supervisor 'name'`.
    path: Arc<str>,
    ever_started: bool,
}

struct Run {
    place: Place,
    stop: watch::Receiver<bool>,
    statuses: Statuses,
    slots: Vec<Slot>,
    /// Times of the restarts within the intensity period.
    restarts: VecDeque<Instant>,
    rng: u64,
}

impl Run {
    fn new(place: Place, stop: watch::Receiver<bool>, statuses: Statuses) -> Self {
        let now = Instant::now();
        let slots = (place.plan.children.iter())
            .map(|c| Slot {
                live: None,
                state: ChildState::Starting,
                due: None,
                attempts: 0,
                started: now,
                task: None,
                path: match c.work {
                    Work::Task { .. } => format!("{}/child '{}'", place.path, c.name),
                    Work::Nested { .. } => format!("{}/supervisor '{}'", place.path, c.name),
                }
                .into(),
                ever_started: false,
            })
            .collect();
        let rng = RandomState::new().hash_one(&*place.path) | 1;
        Run {
            place,
            stop,
            statuses,
            slots,
            restarts: VecDeque::new(),
            rng,
        }
    }

    async fn supervise(mut self) -> Outcome {
        // A handle dropped at once (or a stop already asked for) starts nothing.
        if !(*self.stop.borrow() || self.stop.has_changed().is_err()) {
            for i in 0..self.slots.len() {
                self.start(i);
            }
        }
        loop {
            let due = self.slots.iter().filter_map(|s| s.due).min();
            let (stop, slots) = (&mut self.stop, &mut self.slots);
            let event = tokio::select! {
                biased;
                () = stop_requested(stop) => None,
                ended = std::future::poll_fn(|cx| poll_exits(slots, cx)) => Some(ended),
                () = sleep_until(due) => {
                    self.start_due();
                    continue;
                }
            };
            let Some((i, exit)) = event else {
                self.stop_all().await;
                return Ok(());
            };
            let end = match exit {
                Exit::Closed => {
                    self.set(i, ChildState::Stopped);
                    self.stop_all().await;
                    Some(Err(SupervisorError::RegistryClosed {
                        supervisor: self.place.plan.name.clone(),
                    }))
                }
                Exit::Normal => self.ended(i, None).await,
                Exit::Failed(failed) => self.ended(i, Some(failed)).await,
            };
            if let Some(outcome) = end {
                return outcome;
            }
        }
    }

    /// Child `i` ended (`failed`, or normally): applies its restart type, the intensity, the
    /// backoff and the strategy. Returns the outcome when the supervisor gives up.
    async fn ended(&mut self, i: usize, failed: Option<Failed>) -> Option<Outcome> {
        let plan = self.place.plan.clone();
        let child = &plan.children[i];
        if !child.restart.restarts_after(failed.is_some()) {
            let state = match child.restart {
                Restart::Temporary => ChildState::Removed,
                _ => ChildState::Exited,
            };
            self.set(i, state);
            match failed {
                Some(f) => self.report(i, f, false),
                None => log(|| {
                    tracing::debug!(
                        target: "bulkheads",
                        supervisor = %self.place.path,
                        child = %child.name,
                        "child returned; not restarted"
                    )
                }),
            }
            return None;
        }
        let how = match &failed {
            Some(f) if f.kind == FailureKind::Panic => format!("panicked: {}", f.message),
            Some(f) => format!("failed: {}", f.message),
            None => "returned".to_owned(),
        };
        if !self.restart_allowed() {
            self.set(i, ChildState::Stopped);
            if let Some(f) = failed {
                self.report(i, f, false);
            }
            return Some(self.give_up(i, how).await);
        }
        if let Some(f) = failed {
            self.report(i, f, true);
        }
        let delay = plan.backoff.map(|b| {
            let slot = &mut self.slots[i];
            if slot.started.elapsed() >= b.reset_period() {
                slot.attempts = 0;
            }
            let attempt = slot.attempts;
            slot.attempts = slot.attempts.saturating_add(1);
            b.delay(attempt, self.random())
        });
        log(|| {
            tracing::warn!(
                target: "bulkheads",
                supervisor = %self.place.path,
                child = %child.name,
                ?delay,
                "child {how}; restarting"
            )
        });
        let group = plan.strategy.group(i, self.slots.len());
        for j in group.clone().rev().filter(|&j| j != i) {
            let temporary = plan.children[j].restart == Restart::Temporary;
            self.stop_child(j, !temporary).await;
            if temporary {
                self.set(j, ChildState::Removed);
            }
        }
        let due = delay.filter(|d| !d.is_zero()).map(after);
        for j in group {
            if self.slots[j].state == ChildState::Removed {
                continue;
            }
            match due {
                Some(at) => {
                    self.slots[j].due = Some(at);
                    self.set(j, ChildState::Restarting);
                }
                None => self.start(j),
            }
        }
        None
    }

    /// OTP's count: this restart, plus those within the period before it, must not exceed
    /// the intensity.
    fn restart_allowed(&mut self) -> bool {
        let now = Instant::now();
        let intensity = self.place.plan.intensity;
        self.restarts
            .retain(|&t| now.saturating_duration_since(t) <= intensity.period);
        self.restarts.push_back(now);
        self.restarts.len() <= intensity.max_restarts as usize
    }

    /// Starts the children whose backoff delay is over, in start order.
    fn start_due(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            if self.slots[i].due.is_some_and(|at| at <= now) {
                self.start(i);
            }
        }
    }

    /// Starts (or restarts) child `i` on its dispatcher, or launches it if it is a supervisor.
    fn start(&mut self, i: usize) {
        let plan = self.place.plan.clone();
        let child = &plan.children[i];
        // The state first: the child may run (and be observed) before `spawn` returns.
        let slot = &mut self.slots[i];
        slot.due = None;
        slot.started = Instant::now();
        if std::mem::replace(&mut slot.ever_started, true) {
            bump(&child.restarts);
            lock(&self.statuses)[i].restarts += 1;
        }
        self.set(i, ChildState::Running);
        let path = self.slots[i].path.clone();
        let (live, task) = match &child.work {
            Work::Task { factory, on } => {
                let d = on.as_ref().unwrap_or(&self.place.home);
                let handle = d
                    .child(Some(child.name.clone()), path.clone())
                    .at(child.location)
                    .spawn(factory());
                let mut task = TaskInfo::new(handle.id(), Some(child.name.clone()), child.location);
                task.parent = Some(path);
                (Live::Task(handle), task)
            }
            Work::Nested { plan: nested, on } => {
                let home = on.clone().unwrap_or_else(|| self.place.home.clone());
                let id = home.core.shared.ids.next();
                let mut task = TaskInfo::new(id, Some(child.name.clone()), child.location);
                task.parent = Some(path.clone());
                let handle = launch(Place {
                    plan: nested.clone(),
                    path,
                    home,
                    info: task.clone(),
                    nested: true,
                });
                let done = Box::pin(outcome(handle.done(), nested.name.clone()));
                (Live::Nested { handle, done }, task)
            }
        };
        self.slots[i].live = Some(live);
        self.slots[i].task = Some(task);
    }

    /// Sends a failure of child `i` to the root handler, on the child's dispatcher.
    fn report(&self, i: usize, failed: Failed, restarting: bool) {
        let child = &self.place.plan.children[i];
        let d = match &child.work {
            Work::Task { on: Some(d), .. } => d,
            _ => &self.place.home,
        };
        d.report_child_failure(failed.task, failed.kind, failed.message, restarting);
    }

    fn set(&mut self, i: usize, state: ChildState) {
        self.slots[i].state = state;
        lock(&self.statuses)[i].state = state;
    }

    /// Uniform in `[0, 1)` (xorshift64*: jitter needs spread, not strength).
    fn random(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Drop for Run {
    /// The loop dropped before it stopped its children (its runtime shut down, or it
    /// panicked): cancel them rather than leave them running unsupervised.
    fn drop(&mut self) {
        // Abort first (that may drop user values), then update the states under the lock.
        for slot in &self.slots {
            if let Some(Live::Task(h)) = &slot.live {
                h.abort();
            }
            // A nested supervisor stops when its handle is dropped with the slot.
        }
        let mut statuses = lock(&self.statuses);
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if matches!(
                slot.state,
                ChildState::Running | ChildState::Starting | ChildState::Restarting
            ) {
                slot.state = ChildState::Stopped;
                if let Some(status) = statuses.get_mut(i) {
                    status.state = ChildState::Stopped;
                }
            }
        }
    }
}

/// The first child that ended, and how.
fn poll_exits(slots: &mut [Slot], cx: &mut Context<'_>) -> Poll<(usize, Exit)> {
    for (i, slot) in slots.iter_mut().enumerate() {
        if let Some(live) = &mut slot.live {
            if let Poll::Ready(exit) = live.poll_exit(&slot.task, cx) {
                slot.live = None;
                return Poll::Ready((i, exit));
            }
        }
    }
    Poll::Pending
}

/// Returns once a stop is asked for, or once nobody can ask any more (the handle dropped).
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `now + d`, or as far as the timer goes.
fn after(d: std::time::Duration) -> Instant {
    const FAR: std::time::Duration = std::time::Duration::from_secs(60 * 60 * 24 * 365);
    Instant::now() + d.min(FAR)
}
