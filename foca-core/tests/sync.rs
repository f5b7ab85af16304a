//! Anti-entropy (`Message::Sync`): members compare table summaries and
//! exchange only the records that differ.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use foca_core::{Command, Config, Member, PeriodicParams};

const N: u32 = 40;

fn config(sync: bool) -> Config {
    Config {
        periodic_sync: sync.then_some(PeriodicParams {
            frequency: Duration::from_secs(5),
            num_members: 1,
        }),
        // No other repair path: no periodic gossip, nobody down.
        periodic_gossip: None,
        ..Config::new_lan(N as usize)
    }
}

/// `N` members that know each other from restored tables (no news in
/// flight), except that `3` and `7` do not know each other.
fn cluster(sync: bool) -> TestSim {
    let mut sim = TestSim::new(11);
    for a in 1..=N {
        let mut ep = member(&mut sim, a, 1, config(sync));
        let others = (1..=N)
            .filter(|&b| b != a && !matches!((a, b), (3, 7) | (7, 3)))
            .map(|b| Member::alive(id(b), 0));
        ep.command(sim.now(), Command::Restore(others.collect()))
            .unwrap();
        sim.add(ep);
    }
    sim
}

#[test]
fn sync_repairs_a_view_that_missed_a_member() {
    let mut sim = cluster(true);
    assert!(!view(&sim, 3).contains(&7));
    let mut repaired_at = None;
    for _ in 0..600 {
        sim.run_for(Duration::from_millis(100));
        if view(&sim, 3).contains(&7) && view(&sim, 7).contains(&3) {
            repaired_at = Some(sim.now());
            break;
        }
    }
    let at = repaired_at.expect("3 and 7 never learned of each other");
    // Each member syncs every 5 s (jittered) with a random member that
    // knows the other: the first exchanges repair it.
    assert!(at <= Duration::from_secs(15), "repaired only at {at:?}");
    assert!(all_see(&sim, &(1..=N).collect::<Vec<_>>()));
}

#[test]
fn without_sync_the_gap_stays() {
    // The control for the test above: nothing else repairs this gap.
    let mut sim = cluster(false);
    sim.run_for(Duration::from_secs(60));
    assert!(!view(&sim, 3).contains(&7));
    assert!(!view(&sim, 7).contains(&3));
}

#[test]
fn members_in_sync_send_summaries_only() {
    // Same cluster without the gap: every exchange is one datagram.
    let run = |sync: bool| {
        let mut sim = TestSim::new(5);
        for a in 1..=N {
            let mut ep = member(&mut sim, a, 1, config(sync));
            let others = (1..=N).filter(|&b| b != a).map(|b| Member::alive(id(b), 0));
            ep.command(sim.now(), Command::Restore(others.collect()))
                .unwrap();
            sim.add(ep);
        }
        sim.run_for(Duration::from_secs(100));
        sim.stats().sent
    };
    let (with, without) = (run(true), run(false));
    let extra = with - without;
    // About one summary per member per 5 s, nothing answered; with the
    // jitter of the first timer, at most 21 each.
    assert!(extra > u64::from(N) * 15, "{extra} extra datagrams");
    assert!(extra <= u64::from(N) * 21, "{extra} extra datagrams");
}

/// A `Sync` from member 2 to member 1 whose summary has `buckets` sums,
/// all zero.
fn summary_datagram(buckets: usize) -> Vec<u8> {
    use foca_core::testing::TestCodec;
    use foca_core::{Codec, Header, Message};
    let mut datagram = Vec::new();
    TestCodec
        .encode_header(
            &Header {
                src: id(2),
                src_incarnation: 0,
                dst: id(1),
                message: Message::Sync { reply: false },
            },
            &mut datagram,
        )
        .unwrap();
    datagram.extend_from_slice(&u16::try_from(buckets).unwrap().to_be_bytes());
    datagram.extend(std::iter::repeat_n(0u8, 2 * buckets)); // all sums zero
    datagram.extend_from_slice(&[0, 0, 0, 0, 0]); // no updates or findings, no broadcasts
    // Padded as members pad requests, so the answer may be a full datagram.
    foca_core::wire::pad(
        &mut datagram,
        Config::new_lan(N as usize).max_packet_size.div_ceil(3),
    );
    datagram
}

/// Member 1 of `N`, knowing the others.
fn lone_member(sim: &mut TestSim) -> TestEndpoint {
    let mut ep = member(sim, 1, 1, config(true));
    let others = (2..=N).map(|b| Member::alive(id(b), 0));
    ep.command(sim.now(), Command::Restore(others.collect()))
        .unwrap();
    while ep.poll_transmit().is_some() {}
    ep
}

#[test]
fn a_summary_of_another_shape_gets_a_sample() {
    // 8 buckets where this member has 16 (another config): nothing to
    // compare, so it answers as to an announce, with one feed.
    let mut sim = TestSim::new(3);
    let mut ep = lone_member(&mut sim);
    ep.handle_datagram(sim.now(), 2, &mut summary_datagram(8))
        .unwrap();
    let sent: Vec<_> = std::iter::from_fn(|| ep.poll_transmit()).collect();
    assert_eq!(sent.len(), 1);
    // A feed of records: far longer than a header and two counts.
    assert!(sent[0].data.len() > 200, "{} bytes", sent[0].data.len());
    // A malformed shape (not a power of two) is refused whole.
    let mut bad = summary_datagram(16);
    // The summary's bucket count comes right after the header.
    let mut input = &bad[..];
    foca_core::Codec::<foca_core::testing::TestId>::decode_header(
        &mut foca_core::testing::TestCodec,
        &mut input,
    )
    .unwrap();
    let at = bad.len() - input.len();
    assert_eq!(bad[at..at + 2], 16u16.to_be_bytes());
    bad[at..at + 2].copy_from_slice(&15u16.to_be_bytes());
    ep.handle_datagram(sim.now(), 2, &mut bad).unwrap();
    assert!(ep.poll_transmit().is_none());
    assert_eq!(ep.foca().metrics().dropped.decode, 1);
}

#[test]
fn a_flood_of_summaries_is_answered_within_a_bound() {
    // A member of 40 that a peer floods with summaries unlike its own.
    let mut sim = TestSim::new(3);
    let mut ep = lone_member(&mut sim);
    let datagram = summary_datagram(1 << 4); // `Config::new_lan(40)`: 16 buckets
    let mut answered = 0;
    for _ in 0..100 {
        ep.handle_datagram(sim.now(), 2, &mut datagram.clone())
            .unwrap();
        while ep.poll_transmit().is_some() {
            answered += 1;
        }
    }
    let m = ep.foca().metrics();
    // Each answer is one datagram (our summary and records); the limit is
    // 8 answers a probe period with this config.
    assert_eq!(answered, 8, "{m:?}");
    assert_eq!(m.syncs_unanswered, 92);
    assert_eq!(m.dropped.total(), 0);
    // The next probe period answers again.
    let later = sim.now() + Duration::from_millis(1500);
    ep.handle_timeouts(later).unwrap();
    while ep.poll_transmit().is_some() {}
    ep.handle_datagram(later, 2, &mut datagram.clone()).unwrap();
    let mut again = 0;
    while ep.poll_transmit().is_some() {
        again += 1;
    }
    assert_eq!(again, 1);
}

#[test]
fn a_member_far_behind_catches_up_in_one_chain_of_exchanges() {
    // 300 members; member 1 restarted from an old table of 10. The others
    // know everyone. With 16 buckets every bucket differs, and one reply
    // holds about 85 records: replies that teach it members it lacked
    // chain another exchange at once, so the first exchange brings all.
    const BIG: u32 = 300;
    let mut sim = TestSim::new(21);
    let config = || Config {
        periodic_sync: Some(PeriodicParams {
            frequency: Duration::from_secs(5),
            num_members: 1,
        }),
        periodic_gossip: None,
        ..Config::new_lan(BIG as usize)
    };
    for a in 1..=BIG {
        let mut ep = member(&mut sim, a, 1, config());
        let known: Vec<u32> = if a == 1 {
            (2..=11).collect()
        } else {
            (1..=BIG).filter(|&b| b != a).collect()
        };
        let table = known.into_iter().map(|b| Member::alive(id(b), 0)).collect();
        ep.command(sim.now(), Command::Restore(table)).unwrap();
        sim.add(ep);
    }
    let mut caught_up = None;
    for _ in 0..100 {
        sim.run_for(Duration::from_millis(100));
        if view(&sim, 1).len() == (BIG - 1) as usize {
            caught_up = Some(sim.now());
            break;
        }
    }
    let at = caught_up.unwrap_or_else(|| panic!("sees {} of {}", view(&sim, 1).len(), BIG - 1));
    // The first exchange comes within 6.25 s (5 s, jittered by 25%).
    assert!(at <= Duration::from_millis(6500), "caught up at {at:?}");
}
