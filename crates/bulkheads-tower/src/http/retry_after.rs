//! The `Retry-After` estimate: how long until a rejected client is likely to find room.
//!
//! Read only when a response says "retry later", never for a request that is admitted: one
//! relaxed read of a timestamp and one of the estimate. At most once per [`SAMPLE_EVERY`],
//! the rejecting caller that finds the estimate stale (and wins a `try_lock`) reads the
//! dispatcher's `Stats` and works out how fast it drains: tasks finished (or dropped at the
//! queue deadline) since the previous sample, over the time between the two. The estimate is
//! the time to drain what is ahead of a new request (the queued tasks and the callers waiting
//! for room, plus one) at that rate, in whole seconds, between 1 and [`MAX_RETRY_AFTER`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bulkheads::Dispatcher;

/// The least time between two samples of the dispatcher's stats.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// A previous sample older than this is not used for a rate (the service may have been idle
/// in between): the sample becomes the new baseline and the estimate stays as it was.
pub(crate) const MAX_WINDOW: Duration = Duration::from_secs(30);
/// The estimate before two samples exist, and the smallest one given.
pub(crate) const MIN_RETRY_AFTER: u64 = 1;
/// The largest estimate given, in seconds.
pub(crate) const MAX_RETRY_AFTER: u64 = 60;

/// One reading of the dispatcher's counters.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// When, since [`RetryAfter::origin`].
    at: Duration,
    /// Tasks that left the dispatcher so far: finished, cancelled, or dropped at the queue
    /// deadline.
    drained: u64,
}

/// The estimate of one layer, shared by every service it makes.
pub(crate) struct RetryAfter {
    /// Whose `Stats` are sampled.
    dispatcher: Dispatcher,
    /// Time zero of `next_sample` and of the samples.
    origin: Instant,
    /// Nanoseconds since `origin` before which the estimate is fresh. Set by `sample`.
    next_sample: AtomicU64,
    /// Seconds. Set by `sample`, read by every rejection.
    estimate: AtomicU64,
    /// The previous sample; taken with `try_lock` by at most one sampling caller at a time.
    last: Mutex<Option<Sample>>,
}

impl RetryAfter {
    pub(crate) fn new(dispatcher: Dispatcher) -> Self {
        RetryAfter {
            dispatcher,
            origin: Instant::now(),
            next_sample: AtomicU64::new(0),
            estimate: AtomicU64::new(MIN_RETRY_AFTER),
            last: Mutex::new(None),
        }
    }

    /// The current estimate in seconds, sampling the dispatcher first if it is stale.
    pub(crate) fn seconds(&self) -> u64 {
        let now = self.origin.elapsed();
        if nanos(now) >= self.next_sample.load(Ordering::Relaxed) {
            // Someone else sampling now: their estimate is as good as ours.
            if let Ok(mut last) = self.last.try_lock() {
                self.sample(&mut last, now);
            }
        }
        self.estimate.load(Ordering::Relaxed)
    }

    fn sample(&self, last: &mut Option<Sample>, now: Duration) {
        self.next_sample
            .store(nanos(now + SAMPLE_EVERY), Ordering::Relaxed);
        let stats = self.dispatcher.stats();
        let drained =
            stats.completed + stats.panicked + stats.cancelled + stats.rejected.queue_deadline;
        let ahead = (stats.queued + stats.waiting) as u64 + 1;
        if let Some(prev) = *last {
            let window = now.saturating_sub(prev.at);
            if window <= MAX_WINDOW {
                let previous = self.estimate.load(Ordering::Relaxed);
                let done = drained.saturating_sub(prev.drained);
                self.estimate
                    .store(estimate(previous, ahead, done, window), Ordering::Relaxed);
            }
        }
        *last = Some(Sample { at: now, drained });
    }
}

/// Seconds until `ahead` tasks drain, when `done` drained in `window`; with none drained,
/// twice the previous estimate (at least the window): the dispatcher is stuck or very slow.
fn estimate(previous: u64, ahead: u64, done: u64, window: Duration) -> u64 {
    let secs = if done == 0 {
        previous
            .saturating_mul(2)
            .max(window.as_secs_f64().ceil() as u64)
    } else {
        // ahead / (done / window), rounded up to whole seconds.
        let nanos = u128::from(ahead) * window.as_nanos() / u128::from(done);
        nanos.div_ceil(1_000_000_000).min(u128::from(u64::MAX)) as u64
    };
    secs.clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_rate_gives_whole_seconds_within_bounds() {
        let s = Duration::from_secs(1);
        // 10 ahead, 5 drained per second: 2 s.
        assert_eq!(estimate(1, 10, 5, s), 2);
        // 11 ahead at 5 per second: 2.2 s, rounded up.
        assert_eq!(estimate(1, 11, 5, s), 3);
        // Fast drain: never below 1 s.
        assert_eq!(estimate(7, 1, 1000, s), MIN_RETRY_AFTER);
        // Slow drain: never above the cap.
        assert_eq!(estimate(1, 10_000, 1, s), MAX_RETRY_AFTER);
        // Over a 4 s window, 8 drained (2 per second), 6 ahead: 3 s.
        assert_eq!(estimate(1, 6, 8, 4 * s), 3);
    }

    #[test]
    fn nothing_drained_doubles_the_estimate_up_to_the_cap() {
        let s = Duration::from_secs(1);
        assert_eq!(estimate(1, 3, 0, s), 2);
        assert_eq!(estimate(2, 3, 0, s), 4);
        assert_eq!(estimate(1, 3, 0, 5 * s), 5);
        assert_eq!(estimate(40, 3, 0, s), MAX_RETRY_AFTER);
    }

    #[tokio::test]
    async fn samples_the_dispatcher_at_most_once_per_interval() {
        let d = bulkheads::Dispatchers::builder()
            .blocking("ra", bulkheads::BlockingConfig::threads(1).queue(4))
            .build()
            .unwrap();
        let pool = d.get("ra").unwrap();
        let ra = RetryAfter::new(pool.clone());
        // No rate yet: the minimum.
        assert_eq!(ra.seconds(), MIN_RETRY_AFTER);
        // Within the interval, the estimate is not recomputed, whatever happens meanwhile.
        for _ in 0..3 {
            pool.run_blocking(|| ()).await.unwrap();
        }
        assert_eq!(ra.seconds(), MIN_RETRY_AFTER);
        // A sample over a known window: 3 drained in 2 s, 1 ahead (nothing queued): 1 s.
        let mut last = ra.last.lock().unwrap();
        *last = Some(Sample {
            at: Duration::ZERO,
            drained: 0,
        });
        ra.sample(&mut last, Duration::from_secs(2));
        assert_eq!(ra.estimate.load(Ordering::Relaxed), 1);
        // Nothing drained over the next 3 s: the estimate grows.
        ra.sample(&mut last, Duration::from_secs(5));
        assert_eq!(ra.estimate.load(Ordering::Relaxed), 3);
        // A baseline older than the window is replaced without touching the estimate.
        ra.sample(&mut last, Duration::from_secs(60));
        assert_eq!(ra.estimate.load(Ordering::Relaxed), 3);
        assert_eq!(last.unwrap().at, Duration::from_secs(60));
    }
}
