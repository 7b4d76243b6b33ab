//! [`Reservation`]: a slot of a dispatcher's capacity taken ahead of the work, for callers that
//! must decide admission before they have the work in hand (a tower `Service`'s `poll_ready`).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;

use super::admission::Slot;
use super::handle::Dispatcher;
use super::join::JoinHandle;
use super::running::Running;
use super::spawn::DispatcherCore;
use super::task::cell::WorkKind;
use crate::error::DispatchError;

/// A slot of a dispatcher's capacity, taken before the work exists; see
/// [`Dispatcher::try_reserve`] and [`Dispatcher::reserve`]. Spend it on one task with
/// [`spawn`](Self::spawn), [`run`](Self::run) or [`run_here`](Self::run_here); dropping it
/// unused gives the slot back.
///
/// A reservation is counted as a submission when it is spent; one refused is counted as
/// rejected at once. Capacity held by unspent reservations shows in no gauge.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use bulkheads::{BlockingConfig, Dispatchers};
/// let d = Dispatchers::builder()
///     .blocking("db", BlockingConfig::threads(1).queue(0))
///     .build()?;
/// let db = d.get("db")?;
/// let slot = db.try_reserve()?;              // the pool's only slot
/// assert!(db.try_reserve().is_err());        // nothing left: rejected at once
/// let rows = slot.run(async { 40 + 2 }).await?; // spent on work run on the pool
/// assert_eq!(rows, 42);
/// # Ok(()) }
/// ```
#[must_use = "a reservation holds a slot until it is spent or dropped"]
pub struct Reservation {
    core: Arc<DispatcherCore>,
    slot: Slot,
    name: Option<Cow<'static, str>>,
    location: Option<&'static Location<'static>>,
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("dispatcher", self.core.name())
            .field("name", &self.name)
            .finish()
    }
}

impl Dispatcher {
    /// Takes a slot of this dispatcher's capacity now, or says why not (queue full, shutting
    /// down), the same decision `spawn*` makes.
    #[track_caller]
    pub fn try_reserve(&self) -> Result<Reservation, DispatchError> {
        // A refusal is this line's; the task, the line that spends the reservation.
        self.try_reserve_for(None, Location::caller())
            .map(Reservation::sited_where_spent)
    }

    /// Takes a slot, waiting up to the dispatcher's `max_wait` for one in FIFO order, the same
    /// decision `run*` makes. Dropping the future leaves the queue.
    #[track_caller]
    pub fn reserve(
        &self,
    ) -> impl Future<Output = Result<Reservation, DispatchError>> + Send + 'static {
        let reserving = self.reserve_for(None, Location::caller());
        async move { reserving.await.map(Reservation::sited_where_spent) }
    }

    /// [`try_reserve`](Self::try_reserve) on a caller's behalf, for libraries that reserve
    /// slots for their users (a tower layer): the task the reservation is spent on is named
    /// `name` and spawned at `location` (as with [`Reservation::named`] and
    /// [`Reservation::at`]), and so is a refusal wherever it is reported as a task (a metrics
    /// recorder that panics while counting it reaches the root failure handler as that task's
    /// failure).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let d = bulkheads::Dispatchers::builder()
    /// #     .blocking("db", bulkheads::BlockingConfig::threads(1).queue(0)).build()?;
    /// # let db = d.get("db")?;
    /// let site = std::panic::Location::caller(); // in a library: where its user built it
    /// let slot = db.try_reserve_for(Some("GET /rows".into()), site)?;
    /// assert!(db.try_reserve_for(Some("GET /rows".into()), site).unwrap_err().is_rejected());
    /// let err = slot.spawn(async { panic!("no rows") }).await.unwrap_err();
    /// assert!(err.to_string().starts_with("task 'GET /rows'"));
    /// # Ok(()) }
    /// ```
    pub fn try_reserve_for(
        &self,
        name: Option<Cow<'static, str>>,
        location: &'static Location<'static>,
    ) -> Result<Reservation, DispatchError> {
        let core = self.core.clone();
        // A task's identity is made when the slot is spent; a refusal needs one now, to be
        // counted and logged.
        match core.admission.try_admit() {
            Ok(slot) => Ok(Reservation::new(core, slot, name, location)),
            Err(reason) => {
                let meta = core.meta(name, location);
                core.accounts.rejected(&meta.info, &reason);
                Err(core.rejection(reason))
            }
        }
    }

    /// [`reserve`](Self::reserve) on a caller's behalf: while it waits for room (in dumps,
    /// as `waiting for admission`), when it is refused, and as the task the reservation is
    /// spent on, it is a task named `name` spawned at `location`. See
    /// [`try_reserve_for`](Self::try_reserve_for).
    pub fn reserve_for(
        &self,
        name: Option<Cow<'static, str>>,
        location: &'static Location<'static>,
    ) -> impl Future<Output = Result<Reservation, DispatchError>> + Send + 'static {
        let core = self.core.clone();
        async move {
            if let Ok(slot) = core.admission.try_admit() {
                return Ok(Reservation::new(core, slot, name, location));
            }
            let meta = core.meta(name.clone(), location);
            let slot = core
                .admit(&meta, false)
                .await
                .map_err(|reason| core.rejection(reason))?;
            Ok(Reservation::new(core, slot, name, location))
        }
    }
}

impl Reservation {
    fn new(
        core: Arc<DispatcherCore>,
        slot: Slot,
        name: Option<Cow<'static, str>>,
        location: &'static Location<'static>,
    ) -> Self {
        Reservation {
            core,
            slot,
            name,
            location: Some(location),
        }
    }

    /// The task's spawn site will be the line that spends the reservation.
    fn sited_where_spent(mut self) -> Self {
        self.location = None;
        self
    }

    /// Records `location` as the spawn site of the task the reservation will be spent on
    /// (shown in errors, failures and dumps), instead of the line that spends it. For
    /// libraries that spend reservations on their users' behalf, such as a tower layer, with
    /// the user's `Location::caller()`.
    pub fn at(mut self, location: &'static Location<'static>) -> Self {
        self.location = Some(location);
        self
    }

    /// Names the task the reservation will be spent on.
    pub fn named(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The dispatcher the slot belongs to.
    pub fn dispatcher(&self) -> &str {
        self.core.name()
    }

    /// Spawns `fut` on the dispatcher in the reserved slot, as
    /// [`Dispatcher::spawn`] would once admitted.
    #[track_caller]
    pub fn spawn<F>(self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let location = self.location.unwrap_or(Location::caller());
        let meta = self.core.meta(self.name, location);
        let (id, task) = self.core.spawn(meta, WorkKind::Async, fut, self.slot);
        JoinHandle::attached(id, task)
    }

    /// Runs `fut` on the dispatcher in the reserved slot and awaits it, as
    /// [`Dispatcher::run`] would once admitted: on a blocking pool the future is driven on a
    /// pool thread. Dropping the returned [`Running`] cancels the work; past the dispatcher's
    /// queue deadline, work not yet started is rejected.
    #[track_caller]
    pub fn run<F>(self, fut: F) -> Running<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let timer = self.core.shared.control.clone();
        Running::new(self.spawn(fut), &timer)
    }

    /// Runs `fut` in the caller's own task, counted as a task of the dispatcher: it holds the
    /// reserved slot (and passes the dispatcher's in-flight gate, if it has one) until it ends,
    /// and shows in its `Stats` and metrics, but runs wherever the caller is polled. For async
    /// work that only needs the bulkhead's admission, not its threads. Dropping the returned
    /// [`Running`] cancels the work.
    #[track_caller]
    pub fn run_here<F>(self, fut: F) -> Running<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let location = self.location.unwrap_or(Location::caller());
        let meta = self.core.meta(self.name, location);
        let ((id, task), runner) = self.core.spawn_here(meta, fut, self.slot);
        Running::here(
            JoinHandle::attached(id, task),
            Box::pin(runner),
            &self.core.shared.control,
        )
    }
}
