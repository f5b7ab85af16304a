//! Hostile input: garbage, truncated and corrupted datagrams never panic,
//! and a rejected datagram changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use foca_core::testing::{NoEnvelope, TestCodec, TestId};
use foca_core::{
    BroadcastHandler, Codec, Command, Config, ConnectionState, Endpoint, Event, Foca,
    GenerationalId, Member, Message, Metrics, NoCustomBroadcast, State, Transmit,
};
use rand::rngs::Xoshiro128PlusPlus;
use rand::{RngExt, SeedableRng};

type Ep<B = NoCustomBroadcast> = Endpoint<TestId, TestCodec, Xoshiro128PlusPlus, B, NoEnvelope>;

fn id(addr: u32) -> TestId {
    GenerationalId::new(addr, 1)
}

fn endpoint_with<B: BroadcastHandler<TestId>>(addr: u32, handler: B) -> Ep<B> {
    let foca = Foca::with_custom_broadcast(
        id(addr),
        Config::simple(),
        Xoshiro128PlusPlus::seed_from_u64(u64::from(addr)),
        TestCodec,
        handler,
    )
    .unwrap();
    Endpoint::new(foca, NoEnvelope, Duration::ZERO).unwrap()
}

/// Member 1 in a formed cluster: 2, 3 and 4 alive, 5 recorded down.
fn formed() -> Ep {
    let mut ep = endpoint_with(1, NoCustomBroadcast);
    let table = vec![
        Member::alive(id(2), 0),
        Member::alive(id(3), 0),
        Member::alive(id(4), 0),
        Member::new(id(5), 0, State::Down),
    ];
    ep.command(Duration::ZERO, Command::Apply(table)).unwrap();
    while ep.poll_event().is_some() {}
    assert_eq!(ep.foca().connection_state(), ConnectionState::Connected);
    assert!(ep.pending_timers() > 0);
    ep
}

/// Everything observable about a member that a datagram could change.
#[derive(Debug, PartialEq)]
struct Snapshot {
    table: Vec<Member<TestId>>,
    incarnation: u32,
    updates_backlog: usize,
    broadcast_backlog: usize,
    connection: ConnectionState,
    pending_timers: usize,
    next_deadline: Option<Duration>,
    /// All metrics but the receive counters.
    metrics: Metrics,
}

fn snapshot<B: BroadcastHandler<TestId>>(ep: &Ep<B>) -> Snapshot {
    let f = ep.foca();
    let mut metrics = ep.metrics();
    metrics.datagrams_in = 0;
    metrics.bytes_in = 0;
    metrics.dropped = Default::default();
    Snapshot {
        table: f.iter_membership_state().cloned().collect(),
        incarnation: f.incarnation(),
        updates_backlog: f.updates_backlog(),
        broadcast_backlog: f.custom_broadcast_backlog(),
        connection: f.connection_state(),
        pending_timers: ep.pending_timers(),
        next_deadline: ep.next_deadline(),
        metrics,
    }
}

fn message_of(data: &[u8]) -> Option<Message<TestId>> {
    let mut input = data;
    TestCodec.decode_header(&mut input).ok().map(|h| h.message)
}

/// The address a datagram claims to come from (0 when it has no header):
/// where a hostile datagram is made to come from.
fn claimed_sender(data: &[u8]) -> u32 {
    let mut input = data;
    TestCodec
        .decode_header(&mut input)
        .map_or(0, |h| *h.src.address())
}

/// What feeding one datagram did.
#[derive(Debug)]
enum Outcome {
    Rejected,
    Accepted,
}

/// Feeds `data` to `ep` and checks the rejection contract: a datagram is
/// either accepted, or dropped and counted once, leaving the member exactly
/// as it was (its only possible output: one TurnUndead telling a member
/// recorded down so).
fn feed<B: BroadcastHandler<TestId>>(ep: &mut Ep<B>, data: &[u8], what: &str) -> Outcome {
    let before = snapshot(ep);
    let m0 = ep.metrics();
    let now = ep.now();
    ep.handle_datagram(now, claimed_sender(data), &mut data.to_vec())
        .unwrap_or_else(|e| panic!("{what}: error {e}"));
    let m1 = ep.metrics();
    // Counted once: handed to the protocol, or dropped as oversized first.
    assert_eq!(
        m1.datagrams_in + m1.dropped.oversized,
        m0.datagrams_in + m0.dropped.oversized + 1,
        "{what}"
    );
    let transmits: Vec<Transmit<u32>> = std::iter::from_fn(|| ep.poll_transmit()).collect();
    let notes: Vec<Event<TestId>> = std::iter::from_fn(|| ep.poll_event()).collect();
    match m1.dropped.total() - m0.dropped.total() {
        0 => Outcome::Accepted,
        1 => {
            let mut after = snapshot(ep);
            // The TurnUndead reply below is counted as sent.
            after.metrics.datagrams_out -= transmits.len() as u64;
            after.metrics.bytes_out -= transmits.iter().map(|t| t.data.len() as u64).sum::<u64>();
            assert_eq!(after, before, "{what}: rejected but changed state");
            assert!(notes.is_empty(), "{what}: rejected but notified {notes:?}");
            if m1.dropped.from_down_member > m0.dropped.from_down_member {
                assert!(transmits.len() <= 1, "{what}: {transmits:?}");
                for t in &transmits {
                    assert_eq!(message_of(&t.data), Some(Message::TurnUndead), "{what}");
                }
            } else if m1.dropped.wrong_destination > m0.dropped.wrong_destination {
                // A probe of an older identity on our address gets our
                // current identity back, nothing else.
                assert!(transmits.len() <= 1, "{what}: {transmits:?}");
                for t in &transmits {
                    assert_eq!(message_of(&t.data), Some(Message::Gossip), "{what}");
                }
            } else {
                assert!(
                    transmits.is_empty(),
                    "{what}: rejected but sent {transmits:?}"
                );
            }
            Outcome::Rejected
        }
        n => panic!("{what}: one datagram counted {n} drops"),
    }
}

/// A real exchange among members 1 to 5: joins, then 5 crashes, links 1–2
/// and 3–4 fail (so probes go indirect), 1 announces and 3 gossips. Returns
/// the datagrams that 2, 3 and 4 sent to member 1 (5 is recorded down in
/// [`formed`], so its datagrams would be dropped there).
fn capture<B: BroadcastHandler<TestId>>(
    mut handler: impl FnMut() -> B,
    mut each_period: impl FnMut(u32, &mut Ep<B>),
) -> Vec<Vec<u8>> {
    let mut eps: BTreeMap<u32, Ep<B>> = (1..=5).map(|a| (a, endpoint_with(a, handler()))).collect();
    let mut now = Duration::ZERO;
    for a in 2..=5 {
        eps.get_mut(&a)
            .unwrap()
            .command(now, Command::Join(vec![GenerationalId::seed(1)]))
            .unwrap();
    }
    let mut captured = Vec::new();
    let step = Duration::from_millis(10);
    let end = Duration::from_secs(30);
    while now < end {
        now += step;
        let crashed = now >= Duration::from_secs(3);
        let blocked = |a: u32, b: u32| {
            now >= Duration::from_secs(5) && matches!((a.min(b), a.max(b)), (1, 2) | (3, 4))
        };
        if now == Duration::from_secs(8) {
            eps.get_mut(&1)
                .unwrap()
                .command(now, Command::Announce(GenerationalId::seed(3)))
                .unwrap();
        }
        if now.as_millis().is_multiple_of(1000) {
            for (a, ep) in eps.iter_mut() {
                if !(crashed && *a == 5) {
                    each_period(*a, ep);
                }
            }
        }
        if now.as_millis().is_multiple_of(100) {
            eps.get_mut(&3)
                .unwrap()
                .command(now, Command::Gossip)
                .unwrap();
        }
        for a in 1..=5 {
            if crashed && a == 5 {
                continue;
            }
            eps.get_mut(&a).unwrap().handle_timeouts(now).unwrap();
        }
        // Deliver until quiet, instantly.
        loop {
            let mut sent = Vec::new();
            for (a, ep) in eps.iter_mut() {
                while let Some(t) = ep.poll_transmit() {
                    sent.push((*a, t));
                }
                while ep.poll_event().is_some() {}
            }
            if sent.is_empty() {
                break;
            }
            for (from, mut t) in sent {
                let to = t.to;
                if (crashed && (to == 5 || from == 5)) || blocked(from, to) {
                    continue;
                }
                if to == 1 && from != 5 {
                    captured.push(t.data.clone());
                }
                if let Some(ep) = eps.get_mut(&to) {
                    ep.handle_datagram(now, from, &mut t.data).unwrap();
                }
            }
        }
    }
    captured
}

/// Up to two datagrams of each message kind, the longest ones (most news).
fn sample(captured: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut by_kind: BTreeMap<&'static str, Vec<Vec<u8>>> = BTreeMap::new();
    for d in captured {
        let kind = message_of(&d).unwrap().name();
        by_kind.entry(kind).or_default().push(d);
    }
    let kinds: Vec<_> = by_kind.keys().copied().collect();
    println!("captured kinds: {kinds:?}");
    for needed in [
        "announce",
        "ping",
        "ack",
        "ping-req",
        "indirect-ping",
        "indirect-ack",
        "forwarded-ack",
        "feed",
        "gossip",
    ] {
        assert!(kinds.contains(&needed), "no {needed} captured: {kinds:?}");
    }
    let mut out = Vec::new();
    for (_, mut ds) in by_kind {
        ds.sort_by_key(|d| std::cmp::Reverse(d.len()));
        ds.dedup();
        out.extend(ds.into_iter().take(2));
    }
    out
}

fn valid_datagrams() -> Vec<Vec<u8>> {
    let datagrams = sample(capture(|| NoCustomBroadcast, |_, _| {}));
    // Each is accepted, whole, by a member in the formed state.
    for d in &datagrams {
        let mut ep = formed();
        assert!(
            matches!(feed(&mut ep, d, "valid"), Outcome::Accepted),
            "{:?}",
            message_of(d)
        );
    }
    datagrams
}

#[test]
fn random_bytes_and_truncations_are_all_rejected_and_change_nothing() {
    let mut ep = formed();
    let start = snapshot(&ep);
    let mut rng = Xoshiro128PlusPlus::seed_from_u64(0xbad_da7a);
    let mut buf = vec![0u8; 1500];
    let mut oversized = 0;
    for n in 0..10_000 {
        let len = rng.random_range(0..1500);
        rng.fill(&mut buf[..len]);
        if len > ep.foca().config().max_packet_size {
            oversized += 1;
        }
        let outcome = feed(&mut ep, &buf[..len], &format!("random #{n}, {len} bytes"));
        assert!(matches!(outcome, Outcome::Rejected), "random #{n} accepted");
    }
    let m = ep.metrics();
    assert_eq!(m.dropped.total(), 10_000);
    assert_eq!(m.dropped.oversized, oversized);
    println!(
        "random: 10000 rejected ({} decode, {} oversized, {} other)",
        m.dropped.decode,
        m.dropped.oversized,
        m.dropped.total() - m.dropped.decode - m.dropped.oversized
    );

    let datagrams = valid_datagrams();
    let mut truncations = 0;
    for d in &datagrams {
        let kind = message_of(d).unwrap().name();
        for len in 0..d.len() {
            let outcome = feed(
                &mut ep,
                &d[..len],
                &format!("{kind} cut to {len}/{}", d.len()),
            );
            assert!(
                matches!(outcome, Outcome::Rejected),
                "{kind} cut to {len} accepted"
            );
            truncations += 1;
        }
    }
    let m = ep.metrics();
    assert_eq!(m.dropped.total(), 10_000 + truncations);
    println!(
        "truncations: {truncations} of {} datagrams, all rejected",
        datagrams.len()
    );
    // After all that, the member is as it was.
    assert_eq!(snapshot(&ep), start);
}

#[test]
fn bit_flips_are_rejected_cleanly_or_accepted() {
    let datagrams = valid_datagrams();
    let (mut rejected, mut accepted) = (0u64, 0u64);
    let mut reasons: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut must_reject = 0u64;
    for d in &datagrams {
        let message = message_of(d).unwrap();
        let kind = message.name();
        let mut input = &d[..];
        TestCodec.decode_header(&mut input).unwrap();
        let header_len = d.len() - input.len();
        let count = usize::from(u16::from_be_bytes([input[0], input[1]]));
        // Bits no valid datagram can differ in: the destination (only its
        // address, for an announce), the update count, and the high bits of
        // each update's state byte (states are 0 to 3; an update is 13
        // bytes, after the count and the findings byte).
        let dst_bytes = if message == Message::Announce {
            12..16
        } else {
            12..20
        };
        let state_bytes: BTreeSet<usize> =
            (0..count).map(|k| header_len + 3 + 13 * k + 12).collect();
        let caught = |bit: usize| {
            let byte = bit / 8;
            dst_bytes.contains(&byte)
                || (header_len..header_len + 2).contains(&byte)
                || (state_bytes.contains(&byte) && bit % 8 >= 2)
        };
        for bit in 0..d.len() * 8 {
            let mut flipped = d.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            // Each flip against the same starting state.
            let mut ep = formed();
            let m0 = ep.metrics().dropped;
            let outcome = feed(&mut ep, &flipped, &format!("{kind} bit {bit}"));
            if caught(bit) {
                assert!(
                    matches!(outcome, Outcome::Rejected),
                    "{kind} bit {bit} accepted"
                );
                must_reject += 1;
            }
            match outcome {
                Outcome::Rejected => {
                    rejected += 1;
                    let m1 = ep.metrics().dropped;
                    let reason = [
                        ("decode", m1.decode - m0.decode),
                        (
                            "wrong_destination",
                            m1.wrong_destination - m0.wrong_destination,
                        ),
                        ("from_self", m1.from_self - m0.from_self),
                        (
                            "from_down_member",
                            m1.from_down_member - m0.from_down_member,
                        ),
                        ("stale_identity", m1.stale_identity - m0.stale_identity),
                        ("oversized", m1.oversized - m0.oversized),
                        ("not_active", m1.not_active - m0.not_active),
                    ]
                    .into_iter()
                    .find(|(_, n)| *n == 1)
                    .unwrap()
                    .0;
                    *reasons.entry(reason).or_default() += 1;
                }
                Outcome::Accepted => accepted += 1,
            }
        }
    }
    let total = rejected + accepted;
    let share = rejected as f64 / total as f64;
    println!(
        "bit flips: {total} over {} datagrams: {rejected} rejected ({:.1}%), {accepted} accepted as another valid datagram; rejections by reason: {reasons:?}",
        datagrams.len(),
        share * 100.0
    );
    println!(
        "bit flips that no valid datagram allows (destination, count, state): {must_reject}, all rejected"
    );
    // The test codec is fixed-width and has no checksum: a flip in an id,
    // an incarnation or a probe number yields another valid datagram (most
    // bits of an update are such fields). Flips in destinations, counts and
    // state bytes are caught (asserted above), which makes about a quarter.
    assert!(share >= 0.2, "only {:.1}% of flips rejected", share * 100.0);
    assert!(reasons.get("decode").copied().unwrap_or(0) > 0);
    assert!(reasons.get("wrong_destination").copied().unwrap_or(0) > 0);
}

/// Items are accepted once each (by content), so they are disseminated.
#[derive(Default)]
struct Once(BTreeSet<Vec<u8>>);

impl BroadcastHandler<TestId> for Once {
    type Broadcast = Keyed;
    type Error = &'static str;

    fn receive_item(
        &mut self,
        item: &[u8],
        _: Option<&TestId>,
    ) -> Result<Option<Keyed>, &'static str> {
        Ok(self.0.insert(item.to_vec()).then(|| Keyed(item.to_vec())))
    }
}

struct Keyed(Vec<u8>);

impl foca_core::Invalidates for Keyed {
    type Key = Vec<u8>;
    fn key(&self) -> Vec<u8> {
        self.0.clone()
    }
    fn invalidates(&self, _: &Self) -> bool {
        false
    }
}

/// Both sections of a datagram are counted: a datagram cut anywhere, even
/// exactly between two custom broadcasts, is rejected and changes nothing.
#[test]
fn truncated_broadcast_sections_are_all_rejected() {
    let mut next = 0u8;
    let captured = capture(Once::default, |a, ep| {
        if a != 1 {
            let now = ep.now();
            for _ in 0..3 {
                next = next.wrapping_add(1);
                let item = vec![a as u8, next, 0xAB, 0xCD, next];
                ep.command(now, Command::AddBroadcast(item)).unwrap();
            }
        }
    });
    let mut with_items = 0;
    let (mut boundary_cuts, mut other_cuts) = (0, 0);
    for d in &captured {
        // Parse the framing: header, count, findings, updates, count,
        // (u16 len, item)*.
        let mut input = &d[..];
        TestCodec.decode_header(&mut input).unwrap();
        let count = u16::from_be_bytes([input[0], input[1]]);
        input = &input[3..];
        for _ in 0..count {
            TestCodec.decode_member(&mut input).unwrap();
        }
        let items = u16::from_be_bytes([input[0], input[1]]);
        let mut boundaries = BTreeSet::new();
        let mut at = d.len() - input.len() + 2;
        boundaries.insert(at);
        for _ in 0..items {
            let len = usize::from(u16::from_be_bytes([d[at], d[at + 1]]));
            at += 2 + len;
            boundaries.insert(at);
        }
        if message_of(d)
            .as_ref()
            .is_some_and(foca_core::wire::is_padded)
        {
            // Then its padding: a length and as many zeros.
            let zeros = usize::from(u16::from_be_bytes([d[at], d[at + 1]]));
            assert!(d[at + 2..].iter().all(|b| *b == 0));
            at += 2 + zeros;
        }
        assert_eq!(at, d.len());
        if boundaries.len() < 2 {
            continue;
        }
        with_items += 1;
        let kind = message_of(d).unwrap().name();
        for len in 0..d.len() {
            let mut ep = endpoint_with(1, Once::default());
            let table = (2..=4).map(|a| Member::alive(id(a), 0)).collect();
            ep.command(Duration::ZERO, Command::Apply(table)).unwrap();
            while ep.poll_event().is_some() {}
            let outcome = feed(
                &mut ep,
                &d[..len],
                &format!("{kind} cut to {len}/{}", d.len()),
            );
            assert!(
                matches!(outcome, Outcome::Rejected),
                "{kind} cut to {len} accepted"
            );
            if boundaries.contains(&len) {
                boundary_cuts += 1;
            } else {
                other_cuts += 1;
            }
        }
        if with_items >= 6 {
            break;
        }
    }
    assert!(with_items > 0, "no datagram carried custom broadcasts");
    println!(
        "broadcast datagrams: {with_items}; cuts rejected: {boundary_cuts} at item boundaries, {other_cuts} elsewhere"
    );
}
