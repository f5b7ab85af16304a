//! A rogue on the network tries each attack it can make with forged
//! datagrams, plain and holding the cluster key, against 20 members on the
//! simulator, while one real member crashes. Each test prints, per attack:
//! - the bytes members sent to third parties per byte the rogue sent
//!   (at most 3: `AMPLIFICATION_FACTOR`);
//! - the longest time a healthy member was missing from another's view
//!   (at most one suspicion timeout);
//! - when the crashed member was known down by all: within half of what
//!   an unconfirmed suspicion takes (`suspicion_timeout_max`, 48 s here;
//!   the shortest timeout, `suspicion_timeout`, is 8 s). Lifeguard's
//!   suspicions reach the shortest timeout only once independent members
//!   confirmed them; made-up members the rogue plants compete for the
//!   verification probes that bring those confirmations, and its stream
//!   of news leaves the verdict to spread on probes, as periodic gossip
//!   keeps to its budget. Without an attack it takes the shortest timeout
//!   and 1 to 2 periods.
//!
//! The same rogue then attacks 5 foca-tokio agents over real UDP sockets on
//! loopback, on the wall clock (module `udp`, in `adversary/udp.rs`).
//!
//! Run: `cargo test -p foca-tests --test adversary -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use foca_codec::{Cipher, Envelope, Key, Keyring, PostcardCodec};
use foca_core::sim::Sim;
use foca_core::wire::{self, Writer};
use foca_core::{
    AMPLIFICATION_FACTOR, Codec, Command, Config, Endpoint, Foca, GenerationalId, Header, Member,
    Message, NoCustomBroadcast, State,
};
use rand::rngs::{StdRng, Xoshiro128PlusPlus};
use rand::{RngExt, SeedableRng};

#[path = "adversary/udp.rs"]
mod udp;

type Id = GenerationalId<u32>;
type Net = Sim<Id, PostcardCodec<Id>, Xoshiro128PlusPlus, NoCustomBroadcast, Envelope>;

const N: u32 = 20;
const LABEL: &[u8] = b"adversary";
/// The member that crashes during each attack.
const CRASHED: u32 = 7;
/// The member forged news is about.
const TARGET: u32 = 3;
/// Third parties: addresses no member has.
const VICTIM: u32 = 9_000;
/// The rogue's own address.
const ROGUE: u32 = 6_666;

fn id(addr: u32) -> Id {
    GenerationalId::new(addr, 1)
}

fn config() -> Config {
    Config {
        max_packet_size: 1400 - 60,
        ..Config::new_lan(N as usize)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Plain envelopes: the rogue needs no secret.
    Plain,
    /// Sealed envelopes, and the rogue holds the key.
    KeyHolder,
}

fn envelope(mode: Mode, seed: u64) -> Envelope {
    match mode {
        Mode::Plain => Envelope::insecure_plaintext(LABEL),
        Mode::KeyHolder => {
            let key = Key::new(Cipher::XChaCha20Poly1305, [9; 32]);
            Envelope::encrypted(
                LABEL,
                Keyring::new(1, key, &mut StdRng::seed_from_u64(seed)),
            )
        }
    }
}

fn cluster(mode: Mode, seed: u64) -> Net {
    let mut net = Net::new(seed);
    net.set_latency(Duration::from_millis(1), Duration::from_millis(1));
    let everyone: Vec<_> = (0..N).map(|a| Member::alive(id(a), 0)).collect();
    for a in 0..N {
        let rng = Xoshiro128PlusPlus::seed_from_u64(net.member_seed());
        let foca = Foca::new(id(a), config(), rng, PostcardCodec::new()).unwrap();
        let mut ep = Endpoint::new(foca, envelope(mode, u64::from(a)), net.now()).unwrap();
        let others = everyone.iter().filter(|m| m.id() != &id(a)).cloned();
        ep.command(Duration::ZERO, Command::Restore(others.collect()))
            .unwrap();
        net.add(ep);
    }
    net
}

/// The rogue: builds datagrams as any member would, with whatever header
/// and records it likes, and seals them with its own envelope.
struct Rogue {
    envelope: Envelope,
    codec: PostcardCodec<Id>,
    bytes: u64,
    /// Datagrams replayed to running members.
    replays: u64,
}

impl Rogue {
    fn new(mode: Mode) -> Self {
        Self {
            envelope: envelope(mode, 99),
            codec: PostcardCodec::new(),
            bytes: 0,
            replays: 0,
        }
    }

    /// A datagram claiming to be from `src`, to `dst`, the shortest it can
    /// make (requests with the shortest padding).
    fn datagram(
        &mut self,
        src: Id,
        dst: Id,
        message: Message<Id>,
        records: &[Member<Id>],
    ) -> Vec<u8> {
        let header = Header {
            src,
            src_incarnation: 0,
            dst,
            message,
        };
        forge(&mut self.codec, &mut self.envelope, &header, records)
    }

    /// Sends `datagram` to member `to`, from address `from`.
    fn send(&mut self, net: &mut Net, from: u32, to: u32, mut datagram: Vec<u8>) {
        self.bytes += datagram.len() as u64;
        net.inject(from, &to, &mut datagram);
    }
}

/// A datagram with `header` and `records`, built as any member would build
/// it (requests with the shortest padding) and sealed with `envelope`.
fn forge<T, C: Codec<T>>(
    codec: &mut C,
    envelope: &mut Envelope,
    header: &Header<T>,
    records: &[Member<T>],
) -> Vec<u8> {
    let mut buf = Vec::new();
    let sums = vec![0u16; 16];
    let sums: &[u16] = if matches!(header.message, Message::Sync { .. }) {
        &sums
    } else {
        &[]
    };
    let mut w = Writer::new(&mut buf, 1400, codec, header, sums).unwrap();
    for r in records {
        assert!(w.push_update(codec, r).unwrap());
    }
    w.finish(0, &[]);
    if wire::is_padded(&header.message) {
        wire::pad(&mut buf, 0);
    }
    let mut out = Vec::new();
    foca_core::Envelope::seal(envelope, &buf, &mut out).unwrap();
    out
}

/// What an attack did to the cluster.
#[derive(Debug)]
struct Outcome {
    /// Bytes members sent to third parties per byte the rogue sent.
    ratio: f64,
    /// The longest a healthy member was missing from another's view.
    longest_out: Duration,
    /// From the crash until every running member knew it down.
    detected: Option<Duration>,
    /// Datagrams the rogue replayed to running members.
    replays: u64,
    /// Datagrams members refused as replays (`replayed` or `too_old`).
    replays_refused: u64,
}

/// Runs 30 s of attack on a formed cluster: `attack` is called every
/// 100 ms, views are sampled every 10 ms; member `CRASHED` crashes 2 s in.
fn run(mode: Mode, name: &str, mut attack: impl FnMut(&mut Net, &mut Rogue, u32)) -> Outcome {
    let mut net = cluster(mode, 7);
    net.run_for(Duration::from_secs(3));
    let mut rogue = Rogue::new(mode);
    let step = Duration::from_millis(10);
    let mut out_since: BTreeMap<(u32, u32), Duration> = BTreeMap::new();
    let mut longest_out = Duration::ZERO;
    let mut crashed_at = None;
    let mut detected = None;
    for step_no in 0..3_000u32 {
        if step_no == 200 {
            net.crash(&CRASHED);
            crashed_at = Some(net.now());
        }
        if step_no % 10 == 0 {
            attack(&mut net, &mut rogue, step_no / 10);
        }
        net.run_for(step);
        let now = net.now();
        let healthy: Vec<u32> = (0..N).filter(|a| *a != CRASHED).collect();
        for &o in &healthy {
            let ep = net.endpoint(&o).unwrap();
            for &m in healthy.iter().filter(|m| **m != o) {
                let present = ep.foca().member(&m).is_some_and(Member::is_active);
                if present {
                    if let Some(since) = out_since.remove(&(o, m)) {
                        longest_out = longest_out.max(now - since);
                    }
                } else {
                    let since = *out_since.entry((o, m)).or_insert(now);
                    longest_out = longest_out.max(now - since);
                }
            }
        }
        if let (Some(at), None) = (crashed_at, detected) {
            let all = healthy.iter().all(|o| {
                let ep = net.endpoint(o).unwrap();
                !ep.foca().member(&CRASHED).is_some_and(Member::is_active)
            });
            if all {
                detected = Some(now - at);
            }
        }
    }
    // The rogue's own address is no third party: members that heard from
    // it treat it as a member.
    let to_strangers: u64 = net
        .sent_to_strangers()
        .iter()
        .filter(|(addr, _)| **addr != ROGUE)
        .map(|(_, bytes)| bytes)
        .sum();
    let ratio = to_strangers as f64 / rogue.bytes.max(1) as f64;
    let replays_refused = (0..N)
        .filter_map(|a| net.endpoint(&a))
        .map(|ep| ep.metrics().dropped)
        .map(|d| d.replayed + d.too_old)
        .sum();
    let outcome = Outcome {
        ratio,
        longest_out,
        detected,
        replays: rogue.replays,
        replays_refused,
    };
    println!(
        "{name:<32} {mode:<9?} rogue sent {:>8} B, third parties got {:>8} B: ratio {:.2}; \
         longest out {:?}; crash known to all after {:?}",
        rogue.bytes, to_strangers, outcome.ratio, outcome.longest_out, outcome.detected
    );
    outcome
}

/// Checks the bounds the hardening promises.
fn check(outcome: &Outcome) {
    let config = config();
    let timeout = config.suspicion_timeout(N as usize);
    assert!(outcome.ratio <= AMPLIFICATION_FACTOR as f64, "{outcome:?}");
    assert!(outcome.longest_out <= timeout, "{outcome:?}");
    let detected = outcome.detected.expect("the crash was detected");
    assert!(
        detected <= config.suspicion_timeout_max(N as usize) / 2,
        "{outcome:?}"
    );
}

fn each_mode(name: &str, attack: impl Fn(&mut Net, &mut Rogue, u32)) {
    for mode in [Mode::Plain, Mode::KeyHolder] {
        check(&run(mode, name, &attack));
    }
}

/// A victim address for a tick (a handful of third parties).
fn victim(tick: u32) -> u32 {
    VICTIM + tick % 8
}

#[test]
fn forged_requests_reflected_at_a_third_party() {
    // Claiming to be the victim, from the victim's address (a forged
    // source): announces, pings and summaries to every member.
    for (name, message) in [
        ("announce as the victim", Message::Announce),
        ("ping as the victim", Message::Ping(1)),
        ("summary as the victim", Message::Sync { reply: false }),
    ] {
        each_mode(name, |net, rogue, tick| {
            let v = victim(tick);
            for to in 0..N {
                let d = rogue.datagram(id(v), id(to), message.clone(), &[]);
                rogue.send(net, v, to, d);
            }
        });
    }
}

#[test]
fn forged_sender_from_the_rogues_own_address_is_dropped() {
    // Without a forged source, claiming the victim gets nothing sent.
    each_mode("announce as the victim, unspoofed", |net, rogue, tick| {
        for to in 0..N {
            let d = rogue.datagram(id(victim(tick)), id(to), Message::Announce, &[]);
            rogue.send(net, ROGUE, to, d);
        }
    });
}

#[test]
fn ping_requests_aimed_at_a_third_party() {
    each_mode("ping request for the victim", |net, rogue, tick| {
        for to in 0..N {
            let message = Message::PingReq {
                target: id(victim(tick)),
                probe_number: 1,
            };
            let d = rogue.datagram(id(ROGUE), id(to), message, &[]);
            rogue.send(net, ROGUE, to, d);
        }
    });
}

#[test]
fn forged_incarnations_do_not_spend_a_members_life() {
    each_mode("alive and suspect at u32::MAX", |net, rogue, _| {
        let records = [
            Member::alive(id(TARGET), u32::MAX),
            Member::new(id(TARGET), u32::MAX, State::Suspect),
        ];
        for to in 0..N {
            let d = rogue.datagram(id(ROGUE), id(to), Message::Gossip, &records);
            rogue.send(net, ROGUE, to, d);
        }
    });
}

#[test]
fn forged_verdicts_about_a_live_member_are_refuted() {
    for state in [State::Down, State::Left, State::Suspect] {
        let name = format!("forged {state:?} at its incarnation");
        each_mode(&name, |net, rogue, tick| {
            // An omniscient rogue: always the target's current incarnation,
            // every 100 ms, to a different member each time.
            let incarnation = net.endpoint(&TARGET).unwrap().foca().incarnation();
            let to = (tick % (N - 1) + TARGET + 1) % N;
            let records = [Member::new(id(TARGET), incarnation, state)];
            let d = rogue.datagram(id(ROGUE), id(to), Message::Gossip, &records);
            rogue.send(net, ROGUE, to, d);
        });
    }
}

#[test]
fn forged_suspicions_of_everyone_at_once() {
    // Every member suspected at its current incarnation, to a different
    // member every 100 ms: the backlogs fill with refutations, and the
    // crash's news must still get through.
    each_mode("forged Suspect of everyone", |net, rogue, tick| {
        // Not the crashed member: suspecting it would only help.
        let records: Vec<_> = (0..N)
            .filter(|a| *a != CRASHED)
            .filter_map(|a| net.endpoint(&a))
            .map(|ep| {
                Member::new(
                    *ep.foca().identity(),
                    ep.foca().incarnation(),
                    State::Suspect,
                )
            })
            .collect();
        let to = tick % N;
        let d = rogue.datagram(id(ROGUE), id(to), Message::Gossip, &records);
        rogue.send(net, ROGUE, to, d);
    });
}

#[test]
fn fake_members_at_a_third_partys_address() {
    // Records of members that do not exist, at the victim's ports: every
    // member that learns of them would probe them.
    each_mode("fake members at the victim", |net, rogue, tick| {
        let fakes: Vec<_> = (0..40)
            .map(|k| Member::alive(id(VICTIM + (tick * 40 + k) % 4_000), 0))
            .collect();
        let to = tick % N;
        let d = rogue.datagram(id(ROGUE), id(to), Message::Gossip, &fakes);
        rogue.send(net, ROGUE, to, d);
    });
}

#[test]
fn forged_rename_at_the_highest_generation() {
    each_mode("renamed to generation u32::MAX", |net, rogue, tick| {
        let records = [Member::alive(GenerationalId::new(TARGET, u32::MAX), 0)];
        let to = (tick % (N - 1) + TARGET + 1) % N;
        let d = rogue.datagram(id(ROGUE), id(to), Message::Gossip, &records);
        rogue.send(net, ROGUE, to, d);
    });
}

#[test]
fn replays_of_a_crashed_members_datagrams_are_refused() {
    // An eavesdropper on the crashed member's link (no key) copies every
    // datagram it sends, and from then on sends each again, every 100 ms,
    // from its address: its pings and acks would keep it alive in others'
    // eyes after it crashed. The rogue holds no key here: sealed
    // datagrams are what it replays.
    let mut captured: Vec<(u32, Vec<u8>)> = Vec::new();
    let outcome = run(
        Mode::KeyHolder,
        "replayed datagrams of a member",
        |net, rogue, tick| {
            if tick == 0 {
                net.tap(Some(&CRASHED));
            }
            captured.extend(net.take_tapped());
            for (to, data) in &captured {
                rogue.bytes += data.len() as u64;
                if net.inject(CRASHED, to, &mut data.clone()) {
                    rogue.replays += 1;
                }
            }
        },
    );
    check(&outcome);
    assert!(outcome.replays > 1_000, "{outcome:?}");
    assert_eq!(outcome.replays_refused, outcome.replays, "{outcome:?}");
}

#[test]
fn garbage_changes_nothing() {
    each_mode("random bytes", |net, rogue, tick| {
        let mut rng = StdRng::seed_from_u64(u64::from(tick));
        for to in 0..N {
            let len = rng.random_range(0..1400);
            let mut d = vec![0u8; len];
            rng.fill(&mut d[..]);
            rogue.send(net, ROGUE, to, d);
        }
    });
}
