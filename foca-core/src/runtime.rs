//! The boundary between the protocol and the world: sending, timers, events.
//!
//! The core never reads a clock nor touches a socket. It asks a [`Runtime`] to
//! send bytes, to hand a [`Timer`] back after a delay, and to tell the user
//! what happened ([`Notification`], received custom broadcasts). Most users
//! never implement `Runtime`: the [`Endpoint`](crate::Endpoint) does, with a
//! [`TimerQueue`](crate::TimerQueue) and bounded output queues, and every
//! driver uses it.
//!
//! Timers live in slots ([`TimerKey`]): one per protocol chain, and one per
//! member and kind. A timer submitted under a key that holds one replaces
//! it, and a member's timers are replaced or cancelled whenever its record
//! changes. So a runtime that honours keys holds at most
//! [`MAX_CHAIN_TIMERS`] plus three timers per member of the table, whatever
//! arrives from the network. A runtime that does not (one that simply
//! delivers every timer) still works: the core recognises superseded timers
//! when they fire, and ignores them.

use core::time::Duration;

use crate::{Identity, Incarnation, ProbeNumber};

/// What the core needs from its environment.
pub trait Runtime<T: Identity> {
    /// Reports a membership event to the user.
    fn notify(&mut self, notification: Notification<T>);

    /// Sends one datagram to `to`. Best effort: losing it is normal.
    fn send_to(&mut self, to: T, data: &[u8]);

    /// Hands `event` back to [`Foca::handle_timer`](crate::Foca::handle_timer)
    /// after `after`, replacing any timer pending under the same
    /// [`Timer::key`]. Delivering timers late, twice or out of order is
    /// tolerated, but delays the protocol.
    fn submit_after(&mut self, event: Timer<T>, after: Duration);

    /// Withdraws the timer pending under `key`, if any: it is no longer
    /// needed (an acked probe's indirect stage, the suspicion of a member
    /// that refuted). A runtime that ignores this still works: the core
    /// ignores the event when it fires. Does nothing by default.
    fn cancel(&mut self, key: &TimerKey<T::Addr>) {
        let _ = key;
    }

    /// A custom broadcast that `from` sent and the
    /// [`BroadcastHandler`](crate::BroadcastHandler) accepted as news. Does
    /// nothing by default.
    fn broadcast_received(&mut self, item: &[u8], from: &T) {
        let _ = (item, from);
    }
}

impl<T: Identity, R: Runtime<T> + ?Sized> Runtime<T> for &mut R {
    fn notify(&mut self, notification: Notification<T>) {
        (**self).notify(notification);
    }

    fn send_to(&mut self, to: T, data: &[u8]) {
        (**self).send_to(to, data);
    }

    fn submit_after(&mut self, event: Timer<T>, after: Duration) {
        (**self).submit_after(event, after);
    }

    fn cancel(&mut self, key: &TimerKey<T::Addr>) {
        (**self).cancel(key);
    }

    fn broadcast_received(&mut self, item: &[u8], from: &T) {
        (**self).broadcast_received(item, from);
    }
}

/// How many chain slots [`TimerKey`] has: the timers pending besides the
/// per-member ones.
pub const MAX_CHAIN_TIMERS: usize = 6;

/// The slot a [`Timer`] occupies: one per protocol chain, and one per member
/// (by address) and kind. A timer replaces the one pending in its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKey<A> {
    /// [`Timer::ProbeRandomMember`].
    Probe,
    /// [`Timer::SendIndirectProbe`].
    IndirectProbe,
    /// [`Timer::PeriodicSync`].
    Sync,
    /// [`Timer::PeriodicAnnounceDown`].
    AnnounceDown,
    /// [`Timer::PeriodicGossip`].
    Gossip,
    /// [`Timer::Rejoin`].
    Rejoin,
    /// [`Timer::ChangeSuspectToDown`] for the member at this address.
    Suspicion(A),
    /// [`Timer::RemoveDown`] for the member at this address.
    Removal(A),
    /// [`Timer::SendNack`] to the prober at this address.
    Nack(A),
}

/// Tells timer events scheduled before a reset (a config change, an identity
/// change, a leave) from current ones: stale events are ignored.
pub type TimerToken = u32;

/// A delayed event the core scheduled through [`Runtime::submit_after`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Timer<T> {
    /// End of a probe period: conclude the current probe, start the next.
    ProbeRandomMember(TimerToken),
    /// The probe round-trip time elapsed: ask helpers to probe indirectly
    /// if the direct probe is still unanswered.
    SendIndirectProbe {
        /// The member being probed.
        probed_id: T,
        /// Which probe this is about.
        probe_number: ProbeNumber,
    },
    /// The suspicion timeout elapsed: declare the member down unless it
    /// refuted (or was otherwise updated) meanwhile.
    ChangeSuspectToDown {
        /// The suspected member.
        member_id: T,
        /// The incarnation it was suspected at.
        incarnation: Incarnation,
    },
    /// Forget a down or left member, unless it came back meanwhile.
    RemoveDown {
        /// The inactive member.
        member_id: T,
        /// The incarnation it was recorded at.
        incarnation: Incarnation,
    },
    /// A helper's side of an indirect probe: the target has not answered
    /// the ping relayed for `origin` in time, so tell `origin` that its
    /// request arrived (Lifeguard's nack: the prober's own links are
    /// fine), unless the target's ack was forwarded meanwhile.
    SendNack {
        /// The prober that asked.
        origin: T,
        /// Which of its probes this is about.
        probe_number: ProbeNumber,
    },
    /// Periodic summary exchange with random active members (anti-entropy).
    PeriodicSync(TimerToken),
    /// Periodic announce to random down members (heals partitions).
    PeriodicAnnounceDown(TimerToken),
    /// Periodic gossip of the updates backlog.
    PeriodicGossip(TimerToken),
    /// Retry the seeds while no peer is alive (zero-membership recovery).
    Rejoin(TimerToken),
}

impl<T: Identity> Timer<T> {
    /// The slot this timer occupies.
    pub fn key(&self) -> TimerKey<T::Addr> {
        match self {
            Timer::ProbeRandomMember(_) => TimerKey::Probe,
            Timer::SendIndirectProbe { .. } => TimerKey::IndirectProbe,
            Timer::ChangeSuspectToDown { member_id, .. } => TimerKey::Suspicion(member_id.addr()),
            Timer::RemoveDown { member_id, .. } => TimerKey::Removal(member_id.addr()),
            Timer::SendNack { origin, .. } => TimerKey::Nack(origin.addr()),
            Timer::PeriodicSync(_) => TimerKey::Sync,
            Timer::PeriodicAnnounceDown(_) => TimerKey::AnnounceDown,
            Timer::PeriodicGossip(_) => TimerKey::Gossip,
            Timer::Rejoin(_) => TimerKey::Rejoin,
        }
    }
}

impl<T> Timer<T> {
    /// A short, stable name for logs and metrics.
    pub const fn name(&self) -> &'static str {
        match self {
            Timer::ProbeRandomMember(_) => "probe-random-member",
            Timer::SendIndirectProbe { .. } => "send-indirect-probe",
            Timer::ChangeSuspectToDown { .. } => "change-suspect-to-down",
            Timer::RemoveDown { .. } => "remove-down",
            Timer::SendNack { .. } => "send-nack",
            Timer::PeriodicSync(_) => "periodic-sync",
            Timer::PeriodicAnnounceDown(_) => "periodic-announce-down",
            Timer::PeriodicGossip(_) => "periodic-gossip",
            Timer::Rejoin(_) => "rejoin",
        }
    }
}

/// Membership events, in the order they happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification<T> {
    /// A member became active (joined, or came back).
    MemberUp(T),
    /// A member was declared failed.
    MemberDown(T),
    /// A member left gracefully.
    MemberLeft(T),
    /// An active member was superseded by a newer identity on the same
    /// address (a restart): `(old, new)`.
    Rename(T, T),
    /// This member went from no live peers to at least one.
    Active,
    /// This member lost its last live peer. It keeps retrying its seeds and
    /// the members it knew, with backoff, until the network returns.
    Idle,
    /// This member switched to a new identity (renewal, or
    /// [`Foca::change_identity`](crate::Foca::change_identity)).
    Rejoin(T),
    /// This member cannot take part any more: its incarnation is spent and its
    /// identity cannot be renewed. Change its identity to continue.
    Defunct,
}
