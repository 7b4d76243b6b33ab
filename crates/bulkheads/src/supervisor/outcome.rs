//! What the children of supervisors and supervisor scopes return: `()` or a `Result` whose
//! error says what went wrong.

use std::fmt;

/// The output of a supervised child's (or a supervisor scope's child's) future: `()`, or a
/// `Result<T, E>` whose `Err` is a failure described by `E`'s `Display`, or the never type
/// `!` of a future that never returns (`async { loop { .. } }`, `async { panic!(..) }`).
///
/// ```
/// use bulkheads::ChildResult;
/// assert_eq!(().error(), None);
/// assert_eq!(Ok::<u8, String>(1).error(), None);
/// assert_eq!(Err::<u8, _>("disk full").error().as_deref(), Some("disk full"));
/// ```
pub trait ChildResult: Send + 'static {
    /// `None` when the child succeeded; its error's `Display` when it failed.
    fn error(self) -> Option<String>;
}

impl ChildResult for () {
    fn error(self) -> Option<String> {
        None
    }
}

impl<T, E> ChildResult for Result<T, E>
where
    T: Send + 'static,
    E: fmt::Display + Send + 'static,
{
    fn error(self) -> Option<String> {
        self.err().map(|e| e.to_string())
    }
}

/// The never type `!`, named on stable Rust (where writing `!` as a type is still unstable)
/// through the output of a function pointer type.
type Never = <fn() -> ! as never::FnOutput>::Output;

mod never {
    /// The output type of a function pointer type; only used to name `Never`. Public in a
    /// private module: the impl below is public, so what names its type must be too, but no
    /// user can reach it.
    pub trait FnOutput {
        type Output;
    }

    impl<O> FnOutput for fn() -> O {
        type Output = O;
    }
}

/// The output of a child that never returns: a bare `async { loop { .. } }` block, or one that
/// only panics. Under Rust 2024 the type of such a block is `!` (edition 2021 falls back to
/// `()`), so this is what lets `Child::new("poller", || async { loop { .. } })` compile.
impl ChildResult for Never {
    fn error(self) -> Option<String> {
        self
    }
}
