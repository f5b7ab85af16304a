//! Anti-entropy for custom broadcasts.
//!
//! An item's transmissions (see the backlog) go to members not known to
//! hold it, but a transmission can still be lost: to a member that is cut
//! off or crashing and still listed, or to loss. Nothing would send that
//! item again. So once an item leaves the backlog, sent its number of
//! times, every member *keeps* it for [`KEEP_ROUNDS`] of its periodic
//! syncs (its bytes move from the backlog, they are not copied):
//!
//! - a sync request carries the requester's kept items, newest first, as
//!   many as fit after the summary (push);
//! - the answer carries the answerer's kept items that the request did not
//!   (pull): in the `Sync` reply if the tables differ, else in a
//!   `Broadcast` of their own; no answer if none is missing.
//!
//! So a member that missed an item gets it at its own next sync, from
//! whichever member it asks, as long as that member still keeps it. The
//! receiving handler drops what it knows already, and the item is news
//! again for whoever lacked it: it is queued and spreads from there.
//!
//! Items are matched by a hash of their bytes. A newer item with the same
//! key replaces the kept one; at most `max_broadcast_backlog` items are
//! kept (the oldest leaves first). Without `periodic_sync` nothing is kept.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::hash::BuildHasher;

use foldhash::fast::FixedState;

/// How many of this member's periodic syncs a kept item rides on (the
/// sync in which it was kept not counted): on the LAN preset (a sync a
/// member every 30 s) about two minutes.
pub(crate) const KEEP_ROUNDS: u8 = 4;

struct Item {
    data: Vec<u8>,
    hash: u64,
    seq: u64,
    rounds: u8,
}

/// The kept items, by key, and in the order they were kept.
pub(crate) struct Kept<K> {
    by_key: BTreeMap<K, Item>,
    by_seq: BTreeMap<u64, K>,
    next_seq: u64,
    capacity: usize,
    hasher: FixedState,
}

impl<K: Ord + Clone> Kept<K> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            by_key: BTreeMap::new(),
            by_seq: BTreeMap::new(),
            next_seq: 0,
            capacity,
            hasher: FixedState::with_seed(0x6b65_7074),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The hash items are matched by.
    pub(crate) fn hash(&self, data: &[u8]) -> u64 {
        self.hasher.hash_one(data)
    }

    /// Keeps `data` under `key`, replacing what was kept under it; the
    /// oldest items leave beyond the bound.
    pub(crate) fn keep(&mut self, key: K, data: Vec<u8>) {
        if let Some(old) = self.by_key.remove(&key) {
            self.by_seq.remove(&old.seq);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let item = Item {
            hash: self.hash(&data),
            data,
            seq,
            rounds: 0,
        };
        self.by_seq.insert(seq, key.clone());
        self.by_key.insert(key, item);
        self.set_capacity(self.capacity);
    }

    /// Changes the bound; the oldest items leave beyond it.
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        while self.by_key.len() > self.capacity {
            let Some((_, key)) = self.by_seq.pop_first() else {
                return;
            };
            self.by_key.remove(&key);
        }
    }

    /// One periodic sync: items kept for [`KEEP_ROUNDS`] of them leave.
    pub(crate) fn tick(&mut self) {
        let by_seq = &mut self.by_seq;
        self.by_key.retain(|_, item| {
            item.rounds = item.rounds.saturating_add(1);
            let stays = item.rounds <= KEEP_ROUNDS;
            if !stays {
                by_seq.remove(&item.seq);
            }
            stays
        });
    }

    /// The kept items, newest first, with their hashes.
    pub(crate) fn newest_first(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.by_seq.values().rev().filter_map(|key| {
            let item = self.by_key.get(key)?;
            Some((item.data.as_slice(), item.hash))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(k: &Kept<u32>) -> Vec<Vec<u8>> {
        k.newest_first().map(|(d, _)| d.to_vec()).collect()
    }

    #[test]
    fn newest_first_replaced_by_key_and_bounded() {
        let mut k = Kept::new(2);
        k.keep(1, b"a".to_vec());
        k.keep(2, b"b".to_vec());
        assert_eq!(items(&k), [b"b".to_vec(), b"a".to_vec()]);
        k.keep(1, b"a2".to_vec());
        assert_eq!(items(&k), [b"a2".to_vec(), b"b".to_vec()]);
        k.keep(3, b"c".to_vec());
        assert_eq!(items(&k), [b"c".to_vec(), b"a2".to_vec()], "b was oldest");
        assert_eq!(k.len(), 2);
        let hashes: Vec<u64> = k.newest_first().map(|(_, h)| h).collect();
        assert_eq!(hashes, [k.hash(b"c"), k.hash(b"a2")]);
    }

    #[test]
    fn items_leave_after_keep_rounds_syncs() {
        let mut k = Kept::new(8);
        k.keep(1, b"a".to_vec());
        for _ in 0..KEEP_ROUNDS - 1 {
            k.tick();
        }
        k.keep(2, b"b".to_vec());
        k.tick();
        assert_eq!(items(&k), [b"b".to_vec(), b"a".to_vec()]);
        k.tick();
        assert_eq!(items(&k), [b"b".to_vec()]);
        for _ in 0..KEEP_ROUNDS {
            k.tick();
        }
        assert!(k.is_empty());
    }
}
