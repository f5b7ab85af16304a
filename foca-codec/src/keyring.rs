//! Keys for the sealed envelope modes, and their rotation.
//!
//! # Rotation without downtime
//! Every member accepts datagrams sealed with *any* installed key and seals
//! with its *primary* key. To replace key A by key B:
//! 1. [`Keyring::add`] B on every member (all still seal with A; all accept
//!    both);
//! 2. [`Keyring::use_key`] B on each member, in any order (a member sealing
//!    with B is understood by all, since all have B);
//! 3. [`Keyring::remove`] A on every member.
//!
//! If B's cipher has longer nonces than A's (XChaCha20-Poly1305 after
//! another), sealing with B adds 12 bytes more: payloads sized for A's
//! overhead may no longer fit once B is primary. Lower the core's
//! `max_packet_size` to the new [`Envelope::max_payload`] before step 2, or
//! size it for 60 bytes of overhead from the start.
//!
//! [`Envelope::max_payload`]: crate::Envelope::max_payload
//!
//! The key id travels in the clear, so a receiver picks the key at once
//! instead of trying each one (memberlist tries its whole ring per packet).
//!
//! # Nonces never repeat under one key
//! Each keyring keeps a 192-bit nonce counter, started at a random value
//! drawn from a cryptographic RNG when the keyring is created, and
//! incremented before every seal; a datagram's nonce is the counter's low 96
//! bits (ChaCha20-Poly1305, AES-256-GCM) or all 192 (XChaCha20-Poly1305).
//! Within one keyring the counter cannot repeat (2^96 seals would be
//! needed). Two keyrings (two members, or one member before and after a
//! restart) sharing a key could repeat a nonce only if their random ranges
//! overlap: for `s` keyrings each sealing at most `m` datagrams, the chance
//! is below `s² · m / 2^96` with 96-bit nonces (10⁶ members sealing 10¹²
//! datagrams each under one key: below 10⁻⁵), and negligible (`/ 2^192`)
//! with XChaCha20-Poly1305, the mode to pick when in doubt. Rotating keys
//! resets the exposure.
//!
//! # Replays are refused
//! Every sealed datagram also carries a 64-bit sequence number in the
//! clear, authenticated with the rest of the header: the keyring's, raised
//! by one per seal. It is kept apart from the nonce, so that it can rise
//! across restarts without weakening the nonce's randomness: with `std` it
//! starts at the wall clock's nanoseconds since the Unix epoch when the
//! keyring is created (a restarted member starts above every number it
//! used before, unless its clock went back by more than it was down, or it
//! sealed more than one datagram per nanosecond); without `std` it starts
//! at 0 unless [`Keyring::starting_at`] says otherwise. Receivers refuse a
//! number they have seen from the same sender under the same key, and one
//! too old to tell (see `foca_core::Sequence`). A device without a clock
//! keeps its numbers rising by renewing its identity at each boot (a
//! `GenerationalId` with a boot counter): a new identity has a new window.
//!
//! What a key holder can still do: anything a member can. It can seal
//! datagrams with any sender identity and any number, so it can claim
//! another member's identity (its datagrams are then checked only against
//! the claimed source address, see `Config::check_source`), or burn a
//! member's window by sealing a high number in its name. Keys are for
//! members only; a member that is not trusted must not hold one.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use aes_gcm::Aes256Gcm;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use rand_core::CryptoRng;
use zeroize::Zeroize;

use crate::envelope::{HEADER_LEN, OpenError, SealError};

/// A key's public name, sent in the clear with every sealed datagram.
pub type KeyId = u32;

/// Most keys a keyring holds at once.
pub const MAX_KEYS: usize = 16;

/// Bytes of every AEAD tag used here.
pub const TAG_LEN: usize = 16;

const KEY_ID_LEN: usize = 4;

/// Bytes of the sequence number in a sealed datagram.
pub const SEQUENCE_LEN: usize = 8;

/// The authenticated ciphers available. The default is
/// XChaCha20-Poly1305: its 192-bit random nonce ranges never meet, even
/// across keyrings that start from the same state (a cloned VM).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// ChaCha20-Poly1305 (RFC 8439), 96-bit nonces. Fast without AES
    /// hardware (microcontrollers).
    ChaCha20Poly1305,
    /// XChaCha20-Poly1305, 192-bit nonces: random nonce ranges never meet.
    /// The safest choice, and the default; 12 bytes more per datagram.
    #[default]
    XChaCha20Poly1305,
    /// AES-256-GCM, 96-bit nonces. Fastest with AES hardware (servers).
    Aes256Gcm,
}

impl Cipher {
    /// The envelope mode byte.
    pub const fn mode(self) -> u8 {
        match self {
            Cipher::ChaCha20Poly1305 => 1,
            Cipher::XChaCha20Poly1305 => 2,
            Cipher::Aes256Gcm => 3,
        }
    }

    /// Nonce length in bytes.
    pub const fn nonce_len(self) -> usize {
        match self {
            Cipher::XChaCha20Poly1305 => 24,
            Cipher::ChaCha20Poly1305 | Cipher::Aes256Gcm => 12,
        }
    }

    fn from_mode(mode: u8) -> Option<Self> {
        match mode {
            1 => Some(Cipher::ChaCha20Poly1305),
            2 => Some(Cipher::XChaCha20Poly1305),
            3 => Some(Cipher::Aes256Gcm),
            _ => None,
        }
    }
}

/// Where a keyring's sequence numbers start: the wall clock in
/// nanoseconds since the Unix epoch with `std`, 0 without.
fn clock_start() -> u64 {
    #[cfg(feature = "std")]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
    #[cfg(not(feature = "std"))]
    {
        0
    }
}

/// The key id and sequence number of a sealed datagram whose header has
/// been checked: `None` if too short to hold them.
pub(crate) fn sequence_of(datagram: &[u8]) -> Option<(KeyId, u64)> {
    let fields = datagram.get(HEADER_LEN..HEADER_LEN + KEY_ID_LEN + SEQUENCE_LEN)?;
    let (id, number) = fields.split_first_chunk::<KEY_ID_LEN>()?;
    Some((
        KeyId::from_be_bytes(*id),
        u64::from_be_bytes(number.try_into().ok()?),
    ))
}

pub(crate) fn is_sealed_mode(mode: u8) -> bool {
    Cipher::from_mode(mode).is_some()
}

/// A 256-bit secret key for one [`Cipher`]. Wiped from memory on drop;
/// never printed.
#[derive(Clone)]
pub struct Key {
    cipher: Cipher,
    bytes: [u8; 32],
}

impl Key {
    /// A key from 32 secret bytes.
    pub fn new(cipher: Cipher, bytes: [u8; 32]) -> Self {
        Self { cipher, bytes }
    }

    /// A fresh random key.
    pub fn generate(cipher: Cipher, rng: &mut impl CryptoRng) -> Self {
        let mut bytes = [0; 32];
        rng.fill_bytes(&mut bytes);
        Self { cipher, bytes }
    }

    /// The cipher this key is for.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

/// An initialised cipher (key schedules zeroized on drop by their crates).
enum Sealer {
    ChaCha(ChaCha20Poly1305),
    XChaCha(XChaCha20Poly1305),
    Aes(Box<Aes256Gcm>),
}

impl Sealer {
    fn new(key: &Key) -> Self {
        let k = &key.bytes;
        match key.cipher {
            Cipher::ChaCha20Poly1305 => Sealer::ChaCha(ChaCha20Poly1305::new(k.into())),
            Cipher::XChaCha20Poly1305 => Sealer::XChaCha(XChaCha20Poly1305::new(k.into())),
            Cipher::Aes256Gcm => Sealer::Aes(Box::new(Aes256Gcm::new(k.into()))),
        }
    }

    /// Encrypts `buf` in place; returns the tag.
    fn encrypt(&self, nonce: &[u8], aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        fn go<A: AeadInOut>(
            a: &A,
            nonce: &[u8],
            aad: &[u8],
            buf: &mut [u8],
        ) -> Option<[u8; TAG_LEN]> {
            let nonce = chacha20poly1305::aead::Nonce::<A>::try_from(nonce).ok()?;
            let tag = a.encrypt_inout_detached(&nonce, aad, buf.into()).ok()?;
            <[u8; TAG_LEN]>::try_from(tag.as_slice()).ok()
        }
        match self {
            Sealer::ChaCha(a) => go(a, nonce, aad, buf),
            Sealer::XChaCha(a) => go(a, nonce, aad, buf),
            Sealer::Aes(a) => go(a.as_ref(), nonce, aad, buf),
        }
    }

    /// Decrypts `buf` in place; false if it does not authenticate.
    fn decrypt(&self, nonce: &[u8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        fn go<A: AeadInOut>(a: &A, nonce: &[u8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
            let (Ok(nonce), Ok(tag)) = (
                chacha20poly1305::aead::Nonce::<A>::try_from(nonce),
                chacha20poly1305::aead::Tag::<A>::try_from(tag),
            ) else {
                return false;
            };
            a.decrypt_inout_detached(&nonce, aad, buf.into(), &tag)
                .is_ok()
        }
        match self {
            Sealer::ChaCha(a) => go(a, nonce, aad, buf, tag),
            Sealer::XChaCha(a) => go(a, nonce, aad, buf, tag),
            Sealer::Aes(a) => go(a.as_ref(), nonce, aad, buf, tag),
        }
    }
}

struct Slot {
    id: KeyId,
    cipher: Cipher,
    sealer: Sealer,
}

/// Why a keyring change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyringError {
    /// A key with this id is installed already; remove it first.
    DuplicateId(KeyId),
    /// No key with this id is installed.
    UnknownKey(KeyId),
    /// The primary key cannot be removed: make another key primary first.
    IsPrimary(KeyId),
    /// [`MAX_KEYS`] keys are installed; remove one first.
    Full,
    /// The envelope has no keyring: build it with
    /// [`Envelope::encrypted`](crate::Envelope::encrypted) to use keys.
    NotEncrypted,
}

impl fmt::Display for KeyringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyringError::DuplicateId(id) => write!(f, "key id {id} is installed already"),
            KeyringError::UnknownKey(id) => write!(f, "no key with id {id} is installed"),
            KeyringError::IsPrimary(id) => write!(
                f,
                "key {id} is the primary key: make another key primary (use_key) before removing it"
            ),
            KeyringError::Full => write!(f, "the keyring holds {MAX_KEYS} keys already"),
            KeyringError::NotEncrypted => f.write_str(
                "the envelope has no keyring: build it with Envelope::encrypted to use keys",
            ),
        }
    }
}

impl core::error::Error for KeyringError {}

/// The keys an [`Envelope`](crate::Envelope) seals and opens with. See the
/// [module docs](self) for rotation and nonces.
///
/// ```
/// use foca_codec::{Cipher, Envelope, Key, Keyring};
/// let mut rng = rand::rng();
/// let key_a = Key::generate(Cipher::XChaCha20Poly1305, &mut rng);
/// let mut sender = Envelope::encrypted(b"prod", Keyring::new(1, key_a.clone(), &mut rng));
/// let mut receiver = Envelope::encrypted(b"prod", Keyring::new(1, key_a, &mut rng));
///
/// let mut wire = Vec::new();
/// sender.seal(b"ping", &mut wire).unwrap();
/// assert_eq!(receiver.open(&wire).unwrap(), b"ping");
/// ```
pub struct Keyring {
    slots: Vec<Slot>,
    primary: KeyId,
    /// 192-bit big-endian nonce counter.
    counter: [u8; 24],
    /// The last sequence number sealed.
    sequence: u64,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<(KeyId, Cipher)> = self.slots.iter().map(|s| (s.id, s.cipher)).collect();
        f.debug_struct("Keyring")
            .field("primary", &self.primary)
            .field("keys", &ids)
            .finish()
    }
}

impl Keyring {
    /// A keyring whose only (and primary) key is `key`, named `id`. `rng`
    /// seeds the nonce counter: it must be a cryptographic RNG, and two
    /// keyrings must never be seeded identically.
    pub fn new(id: KeyId, key: Key, rng: &mut impl CryptoRng) -> Self {
        let mut counter = [0; 24];
        rng.fill_bytes(&mut counter);
        Self {
            slots: alloc::vec![Slot {
                id,
                cipher: key.cipher,
                sealer: Sealer::new(&key),
            }],
            primary: id,
            counter,
            sequence: clock_start(),
        }
    }

    /// Starts the sequence numbers this keyring seals with above `number`
    /// (for devices that keep a count across restarts; with `std` the
    /// default is the wall clock, see the [module docs](self)). Receivers
    /// refuse numbers below the window of those they saw from this member.
    pub fn starting_at(mut self, number: u64) -> Self {
        self.sequence = number;
        self
    }

    /// The last sequence number sealed (or the start, before any seal).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Installs `key` as `id`: accepted at once, sealed with only once made
    /// primary.
    pub fn add(&mut self, id: KeyId, key: Key) -> Result<(), KeyringError> {
        if self.slot(id).is_some() {
            return Err(KeyringError::DuplicateId(id));
        }
        if self.slots.len() >= MAX_KEYS {
            return Err(KeyringError::Full);
        }
        self.slots.push(Slot {
            id,
            cipher: key.cipher,
            sealer: Sealer::new(&key),
        });
        Ok(())
    }

    /// Makes `id` the primary key: every datagram is sealed with it from now.
    pub fn use_key(&mut self, id: KeyId) -> Result<(), KeyringError> {
        if self.slot(id).is_none() {
            return Err(KeyringError::UnknownKey(id));
        }
        self.primary = id;
        Ok(())
    }

    /// Uninstalls `id`: datagrams sealed with it are refused from now.
    pub fn remove(&mut self, id: KeyId) -> Result<(), KeyringError> {
        if id == self.primary {
            return Err(KeyringError::IsPrimary(id));
        }
        let before = self.slots.len();
        self.slots.retain(|s| s.id != id);
        if self.slots.len() == before {
            return Err(KeyringError::UnknownKey(id));
        }
        Ok(())
    }

    /// The primary key's id.
    pub fn primary(&self) -> KeyId {
        self.primary
    }

    /// The installed key ids, primary or not.
    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.slots.iter().map(|s| s.id)
    }

    fn slot(&self, id: KeyId) -> Option<&Slot> {
        self.slots.iter().find(|s| s.id == id)
    }

    fn primary_slot(&self) -> &Slot {
        // Invariant: the primary id is always installed (use_key checks it,
        // remove refuses it), so this finds it; the fallback is unreachable.
        self.slot(self.primary).unwrap_or(&self.slots[0])
    }

    pub(crate) fn primary_mode(&self) -> u8 {
        self.primary_slot().cipher.mode()
    }

    /// Bytes sealing with the primary key adds after the envelope header.
    pub(crate) fn primary_overhead(&self) -> usize {
        KEY_ID_LEN + SEQUENCE_LEN + self.primary_slot().cipher.nonce_len() + TAG_LEN
    }

    /// The most bytes sealing adds after the envelope header, whichever
    /// installed key is (or becomes) primary.
    pub(crate) fn overhead(&self) -> usize {
        let nonce = self
            .slots
            .iter()
            .map(|s| s.cipher.nonce_len())
            .max()
            .unwrap_or(24);
        KEY_ID_LEN + SEQUENCE_LEN + nonce + TAG_LEN
    }

    fn next_nonce(&mut self) -> [u8; 24] {
        for byte in self.counter.iter_mut().rev() {
            *byte = byte.wrapping_add(1);
            if *byte != 0 {
                break;
            }
        }
        self.counter
    }

    /// `out` holds the envelope header; appends key id, sequence number,
    /// nonce, ciphertext and tag.
    pub(crate) fn seal(
        &mut self,
        label: &[u8],
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SealError> {
        let counter = self.next_nonce();
        // Saturates: after 2^64 seals numbers repeat and are refused,
        // rather than start again below the window.
        self.sequence = self.sequence.saturating_add(1);
        let sequence = self.sequence;
        let slot = self.primary_slot();
        let nonce = &counter[24 - slot.cipher.nonce_len()..];
        out.extend_from_slice(&slot.id.to_be_bytes());
        out.extend_from_slice(&sequence.to_be_bytes());
        out.extend_from_slice(nonce);
        let prefix = out.len();
        let mut aad = Vec::with_capacity(prefix + label.len());
        aad.extend_from_slice(out);
        aad.extend_from_slice(label);
        out.extend_from_slice(payload);
        let tag = slot
            .sealer
            .encrypt(nonce, &aad, &mut out[prefix..])
            .ok_or(SealError::Encryption)?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// Opens a sealed datagram (header already checked), decrypting it in
    /// place; returns where the payload lies.
    pub(crate) fn open(
        &self,
        label: &[u8],
        mode: u8,
        datagram: &mut [u8],
    ) -> Result<core::ops::Range<usize>, OpenError> {
        let cipher = Cipher::from_mode(mode).ok_or(OpenError::UnknownMode(mode))?;
        let prefix = HEADER_LEN + KEY_ID_LEN + SEQUENCE_LEN + cipher.nonce_len();
        if datagram.len() < prefix + TAG_LEN {
            return Err(OpenError::Truncated);
        }
        let mut id = [0; KEY_ID_LEN];
        id.copy_from_slice(&datagram[HEADER_LEN..HEADER_LEN + KEY_ID_LEN]);
        let id = KeyId::from_be_bytes(id);
        let slot = self.slot(id).ok_or(OpenError::UnknownKey(id))?;
        if slot.cipher != cipher {
            return Err(OpenError::AuthenticationFailed);
        }
        let end = datagram.len() - TAG_LEN;
        let (head, rest) = datagram.split_at_mut(prefix);
        let (body, tag) = rest.split_at_mut(end - prefix);
        let nonce = &head[HEADER_LEN + KEY_ID_LEN + SEQUENCE_LEN..];
        let mut aad = Vec::with_capacity(prefix + label.len());
        aad.extend_from_slice(head);
        aad.extend_from_slice(label);
        if slot.sealer.decrypt(nonce, &aad, body, tag) {
            Ok(prefix..end)
        } else {
            Err(OpenError::AuthenticationFailed)
        }
    }
}
