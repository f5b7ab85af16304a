//! The rogue host of the fault tests (`tests/tests/faults.rs`): a small,
//! bounded UDP sender (and listener) that the tests run inside a network
//! namespace of their own with `ip netns exec`. It speaks foca's wire
//! format where an attack needs it, and prints one summary line on stdout
//! when done.
//!
//! ```text
//! foca_fault_rogue sink     --bind ADDR --ms N
//! foca_fault_rogue garbage  --bind ADDR --to ADDR[,ADDR..] --count N --interval-us N [--seed N]
//! foca_fault_rogue verdicts --bind ADDR --to ADDR[,ADDR..] --target ADDR --ms N --interval-ms N
//!                           [--label TEXT] [--key HEX]
//! foca_fault_rogue third-party --bind ADDR --to ADDR[,ADDR..] --victim ADDR --ms N --interval-ms N
//!                           [--label TEXT] [--key HEX]
//! ```
//!
//! - `sink`: counts the bytes and datagrams it receives for `--ms`
//!   milliseconds: `received <bytes> B in <n> datagrams`.
//! - `garbage`: `--count` datagrams of random bytes (0 to 1400 of them),
//!   round-robin over `--to`.
//! - `verdicts`: learns the target's identity and incarnation from its
//!   answer to an announce (asked again every round, so it follows the
//!   target's refutations), then sends every member, the target too,
//!   gossip that says the target is down, then suspect, at that
//!   incarnation, from the rogue's own address as itself.
//! - `third-party`: announces claiming to be the victim (from the rogue's
//!   own address), and gossips 40 fake members at the victim's address
//!   (other ports), so that members would probe the victim.
//!
//! Every mode is bounded by its count or its duration. The sender modes
//! print `sent <bytes> B in <n> datagrams` (and what they learnt).

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use foca_codec::{Cipher, Envelope, Key, Keyring, PostcardCodec};
use foca_core::wire::{self, Writer};
use foca_core::{Codec, GenerationalId, Header, Member, Message, State};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

type Id = GenerationalId<SocketAddr>;

/// The options, by name (`--name value`).
struct Opts(BTreeMap<String, String>);

impl Opts {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        let mut it = args.iter();
        while let Some(name) = it.next() {
            let name = name
                .strip_prefix("--")
                .ok_or_else(|| format!("expected --option, got {name}"))?;
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            map.insert(name.to_owned(), value.clone());
        }
        Ok(Self(map))
    }

    fn get(&self, name: &str) -> Result<&str, String> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("--{name} is required"))
    }

    fn num(&self, name: &str) -> Result<u64, String> {
        self.get(name)?
            .parse()
            .map_err(|e| format!("--{name}: {e}"))
    }

    fn addr(&self, name: &str) -> Result<SocketAddr, String> {
        self.get(name)?
            .parse()
            .map_err(|e| format!("--{name}: {e}"))
    }

    fn addrs(&self, name: &str) -> Result<Vec<SocketAddr>, String> {
        self.get(name)?
            .split(',')
            .map(|a| a.parse().map_err(|e| format!("--{name} {a}: {e}")))
            .collect()
    }

    fn envelope(&self) -> Result<Envelope, String> {
        let label = self.0.get("label").map_or("foca", String::as_str);
        let Some(hex) = self.0.get("key") else {
            return Ok(Envelope::insecure_plaintext(label.as_bytes()));
        };
        if hex.len() != 64 {
            return Err("--key must be 64 hex digits".to_owned());
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|e| format!("--key: {e}"))?;
        }
        let key = Key::new(Cipher::XChaCha20Poly1305, key);
        let mut rng = StdRng::seed_from_u64(seed_from_clock());
        Ok(Envelope::encrypted(
            label.as_bytes(),
            Keyring::new(1, key, &mut rng),
        ))
    }
}

fn seed_from_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A sender that counts what it sent.
struct Sender {
    socket: UdpSocket,
    me: Id,
    envelope: Envelope,
    codec: PostcardCodec<Id>,
    /// Raised in every datagram, so members that declared the rogue down
    /// hear from it again.
    incarnation: u32,
    datagrams: u64,
    bytes: u64,
}

impl Sender {
    fn new(bind: SocketAddr, envelope: Envelope) -> Result<Self, String> {
        let socket = UdpSocket::bind(bind).map_err(|e| format!("bind {bind}: {e}"))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| format!("nonblocking: {e}"))?;
        Ok(Self {
            socket,
            me: GenerationalId::new(bind, 1),
            envelope,
            codec: PostcardCodec::new(),
            incarnation: 0,
            datagrams: 0,
            bytes: 0,
        })
    }

    fn raw(&mut self, to: SocketAddr, data: &[u8]) {
        // Send errors (no route yet, a full buffer) are part of the game.
        if let Ok(n) = self.socket.send_to(data, to) {
            self.datagrams += 1;
            self.bytes += n as u64;
        }
    }

    /// A datagram from `src` to `dst` with `records`, built as a member
    /// builds it, sealed with the rogue's envelope.
    fn forged(
        &mut self,
        to: SocketAddr,
        src: Id,
        dst: Id,
        message: Message<Id>,
        records: &[Member<Id>],
    ) -> Result<(), String> {
        self.incarnation += 1;
        let header = Header {
            src,
            src_incarnation: self.incarnation,
            dst,
            message,
        };
        let mut buf = Vec::new();
        let sums = [0u16; 16];
        let sums: &[u16] = if matches!(header.message, Message::Sync { .. }) {
            &sums
        } else {
            &[]
        };
        let mut w = Writer::new(&mut buf, 1400, &mut self.codec, &header, sums)
            .map_err(|e| format!("header: {e:?}"))?;
        for r in records {
            w.push_update(&mut self.codec, r)
                .map_err(|e| format!("record: {e:?}"))?;
        }
        w.finish(0, &[]);
        if wire::is_padded(&header.message) {
            wire::pad(&mut buf, 0);
        }
        let mut out = Vec::new();
        foca_core::Envelope::seal(&mut self.envelope, &buf, &mut out)
            .map_err(|e| format!("seal: {e}"))?;
        self.raw(to, &out);
        Ok(())
    }

    /// The header of every datagram waiting on the socket that opens and
    /// parses.
    fn answers(&mut self) -> Vec<Header<Id>> {
        let mut buf = vec![0u8; 65_536];
        let mut out = Vec::new();
        while let Ok((len, _)) = self.socket.recv_from(&mut buf) {
            let Ok(opened) = foca_core::Envelope::open(&mut self.envelope, &mut buf[..len]) else {
                continue;
            };
            if let Ok(header) = self.codec.decode_header(&mut &*opened.payload) {
                out.push(header);
            }
        }
        out
    }

    fn summary(&self) -> String {
        format!("sent {} B in {} datagrams", self.bytes, self.datagrams)
    }
}

fn sink(o: &Opts) -> Result<String, String> {
    let bind = o.addr("bind")?;
    let socket = UdpSocket::bind(bind).map_err(|e| format!("bind {bind}: {e}"))?;
    let end = Instant::now() + Duration::from_millis(o.num("ms")?);
    let (mut bytes, mut datagrams) = (0u64, 0u64);
    let mut buf = vec![0u8; 65_536];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| format!("timeout: {e}"))?;
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            bytes += len as u64;
            datagrams += 1;
        }
    }
    Ok(format!("received {bytes} B in {datagrams} datagrams"))
}

fn garbage(o: &Opts) -> Result<String, String> {
    let mut s = Sender::new(o.addr("bind")?, Envelope::insecure_plaintext(b""))?;
    let to = o.addrs("to")?;
    let count = o.num("count")?;
    let interval = Duration::from_micros(o.num("interval-us")?);
    let seed = o.num("seed").unwrap_or(7);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut data = vec![0u8; 1400];
    for i in 0..count {
        let len = rng.random_range(0..=data.len());
        rng.fill(&mut data[..len]);
        // Half of them start like a real datagram (the envelope's first
        // bytes), so that they get past the cheapest checks.
        if i % 2 == 1 {
            let mut real = Vec::new();
            let _ = foca_core::Envelope::seal(&mut s.envelope, &data[..len / 2], &mut real);
            let head = real.len().min(len).min(8);
            data[..head].copy_from_slice(&real[..head]);
        }
        let dest = to[(i as usize) % to.len()];
        s.raw(dest, &data[..len]);
        std::thread::sleep(interval);
    }
    Ok(s.summary())
}

/// What the rogue learnt of each member: its identity and the highest
/// incarnation it answered with.
type Known = BTreeMap<SocketAddr, (Id, u32)>;

impl Sender {
    /// Announces to every member in `to` (announces need no identity, only
    /// an address), waits `wait`, and learns from the answers.
    fn learn(
        &mut self,
        to: &[SocketAddr],
        wait: Duration,
        known: &mut Known,
    ) -> Result<(), String> {
        let me = self.me;
        for &m in to {
            self.forged(m, me, GenerationalId::seed(m), Message::Announce, &[])?;
        }
        std::thread::sleep(wait);
        for h in self.answers() {
            let addr = *h.src.address();
            let entry = known.entry(addr).or_insert((h.src, h.src_incarnation));
            if entry.0 != h.src {
                *entry = (h.src, h.src_incarnation);
            }
            entry.1 = entry.1.max(h.src_incarnation);
        }
        Ok(())
    }
}

fn verdicts(o: &Opts) -> Result<String, String> {
    let mut s = Sender::new(o.addr("bind")?, o.envelope()?)?;
    let to = o.addrs("to")?;
    let target_addr = o.addr("target")?;
    let end = Instant::now() + Duration::from_millis(o.num("ms")?);
    let interval = Duration::from_millis(o.num("interval-ms")?);
    let mut known = Known::new();
    let mut forged = 0u64;
    let mut round = 0u64;
    let me = s.me;
    while Instant::now() < end {
        // Who is who, and the target's latest incarnation (it raises it to
        // refute; the rogue follows).
        s.learn(&to, interval / 2, &mut known)?;
        if let Some(&(id, incarnation)) = known.get(&target_addr) {
            let state = if round.is_multiple_of(2) {
                State::Down
            } else {
                State::Suspect
            };
            let records = [Member::new(id, incarnation, state)];
            let members: Vec<Id> = known.values().map(|(id, _)| *id).collect();
            for m in members {
                s.forged(*m.address(), me, m, Message::Gossip, &records)?;
                forged += 1;
            }
        }
        round += 1;
        std::thread::sleep(interval / 2);
    }
    let (id, incarnation) = known.get(&target_addr).ok_or("the target never answered")?;
    Ok(format!(
        "{}; {forged} forged verdicts about {id:?}, last at incarnation {incarnation}",
        s.summary()
    ))
}

fn third_party(o: &Opts) -> Result<String, String> {
    let mut s = Sender::new(o.addr("bind")?, o.envelope()?)?;
    let to = o.addrs("to")?;
    let victim = o.addr("victim")?;
    let victim_id = GenerationalId::new(victim, 1);
    let end = Instant::now() + Duration::from_millis(o.num("ms")?);
    let interval = Duration::from_millis(o.num("interval-ms")?);
    let me = s.me;
    let mut known = Known::new();
    let mut round = 0u16;
    while Instant::now() < end {
        if round.is_multiple_of(10) {
            s.learn(&to, Duration::from_millis(20), &mut known)?;
        }
        let fakes: Vec<Member<Id>> = (0..40u16)
            .map(|k| {
                let port = 20_000 + (round.wrapping_mul(40).wrapping_add(k)) % 4_000;
                Member::alive(
                    GenerationalId::new(SocketAddr::new(victim.ip(), port), 1),
                    0,
                )
            })
            .collect();
        for &m in &to {
            // Claiming to be the victim, from the rogue's own address.
            s.forged(
                m,
                victim_id,
                GenerationalId::seed(m),
                Message::Announce,
                &[],
            )?;
        }
        let members: Vec<Id> = known.values().map(|(id, _)| *id).collect();
        for m in members {
            s.forged(*m.address(), me, m, Message::Gossip, &fakes)?;
        }
        round = round.wrapping_add(1);
        std::thread::sleep(interval);
    }
    Ok(format!(
        "{}; {} members answered the rogue itself",
        s.summary(),
        known.len()
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((mode, rest)) = args.split_first() else {
        eprintln!("usage: foca_fault_rogue sink|garbage|verdicts|third-party --option value ...");
        return ExitCode::FAILURE;
    };
    let result = Opts::parse(rest).and_then(|o| match mode.as_str() {
        "sink" => sink(&o),
        "garbage" => garbage(&o),
        "verdicts" => verdicts(&o),
        "third-party" => third_party(&o),
        other => Err(format!("unknown mode {other}")),
    });
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("foca_fault_rogue {mode}: {e}");
            ExitCode::FAILURE
        }
    }
}
