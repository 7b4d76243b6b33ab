//! The public name of each dispatcher kind.

use std::fmt;

/// What kind of dispatcher a [`Dispatcher`](crate::Dispatcher) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A fixed pool of OS threads with a bounded queue.
    Blocking,
    /// A dedicated Tokio runtime (the registry's `cpu` pool is one).
    Runtime,
    /// A limited-parallelism view over a base; owns no threads.
    Limited,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Blocking => "blocking",
            Kind::Runtime => "runtime",
            Kind::Limited => "limited",
        })
    }
}
