//! What the envelope costs per datagram: a typical ping carrying 10
//! piggybacked membership updates, built by a real `Foca` (postcard codec,
//! `GenerationalId<SocketAddr>` identities), encoded and sealed, then opened
//! and decoded, in every envelope mode; with baselines measured in the same
//! run (a memcpy of the datagram, and the codec alone) so figures can be
//! given as ratios.
//!
//! `cargo bench -p foca-codec --bench envelope`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use foca_codec::{BincodeCodec, Cipher, Envelope, Key, Keyring, PostcardCodec};
use foca_core::testing::NoEnvelope;
use foca_core::wire::{self, Writer};
use foca_core::{
    Codec, Command, Config, Endpoint, Foca, GenerationalId, Header, MAX_PACKET_SIZE, Member,
    Message,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

type Id = GenerationalId<SocketAddr>;

const LABEL: &[u8] = b"bench-cluster";
const UPDATES: usize = 10;

fn id(port: u16) -> Id {
    GenerationalId::new(SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), port)), 1)
}

/// A ping as a real member sends it: 10 members applied (10 updates in the
/// backlog), then the probe timer fired; the ping is captured.
fn captured_ping() -> Vec<u8> {
    let foca = Foca::new(
        id(7000),
        Config::simple(),
        StdRng::seed_from_u64(1),
        PostcardCodec::<Id>::new(),
    )
    .unwrap();
    let mut endpoint = Endpoint::new(foca, NoEnvelope, Duration::ZERO).unwrap();
    let members = (1..=UPDATES as u16).map(|i| Member::alive(id(7000 + i), 0));
    let apply = Command::Apply(members.collect());
    endpoint.command(Duration::ZERO, apply).unwrap();
    assert_eq!(endpoint.foca().updates_backlog(), UPDATES);
    let deadline = endpoint.next_deadline().expect("the probe timer is set");
    endpoint.handle_timeouts(deadline).unwrap();
    let mut codec = PostcardCodec::<Id>::new();
    while let Some(t) = endpoint.poll_transmit() {
        let (header, updates) = decode_datagram(&mut codec, &t.data);
        if matches!(header.message, Message::Ping(_)) {
            assert_eq!(updates.len(), UPDATES, "the ping carries the backlog");
            return t.data;
        }
    }
    panic!("no ping sent");
}

/// Frames a datagram as the core does (its wire layer): header, updates,
/// no custom broadcasts.
fn encode_datagram<C: Codec<Id>>(
    codec: &mut C,
    header: &Header<Id>,
    updates: &[Member<Id>],
    out: &mut Vec<u8>,
) {
    let mut w = Writer::new(out, MAX_PACKET_SIZE, codec, header, &[]).unwrap();
    for m in updates {
        assert!(w.push_update(codec, m).unwrap());
    }
    w.finish(0, &[]);
}

/// Parses what [`encode_datagram`] writes.
fn decode_datagram<C: Codec<Id>>(codec: &mut C, data: &[u8]) -> (Header<Id>, Vec<Member<Id>>) {
    let d = wire::parse(codec, data).unwrap();
    (d.header, d.updates)
}

fn key(cipher: Cipher) -> Key {
    Key::new(cipher, [cipher.mode().wrapping_mul(37); 32])
}

/// `(name, sender, receiver)` for every mode.
fn envelopes() -> Vec<(&'static str, Envelope, Envelope)> {
    let mut rng = StdRng::seed_from_u64(2);
    let mut modes = vec![(
        "plain",
        Envelope::insecure_plaintext(LABEL),
        Envelope::insecure_plaintext(LABEL),
    )];
    for (name, cipher) in [
        ("chacha20poly1305", Cipher::ChaCha20Poly1305),
        ("xchacha20poly1305", Cipher::XChaCha20Poly1305),
        ("aes256gcm", Cipher::Aes256Gcm),
    ] {
        let sender = Envelope::encrypted(LABEL, Keyring::new(1, key(cipher), &mut rng));
        let receiver = Envelope::encrypted(LABEL, Keyring::new(1, key(cipher), &mut rng));
        modes.push((name, sender, receiver));
    }
    modes
}

fn bench(c: &mut Criterion) {
    let ping = captured_ping();
    let mut postcard = PostcardCodec::<Id>::new();
    let (header, updates) = decode_datagram(&mut postcard, &ping);
    let mut buf = Vec::with_capacity(2048);
    encode_datagram(&mut postcard, &header, &updates, &mut buf);
    assert_eq!(buf, ping, "the bench's framing is the core's");
    eprintln!(
        "datagram: ping with {} updates, {} bytes (postcard payload)",
        updates.len(),
        ping.len()
    );

    let mut g = c.benchmark_group("envelope");
    g.sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    // Baselines.
    let mut out = Vec::with_capacity(2048);
    g.bench_function("baseline/memcpy", |b| {
        b.iter(|| {
            out.clear();
            out.extend_from_slice(black_box(&ping));
            black_box(&out);
        })
    });
    g.bench_function("baseline/postcard_encode", |b| {
        b.iter(|| {
            encode_datagram(&mut postcard, black_box(&header), &updates, &mut buf);
            black_box(&buf);
        })
    });
    g.bench_function("baseline/postcard_decode", |b| {
        b.iter(|| black_box(decode_datagram(&mut postcard, black_box(&ping))))
    });

    // Every mode, postcard.
    for (name, mut sender, mut receiver) in envelopes() {
        let mut wire = Vec::with_capacity(2048);
        sender.seal(&ping, &mut wire).unwrap();
        assert_eq!(receiver.open(&wire).unwrap(), &ping[..]);
        eprintln!(
            "{name}: {} bytes on the wire, overhead {} (Envelope::overhead() = {})",
            wire.len(),
            wire.len() - ping.len(),
            sender.overhead()
        );
        g.bench_function(format!("{name}/encode_seal"), |b| {
            b.iter(|| {
                encode_datagram(&mut postcard, black_box(&header), &updates, &mut buf);
                sender.seal(&buf, &mut wire).unwrap();
                black_box(&wire);
            })
        });
        g.bench_function(format!("{name}/open_decode"), |b| {
            b.iter(|| {
                let payload = receiver.open(black_box(&wire)).unwrap();
                black_box(decode_datagram(&mut postcard, payload))
            })
        });
    }

    // Bincode, plain mode.
    let mut bincode = BincodeCodec::<Id>::new();
    let mut bincode_payload = Vec::with_capacity(2048);
    encode_datagram(&mut bincode, &header, &updates, &mut bincode_payload);
    let mut sender = Envelope::insecure_plaintext(LABEL);
    let mut receiver = Envelope::insecure_plaintext(LABEL);
    let mut wire = Vec::with_capacity(2048);
    sender.seal(&bincode_payload, &mut wire).unwrap();
    eprintln!(
        "bincode: {} bytes payload, {} on the wire",
        bincode_payload.len(),
        wire.len()
    );
    g.bench_function("baseline/bincode_encode", |b| {
        b.iter(|| {
            encode_datagram(&mut bincode, black_box(&header), &updates, &mut buf);
            black_box(&buf);
        })
    });
    g.bench_function("baseline/bincode_decode", |b| {
        b.iter(|| black_box(decode_datagram(&mut bincode, black_box(&bincode_payload))))
    });
    g.bench_function("plain_bincode/encode_seal", |b| {
        b.iter(|| {
            encode_datagram(&mut bincode, black_box(&header), &updates, &mut buf);
            sender.seal(&buf, &mut wire).unwrap();
            black_box(&wire);
        })
    });
    g.bench_function("plain_bincode/open_decode", |b| {
        b.iter(|| {
            let payload = receiver.open(black_box(&wire)).unwrap();
            black_box(decode_datagram(&mut bincode, payload))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
