//! Hostile input: every envelope mode refuses garbage, truncated, corrupted and misdirected datagrams with the exact reason, and neither codec nor a `Foca` behind an envelope panics on any bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::time::Duration;

use common::{Id, MODES, Mode, Net, gid, key, keyring};
use foca_codec::{
    BincodeCodec, Cipher, Envelope, KeyId, KeyringError, OpenError, PostcardCodec, Rejections,
    SealError,
};
use foca_core::{Codec, GenerationalId, Header, Member, Message, State};
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

const LABEL: &[u8] = b"hostile";
const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

// ---------------------------------------------------------------------------
// A receiver that checks its own rejection counts

/// A receiving envelope, with the rejections the test expects it to have
/// counted.
struct Rx {
    env: Envelope,
    expected: Rejections,
}

fn count(r: &mut Rejections, e: OpenError) {
    let slot = match e {
        OpenError::Truncated => &mut r.truncated,
        OpenError::Oversized => &mut r.oversized,
        OpenError::BadMagic => &mut r.bad_magic,
        OpenError::UnknownVersion(_) => &mut r.unknown_version,
        OpenError::UnknownMode(_) => &mut r.unknown_mode,
        OpenError::OtherCluster => &mut r.other_cluster,
        OpenError::ChecksumMismatch => &mut r.checksum_mismatch,
        OpenError::PlaintextRefused => &mut r.plaintext_refused,
        OpenError::EncryptedWithoutKeys => &mut r.encrypted_without_keys,
        OpenError::UnknownKey(_) => &mut r.unknown_key,
        OpenError::AuthenticationFailed => &mut r.authentication_failed,
    };
    *slot += 1;
}

impl Rx {
    fn new(env: Envelope) -> Self {
        Self {
            env,
            expected: Rejections::default(),
        }
    }

    /// Opens `d`, expecting exactly `expected`.
    fn refuses(&mut self, d: &[u8], expected: OpenError, what: impl Fn() -> String) {
        assert_eq!(self.env.open(d), Err(expected), "{}", what());
        count(&mut self.expected, expected);
    }

    fn accepts(&mut self, d: &[u8], payload: &[u8], what: &str) {
        assert_eq!(self.env.open(d), Ok(payload), "{what}");
    }

    /// The envelope counted exactly the refusals made through `refuses`.
    fn check_counts(&self, what: &str) {
        assert_eq!(*self.env.rejections(), self.expected, "{what}");
        assert_eq!(
            self.env.rejections().total(),
            count_total(&self.expected),
            "{what}"
        );
    }
}

fn count_total(r: &Rejections) -> u64 {
    let all = [
        r.truncated,
        r.oversized,
        r.bad_magic,
        r.unknown_version,
        r.unknown_mode,
        r.other_cluster,
        r.checksum_mismatch,
        r.plaintext_refused,
        r.encrypted_without_keys,
        r.unknown_key,
        r.authentication_failed,
    ];
    all.iter().sum()
}

fn sealed(tx: &mut Envelope, payload: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    tx.seal(payload, &mut wire).unwrap();
    wire
}

fn nonce_len(mode: u8) -> usize {
    if mode == 2 { 24 } else { 12 }
}

/// A cipher other than `c`.
fn other(c: Cipher) -> Cipher {
    match c {
        Cipher::Aes256Gcm => Cipher::ChaCha20Poly1305,
        _ => Cipher::Aes256Gcm,
    }
}

/// A receiver for `mode`: sealed ones hold key 1 (the senders' key), and
/// also 3 (same cipher, another key) and 5 (another cipher), whose ids are
/// one bit away from 1.
fn receiver(mode: Mode, accept_plaintext: bool) -> Rx {
    let mut env = mode.envelope(LABEL, 77);
    if let Mode::Sealed(c) = mode {
        let ring = env.keyring_mut().unwrap();
        ring.add(3, key(c, 0x43)).unwrap();
        ring.add(5, key(other(c), 0x44)).unwrap();
        env = env.accept_plaintext(accept_plaintext);
    }
    Rx::new(env)
}

/// The key ids `receiver` installs.
fn installed(mode: Mode) -> &'static [KeyId] {
    match mode {
        Mode::Plain => &[],
        Mode::Sealed(_) => &[1, 3, 5],
    }
}

/// Payloads to seal: empty, one byte, and real datagrams of a postcard
/// cluster (the shortest, the longest and one of each message kind).
fn payloads() -> Vec<Vec<u8>> {
    let mut net = Net::new(PostcardCodec::<Id>::new());
    net.keep_payloads = true;
    for n in 1..=3u8 {
        let ep = common::endpoint(
            gid(n),
            common::config(60),
            PostcardCodec::new(),
            u64::from(n),
        );
        net.add(ep, Envelope::insecure_plaintext(LABEL));
    }
    for i in 1..3 {
        net.with(i, |ep, now| {
            common::join(ep, now, GenerationalId::seed(common::v4(1)));
        });
    }
    net.run_until(Duration::from_secs(3));
    assert!(net.fully_connected());
    let mut out = vec![Vec::new(), vec![0x00]];
    let mut kinds = std::collections::BTreeSet::new();
    for (r, p) in net.log.iter().zip(&net.payloads) {
        if kinds.insert(r.kind) {
            out.push(p.clone());
        }
    }
    let longest = net.payloads.iter().max_by_key(|p| p.len()).unwrap();
    let shortest = net.payloads.iter().min_by_key(|p| p.len()).unwrap();
    out.push(longest.clone());
    out.push(shortest.clone());
    out
}

// ---------------------------------------------------------------------------
// A model of the checks, from the module docs, for random input

/// What a receiver for `mode` (with the keys of [`receiver`]) must answer
/// to `d`, assuming the integrity check fails (true of random bytes, but
/// for a 2^-32 chance of a matching CRC).
fn predict(mode: Mode, accept_plaintext: bool, max: usize, d: &[u8]) -> OpenError {
    if d.len() > max {
        return OpenError::Oversized;
    }
    if d.len() < 8 {
        let n = d.len().min(2);
        return if d[..n] == b"FC"[..n] {
            OpenError::Truncated
        } else {
            OpenError::BadMagic
        };
    }
    if d[..2] != *b"FC" {
        return OpenError::BadMagic;
    }
    if d[2] >> 4 != 1 {
        return OpenError::UnknownVersion(d[2]);
    }
    if d[4..8] != CRC32C.checksum(LABEL).to_be_bytes() {
        return OpenError::OtherCluster;
    }
    match d[3] {
        0 if mode != Mode::Plain && !accept_plaintext => OpenError::PlaintextRefused,
        0 if d.len() < 12 => OpenError::Truncated,
        0 => OpenError::ChecksumMismatch,
        1..=3 if mode == Mode::Plain => OpenError::EncryptedWithoutKeys,
        m @ 1..=3 if d.len() < 8 + 4 + 8 + nonce_len(m) + 16 => OpenError::Truncated,
        1..=3 => {
            let id = u32::from_be_bytes(d[8..12].try_into().unwrap());
            if installed(mode).contains(&id) {
                OpenError::AuthenticationFailed
            } else {
                OpenError::UnknownKey(id)
            }
        }
        m => OpenError::UnknownMode(m),
    }
}

/// Thousands of random byte strings, and as many with a valid-looking
/// header (so that they reach the mode, length, key and integrity checks),
/// to every receiver: each refused for exactly the reason the model gives.
#[test]
fn random_bytes_are_refused_for_the_right_reason() {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let tag = CRC32C.checksum(LABEL).to_be_bytes();
    for mode in MODES {
        for accept_plaintext in [false, true] {
            if mode == Mode::Plain && accept_plaintext {
                continue;
            }
            for max in [65_507, 200] {
                let mut rx = receiver(mode, accept_plaintext);
                rx.env = rx.env.with_max_datagram(max);
                let what = format!("{mode:?}, accept_plaintext {accept_plaintext}, max {max}");
                for n in 0..4000 {
                    let len = rng.random_range(0..260);
                    let mut d = vec![0; len];
                    rng.fill_bytes(&mut d);
                    if n % 2 == 1 && len >= 2 {
                        // Past the magic, and usually past the rest of the header.
                        d[..2].copy_from_slice(b"FC");
                        if len >= 8 && rng.random_bool(0.9) {
                            d[2] = 0x10 | (d[2] & 0x0f);
                            d[3] = [0, 1, 2, 3, d[3]][rng.random_range(0..5usize)];
                            d[4..8].copy_from_slice(&tag);
                        }
                        if len >= 12 && rng.random_bool(0.5) {
                            let id: u32 = [1, 3, 5, 2][rng.random_range(0..4usize)];
                            d[8..12].copy_from_slice(&id.to_be_bytes());
                        }
                    }
                    let expected = predict(mode, accept_plaintext, max, &d);
                    rx.refuses(&d, expected, || format!("{what}: {d:02x?}"));
                }
                rx.check_counts(&what);
                let r = rx.env.rejections();
                // The structured half reached every check of its mode.
                assert!(
                    r.bad_magic > 0 && r.truncated > 0 && r.unknown_version > 0,
                    "{what}: {r:?}"
                );
                assert!(r.other_cluster > 0 && r.unknown_mode > 0, "{what}: {r:?}");
                if max < 260 {
                    assert!(r.oversized > 0, "{what}: {r:?}");
                }
                match (mode, accept_plaintext) {
                    (Mode::Plain, _) => {
                        assert!(
                            r.checksum_mismatch > 0 && r.encrypted_without_keys > 0,
                            "{what}: {r:?}"
                        );
                    }
                    (Mode::Sealed(_), false) => {
                        assert!(
                            r.plaintext_refused > 0 && r.checksum_mismatch == 0,
                            "{what}: {r:?}"
                        );
                        assert!(
                            r.unknown_key > 0 && r.authentication_failed > 0,
                            "{what}: {r:?}"
                        );
                    }
                    (Mode::Sealed(_), true) => {
                        assert!(
                            r.plaintext_refused == 0 && r.checksum_mismatch > 0,
                            "{what}: {r:?}"
                        );
                        assert!(
                            r.unknown_key > 0 && r.authentication_failed > 0,
                            "{what}: {r:?}"
                        );
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Truncations and bit flips of valid datagrams

/// Every truncation of every valid datagram, in every mode: shorter than
/// the overhead (12, 48 or 60 bytes: header, key id, sequence number, nonce and tag or
/// checksum), `Truncated`; longer, the integrity check fails
/// (`ChecksumMismatch` plain, `AuthenticationFailed` sealed).
#[test]
fn truncations_are_refused_for_the_right_reason() {
    let payloads = payloads();
    for mode in MODES {
        let mut tx = mode.envelope(LABEL, 1);
        let mut rx = receiver(mode, false);
        let what = format!("{mode:?}");
        let overhead = mode.overhead();
        let integrity = match mode {
            Mode::Plain => OpenError::ChecksumMismatch,
            Mode::Sealed(_) => OpenError::AuthenticationFailed,
        };
        for p in &payloads {
            let d = sealed(&mut tx, p);
            rx.accepts(&d, p, &what);
            for n in 0..d.len() {
                let expected = if n < overhead {
                    OpenError::Truncated
                } else {
                    integrity
                };
                rx.refuses(&d[..n], expected, || {
                    format!("{what}: {} of {} bytes", n, d.len())
                });
            }
        }
        rx.check_counts(&what);
    }
}

/// What flipping bit `bit` of byte `i` of a valid datagram `d` (sealed in
/// `mode`) must make a [`receiver`] answer, region by region of the
/// documented layout.
fn flip_expectation(mode: Mode, accept_plaintext: bool, d: &[u8], i: usize, bit: u8) -> OpenError {
    let flipped = d[i] ^ (1 << bit);
    let integrity = match mode {
        Mode::Plain => OpenError::ChecksumMismatch,
        Mode::Sealed(_) => OpenError::AuthenticationFailed,
    };
    match i {
        // Magic.
        0 | 1 => OpenError::BadMagic,
        // Version: the high nibble is the major, the low one a minor that
        // is accepted, but authenticated like the rest.
        2 if bit >= 4 => OpenError::UnknownVersion(flipped),
        2 => integrity,
        // Mode.
        3 => match (mode, flipped) {
            (Mode::Plain, 1..=3) => OpenError::EncryptedWithoutKeys,
            (Mode::Sealed(_), 0) if accept_plaintext => OpenError::ChecksumMismatch,
            (Mode::Sealed(_), 0) => OpenError::PlaintextRefused,
            // Another cipher: too short for its nonce, or key 1 is not a
            // key of that cipher.
            (Mode::Sealed(_), m @ 1..=3) if d.len() < 36 + nonce_len(m) => OpenError::Truncated,
            (Mode::Sealed(_), 1..=3) => OpenError::AuthenticationFailed,
            (_, m) => OpenError::UnknownMode(m),
        },
        // Cluster tag.
        4..=7 => OpenError::OtherCluster,
        // Key id (big endian), sealed only.
        8..=11 if mode != Mode::Plain => {
            let id = 1u32 ^ (1 << ((11 - i) * 8 + usize::from(bit)));
            if installed(mode).contains(&id) {
                OpenError::AuthenticationFailed
            } else {
                OpenError::UnknownKey(id)
            }
        }
        // Payload and checksum; nonce, ciphertext and tag.
        _ => integrity,
    }
}

/// Every single-bit flip of every valid datagram, in every mode (sealed
/// ones also with `accept_plaintext`): refused with the reason of the
/// region it hits.
#[test]
fn bit_flips_are_refused_for_the_right_reason() {
    let payloads = payloads();
    for mode in MODES {
        for accept_plaintext in [false, true] {
            if mode == Mode::Plain && accept_plaintext {
                continue;
            }
            let mut tx = mode.envelope(LABEL, 1);
            let mut rx = receiver(mode, accept_plaintext);
            let what = format!("{mode:?}, accept_plaintext {accept_plaintext}");
            let mut flips = 0;
            for p in &payloads {
                let d = sealed(&mut tx, p);
                rx.accepts(&d, p, &what);
                let mut c = d.clone();
                for i in 0..d.len() {
                    for bit in 0..8 {
                        c[i] ^= 1 << bit;
                        let expected = flip_expectation(mode, accept_plaintext, &d, i, bit);
                        rx.refuses(&c, expected, || {
                            format!("{what}: bit {bit} of byte {i} of {}", d.len())
                        });
                        c[i] ^= 1 << bit;
                        flips += 1;
                    }
                }
                // Untouched after all that: still opens.
                rx.accepts(&c, p, &what);
            }
            rx.check_counts(&what);
            let r = rx.env.rejections();
            assert!(
                r.bad_magic > 0 && r.unknown_version > 0 && r.other_cluster > 0,
                "{what}"
            );
            assert!(r.unknown_mode > 0, "{what}");
            match mode {
                Mode::Plain => assert!(r.encrypted_without_keys > 0 && r.checksum_mismatch > 0),
                Mode::Sealed(_) => {
                    assert!(r.unknown_key > 0 && r.authentication_failed > 0, "{what}");
                    // Only AES-256-GCM (mode 3) is one bit from a mode with a
                    // longer nonce (2, XChaCha20), where short datagrams are
                    // too short.
                    let aes = mode == Mode::Sealed(Cipher::Aes256Gcm);
                    assert_eq!(r.truncated > 0, aes, "{what}");
                    // Modes 1 and 2 are one bit from plain (0); 3 is not.
                    let near_plain = !aes;
                    if accept_plaintext {
                        assert_eq!(r.checksum_mismatch > 0, near_plain, "{what}");
                    } else {
                        assert_eq!(r.plaintext_refused > 0, near_plain, "{what}");
                    }
                }
            }
            println!("{what}: {flips} flips, {r:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// Misdirected datagrams

/// Another cluster's datagrams: `OtherCluster`, in every mode, whoever
/// holds the key.
#[test]
fn another_clusters_datagrams_are_refused() {
    for mode in MODES {
        let mut tx = mode.envelope(b"another cluster", 1);
        let mut rx = receiver(mode, true);
        let what = format!("{mode:?}");
        for p in payloads() {
            rx.refuses(&sealed(&mut tx, &p), OpenError::OtherCluster, || {
                what.clone()
            });
        }
        rx.check_counts(&what);
    }
}

/// Two labels whose CRC32C (the cluster tag) collide. Sealed: the tag
/// check passes, but the label is in the associated data, so the datagram is
/// still refused. Plain: the checksum is a CRC32C computed over the label
/// first, and a CRC's state after the label is its CRC32C, the same for
/// both: such a datagram is accepted (as the module docs say). Pinned so
/// that a change of either is noticed.
#[test]
fn a_cluster_tag_collision_is_caught_when_sealed_only() {
    let mut seen: HashMap<u32, u64> = HashMap::new();
    let (a, b) = (0u64..)
        .find_map(|i| {
            let label = format!("cluster-{i}");
            let crc = CRC32C.checksum(label.as_bytes());
            seen.insert(crc, i).map(|j| (format!("cluster-{j}"), label))
        })
        .unwrap();
    assert_ne!(a, b);
    assert_eq!(CRC32C.checksum(a.as_bytes()), CRC32C.checksum(b.as_bytes()));
    for mode in MODES {
        let mut tx = mode.envelope(a.as_bytes(), 1);
        let mut rx = Rx::new(mode.envelope(b.as_bytes(), 2));
        let mut same = Rx::new(mode.envelope(a.as_bytes(), 3));
        let d = sealed(&mut tx, b"payload");
        same.accepts(&d, b"payload", &a);
        match mode {
            Mode::Plain => rx.accepts(&d, b"payload", &b),
            Mode::Sealed(_) => rx.refuses(&d, OpenError::AuthenticationFailed, || {
                format!("{mode:?}: {a} vs {b}")
            }),
        }
        rx.check_counts(&b);
    }
}

/// Sealed with a key id the receiver never had, or has removed: `UnknownKey`
/// with that id. Same id with another key or another cipher:
/// `AuthenticationFailed`.
#[test]
fn unknown_removed_and_wrong_keys_are_refused() {
    for cipher in [
        Cipher::ChaCha20Poly1305,
        Cipher::XChaCha20Poly1305,
        Cipher::Aes256Gcm,
    ] {
        let what = format!("{cipher:?}");
        let mut rx = Rx::new(Mode::Sealed(cipher).envelope(LABEL, 1));

        // Never installed.
        let mut tx7 = Envelope::encrypted(LABEL, keyring(7, key(cipher, 0x42), 2));
        rx.refuses(&sealed(&mut tx7, b"p"), OpenError::UnknownKey(7), || {
            what.clone()
        });

        // Installed, then removed.
        let mut tx2 = Envelope::encrypted(LABEL, keyring(2, key(cipher, 0x99), 3));
        let d = sealed(&mut tx2, b"p");
        rx.env
            .keyring_mut()
            .unwrap()
            .add(2, key(cipher, 0x99))
            .unwrap();
        rx.accepts(&d, b"p", &what);
        assert_eq!(
            rx.env.keyring_mut().unwrap().add(2, key(cipher, 0x99)),
            Err(KeyringError::DuplicateId(2))
        );
        rx.env.keyring_mut().unwrap().remove(2).unwrap();
        rx.refuses(&d, OpenError::UnknownKey(2), || what.clone());
        rx.refuses(&sealed(&mut tx2, b"q"), OpenError::UnknownKey(2), || {
            what.clone()
        });
        assert_eq!(
            rx.env.keyring_mut().unwrap().remove(1),
            Err(KeyringError::IsPrimary(1))
        );
        assert_eq!(
            rx.env.keyring_mut().unwrap().remove(2),
            Err(KeyringError::UnknownKey(2))
        );

        // Id 1, but another key, or another cipher.
        let mut forger = Envelope::encrypted(LABEL, keyring(1, key(cipher, 0x41), 4));
        rx.refuses(
            &sealed(&mut forger, b"p"),
            OpenError::AuthenticationFailed,
            || what.clone(),
        );
        let mut confused = Envelope::encrypted(LABEL, keyring(1, key(other(cipher), 0x42), 5));
        rx.refuses(
            &sealed(&mut confused, b"p"),
            OpenError::AuthenticationFailed,
            || what.clone(),
        );
        rx.check_counts(&what);
    }
}

/// Plain datagrams to an encrypting member: `PlaintextRefused`, unless it
/// accepts plaintext (a migration), when they open (and sealed ones still
/// do). Sealed datagrams to a plain member: `EncryptedWithoutKeys`.
#[test]
fn plaintext_and_keyless_mismatches_are_refused() {
    let mut plain = Envelope::insecure_plaintext(LABEL);
    let p = sealed(&mut plain, b"plain payload");
    for cipher in [
        Cipher::ChaCha20Poly1305,
        Cipher::XChaCha20Poly1305,
        Cipher::Aes256Gcm,
    ] {
        let what = format!("{cipher:?}");
        let mode = Mode::Sealed(cipher);
        let mut strict = Rx::new(mode.envelope(LABEL, 1));
        strict.refuses(&p, OpenError::PlaintextRefused, || what.clone());
        strict.check_counts(&what);

        let mut migrating = Rx::new(mode.envelope(LABEL, 2).accept_plaintext(true));
        migrating.accepts(&p, b"plain payload", &what);
        let mut tx = mode.envelope(LABEL, 3);
        let s = sealed(&mut tx, b"sealed payload");
        migrating.accepts(&s, b"sealed payload", &what);
        let mut corrupt = p.clone();
        corrupt[9] ^= 1;
        migrating.refuses(&corrupt, OpenError::ChecksumMismatch, || what.clone());
        migrating.check_counts(&what);

        let mut keyless = Rx::new(Envelope::insecure_plaintext(LABEL));
        keyless.refuses(&s, OpenError::EncryptedWithoutKeys, || what.clone());
        keyless.check_counts(&what);
    }
}

/// Longer than the configured maximum: `Oversized`, before any other check;
/// exactly the maximum is fine. Sealing refuses what would not fit.
#[test]
fn oversized_datagrams_are_refused() {
    for mode in MODES {
        let what = format!("{mode:?}");
        let max = 300;
        let mut tx = mode.envelope(LABEL, 1).with_max_datagram(max);
        let mut rx = Rx::new(mode.envelope(LABEL, 2).with_max_datagram(max));
        assert_eq!(tx.max_payload(), max - mode.overhead());
        let fits = vec![7; tx.max_payload()];
        let d = sealed(&mut tx, &fits);
        assert_eq!(d.len(), max);
        rx.accepts(&d, &fits, &what);
        let mut wire = Vec::new();
        assert_eq!(
            tx.seal(&[7; 300][..tx.max_payload() + 1], &mut wire),
            Err(SealError::Oversized { size: max + 1, max }),
            "{what}"
        );
        let mut big = Envelope::insecure_plaintext(LABEL);
        let long = sealed(&mut big, &vec![7; max + 1 - 12]);
        assert_eq!(long.len(), max + 1);
        rx.refuses(&long, OpenError::Oversized, || what.clone());
        rx.refuses(&[0xff; 301], OpenError::Oversized, || what.clone());
        rx.refuses(&vec![0; 65_508], OpenError::Oversized, || what.clone());
        rx.check_counts(&what);
    }
}

// ---------------------------------------------------------------------------
// Codecs on hostile bytes

fn decode_both<T, C: Codec<T>>(
    codec: &mut C,
    bytes: &[u8],
) -> (Option<Header<T>>, Option<Member<T>>) {
    let mut input = bytes;
    let h = codec.decode_header(&mut input).ok();
    assert!(input.len() <= bytes.len());
    let mut input = bytes;
    let m = codec.decode_member(&mut input).ok();
    (h, m)
}

/// Whatever a codec decodes from hostile bytes is a value it can encode and
/// decode again to the same value.
fn stable<T: PartialEq + Debug, C: Codec<T>>(
    codec: &mut C,
    decoded: (Option<Header<T>>, Option<Member<T>>),
) {
    let mut buf = Vec::new();
    if let Some(h) = decoded.0 {
        codec.encode_header(&h, &mut buf).unwrap();
        assert_eq!(codec.decode_header(&mut &buf[..]).ok(), Some(h));
    }
    if let Some(m) = decoded.1 {
        buf.clear();
        codec.encode_member(&m, &mut buf).unwrap();
        assert_eq!(codec.decode_member(&mut &buf[..]).ok(), Some(m));
    }
}

/// Random bytes, every strict prefix and every single-bit flip of valid
/// encodings: no panic; no strict prefix decodes; what decodes re-encodes.
fn hammer<T, C>(mut codec: C, a: T, b: T, seed: u64)
where
    T: Clone + PartialEq + Debug,
    C: Codec<T>,
{
    let mut rng = StdRng::seed_from_u64(seed);
    for n in 0..3000 {
        let len = if n % 10 == 0 {
            rng.random_range(0..1500)
        } else {
            rng.random_range(0..48)
        };
        let mut bytes = vec![0; len];
        rng.fill_bytes(&mut bytes);
        let d = decode_both(&mut codec, &bytes);
        stable(&mut codec, d);
    }
    let headers = [
        Message::Ping(u32::MAX),
        Message::PingReq {
            target: b.clone(),
            probe_number: 300,
        },
        Message::ForwardedAck {
            target: a.clone(),
            probe_number: 7,
        },
        Message::TurnUndead,
    ]
    .map(|message| Header {
        src: a.clone(),
        src_incarnation: 1 << 20,
        dst: b.clone(),
        message,
    });
    let members = [
        Member::new(a.clone(), u32::MAX, State::Left),
        Member::new(b.clone(), 0, State::Alive),
    ];
    let mut encodings = Vec::new();
    for h in &headers {
        let mut e = Vec::new();
        codec.encode_header(h, &mut e).unwrap();
        for cut in 0..e.len() {
            let mut input = &e[..cut];
            assert!(
                codec.decode_header(&mut input).is_err(),
                "a prefix of {h:?} decoded"
            );
        }
        encodings.push(e);
    }
    for m in &members {
        let mut e = Vec::new();
        codec.encode_member(m, &mut e).unwrap();
        for cut in 0..e.len() {
            let mut input = &e[..cut];
            assert!(
                codec.decode_member(&mut input).is_err(),
                "a prefix of {m:?} decoded"
            );
        }
        encodings.push(e);
    }
    for e in &encodings {
        let mut c = e.clone();
        for i in 0..c.len() {
            for bit in 0..8 {
                c[i] ^= 1 << bit;
                let d = decode_both(&mut codec, &c);
                stable(&mut codec, d);
                c[i] ^= 1 << bit;
            }
        }
    }
}

#[test]
fn codecs_survive_hostile_bytes() {
    let s = |n: u8| GenerationalId::new(format!("node-{n}.example:7000"), u32::from(n));
    let v = |n: u8| GenerationalId::new(vec![n; 20], u32::from(n));
    let v6: SocketAddr = "[2001:db8::1]:7000".parse().unwrap();
    hammer(PostcardCodec::new(), gid(1), GenerationalId::new(v6, 9), 1);
    hammer(BincodeCodec::new(), gid(1), GenerationalId::new(v6, 9), 2);
    hammer(PostcardCodec::new(), common::v4(1), v6, 3);
    hammer(BincodeCodec::new(), common::v4(1), v6, 4);
    hammer(PostcardCodec::new(), s(1), s(2), 5);
    hammer(BincodeCodec::new(), s(1), s(2), 6);
    hammer(PostcardCodec::new(), v(1), v(2), 7);
    hammer(BincodeCodec::new(), v(1), v(2), 8);
}

// ---------------------------------------------------------------------------
// A member behind an envelope

/// A member (postcard codec) behind an envelope in each mode gets random
/// datagrams (refused by the envelope, exactly as the model says), then
/// hostile payloads that a key holder sealed validly (random bytes, every
/// truncation and every bit flip of real datagrams): the envelope opens
/// them unchanged, the member takes each one (accepted, or dropped and
/// counted), and nothing panics.
#[test]
fn a_member_behind_an_envelope_survives_hostile_datagrams() {
    let real = payloads();
    let mut rng = StdRng::seed_from_u64(99);
    for mode in MODES {
        let what = format!("{mode:?}");
        let mut tx = mode.envelope(LABEL, 1);
        let mut rx = receiver(mode, false);
        let mut ep = common::endpoint(
            gid(1),
            common::config(mode.overhead()),
            PostcardCodec::new(),
            5,
        );
        let table = vec![
            Member::alive(gid(2), 0),
            Member::alive(gid(3), 0),
            Member::new(gid(4), 0, State::Down),
        ];
        ep.command(Duration::ZERO, foca_core::Command::Apply(table))
            .unwrap();
        let mut now = Duration::ZERO;
        let mut feed = |ep: &mut common::Ep<Id, PostcardCodec<Id>>, payload: &[u8]| {
            now += Duration::from_millis(1);
            let before = ep.foca().metrics().datagrams_in;
            // From the address it claims, as a forger would make it look.
            let from = claimed_sender(payload);
            ep.handle_datagram(now, from, &mut payload.to_vec())
                .unwrap();
            assert_eq!(ep.foca().metrics().datagrams_in, before + 1);
            ep.handle_timeouts(now).unwrap();
            while ep.poll_transmit().is_some() {}
            while ep.poll_event().is_some() {}
        };
        for _ in 0..2000 {
            let len = rng.random_range(0..400);
            let mut d = vec![0; len];
            rng.fill_bytes(&mut d);
            let expected = predict(mode, false, 65_507, &d);
            rx.refuses(&d, expected, || what.clone());
        }
        let mut hostile: Vec<Vec<u8>> = Vec::new();
        for _ in 0..2000 {
            let len = rng.random_range(0..400);
            let mut p = vec![0; len];
            rng.fill_bytes(&mut p);
            hostile.push(p);
        }
        for p in &real {
            for cut in 0..p.len() {
                hostile.push(p[..cut].to_vec());
            }
            for i in 0..p.len() {
                for bit in 0..8 {
                    let mut c = p.clone();
                    c[i] ^= 1 << bit;
                    hostile.push(c);
                }
            }
            hostile.push(p.clone());
        }
        for p in &hostile {
            let d = sealed(&mut tx, p);
            let opened = rx.env.open(&d).unwrap().to_vec();
            assert_eq!(&opened, p, "{what}");
            feed(&mut ep, &opened);
        }
        rx.check_counts(&what);
        let m = ep.foca().metrics();
        assert_eq!(m.datagrams_in, hostile.len() as u64);
        println!(
            "{what}: {} hostile payloads into the member: {} dropped ({} undecodable), {} accepted",
            hostile.len(),
            m.dropped.total(),
            m.dropped.decode,
            hostile.len() as u64 - m.dropped.total()
        );
    }
}

/// The address a payload claims to come from (an unused one when it has no
/// header).
fn claimed_sender(payload: &[u8]) -> std::net::SocketAddr {
    let mut input = payload;
    PostcardCodec::<Id>::new()
        .decode_header(&mut input)
        .map_or(common::v4(99), |h| *h.src.address())
}
