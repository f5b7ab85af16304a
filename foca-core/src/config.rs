//! Protocol tuning, with presets and validation.
//!
//! The values that should grow with the cluster, the retransmit limit and the
//! suspicion timeout, are not fixed numbers here: they are multipliers applied
//! to the *current* member count at run time (as in memberlist), so one
//! `Config` serves a cluster of 3 and of 3,000.

use core::fmt;
use core::time::Duration;

/// The smallest `max_packet_size` accepted: a header plus a few updates must fit.
pub const MIN_PACKET_SIZE: usize = 128;
/// The largest `max_packet_size` accepted: the largest UDP payload over IPv4.
pub const MAX_PACKET_SIZE: usize = 65_507;

/// The default [`Config::max_incarnation_step`].
pub const DEFAULT_INCARNATION_STEP: u32 = 64;

/// The default [`Config::awareness_max_multiplier`] (memberlist's).
pub const DEFAULT_AWARENESS_MAX: u8 = 8;

/// The default [`Config::suspicion_max_multiplier`] (memberlist's).
pub const DEFAULT_SUSPICION_MAX: u8 = 6;

/// How often a periodic task runs and how many members it talks to each time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PeriodicParams {
    /// Time between runs. Must not be zero.
    pub frequency: Duration,
    /// Members contacted per run. Must not be zero.
    pub num_members: u8,
}

/// Every tunable of the protocol. Start from a preset; [`Config::validate`]
/// says exactly what is wrong with a hand-made one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Config {
    /// One member is probed per period (SWIM's protocol period T').
    pub probe_period: Duration,
    /// How long to wait for a direct ack before asking helpers. Must be below
    /// `probe_period`; set it to a high percentile of your round-trip time.
    pub probe_rtt: Duration,
    /// Helpers asked to probe indirectly when a direct probe goes unanswered
    /// (SWIM's k). Zero disables indirect probing.
    pub num_indirect_probes: u8,
    /// Each update is sent `retransmit_multiplier × ⌈log10(n + 1)⌉` times,
    /// with `n` the current number of members (memberlist's formula).
    pub retransmit_multiplier: u8,
    /// A suspect is declared down after at least
    /// `suspicion_multiplier × max(1, ⌈log10(n)⌉) × probe_period`
    /// ([`Config::suspicion_timeout`]), once enough members confirmed it.
    pub suspicion_multiplier: u8,
    /// Lifeguard's suspicion with independent confirmations: an
    /// unconfirmed suspicion lasts this many times the
    /// [`suspicion_timeout`](Config::suspicion_timeout), and shrinks toward
    /// it as distinct members report the suspect from their own failed
    /// probes (`num_indirect_probes` of them bring it down to the minimum;
    /// in clusters too small for that many, it is the minimum at once). A
    /// crashed member is confirmed by everyone who probes it and declared
    /// down near the minimum; a member falsely suspected by one slow prober
    /// gets the maximum to refute. 1 disables it (a fixed timeout);
    /// memberlist's default is 6. Must be at least 1.
    pub suspicion_max_multiplier: u8,
    /// How far hearsay (news about a member told by someone else) may raise
    /// a known member's incarnation, this member's included. A member only
    /// raises its own incarnation by one per refutation, so honest news
    /// stays far below this unless it was missed for long (then the
    /// member's own word, which is not bounded, brings it up to date); a
    /// forged record can then spend at most this many of a member's 2^32
    /// incarnations, instead of all of them. News of a member not yet
    /// known is not bounded. Must be at least 1.
    pub max_incarnation_step: u32,
    /// Drop a datagram whose sender claims an address other than the one
    /// it came from (counted as `dropped.source_mismatch`). On by default:
    /// replies go to the claimed sender, so without this check a forger can
    /// aim them at anyone. Turn it off only where members cannot see their
    /// own public address (behind NAT, with identities that carry a private
    /// one); the cost is that a datagram forging a third party's identity
    /// is then answered, to that third party, though never with more than
    /// three times its own size until the third party has proven itself
    /// (see [`Endpoint`](crate::Endpoint)). Only the endpoint knows where a
    /// datagram came from: [`Foca::handle_data`](crate::Foca::handle_data)
    /// checks nothing, [`Foca::handle_data_from`](crate::Foca::handle_data_from)
    /// does.
    pub check_source: bool,
    /// Lifeguard's local health awareness: this member's probe period and
    /// probe RTT are stretched by its health multiplier, from 1 (healthy)
    /// up to this value. The multiplier rises by one when a probe fails
    /// without every asked helper answering the ping request (if the
    /// helpers answered, the target is gone; if not, this member's own
    /// links are suspect), when this member must refute a suspicion of
    /// itself, and when a probe's timer came too late to finish it; it
    /// falls by one with each acked probe. A slow or lossy member thus
    /// probes less often and waits longer before it suspects anyone,
    /// instead of filling the cluster with false suspicions. 1 disables it
    /// (plain SWIM timing); memberlist's default is 8. Must be at least 1.
    pub awareness_max_multiplier: u8,
    /// Patient probes: a target that has not acked by half the probe RTT
    /// is pinged again (helpers are asked at `probe_rtt` as before, if it
    /// still has not), and a probe still unanswered when its period ends
    /// gets until the next probe's `probe_rtt` for its verdict (the next
    /// probe starts on time meanwhile). A member that answers late (a busy
    /// process, a slow host: its ack comes after `probe_rtt`) then has time
    /// to answer the second ping or the helpers, so one lost datagram no
    /// longer makes it a suspect; and a lost ping or ack to a member that
    /// answers in time costs two datagrams instead of the helpers' dozen.
    /// The cost: a suspicion of a crashed member starts `probe_rtt` later.
    /// Not part of Lifeguard; `false` is SWIM's timing (helpers at
    /// `probe_rtt`, the verdict at the end of the period).
    pub patient_probes: bool,
    /// Down and left members are remembered this long, so stale news about
    /// them is recognised and (with `periodic_announce_to_down_members`) the
    /// two sides of a healed partition find each other again; while this
    /// member has no live peer they are kept longer, as contacts for
    /// recovery.
    pub remove_down_after: Duration,
    /// Largest datagram sent or accepted, in bytes.
    pub max_packet_size: usize,
    /// Most members kept in the table (active and inactive). News of further
    /// members is dropped and counted.
    pub max_members: usize,
    /// Most membership updates waiting to be disseminated. When full, the
    /// most-transmitted update is dropped and counted.
    pub max_updates_backlog: usize,
    /// Most custom broadcasts waiting to be disseminated; same policy.
    pub max_broadcast_backlog: usize,
    /// Now and then, send a summary of the member table to random active
    /// members, who answer with the records that differ (anti-entropy, see
    /// [`Message::Sync`](crate::Message::Sync)): repairs views that drifted
    /// apart, such as a join whose news some members missed. In sync, an
    /// exchange costs one datagram of at most 512 bytes of summary. The
    /// exchange also repairs missed custom broadcasts: each member keeps
    /// the ones it queued for 4 of its syncs; a request carries its kept
    /// items, and the answer those the request lacked. `None` disables
    /// both (and nothing is kept).
    pub periodic_sync: Option<PeriodicParams>,
    /// Announce to random down members now and then: lets partitions heal
    /// even when the other side forgot us. `None` disables.
    pub periodic_announce_to_down_members: Option<PeriodicParams>,
    /// Send the backlogs (membership updates and custom broadcasts, each
    /// guaranteed half of each datagram when both wait) to random members
    /// now and then, besides piggybacking them on probes; it runs only
    /// while there is something to send. `None` disables.
    pub periodic_gossip: Option<PeriodicParams>,
    /// While no peer is alive, seeds and known members are retried, first
    /// after this delay, doubling up to `rejoin_backoff_max`, with jitter.
    pub rejoin_backoff_min: Duration,
    /// The longest delay between two recovery attempts.
    pub rejoin_backoff_max: Duration,
}

impl Config {
    /// A config for a LAN of roughly `cluster_size` members, after memberlist's
    /// `DefaultLANConfig` (1 s probes, 500 ms RTT, 3 helpers, multipliers 4/4),
    /// with periodic gossip every 200 ms and backlogs sized to the cluster.
    pub fn new_lan(cluster_size: usize) -> Self {
        let size = cluster_size.max(1);
        Self {
            probe_period: Duration::from_secs(1),
            probe_rtt: Duration::from_millis(500),
            num_indirect_probes: 3,
            retransmit_multiplier: 4,
            suspicion_multiplier: 4,
            suspicion_max_multiplier: DEFAULT_SUSPICION_MAX,
            max_incarnation_step: DEFAULT_INCARNATION_STEP,
            check_source: true,
            awareness_max_multiplier: DEFAULT_AWARENESS_MAX,
            patient_probes: true,
            // Long enough to keep reaching out to the other side of a
            // partition (see periodic_announce_to_down_members), as Serf
            // does with its reconnect timeout.
            remove_down_after: Duration::from_secs(180),
            max_packet_size: 1400,
            max_members: size.saturating_mul(2).max(1024),
            max_updates_backlog: size.max(256),
            max_broadcast_backlog: 1024,
            periodic_sync: Some(PeriodicParams {
                frequency: Duration::from_secs(30),
                num_members: 1,
            }),
            periodic_announce_to_down_members: Some(PeriodicParams {
                frequency: Duration::from_secs(10),
                num_members: 1,
            }),
            periodic_gossip: Some(PeriodicParams {
                frequency: Duration::from_millis(200),
                num_members: 3,
            }),
            rejoin_backoff_min: Duration::from_millis(500),
            rejoin_backoff_max: Duration::from_secs(30),
        }
    }

    /// A config for members spread over a WAN, after memberlist's
    /// `DefaultWANConfig` (5 s probes, 3 s RTT, suspicion multiplier 6).
    pub fn new_wan(cluster_size: usize) -> Self {
        Self {
            probe_period: Duration::from_secs(5),
            probe_rtt: Duration::from_secs(3),
            suspicion_multiplier: 6,
            remove_down_after: Duration::from_secs(600),
            periodic_sync: Some(PeriodicParams {
                frequency: Duration::from_secs(60),
                num_members: 1,
            }),
            periodic_announce_to_down_members: Some(PeriodicParams {
                frequency: Duration::from_secs(30),
                num_members: 1,
            }),
            periodic_gossip: Some(PeriodicParams {
                frequency: Duration::from_millis(500),
                num_members: 4,
            }),
            rejoin_backoff_min: Duration::from_secs(2),
            rejoin_backoff_max: Duration::from_secs(120),
            ..Self::new_lan(cluster_size)
        }
    }

    /// A config for small networks of constrained devices: small datagrams
    /// (512 bytes, below any common MTU), small bounded tables, fewer
    /// messages (2 helpers, no periodic gossip; updates ride on probes).
    pub fn new_embedded() -> Self {
        Self {
            probe_period: Duration::from_secs(2),
            probe_rtt: Duration::from_millis(800),
            num_indirect_probes: 2,
            retransmit_multiplier: 3,
            suspicion_multiplier: 4,
            suspicion_max_multiplier: DEFAULT_SUSPICION_MAX,
            max_incarnation_step: DEFAULT_INCARNATION_STEP,
            check_source: true,
            awareness_max_multiplier: DEFAULT_AWARENESS_MAX,
            patient_probes: true,
            remove_down_after: Duration::from_secs(120),
            max_packet_size: 512,
            max_members: 64,
            max_updates_backlog: 64,
            max_broadcast_backlog: 16,
            periodic_sync: Some(PeriodicParams {
                frequency: Duration::from_secs(60),
                num_members: 1,
            }),
            periodic_announce_to_down_members: Some(PeriodicParams {
                frequency: Duration::from_secs(20),
                num_members: 1,
            }),
            periodic_gossip: None,
            rejoin_backoff_min: Duration::from_secs(1),
            rejoin_backoff_max: Duration::from_secs(60),
        }
    }

    /// The plain SWIM of the paper with no periodic extras, for tests and
    /// for reasoning: 1 s probes, 300 ms RTT, 3 helpers, no periodic tasks,
    /// a fixed suspicion timeout (`suspicion_max_multiplier` 1), a probe's
    /// verdict at the end of its period (`patient_probes` off).
    pub fn simple() -> Self {
        Self {
            probe_period: Duration::from_millis(1000),
            probe_rtt: Duration::from_millis(300),
            num_indirect_probes: 3,
            retransmit_multiplier: 4,
            suspicion_multiplier: 4,
            suspicion_max_multiplier: 1,
            max_incarnation_step: DEFAULT_INCARNATION_STEP,
            check_source: true,
            awareness_max_multiplier: DEFAULT_AWARENESS_MAX,
            patient_probes: false,
            remove_down_after: Duration::from_secs(15),
            max_packet_size: 1400,
            max_members: 1024,
            max_updates_backlog: 256,
            max_broadcast_backlog: 256,
            periodic_sync: None,
            periodic_announce_to_down_members: None,
            periodic_gossip: None,
            rejoin_backoff_min: Duration::from_millis(500),
            rejoin_backoff_max: Duration::from_secs(30),
        }
    }

    /// Checks every rule; the error names the field and the rule it broke.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, rule| Err(ConfigError { field, rule });
        if self.probe_period.is_zero() {
            return err("probe_period", "must be greater than zero");
        }
        if self.probe_rtt.is_zero() {
            return err("probe_rtt", "must be greater than zero");
        }
        if self.probe_rtt >= self.probe_period {
            return err(
                "probe_rtt",
                "must be below probe_period, to leave time for indirect probes",
            );
        }
        if self.retransmit_multiplier == 0 {
            return err(
                "retransmit_multiplier",
                "must be at least 1, or updates are never sent",
            );
        }
        if self.suspicion_multiplier == 0 {
            return err(
                "suspicion_multiplier",
                "must be at least 1, or suspects cannot refute",
            );
        }
        if self.suspicion_max_multiplier == 0 {
            return err(
                "suspicion_max_multiplier",
                "must be at least 1 (1 makes the suspicion timeout fixed)",
            );
        }
        if self.max_incarnation_step == 0 {
            return err(
                "max_incarnation_step",
                "must be at least 1, or no refutation heard from others could be applied",
            );
        }
        if self.remove_down_after.is_zero() {
            return err(
                "remove_down_after",
                "must be greater than zero, to recognise stale news",
            );
        }
        if self.max_packet_size < MIN_PACKET_SIZE {
            return err(
                "max_packet_size",
                "must be at least 128 bytes (MIN_PACKET_SIZE)",
            );
        }
        if self.max_packet_size > MAX_PACKET_SIZE {
            return err(
                "max_packet_size",
                "must be at most 65507 bytes (MAX_PACKET_SIZE, the largest UDP payload)",
            );
        }
        if self.awareness_max_multiplier == 0 {
            return err(
                "awareness_max_multiplier",
                "must be at least 1 (1 turns local health awareness off)",
            );
        }
        if self.max_members == 0 {
            return err("max_members", "must be at least 1");
        }
        if self.max_members > u32::MAX as usize {
            return err("max_members", "must fit in a u32");
        }
        if self.max_updates_backlog == 0 {
            return err("max_updates_backlog", "must be at least 1");
        }
        if self.max_broadcast_backlog == 0 {
            return err("max_broadcast_backlog", "must be at least 1");
        }
        self.validate_periodic()?;
        if self.rejoin_backoff_min.is_zero() {
            return err("rejoin_backoff_min", "must be greater than zero");
        }
        if self.rejoin_backoff_max < self.rejoin_backoff_min {
            return err("rejoin_backoff_max", "must not be below rejoin_backoff_min");
        }
        Ok(())
    }

    /// The rules every periodic task's parameters follow.
    fn validate_periodic(&self) -> Result<(), ConfigError> {
        for (field, params) in [
            ("periodic_sync", self.periodic_sync),
            (
                "periodic_announce_to_down_members",
                self.periodic_announce_to_down_members,
            ),
            ("periodic_gossip", self.periodic_gossip),
        ] {
            let Some(p) = params else { continue };
            if p.frequency.is_zero() {
                let rule = "frequency must be greater than zero (or use None)";
                return Err(ConfigError { field, rule });
            }
            if p.num_members == 0 {
                let rule = "num_members must be at least 1 (or use None)";
                return Err(ConfigError { field, rule });
            }
        }
        Ok(())
    }

    /// How many times an update is sent when the cluster has `members`
    /// members (this one included): `retransmit_multiplier × ⌈log10(n + 1)⌉`.
    pub fn max_transmissions(&self, members: usize) -> u32 {
        u32::from(self.retransmit_multiplier) * decimal_digits(members)
    }

    /// How long a suspect has to refute when the cluster has `members`
    /// members (this one included):
    /// `suspicion_multiplier × max(1, ⌈log10(n)⌉) × probe_period`.
    pub fn suspicion_timeout(&self, members: usize) -> Duration {
        let factor = u32::from(self.suspicion_multiplier) * ceil_log10(members).max(1);
        self.probe_period.saturating_mul(factor)
    }

    /// How long an unconfirmed suspicion lasts when the cluster has
    /// `members` members: [`suspicion_timeout`](Config::suspicion_timeout)
    /// × `suspicion_max_multiplier`.
    pub fn suspicion_timeout_max(&self, members: usize) -> Duration {
        self.suspicion_timeout(members)
            .saturating_mul(u32::from(self.suspicion_max_multiplier.max(1)))
    }
}

impl Default for Config {
    /// [`Config::new_lan`] for a cluster of 16.
    fn default() -> Self {
        Self::new_lan(16)
    }
}

/// `⌈log10(n + 1)⌉` for `n ≥ 1`, i.e. the number of decimal digits of `n`.
fn decimal_digits(n: usize) -> u32 {
    n.max(1).ilog10() + 1
}

/// `⌈log10(n)⌉`, zero for `n ≤ 1`.
fn ceil_log10(n: usize) -> u32 {
    if n <= 1 { 0 } else { (n - 1).ilog10() + 1 }
}

/// A config rule that was broken: which field, and what it must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending field of [`Config`].
    pub field: &'static str,
    /// The rule it broke, phrased as what to change.
    pub rule: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid config: `{}` {}", self.field, self.rule)
    }
}

impl core::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for c in [
            Config::simple(),
            Config::new_lan(3),
            Config::new_lan(10_000),
            Config::new_wan(100),
            Config::new_embedded(),
            Config::default(),
        ] {
            assert_eq!(c.validate(), Ok(()), "{c:?}");
        }
    }

    #[test]
    fn impossible_configs_name_the_field() {
        let base = Config::simple();
        let cases: [(Config, &str); 7] = [
            (
                Config {
                    probe_period: Duration::ZERO,
                    ..base.clone()
                },
                "probe_period",
            ),
            (
                Config {
                    probe_rtt: base.probe_period,
                    ..base.clone()
                },
                "probe_rtt",
            ),
            (
                Config {
                    max_packet_size: 64,
                    ..base.clone()
                },
                "max_packet_size",
            ),
            (
                Config {
                    retransmit_multiplier: 0,
                    ..base.clone()
                },
                "retransmit_multiplier",
            ),
            (
                Config {
                    suspicion_max_multiplier: 0,
                    ..base.clone()
                },
                "suspicion_max_multiplier",
            ),
            (
                Config {
                    periodic_gossip: Some(PeriodicParams {
                        frequency: Duration::ZERO,
                        num_members: 1,
                    }),
                    ..base.clone()
                },
                "periodic_gossip",
            ),
            (
                Config {
                    rejoin_backoff_max: Duration::from_millis(1),
                    ..base.clone()
                },
                "rejoin_backoff_max",
            ),
        ];
        for (config, field) in cases {
            let e = config.validate().unwrap_err();
            assert_eq!(e.field, field);
            let text = alloc::format!("{e}");
            assert!(text.contains(field), "{text}");
        }
    }

    #[test]
    fn size_adaptive_formulas() {
        let c = Config::simple();
        assert_eq!(c.max_transmissions(1), 4);
        assert_eq!(c.max_transmissions(9), 4);
        assert_eq!(c.max_transmissions(10), 8);
        assert_eq!(c.max_transmissions(1000), 16);
        assert_eq!(c.suspicion_timeout(1), Duration::from_secs(4));
        assert_eq!(c.suspicion_timeout(10), Duration::from_secs(4));
        assert_eq!(c.suspicion_timeout(11), Duration::from_secs(8));
        assert_eq!(c.suspicion_timeout(10_000), Duration::from_secs(16));
        assert_eq!(c.suspicion_timeout_max(10_000), Duration::from_secs(16));
        let lan = Config::new_lan(100);
        assert_eq!(lan.suspicion_timeout(100), Duration::from_secs(8));
        assert_eq!(lan.suspicion_timeout_max(100), Duration::from_secs(48));
    }
}
