//! What travels on the wire, before a [`Codec`](crate::Codec) turns it into bytes.
//!
//! A datagram is laid out as:
//!
//! ```text
//! +----------------+-------------+---------------------+-------------+-----------------------------+
//! | Header (codec) | u16 BE: n   | n × Member (codec)  | u16 BE: m   | m × (u16 BE length, bytes)  |
//! +----------------+-------------+---------------------+-------------+-----------------------------+
//! ```
//!
//! A [`Message::Sync`] has one more section right after the header: its
//! summary, `u16 BE: k` then `k × u16 BE` bucket sums (`k` a power of two,
//! at most 256).
//!
//! Every section is counted, so a datagram cut short anywhere (a receive
//! buffer too small, say) is rejected rather than read as a shorter one.
//! The core writes the counts and lengths itself, so a codec only encodes
//! single values and a broadcast handler only ever sees one whole item. A
//! datagram is decoded completely, and checked to end exactly where its last
//! item ends, before anything in it is applied: a datagram that fails to
//! decode changes no state.

use crate::Incarnation;

/// Numbers a probe so that late or misdirected acks are recognised.
pub type ProbeNumber = u32;

/// Who sent a datagram, to whom, and what it asks.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Header<T> {
    /// The sender's identity.
    pub src: T,
    /// The sender's incarnation when it sent this: receiving a datagram is
    /// evidence that the sender was alive at this incarnation.
    pub src_incarnation: Incarnation,
    /// The identity this datagram is for. Datagrams for another identity
    /// (an old one of the receiver's, say) are dropped and counted.
    pub dst: T,
    /// What the datagram asks of the receiver.
    pub message: Message<T>,
}

/// The message kinds of SWIM with its dissemination extensions.
///
/// Every kind can carry membership updates and custom broadcasts after the
/// header ("piggybacking", SWIM §4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Message<T> {
    /// A direct probe: "are you alive?".
    Ping(ProbeNumber),
    /// The answer to [`Message::Ping`].
    Ack(ProbeNumber),
    /// "Please probe `target` for me": sent to a few helpers after a direct
    /// probe went unanswered for the probe round-trip time.
    PingReq {
        /// The member being probed.
        target: T,
        /// The requester's probe number.
        probe_number: ProbeNumber,
    },
    /// A helper's probe on behalf of `origin`.
    IndirectPing {
        /// The member that asked for this probe.
        origin: T,
        /// The origin's probe number.
        probe_number: ProbeNumber,
    },
    /// The answer to [`Message::IndirectPing`], sent back to the helper.
    IndirectAck {
        /// The member that asked for the probe.
        origin: T,
        /// The origin's probe number.
        probe_number: ProbeNumber,
    },
    /// The helper passing an [`Message::IndirectAck`] on to the origin.
    ForwardedAck {
        /// The member that answered.
        target: T,
        /// The origin's probe number.
        probe_number: ProbeNumber,
    },
    /// "I want to join": answered with a [`Message::Feed`]. Accepted when
    /// addressed to any identity with the receiver's address.
    Announce,
    /// A sample of the sender's active members, answering an announce.
    Feed,
    /// Backlogged news, no request: membership updates and custom
    /// broadcasts, each guaranteed half the datagram when both wait (a
    /// [`Sync`](Message::Sync) reply carries records only).
    Gossip,
    /// Custom broadcasts only (no request).
    Broadcast,
    /// "I consider you down": sent to a member that talks while it is
    /// recorded as down or left. Carries that record as an update, so the
    /// receiver can refute it and rejoin.
    TurnUndead,
    /// Anti-entropy: "here is a summary of my member table". The summary
    /// (a section after the header, see the module docs) holds, for each of
    /// `2^b` buckets of records, a 16-bit sum of hashes of the active
    /// records `(identity, incarnation)` in it, the sender's own included.
    /// The receiver answers only if some bucket sums differ from its own:
    /// a request with a `Sync { reply: true }` that carries its summary and,
    /// as updates, its records in the differing buckets; a reply with a
    /// [`Message::Gossip`] of its records there. A reply whose records
    /// taught the requester members it lacked is followed by a request to
    /// another member, until one brings nothing new. Members whose configs
    /// give different bucket counts answer a request with a random sample
    /// instead (a [`Message::Feed`]).
    Sync {
        /// Whether this answers a `Sync` (and must not be answered with one).
        reply: bool,
    },
    /// A helper's answer to a [`PingReq`](Message::PingReq) with the
    /// prober's probe number when the target stayed silent (Lifeguard's
    /// nack, sent at four fifths of what was left of the probe period; at
    /// once if the helper does not hold the target active): the prober
    /// learns that its helper heard it, so a probe that fails although its
    /// helpers answered points at the target, and one whose helpers stayed
    /// silent points at the prober's own links (see
    /// [`Config::awareness_max_multiplier`](crate::Config::awareness_max_multiplier)).
    Nack(ProbeNumber),
}

impl<T> Message<T> {
    /// A short, stable name for logs and metrics.
    pub const fn name(&self) -> &'static str {
        match self {
            Message::Ping(_) => "ping",
            Message::Ack(_) => "ack",
            Message::PingReq { .. } => "ping-req",
            Message::IndirectPing { .. } => "indirect-ping",
            Message::IndirectAck { .. } => "indirect-ack",
            Message::ForwardedAck { .. } => "forwarded-ack",
            Message::Announce => "announce",
            Message::Feed => "feed",
            Message::Gossip => "gossip",
            Message::Broadcast => "broadcast",
            Message::Sync { .. } => "sync",
            Message::TurnUndead => "turn-undead",
            Message::Nack(_) => "nack",
        }
    }
}
