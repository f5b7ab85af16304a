//! The simulated network: per-link parameters and totals.

use core::time::Duration;

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
    /// FNV-1a digest of every datagram sent, with its send time: two runs
    /// sent the same bytes at the same times iff their digests match
    /// (up to hash collisions).
    pub digest: u64,
}

pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

pub(crate) fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}
