//! Failures and where they go: the root failure handler and the [`Failure`](crate::Failure)
//! it receives (`failure.rs`), what supervised children return (`outcome.rs`), scopes
//! (`scope.rs`) and restarting supervisors (`supervisor.rs`, its policy types in
//! `policy.rs`).

pub(crate) mod children;
pub(crate) mod failure;
pub(crate) mod outcome;
pub(crate) mod scope;
pub(crate) mod supervisor_scope;
