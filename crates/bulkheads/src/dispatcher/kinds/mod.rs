//! The dispatcher kinds, each in one file, listed once here.
//!
//! Adding a kind: a file implementing [`Executor`] and [`WorkerHost`], and one line in the
//! `kinds!` list below (plus its public [`Kind`](crate::Kind) and its builder method).

pub(crate) mod blocking;
pub(crate) mod limited;
pub(crate) mod runtime;

use std::future::Future;
use std::sync::Arc;

use super::executor::{Executor, WorkerHost};
use super::task::NewTask;
use super::task::cell::TaskCell;

/// Generates `AnyExecutor`, an enum over the kinds whose every method forwards to the kind.
/// Static dispatch: `submit` is generic over the work, so the work is never boxed.
macro_rules! kinds {
    ($($variant:ident => $executor:ty,)*) => {
        /// Any kind's executor.
        #[derive(Clone)]
        pub(crate) enum AnyExecutor {
            $($variant(Arc<$executor>),)*
        }

        impl AnyExecutor {
            pub(crate) fn submit<F>(&self, task: NewTask<F>) -> Arc<TaskCell<F>>
            where
                F: Future + Send + 'static,
                F::Output: Send + 'static,
            {
                match self { $(AnyExecutor::$variant(e) => e.submit(task),)* }
            }

            pub(crate) fn threads(&self) -> usize {
                match self { $(AnyExecutor::$variant(e) => e.threads(),)* }
            }

            pub(crate) fn parallelism(&self) -> Option<usize> {
                match self { $(AnyExecutor::$variant(e) => e.parallelism(),)* }
            }

            pub(crate) fn holds_current_thread(&self) -> bool {
                match self { $(AnyExecutor::$variant(e) => e.holds_current_thread(),)* }
            }

            pub(crate) fn host(&self) -> Arc<dyn WorkerHost> {
                match self { $(AnyExecutor::$variant(e) => e.host(),)* }
            }

            pub(crate) fn close(&self) {
                match self { $(AnyExecutor::$variant(e) => e.close(),)* }
            }
        }

        $(
            impl From<Arc<$executor>> for AnyExecutor {
                fn from(e: Arc<$executor>) -> Self {
                    AnyExecutor::$variant(e)
                }
            }
        )*
    };
}

kinds! {
    Pool => blocking::BlockingPool,
    Tokio => runtime::TokioRuntime,
    View => limited::LimitedView,
}
