//! The dissemination queue ("infection-style dissemination", SWIM §4.1).
//!
//! Every update is sent a limited number of times, fewest-sent first, riding
//! on whatever datagrams the member sends anyway. Items are kept encoded, so
//! filling a datagram is a copy and an item's size is known when it is
//! queued: an item that could never fit in a datagram is refused right then.
//!
//! Costs: insert, invalidate and removal are `O(log n)`; filling a datagram is
//! `O(m log n)` for the `m` items it looks at (the ones it takes, plus at most
//! [`MAX_SKIPS`] that did not fit or were filtered out), never a sort of the
//! whole queue. The queue has a bound; when full, the item that was sent most
//! is dropped and counted.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::cmp::Reverse;

/// How many unsuitable items one fill may pass over before it stops looking.
pub(crate) const MAX_SKIPS: usize = 32;

/// Position in the send order: fewest transmissions first, newest first.
type Order = (u32, Reverse<u64>);

struct Entry<K, V> {
    key: K,
    value: V,
    data: Vec<u8>,
}

/// A bounded queue of encoded items, keyed so that news about one thing
/// replaces older news about it.
pub(crate) struct Backlog<K, V> {
    by_key: BTreeMap<K, Order>,
    queue: BTreeMap<Order, Entry<K, V>>,
    next_seq: u64,
    capacity: usize,
    bytes: usize,
    /// Items dropped because the queue was full.
    pub(crate) dropped: u64,
}

/// Why an item was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A queued item with the same key is current and the new one is not.
    Stale,
}

impl<K: Ord + Clone, V> Backlog<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            by_key: BTreeMap::new(),
            queue: BTreeMap::new(),
            next_seq: 0,
            capacity: capacity.max(1),
            bytes: 0,
            dropped: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        self.enforce_capacity();
    }

    /// The value queued under `key`, if any.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        let order = self.by_key.get(key)?;
        self.queue.get(order).map(|e| &e.value)
    }

    /// Queues `data` under `key`, replacing the item queued under the same key
    /// if `replaces(new, old)` says so. Returns how many items were dropped to
    /// stay within the bound.
    pub(crate) fn insert(
        &mut self,
        key: K,
        value: V,
        data: Vec<u8>,
        replaces: impl FnOnce(&V, &V) -> bool,
    ) -> Result<(), Refused> {
        if let Some(order) = self.by_key.get(&key).copied() {
            let Some(old) = self.queue.get(&order) else {
                debug_assert!(false, "backlog index points at a missing entry");
                return Err(Refused::Stale);
            };
            if !replaces(&value, &old.value) {
                return Err(Refused::Stale);
            }
            self.remove_at(order);
        }
        let order = (0, Reverse(self.next_seq));
        self.next_seq += 1;
        self.bytes += data.len();
        self.by_key.insert(key.clone(), order);
        self.queue.insert(order, Entry { key, value, data });
        self.enforce_capacity();
        Ok(())
    }

    fn enforce_capacity(&mut self) {
        while self.queue.len() > self.capacity {
            // The last in send order: sent most, and oldest among those.
            if let Some((order, _)) = self.queue.last_key_value() {
                let order = *order;
                self.remove_at(order);
                self.dropped += 1;
            }
        }
    }

    fn remove_at(&mut self, order: Order) -> Option<Entry<K, V>> {
        let entry = self.queue.remove(&order)?;
        self.by_key.remove(&entry.key);
        self.bytes -= entry.data.len();
        Some(entry)
    }

    /// Appends items to `out` while they fit in `budget` bytes, fewest-sent
    /// first, skipping those `accept` refuses. `frame` is the per-item
    /// framing overhead written by `write`. Items sent `limit` times are
    /// retired. Returns (items written, bytes written).
    pub(crate) fn fill(
        &mut self,
        out: &mut Vec<u8>,
        budget: usize,
        frame: usize,
        limit: u32,
        mut accept: impl FnMut(&K, &V, &[u8]) -> bool,
        mut write: impl FnMut(&mut Vec<u8>, &[u8]),
    ) -> (usize, usize) {
        if self.queue.is_empty() {
            // Nothing to retire or send (the common case in a quiet
            // cluster): no tree walks.
            return (0, 0);
        }
        let limit = limit.max(1);
        self.retire(limit);
        let mut remaining = budget;
        let mut taken: Vec<Order> = Vec::new();
        let mut skips = 0;
        let start = out.len();
        for (order, entry) in self.queue.iter() {
            let need = entry.data.len() + frame;
            if need <= remaining && accept(&entry.key, &entry.value, &entry.data) {
                write(out, &entry.data);
                remaining -= need;
                taken.push(*order);
            } else {
                skips += 1;
                if skips > MAX_SKIPS {
                    break;
                }
            }
            if remaining <= frame {
                break;
            }
        }
        for order in &taken {
            if let Some(entry) = self.remove_at(*order) {
                let sent = order.0 + 1;
                if sent < limit {
                    let order = (sent, order.1);
                    self.bytes += entry.data.len();
                    self.by_key.insert(entry.key.clone(), order);
                    self.queue.insert(order, entry);
                }
            }
        }
        (taken.len(), out.len() - start)
    }

    /// Drops items already sent `limit` times (the limit shrinks when the
    /// cluster does). They sit at the end of the send order.
    fn retire(&mut self, limit: u32) {
        while let Some((order, _)) = self.queue.last_key_value() {
            if order.0 < limit {
                break;
            }
            let order = *order;
            self.remove_at(order);
        }
    }

    /// Reads the first items in send order (a cache hint for the
    /// simulator). Changes nothing.
    #[cfg(feature = "sim")]
    pub(crate) fn warm(&self) {
        core::hint::black_box(self.queue.first_key_value().map(|(_, e)| e.data.len()));
    }

    /// Total bytes of the queued items.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn fill_all(b: &mut Backlog<u32, ()>, budget: usize, limit: u32) -> Vec<u8> {
        let mut out = Vec::new();
        b.fill(
            &mut out,
            budget,
            0,
            limit,
            |_, _, _| true,
            |o, d| o.extend_from_slice(d),
        );
        out
    }

    #[test]
    fn fewest_sent_first_and_retired_at_limit() {
        let mut b = Backlog::new(10);
        b.insert(1, (), vec![1], |_, _| true).unwrap();
        assert_eq!(fill_all(&mut b, 10, 2), vec![1]);
        b.insert(2, (), vec![2], |_, _| true).unwrap();
        // 2 was sent 0 times, 1 once: 2 goes first.
        assert_eq!(fill_all(&mut b, 10, 2), vec![2, 1]);
        // 1 reached its limit of 2 and is gone.
        assert_eq!(fill_all(&mut b, 10, 2), vec![2]);
        assert!(b.is_empty());
    }

    #[test]
    fn same_key_replaces_or_is_refused() {
        let mut b: Backlog<u32, u8> = Backlog::new(10);
        b.insert(1, 5, vec![5], |n, o| n > o).unwrap();
        assert_eq!(b.insert(1, 3, vec![3], |n, o| n > o), Err(Refused::Stale));
        b.insert(1, 7, vec![7], |n, o| n > o).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b.get(&1), Some(&7));
        assert_eq!(b.bytes(), 1);
    }

    #[test]
    fn bound_drops_most_sent_and_counts() {
        let mut b = Backlog::new(2);
        b.insert(1, (), vec![1], |_, _| true).unwrap();
        fill_all(&mut b, 10, 5); // 1 sent once
        b.insert(2, (), vec![2], |_, _| true).unwrap();
        b.insert(3, (), vec![3], |_, _| true).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b.dropped, 1);
        assert_eq!(fill_all(&mut b, 10, 5), vec![3, 2]);
    }

    #[test]
    fn budget_is_respected_and_small_items_still_fit() {
        let mut b = Backlog::new(10);
        b.insert(1, (), vec![0; 8], |_, _| true).unwrap();
        b.insert(2, (), vec![0; 3], |_, _| true).unwrap();
        b.insert(3, (), vec![0; 8], |_, _| true).unwrap();
        let mut out = Vec::new();
        let (n, bytes) = b.fill(
            &mut out,
            12,
            1,
            5,
            |_, _, _| true,
            |o, d| {
                o.push(0xff);
                o.extend_from_slice(d)
            },
        );
        // Newest first: item 3 (8 + 1 framing) fits, then nothing else does.
        assert_eq!((n, bytes), (1, 9));
        assert!(out.len() <= 12);
    }
}
