//! Errors for API misuse and for failures of the user's own codec.

use core::fmt;

use crate::ConfigError;

/// What went wrong in a call to [`Foca`](crate::Foca).
///
/// Received garbage is never an `Error`: it is dropped and counted in
/// [`Metrics::dropped`](crate::Metrics::dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The config broke a rule; see the field and rule named.
    Config(ConfigError),
    /// The codec failed to encode this member's own message. This is a bug
    /// in the codec or an identity it cannot represent.
    Encode(alloc::string::String),
    /// A header with this identity does not fit in `max_packet_size`; raise
    /// `max_packet_size` or use a smaller identity.
    HeaderTooLarge {
        /// Encoded header size.
        size: usize,
        /// The configured `max_packet_size`.
        max: usize,
    },
    /// A custom broadcast or update is larger than any datagram could carry.
    ItemTooLarge {
        /// Its size in bytes.
        size: usize,
        /// The most a datagram can carry with this config and identity.
        max: usize,
    },
    /// The broadcast handler rejected an item added with `add_broadcast`.
    BroadcastRejected(alloc::string::String),
    /// This member has left the cluster; call `announce` or `join` to rejoin.
    Left,
    /// This member is defunct (its incarnation is spent and its identity
    /// cannot be renewed); call `change_identity`.
    Defunct,
    /// The new identity has the same address as one already in the member
    /// table, or is the current identity.
    IdentityInUse,
    /// The new identity has this member's address but does not supersede the
    /// current identity, so peers would ignore it; use `Identity::renew`.
    IdentityLosesConflict,
    /// Tried to announce to this member's own address.
    AnnounceToSelf,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => e.fmt(f),
            Error::Encode(e) => write!(f, "the codec failed to encode an outgoing message: {e}"),
            Error::HeaderTooLarge { size, max } => write!(
                f,
                "an encoded header takes {size} bytes, more than max_packet_size ({max}): raise max_packet_size or use a smaller identity"
            ),
            Error::ItemTooLarge { size, max } => write!(
                f,
                "an item of {size} bytes can never fit in a datagram (at most {max} bytes are available): split it or raise max_packet_size"
            ),
            Error::BroadcastRejected(e) => write!(f, "the broadcast handler rejected the item: {e}"),
            Error::Left => f.write_str("this member left the cluster: call announce or join to rejoin"),
            Error::Defunct => f.write_str(
                "this member is defunct (incarnation spent, identity not renewable): call change_identity",
            ),
            Error::IdentityInUse => f.write_str(
                "that identity is this member's current one or its address belongs to a known member",
            ),
            Error::IdentityLosesConflict => f.write_str(
                "the new identity has this member's address but does not win the conflict against the current one, so peers would ignore it: use Identity::renew",
            ),
            Error::AnnounceToSelf => f.write_str("cannot announce to this member's own address"),
        }
    }
}

impl core::error::Error for Error {}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}
