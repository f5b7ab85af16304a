//! Opens arbitrary bytes with a plain envelope, one encrypted envelope per
//! cipher, and a mid-migration envelope (every key, plain accepted).
//!
//! Checked: no panic; each refusal is counted exactly once; a plain open
//! round-trips (sealing the payload again opens to the same payload, and
//! gives back the very same bytes when the version byte matches); the
//! migrating envelope agrees with the plain one on plain datagrams; and,
//! using the input as a payload, every mode seals and opens it back, and
//! flipping any one byte of the sealed datagram makes it refused. Opening
//! in place (`open_in_place`, what the core's `Endpoint` uses) agrees with
//! opening a copy, every time.
#![no_main]

use foca_codec::{Envelope, MAGIC};
use foca_fuzz::{CIPHERS, encrypted_envelope, migrating_envelope, plain_envelope};
use libfuzzer_sys::fuzz_target;

/// Opens `data`, checking the rejection counter moves by exactly one on a
/// refusal and not at all on success, and that opening it in place (as the
/// core's `Endpoint` does) agrees. Returns the payload, owned.
fn open(envelope: &mut Envelope, data: &[u8]) -> Option<Vec<u8>> {
    let before = envelope.rejections().total();
    let result = envelope.open(data).map(<[u8]>::to_vec);
    let mut copy = data.to_vec();
    let in_place = envelope.open_in_place(&mut copy).map(<[u8]>::to_vec);
    assert_eq!(result, in_place, "opening in place disagrees");
    let after = envelope.rejections().total() - u64::from(in_place.is_err());
    match &result {
        Ok(payload) => {
            assert_eq!(after, before, "a successful open counted a rejection");
            // The mode byte tells the overhead: 12 plain, 48 with 12-byte
            // nonces, 60 with XChaCha20's 24-byte ones.
            let overhead = match data[3] {
                0 => 12,
                1 | 3 => 48,
                2 => 60,
                m => panic!("opened a datagram of unknown mode {m}"),
            };
            assert_eq!(payload.len() + overhead, data.len(), "overhead mismatch");
        }
        Err(_) => assert_eq!(after, before + 1, "a refusal counted other than once"),
    }
    result.ok()
}

/// Seals `payload` with `sender`, opens it with `receiver`, and checks that
/// flipping the byte at `flip` (modulo the length) is refused.
fn round_trip(sender: &mut Envelope, receiver: &mut Envelope, payload: &[u8], flip: usize) {
    let mut wire = Vec::new();
    if sender.seal(payload, &mut wire).is_err() {
        assert!(payload.len() + sender.overhead() > sender.max_datagram());
        return;
    }
    assert_eq!(wire.len(), payload.len() + sender.overhead());
    assert!(sender.overhead() == 12 || sender.overhead() == 48 || sender.overhead() == 60);
    assert_eq!(wire[..2], MAGIC);
    let opened = open(receiver, &wire).expect("a sealed datagram opens");
    assert_eq!(opened, payload, "payload changed through seal/open");
    let i = flip % wire.len();
    wire[i] ^= 0x01;
    assert!(
        open(receiver, &wire).is_none(),
        "a datagram with byte {i} flipped was accepted"
    );
}

fuzz_target!(|data: &[u8]| {
    let mut plain = plain_envelope();
    let plain_result = open(&mut plain, data);
    if let Some(payload) = &plain_result {
        let mut wire = Vec::new();
        plain
            .seal(payload, &mut wire)
            .expect("an opened payload fits");
        assert_eq!(
            open(&mut plain, &wire).as_deref(),
            Some(&payload[..]),
            "seal(open(x)) does not open to the same payload"
        );
        if wire[2] == data[2] {
            assert_eq!(wire, data, "seal(open(x)) != x with the same version byte");
        }
    }

    let mut migrating = migrating_envelope(1);
    let migrating_result = open(&mut migrating, data);
    if data.get(3) == Some(&0) {
        assert_eq!(
            migrating_result, plain_result,
            "the migrating envelope disagrees with the plain one"
        );
    }

    for (i, cipher) in CIPHERS.into_iter().enumerate() {
        let mut envelope = encrypted_envelope(cipher, 10 + i as u64);
        // Forging an AEAD tag is out of reach: a success would be a bug.
        let _ = open(&mut envelope, data);
    }

    // The input as a payload, through every mode.
    let flip = data
        .iter()
        .fold(0usize, |a, &b| a.wrapping_mul(31).wrapping_add(b.into()));
    round_trip(&mut plain_envelope(), &mut plain, data, flip);
    round_trip(&mut plain_envelope(), &mut migrating, data, flip);
    for (i, cipher) in CIPHERS.into_iter().enumerate() {
        let mut sender = encrypted_envelope(cipher, 20 + i as u64);
        let mut receiver = encrypted_envelope(cipher, 30 + i as u64);
        round_trip(&mut sender, &mut receiver, data, flip);
        let mut sender = encrypted_envelope(cipher, 40 + i as u64);
        round_trip(&mut sender, &mut migrating, data, flip);
    }
});
