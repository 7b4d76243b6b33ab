//! Named bulkhead dispatchers for Tokio services.
//!
//! A slow blocking driver called from async code holds a runtime worker; under load every
//! worker is stuck and the health check, the fast endpoints and the timers stop.
//! `tokio::task::spawn_blocking` moves the work off the workers, but into one shared pool of up
//! to 512 threads whose queue is unbounded: memory climbs and one subsystem still eats
//! everyone's threads. `bulkheads` gives each subsystem its own bulkhead:
//!
//! - a **`blocking`** dispatcher: a fixed pool of named OS threads with a bounded queue; when
//!   it is full, callers get a fast, clear [`RejectReason::QueueFull`] (or wait up to
//!   `max_wait`, in FIFO order);
//! - the shared **`cpu`** pool and **`runtime`** dispatchers: dedicated Tokio runtimes, so a
//!   misbehaving subsystem has its own threads, timers and IO driver;
//! - **`limited`** views ([`Dispatcher::limited`], Kotlin's `limitedParallelism`): at most *n* of
//!   a subsystem's tasks run at the same instant on a shared base, costing no threads.
//!   Parallelism is not concurrency: a task parked at `.await` holds no slot (cap in-flight
//!   tasks with `max_concurrent`);
//! - all of it declared in one validated TOML file ([`Dispatchers::from_toml_path`],
//!   [`Config`]), with environment overrides.
//!
//! Every dispatcher counts what it does ([`Stats`], and the `metrics` facade: see
//! [`metrics`](mod@crate::metrics)), catches panics (the pool threads survive; the panic
//! reaches the awaiting caller or the root [`Failure`] handler, never both, never neither),
//! and shuts down within a deadline reporting every accepted task.
//!
//! The framework obeys its own isolation: every registry has a control thread that runs the
//! library's own timers (`max_wait`, shutdown deadlines) and the IO and time drivers of async
//! work pinned to blocking pools, so a saturated `cpu` pool or any busy dispatcher never delays
//! another's rejections or timers. Closures on every kind run with a Tokio context entered
//! (`Handle::current()` works; on a blocking pool `Handle::current().block_on(..)` works too,
//! while on `cpu`, a runtime or a view over them the closure runs on an async worker, where
//! Tokio refuses `block_on` as inside any Tokio task: such code belongs on a blocking pool). A
//! `run*` awaited from a thread that already holds a slot of the same dispatcher (a job waiting
//! for more work on its own pool, a task of a capped runtime waiting for that runtime) runs
//! inline instead of waiting for a slot it holds, and a closure spawned on a full pool and
//! awaited from that pool runs on the awaiting thread. Panics of
//! user code are contained wherever they happen, including while dropping values and inside
//! metrics recorders or tracing subscribers.
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bulkheads::{BlockingConfig, Dispatchers, RejectReason};
//! use std::time::Duration;
//!
//! let dispatchers = Dispatchers::builder()
//!     .blocking("legacy_db", BlockingConfig::threads(2).queue(0))
//!     .build()?;
//! let db = dispatchers.get("legacy_db")?;
//!
//! // Two slow calls take both threads; with no queue, a third is rejected at once.
//! let (started_tx, started_rx) = std::sync::mpsc::channel();
//! let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
//! let release_rx = std::sync::Arc::new(std::sync::Mutex::new(release_rx));
//! let slow: Vec<_> = (0..2)
//!     .map(|_| {
//!         let (started, release) = (started_tx.clone(), release_rx.clone());
//!         db.spawn_blocking(move || {
//!             started.send(()).unwrap();
//!             release.lock().unwrap().recv().unwrap();
//!         })
//!     })
//!     .collect();
//! started_rx.recv()?;
//! started_rx.recv()?;
//! let err = db.run_blocking(|| ()).await.unwrap_err();
//! assert_eq!(err.reject_reason(), Some(&RejectReason::QueueFull { capacity: 2 }));
//!
//! // Meanwhile the rest of the program is untouched.
//! assert_eq!(dispatchers.cpu().run(async { 1 + 1 }).await?, 2);
//!
//! release_tx.send(())?;
//! release_tx.send(())?;
//! for h in slow { h.await?; }
//! let report = dispatchers.shutdown(Duration::from_secs(1)).await;
//! assert_eq!(report.dispatcher("legacy_db").unwrap().rejected, 1);
//! # Ok(()) }
//! ```
//!
//! # Cargo features
//!
//! None is on by default.
//!
//! - **`serde`**: `Dump::to_json` and `Suspect::to_json`, dumps as JSON.
//! - **`signal`** (Unix): `Dispatchers::dump_on_sigusr1`, a dump whenever the process gets
//!   `SIGUSR1`.
//! - **`await-tree`**: per-task async backtraces in dumps, "which `.await` is this task parked
//!   on" ([`TaskDump::await_tree`]). Every async task gets its own tree, rooted in its name;
//!   mark the awaits worth seeing with `.instrument_await("label")` from the re-exported
//!   `bulkheads::await_tree` crate. Blocking closures are untouched. It costs about 2.3 µs per
//!   async task (100k no-op tasks spawned on a view and joined: 1.1 µs each without it, 3.5 µs
//!   with it; mostly the tree registry's hash map and allocations), and a dump about 1.4 µs
//!   more per async task it shows.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Library code never unwraps; tests may.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod config;
mod diag;
mod dispatcher;
mod error;
pub mod metrics;
mod registry;
mod supervisor;
mod sync;
pub mod testing;
mod validate;

// The guides' examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/guide.md")]
mod guide {}
#[cfg(doctest)]
#[doc = include_str!("../../../docs/diagnostics.md")]
mod diagnostics_guide {}

pub use crate::config::{
    BlockingSection, Config, CpuSection, DispatcherSection, LimitedSection, RuntimeSection,
};
pub use crate::diag::dump::{DispatcherDump, Dump};
#[cfg(all(unix, feature = "signal"))]
pub use crate::diag::signal::DumpOnSignal;
pub use crate::diag::suspects::{Suspect, SuspectReason};
pub use crate::diag::task::{TaskDump, TaskState};
pub use crate::dispatcher::admission::AdmissionConfig;
pub use crate::dispatcher::handle::Dispatcher;
pub use crate::dispatcher::join::JoinHandle;
pub use crate::dispatcher::kind::Kind;
pub use crate::dispatcher::kinds::blocking::BlockingConfig;
pub use crate::dispatcher::kinds::limited::LimitedConfig;
pub use crate::dispatcher::kinds::runtime::RuntimeConfig;
pub use crate::dispatcher::reserve::Reservation;
pub use crate::dispatcher::running::Running;
pub use crate::dispatcher::stats::{RejectedCounts, Stats};
pub use crate::dispatcher::task::id::{TaskId, TaskInfo};
pub use crate::dispatcher::task_builder::TaskBuilder;
pub use crate::error::{
    ConfigError, ConfigProblem, DispatchError, PanicPayload, Position, RejectReason,
    UnknownDispatcher,
};
pub use crate::registry::Dispatchers;
pub use crate::registry::builder::DispatchersBuilder;
pub use crate::registry::report::{DispatcherReport, ShutdownReport};
pub use crate::registry::shutdown::CANCEL_GRACE;
pub use crate::supervisor::failure::{Failure, FailureKind};
pub use crate::supervisor::handle::{ChildState, ChildStatus, SupervisorError, SupervisorHandle};
pub use crate::supervisor::outcome::ChildResult;
pub use crate::supervisor::policy::{Backoff, Intensity, Restart, Strategy};
pub use crate::supervisor::scope::{Scope, ScopeTask};
pub use crate::supervisor::scope_error::{ScopeError, ScopeFailure};
pub use crate::supervisor::supervisor::{Child, Supervisor, SupervisorBuilder};
pub use crate::supervisor::supervisor_scope::{SupervisorReport, SupervisorScope};
pub use crate::validate::{CPU, DEFAULT_MAX_THREADS, MAIN};

/// The [`await-tree`](https://docs.rs/await-tree/0.3) crate (the `await-tree` feature), for
/// `InstrumentAwait::instrument_await`: see [`TaskDump::await_tree`].
#[cfg(feature = "await-tree")]
pub use await_tree;
