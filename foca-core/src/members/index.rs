//! The member table's lookup index: address hash → position in the table.
//!
//! Open addressing with linear probing over one `Vec<u32>`, four bytes per
//! slot and nothing else (no control bytes). A slot holds a position in its
//! low bits and, in the bits a position does not need, a tag taken from the
//! top of the address's hash:
//!
//! ```text
//! slot = tag << shift | position        (shift = log2(slots), EMPTY = u32::MAX)
//! ```
//!
//! A lookup reads the run of slots starting at the hash's home slot (one
//! cache line, nearly always) and compares a member's address only where
//! the tag matches, so it costs one cache miss for the index and one for the
//! member it finds: the table is large and visited rarely, and misses are
//! what a lookup costs. `EMPTY` is never a valid slot: positions are below
//! the number of members, itself below the number of slots.
//!
//! The index is at most 13/16 full; it doubles beyond. Removal shifts the
//! following run back (no tombstones), which needs the hash of the members
//! it moves: the caller supplies it. Nothing ever iterates the index, so its
//! layout cannot influence any decision of the protocol.

use alloc::vec::Vec;

const EMPTY: u32 = u32::MAX;

pub(super) struct Index {
    slots: Vec<u32>,
    len: usize,
    /// `log2(slots.len())`: the bits a position takes.
    shift: u32,
}

impl Index {
    pub(super) const fn new() -> Self {
        Self {
            slots: Vec::new(),
            len: 0,
            shift: 0,
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn allocation_size(&self) -> usize {
        self.slots.capacity() * core::mem::size_of::<u32>()
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    fn home(&self, hash: u64) -> usize {
        (hash as usize) & self.mask()
    }

    /// The tag of `hash`, already shifted into place.
    fn tag(&self, hash: u64) -> u32 {
        // The top `32 - shift` bits of the hash (none when shift is 32).
        let bits = 32 - self.shift;
        let top = hash.checked_shr(64 - bits).unwrap_or(0) as u32;
        top.checked_shl(self.shift).unwrap_or(0)
    }

    fn tag_of_slot(&self, slot: u32) -> u32 {
        slot & !self.pos_mask()
    }

    fn pos_mask(&self) -> u32 {
        (1u32.checked_shl(self.shift).unwrap_or(0)).wrapping_sub(1)
    }

    /// Whether one more entry would pass the 13/16 load bound.
    pub(super) fn needs_room_for(&self, len: usize) -> bool {
        len * 16 > self.slots.len() * 13
    }

    /// Empties the index and sizes it for `len` entries (it allocates
    /// nothing for none).
    pub(super) fn reset(&mut self, len: usize) {
        let mut slots = 0usize;
        if len > 0 {
            slots = 16;
            while len * 16 > slots * 13 {
                slots *= 2;
            }
        }
        self.slots.clear();
        if self.slots.capacity() != slots {
            self.slots = Vec::new();
            self.slots.reserve_exact(slots);
        }
        self.slots.resize(slots, EMPTY);
        self.shift = slots.trailing_zeros().min(32);
        self.len = 0;
    }

    /// The position whose tag matches `hash` and that `is` accepts.
    pub(super) fn find(&self, hash: u64, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask();
        let tag = self.tag(hash);
        let pos_mask = self.pos_mask();
        let mut i = self.home(hash);
        loop {
            let slot = self.slots[i];
            if slot == EMPTY {
                return None;
            }
            if slot & !pos_mask == tag && is(slot & pos_mask) {
                return Some(slot & pos_mask);
            }
            i = (i + 1) & mask;
        }
    }

    /// The slot holding position `pos` of an entry hashed `hash`.
    fn slot_of(&self, hash: u64, pos: u32) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask();
        let want = self.tag(hash) | pos;
        let mut i = self.home(hash);
        loop {
            let slot = self.slots[i];
            if slot == want {
                return Some(i);
            }
            if slot == EMPTY {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds `pos`, an entry not indexed yet. The caller has made room
    /// ([`Index::needs_room_for`], [`Index::reset`]).
    pub(super) fn insert(&mut self, hash: u64, pos: u32) {
        debug_assert!(!self.needs_room_for(self.len + 1));
        debug_assert!(pos & !self.pos_mask() == 0);
        let mask = self.mask();
        let mut i = self.home(hash);
        while self.slots[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = self.tag(hash) | pos;
        self.len += 1;
    }

    /// Exchanges the positions of two entries (hashes `ha`, `hb`, at `a`
    /// and `b`).
    pub(super) fn swap(&mut self, ha: u64, a: u32, hb: u64, b: u32) {
        match (self.slot_of(ha, a), self.slot_of(hb, b)) {
            (Some(sa), Some(sb)) => {
                self.slots[sa] = self.tag_of_slot(self.slots[sa]) | b;
                self.slots[sb] = self.tag_of_slot(self.slots[sb]) | a;
            }
            _ => debug_assert!(false, "member index lost position {a} or {b}"),
        }
    }

    /// Removes the entry at `pos` (hash `hash`); `hash_of(p)` gives the hash
    /// of the entry at position `p`, for the entries shifted back.
    pub(super) fn remove(&mut self, hash: u64, pos: u32, hash_of: impl Fn(u32) -> u64) {
        let Some(mut hole) = self.slot_of(hash, pos) else {
            debug_assert!(false, "member index lost position {pos}");
            return;
        };
        let mask = self.mask();
        let pos_mask = self.pos_mask();
        let mut i = hole;
        loop {
            i = (i + 1) & mask;
            let slot = self.slots[i];
            if slot == EMPTY {
                break;
            }
            // Move the entry back into the hole unless its home lies
            // cyclically in (hole, i]: then it must stay after its home.
            let home = self.home(hash_of(slot & pos_mask));
            let stays = if hole <= i {
                hole < home && home <= i
            } else {
                hole < home || home <= i
            };
            if !stays {
                self.slots[hole] = slot;
                hole = i;
            }
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A hash with few distinct home slots and tags, to force long runs
    /// and wrap-around.
    fn h(key: u32) -> u64 {
        let k = u64::from(key % 7);
        (k << 61) | (k * 3 + 13)
    }

    #[test]
    fn insert_find_swap_remove_agree_with_a_model() {
        let mut keys: Vec<u32> = Vec::new();
        let mut index = Index::new();
        let check = |index: &Index, keys: &[u32]| {
            assert_eq!(index.len(), keys.len());
            for (pos, &k) in keys.iter().enumerate() {
                assert_eq!(
                    index.find(h(k), |p| keys[p as usize] == k),
                    Some(pos as u32)
                );
            }
            assert_eq!(index.find(h(1000), |p| keys[p as usize] == 1000), None);
        };
        for k in 0..40u32 {
            if index.needs_room_for(keys.len() + 1) {
                index.reset(keys.len() + 1);
                for (pos, &k) in keys.iter().enumerate() {
                    index.insert(h(k), pos as u32);
                }
            }
            index.insert(h(k), keys.len() as u32);
            keys.push(k);
            check(&index, &keys);
        }
        for (a, b) in [(0usize, 39usize), (5, 6), (17, 3)] {
            index.swap(h(keys[a]), a as u32, h(keys[b]), b as u32);
            keys.swap(a, b);
            check(&index, &keys);
        }
        // Remove from the middle: swap with the last, then drop it.
        for victim in [3usize, 0, 20, 7, 7, 1] {
            let last = keys.len() - 1;
            index.swap(h(keys[victim]), victim as u32, h(keys[last]), last as u32);
            keys.swap(victim, last);
            let k = keys[last];
            index.remove(h(k), last as u32, |p| h(keys[p as usize]));
            keys.pop();
            check(&index, &keys);
        }
    }

    #[test]
    fn empty_index_allocates_nothing() {
        let mut index = Index::new();
        index.reset(0);
        assert_eq!(index.allocation_size(), 0);
        assert_eq!(index.find(1, |_| true), None);
        index.reset(10_000);
        assert_eq!(index.allocation_size(), 16_384 * 4);
    }
}
