//! The boundary between the protocol and the world: sending, timers, events.
//!
//! The core never reads a clock nor touches a socket. It asks a [`Runtime`] to
//! send bytes, to hand a [`Timer`] back after a delay, and to tell the user
//! what happened ([`Notification`]). Most users never implement `Runtime`:
//! the [`Endpoint`](crate::Endpoint) wrapper does, with an ordered timer queue,
//! and every driver uses it.

use core::time::Duration;

use crate::{Incarnation, ProbeNumber};

/// What the core needs from its environment.
pub trait Runtime<T> {
    /// Reports a membership event to the user.
    fn notify(&mut self, notification: Notification<T>);

    /// Sends one datagram to `to`. Best effort: losing it is normal.
    fn send_to(&mut self, to: T, data: &[u8]);

    /// Hands `event` back to [`Foca::handle_timer`](crate::Foca::handle_timer)
    /// after `after`. Delivering timers late or out of order is tolerated,
    /// but delays the protocol.
    fn submit_after(&mut self, event: Timer<T>, after: Duration);

    /// Withdraws a timer submitted earlier that is no longer needed (an
    /// acked probe's indirect stage). A hint: a runtime may ignore it, and
    /// the core ignores the event if it fires anyway. Does nothing by
    /// default.
    fn cancel(&mut self, event: &Timer<T>) {
        let _ = event;
    }
}

impl<T, R: Runtime<T> + ?Sized> Runtime<T> for &mut R {
    fn notify(&mut self, notification: Notification<T>) {
        (**self).notify(notification);
    }

    fn send_to(&mut self, to: T, data: &[u8]) {
        (**self).send_to(to, data);
    }

    fn submit_after(&mut self, event: Timer<T>, after: Duration) {
        (**self).submit_after(event, after);
    }

    fn cancel(&mut self, event: &Timer<T>) {
        (**self).cancel(event);
    }
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
    /// Periodic summary exchange with random active members (anti-entropy).
    PeriodicSync(TimerToken),
    /// Periodic announce to random down members (heals partitions).
    PeriodicAnnounceDown(TimerToken),
    /// Periodic gossip of the updates backlog.
    PeriodicGossip(TimerToken),
    /// Retry the seeds while no peer is alive (zero-membership recovery).
    Rejoin(TimerToken),
}

impl<T> Timer<T> {
    /// A short, stable name for logs and metrics.
    pub const fn name(&self) -> &'static str {
        match self {
            Timer::ProbeRandomMember(_) => "probe-random-member",
            Timer::SendIndirectProbe { .. } => "send-indirect-probe",
            Timer::ChangeSuspectToDown { .. } => "change-suspect-to-down",
            Timer::RemoveDown { .. } => "remove-down",
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
