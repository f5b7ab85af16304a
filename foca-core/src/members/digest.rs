//! A summary of a member table that two members can compare in one
//! datagram (anti-entropy, see `Message::Sync`).
//!
//! Every active record `(identity, incarnation)` hashes to a 64-bit value
//! with [`StableHasher`]; its top bits (from the identity alone) pick one
//! of `2^bits` buckets and its low 16 bits (from both) are added (wrapping)
//! into that bucket's sum. The sums are kept
//! up to date as records change, so a summary costs nothing to produce, and
//! since addition commutes, two tables with the same active records have the
//! same sums whatever their order or history. A bucket whose sums differ
//! holds a record that one side lacks or has at another incarnation; the
//! peers then exchange only that bucket's records. A difference that hides
//! in a 16-bit collision waits for the next change to its bucket (or for
//! gossip, which carries every change anyway). Peers whose hashes of the
//! same identity differ (a `Hash` impl that changed between their builds)
//! see every bucket differ: they exchange records at each sync, as an
//! announce would, and stay correct.

use alloc::vec::Vec;
use core::hash::Hasher;

use crate::{Identity, Incarnation};

/// Most buckets a summary has: 256 sums of 2 bytes fit any datagram.
pub(crate) const MAX_BUCKET_BITS: u32 = 8;

/// A hasher whose output is the same on every platform and build: integers
/// are fed little-endian and `usize`/`isize` as 64 bits, so peers of
/// different word sizes and endianness agree. Not for hash tables facing
/// hostile keys (it is unseeded): only for comparing summaries.
pub(crate) struct StableHasher(u64);

impl StableHasher {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;

    pub(crate) const fn new() -> Self {
        Self(0x243F_6A88_85A3_08D3)
    }

    fn mix(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(Self::K).rotate_left(29);
    }
}

impl Hasher for StableHasher {
    fn finish(&self) -> u64 {
        // splitmix64's finalizer: every input bit reaches every output bit.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        // The length tells "ab" + "c" from "a" + "bc".
        self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
    }

    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.mix(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }
    fn write_u128(&mut self, i: u128) {
        self.mix(i as u64);
        self.mix((i >> 64) as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }
    fn write_i8(&mut self, i: i8) {
        self.write_u8(i as u8);
    }
    fn write_i16(&mut self, i: i16) {
        self.write_u16(i as u16);
    }
    fn write_i32(&mut self, i: i32) {
        self.write_u32(i as u32);
    }
    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }
    fn write_i128(&mut self, i: i128) {
        self.write_u128(i as u128);
    }
    fn write_isize(&mut self, i: isize) {
        self.mix(i as i64 as u64);
    }
}

/// The hash of an active record, as every peer computes it: its top 48
/// bits (which pick the bucket) from the identity alone, so that every
/// record of one member falls in one bucket whatever its incarnation (a
/// bucket that differs then holds the down record a peer missed, at any
/// incarnation); its low 16 bits (what is summed) from the identity and
/// the incarnation.
pub(crate) fn record_hash<T: Identity>(id: &T, incarnation: Incarnation) -> u64 {
    let mut h = StableHasher::new();
    id.hash(&mut h);
    let of_identity = h.finish();
    h.write_u32(incarnation);
    (of_identity & !0xFFFF) | (h.finish() & 0xFFFF)
}

/// The bucket count (as `log2`) for a table of up to `max_members`: about
/// 64 members a bucket, so that a differing bucket's records fit one
/// datagram, and at most [`MAX_BUCKET_BITS`].
pub(crate) fn bucket_bits(max_members: usize) -> u32 {
    let buckets = (max_members / 64).max(1);
    // ceil(log2(buckets)), without overflow.
    (usize::BITS - (buckets - 1).leading_zeros()).min(MAX_BUCKET_BITS)
}

/// The per-bucket sums of a table's active records.
#[derive(Clone)]
pub(crate) struct Digest {
    sums: Vec<u16>,
    bits: u32,
}

impl Digest {
    pub(crate) fn new(bits: u32) -> Self {
        let bits = bits.min(MAX_BUCKET_BITS);
        Self {
            sums: alloc::vec![0; 1 << bits],
            bits,
        }
    }

    pub(crate) fn bits(&self) -> u32 {
        self.bits
    }

    #[cfg(test)]
    pub(crate) fn sums(&self) -> &[u16] {
        &self.sums
    }

    pub(crate) fn into_sums(self) -> Vec<u16> {
        self.sums
    }

    /// The bucket of a record hash, for a summary of `2^bits` buckets.
    pub(crate) fn bucket_of(hash: u64, bits: u32) -> usize {
        hash.checked_shr(64 - bits).unwrap_or(0) as usize
    }

    pub(crate) fn add(&mut self, hash: u64) {
        let b = Self::bucket_of(hash, self.bits);
        if let Some(s) = self.sums.get_mut(b) {
            *s = s.wrapping_add(hash as u16);
        }
    }

    pub(crate) fn sub(&mut self, hash: u64) {
        let b = Self::bucket_of(hash, self.bits);
        if let Some(s) = self.sums.get_mut(b) {
            *s = s.wrapping_sub(hash as u16);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GenerationalId;

    #[test]
    fn hashes_are_the_same_on_every_platform() {
        // Pinned: a change here breaks summaries between versions.
        assert_eq!(
            record_hash(&GenerationalId::new(7u32, 1), 3),
            12_118_577_543_190_903_188
        );
        let addr: core::net::SocketAddr = "10.0.0.1:7000".parse().unwrap();
        assert_eq!(record_hash(&addr, 0), 3_136_410_183_621_134_995);
        let mut h = StableHasher::new();
        h.write_usize(5);
        let mut g = StableHasher::new();
        g.write_u64(5);
        assert_eq!(h.finish(), g.finish());
        let mut a = StableHasher::new();
        a.write(b"ab");
        a.write(b"c");
        let mut b = StableHasher::new();
        b.write(b"a");
        b.write(b"bc");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn every_record_of_a_member_falls_in_one_bucket() {
        for i in 0..200u32 {
            let id = GenerationalId::new(i, 1);
            let bucket = Digest::bucket_of(record_hash(&id, 0), MAX_BUCKET_BITS);
            for incarnation in [1, 2, 77, u32::MAX] {
                let hash = record_hash(&id, incarnation);
                assert_eq!(Digest::bucket_of(hash, MAX_BUCKET_BITS), bucket);
            }
            // What is summed still tells incarnations apart.
            assert_ne!(record_hash(&id, 0) as u16, record_hash(&id, 1) as u16);
        }
    }

    #[test]
    fn sums_do_not_depend_on_order() {
        let hashes: Vec<u64> = (0..500u32)
            .map(|i| record_hash(&GenerationalId::new(i, 1), i % 3))
            .collect();
        let mut a = Digest::new(4);
        let mut b = Digest::new(4);
        for h in &hashes {
            a.add(*h);
        }
        for h in hashes.iter().rev() {
            b.add(*h);
        }
        assert_eq!(a.sums(), b.sums());
        a.sub(hashes[10]);
        assert_ne!(a.sums(), b.sums());
        a.add(hashes[10]);
        assert_eq!(a.sums(), b.sums());
    }

    #[test]
    fn bucket_bits_follow_the_table_size() {
        assert_eq!(bucket_bits(0), 0);
        assert_eq!(bucket_bits(64), 0);
        assert_eq!(bucket_bits(1024), 4);
        assert_eq!(bucket_bits(2000), 5);
        assert_eq!(bucket_bits(20_000), 8);
        assert_eq!(bucket_bits(usize::MAX), 8);
    }
}
