//! Shared helpers for the multi-member tests: a simulator of `TestId`
//! members with the test codec and seeded RNGs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::Duration;

use foca_core::sim::Sim;
use foca_core::testing::{NoEnvelope, TestCodec, TestId};
use foca_core::{Command, Config, Endpoint, Foca, GenerationalId, NoCustomBroadcast, Notification};
use rand::SeedableRng;
use rand::rngs::Xoshiro128PlusPlus;

pub type TestEndpoint =
    Endpoint<TestId, TestCodec, Xoshiro128PlusPlus, NoCustomBroadcast, NoEnvelope>;
pub type TestSim = Sim<TestId, TestCodec, Xoshiro128PlusPlus, NoCustomBroadcast, NoEnvelope>;

pub fn id(addr: u32) -> TestId {
    GenerationalId::new(addr, 1)
}

/// A member with address `addr`, generation `generation`, seeded from the sim.
pub fn member(sim: &mut TestSim, addr: u32, generation: u32, config: Config) -> TestEndpoint {
    let rng = Xoshiro128PlusPlus::seed_from_u64(sim.member_seed());
    let foca = Foca::new(
        GenerationalId::new(addr, generation),
        config,
        rng,
        TestCodec,
    )
    .unwrap();
    Endpoint::new(foca, NoEnvelope, sim.now()).unwrap()
}

/// Joins `addr` through the member at `seed`.
pub fn join(sim: &mut TestSim, addr: u32, seed: u32) {
    sim.with(&addr, |ep, now| {
        ep.command(now, Command::Join(vec![GenerationalId::seed(seed)]))
            .unwrap()
    });
}

/// `n` members (addresses 1..=n), all joined through member 1, run until
/// every member sees every other.
pub fn joined_cluster(seed: u64, n: u32, config: Config) -> TestSim {
    let mut sim = TestSim::new(seed);
    for addr in 1..=n {
        let ep = member(&mut sim, addr, 1, config.clone());
        sim.add(ep);
    }
    for addr in 2..=n {
        join(&mut sim, addr, 1);
    }
    let deadline = sim.now() + Duration::from_secs(60);
    while sim.now() < deadline && !all_see(&sim, &(1..=n).collect::<Vec<_>>()) {
        sim.run_for(Duration::from_millis(100));
    }
    assert!(
        all_see(&sim, &(1..=n).collect::<Vec<_>>()),
        "cluster did not converge"
    );
    sim
}

/// The addresses `addr` considers active.
pub fn view(sim: &TestSim, addr: u32) -> BTreeSet<u32> {
    sim.endpoint(&addr)
        .unwrap()
        .foca()
        .iter_members()
        .map(|m| *m.id().address())
        .collect()
}

/// Whether each of `addrs` sees exactly the others as active.
pub fn all_see(sim: &TestSim, addrs: &[u32]) -> bool {
    addrs.iter().all(|a| {
        let expected: BTreeSet<u32> = addrs.iter().copied().filter(|x| x != a).collect();
        view(sim, *a) == expected
    })
}

/// Notifications that `observer` got about `subject`, in order.
pub fn notes_about(sim: &TestSim, observer: u32, subject: u32) -> Vec<Notification<TestId>> {
    sim.notifications()
        .iter()
        .filter(|(_, at, n)| {
            *at == observer
                && match n {
                    Notification::MemberUp(i)
                    | Notification::MemberDown(i)
                    | Notification::MemberLeft(i) => *i.address() == subject,
                    Notification::Rename(a, b) => {
                        *a.address() == subject || *b.address() == subject
                    }
                    _ => false,
                }
        })
        .map(|(_, _, n)| n.clone())
        .collect()
}
