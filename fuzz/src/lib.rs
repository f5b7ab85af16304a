//! Shared setup of the fuzz targets (identities, envelopes, the fuzzed
//! member, the properties checked) and the valid datagrams the seed corpus
//! generator (`examples/seed_corpus.rs`) writes.
//!
//! Everything here is deterministic: fixed keys, a fixed cluster label,
//! seeded RNGs, so a crashing input replays exactly.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use foca_codec::{Cipher, Envelope, Key, Keyring, PostcardCodec};
use foca_core::testing::NoEnvelope;
use foca_core::wire::{Writer, put_item};
use foca_core::{
    Codec, Command, Config, Endpoint, Foca, GenerationalId, Header, Identity, MAX_PACKET_SIZE,
    Member, Message, NoCustomBroadcast, Notification, Runtime, State, Timer,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// The identity every target uses.
pub type Id = GenerationalId<SocketAddr>;

/// An identity whose address is a string (a host name): decoding it
/// allocates the length the input claims, within the codec's cap.
pub type StringId = GenerationalId<String>;

/// An identity whose address is a byte vector.
pub type BytesId = GenerationalId<Vec<u8>>;

/// The cluster label of every envelope.
pub const LABEL: &[u8] = b"foca-fuzz";

/// Every cipher, in mode order.
pub const CIPHERS: [Cipher; 3] = [
    Cipher::ChaCha20Poly1305,
    Cipher::XChaCha20Poly1305,
    Cipher::Aes256Gcm,
];

/// The fuzzed member's port (`handle_data`).
pub const SELF_PORT: u16 = 7000;

/// `127.0.0.1:port`.
pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// `127.0.0.1:port`, generation 1.
pub fn id(port: u16) -> Id {
    GenerationalId::new(addr(port), 1)
}

/// The fixed key of `cipher` (its key id is its mode byte).
pub fn key(cipher: Cipher) -> Key {
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31) ^ cipher.mode().wrapping_mul(0x5b);
    }
    Key::new(cipher, bytes)
}

/// A keyring holding only `cipher`'s fixed key, id = mode byte; `seed` seeds
/// its nonce counter (two keyrings sharing a key must differ in it).
pub fn keyring(cipher: Cipher, seed: u64) -> Keyring {
    let mut rng = StdRng::seed_from_u64(seed);
    Keyring::new(u32::from(cipher.mode()), key(cipher), &mut rng)
}

/// The plain (CRC32C) envelope.
pub fn plain_envelope() -> Envelope {
    Envelope::insecure_plaintext(LABEL)
}

/// An envelope sealing with `cipher`'s fixed key.
pub fn encrypted_envelope(cipher: Cipher, seed: u64) -> Envelope {
    Envelope::encrypted(LABEL, keyring(cipher, seed))
}

/// An envelope holding every cipher's key (primary: XChaCha20-Poly1305) and
/// accepting plain datagrams: the state of a cluster mid-migration.
pub fn migrating_envelope(seed: u64) -> Envelope {
    let mut ring = keyring(Cipher::XChaCha20Poly1305, seed);
    for cipher in [Cipher::ChaCha20Poly1305, Cipher::Aes256Gcm] {
        ring.add(u32::from(cipher.mode()), key(cipher))
            .expect("distinct key ids");
    }
    Envelope::encrypted(LABEL, ring).accept_plaintext(true)
}

/// A runtime that keeps what the member sent, and counts the rest.
#[derive(Default, Debug)]
pub struct Recorder {
    /// Datagrams sent, in order.
    pub sent: Vec<(Id, Vec<u8>)>,
    /// Timers submitted.
    pub timers: usize,
    /// Notifications emitted.
    pub notifications: usize,
}

impl Runtime<Id> for Recorder {
    fn notify(&mut self, _notification: Notification<Id>) {
        self.notifications += 1;
    }

    fn send_to(&mut self, to: Id, data: &[u8]) {
        self.sent.push((to, data.to_vec()));
    }

    fn submit_after(&mut self, _event: Timer<Id>, _after: Duration) {
        self.timers += 1;
    }
}

/// The member fed by `handle_data`.
pub type Fuzzed = Foca<Id, PostcardCodec<Id>, StdRng>;

/// The config of every member here.
pub fn config() -> Config {
    Config::new_lan(8)
}

/// The updates applied to the fuzzed member before it is fed: alive,
/// suspect, down and left members, so every sender check has a row to hit.
pub fn known_members() -> Vec<Member<Id>> {
    vec![
        Member::alive(id(7001), 0),
        Member::alive(id(7002), 3),
        Member::alive(id(7003), 0),
        Member::new(id(7004), 1, State::Suspect),
        Member::new(id(7005), 2, State::Down),
        Member::new(id(7006), 0, State::Left),
    ]
}

/// The fuzzed member: `127.0.0.1:7000#1` knowing [`known_members`].
pub fn fuzzed_member() -> Fuzzed {
    let mut foca = Foca::new(
        id(SELF_PORT),
        config(),
        StdRng::seed_from_u64(7),
        PostcardCodec::new(),
    )
    .expect("valid config");
    foca.apply_many(known_members(), &mut Recorder::default())
        .expect("applying known members");
    foca
}

/// The endpoint fed by `endpoint_sequence`: a [`Fuzzed`] member behind a
/// `foca_codec::Envelope`.
pub type FuzzedEndpoint = Endpoint<Id, PostcardCodec<Id>, StdRng, NoCustomBroadcast, Envelope>;

/// The members `endpoint_sequence` installs with `Command::Restore` (not
/// disseminated), besides the [`known_members`] it applies: a live one, and
/// a dead one at another IP with the port of a known member.
pub fn restored_members() -> Vec<Member<Id>> {
    vec![
        Member::alive(id(7007), 2),
        Member::new(
            GenerationalId::new(SocketAddr::from(([10, 0, 0, 1], 7001)), 1),
            0,
            State::Down,
        ),
    ]
}

/// The endpoint of `endpoint_sequence`: `127.0.0.1:7000#1` sealing with
/// `envelope`, at time zero, with [`known_members`] applied and
/// [`restored_members`] restored. What the setup queued (transmits,
/// events) is left for the caller to drain.
pub fn fuzzed_endpoint(envelope: Envelope) -> FuzzedEndpoint {
    let foca = Foca::new(
        id(SELF_PORT),
        config(),
        StdRng::seed_from_u64(7),
        PostcardCodec::new(),
    )
    .expect("valid config");
    let mut ep = Endpoint::new(foca, envelope, Duration::ZERO).expect("fits");
    ep.command(Duration::ZERO, Command::Apply(known_members()))
        .expect("applying known members");
    ep.command(Duration::ZERO, Command::Restore(restored_members()))
        .expect("restoring members");
    ep
}

/// The member table, in a canonical order.
pub fn table(foca: &Fuzzed) -> Vec<Member<Id>> {
    let mut rows: Vec<Member<Id>> = foca.iter_membership_state().cloned().collect();
    rows.sort_by_key(|m| (*m.id(), m.incarnation(), m.state() as u8));
    rows
}

/// Feeds `data` to `foca` and checks what must hold whatever the bytes:
/// no panic (checked by running), no `Err` (the postcard codec cannot fail
/// to encode a reply), every reply within `max_packet_size`, and a datagram
/// counted as dropped changes neither the member table nor this member's
/// identity or incarnation.
pub fn feed_and_check(foca: &mut Fuzzed, data: &[u8]) {
    let dropped_before = foca.metrics().dropped.total();
    let table_before = table(foca);
    let identity_before = (*foca.identity(), foca.incarnation());
    let mut runtime = Recorder::default();
    let result = foca.handle_data(data, &mut runtime);
    assert!(result.is_ok(), "handle_data failed: {result:?}");
    let max = foca.config().max_packet_size;
    for (to, sent) in &runtime.sent {
        assert!(
            sent.len() <= max,
            "sent {} bytes to {to:?}, more than max_packet_size {max}",
            sent.len()
        );
    }
    let dropped_after = foca.metrics().dropped.total();
    assert!(
        dropped_after <= dropped_before + 1,
        "one datagram counted as several drops"
    );
    if dropped_after > dropped_before {
        assert_eq!(
            table(foca),
            table_before,
            "a dropped datagram changed the member table"
        );
        assert_eq!(
            (*foca.identity(), foca.incarnation()),
            identity_before,
            "a dropped datagram changed this member's identity or incarnation"
        );
    }
}

/// The codec properties checked by `decode_postcard` and `decode_bincode`:
/// decoding never panics and never reads past its input; whatever decodes
/// re-encodes to bytes that decode to the same value, consuming them
/// exactly. Checked for a header and for an update at the start of `data`,
/// and for an update right after a decoded header.
///
/// Generic over the identity, so that identities holding strings and
/// vectors (whose decoding allocates what the input claims, up to the
/// codec's cap) are fuzzed too: see [`StringId`] and [`BytesId`].
pub fn check_codec<I: Identity, C: Codec<I>>(codec: &mut C, data: &[u8]) {
    let mut input = data;
    if let Ok(header) = codec.decode_header(&mut input) {
        assert!(input.len() <= data.len());
        let mut bytes = Vec::new();
        codec
            .encode_header(&header, &mut bytes)
            .expect("a decoded header encodes");
        let mut again = &bytes[..];
        let decoded = codec
            .decode_header(&mut again)
            .expect("a re-encoded header decodes");
        assert_eq!(decoded, header, "header changed through encode/decode");
        assert!(again.is_empty(), "a re-encoded header left bytes behind");
        check_member(codec, input);
    }
    check_member(codec, data);
}

fn check_member<I: Identity, C: Codec<I>>(codec: &mut C, data: &[u8]) {
    let mut input = data;
    if let Ok(member) = codec.decode_member(&mut input) {
        assert!(input.len() < data.len(), "an update decoded from no bytes");
        let mut bytes = vec![0xAA];
        codec
            .encode_member(&member, &mut bytes)
            .expect("a decoded update encodes");
        assert_eq!(bytes[0], 0xAA, "encoding touched bytes already in `out`");
        let mut again = &bytes[1..];
        let decoded = codec
            .decode_member(&mut again)
            .expect("a re-encoded update decodes");
        assert_eq!(decoded, member, "update changed through encode/decode");
        assert!(again.is_empty(), "a re-encoded update left bytes behind");
    }
}

/// Frames a datagram as the core does (its wire layer, `foca_core::wire`):
/// header, updates, custom broadcast items.
pub fn frame<C: Codec<Id>>(
    codec: &mut C,
    header: &Header<Id>,
    updates: &[Member<Id>],
    broadcasts: &[&[u8]],
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = Writer::new(&mut out, MAX_PACKET_SIZE, codec, header, &[]).expect("encodes");
    for m in updates {
        assert!(w.push_update(codec, m).expect("encodes"), "fits");
    }
    let mut items = Vec::new();
    for b in broadcasts {
        put_item(&mut items, b);
    }
    w.finish(broadcasts.len(), &items);
    out
}

/// Hand-built datagrams for the fuzzed member, one per message kind, from
/// senders in every state the member knows (alive, suspect, down, left,
/// unknown, itself), each with a few updates, framed with `codec`.
pub fn handmade_datagrams<C: Codec<Id>>(codec: &mut C) -> Vec<Vec<u8>> {
    let me = id(SELF_PORT);
    let messages = [
        Message::Ping(1),
        Message::Ack(1),
        Message::PingReq {
            target: id(7002),
            probe_number: 2,
        },
        Message::IndirectPing {
            origin: id(7003),
            probe_number: 3,
        },
        Message::IndirectAck {
            origin: id(7003),
            probe_number: 3,
        },
        Message::ForwardedAck {
            target: id(7002),
            probe_number: 1,
        },
        Message::Announce,
        Message::Feed,
        Message::Gossip,
        Message::Broadcast,
        Message::TurnUndead,
        Message::Nack(1),
    ];
    let updates = [
        Member::alive(id(7008), 0),
        Member::new(id(7002), 4, State::Suspect),
        Member::new(me, 0, State::Suspect),
        Member::new(id(7003), 0, State::Down),
        Member::alive(GenerationalId::new(addr(7001), 2), 0),
    ];
    let mut out = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        for src in [7001, 7004, 7005, 7006, 7009] {
            let header = Header {
                src: id(src),
                src_incarnation: (i % 3) as u32,
                dst: if *message == Message::Announce {
                    GenerationalId::seed(addr(SELF_PORT))
                } else {
                    me
                },
                message: message.clone(),
            };
            let n = (i + src as usize) % (updates.len() + 1);
            out.push(frame(codec, &header, &updates[..n], &[]));
        }
    }
    // Misdirected, from itself, with a broadcast section.
    let header = Header {
        src: id(7001),
        src_incarnation: 0,
        dst: id(7002),
        message: Message::Ping(9),
    };
    out.push(frame(codec, &header, &[], &[]));
    let header = Header {
        src: me,
        src_incarnation: 0,
        dst: me,
        message: Message::Gossip,
    };
    out.push(frame(codec, &header, &updates, &[]));
    let header = Header {
        src: id(7001),
        src_incarnation: 0,
        dst: me,
        message: Message::Broadcast,
    };
    out.push(frame(codec, &header, &[], &[b"hello", b"x"]));
    out
}

/// Datagrams a small live cluster (members 7000 to 7004, all knowing each
/// other) sends during a few seconds of virtual time: what the fuzzed
/// member really receives. Only those addressed to 7000 are returned.
pub fn cluster_datagrams() -> Vec<Vec<u8>> {
    let ports = [7000u16, 7001, 7002, 7003, 7004];
    let mut endpoints: Vec<_> = ports
        .iter()
        .map(|&port| {
            let foca = Foca::new(
                id(port),
                config(),
                StdRng::seed_from_u64(u64::from(port)),
                PostcardCodec::<Id>::new(),
            )
            .expect("valid config");
            Endpoint::new(foca, NoEnvelope, Duration::ZERO).expect("fits")
        })
        .collect();
    for (i, ep) in endpoints.iter_mut().enumerate() {
        let others = ports
            .iter()
            .filter(|&&p| p != ports[i])
            .map(|&p| Member::alive(id(p), 0))
            .collect();
        ep.command(Duration::ZERO, Command::Apply(others))
            .expect("apply");
    }
    let mut out = Vec::new();
    let mut now = Duration::ZERO;
    while now < Duration::from_secs(4) {
        now += Duration::from_millis(50);
        let mut in_flight = Vec::new();
        for ep in endpoints.iter_mut() {
            let _ = ep.handle_timeouts(now);
            let from = *ep.foca().identity().address();
            while let Some(t) = ep.poll_transmit() {
                in_flight.push((from, t));
            }
            while ep.poll_event().is_some() {}
        }
        for (from, mut t) in in_flight {
            if t.to.port() == SELF_PORT && out.len() < 64 {
                out.push(t.data.clone());
            }
            if let Some(ep) = endpoints
                .iter_mut()
                .find(|ep| *ep.foca().identity().address() == t.to)
            {
                let _ = ep.handle_datagram(now, from, &mut t.data);
            }
        }
    }
    out
}
