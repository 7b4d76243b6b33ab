//! Where a finished task's memory is freed. A task submitted to a runtime dispatcher or a view is
//! carried by the executor's own task (a Tokio task, an `async-task` task); that memory must be
//! freed with the task's cell, by whoever drops the cell last (here the joining caller), not
//! by the worker that ran it. A worker freeing memory that the submitting thread allocated
//! contends for the allocator's arena with that thread (on glibc, a futex wake-up per task in a
//! busy fan-out).
//!
//! This file is its own test binary with a counting allocator: it counts the deallocations made
//! on the one worker thread of the runtime that runs the tasks, while they run and are joined.

// A global allocator cannot be written without `unsafe`; this one only forwards to `System`.
#![allow(
    unsafe_code,
    reason = "a counting global allocator forwarding to System"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bulkheads::{Dispatchers, RuntimeConfig};

// The integration tests' shared helpers (gates and latches), from the crate they test.
#[path = "../../crates/bulkheads/tests/common/mod.rs"]
mod common;
use common::Latch;

struct Counting;

/// Deallocations made on a thread marked as the runtime's worker.
static WORKER_FREES: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static ON_WORKER: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the bookkeeping touches
// only an atomic and a const-initialised thread-local, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ON_WORKER.try_with(Cell::get).unwrap_or(false) {
            WORKER_FREES.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const TASKS: usize = 2_000;

/// A runtime on the test's own thread, to await with.
fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Submits `TASKS` no-op closures to `name` while the one worker of `rt` is held, releases it,
/// waits until they have all run, joins them here, and returns how many deallocations that
/// worker made from the release on.
fn worker_frees_while_running(d: &Dispatchers, name: &str) -> usize {
    let target = d.get(name).unwrap();
    let rt = d.get("rt").unwrap();
    // Holds the runtime's only worker (a closure on a runtime runs on its worker, and marks
    // it), so that every task below is queued before any runs.
    let (held, gate) = (Latch::new(1), Latch::new(1));
    let blocker = {
        let (held, gate) = (held.clone(), gate.clone());
        rt.spawn_blocking(move || {
            ON_WORKER.with(|c| c.set(true));
            held.arrive();
            gate.wait();
        })
    };
    held.wait();
    let ran = Latch::new(TASKS);
    let handles: Vec<_> = (0..TASKS)
        .map(|i| {
            let ran = ran.clone();
            // Closures, run by the same executor tasks as futures: with the `await-tree`
            // feature an async task also gets a tree, which belongs to its future and so is
            // freed by the worker that ends it; closures get none.
            target.spawn_blocking(move || {
                ran.arrive();
                i
            })
        })
        .collect();
    let before = WORKER_FREES.load(Ordering::Relaxed);
    gate.arrive();
    // Joined once every task has run, so that the joins do not race the worker finishing
    // them: the caller is then the last owner of every cell but the last few.
    ran.wait();
    let sum = current_thread().block_on(async {
        let mut sum = 0;
        for h in handles {
            sum += h.await.unwrap();
        }
        sum
    });
    current_thread().block_on(blocker).unwrap();
    let after = WORKER_FREES.load(Ordering::Relaxed);
    assert_eq!(sum, (0..TASKS).sum::<usize>());
    after - before
}

#[test]
fn a_finished_tasks_memory_is_freed_with_its_cell_not_by_the_worker_that_ran_it() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .runtime("rt", RuntimeConfig::workers(1))
        .limited("view", "rt", 2)
        .build()
        .unwrap();
    for name in ["rt", "view"] {
        let frees = worker_frees_while_running(&d, name);
        // One per task (about 2,000) when the worker frees each task's memory; a handful
        // (the blocker's own, the view's workers') when the joining caller does.
        assert!(
            frees < TASKS / 10,
            "{name}: the worker made {frees} deallocations for {TASKS} tasks"
        );
    }
    current_thread().block_on(d.shutdown(Duration::from_secs(5)));
}
