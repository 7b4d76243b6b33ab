//! What shutdown reports: [`ShutdownReport`], one [`DispatcherReport`] line per dispatcher.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::dispatcher::stats::Stats;

/// What [`Dispatchers::shutdown`](crate::Dispatchers::shutdown) did to every task.
///
/// For each dispatcher, `submitted == completed + panicked + cancelled + rejected`: every
/// accepted task is accounted for. `Display` prints a table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// One line per dispatcher, in shutdown order.
    pub dispatchers: Vec<DispatcherReport>,
    /// How long shutdown took.
    pub elapsed: Duration,
    /// True when the deadline passed with work still in flight, which was then cancelled.
    pub deadline_hit: bool,
}

impl ShutdownReport {
    /// Tasks that finished with a value, over all dispatchers.
    pub fn completed(&self) -> u64 {
        self.dispatchers.iter().map(|d| d.completed).sum()
    }

    /// Tasks cancelled, over all dispatchers (abandoned ones included).
    pub fn cancelled(&self) -> u64 {
        self.dispatchers.iter().map(|d| d.cancelled).sum()
    }

    /// Started work left running, over all dispatchers.
    pub fn abandoned(&self) -> u64 {
        self.dispatchers.iter().map(|d| d.abandoned).sum()
    }

    /// The line of dispatcher `name`.
    pub fn dispatcher(&self, name: &str) -> Option<&DispatcherReport> {
        self.dispatchers.iter().find(|d| &*d.name == name)
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "shutdown in {:?}{}",
            self.elapsed,
            if self.deadline_hit {
                " (deadline hit)"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "{:<16} {:>10} {:>10} {:>9} {:>10} {:>10} {:>9} {:>11}",
            "dispatcher",
            "submitted",
            "completed",
            "panicked",
            "cancelled",
            "abandoned",
            "rejected",
            "in_flight"
        )?;
        for d in &self.dispatchers {
            writeln!(
                f,
                "{:<16} {:>10} {:>10} {:>9} {:>10} {:>10} {:>9} {:>11}",
                d.name,
                d.submitted,
                d.completed,
                d.panicked,
                d.cancelled,
                d.abandoned,
                d.rejected,
                d.in_flight
            )?;
        }
        Ok(())
    }
}

/// One dispatcher's line in a [`ShutdownReport`]: lifetime counts at the end of shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DispatcherReport {
    /// The dispatcher.
    pub name: Arc<str>,
    /// Offered tasks (admitted or rejected).
    pub submitted: u64,
    /// Finished with a value.
    pub completed: u64,
    /// Finished with a panic.
    pub panicked: u64,
    /// Cancelled (never started, cut at an `.await`, or abandoned).
    pub cancelled: u64,
    /// Of `cancelled`: started work left to finish on its thread, its result dropped.
    pub abandoned: u64,
    /// Rejected at admission (any reason).
    pub rejected: u64,
    /// Undecided tasks left; zero after a shutdown, by construction.
    pub in_flight: usize,
    /// Everything else the dispatcher counted (rejections by reason, kind, threads,
    /// capacity), as [`Dispatcher::stats`](crate::Dispatcher::stats) gives it: the fields above
    /// are its most used ones, read from it.
    pub stats: Stats,
}

impl DispatcherReport {
    pub(crate) fn from_stats(s: Stats) -> Self {
        DispatcherReport {
            name: s.name.clone(),
            submitted: s.submitted,
            completed: s.completed,
            panicked: s.panicked,
            cancelled: s.cancelled,
            abandoned: s.abandoned,
            rejected: s.rejected.total(),
            in_flight: s.in_flight,
            stats: s,
        }
    }
}
