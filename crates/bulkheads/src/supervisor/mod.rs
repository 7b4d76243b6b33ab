//! Failures and where they go: the root failure handler and the [`Failure`](crate::Failure)
//! it receives (`failure.rs`), what supervised children return (`outcome.rs`), scopes
//! (`scope.rs` with `scope_error.rs`, `supervisor_scope.rs`, watching their children with `children.rs`) and
//! restarting supervisors: declared in `supervisor.rs`, their policy types in
//! `policy.rs`, checked into a plan (`spec.rs`), run by `run.rs` (stopping in `run/stop.rs`),
//! owned through `handle.rs`.

pub(crate) mod children;
pub(crate) mod failure;
pub(crate) mod handle;
pub(crate) mod outcome;
pub(crate) mod policy;
pub(crate) mod run;
pub(crate) mod scope;
pub(crate) mod scope_error;
pub(crate) mod spec;
#[allow(
    clippy::module_inception,
    reason = "supervisor/supervisor.rs declares the supervisors of the supervisor module"
)]
pub(crate) mod supervisor;
pub(crate) mod supervisor_scope;
