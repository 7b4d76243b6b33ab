//! The view's slot queue: a FIFO queue with a count of workers draining it, at most `limit`.
//!
//! The lost-wakeup race every such design must close (an item pushed between a worker's "queue
//! empty" and its "give the slot back") cannot happen here: both steps, and the push with its
//! "start a worker?" decision, happen under one lock. A loom model checks it
//! (`RUSTFLAGS="--cfg bulkheads_loom" cargo test -p bulkheads --lib loom`).

use std::collections::VecDeque;

#[cfg(bulkheads_loom)]
use loom::sync::Mutex as SlotMutex;
#[cfg(not(bulkheads_loom))]
use std::sync::Mutex as SlotMutex;

/// A FIFO queue with a count of workers draining it, at most `limit`. The whole protocol is
/// these two methods and one lock.
pub(crate) struct SlotQueue<T> {
    state: SlotMutex<SlotState<T>>,
    limit: usize,
}

struct SlotState<T> {
    items: VecDeque<T>,
    /// Workers holding a slot: running an item, or between items, or yielded to the base.
    workers: usize,
    closed: bool,
}

/// What a push asks of the caller.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed<T> {
    /// Queued; a worker holding a slot will take it.
    Queued,
    /// Queued, and a slot was taken for a new worker: the caller must start it.
    StartWorker,
    /// The queue is closed: the item is handed back.
    Closed(T),
}

impl<T> SlotQueue<T> {
    pub(crate) fn new(limit: usize) -> Self {
        SlotQueue {
            state: SlotMutex::new(SlotState {
                items: VecDeque::new(),
                workers: 0,
                closed: false,
            }),
            limit,
        }
    }

    fn lock(&self) -> impl std::ops::DerefMut<Target = SlotState<T>> + '_ {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn push(&self, item: T) -> Pushed<T> {
        let mut s = self.lock();
        if s.closed {
            return Pushed::Closed(item);
        }
        s.items.push_back(item);
        // Decided under the same lock as the worker's give-back: see the module docs.
        if s.workers < self.limit {
            s.workers += 1;
            Pushed::StartWorker
        } else {
            Pushed::Queued
        }
    }

    /// The next item for a worker, or `None`: then the queue was empty and the worker's slot
    /// has been given back (the worker must stop).
    pub(crate) fn pop(&self) -> Option<T> {
        let mut s = self.lock();
        let item = s.items.pop_front();
        if item.is_none() {
            s.workers -= 1;
        }
        item
    }

    /// Gives a worker's slot back without taking an item: for a worker that stops before the
    /// queue is empty (its future was dropped by a base that shut down).
    pub(crate) fn give_back(&self) {
        let mut s = self.lock();
        s.workers = s.workers.saturating_sub(1);
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Closes the queue and hands back what it held.
    pub(crate) fn close(&self) -> VecDeque<T> {
        let mut s = self.lock();
        s.closed = true;
        std::mem::take(&mut s.items)
    }

    #[cfg(any(test, bulkheads_loom))]
    pub(crate) fn workers(&self) -> usize {
        self.lock().workers
    }

    #[cfg(bulkheads_loom)]
    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }
}

#[cfg(all(test, not(bulkheads_loom)))]
mod tests {
    use super::*;

    #[test]
    fn push_starts_workers_up_to_the_limit_and_pop_gives_slots_back() {
        let q = SlotQueue::new(2);
        assert_eq!(q.push(1), Pushed::StartWorker);
        assert_eq!(q.push(2), Pushed::StartWorker);
        assert_eq!(q.push(3), Pushed::Queued);
        assert_eq!(q.workers(), 2);
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), Some(3));
        assert_eq!(q.pop(), None);
        assert_eq!(q.workers(), 1);
        assert_eq!(q.pop(), None);
        assert_eq!(q.workers(), 0);
        assert_eq!(q.push(4), Pushed::StartWorker);
        assert_eq!(q.close().into_iter().collect::<Vec<_>>(), vec![4]);
        assert_eq!(q.push(5), Pushed::Closed(5));
    }
}

#[cfg(all(test, bulkheads_loom))]
mod loom_tests {
    //! The view's protocol under every interleaving loom finds: workers never exceed the
    //! limit, and no pushed item is stranded with no worker to run it.
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::thread;

    /// A worker as `drive` runs it: pop until `None` (the slot is then given back).
    fn worker(q: &SlotQueue<usize>, ran: &AtomicUsize, running: &AtomicUsize, limit: usize) {
        while let Some(_item) = q.pop() {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            assert!(now <= limit, "{now} items running with limit {limit}");
            ran.fetch_add(1, Ordering::SeqCst);
            running.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// `producers` threads each push `per_producer` items; a push that must start a worker
    /// runs it right there (as a base thread would), so the model stays small.
    fn check(limit: usize, producers: usize, per_producer: usize) {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(move || {
            let q = Arc::new(SlotQueue::new(limit));
            let ran = Arc::new(AtomicUsize::new(0));
            let running = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..producers)
                .map(|p| {
                    let (q, ran, running) = (q.clone(), ran.clone(), running.clone());
                    thread::spawn(move || {
                        for i in 0..per_producer {
                            match q.push(p * 10 + i) {
                                Pushed::StartWorker => worker(&q, &ran, &running, limit),
                                Pushed::Queued => {}
                                Pushed::Closed(_) => unreachable!("never closed here"),
                            }
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            // Every item ran, nothing is left queued, and every slot was given back.
            assert_eq!(ran.load(Ordering::SeqCst), producers * per_producer);
            assert_eq!(q.len(), 0);
            assert_eq!(q.workers(), 0);
        });
    }

    #[test]
    fn loom_one_slot_two_producers() {
        check(1, 2, 2);
    }

    #[test]
    fn loom_two_slots_three_producers() {
        check(2, 3, 1);
    }
}
