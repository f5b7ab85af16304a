//! A user's own identity, codec and broadcast handler, written outside the
//! core crate against its public traits only, running a cluster on the
//! simulator with every datagram sealed (ChaCha20-Poly1305): custom
//! broadcasts reach every member, newer versions replace older ones, the
//! per-destination filter is honoured and the sender is seen.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use foca_codec::{Cipher, Envelope, Key, Keyring};
use foca_core::sim::Sim;
use foca_core::{
    BroadcastHandler, Codec, Command, Config, Endpoint, Foca, Header, Identity, Invalidates,
    Member, Message, State,
};
use rand::SeedableRng;
use rand::rngs::{StdRng, Xoshiro128PlusPlus};

/// A node: a port plus a boot counter (restarts bump it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Node {
    port: u16,
    boot: u16,
}

impl Identity for Node {
    type Addr = u16;
    fn addr(&self) -> u16 {
        self.port
    }
    fn renew(&self) -> Option<Self> {
        self.boot.checked_add(1).map(|boot| Node { boot, ..*self })
    }
    fn win_addr_conflict(&self, other: &Self) -> bool {
        self.boot > other.boot
    }
}

#[derive(Debug)]
struct Short;
impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("short or malformed input")
    }
}

/// A compact codec: nodes as 4 bytes, one tag byte per message.
#[derive(Default)]
struct NodeCodec;

fn put_node(out: &mut Vec<u8>, n: &Node) {
    out.extend_from_slice(&n.port.to_le_bytes());
    out.extend_from_slice(&n.boot.to_le_bytes());
}
fn take<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], Short> {
    let (head, rest) = input.split_first_chunk::<N>().ok_or(Short)?;
    *input = rest;
    Ok(*head)
}
fn take_node(input: &mut &[u8]) -> Result<Node, Short> {
    Ok(Node {
        port: u16::from_le_bytes(take(input)?),
        boot: u16::from_le_bytes(take(input)?),
    })
}
fn take_u32(input: &mut &[u8]) -> Result<u32, Short> {
    Ok(u32::from_le_bytes(take(input)?))
}

impl Codec<Node> for NodeCodec {
    type Error = Short;

    fn encode_header(&mut self, h: &Header<Node>, out: &mut Vec<u8>) -> Result<(), Short> {
        put_node(out, &h.src);
        out.extend_from_slice(&h.src_incarnation.to_le_bytes());
        put_node(out, &h.dst);
        let (tag, node, n) = match &h.message {
            Message::Ping(n) => (0u8, None, Some(*n)),
            Message::Ack(n) => (1, None, Some(*n)),
            Message::PingReq {
                target,
                probe_number,
            } => (2, Some(target), Some(*probe_number)),
            Message::IndirectPing {
                origin,
                probe_number,
            } => (3, Some(origin), Some(*probe_number)),
            Message::IndirectAck {
                origin,
                probe_number,
            } => (4, Some(origin), Some(*probe_number)),
            Message::ForwardedAck {
                target,
                probe_number,
            } => (5, Some(target), Some(*probe_number)),
            Message::Announce => (6, None, None),
            Message::Feed => (7, None, None),
            Message::Gossip => (8, None, None),
            Message::Broadcast => (9, None, None),
            Message::TurnUndead => (10, None, None),
            // The flag rides in the tag: 11 asks, 12 replies.
            Message::Sync { reply } => (11 + u8::from(*reply), None, None),
            Message::Nack(n) => (13, None, Some(*n)),
        };
        out.push(tag);
        if let Some(node) = node {
            put_node(out, node);
        }
        if let Some(n) = n {
            out.extend_from_slice(&n.to_le_bytes());
        }
        Ok(())
    }

    fn decode_header(&mut self, input: &mut &[u8]) -> Result<Header<Node>, Short> {
        let src = take_node(input)?;
        let src_incarnation = take_u32(input)?;
        let dst = take_node(input)?;
        let [tag] = take::<1>(input)?;
        let message = match tag {
            0 => Message::Ping(take_u32(input)?),
            1 => Message::Ack(take_u32(input)?),
            2 => Message::PingReq {
                target: take_node(input)?,
                probe_number: take_u32(input)?,
            },
            3 => Message::IndirectPing {
                origin: take_node(input)?,
                probe_number: take_u32(input)?,
            },
            4 => Message::IndirectAck {
                origin: take_node(input)?,
                probe_number: take_u32(input)?,
            },
            5 => Message::ForwardedAck {
                target: take_node(input)?,
                probe_number: take_u32(input)?,
            },
            6 => Message::Announce,
            7 => Message::Feed,
            8 => Message::Gossip,
            9 => Message::Broadcast,
            10 => Message::TurnUndead,
            11 => Message::Sync { reply: false },
            12 => Message::Sync { reply: true },
            13 => Message::Nack(take_u32(input)?),
            _ => return Err(Short),
        };
        Ok(Header {
            src,
            src_incarnation,
            dst,
            message,
        })
    }

    fn encode_member(&mut self, m: &Member<Node>, out: &mut Vec<u8>) -> Result<(), Short> {
        put_node(out, m.id());
        out.extend_from_slice(&m.incarnation().to_le_bytes());
        out.push(m.state() as u8);
        Ok(())
    }

    fn decode_member(&mut self, input: &mut &[u8]) -> Result<Member<Node>, Short> {
        let id = take_node(input)?;
        let incarnation = take_u32(input)?;
        let state = match take::<1>(input)? {
            [0] => State::Alive,
            [1] => State::Suspect,
            [2] => State::Down,
            [3] => State::Left,
            _ => return Err(Short),
        };
        Ok(Member::new(id, incarnation, state))
    }
}

/// A versioned key-value item: `[key, version (4 bytes LE), value...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Versioned {
    key: u8,
    version: u32,
}

impl Invalidates for Versioned {
    type Key = u8;
    fn key(&self) -> u8 {
        self.key
    }
    fn invalidates(&self, other: &Self) -> bool {
        self.version > other.version
    }
}

/// Keeps the newest version of each key; key 0xEE is never sent to odd ports.
#[derive(Default)]
struct Store {
    values: BTreeMap<u8, (u32, Vec<u8>)>,
    first_sender: BTreeMap<(u8, u32), Option<Node>>,
}

const SECRET: u8 = 0xEE;

impl BroadcastHandler<Node> for Store {
    type Broadcast = Versioned;
    type Error = Short;

    fn receive_item(
        &mut self,
        item: &[u8],
        sender: Option<&Node>,
    ) -> Result<Option<Versioned>, Short> {
        let mut input = item;
        let [key] = take::<1>(&mut input)?;
        let version = take_u32(&mut input)?;
        if self.values.get(&key).is_some_and(|(v, _)| *v >= version) {
            return Ok(None);
        }
        self.values.insert(key, (version, input.to_vec()));
        self.first_sender.insert((key, version), sender.copied());
        Ok(Some(Versioned { key, version }))
    }

    fn should_send(&self, broadcast: &Versioned, _item: &[u8], to: &Node) -> bool {
        !(broadcast.key == SECRET && to.port % 2 == 1)
    }
}

type Net = Sim<Node, NodeCodec, Xoshiro128PlusPlus, Store, Envelope>;

/// A sealed envelope with the cluster's key, its nonces drawn from `seed`.
fn sealed(seed: u64) -> Envelope {
    let key = Key::new(Cipher::ChaCha20Poly1305, [7; 32]);
    Envelope::encrypted(
        b"custom",
        Keyring::new(1, key, &mut StdRng::seed_from_u64(seed)),
    )
}

fn item(key: u8, version: u32, value: &[u8]) -> Vec<u8> {
    let mut v = vec![key];
    v.extend_from_slice(&version.to_le_bytes());
    v.extend_from_slice(value);
    v
}

fn cluster(seed: u64, n: u16) -> Net {
    let mut net = Net::new(seed);
    net.set_latency(Duration::from_millis(1), Duration::from_millis(4));
    for port in 1..=n {
        let rng = Xoshiro128PlusPlus::seed_from_u64(net.member_seed());
        let node = Node { port, boot: 1 };
        let foca =
            Foca::with_custom_broadcast(node, Config::new_lan(8), rng, NodeCodec, Store::default())
                .unwrap();
        net.add(Endpoint::new(foca, sealed(u64::from(port)), net.now()).unwrap());
        if port > 1 {
            let seed = Node { port: 1, boot: 0 };
            net.with(&port, |ep, now| {
                ep.command(now, Command::Announce(seed)).unwrap()
            });
        }
    }
    net.run_for(Duration::from_secs(5));
    for port in 1..=n {
        let ep = net.endpoint(&port).unwrap();
        assert_eq!(ep.foca().num_members(), usize::from(n) - 1);
        // Every datagram was sealed and opened: none refused.
        assert_eq!(ep.envelope().rejections().total(), 0);
        assert!(ep.envelope().keyring().is_some());
    }
    net
}

fn add(
    ep: &mut Endpoint<Node, NodeCodec, Xoshiro128PlusPlus, Store, Envelope>,
    item: Vec<u8>,
) -> Result<bool, foca_core::Error> {
    let now = ep.now();
    ep.command(now, Command::AddBroadcast(item))
}

fn value(net: &Net, port: u16, key: u8) -> Option<(u32, Vec<u8>)> {
    net.endpoint(&port)
        .unwrap()
        .foca()
        .broadcast_handler()
        .values
        .get(&key)
        .cloned()
}

#[test]
fn custom_broadcast_reaches_everyone_and_newest_wins() {
    let mut net = cluster(3, 8);
    net.with(&3, |ep, _| {
        assert!(add(ep, item(1, 1, b"first")).unwrap());
        // Re-adding a known version is not news.
        assert!(!add(ep, item(1, 1, b"first")).unwrap());
    });
    net.run_for(Duration::from_secs(5));
    for port in 1..=8 {
        assert_eq!(
            value(&net, port, 1),
            Some((1, b"first".to_vec())),
            "member {port}"
        );
    }
    // A newer version from another member replaces it everywhere.
    net.with(&6, |ep, _| assert!(add(ep, item(1, 2, b"second")).unwrap()));
    net.run_for(Duration::from_secs(5));
    for port in 1..=8 {
        assert_eq!(
            value(&net, port, 1),
            Some((2, b"second".to_vec())),
            "member {port}"
        );
    }
    // The sender is visible: member 6 added it itself, the others got it
    // from a member of the cluster.
    for port in 1..=8 {
        let sender = net
            .endpoint(&port)
            .unwrap()
            .foca()
            .broadcast_handler()
            .first_sender[&(1, 2)];
        if port == 6 {
            assert_eq!(sender, None);
        } else {
            let s = sender.expect("received from someone");
            assert!((1..=8).contains(&s.port) && s.port != port);
        }
    }
    // Backlogs drain once the item was sent enough times.
    net.run_for(Duration::from_secs(10));
    for port in 1..=8 {
        assert_eq!(
            net.endpoint(&port)
                .unwrap()
                .foca()
                .custom_broadcast_backlog(),
            0
        );
    }
}

#[test]
fn per_destination_filter_is_honoured() {
    let mut net = cluster(5, 8);
    net.with(&2, |ep, _| {
        assert!(add(ep, item(SECRET, 1, b"even only")).unwrap())
    });
    net.run_for(Duration::from_secs(8));
    for port in 1..=8u16 {
        let got = value(&net, port, SECRET).is_some();
        assert_eq!(got, port % 2 == 0, "member {port}");
    }
}

#[test]
fn oversized_and_rejected_items_are_errors() {
    let mut net = cluster(9, 3);
    net.with(&1, |ep, _| {
        let e = add(ep, vec![1; 5000]).unwrap_err();
        assert!(e.to_string().contains("never fit"), "{e}");
        let e = add(ep, vec![1]).unwrap_err();
        assert!(e.to_string().contains("rejected"), "{e}");
    });
}
