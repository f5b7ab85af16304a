//! What wraps every datagram on the wire: the [`Envelope`] trait.
//!
//! The core builds payloads (see [`wire`](crate::wire)); an envelope turns a
//! payload into the bytes that cross the network and back: a magic number, a
//! version, a cluster label, a checksum or authenticated encryption. The
//! core defines only the trait, so that it stays free of CRC and AEAD code;
//! `foca-codec` implements it (plain with CRC32C, or sealed with a keyring),
//! and [`testing::NoEnvelope`](crate::testing::NoEnvelope) passes payloads
//! through untouched for tests.
//!
//! The [`Endpoint`](crate::Endpoint) applies its envelope to every datagram
//! it sends and receives: a driver only moves bytes.

use alloc::vec::Vec;
use core::fmt;

/// Seals payloads for the wire and opens received datagrams.
///
/// # Contract
/// - `open(seal(p)) == p` between two envelopes of one cluster.
/// - [`open`](Envelope::open) never panics, whatever the bytes, allocates at
///   most a small multiple of the datagram's length, and refuses what it
///   cannot vouch for with the [`Refusal`] that names the check that failed.
///   An implementation may count its refusals in finer detail itself.
/// - A sealed datagram is at most [`overhead`](Envelope::overhead) bytes
///   longer than its payload.
pub trait Envelope {
    /// Why a payload could not be sealed.
    type SealError: fmt::Debug + fmt::Display;

    /// The envelope's own count of refused datagrams, by exact reason
    /// (reported by agents next to the endpoint's count by [`Refusal`]).
    type Rejections: Clone + fmt::Debug + Default + PartialEq + Eq;

    /// The most bytes sealing adds to a payload (it may change as keys do).
    fn overhead(&self) -> usize;

    /// Wraps `payload` into `out` (cleared first).
    fn seal(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), Self::SealError>;

    /// Unwraps a received datagram in place (decrypting it where it lies,
    /// if sealed: the bytes of a refused datagram may be overwritten),
    /// returning its payload, a slice of `datagram`, and whether a key
    /// vouched for it; or refuses it.
    fn open<'a>(&mut self, datagram: &'a mut [u8]) -> Result<Opened<'a>, Refusal>;

    /// Datagrams refused so far, by exact reason.
    fn rejections(&self) -> Self::Rejections;
}

/// An [`Envelope`] whose keys can change while it is in use: a driver's
/// handle rotates them (`add_key`, `use_key`, `remove_key`) where the agent
/// runs. `foca-codec` implements it (feature `encryption`).
pub trait KeyedEnvelope: Envelope {
    /// How a key is named on the wire.
    type KeyId: Send + 'static;
    /// A key.
    type Key: Send + 'static;
    /// Why a change was refused.
    type KeyError: core::error::Error + Send + Sync + 'static;

    /// Adds a key: it opens datagrams at once, and seals once it is used.
    fn add_key(&mut self, id: Self::KeyId, key: Self::Key) -> Result<(), Self::KeyError>;

    /// Seals from now on with key `id`.
    fn use_key(&mut self, id: Self::KeyId) -> Result<(), Self::KeyError>;

    /// Removes key `id` (not the one in use).
    fn remove_key(&mut self, id: Self::KeyId) -> Result<(), Self::KeyError>;
}

/// A datagram an [`Envelope`] opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    /// The payload: a slice of the datagram.
    pub payload: &'a [u8],
    /// Whether a key vouched for it (authenticated encryption opened it).
    /// A plain datagram is not authenticated: anyone could have sent it,
    /// from any source address, so the endpoint bounds what it sends back
    /// to that address (see [`Config::check_source`](crate::Config)).
    pub authenticated: bool,
    /// The sender's sequence number, for envelopes that number what they
    /// seal: the core rejects a repeat, or one older than its window (see
    /// [`Sequence`]).
    pub sequence: Option<Sequence>,
}

/// Where an authenticated datagram stands in its sender's stream: the key
/// that sealed it and a number its sender raises with every datagram it
/// seals, authenticated with it.
///
/// The core keeps a window per key and sender identity (the identity the
/// datagram's payload opens with, authenticated with it) over the last
/// [`REPLAY_WINDOW`](crate::REPLAY_WINDOW) numbers, after IPsec and
/// WireGuard: a number seen before is dropped as
/// [`replayed`](crate::DropCounts::replayed), one below the window as
/// [`too_old`](crate::DropCounts::too_old). Numbers must keep rising across
/// a sender's restarts as long as it keeps its identity (a
/// [`GenerationalId`](crate::GenerationalId) renewed at each start gets a
/// fresh window instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sequence {
    /// The id of the key that sealed the datagram.
    pub key: u32,
    /// The sender's number for it.
    pub number: u64,
}

impl<'a> Opened<'a> {
    /// A payload nothing vouched for (a plain or checksummed datagram).
    pub const fn plain(payload: &'a [u8]) -> Self {
        Self {
            payload,
            authenticated: false,
            sequence: None,
        }
    }

    /// A payload a key vouched for.
    pub const fn authenticated(payload: &'a [u8]) -> Self {
        Self {
            payload,
            authenticated: true,
            sequence: None,
        }
    }

    /// A payload a key vouched for, numbered in its sender's stream.
    pub const fn sequenced(payload: &'a [u8], sequence: Sequence) -> Self {
        Self {
            payload,
            authenticated: true,
            sequence: Some(sequence),
        }
    }
}

/// Why an [`Envelope`] refused a datagram, by the class of check that
/// failed. Each is counted in [`DropCounts`](crate::DropCounts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// Not a datagram this envelope understands: truncated, not foca
    /// traffic, or of an unknown version or mode.
    Malformed,
    /// Tagged with, or sealed for, another cluster.
    OtherCluster,
    /// Damaged on the way: a checksum did not match.
    Corrupted,
    /// Could not be authenticated: a forgery, an unknown key, or a plain
    /// datagram where encryption is required.
    Unauthenticated,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Malformed => "malformed envelope",
            Refusal::OtherCluster => "datagram of another cluster",
            Refusal::Corrupted => "corrupted datagram",
            Refusal::Unauthenticated => "datagram failed authentication",
        })
    }
}

impl<E: Envelope + ?Sized> Envelope for &mut E {
    type SealError = E::SealError;
    type Rejections = E::Rejections;

    fn overhead(&self) -> usize {
        (**self).overhead()
    }

    fn seal(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), Self::SealError> {
        (**self).seal(payload, out)
    }

    fn open<'a>(&mut self, datagram: &'a mut [u8]) -> Result<Opened<'a>, Refusal> {
        (**self).open(datagram)
    }

    fn rejections(&self) -> Self::Rejections {
        (**self).rejections()
    }
}
