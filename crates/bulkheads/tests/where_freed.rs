//! Where a finished task's memory is freed. A task spawned on a runtime dispatcher or a view is
//! carried by the executor's own task (a Tokio task, an `async-task` task); that memory must be
//! freed with the task's cell, by whoever drops the cell last (here the joining caller), not
//! by the worker that ran it. A worker freeing memory that the submitting thread allocated
//! contends for the allocator's arena with that thread (on glibc, a futex wake-up per task in a
//! busy fan-out).
//!
//! This file is its own test binary with a counting allocator: it counts deallocations made on
//! any thread but the test's own while the tasks run and are joined. It holds one test, so no
//! other test's threads are counted.

// A global allocator cannot be written without `unsafe`; this one only forwards to `System`.
#![allow(
    unsafe_code,
    reason = "a counting global allocator forwarding to System"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use bulkheads::{Dispatchers, RuntimeConfig};

mod common;
use common::{Gate, Latch};

struct Counting;

static FOREIGN_FREES: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static TEST_THREAD: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the bookkeeping touches
// only an atomic and a const-initialised thread-local, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !TEST_THREAD.try_with(Cell::get).unwrap_or(false) {
            FOREIGN_FREES.fetch_add(1, Ordering::Relaxed);
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

/// Spawns `TASKS` no-op tasks on `name` while the one worker of `rt` is held, releases
/// it, waits until they have all run, joins them here, and returns how many deallocations
/// other threads made from the release on.
fn foreign_frees_while_running(d: &Dispatchers, name: &str) -> usize {
    let target = d.get(name).unwrap();
    let rt = d.get("rt").unwrap();
    // Holds the runtime's only worker, so that every task below is queued before any runs
    // (and a view's one worker drains them all, rather than one worker per task).
    let (gate, held) = (Gate::new(), Gate::new());
    let blocker = {
        let (gate, held) = (gate.clone(), held.clone());
        rt.spawn_blocking(move || {
            held.open();
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
    let before = FOREIGN_FREES.load(Ordering::Relaxed);
    gate.open();
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
    let after = FOREIGN_FREES.load(Ordering::Relaxed);
    current_thread().block_on(blocker).unwrap();
    assert_eq!(sum, (0..TASKS).sum::<usize>());
    after - before
}

#[test]
fn a_finished_tasks_memory_is_freed_with_its_cell_not_by_the_worker_that_ran_it() {
    TEST_THREAD.with(|c| c.set(true));
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .runtime("rt", RuntimeConfig::workers(1))
        .limited("view", "rt", 2)
        .build()
        .unwrap();
    for name in ["rt", "view"] {
        let frees = foreign_frees_while_running(&d, name);
        // One per task (about 2,000) when the worker frees each task's memory; a handful
        // (the runtime's and the view worker's own) when the joining caller does.
        assert!(
            frees < TASKS / 10,
            "{name}: {frees} deallocations on other threads for {TASKS} tasks"
        );
    }
    current_thread().block_on(d.shutdown(std::time::Duration::from_secs(5)));
}
