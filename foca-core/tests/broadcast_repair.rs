//! Custom broadcasts missed while cut off are repaired by the periodic sync
//! (see `Config::periodic_sync`), and only by it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use foca_core::sim::Sim;
use foca_core::testing::{NewsOnce, NoEnvelope, TestCodec, TestId};
use foca_core::{Command, Config, Endpoint, Foca, GenerationalId, PeriodicParams};
use rand::SeedableRng;
use rand::rngs::Xoshiro128PlusPlus;

type Ep = Endpoint<TestId, TestCodec, Xoshiro128PlusPlus, NewsOnce, NoEnvelope>;
type NewsSim = Sim<TestId, TestCodec, Xoshiro128PlusPlus, NewsOnce, NoEnvelope>;

const N: u32 = 5;
const SYNC: Duration = Duration::from_secs(3);

fn config(sync: bool) -> Config {
    Config {
        periodic_sync: sync.then_some(PeriodicParams {
            frequency: SYNC,
            num_members: 1,
        }),
        ..Config::new_lan(N as usize)
    }
}

/// `N` members that know each other (joined through member 1).
fn cluster(seed: u64, sync: bool) -> NewsSim {
    let mut sim = NewsSim::new(seed);
    for addr in 1..=N {
        let rng = Xoshiro128PlusPlus::seed_from_u64(sim.member_seed());
        let id = GenerationalId::new(addr, 1);
        let foca =
            Foca::with_custom_broadcast(id, config(sync), rng, TestCodec, NewsOnce::default())
                .unwrap();
        let mut ep: Ep = Endpoint::new(foca, NoEnvelope, sim.now()).unwrap();
        if addr > 1 {
            let seeds = vec![GenerationalId::seed(1)];
            ep.command(sim.now(), Command::Join(seeds)).unwrap();
        }
        sim.add(ep);
    }
    sim.run_for(Duration::from_secs(10));
    for addr in 1..=N {
        let known = sim.endpoint(&addr).unwrap().foca().num_members();
        assert_eq!(known, N as usize - 1, "member {addr} did not join");
    }
    sim
}

fn has(sim: &NewsSim, addr: u32, item: &[u8]) -> bool {
    let handler = sim.endpoint(&addr).unwrap().foca().broadcast_handler();
    handler.seen.contains(item)
}

/// Member 5 is cut off for 2 s (less than a suspicion: nobody marks it
/// down) while member 1 broadcasts. Everyone else gets the item and, since
/// member 5 is the only one not holding it, sends it there: all lost. Then
/// the link heals. Returns when member 5 got the item, if it did within
/// `wait`.
fn missed_while_cut_off(seed: u64, sync: bool, wait: Duration) -> Option<Duration> {
    let mut sim = cluster(seed, sync);
    sim.isolate(&5);
    sim.with(&1, |ep, now| {
        ep.command(now, Command::AddBroadcast(b"news".to_vec()))
            .unwrap()
    });
    sim.run_for(Duration::from_secs(2));
    for addr in 1..N {
        assert!(has(&sim, addr, b"news"), "member {addr} lacks it");
        let backlog = sim
            .endpoint(&addr)
            .unwrap()
            .foca()
            .custom_broadcast_backlog();
        assert_eq!(backlog, 0, "member {addr} still sends it");
    }
    assert!(!has(&sim, 5, b"news"));
    sim.heal();
    let healed = sim.now();
    while sim.now() < healed + wait {
        sim.run_for(Duration::from_millis(100));
        if has(&sim, 5, b"news") {
            return Some(sim.now() - healed);
        }
    }
    None
}

#[test]
fn a_broadcast_missed_while_cut_off_comes_with_the_next_sync() {
    for seed in 1..=10 {
        let took = missed_while_cut_off(seed, true, 4 * SYNC);
        // Member 5 asks a random member at its next sync (at most one
        // interval, jittered), and the answer carries the item; members
        // asking member 5 push it too.
        let took = took.unwrap_or_else(|| panic!("seed {seed}: never repaired"));
        assert!(
            took <= SYNC + SYNC / 2,
            "seed {seed}: repaired after {took:?}"
        );
    }
}

#[test]
fn without_sync_a_broadcast_missed_while_cut_off_stays_missed() {
    // The control: nothing else sends an item again once its transmissions
    // are spent.
    for seed in 1..=3 {
        assert_eq!(
            missed_while_cut_off(seed, false, 60 * SYNC),
            None,
            "seed {seed}"
        );
    }
}

#[test]
fn kept_items_ride_on_syncs_for_a_bounded_time() {
    let mut sim = cluster(7, true);
    sim.with(&1, |ep, now| {
        ep.command(now, Command::AddBroadcast(b"news".to_vec()))
            .unwrap()
    });
    sim.run_for(Duration::from_secs(2));
    let kept = |sim: &NewsSim| {
        (1..=N)
            .map(|a| sim.endpoint(&a).unwrap().foca().metrics().broadcasts_kept)
            .sum::<u64>()
    };
    assert_eq!(kept(&sim), u64::from(N), "every member keeps it");
    // Four syncs each, then it is gone everywhere.
    sim.run_for(SYNC * 6);
    assert_eq!(kept(&sim), 0);
}
