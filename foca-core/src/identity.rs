//! Identities: who a member is, and how two claims on one address are settled.
//!
//! SWIM gossips about *members*. A member is named by an [`Identity`]: a value
//! that is unique in the cluster and that the runtime knows how to reach. Each
//! identity has an [`Identity::Addr`], the part that must be unique (a socket
//! address, a host name). When a process restarts it keeps its address but
//! must be told apart from its former self, whose death may still be
//! gossiped: that is what [`Identity::renew`] and [`Identity::win_addr_conflict`]
//! are for.
//!
//! Two identities ship ready-made:
//! - [`core::net::SocketAddr`]: the address *is* the identity. Simplest; a
//!   restarted member rejoins by learning its previous incarnation (the cluster
//!   tells it) and refuting it.
//! - [`GenerationalId`]: an address plus a generation number. A restarted
//!   process that picks a higher generation (a start time, a random number)
//!   supersedes its former self at once.

use core::fmt;
use core::hash::Hash;

/// The name of a cluster member.
///
/// # Contract
/// - [`addr`](Identity::addr) is unique in the cluster: at most one identity
///   per address is a member at any time. The member table is indexed by it.
/// - [`win_addr_conflict`](Identity::win_addr_conflict) is a strict total order
///   among identities that share an address: for `a != b` with equal
///   addresses, exactly one of `a.win_addr_conflict(&b)` and
///   `b.win_addr_conflict(&a)` is true. Members converge on the winner, so the
///   order must be the same on every member.
/// - [`renew`](Identity::renew), when it returns `Some(new)`, returns an
///   identity with the same address that wins the conflict against `self`.
/// - [`Hash`] feeds every field that tells two identities apart (a derived
///   impl does), in a way that does not depend on the platform beyond what
///   [`Hasher`](core::hash::Hasher) sees: members compare summaries of their
///   tables built from it (see [`Message::Sync`](crate::Message::Sync)).
pub trait Identity: Clone + Eq + Hash + fmt::Debug {
    /// The unique part of an identity; the member table's key.
    type Addr: Clone + Eq + Ord + Hash + fmt::Debug;

    /// The address this identity claims.
    fn addr(&self) -> Self::Addr;

    /// A fresh identity for the same address that supersedes `self`, used
    /// when `self` can no longer be used (its incarnation number is spent).
    /// `None` when the identity cannot be renewed.
    fn renew(&self) -> Option<Self>;

    /// Whether `self` supersedes `other`, an identity with the same address.
    fn win_addr_conflict(&self, other: &Self) -> bool;
}

impl Identity for core::net::SocketAddr {
    type Addr = core::net::SocketAddr;

    fn addr(&self) -> Self::Addr {
        *self
    }

    fn renew(&self) -> Option<Self> {
        None
    }

    fn win_addr_conflict(&self, _other: &Self) -> bool {
        // The address is the whole identity: two different identities never
        // share an address.
        false
    }
}

/// An address plus a generation: the identity most deployments want.
///
/// A process picks a generation when it starts (a start timestamp or a random
/// number). The higher generation wins a conflict on the same address, so a
/// restarted process supersedes its former self immediately, and
/// [`renew`](Identity::renew) moves to the next generation.
///
/// To join through a seed whose generation is unknown, announce to
/// [`GenerationalId::seed`]: a member accepts announces addressed to its
/// address whatever the generation.
///
/// ```
/// use foca_core::{GenerationalId, Identity};
/// let a = GenerationalId::new("10.0.0.1:7000", 5);
/// let b = a.renew().unwrap();
/// assert_eq!(b.generation(), 6);
/// assert!(b.win_addr_conflict(&a));
/// assert!(!a.win_addr_conflict(&b));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GenerationalId<A> {
    addr: A,
    generation: u32,
}

impl<A> GenerationalId<A> {
    /// An identity for `addr` at `generation`.
    pub const fn new(addr: A, generation: u32) -> Self {
        Self { addr, generation }
    }

    /// A placeholder for a seed whose generation is unknown (generation 0).
    /// Only useful as the destination of an announce.
    pub const fn seed(addr: A) -> Self {
        Self {
            addr,
            generation: 0,
        }
    }

    /// The generation number.
    pub const fn generation(&self) -> u32 {
        self.generation
    }

    /// The address, by reference.
    pub const fn address(&self) -> &A {
        &self.addr
    }
}

impl<A> Identity for GenerationalId<A>
where
    A: Clone + Eq + Ord + Hash + fmt::Debug,
{
    type Addr = A;

    fn addr(&self) -> A {
        self.addr.clone()
    }

    fn renew(&self) -> Option<Self> {
        self.generation.checked_add(1).map(|generation| Self {
            addr: self.addr.clone(),
            generation,
        })
    }

    fn win_addr_conflict(&self, other: &Self) -> bool {
        self.generation > other.generation
    }
}

/// An identity a UDP driver can reach: its address is the socket address
/// datagrams for it go to, and a seed known only by that address can be
/// named.
///
/// The [`Endpoint`](crate::Endpoint) speaks in [`Identity::Addr`]s (where a
/// datagram came from, where one goes); for these identities that is a
/// [`core::net::SocketAddr`], which is all a UDP driver needs.
///
/// ```
/// use core::net::SocketAddr;
/// use foca_core::{GenerationalId, Identity, SocketIdentity};
///
/// let addr: SocketAddr = "127.0.0.1:7000".parse().unwrap();
/// let id = GenerationalId::new(addr, 42);
/// assert_eq!(id.addr(), addr);
/// assert_eq!(<GenerationalId<SocketAddr>>::seed_at(addr).generation(), 0);
/// ```
pub trait SocketIdentity: Identity<Addr = core::net::SocketAddr> {
    /// An identity to announce to when only the address is known (a seed).
    /// The member there accepts the announce whatever its real identity.
    fn seed_at(addr: core::net::SocketAddr) -> Self;
}

impl SocketIdentity for core::net::SocketAddr {
    fn seed_at(addr: core::net::SocketAddr) -> Self {
        addr
    }
}

impl SocketIdentity for GenerationalId<core::net::SocketAddr> {
    fn seed_at(addr: core::net::SocketAddr) -> Self {
        Self::seed(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generational_conflict_is_a_strict_order() {
        let a = GenerationalId::new(1u32, 3);
        let b = GenerationalId::new(1u32, 4);
        assert!(b.win_addr_conflict(&a));
        assert!(!a.win_addr_conflict(&b));
        assert!(!a.win_addr_conflict(&a));
    }

    #[test]
    fn generational_renew_stops_at_max() {
        let a = GenerationalId::new(1u32, u32::MAX);
        assert_eq!(a.renew(), None);
    }

    #[test]
    fn socket_addr_identity() {
        let a: core::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(a.addr(), a);
        assert_eq!(a.renew(), None);
    }
}
