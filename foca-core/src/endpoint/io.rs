//! What goes into an [`Endpoint`](super::Endpoint) besides datagrams and
//! time ([`Command`]), and what comes out ([`Transmit`], [`Event`],
//! [`Snapshot`]).

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::{Config, ConnectionState, Member, Notification};

/// A request from the user, defined once for every driver: a driver's
/// handle sends these as they are, and the driver hands them to
/// [`Endpoint::command`](super::Endpoint::command).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command<T> {
    /// Ask a member to let this one in (see
    /// [`Foca::announce`](crate::Foca::announce)); the identity may be a
    /// placeholder with the right address
    /// ([`GenerationalId::seed`](crate::GenerationalId::seed)). After a
    /// leave, this rejoins.
    Announce(T),
    /// Announce to these seeds and remember them for recovery (see
    /// [`Foca::join`](crate::Foca::join)). After a leave, this rejoins.
    Join(Vec<T>),
    /// Leave the cluster gracefully (see
    /// [`Foca::leave_cluster`](crate::Foca::leave_cluster)).
    Leave,
    /// Add a custom broadcast: handed to the broadcast handler and, if it
    /// is news, queued and sent to a few members at once.
    AddBroadcast(Vec<u8>),
    /// Send the updates backlog to a few members now (see
    /// [`Foca::gossip`](crate::Foca::gossip)).
    Gossip,
    /// Replace the config (see [`Foca::set_config`](crate::Foca::set_config)).
    SetConfig(Box<Config>),
    /// Switch to a new identity (see
    /// [`Foca::change_identity`](crate::Foca::change_identity)).
    ChangeIdentity(T),
    /// Merge membership news learned outside the protocol (see
    /// [`Foca::apply_many`](crate::Foca::apply_many)).
    Apply(Vec<Member<T>>),
    /// Install a table the cluster already has, without disseminating it
    /// (see [`Foca::restore`](crate::Foca::restore)).
    Restore(Vec<Member<T>>),
}

/// A sealed datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit<A> {
    /// Where it goes: the destination member's address.
    pub to: A,
    /// The datagram, sealed by the endpoint's envelope.
    pub data: Vec<u8>,
}

/// What an endpoint tells its user, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<T> {
    /// A membership event: a member up, down or left, a restart seen as a
    /// rename, this member connected or idle, renewed or defunct.
    Membership(Notification<T>),
    /// A custom broadcast from a peer that the broadcast handler accepted
    /// as news.
    Broadcast {
        /// The item, as the handler received it.
        item: Vec<u8>,
        /// The member whose datagram carried it (not necessarily its author).
        from: T,
    },
}

/// The member list at one moment, as a driver publishes it (see
/// [`Endpoint::poll_snapshot`](super::Endpoint::poll_snapshot)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot<T> {
    /// This member's identity (it changes when the identity is renewed).
    pub identity: T,
    /// The active members (alive or suspect), this member excluded, in no
    /// particular order.
    pub members: Vec<Member<T>>,
    /// Connected (at least one live peer), disconnected (retrying its
    /// seeds), left or defunct.
    pub state: ConnectionState,
}
