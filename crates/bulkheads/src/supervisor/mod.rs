//! Failures and where they go. Supervision (scopes and restarting supervisors) grows here; the
//! root failure handler and the [`Failure`](crate::Failure) it receives live in `failure.rs`.

pub(crate) mod failure;
