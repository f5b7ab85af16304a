//! Replay windows: a sealed datagram is accepted once.
//!
//! An envelope that numbers what it seals reports each datagram's
//! [`Sequence`] (key id and number). Per key id and sender identity, the
//! member keeps the highest number seen and a bitmap of the
//! [`REPLAY_WINDOW`] numbers below it (RFC 4303 §3.4.3, as WireGuard does):
//! a number already marked is a replay, one below the window too old to
//! tell, and both are dropped before anything in the datagram is applied.
//!
//! The identity is the one the datagram's payload opens with; the envelope
//! authenticates the payload and the number together, so the number cannot
//! be moved to another sender's datagram without the key.
//!
//! Windows outlive the member table's records: a dead member's datagram,
//! replayed after its tombstone expired, finds its window still there. They
//! are dropped only when more senders than [`capacity`] have spoken, least
//! recently heard first.

use alloc::vec::Vec;

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use crate::Sequence;

/// Sequence numbers below a sender's highest that are still told apart:
/// a datagram overtaken by more than this many later datagrams of its
/// sender (to any member) is dropped as too old.
pub const REPLAY_WINDOW: u64 = 256;

const WORDS: usize = (REPLAY_WINDOW / 64) as usize;

/// Windows kept for a cluster of `max_members`: every member twice (the
/// key in use and the next one, during a rotation), and room for those
/// that left.
pub(super) fn capacity(max_members: usize) -> usize {
    max_members.saturating_mul(4).max(1024)
}

/// Why a datagram's number was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stale {
    Replayed,
    TooOld,
}

struct Window {
    /// The highest number accepted.
    top: u64,
    /// Bit `i` set: `top - i` was accepted.
    seen: [u64; WORDS],
    /// When this window last accepted a number, in accepts.
    used: u64,
}

impl Window {
    fn new(number: u64, now: u64) -> Self {
        let mut seen = [0; WORDS];
        seen[0] = 1;
        Self {
            top: number,
            seen,
            used: now,
        }
    }

    fn admit(&mut self, number: u64, now: u64) -> Result<(), Stale> {
        if number > self.top {
            self.shift(number - self.top);
            self.top = number;
            self.seen[0] |= 1;
        } else {
            let back = self.top - number;
            if back >= REPLAY_WINDOW {
                return Err(Stale::TooOld);
            }
            let (word, bit) = ((back / 64) as usize, back % 64);
            if self.seen[word] & (1 << bit) != 0 {
                return Err(Stale::Replayed);
            }
            self.seen[word] |= 1 << bit;
        }
        self.used = now;
        Ok(())
    }

    /// Moves every mark `by` places further from the top.
    fn shift(&mut self, by: u64) {
        if by >= REPLAY_WINDOW {
            self.seen = [0; WORDS];
            return;
        }
        let (words, bits) = ((by / 64) as usize, by % 64);
        for i in (0..WORDS).rev() {
            let whole = i.checked_sub(words).map_or(0, |j| self.seen[j]);
            let carry = match i.checked_sub(words + 1) {
                Some(j) if bits > 0 => self.seen[j] >> (64 - bits),
                _ => 0,
            };
            self.seen[i] = (whole << bits) | carry;
        }
    }
}

/// A window's key, borrowed: hashes as the tuple `(u32, T)` does (fields
/// in order), and equals it field by field.
#[derive(Hash)]
struct KeyRef<'a, T>(u32, &'a T);

impl<T: Eq> hashbrown::Equivalent<(u32, T)> for KeyRef<'_, T> {
    fn equivalent(&self, key: &(u32, T)) -> bool {
        self.0 == key.0 && *self.1 == key.1
    }
}

/// The replay windows of one member, by key id and sender identity.
pub(super) struct Replay<T> {
    windows: HashMap<(u32, T), Window, FixedState>,
    capacity: usize,
    accepts: u64,
}

impl<T: Clone + Eq + core::hash::Hash> Replay<T> {
    pub(super) fn new(seed: u64, capacity: usize) -> Self {
        Self {
            windows: HashMap::with_hasher(FixedState::with_seed(seed)),
            capacity,
            accepts: 0,
        }
    }

    pub(super) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
    }

    /// Accepts `sequence` from `sender` once; refuses a repeat or a number
    /// below the sender's window.
    pub(super) fn admit(&mut self, sender: &T, sequence: Sequence) -> Result<(), Stale> {
        self.accepts += 1;
        let now = self.accepts;
        // Looked up without cloning the identity (it may own a heap
        // buffer): a clone is made only for a sender heard first.
        if let Some(window) = self.windows.get_mut(&KeyRef(sequence.key, sender)) {
            return window.admit(sequence.number, now);
        }
        if self.windows.len() >= self.capacity {
            self.forget_least_recent();
        }
        let key = (sequence.key, sender.clone());
        self.windows.insert(key, Window::new(sequence.number, now));
        Ok(())
    }

    /// Drops the least recently used half of the windows (one sort per
    /// `capacity / 2` new senders).
    fn forget_least_recent(&mut self) {
        let mut used: Vec<u64> = self.windows.values().map(|w| w.used).collect();
        let Some(drop) = (used.len() - used.len() / 2).checked_sub(1) else {
            return;
        };
        // `used` values differ (one per accept), so exactly half goes.
        let (_, cut, _) = used.select_nth_unstable(drop);
        let cut = *cut;
        self.windows.retain(|_, w| w.used > cut);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(number: u64) -> Sequence {
        Sequence { key: 1, number }
    }

    #[test]
    fn each_number_is_accepted_once_in_any_order_within_the_window() {
        let mut r = Replay::new(0, 16);
        let mut order: Vec<u64> = (1000..1000 + REPLAY_WINDOW).collect();
        // A fixed shuffle: odd numbers first, then even ones backwards.
        order.sort_by_key(|n| (n % 2 == 0, if n % 2 == 0 { u64::MAX - n } else { *n }));
        for &n in &order {
            assert_eq!(r.admit(&7u32, seq(n)), Ok(()), "{n}");
        }
        for &n in &order {
            assert_eq!(r.admit(&7u32, seq(n)), Err(Stale::Replayed), "{n}");
        }
        assert_eq!(r.admit(&7u32, seq(999)), Err(Stale::TooOld));
        assert_eq!(r.admit(&7u32, seq(0)), Err(Stale::TooOld));
    }

    #[test]
    fn marks_move_with_the_top_across_words() {
        for jump in [1, 63, 64, 65, 127, 128, 200, 255, 256, 257, 10_000] {
            let mut r = Replay::new(0, 16);
            for n in [100, 98, 37] {
                assert_eq!(r.admit(&1u32, seq(n)), Ok(()));
            }
            assert_eq!(r.admit(&1u32, seq(100 + jump)), Ok(()));
            for n in [100, 98, 37] {
                let back = 100 + jump - n;
                let want = if back >= REPLAY_WINDOW {
                    Err(Stale::TooOld)
                } else {
                    Err(Stale::Replayed)
                };
                assert_eq!(r.admit(&1u32, seq(n)), want, "jump {jump}, number {n}");
            }
            // Unmarked numbers inside the window are still accepted.
            let fresh = if jump == 1 { 99 } else { 99 + jump };
            assert_eq!(r.admit(&1u32, seq(fresh)), Ok(()), "jump {jump}");
        }
    }

    #[test]
    fn agrees_with_a_set_of_every_number_seen() {
        // A model: accept a number unseen and above top - WINDOW.
        let mut r = Replay::new(0, 16);
        let mut seen = alloc::collections::BTreeSet::new();
        let (mut top, mut x) = (0u64, 12345u64);
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Mostly small steps around the top, some far jumps.
            let step = (x >> 33) % 600;
            let n = if x % 97 == 0 {
                top + 1000
            } else {
                (top + 100).saturating_sub(step)
            };
            let want = if n + REPLAY_WINDOW <= top && top > 0 {
                Err(Stale::TooOld)
            } else if seen.contains(&n) {
                Err(Stale::Replayed)
            } else {
                Ok(())
            };
            assert_eq!(r.admit(&1u32, seq(n)), want, "number {n}, top {top}");
            if want.is_ok() {
                seen.insert(n);
                top = top.max(n);
            }
        }
    }

    #[test]
    fn senders_and_keys_have_their_own_windows() {
        let mut r = Replay::new(0, 16);
        assert_eq!(r.admit(&1u32, seq(5)), Ok(()));
        assert_eq!(r.admit(&2u32, seq(5)), Ok(()));
        assert_eq!(r.admit(&1u32, Sequence { key: 2, number: 5 }), Ok(()));
        assert_eq!(r.admit(&1u32, seq(5)), Err(Stale::Replayed));
    }

    #[test]
    fn the_least_recently_heard_are_forgotten_first_and_the_count_stays_bounded() {
        let mut r = Replay::new(0, 8);
        for sender in 0u32..8 {
            r.admit(&sender, seq(10)).unwrap();
        }
        // Sender 0 speaks again: it is now the most recent.
        r.admit(&0, seq(11)).unwrap();
        for sender in 100u32..1000 {
            r.admit(&sender, seq(1)).unwrap();
            assert!(r.len() <= 8);
        }
        let mut r = Replay::new(0, 8);
        for sender in 0u32..8 {
            r.admit(&sender, seq(10)).unwrap();
        }
        r.admit(&0, seq(11)).unwrap();
        r.admit(&100, seq(1)).unwrap();
        // Half went, the oldest: sender 0 stayed and still refuses a replay.
        assert_eq!(r.admit(&0, seq(11)), Err(Stale::Replayed));
        assert_eq!(r.len(), 5);
    }
}
