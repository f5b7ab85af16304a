//! An ordered queue of timer events with one slot per key, for runtimes.
//!
//! Events come out in deadline order, and events with equal deadlines in the
//! order they were scheduled. Each event sits in a slot named by a key:
//! scheduling under a key that already holds an event replaces it. The
//! protocol's timers have one key per chain (probe, indirect probe, sync,
//! gossip, announce-to-down, rejoin) and one per member and kind
//! (suspicion, removal), see [`TimerKey`](crate::TimerKey): so a queue
//! holds at most a few events plus two per member, whatever the input.
//!
//! A runtime that fires timers from independent tasks can deliver them out
//! of order (the original foca's users met this as "Probe cycle finished
//! without running its full course"); this queue is the one place that gets
//! it right, and the [`Endpoint`](crate::Endpoint) uses it.
//!
//! ```
//! use core::time::Duration;
//! use foca_core::TimerQueue;
//!
//! let mut q = TimerQueue::new();
//! q.schedule(Duration::from_secs(2), 'b', "b");
//! q.schedule(Duration::from_secs(1), 'a', "a");
//! q.schedule(Duration::from_secs(2), 'c', "c");
//! // The same key again: the slot moves, nothing is added.
//! assert_eq!(q.schedule(Duration::from_secs(3), 'b', "b again"), Some("b"));
//! assert_eq!(q.len(), 3);
//! assert_eq!(q.next_deadline(), Some(Duration::from_secs(1)));
//! assert_eq!(q.pop_due(Duration::from_secs(1)), Some("a"));
//! assert_eq!(q.pop_due(Duration::from_secs(1)), None);
//! assert_eq!(q.cancel(&'c'), Some("c"));
//! assert_eq!(q.pop_due(Duration::from_secs(5)), Some("b again"));
//! assert!(q.is_empty());
//! ```

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::time::Duration;

/// When an event is due, and the order it was scheduled in (ties).
type Slot = (Duration, u64);

/// Up to this many events, a queue is one short list scanned linearly
/// (the usual case: a member has a handful of timers, and one small list
/// is a few cache lines); beyond, two ordered maps.
const SMALL: usize = 16;

struct Entry<K, E> {
    slot: Slot,
    key: K,
    event: E,
}

enum Repr<K, E> {
    /// Unordered; `O(n)` operations for `n ≤ SMALL`.
    Small(Vec<Entry<K, E>>),
    /// `O(log n)` operations.
    Large {
        by_key: BTreeMap<K, Slot>,
        due: BTreeMap<Slot, (K, E)>,
    },
}

/// Timer events with one slot per key, ordered by deadline, then by
/// scheduling order. Scheduling, cancelling and taking the next event cost
/// a scan of at most 16 entries while the queue is that small, and
/// `O(log n)` beyond.
///
/// Deadlines are [`Duration`]s since an origin the runtime picks (its start,
/// typically): the core has no clock type of its own.
pub struct TimerQueue<K, E> {
    repr: Repr<K, E>,
    seq: u64,
}

impl<K: Ord + Clone, E> Default for TimerQueue<K, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Ord + Clone, E> TimerQueue<K, E> {
    /// An empty queue.
    pub const fn new() -> Self {
        Self {
            repr: Repr::Small(Vec::new()),
            seq: 0,
        }
    }

    /// Schedules `event` at `deadline` in the slot `key`, replacing the
    /// event that slot held (returned).
    pub fn schedule(&mut self, deadline: Duration, key: K, event: E) -> Option<E> {
        let slot = (deadline, self.seq);
        self.seq += 1;
        match &mut self.repr {
            Repr::Small(entries) => {
                if let Some(e) = entries.iter_mut().find(|e| e.key == key) {
                    e.slot = slot;
                    return Some(core::mem::replace(&mut e.event, event));
                }
                entries.push(Entry { slot, key, event });
                if entries.len() > SMALL {
                    self.grow();
                }
                None
            }
            Repr::Large { by_key, due } => {
                let replaced = match by_key.insert(key.clone(), slot) {
                    Some(old) => due.remove(&old).map(|(_, e)| e),
                    None => None,
                };
                due.insert(slot, (key, event));
                replaced
            }
        }
    }

    /// Moves the entries into ordered maps.
    fn grow(&mut self) {
        let Repr::Small(entries) = &mut self.repr else {
            return;
        };
        let mut by_key = BTreeMap::new();
        let mut due = BTreeMap::new();
        for Entry { slot, key, event } in entries.drain(..) {
            by_key.insert(key.clone(), slot);
            due.insert(slot, (key, event));
        }
        self.repr = Repr::Large { by_key, due };
    }

    /// Moves the entries back into one list once few are left.
    fn shrink(&mut self) {
        let Repr::Large { due, .. } = &mut self.repr else {
            return;
        };
        if due.len() > SMALL / 2 {
            return;
        }
        let entries = core::mem::take(due)
            .into_iter()
            .map(|(slot, (key, event))| Entry { slot, key, event })
            .collect();
        self.repr = Repr::Small(entries);
    }

    /// Empties the slot `key`; returns the event it held.
    pub fn cancel(&mut self, key: &K) -> Option<E> {
        let event = match &mut self.repr {
            Repr::Small(entries) => {
                let i = entries.iter().position(|e| e.key == *key)?;
                return Some(entries.swap_remove(i).event);
            }
            Repr::Large { by_key, due } => {
                let slot = by_key.remove(key)?;
                due.remove(&slot).map(|(_, e)| e)
            }
        };
        self.shrink();
        event
    }

    /// When the event in slot `key` is due, if one is scheduled.
    pub fn deadline_of(&self, key: &K) -> Option<Duration> {
        match &self.repr {
            Repr::Small(entries) => entries.iter().find(|e| e.key == *key).map(|e| e.slot.0),
            Repr::Large { by_key, .. } => by_key.get(key).map(|(at, _)| *at),
        }
    }

    /// The position of the earliest entry of a small queue.
    fn earliest(entries: &[Entry<K, E>]) -> Option<usize> {
        (0..entries.len()).min_by_key(|&i| entries[i].slot)
    }

    /// The earliest deadline, if any event is scheduled.
    pub fn next_deadline(&self) -> Option<Duration> {
        match &self.repr {
            Repr::Small(entries) => entries.iter().map(|e| e.slot.0).min(),
            Repr::Large { due, .. } => due.first_key_value().map(|((at, _), _)| *at),
        }
    }

    /// Removes and returns the earliest event due at `now`.
    pub fn pop_due(&mut self, now: Duration) -> Option<E> {
        let event = match &mut self.repr {
            Repr::Small(entries) => {
                let i = Self::earliest(entries).filter(|&i| entries[i].slot.0 <= now)?;
                return Some(entries.swap_remove(i).event);
            }
            Repr::Large { by_key, due } => {
                let ((at, _), _) = due.first_key_value()?;
                if *at > now {
                    return None;
                }
                let (_, (key, event)) = due.pop_first()?;
                by_key.remove(&key);
                event
            }
        };
        self.shrink();
        Some(event)
    }

    /// Number of scheduled events.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Small(entries) => entries.len(),
            Repr::Large { due, .. } => due.len(),
        }
    }

    /// Whether no event is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every scheduled event.
    pub fn clear(&mut self) {
        self.repr = Repr::Small(Vec::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use rand::rngs::Xoshiro128PlusPlus;
    use rand::{RngExt, SeedableRng};

    /// Against a model (a list of (key, deadline, seq, event)): random
    /// schedules, replacements, cancels and pops agree, and the queue never
    /// holds more events than keys.
    #[test]
    fn agrees_with_a_model() {
        let mut rng = Xoshiro128PlusPlus::seed_from_u64(3);
        let mut q: TimerQueue<u8, u32> = TimerQueue::new();
        let mut model: Vec<(u8, u64, u64, u32)> = Vec::new();
        let mut was_large = false;
        let mut seq = 0;
        let mut now = 0u64;
        for step in 0..20_000u32 {
            match rng.random_range(0..4) {
                0 | 1 => {
                    // Keys over a range wider than the small list, in
                    // phases, so the queue grows past it and shrinks back.
                    let keys = if (step / 2000) % 2 == 0 { 8 } else { 40 };
                    let key = rng.random_range(0..keys);
                    let at = now + rng.random_range(0..50);
                    let expected = model
                        .iter()
                        .position(|e| e.0 == key)
                        .map(|i| model.remove(i).3);
                    let got = q.schedule(Duration::from_nanos(at), key, step);
                    assert_eq!(got, expected);
                    model.push((key, at, seq, step));
                    seq += 1;
                }
                2 => {
                    let key = rng.random_range(0..40u8);
                    let expected = model
                        .iter()
                        .position(|e| e.0 == key)
                        .map(|i| model.remove(i).3);
                    assert_eq!(q.cancel(&key), expected);
                }
                _ => {
                    now += rng.random_range(0..20);
                    let next = model
                        .iter()
                        .enumerate()
                        .filter(|(_, e)| e.1 <= now)
                        .min_by_key(|(_, e)| (e.1, e.2))
                        .map(|(i, _)| i);
                    let expected = next.map(|i| model.remove(i).3);
                    assert_eq!(q.pop_due(Duration::from_nanos(now)), expected);
                }
            }
            assert_eq!(q.len(), model.len());
            assert!(q.len() <= 40);
            was_large |= matches!(q.repr, Repr::Large { .. });
            let next = model.iter().map(|e| e.1).min();
            assert_eq!(q.next_deadline(), next.map(Duration::from_nanos));
        }
        assert!(was_large && matches!(q.repr, Repr::Small(_)) || q.len() > SMALL / 2);
    }
}
