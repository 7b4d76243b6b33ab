//! Tests only (see `tests/`): behaviour that shows in where memory is freed, measured with a
//! counting global allocator. A package of its own so that the workspace's other crates keep
//! forbidding `unsafe`.

#![forbid(unsafe_code)]
