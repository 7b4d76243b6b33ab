//! The children of a scope, as the scope watches them: a queue of newly spawned children
//! (spawned from the scope's body or from its children, on any thread), the scope's waker,
//! and whether the scope still takes children.
//!
//! Invariant: once [`Children::close`] has run, no child is added; every child added before
//! is handed to the scope, which watches it until it ends. So a scope that returns leaves no
//! child behind.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};

use atomic_waker::AtomicWaker;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use crate::dispatcher::handle::Dispatcher;
use crate::dispatcher::join::JoinHandle;
use crate::dispatcher::task::id::TaskInfo;
use crate::error::DispatchError;
use crate::sync::lock;

/// A child as its scope watches it: its handle and who it is.
pub(crate) struct Child<R> {
    pub handle: JoinHandle<R>,
    pub info: TaskInfo,
    pub dispatcher: Dispatcher,
}

pub(crate) struct Children<R> {
    /// Spawned, not yet taken by the scope; `None` once closed.
    incoming: Mutex<Option<Vec<Child<R>>>>,
    /// The scope's task, woken when a child is added from elsewhere.
    waker: AtomicWaker,
    /// The scope's path (`scope #12`): its children's parent.
    pub path: Arc<str>,
}

impl<R> Children<R> {
    pub(crate) fn new(path: Arc<str>) -> Self {
        Children {
            incoming: Mutex::new(Some(Vec::new())),
            waker: AtomicWaker::new(),
            path,
        }
    }

    /// Adds a child; `Err(child)` when the scope no longer takes children.
    pub(crate) fn add(&self, child: Child<R>) -> Result<(), Child<R>> {
        match lock(&self.incoming).as_mut() {
            Some(queue) => queue.push(child),
            None => return Err(child),
        }
        self.waker.wake();
        Ok(())
    }

    /// The children added since the last call.
    pub(crate) fn take(&self, waker: &Waker) -> Vec<Child<R>> {
        // Registered before the take: a child added after it wakes us.
        self.waker.register(waker);
        match lock(&self.incoming).as_mut() {
            Some(queue) => std::mem::take(queue),
            None => Vec::new(),
        }
    }

    /// No more children; returns those added but not taken yet.
    pub(crate) fn close(&self) -> Vec<Child<R>> {
        lock(&self.incoming).take().unwrap_or_default()
    }

    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.incoming).is_none()
    }

    /// Children added but not taken yet.
    fn pending(&self) -> usize {
        lock(&self.incoming).as_ref().map_or(0, Vec::len)
    }
}

/// A child being watched: resolves with who it was and how it ended.
pub(crate) struct Watched<R> {
    child: Child<R>,
}

/// How a watched child ended.
pub(crate) struct Ended<R> {
    pub info: TaskInfo,
    pub dispatcher: Dispatcher,
    pub result: Result<R, DispatchError>,
}

impl<R: Send + 'static> Future for Watched<R> {
    type Output = Ended<R>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended<R>> {
        let result = ready!(Pin::new(&mut self.child.handle).poll(cx));
        Poll::Ready(Ended {
            info: self.child.info.clone(),
            dispatcher: self.child.dispatcher.clone(),
            result,
        })
    }
}

/// The scope's side: the children it watches. Dropped (the scope's future dropped, or the
/// scope done), it closes the scope to new children, aborts every child still running, and
/// hands every child that has ended but was not seen yet to `lost` (its failure must not
/// vanish with the scope): no child outlives its scope unwatched.
pub(crate) struct Watch<R: Send + 'static> {
    pub children: Arc<Children<R>>,
    watching: FuturesUnordered<Watched<R>>,
    /// Where the scope is registered as running (for dumps): unregistered on drop.
    registry: Dispatcher,
    /// Called on drop with each child that ended unseen: reports its failure, if any.
    lost: fn(Ended<R>),
}

impl<R: Send + 'static> Watch<R> {
    /// Watches the children of the scope at `path`, registered with `registry` (any dispatcher
    /// of the registry) as running until this is dropped; `lost` reports a child that ended
    /// and was never seen because the scope was dropped first.
    pub(crate) fn new(path: Arc<str>, registry: Dispatcher, lost: fn(Ended<R>)) -> Self {
        registry.scope_running(&path, true);
        Watch {
            children: Arc::new(Children::new(path)),
            watching: FuturesUnordered::new(),
            registry,
            lost,
        }
    }

    /// The next child that ended, taking in the newly spawned ones first. `Ready(None)` when
    /// none is left to watch (for now: more may be spawned while the scope is open).
    pub(crate) fn poll_ended(&mut self, cx: &mut Context<'_>) -> Poll<Option<Ended<R>>> {
        for child in self.children.take(cx.waker()) {
            self.watching.push(Watched { child });
        }
        self.watching.poll_next_unpin(cx)
    }

    /// True when no child is watched or waiting to be.
    pub(crate) fn is_empty(&self) -> bool {
        self.watching.is_empty() && self.children.pending() == 0
    }

    /// Closes the scope to new children and cancels every child (queued ones never start,
    /// async ones stop at their next `.await`, running blocking ones are abandoned).
    pub(crate) fn cancel_all(&mut self) {
        for child in self.children.close() {
            self.watching.push(Watched { child });
        }
        for watched in self.watching.iter() {
            watched.child.handle.abort();
        }
    }
}

impl<R: Send + 'static> Drop for Watch<R> {
    fn drop(&mut self) {
        self.registry.scope_running(&self.children.path, false);
        for child in self.children.close() {
            self.watching.push(Watched { child });
        }
        // Aborted before they are polled: a poll from a thread of a busy pool would run a
        // queued child of that pool inline, and work dropped before it starts must not start.
        for watched in self.watching.iter() {
            watched.child.handle.abort_if_pending();
        }
        // Children that ended and were not seen: their results are taken here (a handle
        // dropped unjoined would report a panic, but drop an `Err` silently). Nobody waits
        // for this poll's wake-ups.
        let lost = self.lost;
        let mut cx = Context::from_waker(Waker::noop());
        while let Poll::Ready(Some(ended)) = self.watching.poll_next_unpin(&mut cx) {
            lost(ended);
        }
        if self.watching.is_empty() {
            return;
        }
        // The rest end soon (cancelled, or abandoned if they run blocking code), or have just
        // ended and not published yet: watched to their end on the control runtime, so a
        // failure among them is reported too. (If that runtime is gone, the handles are
        // dropped: a panic is still reported, an error is not.)
        let mut rest = std::mem::take(&mut self.watching);
        drop(self.registry.control().spawn(async move {
            while let Some(ended) = rest.next().await {
                lost(ended);
            }
        }));
    }
}
