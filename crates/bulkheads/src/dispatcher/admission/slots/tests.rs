//! The slot count's unit tests, and its loom models (`--cfg bulkheads_loom`).

use super::*;

/// Polls once, with a waker that does nothing (the tests poll again themselves).
fn poll_once(a: &mut Acquire<'_>) -> Poll<()> {
    Pin::new(a).poll(&mut Context::from_waker(std::task::Waker::noop()))
}

/// Exactly `n` slots are free: `n` are taken (and kept), and one more is refused.
fn assert_exactly_free(s: &Slots, n: usize) {
    for i in 0..n {
        assert!(s.try_acquire(), "slot {i} of {n} should be free");
    }
    assert!(!s.try_acquire(), "only {n} slots should be free");
}

#[cfg(not(bulkheads_loom))]
mod unit {
    use super::*;

    /// One slot, held; two waiters queued behind it, oldest first.
    fn held_with_two_waiters(s: &Slots) -> (Acquire<'_>, Acquire<'_>) {
        assert!(s.try_acquire());
        let mut first = s.acquire();
        let mut second = s.acquire();
        assert!(poll_once(&mut first).is_pending());
        assert!(poll_once(&mut second).is_pending());
        (first, second)
    }

    #[test]
    fn free_slots_are_taken_until_none_is_left() {
        let s = Slots::new(2);
        assert_exactly_free(&s, 2);
        s.release();
        assert_exactly_free(&s, 1);
        // Many rounds: the bound on the room is refreshed as slots come back.
        for _ in 0..1000 {
            s.release();
            s.release();
            assert_exactly_free(&s, 2);
        }
    }

    #[test]
    fn waiters_are_served_in_order_and_nobody_barges() {
        let s = Slots::new(1);
        let (mut first, mut second) = held_with_two_waiters(&s);
        s.release();
        // The slot went to the oldest waiter: a newcomer cannot take it, the second waits.
        assert!(!s.try_acquire());
        assert!(poll_once(&mut second).is_pending());
        assert!(poll_once(&mut first).is_ready());
        drop(first); // the caller holds its slot now; dropping the future frees nothing
        s.release();
        assert!(poll_once(&mut second).is_ready());
        s.release();
        // Nobody waits any more: the fast path is back.
        assert_exactly_free(&s, 1);
    }

    #[test]
    fn a_waiter_that_leaves_passes_on_what_it_was_granted() {
        let s = Slots::new(1);
        let (first, mut second) = held_with_two_waiters(&s);
        s.release(); // granted to `first`, which gives up before it sees it
        drop(first);
        assert!(poll_once(&mut second).is_ready());
        s.release();
        assert_exactly_free(&s, 1);
    }

    #[test]
    fn a_waiter_with_room_and_nobody_ahead_is_served_at_once() {
        let s = Slots::new(1);
        let mut a = s.acquire();
        assert!(poll_once(&mut a).is_ready());
        assert!(!s.try_acquire());
    }

    #[test]
    fn waiters_that_leave_do_not_pile_up() {
        let s = Slots::new(1);
        assert!(s.try_acquire());
        let mut stay = s.acquire();
        assert!(poll_once(&mut stay).is_pending());
        for _ in 0..10_000 {
            let mut gone = s.acquire();
            assert!(poll_once(&mut gone).is_pending());
        }
        let queued = lock(&s.queue).nodes.len();
        assert!(queued <= 2 + 17, "{queued} nodes for one waiter");
        s.release();
        assert!(poll_once(&mut stay).is_ready());
        s.release();
        assert_exactly_free(&s, 1);
    }
}

#[cfg(bulkheads_loom)]
mod models {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    fn block_on(mut acquire: Acquire<'_>) {
        while poll_once(&mut acquire).is_pending() {
            thread::yield_now();
        }
    }

    /// Explores every interleaving with at most three preemptions.
    fn bounded(f: impl Fn() + Sync + Send + 'static) {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(f);
    }

    /// A holder releases while a waiter queues and a newcomer (the main thread) tries: the
    /// slot is held by one of them at a time (never both), and once everyone is done it is
    /// free again, exactly once.
    #[test]
    fn loom_a_released_slot_goes_to_exactly_one() {
        bounded(|| {
            let s = Arc::new(Slots::new(1));
            let holding = Arc::new(AtomicU8::new(1));
            assert!(s.try_acquire());
            let holder = {
                let (s, holding) = (s.clone(), holding.clone());
                thread::spawn(move || {
                    holding.fetch_sub(1, Ordering::SeqCst);
                    s.release();
                })
            };
            let waiter = {
                let (s, holding) = (s.clone(), holding.clone());
                thread::spawn(move || {
                    block_on(s.acquire());
                    assert_eq!(holding.fetch_add(1, Ordering::SeqCst), 0);
                    holding.fetch_sub(1, Ordering::SeqCst);
                    s.release();
                })
            };
            if s.try_acquire() {
                assert_eq!(holding.fetch_add(1, Ordering::SeqCst), 0);
                holding.fetch_sub(1, Ordering::SeqCst);
                s.release();
            }
            holder.join().unwrap();
            waiter.join().unwrap();
            assert_exactly_free(&s, 1);
        });
    }

    /// A waiter gives up while the slot is released to it: the slot is neither lost nor
    /// counted twice.
    #[test]
    fn loom_a_waiter_leaving_races_its_grant() {
        loom::model(|| {
            let s = Arc::new(Slots::new(1));
            assert!(s.try_acquire());
            let mut pending = s.acquire();
            assert!(poll_once(&mut pending).is_pending());
            let holder = {
                let s = s.clone();
                thread::spawn(move || s.release())
            };
            drop(pending);
            holder.join().unwrap();
            assert_exactly_free(&s, 1);
        });
    }

    /// Two finishers release while a waiter queues: the waiter is served, and both slots end
    /// up free.
    #[test]
    fn loom_a_waiter_never_misses_a_release() {
        bounded(|| {
            let s = Arc::new(Slots::new(2));
            assert!(s.try_acquire());
            assert!(s.try_acquire());
            let finishers: Vec<_> = (0..2)
                .map(|_| {
                    let s = s.clone();
                    thread::spawn(move || s.release())
                })
                .collect();
            block_on(s.acquire());
            for f in finishers {
                f.join().unwrap();
            }
            s.release();
            assert_exactly_free(&s, 2);
        });
    }
}
