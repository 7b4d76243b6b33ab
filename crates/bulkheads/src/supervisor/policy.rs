//! What a supervisor decides, as plain data: which children restart together ([`Strategy`]),
//! which endings restart a child ([`Restart`]), how many restarts are too many
//! ([`Intensity`]) and how long to wait before one ([`Backoff`]). No clocks, tasks or
//! channels here: the mechanism that starts, watches and stops children is `run.rs`'s, as
//! Erlang's `supervisor.erl` keeps its flags apart from the loop that applies them.

use std::ops::Range;
use std::time::Duration;

/// Which children a supervisor restarts when one of them must be restarted (OTP's strategies).
///
/// Children are kept in the order they were declared (their start order).
///
/// | strategy | child *k* of *n* is restarted: the supervisor restarts |
/// |---|---|
/// | `OneForOne` | *k* only |
/// | `OneForAll` | every child: the others are stopped in reverse start order, then all started in start order |
/// | `RestForOne` | *k* and the children declared after it: those are stopped in reverse order, then *k..n* started in order |
///
/// In a group restart, [`Restart::Temporary`] children that get stopped are removed, not
/// started again; every other child of the group is started again, including a
/// [`Restart::Transient`] one that had ended normally (as OTP does).
///
/// ```
/// use bulkheads::Strategy;
/// assert_eq!(Strategy::default(), Strategy::OneForOne);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// Restart only the child that ended. Use when children are independent.
    #[default]
    OneForOne,
    /// Restart every child. Use when each depends on all the others.
    OneForAll,
    /// Restart the child that ended and every child declared after it. Use when later
    /// children depend on earlier ones.
    RestForOne,
}

impl Strategy {
    /// The children (indices in start order) restarted together when child `ended` of `len`
    /// children is restarted.
    pub(crate) fn group(self, ended: usize, len: usize) -> Range<usize> {
        match self {
            Strategy::OneForOne => ended..ended + 1,
            Strategy::OneForAll => 0..len,
            Strategy::RestForOne => ended..len,
        }
    }
}

/// When a child that ended is restarted (OTP's restart types).
///
/// A *failure* is a panic (in the child's future or in the factory that makes it), an `Err`
/// returned by the child, or its task being refused by its dispatcher (queue full, queue
/// deadline). A normal end is `()` or `Ok(_)`.
///
/// ```
/// use bulkheads::Restart;
/// assert!(Restart::Permanent.restarts_after(false));
/// assert!(Restart::Transient.restarts_after(true));
/// assert!(!Restart::Transient.restarts_after(false));
/// assert!(!Restart::Temporary.restarts_after(true));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Restart {
    /// Always restarted, after a failure or a normal end: a service that should never stop.
    #[default]
    Permanent,
    /// Restarted after a failure only; a normal end is final (a group restart of
    /// [`Strategy::OneForAll`] or [`Strategy::RestForOne`] starts it again, as in OTP).
    Transient,
    /// Never restarted: once ended, or stopped by a group restart, it is removed.
    Temporary,
}

impl Restart {
    /// True when a child of this type that ended (`failed` or normally) is restarted.
    pub fn restarts_after(self, failed: bool) -> bool {
        match self {
            Restart::Permanent => true,
            Restart::Transient => failed,
            Restart::Temporary => false,
        }
    }
}

/// How many restarts a supervisor may make within a period before it gives up (OTP's
/// `intensity` and `period`). Defaults to 1 restart in 5 seconds, as OTP's.
///
/// Each restart decision counts once, whatever the number of children it restarts (a
/// [`Strategy::OneForAll`] group restart is one). When a failure would make more than
/// `max_restarts` restarts within the last `period`, the supervisor stops every child and
/// fails instead. `max_restarts` 0 allows none: the first restart gives up. A zero period is
/// refused when the supervisor starts.
///
/// ```
/// use bulkheads::Intensity;
/// use std::time::Duration;
/// let i = Intensity::default();
/// assert_eq!((i.max_restarts, i.period), (1, Duration::from_secs(5)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Intensity {
    /// Restarts allowed within `period`.
    pub max_restarts: u32,
    /// The sliding window the restarts are counted in.
    pub period: Duration,
}

impl Intensity {
    /// At most `max_restarts` restarts within any `period`.
    pub fn new(max_restarts: u32, period: Duration) -> Self {
        Intensity {
            max_restarts,
            period,
        }
    }

    /// Why this intensity cannot be used, if it cannot.
    pub(crate) fn problem(&self) -> Option<String> {
        self.period
            .is_zero()
            .then(|| "the intensity period must be above zero".to_owned())
    }
}

impl Default for Intensity {
    fn default() -> Self {
        Intensity::new(1, Duration::from_secs(5))
    }
}

/// How long a supervisor waits before a restart: exponential backoff with jitter, as Pekko's
/// `BackoffSupervisor` (`minBackoff`, `maxBackoff`, `randomFactor`, auto reset). Without one
/// (the default), children are restarted at once.
///
/// The *n*-th consecutive restart of a child (from 0) waits
/// `min(max, min × factorⁿ) × (1 + r × jitter)`, `r` uniform in `[0, 1)`; like Pekko's, the
/// jitter is applied after the cap, so a delay can exceed `max` by up to `jitter × max`. The
/// count goes back to 0 once the child has run for `reset_after` (default: `min`, as Pekko's)
/// without failing. In a group restart, the child whose ending caused it sets the delay.
///
/// ```
/// use bulkheads::Backoff;
/// use std::time::Duration;
/// let b = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1));
/// assert_eq!(b.delay(0, 0.5), Duration::from_millis(100));
/// assert_eq!(b.delay(2, 0.5), Duration::from_millis(400));
/// assert_eq!(b.delay(9, 0.5), Duration::from_secs(1)); // capped
/// let j = b.jitter(0.2);
/// assert_eq!(j.delay(0, 0.5), Duration::from_millis(110)); // 100 ms × (1 + 0.5 × 0.2)
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    factor: f64,
    jitter: f64,
    reset_after: Duration,
}

impl Backoff {
    /// Delays from `min`, doubling up to `max`, without jitter, reset after `min` of quiet.
    /// `min` must be above zero and at most `max` (checked when the supervisor starts).
    pub fn exponential(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            factor: 2.0,
            jitter: 0.0,
            reset_after: min,
        }
    }

    /// Multiplies each delay by `factor` (at least 1; default 2).
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// Adds up to `jitter` × the delay at random (between 0 and 1; default 0), so that
    /// children failing together do not restart in lockstep.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Resets the delay to `min` once a child has run this long without failing (default:
    /// `min`).
    pub fn reset_after(mut self, quiet: Duration) -> Self {
        self.reset_after = quiet;
        self
    }

    /// The quiet period after which the delay is reset.
    pub fn reset_period(&self) -> Duration {
        self.reset_after
    }

    /// The delay before restart number `attempt` (0 for the first after a reset), given `r`
    /// drawn uniformly from `[0, 1)`.
    pub fn delay(&self, attempt: u32, r: f64) -> Duration {
        let grown = self.min.as_secs_f64() * self.factor.powi(attempt.min(i32::MAX as u32) as i32);
        let capped = if grown.is_finite() {
            grown.min(self.max.as_secs_f64())
        } else {
            self.max.as_secs_f64()
        };
        let jittered = capped * (1.0 + r.clamp(0.0, 1.0) * self.jitter);
        Duration::try_from_secs_f64(jittered).unwrap_or(Duration::MAX)
    }

    /// Why this backoff cannot be used, if it cannot.
    pub(crate) fn problem(&self) -> Option<String> {
        if self.min.is_zero() {
            Some("the minimum backoff must be above zero".to_owned())
        } else if self.max < self.min {
            Some(format!(
                "the maximum backoff ({:?}) is below the minimum ({:?})",
                self.max, self.min
            ))
        } else if !(self.factor.is_finite() && self.factor >= 1.0) {
            Some(format!(
                "the backoff factor must be at least 1, got {}",
                self.factor
            ))
        } else if !(0.0..=1.0).contains(&self.jitter) {
            Some(format!(
                "the backoff jitter must be between 0 and 1, got {}",
                self.jitter
            ))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_follow_otp() {
        assert_eq!(Strategy::OneForOne.group(1, 4), 1..2);
        assert_eq!(Strategy::OneForAll.group(1, 4), 0..4);
        assert_eq!(Strategy::RestForOne.group(1, 4), 1..4);
        assert_eq!(Strategy::RestForOne.group(3, 4), 3..4);
    }

    #[test]
    fn backoff_grows_caps_and_checks() {
        let ms = Duration::from_millis;
        let b = Backoff::exponential(ms(10), ms(50)).factor(3.0);
        assert_eq!(b.delay(1, 0.0), ms(30));
        assert_eq!(b.delay(u32::MAX, 0.0), ms(50));
        assert_eq!(b.jitter(1.0).delay(0, 0.999_999).as_millis(), 19);
        assert!(b.problem().is_none());
        assert!(Backoff::exponential(ms(0), ms(1)).problem().is_some());
        assert!(Backoff::exponential(ms(2), ms(1)).problem().is_some());
        assert!(b.factor(0.5).problem().is_some());
        assert!(b.jitter(f64::NAN).problem().is_some());
        assert!(b.jitter(1.5).problem().is_some());
        assert!(Intensity::new(0, Duration::ZERO).problem().is_some());
    }
}
