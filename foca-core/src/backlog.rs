//! The dissemination queue ("infection-style dissemination", SWIM §4.1).
//!
//! Every update is sent a limited number of times, fewest-sent first, riding
//! on whatever datagrams the member sends anyway. An item keeps what its
//! [`Stored`] type holds: custom broadcasts keep their bytes, so filling a
//! datagram is a copy; membership updates keep only their size, and are
//! encoded from the member table when sent (the table has the newest record
//! anyway): a queued update takes about 50 bytes instead of 150 (peak RSS of
//! the simulator's `join` at 1,000 members, each member's backlog holding
//! ~1,000 updates: 106 MB, was 203 MB, of which 53 MB is the tables). Either
//! way an item's size is known when it is queued: one that could never fit in
//! a datagram is refused right then.
//!
//! Costs: insert, invalidate and removal are `O(log n)`; filling a datagram is
//! `O(m log n)` for the `m` items it looks at (the ones it takes, plus at most
//! [`MAX_SKIPS`] that did not fit or were filtered out and [`MAX_HELD`] that
//! the destination holds), never a sort of the whole queue. The queue has a
//! bound; when full, the item that was sent most is dropped and counted.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// How many unsuitable items one fill may pass over before it stops looking.
pub(crate) const MAX_SKIPS: usize = 32;

/// How many items the destination holds already ([`Pick::Held`]) one fill
/// may pass over: more than [`MAX_SKIPS`], because on a small cluster most
/// of a long queue can be held by any one member (`versus --scenario
/// queued`, 1,000 broadcasts queued on 6 members: the sender is done in
/// 4.4 periods; 7.2 if held items counted as skips; 4.26 when targets were
/// random, but then 0.8% of deliveries were missing).
pub(crate) const MAX_HELD: usize = 512;

/// Position in the send order: fewest transmissions first, newest first,
/// packed in one word (transmissions in the top 16 bits, the complement of
/// a 48-bit insertion counter below: 2^48 insertions, far beyond any run).
type Order = u64;

const SEQ_BITS: u32 = 48;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;

fn order(sent: u32, seq: u64) -> Order {
    (u64::from(sent.min(0xffff)) << SEQ_BITS) | (SEQ_MASK - (seq & SEQ_MASK))
}

fn sent_of(order: Order) -> u32 {
    (order >> SEQ_BITS) as u32
}

fn seq_of(order: Order) -> u64 {
    SEQ_MASK - (order & SEQ_MASK)
}

/// What a queued item keeps of its bytes.
pub(crate) trait Stored {
    /// The encoded size of the item, without framing.
    fn size(&self) -> usize;
}

/// The bytes themselves.
impl Stored for Vec<u8> {
    fn size(&self) -> usize {
        self.len()
    }
}

/// Only the size: the bytes are written when sent, from elsewhere.
impl Stored for u16 {
    fn size(&self) -> usize {
        usize::from(*self)
    }
}

struct Entry<K, V, D> {
    key: K,
    value: V,
    data: D,
}

/// A bounded queue of items, keyed so that news about one thing replaces
/// older news about it.
pub(crate) struct Backlog<K, V, D: Stored = Vec<u8>> {
    by_key: BTreeMap<K, Order>,
    queue: BTreeMap<Order, Entry<K, V, D>>,
    next_seq: u64,
    capacity: usize,
    bytes: usize,
    /// The key whose item the bound never evicts (this member's own news:
    /// a refutation or a leave cannot be pushed out by a flood of others').
    pinned: Option<K>,
    /// Items dropped because the queue was full.
    pub(crate) dropped: u64,
    /// Items retired (sent their number of times, or held by everyone),
    /// for the caller to take, if asked for (see
    /// [`keep_retired`](Self::keep_retired)).
    retired: Option<Vec<(K, D)>>,
}

/// What a fill does with an item (see [`Backlog::fill`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pick {
    /// Write it, if it fits.
    Send,
    /// Not in this datagram; it stays queued.
    Skip,
    /// Not in this datagram, whose destination holds it already; it stays
    /// queued. Cheaper to pass over than a `Skip`, so more are allowed.
    Held,
    /// Not any more: it is dropped from the queue, as if sent its number
    /// of times (whoever it was for has it already).
    Retire,
}

/// Why an item was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A queued item with the same key is current and the new one is not.
    Stale,
}

impl<K: Ord + Clone, V, D: Stored> Backlog<K, V, D> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            by_key: BTreeMap::new(),
            queue: BTreeMap::new(),
            next_seq: 0,
            capacity: capacity.max(1),
            bytes: 0,
            pinned: None,
            dropped: 0,
            retired: None,
        }
    }

    /// Whether retired items are set aside for
    /// [`drain_retired`](Self::drain_retired) instead of dropped.
    pub(crate) fn keep_retired(&mut self, keep: bool) {
        if !keep {
            self.retired = None;
        } else if self.retired.is_none() {
            self.retired = Some(Vec::new());
        }
    }

    /// The items retired since the last call, oldest first.
    pub(crate) fn drain_retired(&mut self) -> impl Iterator<Item = (K, D)> + '_ {
        self.retired.iter_mut().flat_map(|r| r.drain(..))
    }

    /// Removes the item at `order` because it was sent enough.
    fn retire_at(&mut self, order: Order) {
        if let Some(entry) = self.remove_at(order)
            && let Some(retired) = &mut self.retired
        {
            retired.push((entry.key, entry.data));
        }
    }

    /// Never evicts the item queued under `key` to make room (it still
    /// leaves when sent its number of times).
    pub(crate) fn pin(&mut self, key: K) {
        self.pinned = Some(key);
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
    /// if `replaces(new, old)` says so. Items beyond the bound are dropped
    /// (most sent first) and counted.
    pub(crate) fn insert(
        &mut self,
        key: K,
        value: V,
        data: D,
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
        let order = order(0, self.next_seq);
        self.next_seq += 1;
        self.bytes += data.size();
        self.by_key.insert(key.clone(), order);
        self.queue.insert(order, Entry { key, value, data });
        self.enforce_capacity();
        Ok(())
    }

    fn enforce_capacity(&mut self) {
        while self.queue.len() > self.capacity {
            // The last in send order (sent most, and oldest among those)
            // that is not pinned.
            let pinned = self.pinned.as_ref();
            let victim = self
                .queue
                .iter()
                .rev()
                .take(2)
                .find(|(_, e)| Some(&e.key) != pinned)
                .map(|(order, _)| *order);
            let Some(order) = victim else { return };
            self.remove_at(order);
            self.dropped += 1;
        }
    }

    fn remove_at(&mut self, order: Order) -> Option<Entry<K, V, D>> {
        let entry = self.queue.remove(&order)?;
        self.by_key.remove(&entry.key);
        self.bytes -= entry.data.size();
        Some(entry)
    }

    /// Appends items to `out` while they fit in `budget` bytes, fewest-sent
    /// first, as `pick` says of each (see [`Pick`]). `write` appends an item
    /// with its framing (`frame` bytes expected), may note in its value that
    /// it was sent, and returns `false` if the item is gone (its source no
    /// longer has it; then it is dropped and what was written is undone).
    /// Items sent `limit` times are retired. Returns (items written, bytes
    /// written).
    pub(crate) fn fill(
        &mut self,
        out: &mut Vec<u8>,
        budget: usize,
        frame: usize,
        limit: u32,
        mut pick: impl FnMut(&K, &V, &D) -> Pick,
        mut write: impl FnMut(&mut Vec<u8>, &K, &mut V, &D) -> bool,
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
        let mut gone: Vec<Order> = Vec::new();
        let mut retiring: Vec<Order> = Vec::new();
        let (mut skips, mut held) = (0, 0);
        let start = out.len();
        for (order, entry) in self.queue.iter_mut() {
            let need = entry.data.size() + frame;
            let mut fits = false;
            let choice = if need <= remaining {
                pick(&entry.key, &entry.value, &entry.data)
            } else {
                Pick::Skip
            };
            if choice == Pick::Retire {
                retiring.push(*order);
                continue;
            }
            if choice == Pick::Held {
                held += 1;
                if held > MAX_HELD {
                    break;
                }
                continue;
            }
            if choice == Pick::Send {
                let before = out.len();
                if !write(out, &entry.key, &mut entry.value, &entry.data) {
                    out.truncate(before);
                    gone.push(*order);
                    continue;
                }
                // The bytes may differ from the size kept at insertion
                // (a record that changed since): check what was written.
                let wrote = out.len() - before;
                if wrote <= remaining {
                    remaining -= wrote;
                    taken.push(*order);
                    fits = true;
                } else {
                    out.truncate(before);
                }
            }
            if !fits {
                skips += 1;
                if skips > MAX_SKIPS {
                    break;
                }
            }
            if remaining <= frame {
                break;
            }
        }
        for order in gone {
            self.remove_at(order);
        }
        for order in retiring {
            self.retire_at(order);
        }
        for &was in &taken {
            let sent = sent_of(was) + 1;
            if sent >= limit {
                self.retire_at(was);
                continue;
            }
            // Moves up one step in the send order, keeping its sequence.
            let Some(entry) = self.queue.remove(&was) else {
                continue;
            };
            let moved = order(sent, seq_of(was));
            if let Some(at) = self.by_key.get_mut(&entry.key) {
                *at = moved;
            }
            self.queue.insert(moved, entry);
        }
        (taken.len(), out.len() - start)
    }

    /// Drops items already sent `limit` times (the limit shrinks when the
    /// cluster does). They sit at the end of the send order.
    fn retire(&mut self, limit: u32) {
        while let Some((order, _)) = self.queue.last_key_value() {
            if sent_of(*order) < limit {
                break;
            }
            let order = *order;
            self.retire_at(order);
        }
    }

    /// Total bytes of the queued items.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether some queued item was sent fewer than `n` times (the first
    /// in send order is sent fewest).
    pub(crate) fn has_sent_fewer_than(&self, n: u32) -> bool {
        self.queue
            .first_key_value()
            .is_some_and(|(order, _)| sent_of(*order) < n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn young_news_is_what_was_sent_fewer_than_n_times() {
        let mut b: Backlog<u32, ()> = Backlog::new(8);
        assert!(!b.has_sent_fewer_than(3));
        b.insert(1, (), vec![1; 4], |_, _| true).unwrap();
        assert!(b.has_sent_fewer_than(1));
        for sent in 1..=3 {
            fill_all(&mut b, 100, 10);
            assert_eq!(b.has_sent_fewer_than(3), sent < 3, "sent {sent}");
        }
        b.insert(2, (), vec![2; 4], |_, _| true).unwrap();
        assert!(b.has_sent_fewer_than(1), "a new item is young");
    }

    fn fill_all(b: &mut Backlog<u32, ()>, budget: usize, limit: u32) -> Vec<u8> {
        let mut out = Vec::new();
        b.fill(
            &mut out,
            budget,
            0,
            limit,
            |_, _, _| Pick::Send,
            |o, _, _, d| {
                o.extend_from_slice(d);
                true
            },
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
    fn skipped_items_stay_and_retired_items_go_uncounted() {
        // The value counts the sends that `write` noted.
        let mut b: Backlog<u32, u32> = Backlog::new(10);
        for k in 1..=4 {
            b.insert(k, 0, vec![k as u8], |_, _| true).unwrap();
        }
        let mut out = Vec::new();
        let (n, _) = b.fill(
            &mut out,
            10,
            0,
            5,
            |k, _, _| match k {
                1 => Pick::Retire,
                2 => Pick::Skip,
                4 => Pick::Held,
                _ => Pick::Send,
            },
            |o, _, v, d| {
                *v += 1;
                o.extend_from_slice(d);
                true
            },
        );
        assert_eq!((n, out), (1, vec![3]));
        assert_eq!(
            (b.get(&1), b.get(&2), b.get(&3)),
            (None, Some(&0), Some(&1))
        );
        assert_eq!(b.dropped, 0, "retired, not evicted");
    }

    #[test]
    fn retired_items_are_set_aside_only_when_asked() {
        let mut b = Backlog::new(10);
        b.insert(1, (), vec![1], |_, _| true).unwrap();
        fill_all(&mut b, 10, 1);
        assert_eq!(b.drain_retired().count(), 0, "not asked: dropped");
        b.keep_retired(true);
        b.insert(2, (), vec![2], |_, _| true).unwrap();
        b.insert(3, (), vec![3], |_, _| true).unwrap();
        fill_all(&mut b, 10, 1);
        let retired: Vec<_> = b.drain_retired().collect();
        assert_eq!(retired, vec![(3, vec![3]), (2, vec![2])]);
        assert_eq!(b.drain_retired().count(), 0, "drained");
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
    fn the_pinned_item_is_never_evicted() {
        let mut b = Backlog::new(3);
        b.pin(0);
        b.insert(0, (), vec![0], |_, _| true).unwrap();
        // Sent once: the first to go in send order, were it not pinned.
        fill_all(&mut b, 10, 10);
        for k in 1..100 {
            b.insert(k, (), vec![1], |_, _| true).unwrap();
            assert!(b.len() <= 3);
        }
        assert_eq!(b.get(&0), Some(&()));
        assert_eq!(b.dropped, 97);
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
            |_, _, _| Pick::Send,
            |o, _, _, d| {
                o.push(0xff);
                o.extend_from_slice(d);
                true
            },
        );
        // Newest first: item 3 (8 + 1 framing) fits, then nothing else does.
        assert_eq!((n, bytes), (1, 9));
        assert!(out.len() <= 12);
    }

    #[test]
    fn size_only_items_are_written_by_the_caller_and_dropped_when_gone() {
        // Only sizes are kept: the source of the bytes is `table`.
        let mut table = alloc::collections::BTreeMap::from([(1u32, vec![1u8; 3]), (2, vec![2; 3])]);
        let mut b: Backlog<u32, (), u16> = Backlog::new(10);
        b.insert(1, (), 3, |_, _| true).unwrap();
        b.insert(2, (), 3, |_, _| true).unwrap();
        assert_eq!(b.bytes(), 6);
        let fill = |b: &mut Backlog<u32, (), u16>,
                    table: &alloc::collections::BTreeMap<u32, Vec<u8>>,
                    budget| {
            let mut out = Vec::new();
            let got = b.fill(
                &mut out,
                budget,
                0,
                5,
                |_, _, _| Pick::Send,
                |o, k, _, _| {
                    table.get(k).is_some_and(|d| {
                        o.extend_from_slice(d);
                        true
                    })
                },
            );
            (got, out)
        };
        assert_eq!(fill(&mut b, &table, 10), ((2, 6), vec![2, 2, 2, 1, 1, 1]));
        // Item 2 grew since it was queued: it no longer fits 4 bytes, and
        // the bytes tried are undone; item 1 still goes.
        table.insert(2, vec![2; 5]);
        assert_eq!(fill(&mut b, &table, 4), ((1, 3), vec![1, 1, 1]));
        // Item 1 left the table: it is dropped, not sent, not kept.
        table.remove(&1);
        assert_eq!(fill(&mut b, &table, 10), ((1, 5), vec![2; 5]));
        assert_eq!(b.len(), 1);
        assert_eq!(b.dropped, 0);
    }
}
