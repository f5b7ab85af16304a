//! The `Codec` trait implemented by hand, for a simple fixed-width format,
//! then used by three tokio agents over UDP on loopback.
//!
//! `cargo run -p foca-examples --example custom_codec`
//!
//! foca-codec's `PostcardCodec` works for any serde identity; a codec of
//! your own fits a format you already have, or one without serde. The
//! format here, every integer big-endian:
//!
//! ```text
//! identity: 4 bytes IPv4, 2 bytes port, 4 bytes generation   (10 bytes)
//! header:   src, u32 src incarnation, dst, u8 message kind, then the
//!           kind's fields (a u32 probe number, a target or origin, a flag)
//! member:   identity, u32 incarnation, u8 state                (15 bytes)
//! ```
//!
//! The codec's contract (see `foca_core::Codec`): decoding reads from the
//! front of the input and advances it, never panics whatever the bytes,
//! and allocates nothing beyond the values it returns. The example checks
//! that every message kind survives a round trip, that garbage is refused
//! without a panic, then runs a cluster on the codec; it exits 1 if any of
//! that fails.
//!
//! This file is in the public domain (CC0-1.0).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::ExitCode;
use std::time::Duration;

use foca_codec::Envelope;
use foca_core::{Codec, Config, GenerationalId, Header, Member, Message, State};
use foca_tokio::Builder;
use tokio::net::UdpSocket;

/// The identity of this cluster: an IPv4 socket address and a generation.
type Id = GenerationalId<SocketAddr>;

/// Why a value could not be encoded or decoded.
#[derive(Debug)]
enum FixedError {
    /// The input ended in the middle of a value.
    Short,
    /// A tag byte that means nothing (a message kind, a state).
    BadTag(u8),
    /// This format carries IPv4 addresses only.
    NotIpv4(SocketAddr),
}

impl fmt::Display for FixedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FixedError::Short => f.write_str("input cut short"),
            FixedError::BadTag(t) => write!(f, "unknown tag {t}"),
            FixedError::NotIpv4(a) => write!(f, "{a} is not an IPv4 address"),
        }
    }
}

/// The hand-written codec: no state, no allocation beyond the output.
struct FixedCodec;

/// Takes `N` bytes off the front of `input`.
fn take<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], FixedError> {
    let (head, rest) = input.split_first_chunk::<N>().ok_or(FixedError::Short)?;
    *input = rest;
    Ok(*head)
}

fn get_u32(input: &mut &[u8]) -> Result<u32, FixedError> {
    take::<4>(input).map(u32::from_be_bytes)
}

fn put_id(id: &Id, out: &mut Vec<u8>) -> Result<(), FixedError> {
    let SocketAddr::V4(addr) = id.address() else {
        return Err(FixedError::NotIpv4(*id.address()));
    };
    out.extend_from_slice(&addr.ip().octets());
    out.extend_from_slice(&addr.port().to_be_bytes());
    out.extend_from_slice(&id.generation().to_be_bytes());
    Ok(())
}

fn get_id(input: &mut &[u8]) -> Result<Id, FixedError> {
    let ip = Ipv4Addr::from(take::<4>(input)?);
    let port = u16::from_be_bytes(take::<2>(input)?);
    let generation = get_u32(input)?;
    Ok(GenerationalId::new(
        SocketAddr::V4(SocketAddrV4::new(ip, port)),
        generation,
    ))
}

/// Message kinds on the wire. Fixed here, whatever the order of the enum.
mod kind {
    pub const PING: u8 = 1;
    pub const ACK: u8 = 2;
    pub const PING_REQ: u8 = 3;
    pub const INDIRECT_PING: u8 = 4;
    pub const INDIRECT_ACK: u8 = 5;
    pub const FORWARDED_ACK: u8 = 6;
    pub const ANNOUNCE: u8 = 7;
    pub const FEED: u8 = 8;
    pub const GOSSIP: u8 = 9;
    pub const BROADCAST: u8 = 10;
    pub const TURN_UNDEAD: u8 = 11;
    pub const SYNC: u8 = 12;
    pub const NACK: u8 = 13;
}

impl Codec<Id> for FixedCodec {
    type Error = FixedError;

    fn encode_header(&mut self, header: &Header<Id>, out: &mut Vec<u8>) -> Result<(), FixedError> {
        put_id(&header.src, out)?;
        out.extend_from_slice(&header.src_incarnation.to_be_bytes());
        put_id(&header.dst, out)?;
        // A probe number, or a member and a probe number, or a flag.
        let (tag, who, number) = match &header.message {
            Message::Ping(n) => (kind::PING, None, Some(*n)),
            Message::Ack(n) => (kind::ACK, None, Some(*n)),
            Message::Nack(n) => (kind::NACK, None, Some(*n)),
            Message::PingReq {
                target,
                probe_number,
            } => (kind::PING_REQ, Some(target), Some(*probe_number)),
            Message::IndirectPing {
                origin,
                probe_number,
            } => (kind::INDIRECT_PING, Some(origin), Some(*probe_number)),
            Message::IndirectAck {
                origin,
                probe_number,
            } => (kind::INDIRECT_ACK, Some(origin), Some(*probe_number)),
            Message::ForwardedAck {
                target,
                probe_number,
            } => (kind::FORWARDED_ACK, Some(target), Some(*probe_number)),
            Message::Announce => (kind::ANNOUNCE, None, None),
            Message::Feed => (kind::FEED, None, None),
            Message::Gossip => (kind::GOSSIP, None, None),
            Message::Broadcast => (kind::BROADCAST, None, None),
            Message::TurnUndead => (kind::TURN_UNDEAD, None, None),
            Message::Sync { reply } => {
                out.push(kind::SYNC);
                out.push(u8::from(*reply));
                return Ok(());
            }
        };
        out.push(tag);
        if let Some(who) = who {
            put_id(who, out)?;
        }
        if let Some(n) = number {
            out.extend_from_slice(&n.to_be_bytes());
        }
        Ok(())
    }

    fn decode_header(&mut self, input: &mut &[u8]) -> Result<Header<Id>, FixedError> {
        let src = get_id(input)?;
        let src_incarnation = get_u32(input)?;
        let dst = get_id(input)?;
        let [tag] = take::<1>(input)?;
        let message = match tag {
            kind::PING => Message::Ping(get_u32(input)?),
            kind::ACK => Message::Ack(get_u32(input)?),
            kind::NACK => Message::Nack(get_u32(input)?),
            kind::PING_REQ => Message::PingReq {
                target: get_id(input)?,
                probe_number: get_u32(input)?,
            },
            kind::INDIRECT_PING => Message::IndirectPing {
                origin: get_id(input)?,
                probe_number: get_u32(input)?,
            },
            kind::INDIRECT_ACK => Message::IndirectAck {
                origin: get_id(input)?,
                probe_number: get_u32(input)?,
            },
            kind::FORWARDED_ACK => Message::ForwardedAck {
                target: get_id(input)?,
                probe_number: get_u32(input)?,
            },
            kind::ANNOUNCE => Message::Announce,
            kind::FEED => Message::Feed,
            kind::GOSSIP => Message::Gossip,
            kind::BROADCAST => Message::Broadcast,
            kind::TURN_UNDEAD => Message::TurnUndead,
            kind::SYNC => match take::<1>(input)? {
                [0] => Message::Sync { reply: false },
                [1] => Message::Sync { reply: true },
                [other] => return Err(FixedError::BadTag(other)),
            },
            other => return Err(FixedError::BadTag(other)),
        };
        Ok(Header {
            src,
            src_incarnation,
            dst,
            message,
        })
    }

    fn encode_member(&mut self, member: &Member<Id>, out: &mut Vec<u8>) -> Result<(), FixedError> {
        put_id(member.id(), out)?;
        out.extend_from_slice(&member.incarnation().to_be_bytes());
        out.push(member.state() as u8);
        Ok(())
    }

    fn decode_member(&mut self, input: &mut &[u8]) -> Result<Member<Id>, FixedError> {
        let id = get_id(input)?;
        let incarnation = get_u32(input)?;
        let state = match take::<1>(input)? {
            [0] => State::Alive,
            [1] => State::Suspect,
            [2] => State::Down,
            [3] => State::Left,
            [other] => return Err(FixedError::BadTag(other)),
        };
        Ok(Member::new(id, incarnation, state))
    }
}

/// Every message kind and state survives a round trip, and the encoded
/// sizes are the ones the format promises.
fn check_round_trips() -> Result<(), String> {
    let a = GenerationalId::new(SocketAddr::from(([10, 0, 0, 1], 7000)), 17);
    let b = GenerationalId::new(SocketAddr::from(([10, 0, 0, 2], 7000)), 1_700_000_000);
    let messages = [
        Message::Ping(1),
        Message::Ack(2),
        Message::Nack(3),
        Message::PingReq {
            target: b,
            probe_number: 4,
        },
        Message::IndirectPing {
            origin: a,
            probe_number: 5,
        },
        Message::IndirectAck {
            origin: a,
            probe_number: 6,
        },
        Message::ForwardedAck {
            target: b,
            probe_number: 7,
        },
        Message::Announce,
        Message::Feed,
        Message::Gossip,
        Message::Broadcast,
        Message::TurnUndead,
        Message::Sync { reply: false },
        Message::Sync { reply: true },
    ];
    let mut codec = FixedCodec;
    for message in messages {
        let header = Header {
            src: a,
            src_incarnation: 9,
            dst: b,
            message,
        };
        let mut out = Vec::new();
        codec
            .encode_header(&header, &mut out)
            .map_err(|e| e.to_string())?;
        let mut input = &out[..];
        let back = codec.decode_header(&mut input).map_err(|e| e.to_string())?;
        if back != header || !input.is_empty() {
            return Err(format!(
                "header round trip: {header:?} came back as {back:?}"
            ));
        }
        println!(
            "header {:<14} {:>2} bytes",
            header.message.name(),
            out.len()
        );
    }
    for state in [State::Alive, State::Suspect, State::Down, State::Left] {
        let member = Member::new(b, 3, state);
        let mut out = Vec::new();
        codec
            .encode_member(&member, &mut out)
            .map_err(|e| e.to_string())?;
        let mut input = &out[..];
        let back = codec.decode_member(&mut input).map_err(|e| e.to_string())?;
        if back != member || !input.is_empty() || out.len() != 15 {
            return Err(format!(
                "member round trip: {member:?} came back as {back:?}"
            ));
        }
    }
    println!("member (any state)    15 bytes");
    Ok(())
}

/// Hostile bytes are refused, never a panic: every prefix of a valid
/// header, and bytes from a simple generator.
fn check_garbage() -> Result<(), String> {
    let mut codec = FixedCodec;
    let a = GenerationalId::new(SocketAddr::from(([10, 0, 0, 1], 7000)), 1);
    let header = Header {
        src: a,
        src_incarnation: 1,
        dst: a,
        message: Message::PingReq {
            target: a,
            probe_number: 1,
        },
    };
    let mut out = Vec::new();
    codec
        .encode_header(&header, &mut out)
        .map_err(|e| e.to_string())?;
    for cut in 0..out.len() {
        if codec.decode_header(&mut &out[..cut]).is_ok() {
            return Err(format!("a header cut to {cut} bytes was accepted"));
        }
    }
    // xorshift: the same "random" bytes every run.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut refused = 0;
    for len in 0..2000 {
        let bytes: Vec<u8> = (0..len % 64)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect();
        let header = codec.decode_header(&mut &bytes[..]).is_err();
        let member = codec.decode_member(&mut &bytes[..]).is_err();
        refused += usize::from(header) + usize::from(member);
    }
    println!("garbage: 4000 decodes of random bytes, {refused} refused, no panic");
    Ok(())
}

/// Three agents on loopback speaking the format: every one must see the
/// other two.
async fn run_cluster() -> Result<(), String> {
    let mut agents = Vec::new();
    let mut seed = None;
    for _ in 0..3 {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = socket.local_addr().map_err(|e| e.to_string())?;
        let mut config = Config::new_lan(3);
        config.probe_period = Duration::from_millis(300);
        config.probe_rtt = Duration::from_millis(100);
        let envelope = Envelope::insecure_plaintext(b"custom-codec");
        config.max_packet_size = 1400 - envelope.overhead();
        let agent = Builder::new(GenerationalId::new(addr, 1), config, FixedCodec, envelope)
            .seeds(seed)
            .spawn(socket)
            .map_err(|e| e.to_string())?;
        seed.get_or_insert(addr);
        agents.push(agent);
    }
    for agent in &agents {
        tokio::time::timeout(
            Duration::from_secs(10),
            agent.wait_for(|s| s.members.len() == 2),
        )
        .await
        .map_err(|_| format!("{} did not see both others", agent.local_addr()))?
        .map_err(|e| e.to_string())?;
    }
    for agent in &agents {
        let metrics = agent.metrics().await.map_err(|e| e.to_string())?;
        println!(
            "{} sees {:?}; {} datagrams received",
            agent.local_addr(),
            agent
                .members()
                .iter()
                .map(|m| m.address().port())
                .collect::<Vec<_>>(),
            metrics.datagrams_received
        );
        agent.shutdown().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let result = async {
        check_round_trips()?;
        check_garbage()?;
        run_cluster().await
    }
    .await;
    match result {
        Ok(()) => {
            println!("custom_codec: OK, three members on the hand-written codec");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("custom_codec: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
