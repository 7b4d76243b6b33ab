//! The slot count of one dispatcher: a fair counting semaphore whose uncontended paths write
//! no cache line that the other side writes.
//!
//! Why not Tokio's `Semaphore`: one word holds its count, which the submitter's acquire and
//! every pool thread's release both write, so the word's cache line moves between cores twice
//! per task, and its release takes the lock of its wait queue even when nobody waits. In W1
//! (100k no-op jobs fanned out on a 4-thread pool) admission was about 15% of the time
//! (docs/performance.md, 2026-12-04).
//!
//! Here the count is split in two monotonic counters on cache lines of their own:
//! `acquired`, written by submitters, and `released`, written by the threads that finish
//! tasks. A slot is free while `acquired - released < capacity`. Submitters keep `limit`, a
//! lower bound of `released + capacity` next to `acquired`, and read `released` only when
//! `limit` says the dispatcher looks full; since `released` only grows, a stale bound can only
//! under-admit, and is refreshed before a rejection. A release is one `fetch_add` on
//! `released` and one read of `has_waiters`, a flag written only when waiting starts or ends.
//!
//! Waiters (`run*` with `max_wait`, views' workers) queue in FIFO order. The `WAITERS` bit of
//! `acquired` stops the fast path while anyone waits, so nobody barges past a waiter; every
//! grant is made under the queue's lock, to the oldest waiter, while there is room. Invariants:
//! a node changes state (granted, or left by a waiter that timed out or was dropped) only under
//! the lock, so `waiting` counts the nodes still waiting; `WAITERS` and `has_waiters` are set
//! while `waiting` is not zero, and cleared under the lock by whoever brings it to zero; after
//! any change under the lock the grant loop runs, so room and a waiter never both remain.
//! A release that misses `has_waiters` is seen by the waiter that sets it: both sides make a
//! read-modify-write of `released` (the waiter adds zero), so one of them sees the other's.
//! Checked by loom models (`slots/tests.rs`).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

#[cfg(not(bulkheads_loom))]
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

#[cfg(bulkheads_loom)]
use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

#[cfg(not(bulkheads_loom))]
use {crate::sync::lock, atomic_waker::AtomicWaker, std::sync::Mutex};

#[cfg(bulkheads_loom)]
use loom::sync::Mutex;

#[cfg(bulkheads_loom)]
fn lock<T>(m: &Mutex<T>) -> loom::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The low bit of `acquired`: someone waits. The count is in the bits above.
const WAITERS: u64 = 1;
const ONE: u64 = 2;

// A node's state.
const WAITING: u8 = 0;
const GRANTED: u8 = 1;
const LEFT: u8 = 2;

/// What submitters write: `acquired` (and `WAITERS`), and their bound on the room.
#[repr(align(128))]
struct Submitters {
    acquired: AtomicU64,
    limit: AtomicU64,
}

/// What finishers write.
#[repr(align(128))]
struct Released(AtomicU64);

/// Written only when waiting starts or ends: read on every release, it stays in every cache.
#[repr(align(128))]
struct HasWaiters(AtomicBool);

pub(crate) struct Slots {
    capacity: u64,
    submitters: Submitters,
    released: Released,
    has_waiters: HasWaiters,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    nodes: VecDeque<Arc<Node>>,
    /// Nodes still `WAITING` (the rest are skipped).
    waiting: usize,
}

struct Node {
    state: AtomicU8,
    waker: AtomicWaker,
}

impl Slots {
    /// `n` slots.
    pub(crate) fn new(n: usize) -> Self {
        let capacity = n as u64;
        Slots {
            capacity,
            submitters: Submitters {
                acquired: AtomicU64::new(0),
                limit: AtomicU64::new(capacity),
            },
            released: Released(AtomicU64::new(0)),
            has_waiters: HasWaiters(AtomicBool::new(false)),
            queue: Mutex::new(Queue::default()),
        }
    }

    /// Takes a free slot, unless there is none or someone waits for one.
    pub(crate) fn try_acquire(&self) -> bool {
        let s = &self.submitters;
        let mut word = s.acquired.load(Ordering::Acquire);
        loop {
            if word & WAITERS != 0 {
                return false;
            }
            let acquired = word >> 1;
            if acquired >= s.limit.load(Ordering::Relaxed) {
                // Looks full: read how many came back.
                let limit = self.released.0.load(Ordering::Acquire) + self.capacity;
                s.limit.fetch_max(limit, Ordering::Relaxed);
                if acquired >= limit {
                    return false;
                }
            }
            match s.acquired.compare_exchange_weak(
                word,
                word + ONE,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => word = now,
            }
        }
    }

    /// Gives a slot back: to the oldest waiter if any, else to whoever comes next.
    pub(crate) fn release(&self) {
        // AcqRel, and the waiter's zero-add on the same counter: see the module docs.
        self.released.0.fetch_add(1, Ordering::AcqRel);
        if self.has_waiters.0.load(Ordering::Acquire) {
            let mut queue = lock(&self.queue);
            let granted = self.grant(&mut queue);
            drop(queue);
            wake(granted);
        }
    }

    /// Under the lock: grants room to the oldest waiters while there is some, and clears the
    /// waiting flags once nobody waits. Returns the nodes to wake (after the lock is let go).
    fn grant(&self, queue: &mut Queue) -> Vec<Arc<Node>> {
        let mut granted = Vec::new();
        while queue.waiting > 0 {
            let Some(front) = queue.nodes.front() else {
                break;
            };
            if front.state.load(Ordering::Acquire) != WAITING {
                queue.nodes.pop_front();
                continue;
            }
            let acquired = self.submitters.acquired.load(Ordering::Acquire) >> 1;
            let released = self.released.0.load(Ordering::Acquire);
            if acquired.saturating_sub(released) >= self.capacity {
                break;
            }
            // On the waiter's behalf; the fast path cannot move `acquired` while `WAITERS`
            // is set.
            self.submitters.acquired.fetch_add(ONE, Ordering::AcqRel);
            front.state.store(GRANTED, Ordering::Release);
            queue.waiting -= 1;
            if let Some(node) = queue.nodes.pop_front() {
                granted.push(node);
            }
        }
        if queue.waiting == 0 {
            queue.nodes.clear();
            self.has_waiters.0.store(false, Ordering::Release);
            self.submitters
                .acquired
                .fetch_and(!WAITERS, Ordering::AcqRel);
        }
        granted
    }

    /// Waits for a slot in FIFO order. Dropping the future before it is ready leaves the
    /// queue; a slot granted to it meanwhile goes to the next waiter.
    pub(crate) fn acquire(&self) -> Acquire<'_> {
        Acquire {
            slots: self,
            node: None,
            done: false,
        }
    }

    /// Joins the queue (and is granted at once if there is room and nobody ahead).
    fn enqueue(&self) -> Arc<Node> {
        let node = Arc::new(Node {
            state: AtomicU8::new(WAITING),
            waker: AtomicWaker::new(),
        });
        let mut queue = lock(&self.queue);
        // From here on, submitters fail their fast path and finishers take the lock.
        self.has_waiters.0.store(true, Ordering::Release);
        self.submitters.acquired.fetch_or(WAITERS, Ordering::AcqRel);
        // A release that read `has_waiters` before the store above is seen here.
        self.released.0.fetch_add(0, Ordering::AcqRel);
        queue.nodes.push_back(node.clone());
        queue.waiting += 1;
        let granted = self.grant(&mut queue);
        drop(queue);
        // Only this node can have been granted here: any other waiter with room would have
        // been granted by whoever made the room.
        wake(
            granted
                .into_iter()
                .filter(|n| !Arc::ptr_eq(n, &node))
                .collect(),
        );
        node
    }

    /// A waiter gives up: it leaves the queue, or passes on a slot granted meanwhile.
    fn leave(&self, node: &Node) {
        let mut queue = lock(&self.queue);
        if node.state.load(Ordering::Acquire) == GRANTED {
            drop(queue);
            self.release();
            return;
        }
        node.state.store(LEFT, Ordering::Release);
        queue.waiting -= 1;
        if queue.nodes.len() > 2 * queue.waiting + 16 {
            // Left nodes are skipped by grants; past this many, they are swept so that waiters
            // timing out while the pool is stuck cannot grow the queue without bound.
            queue
                .nodes
                .retain(|n| n.state.load(Ordering::Acquire) == WAITING);
        }
        let granted = self.grant(&mut queue);
        drop(queue);
        wake(granted);
    }
}

fn wake(nodes: Vec<Arc<Node>>) {
    for node in nodes {
        node.waker.wake();
    }
}

/// Waiting for a slot (see [`Slots::acquire`]).
pub(crate) struct Acquire<'a> {
    slots: &'a Slots,
    node: Option<Arc<Node>>,
    done: bool,
}

impl Future for Acquire<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        if self.node.is_none() && self.slots.try_acquire() {
            self.done = true;
            return Poll::Ready(());
        }
        let node = match &self.node {
            Some(node) => node.clone(),
            None => {
                let node = self.slots.enqueue();
                self.node = Some(node.clone());
                node
            }
        };
        // Register, then look: a grant after the registration wakes us.
        register(&node.waker, cx);
        if node.state.load(Ordering::Acquire) == GRANTED {
            self.done = true;
            self.node = None;
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            self.slots.leave(&node);
        }
    }
}

#[cfg(not(bulkheads_loom))]
fn register(waker: &AtomicWaker, cx: &Context<'_>) {
    waker.register(cx.waker());
}

/// The waker slot under loom: a loom mutex, so the model explores its interleavings.
#[cfg(bulkheads_loom)]
struct AtomicWaker(Mutex<Option<std::task::Waker>>);

#[cfg(bulkheads_loom)]
impl AtomicWaker {
    fn new() -> Self {
        AtomicWaker(Mutex::new(None))
    }
    fn wake(&self) {
        if let Some(w) = lock(&self.0).take() {
            w.wake();
        }
    }
}

#[cfg(bulkheads_loom)]
fn register(waker: &AtomicWaker, cx: &Context<'_>) {
    *lock(&waker.0) = Some(cx.waker().clone());
}

#[cfg(test)]
mod tests;
