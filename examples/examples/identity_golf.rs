//! A compact identity and codec, so that more membership updates fit in
//! each datagram; bytes per update measured against the default identity
//! and codec by encoding real datagrams.
//!
//! `cargo run -p foca-examples --example identity_golf`
//!
//! Every update a datagram carries is an identity, an incarnation and a
//! state; the fewer bytes they take, the more news each datagram spreads
//! (and the sooner a large cluster converges). The default,
//! `GenerationalId<SocketAddr>` with `PostcardCodec`, spends a byte on the
//! address family, a varint port (3 bytes for ports of 16384 and up) and a
//! varint generation (5 bytes for a generation taken from the clock). The
//! golfed identity, `Golf`, holds an IPv4 address and port in 6 fixed
//! bytes and a 16-bit generation that wraps (compared with serial-number
//! arithmetic, RFC 1982); `GolfCodec` packs the state into the low two
//! bits of the incarnation's varint.
//!
//! The example fills gossip datagrams (the core's own `wire::Writer`, at
//! the LAN config's 1400 bytes minus the envelope's overhead) with the
//! same 500 records for each variant, parses them back, prints bytes per
//! update and updates per datagram, then runs three tokio agents on the
//! golfed identity and codec over loopback. It exits 1 if the golfed
//! variant is not smaller or the cluster does not form.
//!
//! This file is in the public domain (CC0-1.0).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::ExitCode;
use std::time::Duration;

use foca_codec::{Envelope, PostcardCodec, PostcardError};
use foca_core::wire::{self, Writer};
use foca_core::{
    Codec, Config, GenerationalId, Header, Identity, Member, Message, SocketIdentity, State,
};
use foca_tokio::Builder;
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;

/// An IPv4 member in 6 fixed bytes plus a 16-bit generation (1 to 3
/// varint bytes). IPv6 addresses do not fit: this is a choice for a
/// cluster that knows it runs on IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
struct Golf {
    /// The IPv4 address's octets, then the port, big-endian.
    addr: [u8; 6],
    /// Bumped on every restart; wraps.
    generation: u16,
}

impl Golf {
    fn new(addr: SocketAddrV4, generation: u16) -> Self {
        let [a, b, c, d] = addr.ip().octets();
        let [p, q] = addr.port().to_be_bytes();
        Self {
            addr: [a, b, c, d, p, q],
            generation,
        }
    }

    fn socket_addr(&self) -> SocketAddr {
        let [a, b, c, d, p, q] = self.addr;
        SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::new(a, b, c, d),
            u16::from_be_bytes([p, q]),
        ))
    }
}

impl Identity for Golf {
    type Addr = SocketAddr;

    fn addr(&self) -> SocketAddr {
        self.socket_addr()
    }

    /// A restart under the next generation; wrapping never runs out.
    fn renew(&self) -> Option<Self> {
        Some(Self {
            generation: self.generation.wrapping_add(1),
            ..*self
        })
    }

    /// Serial-number arithmetic: newer if less than half the range ahead.
    fn win_addr_conflict(&self, other: &Self) -> bool {
        let ahead = self.generation.wrapping_sub(other.generation);
        ahead != 0 && ahead < 0x8000
    }
}

impl SocketIdentity for Golf {
    /// A placeholder to announce to. IPv6 seeds cannot be named by this
    /// identity; they become the unspecified address, which nobody answers.
    fn seed_at(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(v4) => Self::new(v4, 0),
            SocketAddr::V6(v6) => Self::new(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, v6.port()), 0),
        }
    }
}

/// Why the golfed codec refused something.
#[derive(Debug)]
enum GolfError {
    /// A header, through postcard.
    Header(PostcardError),
    /// An update cut short, or a varint out of range.
    Update,
}

impl std::fmt::Display for GolfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GolfError::Header(e) => e.fmt(f),
            GolfError::Update => f.write_str("bad update"),
        }
    }
}

/// Headers through postcard; each update as the identity then one varint
/// holding `incarnation << 2 | state`.
#[derive(Clone, Copy, Default)]
struct GolfCodec;

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(input: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..35).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None // longer than the 34 bits an incarnation and a state need
}

impl Codec<Golf> for GolfCodec {
    type Error = GolfError;

    fn encode_header(
        &mut self,
        header: &Header<Golf>,
        out: &mut Vec<u8>,
    ) -> Result<(), Self::Error> {
        PostcardCodec::new()
            .encode_header(header, out)
            .map_err(GolfError::Header)
    }

    fn decode_header(&mut self, input: &mut &[u8]) -> Result<Header<Golf>, Self::Error> {
        PostcardCodec::new()
            .decode_header(input)
            .map_err(GolfError::Header)
    }

    fn encode_member(
        &mut self,
        member: &Member<Golf>,
        out: &mut Vec<u8>,
    ) -> Result<(), Self::Error> {
        let id = member.id();
        out.extend_from_slice(&id.addr);
        put_varint(u64::from(id.generation), out);
        put_varint(
            u64::from(member.incarnation()) << 2 | member.state() as u64,
            out,
        );
        Ok(())
    }

    fn decode_member(&mut self, input: &mut &[u8]) -> Result<Member<Golf>, Self::Error> {
        let bad = || GolfError::Update;
        let (addr, rest) = input.split_first_chunk::<6>().ok_or_else(bad)?;
        let addr = *addr;
        *input = rest;
        let generation = get_varint(input)
            .and_then(|g| u16::try_from(g).ok())
            .ok_or_else(bad)?;
        let packed = get_varint(input).ok_or_else(bad)?;
        let incarnation = u32::try_from(packed >> 2).map_err(|_| bad())?;
        let state = match packed & 3 {
            0 => State::Alive,
            1 => State::Suspect,
            2 => State::Down,
            _ => State::Left,
        };
        Ok(Member::new(Golf { addr, generation }, incarnation, state))
    }
}

/// The records every variant encodes: 500 members on a /16, port 7946,
/// a generation taken from the clock (seconds since 1970 for the default
/// identity, its low 16 bits for the golfed one), a few incarnations, one
/// in ten suspect or down.
fn records() -> Vec<(SocketAddrV4, u32, u32, State)> {
    let boot = 1_764_979_200u32; // 2025-12-06 00:00 UTC
    (0..500u32)
        .map(|i| {
            let [_, _, c, d] = (i + 10).to_be_bytes();
            let addr = SocketAddrV4::new(Ipv4Addr::new(10, 20, c, d), 7946);
            let state = match i % 10 {
                3 => State::Suspect,
                7 => State::Down,
                _ => State::Alive,
            };
            (addr, boot + i * 37, i % 4, state)
        })
        .collect()
}

/// What one variant measured.
struct Measured {
    /// Mean bytes of one encoded update.
    per_update: f64,
    /// Updates in a full gossip datagram.
    per_datagram: usize,
    /// Datagrams needed for all the records.
    datagrams: usize,
}

/// Fills gossip datagrams of at most `max` bytes with `members`, as the
/// core does, and parses each back.
fn measure<T, C>(mut codec: C, members: &[Member<T>], max: usize) -> Result<Measured, String>
where
    T: Clone + PartialEq + std::fmt::Debug,
    C: Codec<T>,
{
    let mut one = Vec::new();
    for m in members {
        codec
            .encode_member(m, &mut one)
            .map_err(|e| e.to_string())?;
    }
    let per_update = one.len() as f64 / members.len() as f64;
    let (src, dst) = (members[0].id().clone(), members[1].id().clone());
    let header = Header {
        src,
        src_incarnation: 0,
        dst,
        message: Message::Gossip,
    };
    let (mut at, mut datagrams, mut per_datagram) = (0, 0, 0);
    let mut buf = Vec::new();
    while at < members.len() {
        let mut writer =
            Writer::new(&mut buf, max, &mut codec, &header, &[]).map_err(|e| e.to_string())?;
        let mut n = 0;
        while at + n < members.len()
            && writer
                .push_update(&mut codec, &members[at + n])
                .map_err(|e| e.to_string())?
        {
            n += 1;
        }
        writer.finish(0, &[]);
        let parsed = wire::parse(&mut codec, &buf).map_err(|e| e.to_string())?;
        if parsed.updates != members[at..at + n] {
            return Err("a datagram did not parse back to what was written".into());
        }
        if datagrams == 0 {
            per_datagram = n;
        }
        at += n;
        datagrams += 1;
    }
    Ok(Measured {
        per_update,
        per_datagram,
        datagrams,
    })
}

fn compare() -> Result<(), String> {
    let records = records();
    let default: Vec<Member<GenerationalId<SocketAddr>>> = records
        .iter()
        .map(|&(a, g, i, s)| Member::new(GenerationalId::new(SocketAddr::V4(a), g), i, s))
        .collect();
    let golf: Vec<Member<Golf>> = records
        .iter()
        .map(|&(a, g, i, s)| Member::new(Golf::new(a, g as u16), i, s))
        .collect();
    let envelope = Envelope::insecure_plaintext(b"golf");
    let max = Config::new_lan(500).max_packet_size - envelope.overhead();
    println!(
        "{} records, gossip datagrams of at most {max} bytes (1400 minus the plaintext envelope's {})",
        records.len(),
        envelope.overhead()
    );
    println!(
        "{:<46} {:>16} {:>19} {:>10}",
        "identity + codec", "bytes per update", "updates / datagram", "datagrams"
    );
    let rows = [
        (
            "GenerationalId<SocketAddr> + PostcardCodec",
            measure(PostcardCodec::new(), &default, max)?,
        ),
        (
            "Golf + PostcardCodec",
            measure(PostcardCodec::new(), &golf, max)?,
        ),
        ("Golf + GolfCodec", measure(GolfCodec, &golf, max)?),
    ];
    for (name, m) in &rows {
        println!(
            "{name:<46} {:>16.2} {:>19} {:>10}",
            m.per_update, m.per_datagram, m.datagrams
        );
    }
    let (base, best) = (&rows[0].1, &rows[2].1);
    println!(
        "golfed: {:.2}x the updates per datagram, {:.0}% fewer bytes per update",
        best.per_datagram as f64 / base.per_datagram as f64,
        100.0 * (1.0 - best.per_update / base.per_update)
    );
    if best.per_update >= base.per_update || best.per_datagram <= base.per_datagram {
        return Err("the golfed identity and codec are not smaller".into());
    }
    Ok(())
}

/// Three agents on the golfed identity and codec: each must see the others.
async fn run_cluster() -> Result<(), String> {
    let mut agents = Vec::new();
    let mut seed = None;
    for n in 0..3u16 {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let SocketAddr::V4(addr) = socket.local_addr().map_err(|e| e.to_string())? else {
            return Err("bound to an IPv6 address".into());
        };
        let envelope = Envelope::insecure_plaintext(b"golf");
        let mut config = Config::new_lan(3);
        config.probe_period = Duration::from_millis(300);
        config.probe_rtt = Duration::from_millis(100);
        config.max_packet_size = 1400 - envelope.overhead();
        let agent = Builder::new(Golf::new(addr, 100 + n), config, GolfCodec, envelope)
            .seeds(seed)
            .spawn(socket)
            .map_err(|e| e.to_string())?;
        seed.get_or_insert(SocketAddr::V4(addr));
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
    println!("three agents on Golf + GolfCodec over loopback: each sees the other two");
    for agent in &agents {
        agent.shutdown().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let result = match compare() {
        Ok(()) => run_cluster().await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("identity_golf: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
