//! What the simulator measures as it runs: crash detection, false
//! positives, dissemination of tracked updates, view accuracy over time.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

/// A crash and who noticed it when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detection<A> {
    /// The crashed member's address.
    pub member: A,
    /// When it crashed.
    pub crashed_at: Duration,
    /// How many members were running (besides it) when it crashed.
    pub observers: usize,
    /// For each observer that declared it down: how long after the crash.
    pub latencies: Vec<Duration>,
}

impl<A> Detection<A> {
    /// The first member's detection latency.
    pub fn first(&self) -> Option<Duration> {
        self.latencies.iter().min().copied()
    }

    /// When every member running at the crash had detected it, if all did.
    pub fn all(&self) -> Option<Duration> {
        if self.latencies.len() >= self.observers {
            self.latencies.iter().max().copied()
        } else {
            None
        }
    }

    /// The detection latency at percentile `p` (0–100) over the observers
    /// that detected it.
    pub fn percentile(&self, p: u32) -> Option<Duration> {
        let mut v = self.latencies.clone();
        v.sort();
        percentile(&v, p)
    }
}

/// `p`-th percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[Duration], p: u32) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.min(100) as usize;
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// A predicate checked on every member after each of its events, until it
/// holds on all running members: measures how long news takes to reach
/// everyone.
pub(crate) struct Tracker<E> {
    pub(crate) name: String,
    pub(crate) started: Duration,
    pub(crate) check: Box<dyn Fn(&E) -> bool>,
    pub(crate) reached: Vec<Option<Duration>>,
    pub(crate) done: Option<Duration>,
}

/// How a tracked piece of news spread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spread<A> {
    /// The tracker's name.
    pub name: String,
    /// When tracking started.
    pub started: Duration,
    /// Each member (by address, in the order they were added) and when it
    /// first satisfied the predicate, relative to `started`.
    pub reached: Vec<(A, Option<Duration>)>,
    /// When every running member satisfied it, relative to `started`.
    pub all: Option<Duration>,
}

/// One sample of view accuracy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AccuracySample {
    /// When it was taken.
    pub at: Duration,
    /// Mean over running members of the share of the other running members
    /// they see as active, penalised for crashed members they still see as
    /// active: `(seen live - seen crashed) / (running - 1)`, in `0..=1`.
    pub accuracy: f64,
}
