//! Shutdown: stop admission everywhere, drain in dependency order until a deadline, cancel
//! and give up on what is left, stop the executors, and report every accepted task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Dispatchers;
use super::report::{DispatcherReport, ShutdownReport};
use crate::dispatcher::handle::Dispatcher;
use crate::dispatcher::spawn::DispatcherCore;
use crate::dispatcher::stats::Stats;
use crate::sync::lock;

/// How long shutdown waits, after its deadline, for cancelled async work to reach its next
/// `.await`; work still running after that is reported as abandoned.
pub const CANCEL_GRACE: Duration = Duration::from_millis(100);

impl Dispatchers {
    /// Shuts every dispatcher down within `deadline` and reports what happened to every task.
    ///
    /// Admission stops at once (`ShuttingDown`). Running and queued work may finish until the
    /// deadline; then queued work is cancelled, async work is cancelled at its next `.await`
    /// (given [`CANCEL_GRACE`] to get there), and blocking jobs still running are abandoned:
    /// they finish on their threads, which exit after them, and their results are dropped.
    /// Dispatchers are drained in dependency order (`cpu`, which serves the others, last).
    /// The deadline is measured on the registry's control thread, so a saturated dispatcher
    /// cannot delay it; any `Duration` is accepted (`Duration::MAX` waits as long as it takes).
    ///
    /// Calling it again, or concurrently, returns the first call's report.
    ///
    /// Await it from outside the registry's own dispatchers (from `main`, say): a task of one
    /// of them is itself in flight, so its dispatcher would not drain until the deadline, and
    /// then the task awaiting `shutdown` would be cancelled with the rest.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.finished
            .get_or_init(|| self.shut_down(deadline))
            .await
            .clone()
    }

    async fn shut_down(&self, deadline: Duration) -> ShutdownReport {
        let started = Instant::now();
        let until = deadline_after(deadline);
        let mut order = self.shutdown_order();
        // Admission stops everywhere at once; the workers of views still get slots of their
        // bases, so a view's admitted work can finish while the views drain first.
        for d in &order {
            d.close();
        }
        let mut drained = wind_down(&order, until).await;
        // Views dropped with work while the views were being collected: the same treatment,
        // in what time is left.
        let late = take_late_orphans(&order);
        if !late.is_empty() {
            for d in &late {
                d.close();
            }
            drained &= wind_down(&late, until).await;
            order.splice(0..0, late);
        }
        self.stop(&order);
        ShutdownReport {
            dispatchers: self.report_lines(&order),
            elapsed: started.elapsed(),
            deadline_hit: !drained,
        }
    }

    /// Ad-hoc views (views of views first, newest first), then the declared dispatchers
    /// (views before bases, `cpu` last). From this call on, a new ad-hoc view is closed at
    /// birth.
    fn shutdown_order(&self) -> Vec<Arc<DispatcherCore>> {
        let mut order = Vec::new();
        for d in &self.order {
            order.extend(d.core.collect_views());
        }
        order.extend(self.order.iter().map(|d| d.core.clone()));
        order
    }

    /// One line per declared dispatcher, then one per ad-hoc view name (views with the same
    /// name merged, dropped ones included).
    fn report_lines(&self, order: &[Arc<DispatcherCore>]) -> Vec<DispatcherReport> {
        let declared: Vec<Stats> = self.order.iter().map(Dispatcher::stats).collect();
        let mut views: Vec<Stats> = Vec::new();
        let mut add = |s: Stats| match views.iter_mut().find(|v| v.name == s.name) {
            Some(v) => v.absorb(&s),
            None => views.push(s),
        };
        for core in order {
            if !self.order.iter().any(|d| Arc::ptr_eq(&d.core, core)) {
                add(core.stats());
            }
            core.retired_views().into_iter().for_each(&mut add);
        }
        views
            .into_iter()
            .chain(declared)
            .map(DispatcherReport::from_stats)
            .collect()
    }

    /// Stops every executor, the runtimes (cpu last) and the control thread.
    fn stop(&self, order: &[Arc<DispatcherCore>]) {
        for d in order {
            d.executor.close();
        }
        // Dropping an `OwnedRuntime` shuts it down in the background: others first, cpu last.
        let mut runtimes = std::mem::take(&mut *lock(&self.runtimes));
        runtimes.rotate_left(1);
        drop(runtimes);
        self.control.stop();
    }
}

/// Lets `ds` drain until `until`; then cancels what is left, waits [`CANCEL_GRACE`] for
/// cancelled async work to stop, and abandons what still runs. True when drained in time.
async fn wind_down(ds: &[Arc<DispatcherCore>], until: tokio::time::Instant) -> bool {
    let mut drained = true;
    for d in ds {
        drained &= d.drained_by(until).await;
    }
    if !drained {
        for d in ds {
            d.cancel_all();
        }
        let grace = deadline_after(CANCEL_GRACE);
        for d in ds {
            if !d.drained_by(grace).await {
                d.abandon_all();
            }
        }
    }
    drained
}

/// `now + d`, or as far as the clock goes.
fn deadline_after(d: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(60 * 60 * 24 * 365 * 30))
}

impl Drop for Dispatchers {
    /// Signals shutdown without waiting: admission closes, queued work is cancelled, async
    /// work stops at its next `.await`, running blocking jobs finish on their threads.
    fn drop(&mut self) {
        if self.finished.initialized() {
            return;
        }
        let mut order = self.shutdown_order();
        for d in &order {
            d.close();
        }
        for d in &order {
            d.cancel_all();
        }
        let late = take_late_orphans(&order);
        for d in &late {
            d.close();
            d.cancel_all();
        }
        order.extend(late);
        self.stop(&order);
    }
}

/// Views dropped with work after the views were collected (see
/// `DispatcherCore::take_late_orphans`), from every dispatcher in `order`.
fn take_late_orphans(order: &[Arc<DispatcherCore>]) -> Vec<Arc<DispatcherCore>> {
    order.iter().flat_map(|d| d.take_late_orphans()).collect()
}
