//! A flood of flapping news cannot fill a member's timers: each member of
//! the table has one slot per kind, replaced as its record changes, so
//! pending deadlines stay within two per member plus the protocol's chains,
//! and a real member that crashes afterwards is still declared down in
//! time. (Before timers had slots, every Left queued a removal timer that
//! stayed until it fired; past a bound new ones were refused, and a crashed
//! member stayed suspect.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use foca_core::testing::{TestCodec, TestId};
use foca_core::wire::Writer;
use foca_core::{Config, GenerationalId, Header, Member, Message, Notification, State};

const FLOOD: u32 = 10_000;

/// A gossip from member 2 to member 1 carrying `news`.
fn gossip(news: &[Member<TestId>]) -> Vec<u8> {
    let header = Header {
        src: id(2),
        src_incarnation: 0,
        dst: id(1),
        message: Message::Gossip,
    };
    let mut buf = Vec::new();
    let mut w = Writer::new(&mut buf, 1400, &mut TestCodec, &header, &[]).unwrap();
    for m in news {
        assert!(w.push_update(&mut TestCodec, m).unwrap());
    }
    w.finish(0, &[]);
    buf
}

/// The `k`-th flap of the fake member at `addr`: it left, came back at the
/// next incarnation, and left again.
fn flap(addr: u32, k: u32) -> Vec<Member<TestId>> {
    let fake = GenerationalId::new(addr, 1);
    vec![
        Member::new(fake, 2 * k, State::Left),
        Member::alive(fake, 2 * k + 1),
        Member::new(fake, 2 * k + 1, State::Left),
    ]
}

/// Members 1 and 2 (and 3), joined; member 2 sends member 1 `FLOOD`
/// datagrams of flapping news about `fakes` addresses (from 1000 on), then
/// crashes. Checks the bound on member 1's timers throughout, and that it
/// declares member 2 down within the suspicion timeout plus 3 periods.
fn flood_then_crash(fakes: u32) {
    let config = Config {
        max_members: 8192,
        ..Config::simple()
    };
    let mut sim = TestSim::new(u64::from(fakes));
    for addr in 1..=3 {
        let ep = member(&mut sim, addr, 1, config.clone());
        sim.add(ep);
    }
    join(&mut sim, 2, 1);
    join(&mut sim, 3, 1);
    sim.run_for(Duration::from_secs(5));
    assert!(all_see(&sim, &[1, 2, 3]));

    let mut worst = 0.0f64;
    for i in 0..FLOOD {
        let addr = 1000 + i % fakes;
        let mut datagram = gossip(&flap(addr, i / fakes));
        sim.with(&1, |ep, now| {
            ep.handle_datagram(now, 2, &mut datagram).unwrap();
            let members = ep.foca().iter_membership_state().count();
            let pending = ep.pending_timers();
            assert!(
                pending <= 2 * members + 16,
                "datagram {i}: {pending} deadlines for {members} members"
            );
            worst = worst.max(pending as f64 / members as f64);
        });
    }
    let ep = sim.endpoint(&1).unwrap();
    let members = ep.foca().iter_membership_state().count();
    let fakes_known = members - 2;
    println!(
        "{fakes} fake addresses: {} deadlines pending for {members} members ({fakes_known} fakes, all left); worst ratio {worst:.2}",
        ep.pending_timers()
    );
    assert!(fakes_known >= fakes.min(1000) as usize, "{fakes_known}");
    assert_eq!(ep.foca().num_members(), 2, "every fake ends left");

    let crashed_at = sim.now();
    sim.crash(&2);
    let bound = config.suspicion_timeout(3) + 3 * config.probe_period;
    sim.run_for(bound + Duration::from_secs(1));
    let down = sim.notifications().iter().find_map(|(at, who, n)| {
        (*who == 1 && *n == Notification::MemberDown(id(2))).then_some(*at)
    });
    let took = down.expect("member 1 never declared member 2 down") - crashed_at;
    println!("member 2 declared down {took:?} after its crash (bound {bound:?})");
    assert!(took <= bound, "{took:?} > {bound:?}");
}

#[test]
fn flapping_news_about_one_address_leaves_timers_bounded() {
    flood_then_crash(1);
}

#[test]
fn flapping_news_about_5000_addresses_leaves_timers_bounded() {
    flood_then_crash(5_000);
}
