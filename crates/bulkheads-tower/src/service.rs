//! [`Bulkhead`]: the service. `poll_ready` takes a slot of the dispatcher (or its
//! rejection); `call` hands the request's future over to the dispatcher with that slot.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bulkheads::{DispatchError, Dispatcher, Reservation};
use tower_service::Service;

use crate::error::BulkheadError;
use crate::future::ResponseFuture;
use crate::layer::Mode;

/// A service behind a [`Dispatcher`]; made by [`BulkheadLayer`](crate::BulkheadLayer) or
/// [`Bulkhead::new`] (pinned mode).
///
/// **`poll_ready`** polls the inner service's `poll_ready` first, then asks the dispatcher for
/// a slot: admitted or rejected at once when it has room or no `max_wait`, otherwise
/// `Pending` for at most `max_wait`, in FIFO order with every other caller of the
/// dispatcher. Either way it then returns `Ready(Ok(()))`: a rejection is not an error of
/// the service (tower would take the service for broken and drop it), it is the answer to
/// *this* request, which [`call`](Service::call) returns as its response future's error,
/// [`BulkheadError::Dispatch`], without calling the inner service. `poll_ready` fails only
/// with the inner service's own error.
///
/// **`call`** spends the slot: the inner service's future runs on the dispatcher (pinned) or in
/// the caller's task (admission only). A `call` without a successful `poll_ready` before it
/// runs nothing and fails with [`BulkheadError::NotReady`]: no panic in a server.
///
/// A slot taken by `poll_ready` stays taken until `call` spends it or the service is dropped
/// (as with tower's `ConcurrencyLimit`), so call soon after `poll_ready`.
pub struct Bulkhead<S> {
    /// The wrapped service: polled ready before a slot is taken, called with the slot.
    inner: S,
    /// What every clone shares; set when the service is made.
    shared: Arc<Shared>,
    /// This service's admission for its next request. Set by `poll_ready`, taken by `call`.
    admission: Admission,
}

/// What every clone of a [`Bulkhead`] shares, set when it is made.
struct Shared {
    /// Asked for a slot by every `poll_ready`.
    dispatcher: Dispatcher,
    /// The dispatcher's name, for errors that name it.
    name: Arc<str>,
    /// Whether `call` spends the slot with `run` (pinned) or `run_here` (admission only).
    mode: Mode,
    /// The name `call` gives every request's task, if any.
    task_name: Option<Cow<'static, str>>,
    /// Every request's spawn site: where the layer or service was made.
    location: &'static Location<'static>,
}

type Reserving = Pin<Box<dyn Future<Output = Result<Reservation, DispatchError>> + Send>>;

/// The admission of the next request.
enum Admission {
    /// Nothing asked for yet: set at creation, by `clone`, and by `call` when it spends or
    /// returns a decision.
    Idle,
    /// Waiting (up to `max_wait`) for a slot in the dispatcher's FIFO. Set by a `poll_ready`
    /// that found no room at once; polled by the next `poll_ready`s until decided. Dropping it
    /// leaves the queue. (The `Mutex` is never locked: it makes the service `Sync`, as axum
    /// requires, and `get_mut` reaches the future through `&mut self`.)
    Waiting(Mutex<Reserving>),
    /// Decided: a slot, or the dispatcher's rejection. Set by `poll_ready`, taken by `call`.
    /// Dropping an unspent slot gives it back.
    Decided(Result<Reservation, DispatchError>),
}

impl<S> Bulkhead<S> {
    /// `inner` behind `dispatcher`, its response futures run on the dispatcher (pinned mode;
    /// [`BulkheadLayer`](crate::BulkheadLayer) has the other options).
    #[track_caller]
    pub fn new(inner: S, dispatcher: Dispatcher) -> Self {
        let name = Arc::from(dispatcher.name());
        Self::from_parts(
            inner,
            dispatcher,
            name,
            Mode::Pinned,
            Location::caller(),
            None,
        )
    }

    pub(crate) fn from_parts(
        inner: S,
        dispatcher: Dispatcher,
        name: Arc<str>,
        mode: Mode,
        location: &'static Location<'static>,
        task_name: Option<Cow<'static, str>>,
    ) -> Self {
        Bulkhead {
            inner,
            shared: Arc::new(Shared {
                dispatcher,
                name,
                mode,
                task_name,
                location,
            }),
            admission: Admission::Idle,
        }
    }

    /// The dispatcher requests are admitted by.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.shared.dispatcher
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service; a slot this service held is given back.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Request> Service<Request> for Bulkhead<S>
where
    S: Service<Request>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = BulkheadError<S::Error>;
    type Future = ResponseFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The inner service first: a slot is taken only for a request that can go out now.
        if let Err(source) = ready!(self.inner.poll_ready(cx)) {
            return Poll::Ready(Err(BulkheadError::Inner {
                dispatcher: self.shared.name.clone(),
                source,
            }));
        }
        loop {
            match &mut self.admission {
                Admission::Decided(_) => return Poll::Ready(Ok(())),
                Admission::Idle if self.shared.dispatcher.max_wait().is_zero() => {
                    // No waiting allowed: decided now, without a future to box.
                    let shared = &*self.shared;
                    self.admission = Admission::Decided(
                        shared
                            .dispatcher
                            .try_reserve_for(shared.task_name.clone(), shared.location),
                    );
                }
                Admission::Idle => {
                    // `reserve` takes a free slot in its first poll; it waits only when the
                    // dispatcher is full.
                    let shared = &*self.shared;
                    let reserving: Reserving = Box::pin(
                        shared
                            .dispatcher
                            .reserve_for(shared.task_name.clone(), shared.location),
                    );
                    self.admission = Admission::Waiting(Mutex::new(reserving));
                }
                Admission::Waiting(reserving) => {
                    let reserving = match reserving.get_mut() {
                        Ok(r) => r,
                        // Never locked, so never poisoned; were it, the future is intact.
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    let decided = ready!(reserving.as_mut().poll(cx));
                    self.admission = Admission::Decided(decided);
                }
            }
        }
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let shared = &*self.shared;
        match std::mem::replace(&mut self.admission, Admission::Idle) {
            Admission::Decided(Ok(reservation)) => {
                // Named and sited by `poll_ready`'s `*_reserve_for`.
                let future = self.inner.call(request);
                let running = match shared.mode {
                    Mode::Pinned => reservation.run(future),
                    Mode::AdmissionOnly => reservation.run_here(future),
                };
                ResponseFuture::running(running, shared.name.clone())
            }
            Admission::Decided(Err(rejected)) => {
                ResponseFuture::failed(BulkheadError::Dispatch(rejected))
            }
            not_ready => {
                // Keep a wait in progress for the `poll_ready` that should have come first.
                self.admission = not_ready;
                ResponseFuture::failed(BulkheadError::NotReady {
                    dispatcher: shared.name.clone(),
                })
            }
        }
    }
}

impl<S: Clone> Clone for Bulkhead<S> {
    /// Not derived: a slot taken by `poll_ready` belongs to the one `call` that follows it, so
    /// a clone shares the dispatcher and the inner service's clone but starts with no slot of
    /// its own (nor a place in the dispatcher's queue).
    fn clone(&self) -> Self {
        Bulkhead {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            admission: Admission::Idle,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Bulkhead<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let admission = match &self.admission {
            Admission::Idle => "idle",
            Admission::Waiting(_) => "waiting",
            Admission::Decided(Ok(_)) => "admitted",
            Admission::Decided(Err(_)) => "rejected",
        };
        f.debug_struct("Bulkhead")
            .field("inner", &self.inner)
            .field("dispatcher", &self.shared.name)
            .field("mode", &self.shared.mode)
            .field("admission", &admission)
            .finish()
    }
}
