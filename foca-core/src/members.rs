//! The member table: expected `O(1)` lookup by address, `O(1)` random choice
//! of an active member, and randomized round-robin probe order, in at most
//! `size_of::<Member<T>>() × 1.25 + 9.9` bytes per member.
//!
//! Layout: one `Vec` of members, partitioned as
//!
//! ```text
//! [ probed this round | not yet probed this round | inactive (down, left) ]
//! 0                 cursor                      active                  len
//! ```
//!
//! plus an index of positions ([`index`]: four bytes a slot, one cache miss
//! a lookup), hashed by address with a seeded foldhash (deterministic for a
//! seed, not guessable by peers). The
//! probe walks the middle region; at the end of a round the active region is
//! shuffled again (SWIM §4.3: every live member is probed once per round, in
//! random order). A member that joins is placed at a random position of the
//! not-yet-probed region; one that goes down is swapped out of the active
//! region without disturbing the round. The table itself is never iterated
//! through its hash index, so no decision depends on hash order.

mod digest;
mod index;

pub(crate) use digest::{Digest, MAX_BUCKET_BITS, bucket_bits, record_hash};

use alloc::vec::Vec;
use core::hash::BuildHasher;

use foldhash::fast::FixedState;
use rand::{Rng, RngExt};

use crate::{Identity, Member, State};

pub(crate) struct Members<T: Identity> {
    entries: Vec<Member<T>>,
    index: index::Index,
    hasher: FixedState,
    active: usize,
    cursor: usize,
    /// How many members are `Suspect` (lets senders skip a lookup).
    suspects: usize,
    /// Bumped by every change to a record (insert, update, remove).
    version: u64,
    /// The per-bucket sums of the active records (see [`digest`]); boxed,
    /// as it is rarely read, to keep this struct's hot fields together.
    digest: alloc::boxed::Box<Digest>,
}

impl<T: Identity> Members<T> {
    /// An empty table whose summary has `2^digest_bits` buckets.
    pub(crate) fn new(seed: u64, digest_bits: u32) -> Self {
        Self {
            entries: Vec::new(),
            index: index::Index::new(),
            hasher: FixedState::with_seed(seed),
            active: 0,
            cursor: 0,
            suspects: 0,
            version: 0,
            digest: alloc::boxed::Box::new(Digest::new(digest_bits)),
        }
    }

    /// The summary of the active records.
    pub(crate) fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Recomputes the summary with `2^bits` buckets (a config change).
    pub(crate) fn set_digest_bits(&mut self, bits: u32) {
        if bits == self.digest.bits() {
            return;
        }
        *self.digest = Digest::new(bits);
        for m in &self.entries[..self.active] {
            self.digest.add(record_hash(m.id(), m.incarnation()));
        }
    }

    /// Changes whenever a record is inserted, updated or removed.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    fn hash(&self, addr: &T::Addr) -> u64 {
        self.hasher.hash_one(addr)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn num_active(&self) -> usize {
        self.active
    }

    pub(crate) fn num_suspects(&self) -> usize {
        self.suspects
    }

    pub(crate) fn num_inactive(&self) -> usize {
        self.entries.len() - self.active
    }

    pub(crate) fn find(&self, addr: &T::Addr) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(self.hash(addr), |pos| {
                entries
                    .get(pos as usize)
                    .is_some_and(|m| m.id().addr() == *addr)
            })
            .map(|pos| pos as usize)
    }

    pub(crate) fn get(&self, pos: usize) -> Option<&Member<T>> {
        self.entries.get(pos)
    }

    pub(crate) fn active_members(&self) -> &[Member<T>] {
        &self.entries[..self.active]
    }

    pub(crate) fn all(&self) -> &[Member<T>] {
        &self.entries
    }

    fn swap(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        let ha = self.hash(&self.entries[a].id().addr());
        let hb = self.hash(&self.entries[b].id().addr());
        self.index.swap(ha, a as u32, hb, b as u32);
        self.entries.swap(a, b);
    }

    /// Rebuilds the index for `room` members (it holds the current ones).
    fn reindex(&mut self, room: usize) {
        self.index.reset(room);
        for pos in 0..self.entries.len() {
            let hash = self.hash(&self.entries[pos].id().addr());
            self.index.insert(hash, pos as u32);
        }
    }

    /// Adds a member not in the table yet. Returns its position.
    pub(crate) fn insert(&mut self, member: Member<T>, rng: &mut impl Rng) -> usize {
        debug_assert!(self.find(&member.id().addr()).is_none());
        self.version = self.version.wrapping_add(1);
        if self.entries.len() == self.entries.capacity() {
            // Grow by a quarter, not double: the table is the bulk of a
            // member's memory and must stay within its per-member budget.
            let extra = (self.entries.len() / 4).max(4);
            self.entries.reserve_exact(extra);
        }
        let pos = self.entries.len();
        let hash = self.hash(&member.id().addr());
        let active = member.is_active();
        if member.state() == State::Suspect {
            self.suspects += 1;
        }
        if active {
            self.digest
                .add(record_hash(member.id(), member.incarnation()));
        }
        self.entries.push(member);
        if self.index.needs_room_for(self.entries.len()) {
            self.reindex(self.entries.len());
        } else {
            self.index.insert(hash, pos as u32);
        }
        if active { self.activate(pos, rng) } else { pos }
    }

    /// Adds many active members, none of them in the table yet and no two
    /// with the same address, at random places of the not-yet-probed region:
    /// one shuffle and one rebuild of the index instead of per-member moves
    /// (restoring a large table).
    pub(crate) fn insert_many(&mut self, new: Vec<Member<T>>, rng: &mut impl Rng) {
        debug_assert!(new.iter().all(Member::is_active));
        if new.is_empty() {
            return;
        }
        self.version = self.version.wrapping_add(1);
        let inactive = self.entries.split_off(self.active);
        self.entries.reserve_exact(new.len() + inactive.len());
        for m in &new {
            self.digest.add(record_hash(m.id(), m.incarnation()));
        }
        self.entries.extend(new);
        self.active = self.entries.len();
        for i in (self.cursor + 1..self.active).rev() {
            let j = rng.random_range(self.cursor..=i);
            self.entries.swap(i, j);
        }
        self.entries.extend(inactive);
        self.reindex(self.entries.len());
    }

    /// Moves the inactive member at `pos` into the not-yet-probed region, at
    /// a random place. Returns its new position.
    fn activate(&mut self, pos: usize, rng: &mut impl Rng) -> usize {
        debug_assert!(pos >= self.active);
        self.swap(pos, self.active);
        self.active += 1;
        let target = rng.random_range(self.cursor..self.active);
        self.swap(self.active - 1, target);
        target
    }

    /// Moves the active member at `pos` out of the active region without
    /// making any other member skip or repeat its probe this round.
    fn deactivate(&mut self, pos: usize) -> usize {
        debug_assert!(pos < self.active);
        if pos < self.cursor {
            self.swap(pos, self.cursor - 1);
            self.swap(self.cursor - 1, self.active - 1);
            self.cursor -= 1;
        } else {
            self.swap(pos, self.active - 1);
        }
        self.active -= 1;
        self.active
    }

    /// Replaces the member at `pos` (same address), moving it between the
    /// regions as its state requires. Returns its new position.
    pub(crate) fn update(&mut self, pos: usize, member: Member<T>, rng: &mut impl Rng) -> usize {
        self.version = self.version.wrapping_add(1);
        let was_active = pos < self.active;
        let is_active = member.is_active();
        if self.entries[pos].state() == State::Suspect {
            self.suspects -= 1;
        }
        if member.state() == State::Suspect {
            self.suspects += 1;
        }
        debug_assert!(self.entries[pos].id().addr() == member.id().addr());
        let old = &self.entries[pos];
        let same_record = old.id() == member.id() && old.incarnation() == member.incarnation();
        if !(same_record && was_active == is_active) {
            if was_active {
                self.digest.sub(record_hash(old.id(), old.incarnation()));
            }
            if is_active {
                self.digest
                    .add(record_hash(member.id(), member.incarnation()));
            }
        }
        self.entries[pos] = member;
        match (was_active, is_active) {
            (true, false) => self.deactivate(pos),
            (false, true) => self.activate(pos, rng),
            _ => pos,
        }
    }

    /// Removes the member at `pos`, which must be inactive.
    pub(crate) fn remove(&mut self, pos: usize) -> Option<Member<T>> {
        if pos < self.active || pos >= self.entries.len() {
            return None;
        }
        self.version = self.version.wrapping_add(1);
        let last = self.entries.len() - 1;
        self.swap(pos, last);
        let hash = self.hash(&self.entries[last].id().addr());
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index.remove(hash, last as u32, |p| {
            hasher.hash_one(entries[p as usize].id().addr())
        });
        self.entries.pop()
    }

    /// The next member to probe: round-robin over a random permutation of the
    /// active members, reshuffled at the end of every round.
    pub(crate) fn next_probe_target(&mut self, rng: &mut impl Rng) -> Option<&Member<T>> {
        if self.active == 0 {
            return None;
        }
        if self.cursor >= self.active {
            self.cursor = 0;
            // Fisher–Yates over the active region, keeping the index in step.
            for i in (1..self.active).rev() {
                let j = rng.random_range(0..=i);
                self.swap(i, j);
            }
        }
        let pos = self.cursor;
        self.cursor += 1;
        self.entries.get(pos)
    }

    /// Picks up to `wanted` distinct random positions in `0..n`, in random
    /// order (Floyd's algorithm, then a shuffle). Membership tests are a
    /// linear scan for small samples (fanouts) and a binary search in a
    /// sorted copy for large ones (feeds): `O(wanted log wanted)` compares
    /// plus small moves, and one allocation.
    fn sample(n: usize, wanted: usize, rng: &mut impl Rng, out: &mut Vec<usize>) {
        out.clear();
        let wanted = wanted.min(n);
        let large = wanted > 16;
        // The picks so far, sorted (large samples only).
        let mut seen: Vec<usize> = if large {
            Vec::with_capacity(wanted)
        } else {
            Vec::new()
        };
        for j in (n - wanted)..n {
            let t = rng.random_range(0..=j);
            let pick = if large {
                match seen.binary_search(&t) {
                    Ok(_) => {
                        // `j` exceeds every earlier pick (each was at most
                        // the `j` of its own step): it goes last.
                        seen.push(j);
                        j
                    }
                    Err(at) => {
                        seen.insert(at, t);
                        t
                    }
                }
            } else if out.contains(&t) {
                j
            } else {
                t
            };
            out.push(pick);
        }
        // Floyd's set is uniform but its order is not (the i-th pick is at
        // most n - wanted + i), and callers take a prefix: without this,
        // the last positions would never be chosen.
        for i in (1..out.len()).rev() {
            let j = rng.random_range(0..=i);
            out.swap(i, j);
        }
    }

    /// Up to `wanted` distinct random active members accepted by `keep`.
    pub(crate) fn choose_active(
        &self,
        wanted: usize,
        rng: &mut impl Rng,
        mut keep: impl FnMut(&Member<T>) -> bool,
        out: &mut Vec<T>,
    ) {
        Self::choose_in(
            &self.entries[..self.active],
            wanted,
            rng,
            &mut keep,
            out,
            |m| m.id().clone(),
        );
    }

    /// Up to `wanted` distinct random inactive members accepted by `keep`.
    pub(crate) fn choose_inactive(
        &self,
        wanted: usize,
        rng: &mut impl Rng,
        mut keep: impl FnMut(&Member<T>) -> bool,
        out: &mut Vec<T>,
    ) {
        Self::choose_in(
            &self.entries[self.active..],
            wanted,
            rng,
            &mut keep,
            out,
            |m| m.id().clone(),
        );
    }

    /// Up to `wanted` distinct random active members accepted by `keep`, as
    /// whole records (for feeds: no second lookup per member).
    pub(crate) fn choose_active_records(
        &self,
        wanted: usize,
        rng: &mut impl Rng,
        mut keep: impl FnMut(&Member<T>) -> bool,
        out: &mut Vec<Member<T>>,
    ) {
        Self::choose_in(
            &self.entries[..self.active],
            wanted,
            rng,
            &mut keep,
            out,
            Member::clone,
        );
    }

    fn choose_in<X>(
        slice: &[Member<T>],
        wanted: usize,
        rng: &mut impl Rng,
        keep: &mut impl FnMut(&Member<T>) -> bool,
        out: &mut Vec<X>,
        pick: impl Fn(&Member<T>) -> X,
    ) {
        out.clear();
        if wanted == 0 || slice.is_empty() {
            return;
        }
        // Oversample a little so that a few rejections by `keep` still leave
        // enough; with few members this takes them all.
        let mut picks = Vec::new();
        Self::sample(slice.len(), wanted.saturating_add(2), rng, &mut picks);
        for p in picks {
            if out.len() == wanted {
                break;
            }
            let m = &slice[p];
            if keep(m) {
                out.push(pick(m));
            }
        }
    }

    /// Heap bytes held by the table and its index.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.entries.capacity() * core::mem::size_of::<Member<T>>() + self.index.allocation_size()
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        assert_eq!(self.index.len(), self.entries.len());
        let suspects = self
            .entries
            .iter()
            .filter(|m| m.state() == State::Suspect)
            .count();
        assert_eq!(self.suspects, suspects);
        assert!(self.cursor <= self.active.max(self.cursor));
        for (pos, m) in self.entries.iter().enumerate() {
            assert_eq!(self.find(&m.id().addr()), Some(pos));
            assert_eq!(m.is_active(), pos < self.active, "{pos} {m:?}");
        }
        let mut digest = Digest::new(self.digest.bits());
        for m in &self.entries[..self.active] {
            digest.add(record_hash(m.id(), m.incarnation()));
        }
        assert_eq!(digest.sums(), self.digest.sums());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GenerationalId;
    use alloc::collections::BTreeSet;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro128PlusPlus;

    type Id = GenerationalId<u32>;

    fn m(addr: u32, state: State) -> Member<Id> {
        Member::new(GenerationalId::new(addr, 1), 0, state)
    }

    #[test]
    fn every_active_member_is_probed_once_per_round_despite_churn() {
        let mut rng = Xoshiro128PlusPlus::seed_from_u64(7);
        let mut t = Members::new(1, 2);
        for a in 0..20 {
            t.insert(m(a, State::Alive), &mut rng);
        }
        t.check_invariants();
        for round in 0..50u32 {
            let mut seen = BTreeSet::new();
            let mut expected: BTreeSet<u32> = t
                .active_members()
                .iter()
                .map(|m| *m.id().address())
                .collect();
            // Probe half the round, churn, then finish the round.
            for _ in 0..expected.len() / 2 {
                let id = *t.next_probe_target(&mut rng).unwrap().id();
                assert!(seen.insert(*id.address()), "probed twice in a round");
            }
            // One probed and one unprobed member go down; a new one joins.
            let probed = *seen.iter().next().unwrap();
            let unprobed = *expected.iter().find(|a| !seen.contains(a)).unwrap();
            for a in [probed, unprobed] {
                let pos = t.find(&a).unwrap();
                t.update(pos, m(a, State::Down), &mut rng);
                expected.remove(&a);
            }
            let newcomer = 100 + round;
            t.insert(m(newcomer, State::Alive), &mut rng);
            expected.insert(newcomer);
            t.check_invariants();
            while seen.len() < expected.len() + 1 {
                let id = *t.next_probe_target(&mut rng).unwrap().id();
                if !seen.insert(*id.address()) {
                    break;
                }
            }
            // Every member still active was probed this round.
            for a in &expected {
                assert!(seen.contains(a), "round {round}: {a} skipped");
            }
            // Revive the two and remove some inactive member to keep churning.
            for a in [probed, unprobed] {
                let pos = t.find(&a).unwrap();
                t.update(pos, m(a, State::Alive), &mut rng);
            }
            t.check_invariants();
            // They joined this round's unprobed region: finish the round.
            while t.cursor < t.active {
                t.next_probe_target(&mut rng);
            }
        }
    }

    #[test]
    fn remove_keeps_index_consistent() {
        let mut rng = Xoshiro128PlusPlus::seed_from_u64(3);
        let mut t = Members::new(9, 2);
        for a in 0..10 {
            t.insert(
                m(
                    a,
                    if a % 2 == 0 {
                        State::Alive
                    } else {
                        State::Down
                    },
                ),
                &mut rng,
            );
        }
        t.check_invariants();
        assert_eq!(t.num_active(), 5);
        let pos = t.find(&3).unwrap();
        assert!(t.remove(pos).is_some());
        let pos = t.find(&4).unwrap();
        assert!(t.remove(pos).is_none(), "active members are not removed");
        t.check_invariants();
        assert_eq!(t.len(), 9);
        assert!(t.find(&3).is_none());
    }

    #[test]
    fn choose_reaches_every_position() {
        // Taking a prefix of Floyd's sample once left the last two
        // positions of the region never chosen.
        let mut rng = Xoshiro128PlusPlus::seed_from_u64(11);
        let mut t = Members::new(4, 2);
        for a in 0..9 {
            t.insert(m(a, State::Alive), &mut rng);
        }
        let mut counts = [0u32; 9];
        let mut out = Vec::new();
        for _ in 0..900 {
            t.choose_active(3, &mut rng, |_| true, &mut out);
            for id in &out {
                counts[*id.address() as usize] += 1;
            }
        }
        // 300 expected each.
        assert!(counts.iter().all(|&c| c > 200), "{counts:?}");
    }

    #[test]
    fn choose_returns_distinct_members() {
        let mut rng = Xoshiro128PlusPlus::seed_from_u64(5);
        let mut t = Members::new(2, 2);
        for a in 0..6 {
            t.insert(m(a, State::Alive), &mut rng);
        }
        let mut out = Vec::new();
        for _ in 0..100 {
            t.choose_active(3, &mut rng, |m| *m.id().address() != 0, &mut out);
            assert_eq!(out.len(), 3);
            let set: BTreeSet<_> = out.iter().collect();
            assert_eq!(set.len(), 3);
            assert!(out.iter().all(|id| *id.address() != 0));
        }
        t.choose_active(10, &mut rng, |_| true, &mut out);
        assert_eq!(out.len(), 6);
    }
}
