//! Ad-hoc views (`Dispatcher::limited`): made on a dispatcher, adopted by it so that shutdown
//! drains and reports them, and their counts kept by it once they are dropped. The list lives
//! in the dispatcher's core (`spawn.rs`, `AdHoc`); this file is what is done with it.
//!
//! A view dropped while its tasks still run or wait becomes an orphan: the dispatcher it was
//! made on holds a core for it (the same accounts, admission and executor) until its last
//! task is decided and has returned, so those tasks stay in dumps and shutdown still cancels
//! and reports them. The registry's upkeep (once a second) lets go of orphans at rest.

use std::sync::{Arc, Mutex, Weak};

use super::accounts::Accounts;
use super::admission::Admission;
use super::kind::Kind;
use super::kinds::limited::LimitedView;
use super::spawn::{AdHoc, DispatcherCore};
use super::stats::Stats;
use crate::sync::lock;

impl DispatcherCore {
    /// An ad-hoc view over this dispatcher, adopted by it so that shutdown drains and reports
    /// it. On a dispatcher already shutting down the view is closed at birth.
    pub(crate) fn make_view(self: &Arc<Self>, parallelism: usize) -> Arc<DispatcherCore> {
        let name: Arc<str> = format!("{}.limited({parallelism})", self.name()).into();
        let accounts = Arc::new(
            Accounts::new(name, Kind::Limited, self.accounts.failures.clone())
                .with_tracking(self.accounts.track),
        );
        let view = LimitedView::new(parallelism, self.as_base(), accounts.clone());
        let mut core = DispatcherCore::new(
            accounts,
            Admission::capped(&Default::default()),
            view.into(),
            self.shared.clone(),
        );
        core.parent = Some(self.clone());
        let core = Arc::new(core);
        let mut adhoc = lock(&self.adhoc);
        if adhoc.closing {
            drop(adhoc);
            lock(&core.adhoc).closing = true;
            core.close();
            core.executor.close();
        } else {
            adhoc.views.retain(|w| w.strong_count() > 0);
            adhoc.views.push(Arc::downgrade(&core));
            drop(adhoc);
            self.release_rested_orphans();
        }
        core
    }

    /// This dispatcher's views, alive or orphaned, newest first.
    fn own_views(adhoc: &AdHoc) -> Vec<Arc<DispatcherCore>> {
        adhoc
            .views
            .iter()
            .rev()
            .filter_map(Weak::upgrade)
            .chain(adhoc.orphans.iter().rev().cloned())
            .collect()
    }

    /// Marks this dispatcher's ad-hoc views as closing and returns those alive now, views of
    /// views first, newest first. Views made later are closed at birth. Orphans are taken
    /// out of the list: the caller (shutdown) holds them from now on, and drops them when it
    /// is done (an orphan holds the dispatcher it was made on: left in its list, the two would
    /// keep each other alive once the upkeep has stopped).
    pub(crate) fn collect_views(&self) -> Vec<Arc<DispatcherCore>> {
        let views: Vec<Arc<DispatcherCore>> = {
            let mut adhoc = lock(&self.adhoc);
            adhoc.closing = true;
            let views = Self::own_views(&adhoc);
            adhoc.orphans.clear();
            views
        };
        let mut all = Vec::new();
        for v in views {
            all.extend(v.collect_views());
            all.push(v);
        }
        all
    }

    /// Views dropped with work left after [`collect_views`](Self::collect_views) ran (a race
    /// with shutdown), taken out with theirs; views dropped from now on keep only their counts
    /// (shutdown holds every view that was alive, so their work is drained or cancelled).
    pub(crate) fn take_late_orphans(&self) -> Vec<Arc<DispatcherCore>> {
        let late = {
            let mut adhoc = lock(&self.adhoc);
            adhoc.stopped = true;
            std::mem::take(&mut adhoc.orphans)
        };
        let mut all = Vec::new();
        for o in late {
            let mut tree = o.collect_views();
            tree.push(o);
            for core in &tree {
                all.extend(core.take_late_orphans());
            }
            all.extend(tree);
        }
        all
    }

    /// This dispatcher's ad-hoc views alive now (and theirs), without closing anything.
    pub(crate) fn live_views(&self) -> Vec<Arc<DispatcherCore>> {
        self.release_rested_orphans();
        let views = Self::own_views(&lock(&self.adhoc));
        let mut all = Vec::new();
        for v in views {
            all.extend(v.live_views());
            all.push(v);
        }
        all
    }

    /// Upkeep: prunes the live sets of this dispatcher's views and lets go of its orphans
    /// (and theirs) that have come to rest; their counts then join the retired ones.
    pub(crate) fn upkeep_views(&self) {
        for v in self.live_views() {
            v.accounts.live.prune();
        }
    }

    fn release_rested_orphans(&self) {
        let rested: Vec<Arc<DispatcherCore>> = {
            let mut adhoc = lock(&self.adhoc);
            let (rested, busy) = std::mem::take(&mut adhoc.orphans)
                .into_iter()
                .partition(|o| !o.has_work());
            adhoc.orphans = busy;
            rested
        };
        // Dropped outside the lock: each hands its counts back to this dispatcher.
        drop(rested);
    }

    /// A task of this dispatcher is undecided, or decided while its code still runs.
    fn has_work(&self) -> bool {
        self.accounts.in_flight() > 0 || self.accounts.live.any_live()
    }

    /// The final counts of this dispatcher's dropped ad-hoc views (and theirs), by name.
    pub(crate) fn retired_views(&self) -> Vec<Stats> {
        lock(&self.adhoc).retired.clone()
    }

    fn retire(&self, mut stats: Vec<Stats>) {
        let mut adhoc = lock(&self.adhoc);
        for s in stats.drain(..) {
            match adhoc.retired.iter_mut().find(|r| r.name == s.name) {
                Some(r) => r.absorb(&s),
                None => adhoc.retired.push(s),
            }
        }
    }
}

impl Drop for DispatcherCore {
    /// A dropped ad-hoc view hands its counts (and those of its own dropped views) to the
    /// dispatcher it was made on, so the shutdown report keeps them; one with work left
    /// becomes an orphan of that dispatcher instead (see the top of this file).
    fn drop(&mut self) {
        let Some(parent) = self.parent.take() else {
            return;
        };
        // An orphan holds its parent, so a core being dropped has no orphans of its own.
        let adhoc = std::mem::take(&mut *lock(&self.adhoc));
        if self.has_work() {
            let mut parent_adhoc = lock(&parent.adhoc);
            // Until shutdown has taken the last orphans (see `take_late_orphans`); after that,
            // it holds every view that had work, and counts suffice.
            if !parent_adhoc.stopped {
                parent_adhoc.orphans.push(Arc::new(DispatcherCore {
                    accounts: self.accounts.clone(),
                    admission: self.admission.clone(),
                    executor: self.executor.clone(),
                    shared: self.shared.clone(),
                    adhoc: Mutex::new(adhoc),
                    parent: Some(parent.clone()),
                }));
                return;
            }
        }
        let mut stats = adhoc.retired;
        stats.push(self.stats());
        parent.retire(stats);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Weak};

    use crate::registry::Dispatchers;

    /// A dropped view is freed with everything its tasks referred to: its tasks' cells hold
    /// its accounts, whose live set lists the cells, weakly (strongly, that was a cycle, and
    /// every view that ran a task leaked a few kilobytes for good).
    #[test]
    fn a_dropped_view_that_ran_tasks_is_freed() {
        let _alone = crate::sync::refusal::one_registry_at_a_time();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let d = Dispatchers::builder().cpu_threads(1).build().unwrap();
            let view = d.cpu().limited(2);
            let accounts: Weak<_> = Arc::downgrade(&view.core.accounts);
            view.run(async {}).await.unwrap();
            drop(view.spawn(async {})); // detached, decided later
            view.run_blocking(|| ()).await.unwrap();
            drop(view);
            // The detached task may still be finishing on the cpu thread; then the dropped
            // view is an orphan until it comes to rest, and a dump lets go of it.
            d.cpu().run(async {}).await.unwrap();
            drop(d.dump());
            assert!(accounts.upgrade().is_none(), "the view's accounts leaked");
        });
    }

    /// An orphan and the dispatcher it was made on hold each other until the orphan comes to
    /// rest; shutdown (or dropping the registry) takes the orphans out, so neither outlives
    /// the registry.
    #[test]
    fn orphans_do_not_outlive_their_registry() {
        let _alone = crate::sync::refusal::one_registry_at_a_time();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for shut_down in [true, false] {
            rt.block_on(async {
                let d = Dispatchers::builder().cpu_threads(1).build().unwrap();
                let cpu: Weak<_> = Arc::downgrade(&d.cpu().core);
                let view = d.cpu().limited(1);
                let (parked_tx, parked) = tokio::sync::oneshot::channel::<()>();
                drop(view.spawn(async move {
                    let _ = parked_tx.send(());
                    std::future::pending::<()>().await
                }));
                parked.await.unwrap();
                drop(view);
                let orphan: Weak<_> = {
                    let core = cpu.upgrade().unwrap();
                    let adhoc = crate::sync::lock(&core.adhoc);
                    assert_eq!(adhoc.orphans.len(), 1, "the dropped view is an orphan");
                    Arc::downgrade(&adhoc.orphans[0])
                };
                if shut_down {
                    let report = d.shutdown(std::time::Duration::from_millis(10)).await;
                    assert_eq!(report.dispatcher("cpu.limited(1)").unwrap().cancelled, 1);
                }
                drop(d);
                assert!(
                    orphan.upgrade().is_none(),
                    "the orphan outlived its registry"
                );
                assert!(cpu.upgrade().is_none(), "the registry's cpu core leaked");
            });
        }
    }
}
