//! Live diagnostics: what a dump shows of one task (`task.rs`), dumps of a whole registry
//! (`dump.rs`) and the suspects they point at (`suspects.rs`).

pub(crate) mod dump;
pub(crate) mod suspects;
pub(crate) mod task;
