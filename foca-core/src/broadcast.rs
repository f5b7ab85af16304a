//! Custom broadcasts: user data disseminated by the same epidemic as
//! membership updates.
//!
//! The core treats each broadcast as opaque bytes. A [`BroadcastHandler`]
//! decides what an item means, whether it is news (and so worth passing on),
//! and which destinations should get it. Items are identified by a
//! [`Invalidates`] value so that newer items replace older ones in the backlog
//! instead of piling up.

use core::fmt;

/// Identifies a custom broadcast and settles which of two related items is
/// current.
///
/// Items whose [`key`](Invalidates::key)s are equal compete for one place in
/// the backlog: a new item replaces the queued one if it
/// [`invalidates`](Invalidates::invalidates) it, and is dropped otherwise.
/// Give every independent item a distinct key.
///
/// ```
/// use foca_core::Invalidates;
/// /// "config `name` is now at `version`": only the latest version matters.
/// struct ConfigVersion { name: &'static str, version: u64 }
/// impl Invalidates for ConfigVersion {
///     type Key = &'static str;
///     fn key(&self) -> &'static str { self.name }
///     fn invalidates(&self, other: &Self) -> bool { self.version > other.version }
/// }
/// ```
pub trait Invalidates {
    /// Items with equal keys compete for one backlog slot.
    type Key: Ord + Clone;

    /// This item's key.
    fn key(&self) -> Self::Key;

    /// Whether `self` makes `other` (with an equal key) obsolete.
    fn invalidates(&self, other: &Self) -> bool;
}

/// Receives custom broadcasts and steers their dissemination.
pub trait BroadcastHandler<T> {
    /// Describes one item (its key and whatever `should_send` needs).
    type Broadcast: Invalidates;

    /// Why an item was rejected.
    type Error: fmt::Debug + fmt::Display;

    /// Called with exactly one item: one received from `sender`, or one the
    /// user added (`sender == None`). Return `Ok(Some(b))` if it is news that
    /// should be disseminated further, `Ok(None)` if it is already known.
    /// An `Err` drops the item (and is counted); other items of the same
    /// datagram are unaffected.
    fn receive_item(
        &mut self,
        item: &[u8],
        sender: Option<&T>,
    ) -> Result<Option<Self::Broadcast>, Self::Error>;

    /// Whether `item` (described by `broadcast`) should be sent to `to`.
    /// Defaults to always.
    fn should_send(&self, broadcast: &Self::Broadcast, item: &[u8], to: &T) -> bool {
        let _ = (broadcast, item, to);
        true
    }
}

/// The handler for clusters without custom broadcasts: every item is refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoCustomBroadcast;

/// The error of [`NoCustomBroadcast`]: custom broadcasts are not enabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BroadcastsDisabled;

impl fmt::Display for BroadcastsDisabled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "custom broadcasts are disabled: build Foca with `with_custom_broadcast` to receive them",
        )
    }
}

/// A key type that never exists, for [`NoCustomBroadcast`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Never {}

impl Invalidates for Never {
    type Key = Never;

    fn key(&self) -> Never {
        *self
    }

    fn invalidates(&self, _other: &Self) -> bool {
        match *self {}
    }
}

impl<T> BroadcastHandler<T> for NoCustomBroadcast {
    type Broadcast = Never;
    type Error = BroadcastsDisabled;

    fn receive_item(
        &mut self,
        _item: &[u8],
        _sender: Option<&T>,
    ) -> Result<Option<Never>, Self::Error> {
        Err(BroadcastsDisabled)
    }
}
