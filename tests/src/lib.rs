//! End-to-end tests of the bulkheads crates live in `tests/`; this library is empty.
