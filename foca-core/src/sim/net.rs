//! The simulated network: per-link parameters and totals.

use core::hash::{BuildHasher, Hasher};
use core::time::Duration;

use foldhash::fast::FixedState;

/// How one directed link treats datagrams.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkParams {
    /// One-way delay.
    pub latency: Duration,
    /// Extra delay, uniform in `0..=jitter`, drawn per datagram: datagrams
    /// overtake each other when it exceeds their spacing.
    pub jitter: Duration,
    /// Probability that a datagram is lost, `0.0..=1.0`.
    pub loss: f64,
    /// Probability that a datagram is delivered twice, `0.0..=1.0`.
    pub duplicate: f64,
    /// Sender's egress rate in bytes per second; `0` is unlimited. Datagrams
    /// queue behind each other at the sender, as on a slow uplink.
    pub bandwidth: u64,
}

impl Default for LinkParams {
    /// 1 ms latency, nothing else.
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            bandwidth: 0,
        }
    }
}

/// Totals over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams handed to the network.
    pub sent: u64,
    /// Bytes handed to the network.
    pub bytes: u64,
    /// Datagrams delivered to a running member.
    pub delivered: u64,
    /// Datagrams lost at random.
    pub lost: u64,
    /// Extra copies delivered by duplication.
    pub duplicated: u64,
    /// Datagrams dropped by a blocked link, an unknown destination or a
    /// crashed receiver.
    pub blocked: u64,
    /// Digest (foldhash, fixed seed) of every datagram sent, with its send
    /// time: two runs of the same build sent the same bytes at the same
    /// times iff their digests match (up to hash collisions). Compare it
    /// between runs, never to a stored value: it may change between
    /// versions.
    pub digest: u64,
}

/// The digest of a run that sent nothing.
pub(crate) const DIGEST_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Folds one datagram, with its send time, into a run's digest: foldhash
/// with a fixed seed, a few multiplications per 16 bytes (it was byte-wise
/// FNV-1a, one multiplication per byte, on every datagram of the run).
/// The value is only ever compared between runs of the same build.
pub(crate) fn digest(h: u64, sent_at: u64, bytes: &[u8]) -> u64 {
    let mut s = FixedState::with_seed(0).build_hasher();
    s.write_u64(h);
    s.write_u64(sent_at);
    s.write_usize(bytes.len());
    s.write(bytes);
    s.finish()
}
