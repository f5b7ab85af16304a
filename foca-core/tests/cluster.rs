//! Multi-member scenarios on the deterministic simulator: joins, crashes,
//! refuted suspicions, leaves, partitions and recovery, packet loss, restarts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use foca_core::testing::TestId;
use foca_core::{Config, ConnectionState, GenerationalId, Notification, State};

const MS: Duration = Duration::from_millis(1);

/// Every notification in the log, as `(time, observer, notification)`.
fn log(sim: &TestSim) -> Vec<(Duration, u32, Notification<TestId>)> {
    sim.notifications().to_vec()
}

/// `(time, observer, subject)` of every `MemberDown` in the log.
fn downs(sim: &TestSim) -> Vec<(Duration, u32, u32)> {
    sim.notifications()
        .iter()
        .filter_map(|(t, at, n)| match n {
            Notification::MemberDown(id) => Some((*t, *at, *id.address())),
            _ => None,
        })
        .collect()
}

/// `MemberDown`s about `subject`, as `(time, observer)`.
fn downs_about(sim: &TestSim, subject: u32) -> Vec<(Duration, u32)> {
    downs(sim)
        .into_iter()
        .filter(|(_, _, s)| *s == subject)
        .map(|(t, o, _)| (t, o))
        .collect()
}

/// Notifications `observer` got that are about itself (`Active`, `Idle`,
/// `Rejoin`, `Defunct`), with their times.
fn own_notes(sim: &TestSim, observer: u32) -> Vec<(Duration, Notification<TestId>)> {
    sim.notifications()
        .iter()
        .filter(|(_, at, n)| {
            *at == observer
                && matches!(
                    n,
                    Notification::Active
                        | Notification::Idle
                        | Notification::Rejoin(_)
                        | Notification::Defunct
                )
        })
        .map(|(t, _, n)| (*t, n.clone()))
        .collect()
}

/// Runs in `step`s until `done` holds or `limit` has passed; returns whether
/// it holds.
fn run_until_or(
    sim: &mut TestSim,
    step: Duration,
    limit: Duration,
    mut done: impl FnMut(&TestSim) -> bool,
) -> bool {
    let deadline = sim.now() + limit;
    while !done(sim) {
        if sim.now() >= deadline {
            return false;
        }
        sim.run_for(step);
    }
    true
}

/// What `observer` records about `subject`: `(generation, incarnation, state)`.
fn record(sim: &TestSim, observer: u32, subject: u32) -> Option<(u32, u32, State)> {
    sim.endpoint(&observer)
        .unwrap()
        .foca()
        .member(&subject)
        .map(|m| (m.id().generation(), m.incarnation(), m.state()))
}

fn incarnation(sim: &TestSim, addr: u32) -> u32 {
    sim.endpoint(&addr).unwrap().foca().incarnation()
}

fn others(all: &[u32], me: u32) -> Vec<u32> {
    all.iter().copied().filter(|a| *a != me).collect()
}

fn range(n: u32) -> Vec<u32> {
    (1..=n).collect()
}

#[test]
fn ten_members_join_through_one_seed() {
    let n = 10;
    let all = range(n);
    let mut sim = joined_cluster(11, n, Config::simple());
    let converged_at = sim.now();
    // Converging through one seed with plain SWIM takes a few periods, not
    // the whole minute `joined_cluster` allows.
    assert!(
        converged_at <= Duration::from_secs(10),
        "took {converged_at:?}"
    );
    // Then a quiet stretch: nothing may change.
    sim.run_for(Duration::from_secs(30));
    assert!(all_see(&sim, &all));

    for &o in &all {
        for s in others(&all, o) {
            assert_eq!(
                notes_about(&sim, o, s),
                vec![Notification::MemberUp(id(s))],
                "{o} about {s}"
            );
            assert_eq!(record(&sim, o, s), Some((1, 0, State::Alive)));
        }
        // Became active once (on its first peer) and never idle.
        let own: Vec<_> = own_notes(&sim, o).into_iter().map(|(_, n)| n).collect();
        assert_eq!(own, vec![Notification::Active], "member {o}");
        let ep = sim.endpoint(&o).unwrap();
        assert_eq!(ep.foca().connection_state(), ConnectionState::Connected);
        assert_eq!(ep.foca().incarnation(), 0, "nobody had to refute anything");
        assert_eq!(ep.foca().metrics().suspicions_raised, 0, "member {o}");
        assert_eq!(ep.dropped_notifications(), 0);
    }
    assert!(downs(&sim).is_empty());
    // Only membership and connection news was emitted.
    assert_eq!(
        sim.notifications().len(),
        (n * (n - 1) + n) as usize,
        "{:?}",
        sim.notifications()
    );
}

#[test]
fn crashed_member_is_declared_down_by_everyone_in_time() {
    let n = 8u32;
    let all = range(n);
    let config = Config::simple();
    let mut sim = joined_cluster(21, n, config.clone());
    sim.run_for(Duration::from_secs(5));
    let before = sim.notifications().len();
    let crashed = 5;
    let crashed_at = sim.now();
    sim.crash(&crashed);

    // The suspicion timeout for this cluster size, plus a few periods: up to
    // two to detect (a probe of it may have been sent just before the crash,
    // and the failing probe concludes one period after it starts) and two to
    // disseminate the verdict.
    let timeout = config.suspicion_timeout(n as usize);
    let bound = timeout + config.probe_period * 4;
    sim.run_for(bound + Duration::from_secs(10));

    let survivors = others(&all, crashed);
    let found = downs(&sim);
    assert!(
        found.iter().all(|(_, _, s)| *s == crashed),
        "only the crashed member is reported down: {found:?}"
    );
    let mut observers = BTreeSet::new();
    for (t, o, _) in &found {
        assert!(observers.insert(*o), "{o} reported it down twice");
        let delay = *t - crashed_at;
        // Nobody gives up on it before it had the full timeout to refute...
        assert!(delay >= timeout, "{o} declared it down after {delay:?}");
        // ...and everybody has given up shortly after.
        assert!(delay <= bound, "{o} declared it down after {delay:?}");
    }
    assert_eq!(observers, survivors.iter().copied().collect());
    // Nothing else happened: one MemberDown per survivor, no other news.
    assert_eq!(sim.notifications().len() - before, survivors.len());
    assert!(all_see(&sim, &survivors));
    for &o in &survivors {
        assert_eq!(record(&sim, o, crashed).map(|r| r.2), Some(State::Down));
    }
    // Somebody's suspicion ran its course; the others may have heard.
    let declared: u64 = survivors
        .iter()
        .map(|a| {
            sim.endpoint(a)
                .unwrap()
                .foca()
                .metrics()
                .members_declared_down
        })
        .sum();
    assert!(declared >= 1);
}

#[test]
fn brief_unreachability_is_suspected_then_refuted() {
    let n = 8u32;
    let all = range(n);
    let config = Config::simple();
    let mut sim = joined_cluster(31, n, config.clone());
    sim.run_for(Duration::from_secs(3));
    let target = 3;
    let survivors = others(&all, target);
    assert_eq!(incarnation(&sim, target), 0);

    // Everything the target sends is lost: it hears probes (and the news of
    // its suspicion) but its acks never arrive.
    for &o in &survivors {
        sim.block(target, o);
    }
    let blocked_at = sim.now();
    let suspected = |sim: &TestSim| {
        survivors
            .iter()
            .any(|&o| record(sim, o, target).is_some_and(|r| r.2 == State::Suspect))
    };
    assert!(
        run_until_or(&mut sim, 20 * MS, Duration::from_secs(20), suspected),
        "nobody suspected the unreachable member"
    );
    // Heal well before anyone's suspicion could run out.
    let healed_at = sim.now();
    let timeout = config.suspicion_timeout(n as usize);
    assert!(healed_at - blocked_at < Duration::from_secs(20));
    sim.heal();
    sim.run_for(Duration::from_secs(20));

    let raised: u64 = survivors
        .iter()
        .map(|a| sim.endpoint(a).unwrap().foca().metrics().suspicions_raised)
        .sum();
    assert!(raised > 0);
    let refuted_seen: u64 = survivors
        .iter()
        .map(|a| sim.endpoint(a).unwrap().foca().metrics().suspicions_refuted)
        .sum();
    assert!(refuted_seen > 0, "no survivor saw the suspect come back");
    let m = sim.endpoint(&target).unwrap().foca().metrics();
    assert!(m.self_suspicions_refuted > 0);
    assert_eq!(m.self_declared_down, 0);
    let inc = incarnation(&sim, target);
    assert!(inc > 0, "the target never raised its incarnation");

    assert!(
        downs(&sim).is_empty(),
        "nobody is declared down: {:?}",
        downs(&sim)
    );
    assert!(all_see(&sim, &all));
    for &o in &survivors {
        assert_eq!(record(&sim, o, target), Some((1, inc, State::Alive)));
        assert_eq!(
            notes_about(&sim, o, target),
            vec![Notification::MemberUp(id(target))]
        );
        assert_eq!(
            sim.endpoint(&o)
                .unwrap()
                .foca()
                .metrics()
                .members_declared_down,
            0
        );
    }
    // The first suspicion was raised while the target was cut off, less than
    // a timeout before the heal.
    assert!(healed_at - blocked_at < timeout + config.probe_period * 2);
}

#[test]
fn graceful_leave_is_reported_as_left() {
    let n = 6u32;
    let all = range(n);
    let config = Config::simple();
    let mut sim = joined_cluster(41, n, config.clone());
    sim.run_for(Duration::from_secs(2));
    let leaver = 4;
    let stayers = others(&all, leaver);
    let left_at = sim.now();
    sim.with(&leaver, |ep, now| ep.leave_cluster(now))
        .unwrap()
        .unwrap();
    assert_eq!(
        sim.endpoint(&leaver).unwrap().foca().connection_state(),
        ConnectionState::Left
    );
    // Longer than remove_down_after, so that forgetting it is covered too.
    sim.run_for(config.remove_down_after + Duration::from_secs(10));

    assert!(downs(&sim).is_empty(), "{:?}", downs(&sim));
    for &o in &stayers {
        assert_eq!(
            notes_about(&sim, o, leaver),
            vec![
                Notification::MemberUp(id(leaver)),
                Notification::MemberLeft(id(leaver))
            ],
            "observer {o}"
        );
        let (t, _, _) = sim
            .notifications()
            .iter()
            .find(|(_, at, n)| *at == o && *n == Notification::MemberLeft(id(leaver)))
            .unwrap();
        // Told at once to a few members, then piggybacked: fast.
        assert!(
            *t - left_at <= config.probe_period * 3,
            "{o}: {:?}",
            *t - left_at
        );
        assert!(!view(&sim, o).contains(&leaver));
    }
    assert!(all_see(&sim, &stayers));
    let ep = sim.endpoint(&leaver).unwrap();
    assert_eq!(ep.foca().connection_state(), ConnectionState::Left);
    // Its own view is frozen, and it reported nothing after leaving.
    assert!(
        sim.notifications()
            .iter()
            .all(|(t, at, _)| *at != leaver || *t < left_at)
    );
}

#[test]
fn member_declared_down_rejoins_by_itself_at_higher_incarnation() {
    let n = 6u32;
    let all = range(n);
    let config = Config::simple();
    let mut sim = joined_cluster(51, n, config.clone());
    sim.run_for(Duration::from_secs(2));
    let target = 5;
    let rest = others(&all, target);
    sim.isolate(&target);
    let everyone_declared = |sim: &TestSim| downs_about(sim, target).len() == rest.len();
    assert!(run_until_or(
        &mut sim,
        100 * MS,
        Duration::from_secs(30),
        everyone_declared
    ));
    let declared_at = sim.now();
    sim.heal();
    // No user action from here on.
    let back = |sim: &TestSim| all_see(sim, &all);
    assert!(
        run_until_or(&mut sim, 100 * MS, Duration::from_secs(60), back),
        "not back after {:?}",
        sim.now() - declared_at
    );
    let back_after = sim.now() - declared_at;
    sim.run_for(Duration::from_secs(10));
    assert!(all_see(&sim, &all));

    let inc = incarnation(&sim, target);
    assert!(inc > 0, "it came back at its old incarnation");
    for &o in &rest {
        assert_eq!(
            notes_about(&sim, o, target),
            vec![
                Notification::MemberUp(id(target)),
                Notification::MemberDown(id(target)),
                Notification::MemberUp(id(target)),
            ],
            "observer {o}"
        );
        assert_eq!(record(&sim, o, target), Some((1, inc, State::Alive)));
    }
    // Only the partition's two sides lost each other: the rest never did.
    for (_, o, s) in downs(&sim) {
        assert!(o == target || s == target, "{o} declared {s} down");
    }
    eprintln!("back after {back_after:?}");
}
