//! The loop's own call-outs, contained: tracing calls (a subscriber may panic) and the loop
//! itself (a panic ends it with a message instead of unwinding into the control runtime).

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::panic_message;

/// Runs a tracing call, containing a subscriber that panics.
pub(super) fn log(f: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(f));
}

/// Polls the loop inside `catch_unwind`: a panic ends it with the panic's message.
pub(super) struct Contained<F>(pub Pin<Box<F>>);

impl<F: Future> Future for Contained<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => {
                let message = panic_message(&*payload);
                let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
                Poll::Ready(Err(message))
            }
        }
    }
}
