//! A monotonic clock in the form the core wants (feature `std`).
//!
//! The core measures time as a [`Duration`] since an origin the driver
//! picks. Every std driver needs the same mapping from [`Instant`], so it
//! lives here once.

use core::time::Duration;
use std::time::Instant;

/// Maps [`Instant`]s to [`Duration`]s since the clock was created.
///
/// ```
/// use foca_core::Clock;
/// let clock = Clock::new();
/// let a = clock.now();
/// let b = clock.now();
/// assert!(b >= a);
/// assert_eq!(clock.to_duration(clock.origin()), std::time::Duration::ZERO);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    /// The instant this clock counts from.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Time elapsed since the origin.
    pub fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// `instant` as time since the origin (zero for instants before it).
    pub fn to_duration(&self, instant: Instant) -> Duration {
        instant.saturating_duration_since(self.origin)
    }

    /// A deadline from [`Endpoint::next_deadline`](crate::Endpoint::next_deadline)
    /// as an [`Instant`], to sleep until.
    pub fn to_instant(&self, deadline: Duration) -> Instant {
        self.origin.checked_add(deadline).unwrap_or(self.origin)
    }
}
