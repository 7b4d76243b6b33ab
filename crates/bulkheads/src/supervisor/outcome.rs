//! What the children of supervisors and supervisor scopes return: `()` or a `Result` whose
//! error says what went wrong.

use std::fmt;

/// The output of a supervised child's (or a supervisor scope's child's) future: `()`, or a
/// `Result<T, E>` whose `Err` is a failure described by `E`'s `Display`.
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
