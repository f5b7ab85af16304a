//! Property tests of the membership merge and of every bounded queue.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use foca_core::testing::{NoEnvelope, TestCodec, TestId};
use foca_core::{
    BroadcastHandler, Codec, Command, Config, Endpoint, Foca, GenerationalId, Header, Invalidates,
    MAX_CHAIN_TIMERS, Member, Message, Notification, Runtime, State, Timer,
};
use proptest::collection::vec;
use proptest::prelude::*;
use rand::rngs::Xoshiro128PlusPlus;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

/// A runtime that drops everything: merging needs none of its output.
struct NoRuntime;

impl<T: foca_core::Identity> Runtime<T> for NoRuntime {
    fn notify(&mut self, _: Notification<T>) {}
    fn send_to(&mut self, _: T, _: &[u8]) {}
    fn submit_after(&mut self, _: Timer<T>, _: Duration) {}
}

type Plain = Foca<TestId, TestCodec, Xoshiro128PlusPlus>;

fn id(addr: u32, generation: u32) -> TestId {
    GenerationalId::new(addr, generation)
}

/// A member with identity address 1, generation 1.
fn fresh(seed: u64) -> Plain {
    Foca::new(
        id(1, 1),
        Config::simple(),
        Xoshiro128PlusPlus::seed_from_u64(seed),
        TestCodec,
    )
    .unwrap()
}

fn any_state() -> impl Strategy<Value = State> {
    prop_oneof![
        Just(State::Alive),
        Just(State::Suspect),
        Just(State::Down),
        Just(State::Left),
    ]
}

fn update(addrs: core::ops::Range<u32>, generations: u32) -> impl Strategy<Value = Member<TestId>> {
    (addrs, 1..=generations, 0u32..=5, any_state())
        .prop_map(|(a, g, i, s)| Member::new(id(a, g), i, s))
}

/// The table as a sorted list of (address, generation, incarnation, state).
fn table<B: BroadcastHandler<TestId>>(
    f: &Foca<TestId, TestCodec, Xoshiro128PlusPlus, B>,
) -> Vec<(u32, u32, u32, u8)> {
    let mut rows: Vec<_> = f
        .iter_membership_state()
        .map(|m| {
            (
                *m.id().address(),
                m.id().generation(),
                m.incarnation(),
                m.state() as u8,
            )
        })
        .collect();
    rows.sort_unstable();
    rows
}

/// What the table must hold: per address, the greatest news (a higher
/// generation wins; for one identity, incarnation then state rank).
fn model(updates: &[Member<TestId>]) -> Vec<(u32, u32, u32, u8)> {
    let mut best: BTreeMap<u32, Member<TestId>> = BTreeMap::new();
    for u in updates {
        let addr = *u.id().address();
        let wins = match best.get(&addr) {
            None => true,
            Some(cur) if cur.id() == u.id() => u.precedence(cur) == core::cmp::Ordering::Greater,
            Some(cur) => u.id().generation() > cur.id().generation(),
        };
        if wins {
            best.insert(addr, u.clone());
        }
    }
    best.values()
        .map(|m| {
            (
                *m.id().address(),
                m.id().generation(),
                m.incarnation(),
                m.state() as u8,
            )
        })
        .collect()
}

/// A datagram as a peer would send it: header, update count, updates.
fn datagram(
    src: TestId,
    src_incarnation: u32,
    dst: TestId,
    message: Message<TestId>,
    updates: &[Member<TestId>],
) -> Vec<u8> {
    let mut codec = TestCodec;
    let mut out = Vec::new();
    codec
        .encode_header(
            &Header {
                src,
                src_incarnation,
                dst,
                message,
            },
            &mut out,
        )
        .unwrap();
    out.extend_from_slice(&u16::try_from(updates.len()).unwrap().to_be_bytes());
    out.push(0); // no findings
    for u in updates {
        codec.encode_member(u, &mut out).unwrap();
    }
    out.extend_from_slice(&[0, 0]); // no custom broadcasts
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Merging is commutative and idempotent: the same news in another order,
    /// in other batches, with repeats, gives the same table, and that table
    /// holds the greatest news per address.
    #[test]
    fn merge_is_order_insensitive_and_idempotent(
        updates in vec(update(2..8, 3), 0..48),
        seed in any::<u64>(),
        batch in 1usize..8,
    ) {
        let mut a = fresh(1);
        a.apply_many(updates.clone(), NoRuntime).unwrap();

        let mut rng = Xoshiro128PlusPlus::seed_from_u64(seed);
        let mut again = updates.clone();
        for u in &updates {
            if rng.random_bool(0.5) {
                again.push(u.clone());
            }
        }
        again.shuffle(&mut rng);
        // Another RNG seed too: the table's internal order may differ.
        let mut b = fresh(seed);
        for chunk in again.chunks(batch) {
            b.apply_many(chunk.iter().cloned(), NoRuntime).unwrap();
        }

        let expected = model(&updates);
        prop_assert_eq!(table(&a), expected.clone());
        prop_assert_eq!(table(&b), expected.clone());
        // One row per address.
        let addrs: BTreeSet<u32> = table(&a).iter().map(|r| r.0).collect();
        prop_assert_eq!(addrs.len(), expected.len());
        prop_assert_eq!(a.num_members(), b.num_members());

        // Re-applying everything (twice) changes nothing.
        a.apply_many(updates.clone(), NoRuntime).unwrap();
        a.apply_many(again, NoRuntime).unwrap();
        prop_assert_eq!(table(&a), expected);
    }

    /// Down or Left at incarnation `i` is never undone by Alive or Suspect
    /// of the same identity at `j <= i`, however it arrives: applied, in a
    /// third party's gossip, or claimed by the member itself in a header.
    #[test]
    fn down_or_left_is_never_undone_at_equal_or_lower_incarnation(
        addr in 2u32..8,
        generation in 2u32..=3,
        i in 0u32..=5,
        left in any::<bool>(),
        noise in vec(update(2..8, 3), 0..24),
        revivals in vec((0u32..=5, any::<bool>()), 1..12),
        seed in any::<u64>(),
        batch in 1usize..6,
    ) {
        let target = id(addr, generation);
        let gone = Member::new(target, i, if left { State::Left } else { State::Down });
        let mut f = fresh(seed);
        f.apply_many([gone.clone()], NoRuntime).unwrap();
        prop_assert_eq!(f.member(&addr), Some(&gone));

        // Noise about other addresses, or about older generations of this one.
        let noise: Vec<Member<TestId>> = noise
            .into_iter()
            .map(|u| {
                if *u.id().address() == addr {
                    Member::new(id(addr, 1), u.incarnation(), u.state())
                } else {
                    u
                }
            })
            .collect();
        let revivals: Vec<Member<TestId>> = revivals
            .into_iter()
            .map(|(j, suspect)| {
                let state = if suspect { State::Suspect } else { State::Alive };
                Member::new(target, j % (i + 1), state)
            })
            .collect();
        let mut rng = Xoshiro128PlusPlus::seed_from_u64(seed);
        let mut mix: Vec<Member<TestId>> = noise.iter().chain(&revivals).cloned().collect();
        mix.shuffle(&mut rng);

        let me = id(1, 1);
        let third = id(9, 1);
        for (n, chunk) in mix.chunks(batch).enumerate() {
            f.apply_many(chunk.iter().cloned(), NoRuntime).unwrap();
            prop_assert_eq!(f.member(&addr), Some(&gone));
            // The same news gossiped by a live third party.
            let d = datagram(third, 0, me, Message::Gossip, chunk);
            f.handle_data(&d, NoRuntime).unwrap();
            prop_assert_eq!(f.member(&addr), Some(&gone));
            // The gone member itself talking at an incarnation <= i: dropped.
            let j = revivals[n % revivals.len()].incarnation();
            let before = f.metrics().dropped.from_down_member;
            let d = datagram(target, j, me, Message::Ping(n as u32), chunk);
            f.handle_data(&d, NoRuntime).unwrap();
            prop_assert_eq!(f.metrics().dropped.from_down_member, before + 1);
            prop_assert_eq!(f.member(&addr), Some(&gone));
        }
        prop_assert!(!f.iter_members().any(|m| *m.id().address() == addr));
    }
}

// ---------------------------------------------------------------------------
// Bounded queues.

/// A custom broadcast: two bytes, `[key, version]`; a higher version of a key
/// supersedes a lower one.
#[derive(Debug)]
struct Item {
    key: u8,
    version: u8,
}

impl Invalidates for Item {
    type Key = u8;

    fn key(&self) -> u8 {
        self.key
    }

    fn invalidates(&self, other: &Self) -> bool {
        self.version > other.version
    }
}

/// Remembers the highest version seen per key; anything newer is news.
#[derive(Default)]
struct Versions {
    seen: BTreeMap<u8, u8>,
}

impl BroadcastHandler<TestId> for Versions {
    type Broadcast = Item;
    type Error = &'static str;

    fn receive_item(
        &mut self,
        item: &[u8],
        _sender: Option<&TestId>,
    ) -> Result<Option<Item>, &'static str> {
        let &[key, version] = item else {
            return Err("an item is two bytes");
        };
        match self.seen.get(&key) {
            Some(v) if *v >= version => Ok(None),
            _ => {
                self.seen.insert(key, version);
                Ok(Some(Item { key, version }))
            }
        }
    }
}

type Ep = Endpoint<TestId, TestCodec, Xoshiro128PlusPlus, Versions, NoEnvelope>;

const PEER: u32 = 100;

fn small_config() -> Config {
    Config {
        max_members: 8,
        max_updates_backlog: 4,
        max_broadcast_backlog: 4,
        ..Config::simple()
    }
}

fn endpoint(addr: u32, config: Config, seed: u64) -> Ep {
    let foca = Foca::with_custom_broadcast(
        id(addr, 1),
        config,
        Xoshiro128PlusPlus::seed_from_u64(seed),
        TestCodec,
        Versions::default(),
    )
    .unwrap();
    Endpoint::new(foca, NoEnvelope, Duration::ZERO).unwrap()
}

#[derive(Clone, Debug)]
enum Op {
    /// News applied to the member under test, one update at a time.
    Apply(Vec<Member<TestId>>),
    /// Custom broadcasts added to the member under test.
    AddBroadcasts(Vec<(u8, u8)>),
    /// Garbage received.
    Noise(Vec<u8>),
    /// News applied to the peer (it then spreads it to us).
    PeerApply(Vec<Member<TestId>>),
    /// Custom broadcasts added to the peer.
    PeerAddBroadcasts(Vec<(u8, u8)>),
    /// The peer announces to us (0) or gossips (1).
    PeerSends(u8),
    /// Datagrams between the two are delivered (others are lost).
    Deliver,
    /// Time passes and due timers fire, on both.
    Advance(u16),
    /// The member under test gossips.
    Gossip,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => vec(update(1..40, 2), 0..12).prop_map(Op::Apply),
        2 => vec((0u8..12, any::<u8>()), 0..10).prop_map(Op::AddBroadcasts),
        1 => vec(any::<u8>(), 0..96).prop_map(Op::Noise),
        2 => vec(update(1..60, 2), 0..24).prop_map(Op::PeerApply),
        1 => vec((0u8..24, any::<u8>()), 0..12).prop_map(Op::PeerAddBroadcasts),
        2 => (0u8..2).prop_map(Op::PeerSends),
        3 => Just(Op::Deliver),
        3 => (0u16..3000).prop_map(Op::Advance),
        1 => Just(Op::Gossip),
    ]
}

fn check_bounds(ep: &Ep) -> Result<(), TestCaseError> {
    let f = ep.foca();
    let c = f.config();
    prop_assert!(f.updates_backlog() <= c.max_updates_backlog);
    prop_assert!(f.custom_broadcast_backlog() <= c.max_broadcast_backlog);
    prop_assert!(f.iter_membership_state().count() <= c.max_members);
    prop_assert!(f.num_members() <= f.iter_membership_state().count());
    let m = f.metrics();
    prop_assert_eq!(m.updates_backlog, f.updates_backlog() as u64);
    prop_assert_eq!(m.broadcast_backlog, f.custom_broadcast_backlog() as u64);
    prop_assert!(m.max_updates_backlog <= c.max_updates_backlog as u64);
    // One slot per protocol chain, one per member of the table at most.
    let table = f.iter_membership_state().count();
    prop_assert!(ep.pending_timers() <= MAX_CHAIN_TIMERS + table);
    Ok(())
}

/// Applies one update to `ep` and checks the member-table accounting.
/// Returns whether it queued news (changed the table or our incarnation).
fn apply_one(ep: &mut Ep, now: Duration, u: &Member<TestId>) -> Result<bool, TestCaseError> {
    let addr = *u.id().address();
    let f = ep.foca();
    let max = f.config().max_members;
    let len = f.iter_membership_state().count();
    let inactive = len - f.num_members();
    let before = f.member(&addr).cloned();
    let incarnation = f.incarnation();
    let dropped = f.metrics().members_dropped;

    prop_assert!(ep.command(now, Command::Apply(vec![u.clone()])).is_ok());

    let f = ep.foca();
    let after = f.member(&addr).cloned();
    let dropped_now = f.metrics().members_dropped;
    if addr == 1 {
        return Ok(f.incarnation() != incarnation);
    }
    if before.is_none() {
        if len >= max && (!u.is_active() || inactive == 0) {
            // No room, and nothing inactive to forget for it: dropped, counted.
            prop_assert_eq!(after, None);
            prop_assert_eq!(dropped_now, dropped + 1);
            return Ok(false);
        }
        prop_assert_eq!(after.as_ref(), Some(u));
        prop_assert_eq!(dropped_now, dropped);
        return Ok(true);
    }
    prop_assert_eq!(dropped_now, dropped);
    Ok(after != before)
}

/// Moves datagrams between the member under test and the peer; datagrams to
/// anyone else are lost.
fn deliver(ep: &mut Ep, peer: &mut Ep, now: Duration) -> Result<(), TestCaseError> {
    for _ in 0..4 {
        let mut moved = false;
        while let Some(mut t) = peer.poll_transmit() {
            if t.to == 1 {
                prop_assert!(ep.handle_datagram(now, PEER, &mut t.data).is_ok());
                check_bounds(ep)?;
                moved = true;
            }
        }
        while let Some(mut t) = ep.poll_transmit() {
            if t.to == PEER {
                prop_assert!(peer.handle_datagram(now, 1, &mut t.data).is_ok());
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    while ep.poll_event().is_some() {}
    while peer.poll_event().is_some() {}
    Ok(())
}

/// Runs `ops` on a member with a small config, checking every bound after
/// every step and that overflows are counted. Returns the final metrics.
fn run_ops(ops: &[Op], seed: u64) -> Result<foca_core::Metrics, TestCaseError> {
    let mut ep = endpoint(1, small_config(), seed);
    let mut peer = endpoint(PEER, Config::simple(), seed ^ 0x5eed);
    let mut now = Duration::ZERO;
    let apply = |ep: &mut Ep, now, news: Vec<Member<TestId>>| ep.command(now, Command::Apply(news));
    apply(&mut ep, now, vec![Member::alive(id(PEER, 1), 0)]).unwrap();
    apply(&mut peer, now, vec![Member::alive(id(1, 1), 0)]).unwrap();
    let cap_updates = ep.foca().config().max_updates_backlog;
    check_bounds(&ep)?;

    for op in ops {
        match op {
            Op::Apply(updates) => {
                // No datagram is built between these calls, so every distinct
                // key queued beyond the bound must have cost a counted drop.
                // Coming back from having no live peer withdraws this
                // member's own verdicts, and their queued news with them:
                // gone, but not dropped.
                let before = ep.foca().metrics();
                let mut queued = BTreeSet::new();
                for u in updates {
                    if apply_one(&mut ep, now, u)? {
                        queued.insert(*u.id().address());
                    }
                    check_bounds(&ep)?;
                }
                let after = ep.foca().metrics();
                let lost = after.updates_dropped - before.updates_dropped;
                let withdrawn = after.verdicts_withdrawn - before.verdicts_withdrawn;
                prop_assert!(
                    lost + withdrawn >= queued.len().saturating_sub(cap_updates) as u64,
                    "{} keys queued, bound {}, {} counted drops, {} withdrawn",
                    queued.len(),
                    cap_updates,
                    lost,
                    withdrawn
                );
            }
            Op::AddBroadcasts(items) => {
                // Each is sent at once (and may be retired by sending as
                // well as dropped): the bound holds throughout.
                for &(key, version) in items {
                    let item = vec![key, version];
                    prop_assert!(ep.command(now, Command::AddBroadcast(item)).is_ok());
                    check_bounds(&ep)?;
                }
            }
            Op::Noise(bytes) => {
                let dropped = ep.metrics().dropped.total();
                let mut bytes = bytes.clone();
                prop_assert!(ep.handle_datagram(now, PEER, &mut bytes).is_ok());
                prop_assert_eq!(ep.metrics().dropped.total(), dropped + 1);
            }
            Op::PeerApply(updates) => {
                prop_assert!(apply(&mut peer, now, updates.clone()).is_ok());
            }
            Op::PeerAddBroadcasts(items) => {
                for &(key, version) in items {
                    let item = vec![key, version];
                    prop_assert!(peer.command(now, Command::AddBroadcast(item)).is_ok());
                }
            }
            Op::PeerSends(kind) => {
                let command = match kind {
                    0 => Command::Announce(GenerationalId::seed(1)),
                    _ => Command::Gossip,
                };
                prop_assert!(peer.command(now, command).is_ok());
            }
            Op::Deliver => deliver(&mut ep, &mut peer, now)?,
            Op::Advance(ms) => {
                now += Duration::from_millis(u64::from(*ms));
                prop_assert!(ep.handle_timeouts(now).is_ok());
                prop_assert!(peer.handle_timeouts(now).is_ok());
            }
            Op::Gossip => prop_assert!(ep.command(now, Command::Gossip).is_ok()),
        }
        check_bounds(&ep)?;
    }
    deliver(&mut ep, &mut peer, now)?;
    check_bounds(&ep)?;
    Ok(ep.metrics())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever happens, no queue outgrows its bound, and overflows are
    /// counted.
    #[test]
    fn every_queue_stays_within_its_bound(
        ops in vec(op(), 1..60),
        seed in any::<u64>(),
    ) {
        run_ops(&ops, seed)?;
    }
}

/// A sequence that certainly overflows the table and both backlogs (the
/// timer queue cannot overflow: check_bounds holds it to one slot per
/// member): the drops show in the metrics.
#[test]
fn overflows_are_counted() {
    let news: Vec<Member<TestId>> = (2..30)
        .map(|a| {
            let state = if a % 3 == 0 {
                State::Down
            } else {
                State::Alive
            };
            Member::new(id(a, 1), 0, state)
        })
        .collect();
    // Members flapping between Suspect and Down at ever higher incarnations:
    // each change moves a timer, in the member's slot.
    let flapping: Vec<Member<TestId>> = (0..200u32)
        .flat_map(|i| {
            (2..8).map(move |a| {
                let state = if i % 2 == 0 {
                    State::Suspect
                } else {
                    State::Down
                };
                Member::new(id(a, 1), i, state)
            })
        })
        .collect();
    let ops = vec![
        Op::Apply(flapping),
        Op::Apply(news),
        Op::AddBroadcasts((0..10).map(|k| (k, 1)).collect()),
        // Twelve new items from the peer, which sends each at once to the
        // member (the only one it knows yet): four fit its backlog.
        Op::PeerAddBroadcasts((0..12).map(|k| (k, 2)).collect()),
        Op::PeerApply((40..60).map(|a| Member::alive(id(a, 1), 0)).collect()),
        Op::PeerSends(0),
        Op::PeerSends(1),
        Op::Deliver,
        Op::Advance(1500),
        Op::Deliver,
    ];
    let m = run_ops(&ops, 7).unwrap();
    assert!(m.members_dropped > 0, "{m:?}");
    assert!(m.updates_dropped > 0, "{m:?}");
    assert!(m.broadcasts_dropped > 0, "{m:?}");
}
