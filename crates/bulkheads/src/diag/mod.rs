//! Live diagnostics: what a dump shows of one task (`task.rs`), dumps of a whole registry
//! (`dump.rs`), the suspects they point at (`suspects.rs`), and dumps as JSON (`json.rs`, the
//! `serde` feature).

pub(crate) mod dump;
#[cfg(feature = "serde")]
mod json;
pub(crate) mod suspects;
pub(crate) mod task;
