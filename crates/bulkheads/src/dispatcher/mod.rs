//! A dispatcher: a named place where work runs, with its own admission, counts and metrics.
//!
//! Every kind supports the same four calls:
//!
//! | call | blocking pool | cpu / runtime | limited view |
//! |---|---|---|---|
//! | [`spawn`](Dispatcher::spawn) / [`run`](Dispatcher::run) | the future is driven to its end on one pool thread, with the registry's control runtime's IO and time drivers | a task on that runtime | a task of the view on its base |
//! | [`spawn_blocking`](Dispatcher::spawn_blocking) / [`run_blocking`](Dispatcher::run_blocking) | the closure runs on a pool thread, with a Tokio context entered | the closure runs as a task on the runtime's workers | on the base, counted against the view |
//!
//! `spawn*` returns a [`JoinHandle`] at once; a rejection shows when it is awaited. `run*`
//! waits up to `max_wait` for room, runs the work and returns its value; dropping it cancels.

pub(crate) mod accounts;
pub(crate) mod admission;
pub(crate) mod executor;
pub(crate) mod handle;
pub(crate) mod join;
pub(crate) mod kind;
pub(crate) mod kinds;
pub(crate) mod live;
pub(crate) mod reserve;
pub(crate) mod running;
pub(crate) mod spawn;
pub(crate) mod stats;
pub(crate) mod task;
pub(crate) mod task_builder;
pub(crate) mod views;
