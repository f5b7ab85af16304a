//! The packet envelope: what every datagram looks like on the wire.
//!
//! ```text
//! plain:   | magic "FC" | version | mode 0 | cluster tag (4) | payload ...            | CRC32C (4) |
//! sealed:  | magic "FC" | version | mode m | cluster tag (4) | key id (4) | sequence (8) | nonce (n) | ciphertext ... | tag (16) |
//! ```
//!
//! - **magic** (2 bytes, `FC`): tells foca traffic from anything else.
//! - **version** (1 byte): major in the high nibble, minor in the low one.
//!   A member accepts every minor of the majors it knows (now: major 1) and
//!   drops other majors as [`OpenError::UnknownVersion`]. What a minor
//!   version may add without breaking older members: new message kinds or
//!   fields inside the payload (older members fail to decode only those
//!   datagrams, a counted drop, and go on), and new modes (used only once
//!   every member knows them: an older member drops them as
//!   [`OpenError::UnknownMode`]). Anything that changes the first 8 bytes,
//!   or an existing mode, is a new major.
//! - **mode** (1 byte): 0 plain, 1 ChaCha20-Poly1305, 2 XChaCha20-Poly1305,
//!   3 AES-256-GCM.
//! - **cluster tag** (4 bytes): CRC32C of the cluster label, so datagrams of
//!   another cluster on the same network are told apart before any further
//!   work ([`OpenError::OtherCluster`]). The label itself also enters the
//!   associated data (sealed), so there a tag collision is still caught. In
//!   plain mode it enters the checksum too, but a CRC's state after the
//!   label is just the label's CRC32C, the tag: two labels whose tags
//!   collide (a 2^-32 chance per pair) are not told apart.
//! - **plain**: a CRC32C over the label and everything before the checksum
//!   catches corruption ([`OpenError::ChecksumMismatch`]). It is not
//!   protection against an attacker: use a sealed mode for that.
//! - **sealed**: the key id is in the clear, so the receiver picks the key
//!   directly instead of trying each; so is the sender's sequence number,
//!   which the core checks against its window for that sender to refuse
//!   replays. Everything before the ciphertext, and the label, is
//!   authenticated as associated data. See `Keyring` (feature `encryption`)
//!   for nonces, sequence numbers and rotation.

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use foca_core::Refusal;

use crc::{CRC_32_ISCSI, Crc};

/// CRC32C (Castagnoli), as in iSCSI and ext4: the byte-at-a-time table
/// (1 KiB), which no_std builds keep to spare flash. With `std` (servers),
/// checksums use the `crc32c` crate instead, with the processor's CRC32C
/// instruction where there is one (SSE 4.2, ARMv8 `crc`).
pub(crate) const CRC32C: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// The CRC32C of a label followed by `data`, given the label's own CRC32C
/// (the cluster tag): a CRC continues from its value.
fn crc_after(label_crc: u32, data: &[u8]) -> u32 {
    #[cfg(feature = "std")]
    {
        crc32c::crc32c_append(label_crc, data)
    }
    #[cfg(not(feature = "std"))]
    {
        crc_after_by_table(label_crc, data)
    }
}

/// [`crc_after`] with the table (no_std builds; tested in every build).
#[cfg_attr(feature = "std", allow(dead_code))]
fn crc_after_by_table(label_crc: u32, data: &[u8]) -> u32 {
    // The register after the label, in the reflected form the algorithm
    // keeps it in.
    let mut digest = CRC32C.digest_with_initial((!label_crc).reverse_bits());
    digest.update(data);
    digest.finalize()
}

/// The first two bytes of every datagram.
pub const MAGIC: [u8; 2] = *b"FC";
/// The envelope's major version: datagrams of other majors are refused.
pub const VERSION_MAJOR: u8 = 1;
/// The envelope's minor version: any minor of a known major is accepted.
pub const VERSION_MINOR: u8 = 0;
/// Bytes before the payload (or key id) in every datagram.
pub const HEADER_LEN: usize = 8;
/// Bytes of the CRC32C trailer of plain datagrams.
pub const CHECKSUM_LEN: usize = 4;
/// The largest datagram accepted by default (the largest UDP payload).
pub const DEFAULT_MAX_DATAGRAM: usize = 65_507;

pub(crate) const MODE_PLAIN: u8 = 0;

/// Why a datagram was refused. Each names the check that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than the smallest valid datagram of its kind.
    Truncated,
    /// Longer than the configured largest datagram.
    Oversized,
    /// Does not start with the foca magic bytes: not foca traffic.
    BadMagic,
    /// A major version this member does not speak (the byte is given).
    UnknownVersion(u8),
    /// A mode this member does not know (the byte is given).
    UnknownMode(u8),
    /// Sealed for, or tagged with, another cluster label.
    OtherCluster,
    /// A plain datagram whose checksum does not match: corrupted.
    ChecksumMismatch,
    /// A plain datagram, refused because this member requires encryption.
    PlaintextRefused,
    /// A sealed datagram, but this member has no keys.
    EncryptedWithoutKeys,
    /// Sealed with a key id this member does not have (never added, or
    /// removed).
    UnknownKey(u32),
    /// Sealed with a known key id but did not authenticate: forged,
    /// corrupted, or sealed with another key under the same id.
    AuthenticationFailed,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Truncated => f.write_str("truncated datagram"),
            OpenError::Oversized => f.write_str("datagram larger than the configured maximum"),
            OpenError::BadMagic => f.write_str("bad magic: not a foca datagram"),
            OpenError::UnknownVersion(v) => write!(
                f,
                "unknown envelope version {}.{} (this member speaks {VERSION_MAJOR}.x)",
                v >> 4,
                v & 0x0f
            ),
            OpenError::UnknownMode(m) => write!(f, "unknown envelope mode {m}"),
            OpenError::OtherCluster => f.write_str("datagram of another cluster (label differs)"),
            OpenError::ChecksumMismatch => f.write_str("checksum mismatch: corrupted datagram"),
            OpenError::PlaintextRefused => {
                f.write_str("unencrypted datagram refused: this member requires encryption")
            }
            OpenError::EncryptedWithoutKeys => {
                f.write_str("encrypted datagram, but this member has no keys")
            }
            OpenError::UnknownKey(id) => write!(f, "sealed with unknown key id {id}"),
            OpenError::AuthenticationFailed => f.write_str("authentication failed"),
        }
    }
}

impl core::error::Error for OpenError {}

impl OpenError {
    /// The class of check that failed, as the core counts it.
    pub const fn refusal(self) -> Refusal {
        match self {
            OpenError::Truncated
            | OpenError::Oversized
            | OpenError::BadMagic
            | OpenError::UnknownVersion(_)
            | OpenError::UnknownMode(_) => Refusal::Malformed,
            OpenError::OtherCluster => Refusal::OtherCluster,
            OpenError::ChecksumMismatch => Refusal::Corrupted,
            OpenError::PlaintextRefused
            | OpenError::EncryptedWithoutKeys
            | OpenError::UnknownKey(_)
            | OpenError::AuthenticationFailed => Refusal::Unauthenticated,
        }
    }
}

impl From<OpenError> for Refusal {
    fn from(e: OpenError) -> Self {
        e.refusal()
    }
}

/// Why a payload could not be sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealError {
    /// The payload plus the envelope's overhead exceeds the largest datagram;
    /// lower the core's `max_packet_size` by [`Envelope::overhead`].
    Oversized {
        /// The datagram size it would have had.
        size: usize,
        /// The configured largest datagram.
        max: usize,
    },
    /// The cipher refused to encrypt (payload too long for it).
    Encryption,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::Oversized { size, max } => write!(
                f,
                "sealed datagram would take {size} bytes, more than the maximum {max}: lower max_packet_size by the envelope overhead"
            ),
            SealError::Encryption => f.write_str("the cipher refused to encrypt the payload"),
        }
    }
}

impl core::error::Error for SealError {}

/// Datagrams refused by an [`Envelope`], by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rejections {
    /// [`OpenError::Truncated`].
    pub truncated: u64,
    /// [`OpenError::Oversized`].
    pub oversized: u64,
    /// [`OpenError::BadMagic`].
    pub bad_magic: u64,
    /// [`OpenError::UnknownVersion`].
    pub unknown_version: u64,
    /// [`OpenError::UnknownMode`].
    pub unknown_mode: u64,
    /// [`OpenError::OtherCluster`].
    pub other_cluster: u64,
    /// [`OpenError::ChecksumMismatch`].
    pub checksum_mismatch: u64,
    /// [`OpenError::PlaintextRefused`].
    pub plaintext_refused: u64,
    /// [`OpenError::EncryptedWithoutKeys`].
    pub encrypted_without_keys: u64,
    /// [`OpenError::UnknownKey`].
    pub unknown_key: u64,
    /// [`OpenError::AuthenticationFailed`].
    pub authentication_failed: u64,
}

impl Rejections {
    fn count(&mut self, e: OpenError) {
        let slot = match e {
            OpenError::Truncated => &mut self.truncated,
            OpenError::Oversized => &mut self.oversized,
            OpenError::BadMagic => &mut self.bad_magic,
            OpenError::UnknownVersion(_) => &mut self.unknown_version,
            OpenError::UnknownMode(_) => &mut self.unknown_mode,
            OpenError::OtherCluster => &mut self.other_cluster,
            OpenError::ChecksumMismatch => &mut self.checksum_mismatch,
            OpenError::PlaintextRefused => &mut self.plaintext_refused,
            OpenError::EncryptedWithoutKeys => &mut self.encrypted_without_keys,
            OpenError::UnknownKey(_) => &mut self.unknown_key,
            OpenError::AuthenticationFailed => &mut self.authentication_failed,
        };
        *slot += 1;
    }

    /// All refusals, whatever the reason.
    pub fn total(&self) -> u64 {
        self.truncated
            + self.oversized
            + self.bad_magic
            + self.unknown_version
            + self.unknown_mode
            + self.other_cluster
            + self.checksum_mismatch
            + self.plaintext_refused
            + self.encrypted_without_keys
            + self.unknown_key
            + self.authentication_failed
    }
}

/// Wraps payloads (datagrams built by the core) for the wire and unwraps
/// them on receipt. One per member; every driver applies it, none writes
/// its own. See the [module docs](self) for the layout.
///
/// ```
/// use foca_codec::{Envelope, OpenError};
///
/// let mut a = Envelope::insecure_plaintext(b"prod-eu");
/// let mut b = Envelope::insecure_plaintext(b"prod-eu");
/// let mut wire = Vec::new();
/// a.seal(b"hello", &mut wire).unwrap();
/// assert_eq!(b.open(&wire).unwrap(), b"hello");
///
/// let mut other = Envelope::insecure_plaintext(b"staging");
/// assert_eq!(other.open(&wire), Err(OpenError::OtherCluster));
/// assert_eq!(other.rejections().other_cluster, 1);
/// ```
pub struct Envelope {
    label: Vec<u8>,
    tag: [u8; 4],
    max_datagram: usize,
    #[cfg(feature = "encryption")]
    keyring: Option<crate::Keyring>,
    #[cfg(feature = "encryption")]
    accept_plaintext: bool,
    #[cfg(feature = "encryption")]
    buf: Vec<u8>,
    rejections: Rejections,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Envelope");
        d.field("label_len", &self.label.len())
            .field("max_datagram", &self.max_datagram);
        #[cfg(feature = "encryption")]
        d.field("keyring", &self.keyring)
            .field("accept_plaintext", &self.accept_plaintext);
        d.field("rejections", &self.rejections).finish()
    }
}

impl Envelope {
    /// A plain envelope for the cluster `label`: checksummed, **not
    /// authenticated**. Anyone who can send to a member can forge its
    /// datagrams (plain ones name their cluster in the clear), so use it on
    /// a trusted network only, or while moving a cluster to encryption;
    /// [`Envelope::encrypted`] is the envelope to deploy.
    pub fn insecure_plaintext(label: &[u8]) -> Self {
        Self {
            label: label.to_vec(),
            tag: CRC32C.checksum(label).to_be_bytes(),
            max_datagram: DEFAULT_MAX_DATAGRAM,
            #[cfg(feature = "encryption")]
            keyring: None,
            #[cfg(feature = "encryption")]
            accept_plaintext: false,
            #[cfg(feature = "encryption")]
            buf: Vec::new(),
            rejections: Rejections::default(),
        }
    }

    /// An envelope that seals every datagram with the keyring's primary key
    /// and accepts datagrams sealed with any of its keys. Plain datagrams are
    /// refused (see [`Envelope::accept_plaintext`]).
    #[cfg(feature = "encryption")]
    pub fn encrypted(label: &[u8], keyring: crate::Keyring) -> Self {
        let mut envelope = Self::insecure_plaintext(label);
        envelope.keyring = Some(keyring);
        envelope
    }

    /// Sets the largest datagram sealed or accepted (default 65,507).
    pub fn with_max_datagram(mut self, max: usize) -> Self {
        self.max_datagram = max;
        self
    }

    /// With a keyring, also accept plain datagrams: only while moving a
    /// running cluster from plain to encrypted, since anyone on the network
    /// can forge plain datagrams.
    #[cfg(feature = "encryption")]
    pub fn accept_plaintext(mut self, accept: bool) -> Self {
        self.accept_plaintext = accept;
        self
    }

    /// Changes the largest datagram sealed or accepted, in place (a driver
    /// follows `Config::max_packet_size` with it).
    pub fn set_max_datagram(&mut self, max: usize) {
        self.max_datagram = max;
    }

    /// The largest datagram sealed or accepted.
    pub fn max_datagram(&self) -> usize {
        self.max_datagram
    }

    /// The cluster label.
    pub fn label(&self) -> &[u8] {
        &self.label
    }

    /// Bytes the envelope adds to a payload: 12 plain; with a keyring,
    /// 48 (12-byte nonces) or 60 (XChaCha20's 24-byte nonces), the most of
    /// any installed key (whichever is primary).
    pub fn overhead(&self) -> usize {
        #[cfg(feature = "encryption")]
        if let Some(k) = &self.keyring {
            return HEADER_LEN + k.overhead();
        }
        HEADER_LEN + CHECKSUM_LEN
    }

    /// Bytes sealing adds now (with the primary key).
    fn seal_overhead(&self) -> usize {
        #[cfg(feature = "encryption")]
        if let Some(k) = &self.keyring {
            return HEADER_LEN + k.primary_overhead();
        }
        HEADER_LEN + CHECKSUM_LEN
    }

    /// The largest payload that fits in `max_datagram`: the value for the
    /// core's `Config::max_packet_size`.
    pub fn max_payload(&self) -> usize {
        self.max_datagram.saturating_sub(self.overhead())
    }

    /// The keyring, if the envelope encrypts.
    #[cfg(feature = "encryption")]
    pub fn keyring(&self) -> Option<&crate::Keyring> {
        self.keyring.as_ref()
    }

    /// The keyring, mutably: add, use and remove keys while running.
    #[cfg(feature = "encryption")]
    pub fn keyring_mut(&mut self) -> Option<&mut crate::Keyring> {
        self.keyring.as_mut()
    }

    /// Adds a key to the keyring (it decrypts at once; make it the sealing
    /// key with [`use_key`](Self::use_key) once every member has it).
    #[cfg(feature = "encryption")]
    pub fn add_key(
        &mut self,
        id: crate::KeyId,
        key: crate::Key,
    ) -> Result<(), crate::KeyringError> {
        self.keyring_or_refuse()?.add(id, key)
    }

    /// Seals from now on with key `id`.
    #[cfg(feature = "encryption")]
    pub fn use_key(&mut self, id: crate::KeyId) -> Result<(), crate::KeyringError> {
        self.keyring_or_refuse()?.use_key(id)
    }

    /// Removes key `id` (not the one in use).
    #[cfg(feature = "encryption")]
    pub fn remove_key(&mut self, id: crate::KeyId) -> Result<(), crate::KeyringError> {
        self.keyring_or_refuse()?.remove(id)
    }

    #[cfg(feature = "encryption")]
    fn keyring_or_refuse(&mut self) -> Result<&mut crate::Keyring, crate::KeyringError> {
        self.keyring
            .as_mut()
            .ok_or(crate::KeyringError::NotEncrypted)
    }

    /// Datagrams refused so far, by reason.
    pub fn rejections(&self) -> &Rejections {
        &self.rejections
    }

    fn header(&self, mode: u8) -> [u8; HEADER_LEN] {
        let mut h = [0; HEADER_LEN];
        h[..2].copy_from_slice(&MAGIC);
        h[2] = (VERSION_MAJOR << 4) | VERSION_MINOR;
        h[3] = mode;
        h[4..].copy_from_slice(&self.tag);
        h
    }

    /// Wraps `payload` into `out` (cleared first).
    pub fn seal(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        out.clear();
        // The size this datagram will have: a key with a longer nonce that
        // is installed but not primary does not count.
        let size = payload.len() + self.seal_overhead();
        if size > self.max_datagram {
            return Err(SealError::Oversized {
                size,
                max: self.max_datagram,
            });
        }
        #[cfg(feature = "encryption")]
        if let Some(keyring) = self.keyring.as_mut() {
            let header = {
                let mut h = [0; HEADER_LEN];
                h[..2].copy_from_slice(&MAGIC);
                h[2] = (VERSION_MAJOR << 4) | VERSION_MINOR;
                h[3] = keyring.primary_mode();
                h[4..].copy_from_slice(&self.tag);
                h
            };
            out.extend_from_slice(&header);
            return keyring.seal(&self.label, payload, out);
        }
        let header = self.header(MODE_PLAIN);
        // Summed from the sources, not from `out` just written: reading
        // bytes back right after a copy stalls on store forwarding.
        let sum = crc_after(crc_after(u32::from_be_bytes(self.tag), &header), payload);
        out.extend_from_slice(&header);
        out.extend_from_slice(payload);
        out.extend_from_slice(&sum.to_be_bytes());
        Ok(())
    }

    /// Unwraps a received datagram, returning its payload, or says which
    /// check failed (and counts it in [`Envelope::rejections`]). Never
    /// panics; allocates nothing for plain datagrams and at most the
    /// datagram's size (once, reused) for sealed ones, which are copied and
    /// decrypted there ([`open_in_place`](Self::open_in_place) does not
    /// copy).
    pub fn open<'a>(&'a mut self, datagram: &'a [u8]) -> Result<&'a [u8], OpenError> {
        let opened = match self.check(datagram) {
            Ok(MODE_PLAIN) => self.open_plain(datagram).map(|r| &datagram[r]),
            Ok(mode) => {
                #[cfg(feature = "encryption")]
                let mut buf = core::mem::take(&mut self.buf);
                #[cfg(not(feature = "encryption"))]
                let mut buf = Vec::new();
                buf.clear();
                buf.extend_from_slice(datagram);
                let range = self.open_sealed(mode, &mut buf);
                #[cfg(feature = "encryption")]
                {
                    self.buf = buf;
                    range.map(|r| &self.buf[r])
                }
                #[cfg(not(feature = "encryption"))]
                range.map(|_| &datagram[..0])
            }
            Err(e) => Err(e),
        };
        if let Err(e) = opened {
            self.rejections.count(e);
        }
        opened
    }

    /// [`open`](Self::open), decrypting a sealed datagram where it lies
    /// (the bytes of a refused one may be overwritten): the payload is a
    /// slice of `datagram`. Allocates nothing.
    pub fn open_in_place<'a>(&mut self, datagram: &'a mut [u8]) -> Result<&'a [u8], OpenError> {
        let range = match self.check(datagram) {
            Ok(MODE_PLAIN) => self.open_plain(datagram),
            Ok(mode) => self.open_sealed(mode, datagram),
            Err(e) => Err(e),
        };
        match range {
            Ok(r) => Ok(&datagram[r]),
            Err(e) => {
                self.rejections.count(e);
                Err(e)
            }
        }
    }

    /// The checks common to every mode; returns the mode.
    fn check(&self, datagram: &[u8]) -> Result<u8, OpenError> {
        if datagram.len() > self.max_datagram {
            return Err(OpenError::Oversized);
        }
        let Some(header) = datagram.first_chunk::<HEADER_LEN>() else {
            return Err(if datagram.starts_with(&MAGIC[..datagram.len().min(2)]) {
                OpenError::Truncated
            } else {
                OpenError::BadMagic
            });
        };
        if header[..2] != MAGIC {
            return Err(OpenError::BadMagic);
        }
        if header[2] >> 4 != VERSION_MAJOR {
            return Err(OpenError::UnknownVersion(header[2]));
        }
        let mode = header[3];
        if header[4..] != self.tag {
            return Err(OpenError::OtherCluster);
        }
        Ok(mode)
    }

    /// Checks a plain datagram (header checked); returns where its payload
    /// lies.
    fn open_plain(&self, datagram: &[u8]) -> Result<Range<usize>, OpenError> {
        #[cfg(feature = "encryption")]
        if self.keyring.is_some() && !self.accept_plaintext {
            return Err(OpenError::PlaintextRefused);
        }
        let Some((body, sum)) = datagram.split_last_chunk::<CHECKSUM_LEN>() else {
            return Err(OpenError::Truncated);
        };
        if body.len() < HEADER_LEN {
            return Err(OpenError::Truncated);
        }
        if crc_after(u32::from_be_bytes(self.tag), body) != u32::from_be_bytes(*sum) {
            return Err(OpenError::ChecksumMismatch);
        }
        Ok(HEADER_LEN..body.len())
    }

    /// Decrypts a sealed datagram (header checked) in place; returns where
    /// its payload lies.
    fn open_sealed(&self, mode: u8, datagram: &mut [u8]) -> Result<Range<usize>, OpenError> {
        #[cfg(feature = "encryption")]
        {
            if !crate::keyring::is_sealed_mode(mode) {
                return Err(OpenError::UnknownMode(mode));
            }
            let Some(keyring) = self.keyring.as_ref() else {
                return Err(OpenError::EncryptedWithoutKeys);
            };
            keyring.open(&self.label, mode, datagram)
        }
        #[cfg(not(feature = "encryption"))]
        {
            let _ = datagram;
            Err(if mode <= 3 {
                OpenError::EncryptedWithoutKeys
            } else {
                OpenError::UnknownMode(mode)
            })
        }
    }
}

/// The core's view of the envelope: the [`Endpoint`](foca_core::Endpoint)
/// seals and opens every datagram through this. Refusals are counted here
/// by exact reason ([`Envelope::rejections`]) and by the endpoint by class.
#[cfg(feature = "encryption")]
impl foca_core::KeyedEnvelope for Envelope {
    type KeyId = crate::KeyId;
    type Key = crate::Key;
    type KeyError = crate::KeyringError;

    fn add_key(&mut self, id: crate::KeyId, key: crate::Key) -> Result<(), crate::KeyringError> {
        Envelope::add_key(self, id, key)
    }

    fn use_key(&mut self, id: crate::KeyId) -> Result<(), crate::KeyringError> {
        Envelope::use_key(self, id)
    }

    fn remove_key(&mut self, id: crate::KeyId) -> Result<(), crate::KeyringError> {
        Envelope::remove_key(self, id)
    }
}

impl foca_core::Envelope for Envelope {
    type SealError = SealError;
    type Rejections = Rejections;

    fn overhead(&self) -> usize {
        Envelope::overhead(self)
    }

    fn seal(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        Envelope::seal(self, payload, out)
    }

    fn open<'a>(&mut self, datagram: &'a mut [u8]) -> Result<foca_core::Opened<'a>, Refusal> {
        let mode = datagram.get(3).copied();
        #[cfg(feature = "encryption")]
        let sequence = crate::keyring::sequence_of(datagram);
        let payload = Envelope::open_in_place(self, datagram).map_err(OpenError::refusal)?;
        // Opened, so the header was there: a mode other than plain was
        // authenticated by a key of the ring, sequence number included.
        if mode == Some(MODE_PLAIN) {
            return Ok(foca_core::Opened::plain(payload));
        }
        #[cfg(feature = "encryption")]
        if let Some((key, number)) = sequence {
            let sequence = foca_core::Sequence { key, number };
            return Ok(foca_core::Opened::sequenced(payload, sequence));
        }
        Ok(foca_core::Opened::authenticated(payload))
    }

    fn rejections(&self) -> Rejections {
        self.rejections
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_crc_continues_from_the_labels_crc() {
        let (label, body) = (&b"prod-eu"[..], &b"FC\x10\x00tag!payload"[..]);
        let mut whole = super::CRC32C.digest();
        whole.update(label);
        whole.update(body);
        let whole = whole.finalize();
        let label_crc = super::CRC32C.checksum(label);
        assert_eq!(super::crc_after(label_crc, body), whole);
        assert_eq!(super::crc_after_by_table(label_crc, body), whole);
        assert_eq!(super::crc_after(label_crc, &[]), label_crc);
    }
}
