//! Helpers for users' own tests.

use std::time::Duration;

use crate::registry::Dispatchers;

/// Waits up to a second for every task of `dispatchers` to end, and panics with the dump of
/// what is still alive if some have not: ghosts, zombies and forgotten workers fail the test
/// that made them. See [`assert_no_leaks_within`].
///
/// ```
/// # #[tokio::main] async fn main() {
/// let dispatchers = bulkheads::Dispatchers::builder().cpu_threads(1).build().unwrap();
/// dispatchers.cpu().spawn(async { 1 + 1 }).await.unwrap();
/// bulkheads::testing::assert_no_leaks(&dispatchers).await;
/// # }
/// ```
pub async fn assert_no_leaks(dispatchers: &Dispatchers) {
    assert_no_leaks_within(dispatchers, Duration::from_secs(1)).await;
}

/// [`assert_no_leaks`] with your own patience. Looks every 5 ms (on the registry's control
/// runtime's clock, so it works from any runtime).
///
/// # Panics
///
/// With the dump, when tasks are still alive after `within`.
pub async fn assert_no_leaks_within(dispatchers: &Dispatchers, within: Duration) {
    let started = std::time::Instant::now();
    loop {
        let dump = dispatchers.dump();
        if dump.is_empty() {
            return;
        }
        if started.elapsed() >= within {
            panic!(
                "bulkheads: {} task(s) still alive after {within:?}:\n{dump}",
                dump.len()
            );
        }
        let nap = {
            let _ctx = dispatchers.cpu().control().enter();
            tokio::time::sleep(Duration::from_millis(5))
        };
        nap.await;
    }
}
