//! An ordered queue of timer events, for runtimes.
//!
//! Events come out in deadline order, and events with equal deadlines in the
//! order they were scheduled. A runtime that fires timers from independent
//! tasks can deliver them out of order (the original foca's users met this as
//! "Probe cycle finished without running its full course"); this queue is the
//! one place that gets it right, and every driver uses it.
//!
//! ```
//! use core::time::Duration;
//! use foca_core::TimerQueue;
//!
//! let mut q = TimerQueue::new();
//! q.schedule(Duration::from_secs(2), "b");
//! q.schedule(Duration::from_secs(1), "a");
//! q.schedule(Duration::from_secs(2), "c");
//! assert_eq!(q.next_deadline(), Some(Duration::from_secs(1)));
//! assert_eq!(q.pop_due(Duration::from_secs(1)), Some("a"));
//! assert_eq!(q.pop_due(Duration::from_secs(1)), None);
//! assert_eq!(q.pop_due(Duration::from_secs(5)), Some("b"));
//! assert_eq!(q.pop_due(Duration::from_secs(5)), Some("c"));
//! ```

use alloc::collections::BinaryHeap;
use core::cmp::Ordering;
use core::time::Duration;

struct Scheduled<E> {
    deadline: Duration,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Scheduled<E> {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline && self.seq == other.seq
    }
}

impl<E> Eq for Scheduled<E> {}

impl<E> PartialOrd for Scheduled<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Scheduled<E> {
    /// Reversed, so the max-heap pops the earliest deadline first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .deadline
            .cmp(&self.deadline)
            .then(other.seq.cmp(&self.seq))
    }
}

/// Timer events ordered by deadline, then by scheduling order.
///
/// Deadlines are [`Duration`]s since an origin the runtime picks (its start,
/// typically): the core has no clock type of its own.
pub struct TimerQueue<E> {
    heap: BinaryHeap<Scheduled<E>>,
    seq: u64,
}

impl<E> Default for TimerQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> TimerQueue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// Schedules `event` at `deadline`.
    pub fn schedule(&mut self, deadline: Duration, event: E) {
        self.heap.push(Scheduled {
            deadline,
            seq: self.seq,
            event,
        });
        self.seq += 1;
    }

    /// The earliest deadline, if any event is scheduled.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.heap.peek().map(|s| s.deadline)
    }

    /// Removes and returns the earliest event due at `now`.
    pub fn pop_due(&mut self, now: Duration) -> Option<E> {
        if self.heap.peek()?.deadline <= now {
            self.heap.pop().map(|s| s.event)
        } else {
            None
        }
    }

    /// Starts loading the earliest event (a cache hint for the simulator).
    #[cfg(feature = "sim")]
    pub(crate) fn warm(&self) {
        crate::sim::prefetch(self.heap.as_slice().as_ptr());
    }

    /// Number of scheduled events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no event is scheduled.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Removes the earliest event if `matches` accepts it; returns whether
    /// it did. `O(log n)`: withdrawing a timer that is next due (an acked
    /// probe's indirect stage, usually) costs no scan.
    ///
    /// ```
    /// use core::time::Duration;
    /// use foca_core::TimerQueue;
    ///
    /// let mut q = TimerQueue::new();
    /// q.schedule(Duration::from_secs(1), "a");
    /// q.schedule(Duration::from_secs(2), "b");
    /// assert!(!q.cancel_next(|e| *e == "b"));
    /// assert!(q.cancel_next(|e| *e == "a"));
    /// assert_eq!(q.next_deadline(), Some(Duration::from_secs(2)));
    /// ```
    pub fn cancel_next(&mut self, matches: impl FnOnce(&E) -> bool) -> bool {
        match self.heap.peek_mut() {
            Some(top) if matches(&top.event) => {
                alloc::collections::binary_heap::PeekMut::pop(top);
                true
            }
            _ => false,
        }
    }

    /// Removes the scheduled events `matches` accepts; returns how many.
    /// `O(n)`: meant for the few timers one member has pending.
    pub fn cancel(&mut self, mut matches: impl FnMut(&E) -> bool) -> usize {
        let before = self.heap.len();
        self.heap.retain(|s| !matches(&s.event));
        before - self.heap.len()
    }

    /// Drops every scheduled event.
    pub fn clear(&mut self) {
        self.heap.clear();
    }
}
