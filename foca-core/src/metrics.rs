//! Counters that say what the protocol did and what it dropped.
//!
//! Network noise (stale, foreign, malformed or misdirected datagrams) is not
//! an error: each such datagram is dropped and counted here under its reason.
//! [`Foca::metrics`](crate::Foca::metrics) has the protocol's counters;
//! [`Endpoint::metrics`](crate::Endpoint::metrics) adds what the envelope
//! refused and what the endpoint's queues dropped.

/// Why a received datagram was dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DropCounts {
    /// Did not decode (bad header, bad update, bad framing, trailing bytes).
    pub decode: u64,
    /// Larger than `max_packet_size`.
    pub oversized: u64,
    /// Addressed to another identity (often an old one of this member).
    pub wrong_destination: u64,
    /// Claims to come from this member's own address.
    pub from_self: u64,
    /// From a member recorded as down or left at that incarnation; answered
    /// with [`Message::TurnUndead`](crate::Message::TurnUndead).
    pub from_down_member: u64,
    /// From an identity superseded by a newer one on the same address.
    pub stale_identity: u64,
    /// Received while this member had left or was defunct.
    pub not_active: u64,
    /// Came from an address other than the one its sender claims (see
    /// `Config::check_source`).
    pub source_mismatch: u64,
    /// Sealed, and its sequence number was seen before from that sender
    /// under that key: a replay (see [`Sequence`](crate::Sequence)).
    pub replayed: u64,
    /// Sealed, and its sequence number is below its sender's window: a
    /// replay of an old datagram, or one delayed behind more than
    /// [`REPLAY_WINDOW`](crate::REPLAY_WINDOW) later ones.
    pub too_old: u64,
    /// Refused by the envelope: truncated, not foca traffic, or of an
    /// unknown version or mode ([`Refusal::Malformed`](crate::Refusal)).
    pub malformed_envelope: u64,
    /// Refused by the envelope: from another cluster.
    pub other_cluster: u64,
    /// Refused by the envelope: checksum mismatch.
    pub corrupted: u64,
    /// Refused by the envelope: failed authentication (forged, unknown
    /// key, or plain where encryption is required).
    pub unauthenticated: u64,
}

impl DropCounts {
    /// All drops, whatever the reason.
    pub fn total(&self) -> u64 {
        self.decode
            + self.oversized
            + self.wrong_destination
            + self.from_self
            + self.from_down_member
            + self.stale_identity
            + self.not_active
            + self.source_mismatch
            + self.replayed
            + self.too_old
            + self.malformed_envelope
            + self.other_cluster
            + self.corrupted
            + self.unauthenticated
    }
}

/// What a member has done since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Metrics {
    /// Direct probes sent.
    pub probes_sent: u64,
    /// Probes that got no ack, direct or indirect, by the end of the period.
    pub probes_failed: u64,
    /// Probes whose period ended before their indirect stage ran (a late
    /// timer): concluded without suspicion.
    pub probes_incomplete: u64,
    /// Indirect probe requests sent to helpers.
    pub indirect_probes_sent: u64,
    /// Second direct pings, sent at half the probe RTT to a target that
    /// had not acked (see `Config::patient_probes`).
    pub probes_retried: u64,
    /// Probes saved by a helper after the direct probe went unanswered.
    pub indirect_successes: u64,
    /// Members this member started suspecting.
    pub suspicions_raised: u64,
    /// Suspicions this member confirmed: its own probe of a member others
    /// already suspected failed too (Lifeguard's independent confirmation;
    /// see `Config::suspicion_max_multiplier`).
    pub suspicions_confirmed: u64,
    /// Confirmations of suspicions received from other members (each
    /// reporter counted once per suspicion).
    pub confirmations_received: u64,
    /// Suspicions about others that were refuted (a suspect came back alive).
    pub suspicions_refuted: u64,
    /// Times this member refuted news of its own suspicion.
    pub self_suspicions_refuted: u64,
    /// Times this member learned it had been declared down or left at its
    /// current incarnation, and refuted it.
    pub self_declared_down: u64,
    /// Members this member declared down after their suspicion timed out.
    pub members_declared_down: u64,
    /// Down verdicts sent straight to the member concerned, because others
    /// still gossiped it alive at the incarnation this member declared it
    /// down at (see `TurnUndead`).
    pub verdicts_resent: u64,
    /// This member's own down verdicts it forgot on coming back from having
    /// no live peer (see `MAX_VERDICTS_REMEMBERED`).
    pub verdicts_withdrawn: u64,
    /// Verdicts (down, left) about a member held alive, heard from someone
    /// else and passed straight to that member, so it refutes at once if
    /// they are wrong.
    pub verdicts_forwarded: u64,
    /// Renames of a member held active, heard from someone else, checked
    /// with a ping to the identity held (applied only when the new
    /// identity answers for itself).
    pub renames_checked: u64,
    /// Members not in the table, alive or suspect by others' news, pinged
    /// instead of believed (they are added when they answer for
    /// themselves).
    pub newcomers_checked: u64,
    /// Members not in the table, alive or suspect by others' news, neither
    /// believed nor pinged: over the bound on checks (see
    /// `newcomers_checked`); the news will come again.
    pub newcomers_unchecked: u64,
    /// Hearsay ignored because it raised a known member's incarnation (or
    /// this one's) by more than `Config::max_incarnation_step`.
    pub hearsay_ignored: u64,
    /// News about this member it could not refute: its incarnation is spent
    /// and its identity cannot be renewed (it stays a member, unrefuted).
    pub unrefutable: u64,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Received datagrams dropped, by reason.
    pub dropped: DropCounts,
    /// Updates dropped because the updates backlog was full.
    pub updates_dropped: u64,
    /// Updates not queued because they could never fit in a datagram.
    pub updates_too_large: u64,
    /// Custom broadcasts dropped because their backlog was full.
    pub broadcasts_dropped: u64,
    /// Custom broadcast items the handler rejected.
    pub broadcasts_rejected: u64,
    /// News of new members dropped because the table was at `max_members`.
    pub members_dropped: u64,
    /// News about this member's address under another identity, ignored.
    pub foreign_self_updates: u64,
    /// Replies not sent because the peer's identity made the header alone
    /// exceed `max_packet_size`.
    pub unsendable: u64,
    /// Replies cut short or not sent because they would have exceeded
    /// three times the bytes received from an address that has not proven
    /// itself (see [`Endpoint`](crate::Endpoint)).
    pub replies_limited: u64,
    /// Announces left unanswered because their source had been answered
    /// [`MAX_FEEDS_PER_SOURCE`](crate::MAX_FEEDS_PER_SOURCE) times in the
    /// probe period.
    pub feeds_limited: u64,
    /// Indirect probe requests refused because their target is not an
    /// active member (a forger aiming this member's pings at a third
    /// party).
    pub ping_requests_refused: u64,
    /// Table summaries ([`Message::Sync`](crate::Message::Sync)) left
    /// unanswered because this member had answered its share for the probe
    /// period (far more than its peers' configs send: a misbehaving peer).
    pub syncs_unanswered: u64,
    /// Timer events ignored because they were stale (from before a reset,
    /// or superseded where the runtime does not replace timers).
    pub stale_timers: u64,
    /// Datagrams an endpoint dropped because the driver did not drain them
    /// in time.
    pub dropped_transmits: u64,
    /// Events an endpoint dropped because the driver did not drain them in
    /// time.
    pub dropped_events: u64,
    /// Datagrams an endpoint's envelope could not seal (counted, dropped).
    pub seal_errors: u64,
    /// Membership updates waiting to be disseminated (a gauge).
    pub updates_backlog: u64,
    /// Custom broadcasts waiting to be disseminated (a gauge).
    pub broadcast_backlog: u64,
    /// Custom broadcasts kept for anti-entropy: sync requests carry them
    /// and answers carry those a request lacked (a gauge; see
    /// `Config::periodic_sync`).
    pub broadcasts_kept: u64,
    /// The largest updates backlog seen.
    pub max_updates_backlog: u64,
    /// Lifeguard's local health multiplier now (a gauge, 1 when healthy):
    /// see `Config::awareness_max_multiplier`.
    pub health_multiplier: u64,
    /// Nacks received from helpers of this member's probes.
    pub nacks_received: u64,
}
