//! Shared helpers: an in-memory network of `Endpoint`s on a virtual clock,
//! where every datagram is sealed by the sender's `Envelope` and opened by
//! the receiver's, and what happened to each one is logged. The envelopes
//! are held here, beside endpoints that pass payloads through
//! (`NoEnvelope`), so that every datagram can be inspected on both sides of
//! its envelope.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use foca_codec::{Cipher, Envelope, Key, KeyId, Keyring, OpenError};
use foca_core::testing::NoEnvelope;
use foca_core::{
    BroadcastHandler, Codec, Command, Config, DropCounts, Endpoint, Event, Foca, GenerationalId,
    Identity, Invalidates, Notification,
};
use rand::SeedableRng;
use rand::rngs::{StdRng, Xoshiro128PlusPlus};

/// The identity most tests use.
pub type Id = GenerationalId<SocketAddr>;

/// `10.0.0.n:7000`.
pub fn v4(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, n], 7000))
}

/// `[fd00::n]:7000`.
pub fn v6(n: u8) -> SocketAddr {
    SocketAddr::from(([0xfd00, 0, 0, 0, 0, 0, 0, u16::from(n)], 7000))
}

/// Generation-1 identity at `10.0.0.n:7000`.
pub fn gid(n: u8) -> Id {
    GenerationalId::new(v4(n), 1)
}

/// A fixed key (tests must be reproducible).
pub fn key(cipher: Cipher, byte: u8) -> Key {
    Key::new(cipher, [byte; 32])
}

/// A keyring whose only key is `key` under `id`, its nonce counter seeded
/// from `seed` (a cryptographic RNG, as `Keyring::new` requires).
pub fn keyring(id: KeyId, key: Key, seed: u64) -> Keyring {
    Keyring::new(id, key, &mut StdRng::seed_from_u64(seed))
}

/// The envelope modes: plain, or sealed with one cipher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Sealed(Cipher),
}

pub const MODES: [Mode; 4] = [
    Mode::Plain,
    Mode::Sealed(Cipher::ChaCha20Poly1305),
    Mode::Sealed(Cipher::XChaCha20Poly1305),
    Mode::Sealed(Cipher::Aes256Gcm),
];

impl Mode {
    /// What `Envelope::overhead` must say, per the docs.
    pub fn overhead(self) -> usize {
        match self {
            Mode::Plain => 12,
            Mode::Sealed(Cipher::XChaCha20Poly1305) => 60,
            Mode::Sealed(_) => 48,
        }
    }

    /// An envelope for `label` in this mode; sealed ones hold key id 1
    /// (bytes 0x42), their nonce counter seeded from `seed`.
    pub fn envelope(self, label: &[u8], seed: u64) -> Envelope {
        match self {
            Mode::Plain => Envelope::insecure_plaintext(label),
            Mode::Sealed(c) => Envelope::encrypted(label, keyring(1, key(c, 0x42), seed)),
        }
    }
}

/// Custom broadcasts as opaque items, each news once.
#[derive(Debug, Default)]
pub struct Items {
    pub seen: BTreeSet<Vec<u8>>,
}

/// One custom broadcast item.
pub struct Item(Vec<u8>);

impl Invalidates for Item {
    type Key = Vec<u8>;

    fn key(&self) -> Vec<u8> {
        self.0.clone()
    }

    fn invalidates(&self, _other: &Self) -> bool {
        false
    }
}

impl<T> BroadcastHandler<T> for Items {
    type Broadcast = Item;
    type Error = Infallible;

    fn receive_item(
        &mut self,
        item: &[u8],
        _sender: Option<&T>,
    ) -> Result<Option<Item>, Infallible> {
        Ok(self.seen.insert(item.to_vec()).then(|| Item(item.to_vec())))
    }
}

pub type Ep<T, C> = Endpoint<T, C, Xoshiro128PlusPlus, Items, NoEnvelope>;

/// An endpoint for `id` with `config`, seeded from `seed`.
pub fn endpoint<T: Identity, C: Codec<T>>(id: T, config: Config, codec: C, seed: u64) -> Ep<T, C> {
    let foca = Foca::with_custom_broadcast(
        id,
        config,
        Xoshiro128PlusPlus::seed_from_u64(seed),
        codec,
        Items::default(),
    )
    .unwrap();
    Endpoint::new(foca, NoEnvelope, Duration::ZERO).unwrap()
}

/// Joins `ep` through `seed`.
pub fn join<T: Identity, C: Codec<T>>(ep: &mut Ep<T, C>, now: Duration, seed: T) {
    ep.command(now, Command::Join(vec![seed])).unwrap();
}

/// Adds a custom broadcast (sent at once to a few members).
pub fn broadcast<T: Identity, C: Codec<T>>(ep: &mut Ep<T, C>, now: Duration, item: &[u8]) {
    assert!(
        ep.command(now, Command::AddBroadcast(item.to_vec()))
            .unwrap()
    );
}

/// Each count of `after` minus the same in `before`.
pub fn drops_between(before: DropCounts, after: DropCounts) -> DropCounts {
    DropCounts {
        decode: after.decode - before.decode,
        oversized: after.oversized - before.oversized,
        wrong_destination: after.wrong_destination - before.wrong_destination,
        from_self: after.from_self - before.from_self,
        from_down_member: after.from_down_member - before.from_down_member,
        stale_identity: after.stale_identity - before.stale_identity,
        not_active: after.not_active - before.not_active,
        source_mismatch: after.source_mismatch - before.source_mismatch,
        replayed: after.replayed - before.replayed,
        too_old: after.too_old - before.too_old,
        malformed_envelope: after.malformed_envelope - before.malformed_envelope,
        other_cluster: after.other_cluster - before.other_cluster,
        corrupted: after.corrupted - before.corrupted,
        unauthenticated: after.unauthenticated - before.unauthenticated,
    }
}

/// A LAN config for 3 members whose datagrams leave room for `overhead`
/// bytes of envelope in 1400.
pub fn config(overhead: usize) -> Config {
    Config {
        max_packet_size: 1400 - overhead,
        ..Config::new_lan(3)
    }
}

/// One member of the network.
pub struct Node<T: Identity, C: Codec<T>> {
    pub ep: Ep<T, C>,
    pub env: Envelope,
}

/// What became of one datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Not delivered: its link was blocked.
    Blocked,
    /// The receiver's envelope refused it.
    Rejected(OpenError),
    /// Opened and handed to the receiver's `Foca`, which dropped it for
    /// these reasons (all zero: accepted).
    Handled(DropCounts),
    /// Still in flight.
    InFlight,
}

/// The log entry of one datagram.
#[derive(Clone, Debug)]
pub struct Record {
    pub sent_at: Duration,
    pub from: usize,
    pub to: usize,
    /// `Message::name()` of its header.
    pub kind: &'static str,
    pub payload_len: usize,
    pub sealed_len: usize,
    /// The sender envelope's `overhead()` when it sealed.
    pub overhead: usize,
    /// The envelope mode byte and, when sealed, the key id it carries.
    pub mode: u8,
    pub key_id: Option<KeyId>,
    /// Whether the receiver's envelope gave back exactly the payload sent.
    pub opened_same: Option<bool>,
    pub fate: Fate,
}

impl Record {
    /// Opened, and accepted by the receiving member (no drop counted).
    pub fn accepted(&self) -> bool {
        matches!(&self.fate, Fate::Handled(d) if d.total() == 0)
    }
}

struct Flight {
    at: Duration,
    record: usize,
    payload: Vec<u8>,
    sealed: Vec<u8>,
}

/// The network. Fixed 1 ms latency, no loss; links can be blocked.
pub struct Net<T: Identity, C: Codec<T>> {
    pub now: Duration,
    pub nodes: Vec<Node<T, C>>,
    index: BTreeMap<T::Addr, usize>,
    in_flight: VecDeque<Flight>,
    pub blocked: BTreeSet<(usize, usize)>,
    pub latency: Duration,
    pub log: Vec<Record>,
    pub notifications: Vec<(Duration, usize, Notification<T>)>,
    /// Payloads sent, kept when `keep_payloads` is set.
    pub payloads: Vec<Vec<u8>>,
    pub keep_payloads: bool,
    codec: C,
}

impl<T: Identity, C: Codec<T> + Clone> Net<T, C> {
    /// An empty network; `codec` names the message kinds in the log.
    pub fn new(codec: C) -> Self {
        Self {
            now: Duration::ZERO,
            nodes: Vec::new(),
            index: BTreeMap::new(),
            in_flight: VecDeque::new(),
            blocked: BTreeSet::new(),
            latency: Duration::from_millis(1),
            log: Vec::new(),
            notifications: Vec::new(),
            payloads: Vec::new(),
            keep_payloads: false,
            codec,
        }
    }

    /// Adds a member; returns its index.
    pub fn add(&mut self, ep: Ep<T, C>, env: Envelope) -> usize {
        let i = self.nodes.len();
        self.index.insert(ep.foca().identity().addr(), i);
        self.nodes.push(Node { ep, env });
        i
    }

    /// Runs a command on member `i` now, then sends what it produced.
    pub fn with<X>(&mut self, i: usize, f: impl FnOnce(&mut Ep<T, C>, Duration) -> X) -> X {
        let now = self.now;
        let x = f(&mut self.nodes[i].ep, now);
        self.drain(i);
        x
    }

    /// Datagrams sent and not yet delivered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Blocks both directions between `a` and `b`.
    pub fn cut(&mut self, a: usize, b: usize) {
        self.blocked.insert((a, b));
        self.blocked.insert((b, a));
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    fn kind(&mut self, payload: &[u8]) -> &'static str {
        let mut input = payload;
        self.codec
            .decode_header(&mut input)
            .map_or("undecodable", |h| h.message.name())
    }

    /// Seals every datagram member `i` has queued and puts it in flight.
    fn drain(&mut self, i: usize) {
        while let Some(event) = self.nodes[i].ep.poll_event() {
            if let Event::Membership(n) = event {
                self.notifications.push((self.now, i, n));
            }
        }
        while let Some(t) = self.nodes[i].ep.poll_transmit() {
            let to = *self
                .index
                .get(&t.to)
                .unwrap_or_else(|| panic!("datagram to an unknown member {:?}", t.to));
            let kind = self.kind(&t.data);
            let env = &mut self.nodes[i].env;
            let overhead = env.overhead();
            let mut sealed = Vec::new();
            env.seal(&t.data, &mut sealed)
                .unwrap_or_else(|e| panic!("member {i} could not seal a {kind}: {e}"));
            let mode = sealed[3];
            let key_id = (mode != 0).then(|| u32::from_be_bytes(sealed[8..12].try_into().unwrap()));
            let blocked = self.blocked.contains(&(i, to));
            self.log.push(Record {
                sent_at: self.now,
                from: i,
                to,
                kind,
                payload_len: t.data.len(),
                sealed_len: sealed.len(),
                overhead,
                mode,
                key_id,
                opened_same: None,
                fate: if blocked {
                    Fate::Blocked
                } else {
                    Fate::InFlight
                },
            });
            if self.keep_payloads {
                self.payloads.push(t.data.clone());
            }
            if !blocked {
                self.in_flight.push_back(Flight {
                    at: self.now + self.latency,
                    record: self.log.len() - 1,
                    payload: t.data,
                    sealed,
                });
            }
        }
    }

    fn deliver(&mut self, f: Flight) {
        let now = self.now;
        let (from, to) = (self.log[f.record].from, self.log[f.record].to);
        let from = self.nodes[from].ep.foca().identity().addr();
        let node = &mut self.nodes[to];
        let opened = node.env.open(&f.sealed).map(<[u8]>::to_vec);
        match opened {
            Err(e) => self.log[f.record].fate = Fate::Rejected(e),
            Ok(mut payload) => {
                self.log[f.record].opened_same = Some(payload == f.payload);
                let before = node.ep.metrics().dropped;
                node.ep
                    .handle_datagram(now, from, &mut payload)
                    .unwrap_or_else(|e| panic!("member {to}: {e}"));
                let after = node.ep.metrics().dropped;
                self.log[f.record].fate = Fate::Handled(drops_between(before, after));
                self.drain(to);
            }
        }
    }

    /// Delivers every datagram and fires every timer due by `until`, in
    /// time order.
    pub fn run_until(&mut self, until: Duration) {
        loop {
            let next_net = self.in_flight.front().map(|f| f.at);
            let next_timer = self.nodes.iter().filter_map(|n| n.ep.next_deadline()).min();
            let next = match (next_net, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            while self.in_flight.front().is_some_and(|f| f.at <= self.now) {
                let f = self.in_flight.pop_front().unwrap();
                self.deliver(f);
            }
            for i in 0..self.nodes.len() {
                if self.nodes[i]
                    .ep
                    .next_deadline()
                    .is_some_and(|d| d <= self.now)
                {
                    let now = self.now;
                    self.nodes[i]
                        .ep
                        .handle_timeouts(now)
                        .unwrap_or_else(|e| panic!("member {i}: {e}"));
                    self.drain(i);
                }
            }
        }
        self.now = self.now.max(until);
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// The addresses member `i` holds active.
    pub fn view(&self, i: usize) -> BTreeSet<T::Addr> {
        self.nodes[i]
            .ep
            .foca()
            .iter_members()
            .map(|m| m.id().addr())
            .collect()
    }

    /// Whether every member holds every other one active.
    pub fn fully_connected(&self) -> bool {
        (0..self.nodes.len()).all(|i| {
            let others: BTreeSet<T::Addr> = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, n)| n.ep.foca().identity().addr())
                .collect();
            self.view(i) == others
        })
    }

    /// Runs in steps of 100 ms until fully connected, at most `limit`.
    pub fn converge(&mut self, limit: Duration) -> bool {
        let deadline = self.now + limit;
        while !self.fully_connected() && self.now < deadline {
            self.run_for(Duration::from_millis(100));
        }
        self.fully_connected()
    }
}
