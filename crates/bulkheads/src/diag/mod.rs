//! Live diagnostics: what a dump shows of one task (`task.rs`), dumps of a whole registry
//! (`dump.rs`), the suspects they point at (`suspects.rs`), dumps as JSON (`json.rs`, the
//! `serde` feature) and dumps on `SIGUSR1` (`signal.rs`, the `signal` feature).

pub(crate) mod dump;
#[cfg(feature = "serde")]
mod json;
#[cfg(all(unix, feature = "signal"))]
pub(crate) mod signal;
pub(crate) mod suspects;
pub(crate) mod task;
