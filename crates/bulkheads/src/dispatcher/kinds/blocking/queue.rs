//! A pool's job queue and how it closes.
//!
//! The queue is crossbeam's unbounded channel (FIFO, lock-free; receivers spin briefly, then
//! park). What is ours is closing it while pushes may race: `close` sets `closed` and sends one
//! `Stop` per worker, behind every job queued before; a worker exits at its `Stop`. A push
//! that lost the race with `close` may land behind the `Stop`s, where no worker would take it,
//! so a push re-reads `closed` after sending and, when it is set, takes back whatever is still
//! queued; the last worker out does the same. Invariant, checked by a loom model (below, with
//! the channel replaced by a loom mutex and condvar): every pushed job is either popped by a
//! worker or handed back to be cancelled, never stranded.

#[cfg(not(bulkheads_loom))]
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[cfg(bulkheads_loom)]
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

enum Message<T> {
    Job(T),
    Stop,
}

pub(crate) struct JobQueue<T> {
    channel: channel::Channel<Message<T>>,
    /// Set once, by `close`. SeqCst with the load after a push: see there.
    closed: AtomicBool,
    /// Workers that have not exited yet.
    workers: AtomicUsize,
}

impl<T> JobQueue<T> {
    pub(crate) fn new(workers: usize) -> Self {
        JobQueue {
            channel: channel::Channel::new(),
            closed: AtomicBool::new(false),
            workers: AtomicUsize::new(workers),
        }
    }

    /// Workers that have not exited yet.
    pub(crate) fn workers(&self) -> usize {
        self.workers.load(Ordering::Relaxed)
    }

    /// A worker that never started: it will not pop or exit.
    pub(crate) fn worker_missing(&self) {
        self.workers.fetch_sub(1, Ordering::AcqRel);
    }

    /// Queues `job`. Returns what must be cancelled because the queue is closed (`None` but
    /// for a push that raced `close`).
    #[must_use]
    pub(crate) fn push(&self, job: T) -> Option<Vec<T>> {
        self.channel.send(Message::Job(job));
        // SeqCst orders this load after the send and against the store in `close`: either the
        // send came first (and is ahead of the `Stop`s), or this load sees the queue closed.
        if self.closed.load(Ordering::SeqCst) {
            Some(self.drain())
        } else {
            None
        }
    }

    /// The next job for a worker, or `None`: the worker must exit (and then call
    /// [`exited`](Self::exited)).
    pub(crate) fn pop(&self) -> Option<T> {
        match self.channel.recv()? {
            Message::Job(job) => Some(job),
            Message::Stop => None,
        }
    }

    /// A worker exited. The last one out returns what is still queued, to cancel.
    #[must_use]
    pub(crate) fn exited(&self) -> Vec<T> {
        // AcqRel: the last worker sees every push that came before the other workers' exits.
        if self.workers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.drain()
        } else {
            Vec::new()
        }
    }

    /// Workers exit once the jobs queued before now are popped. True the first time.
    pub(crate) fn close(&self, workers: usize) -> bool {
        if self.closed.swap(true, Ordering::SeqCst) {
            return false;
        }
        for _ in 0..workers {
            self.channel.send(Message::Stop);
        }
        true
    }

    /// Takes every job still queued. `Stop`s met on the way are sent again (a worker waits
    /// for its own), behind nothing but other `Stop`s and late pushes, which their pushers
    /// or the last worker take back in turn.
    fn drain(&self) -> Vec<T> {
        let mut left = Vec::new();
        let mut stops = 0;
        while let Some(m) = self.channel.try_recv() {
            match m {
                Message::Job(job) => left.push(job),
                Message::Stop => stops += 1,
            }
        }
        for _ in 0..stops {
            self.channel.send(Message::Stop);
        }
        left
    }
}

#[cfg(not(bulkheads_loom))]
mod channel {
    /// crossbeam's channel, holding both ends: a send or receive never fails while it lives.
    pub(super) struct Channel<T> {
        tx: crossbeam_channel::Sender<T>,
        rx: crossbeam_channel::Receiver<T>,
    }

    impl<T> Channel<T> {
        pub(super) fn new() -> Self {
            let (tx, rx) = crossbeam_channel::unbounded();
            Channel { tx, rx }
        }
        pub(super) fn send(&self, m: T) {
            let _ = self.tx.send(m);
        }
        pub(super) fn recv(&self) -> Option<T> {
            self.rx.recv().ok()
        }
        pub(super) fn try_recv(&self) -> Option<T> {
            self.rx.try_recv().ok()
        }
    }
}

#[cfg(bulkheads_loom)]
mod channel {
    use std::collections::VecDeque;

    use loom::sync::{Condvar, Mutex};

    /// The same contract on loom's primitives, so the model explores the close protocol.
    pub(super) struct Channel<T> {
        q: Mutex<VecDeque<T>>,
        ready: Condvar,
    }

    impl<T> Channel<T> {
        pub(super) fn new() -> Self {
            Channel {
                q: Mutex::new(VecDeque::new()),
                ready: Condvar::new(),
            }
        }
        pub(super) fn send(&self, m: T) {
            self.q.lock().unwrap().push_back(m);
            self.ready.notify_one();
        }
        pub(super) fn recv(&self) -> Option<T> {
            let mut q = self.q.lock().unwrap();
            loop {
                if let Some(m) = q.pop_front() {
                    return Some(m);
                }
                q = self.ready.wait(q).unwrap();
            }
        }
        pub(super) fn try_recv(&self) -> Option<T> {
            self.q.lock().unwrap().pop_front()
        }
    }
}

#[cfg(all(test, bulkheads_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicUsize;
    use loom::thread;

    /// A worker and a pusher race `close`: every job pushed is run by the worker or handed
    /// back for cancellation, exactly once.
    #[test]
    fn loom_no_job_is_stranded_by_close() {
        loom::model(|| {
            let q = Arc::new(JobQueue::new(1));
            let ran = Arc::new(AtomicUsize::new(0));
            let worker = {
                let (q, ran) = (q.clone(), ran.clone());
                thread::spawn(move || {
                    while q.pop().is_some() {
                        ran.fetch_add(1, Ordering::SeqCst);
                    }
                    q.exited().len()
                })
            };
            let pusher = {
                let q = q.clone();
                thread::spawn(move || q.push(1).map_or(0, |v| v.len()))
            };
            q.close(1);
            let back_by_pusher = pusher.join().unwrap();
            let back_by_worker = worker.join().unwrap();
            let ran = ran.load(Ordering::SeqCst);
            assert_eq!(ran + back_by_pusher + back_by_worker, 1);
        });
    }

    /// Two workers, two pushes from one thread: every worker gets its `Stop` (none exits
    /// early, none hangs), and every job runs or is handed back exactly once.
    #[test]
    fn loom_two_workers_each_get_their_stop() {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let q = Arc::new(JobQueue::new(2));
            let ran = Arc::new(AtomicUsize::new(0));
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    let (q, ran) = (q.clone(), ran.clone());
                    thread::spawn(move || {
                        while q.pop().is_some() {
                            ran.fetch_add(1, Ordering::SeqCst);
                        }
                        q.exited().len()
                    })
                })
                .collect();
            let pusher = {
                let q = q.clone();
                thread::spawn(move || {
                    q.push(1).map_or(0, |v| v.len()) + q.push(2).map_or(0, |v| v.len())
                })
            };
            q.close(2);
            let mut back = pusher.join().unwrap();
            for w in workers {
                back += w.join().unwrap();
            }
            assert_eq!(ran.load(Ordering::SeqCst) + back, 2);
            assert_eq!(q.workers(), 0);
        });
    }
}
