//! Multi-member scenarios on the deterministic simulator: joins, crashes,
//! refuted suspicions, leaves, partitions and recovery, packet loss, restarts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use foca_core::testing::TestId;
use foca_core::{Command, Config, ConnectionState, GenerationalId, Notification, State};

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
        assert_eq!(ep.metrics().dropped_events, 0);
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
    let config = Config::new_lan(n as usize);
    // The suspicion timeout for this cluster size (from the config), plus a
    // few periods: the crashed member must first be probed (the first of
    // the n - 1 probers to get to it; about e/(e-1) periods on average,
    // SWIM §3.1), that probe takes a period to fail, and the verdict then
    // spreads by gossip (every 200 ms).
    let timeout = config.suspicion_timeout(n as usize);
    let bound = timeout + config.probe_period * 5;
    for seed in [21, 22, 23, 24, 25] {
        let mut sim = joined_cluster(seed, n, config.clone());
        sim.run_for(Duration::from_millis(5000 + 137 * seed));
        let before = sim.notifications().len();
        let crashed = 5;
        let crashed_at = sim.now();
        sim.crash(&crashed);
        // Well short of remove_down_after, so the verdicts are still there.
        sim.run_until(crashed_at + bound + Duration::from_secs(1));
        assert!(sim.now() - crashed_at < config.remove_down_after);

        let survivors = others(&all, crashed);
        let found = downs(&sim);
        assert!(
            found.iter().all(|(_, _, s)| *s == crashed),
            "seed {seed}: only the crashed member is reported down: {found:?}"
        );
        let mut observers = BTreeSet::new();
        for (t, o, _) in &found {
            assert!(observers.insert(*o), "seed {seed}: {o} reported it twice");
            let delay = *t - crashed_at;
            // Nobody gives up on it before it had the full timeout to
            // refute, and everybody has given up shortly after.
            assert!(
                delay >= timeout && delay <= bound,
                "seed {seed}: {o} declared it down after {delay:?}, expected {timeout:?}..={bound:?}"
            );
        }
        assert_eq!(observers, survivors.iter().copied().collect());
        // Nothing else happened: one MemberDown per survivor, no other news.
        assert_eq!(sim.notifications().len() - before, survivors.len());
        assert!(all_see(&sim, &survivors));
        for &o in &survivors {
            assert_eq!(record(&sim, o, crashed).map(|r| r.2), Some(State::Down));
            let m = sim.endpoint(&o).unwrap().foca().metrics();
            assert_eq!(m.self_declared_down, 0);
            assert_eq!(incarnation(&sim, o), 0);
        }
        // Somebody's suspicion ran its course.
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
        // Later it is forgotten, with no further news.
        sim.run_for(config.remove_down_after + config.probe_period);
        for &o in &survivors {
            assert_eq!(record(&sim, o, crashed), None);
        }
        assert_eq!(sim.notifications().len() - before, survivors.len());
    }
}

#[test]
fn brief_unreachability_is_suspected_then_refuted() {
    let n = 10u32;
    let all = range(n);
    let config = Config::new_lan(n as usize);
    let mut sim = joined_cluster(31, n, config.clone());
    sim.run_for(Duration::from_secs(3));
    let target = 3;
    let survivors = others(&all, target);
    let timeout = config.suspicion_timeout(n as usize);
    let raised = |sim: &TestSim| -> u64 {
        survivors
            .iter()
            .map(|a| sim.endpoint(a).unwrap().foca().metrics().suspicions_raised)
            .sum()
    };
    let probes_sent = |sim: &TestSim| sim.endpoint(&target).unwrap().foca().metrics().probes_sent;

    // Cut the target off right after its own probe was answered, and
    // restore it just before the indirect stage of its next probe: its own
    // probes all succeed (the next one through helpers), while a probe of
    // it started in the first second of the gap fails, indirect stage
    // included. Not every gap catches a probe of it: repeat until one does.
    let mut gaps = 0;
    let mut saw_suspect = false;
    while raised(&sim) == 0 {
        assert!(gaps < 20, "no probe of the target failed in {gaps} gaps");
        gaps += 1;
        let before = probes_sent(&sim);
        while probes_sent(&sim) == before {
            sim.run_for(MS);
        }
        sim.run_for(5 * MS); // its ack is back
        sim.isolate(&target);
        let gap = config.probe_period + config.probe_rtt - 10 * MS;
        assert!(gap < timeout);
        sim.run_for(gap);
        sim.heal();
        // Let the probes started in the gap conclude.
        for _ in 0..100 {
            sim.run_for(10 * MS);
            saw_suspect |= survivors
                .iter()
                .any(|&o| record(&sim, o, target).is_some_and(|r| r.2 == State::Suspect));
        }
    }
    assert!(saw_suspect, "suspected, yet never seen as Suspect");
    sim.run_for(Duration::from_secs(30));

    let refuted_seen: u64 = survivors
        .iter()
        .map(|a| sim.endpoint(a).unwrap().foca().metrics().suspicions_refuted)
        .sum();
    assert!(refuted_seen > 0, "no survivor saw the suspect come back");
    let m = sim.endpoint(&target).unwrap().foca().metrics();
    assert!(m.self_suspicions_refuted > 0);
    assert_eq!(m.self_declared_down, 0);
    // The gaps were timed right: the target's own probes all succeeded.
    assert_eq!((m.probes_failed, m.suspicions_raised), (0, 0));
    assert!(m.indirect_successes > 0);
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
        let m = sim.endpoint(&o).unwrap().foca().metrics();
        assert_eq!((m.members_declared_down, m.self_declared_down), (0, 0));
        assert_eq!(incarnation(&sim, o), 0, "{o} was never suspected");
    }
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
    sim.with(&leaver, |ep, now| ep.command(now, Command::Leave))
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
        // Forgotten after remove_down_after.
        assert_eq!(record(&sim, o, leaver), None);
    }
    assert!(all_see(&sim, &stayers));
    let ep = sim.endpoint(&leaver).unwrap();
    assert_eq!(ep.foca().connection_state(), ConnectionState::Left);
    // It reported nothing after leaving (no Idle either: it left on purpose).
    assert!(
        sim.notifications()
            .iter()
            .all(|(t, at, _)| *at != leaver || *t < left_at)
    );
}

/// Whether `notes` (about one subject) is `[Up]` or `[Up, Down, Up]` of `s`.
fn up_or_flapped(notes: &[Notification<TestId>], s: u32) -> Option<bool> {
    let up = Notification::MemberUp(id(s));
    let down = Notification::MemberDown(id(s));
    if notes == [up.clone()] {
        Some(false)
    } else if notes == [up.clone(), down, up] {
        Some(true)
    } else {
        None
    }
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
    let healed_at = sim.now();
    sim.heal();
    // No user action from here on.
    let back = |sim: &TestSim| all_see(sim, &all);
    assert!(
        run_until_or(&mut sim, 100 * MS, Duration::from_secs(60), back),
        "not back after {:?}",
        sim.now() - healed_at
    );
    let back_after = sim.now() - healed_at;
    // Its first datagram to a member that has it down is answered with
    // TurnUndead, which it refutes: this takes a probe period or two, not a
    // remove_down_after (after which the others would forget it anyway).
    assert!(back_after <= config.probe_period * 5, "{back_after:?}");
    sim.run_for(Duration::from_secs(30));
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
    // While cut off, the target suspected the others too; its verdicts
    // reaching them after the heal may make some flap once, but each came
    // back by refuting at a higher incarnation, and the cluster is whole.
    for &o in &all {
        for s in others(&all, o).into_iter().filter(|s| *s != target) {
            let flapped = up_or_flapped(&notes_about(&sim, o, s), s)
                .unwrap_or_else(|| panic!("{o} about {s}: {:?}", notes_about(&sim, o, s)));
            if flapped {
                assert!(incarnation(&sim, s) > 0, "{s} is back at incarnation 0");
            }
            assert_eq!(
                record(&sim, o, s),
                Some((1, incarnation(&sim, s), State::Alive))
            );
        }
    }
}

/// Isolates `target` until it has declared every other member down and
/// gone idle. Returns when it went idle.
fn isolate_until_idle(sim: &mut TestSim, target: u32, n: u32) -> Duration {
    sim.isolate(&target);
    let idle = |sim: &TestSim| {
        own_notes(sim, target)
            .iter()
            .any(|(_, n)| *n == Notification::Idle)
    };
    assert!(run_until_or(sim, 100 * MS, Duration::from_secs(60), idle));
    let (idle_at, _) = own_notes(sim, target)
        .into_iter()
        .find(|(_, n)| *n == Notification::Idle)
        .unwrap();
    let ep = sim.endpoint(&target).unwrap();
    assert_eq!(ep.foca().connection_state(), ConnectionState::Disconnected);
    assert_eq!(ep.foca().num_members(), 0);
    // It saw every other member go down, once each.
    for s in others(&range(n), target) {
        assert_eq!(
            notes_about(sim, target, s),
            vec![
                Notification::MemberUp(id(s)),
                Notification::MemberDown(id(s))
            ]
        );
    }
    idle_at
}

/// After a heal: `target` becomes active again by itself, once, and the
/// cluster converges to the full view.
/// `refutes`: whether it must come back at a higher incarnation (the others
/// still had it down), or at its own (they had forgotten it).
fn assert_recovers(sim: &mut TestSim, target: u32, n: u32, config: &Config, refutes: bool) {
    let all = range(n);
    let healed_at = sim.now();
    sim.heal();
    let active = |sim: &TestSim| {
        own_notes(sim, target)
            .iter()
            .any(|(t, n)| *t >= healed_at && *n == Notification::Active)
    };
    // The next recovery attempt comes within the current backoff, at most
    // rejoin_backoff_max with +25% jitter.
    let limit = config.rejoin_backoff_max * 5 / 4 + config.probe_period;
    assert!(
        run_until_or(sim, 100 * MS, limit, active),
        "not active {limit:?} after the heal"
    );
    let back = |sim: &TestSim| all_see(sim, &all);
    assert!(run_until_or(sim, 100 * MS, Duration::from_secs(30), back));
    sim.run_for(Duration::from_secs(20));
    assert!(all_see(sim, &all));
    let own: Vec<_> = own_notes(sim, target)
        .into_iter()
        .filter(|(t, _)| *t >= healed_at)
        .map(|(_, n)| n)
        .collect();
    assert_eq!(own, vec![Notification::Active]);
    assert_eq!(
        sim.endpoint(&target).unwrap().foca().connection_state(),
        ConnectionState::Connected
    );
    assert_eq!(incarnation(sim, target) > 0, refutes);
    for s in others(&all, target) {
        let after: Vec<_> = sim
            .notifications()
            .iter()
            .filter(|(t, at, n)| {
                *t >= healed_at
                    && *at == target
                    && matches!(n, Notification::MemberUp(i) | Notification::MemberDown(i) if *i.address() == s)
            })
            .map(|(_, _, n)| n.clone())
            .collect();
        assert_eq!(after, vec![Notification::MemberUp(id(s))], "about {s}");
        assert_eq!(
            record(sim, s, target),
            Some((1, incarnation(sim, target), State::Alive))
        );
    }
    // Nobody is down anywhere.
    for &o in &all {
        for s in others(&all, o) {
            assert_eq!(record(sim, o, s).map(|r| r.2), Some(State::Alive));
        }
    }
}

#[test]
fn member_that_lost_every_peer_recovers_by_itself() {
    let n = 5u32;
    // Cut off, the member's probes fail with its helpers silent: local
    // health awareness stretches its probe period up to 8x, so it takes
    // about 8 periods per peer to find itself alone. The others must still
    // remember it then (and it them), as this test is about.
    let config = Config {
        remove_down_after: Duration::from_secs(90),
        ..Config::simple()
    };
    let mut sim = joined_cluster(61, n, config.clone());
    sim.run_for(Duration::from_secs(2));
    let target = 2;
    isolate_until_idle(&mut sim, target, n);
    // The others declared it down too, and still remember it.
    for s in others(&range(n), target) {
        assert_eq!(record(&sim, s, target).map(|r| r.2), Some(State::Down));
    }
    assert_recovers(&mut sim, target, n, &config, true);
}

#[test]
fn member_that_lost_every_peer_recovers_after_being_forgotten() {
    let n = 5u32;
    // Cut off, the member's probes fail with its helpers silent: local
    // health awareness stretches its probe period up to 8x, so it takes
    // about 8 periods per peer to find itself alone. The others must still
    // remember it then (and it them), as this test is about.
    let config = Config {
        remove_down_after: Duration::from_secs(90),
        ..Config::simple()
    };
    let mut sim = joined_cluster(62, n, config.clone());
    sim.run_for(Duration::from_secs(2));
    let target = 2;
    let idle_at = isolate_until_idle(&mut sim, target, n);
    // Stay cut off well past remove_down_after: the others forget it, while
    // it keeps the members it knew as contacts (it has nobody else).
    sim.run_until(idle_at + config.remove_down_after * 3);
    for s in others(&range(n), target) {
        assert_eq!(record(&sim, s, target), None, "{s} still remembers it");
    }
    let table: Vec<_> = sim
        .endpoint(&target)
        .unwrap()
        .foca()
        .iter_membership_state()
        .map(|m| m.state())
        .collect();
    assert_eq!(table, vec![State::Down; (n - 1) as usize]);
    assert_recovers(&mut sim, target, n, &config, false);
}

/// Runs a lossy, jittery cluster of `n` for `periods` probe periods, and
/// returns it.
/// A lossy run with SWIM's probe timing (`patient_probes` off, so a lost
/// ping or ack often makes a suspect): the refutation path is exercised.
fn lossy_run(seed: u64, n: u32, loss: f64, periods: u32) -> TestSim {
    let config = Config {
        patient_probes: false,
        ..Config::new_lan(n as usize)
    };
    let mut sim = joined_cluster(seed, n, config.clone());
    sim.set_latency(Duration::from_millis(2), Duration::from_millis(8));
    sim.set_loss(loss);
    sim.run_for(config.probe_period * periods);
    sim
}

fn total(sim: &TestSim, n: u32, f: impl Fn(&foca_core::Metrics) -> u64) -> u64 {
    (1..=n)
        .map(|a| f(&sim.endpoint(&a).unwrap().foca().metrics()))
        .sum()
}

/// Checks, for a lossy run: nobody was ever notified `MemberDown` or told it
/// was down, and every member that refuted a suspicion (its incarnation
/// rose) was never reported down by anyone. Returns (suspicions raised,
/// refutations).
fn assert_no_refuted_member_declared_down(sim: &TestSim, n: u32) -> (u64, u64) {
    let all = range(n);
    assert!(sim.stats().lost > 0);
    for &a in &all {
        let m = sim.endpoint(&a).unwrap().foca().metrics();
        assert_eq!(m.self_declared_down, 0, "member {a} was told it is down");
        assert_eq!(m.members_declared_down, 0, "member {a} declared one down");
        // Each refutation raised the incarnation by exactly one; nothing
        // else raised it.
        assert_eq!(u64::from(incarnation(sim, a)), m.self_suspicions_refuted);
        if incarnation(sim, a) > 0 {
            assert_eq!(
                downs_about(sim, a),
                vec![],
                "{a} refuted, yet was reported down"
            );
        }
    }
    assert!(downs(sim).is_empty(), "{:?}", downs(sim));
    // Nobody ever left anyone's view: each saw each other come up once.
    for &o in &all {
        for s in others(&all, o) {
            assert_eq!(notes_about(sim, o, s), vec![Notification::MemberUp(id(s))]);
        }
    }
    assert!(all_see(sim, &all));
    let raised = total(sim, n, |m| m.suspicions_raised);
    let refuted = total(sim, n, |m| m.self_suspicions_refuted);
    // A refutation answers a suspicion somebody raised (several may raise
    // the same one).
    assert!(refuted <= raised, "refuted {refuted}, raised {raised}");
    (raised, refuted)
}

#[test]
fn refuted_suspicions_are_never_declared_down_under_loss() {
    // Regression: the original foca crate declared members down (and told
    // them so) although they had refuted the suspicion in time.
    let n = 10u32;
    let (mut raised, mut refuted) = (0, 0);
    for seed in [71, 72, 73] {
        let sim = lossy_run(seed, n, 0.05, 500);
        let (r, f) = assert_no_refuted_member_declared_down(&sim, n);
        raised += r;
        refuted += f;
    }
    // The path was exercised: suspicions were raised and refuted.
    assert!(
        raised > 0 && refuted > 0,
        "raised {raised}, refuted {refuted}"
    );
}

#[test]
fn refuted_suspicions_are_never_declared_down_under_heavy_loss() {
    // At 10% loss suspicions are routine (dozens per run) and nearly all are
    // refuted in time. Plain SWIM (no Lifeguard local health yet) still
    // declares a live member down now and then at this loss rate, when its
    // suspicion and its refutation are both lost for a whole timeout: at
    // most 2 in these 50,000 member-periods. Every run without such a
    // verdict gets the strict check: no refuted member reported down.
    let n = 10u32;
    let (mut raised, mut refuted) = (0, 0);
    let mut refuters = 0;
    let mut false_downs = 0;
    for seed in 81..=90 {
        let sim = lossy_run(seed, n, 0.10, 500);
        let downs = total(&sim, n, |m| m.members_declared_down);
        false_downs += downs;
        let (r, f) = if downs == 0 {
            assert_no_refuted_member_declared_down(&sim, n)
        } else {
            (
                total(&sim, n, |m| m.suspicions_raised),
                total(&sim, n, |m| m.self_suspicions_refuted),
            )
        };
        assert!(r >= 10 && f >= 10, "seed {seed}: raised {r}, refuted {f}");
        raised += r;
        refuted += f;
        refuters += range(n)
            .into_iter()
            .filter(|a| incarnation(&sim, *a) > 0)
            .count();
    }
    assert!(false_downs <= 2, "{false_downs} live members declared down");
    assert!(raised >= 200, "raised {raised}, refuted {refuted}");
    assert!(refuters >= 50, "only {refuters} members refuted anything");
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    fn scenario(seed: u64) -> TestSim {
        let n = 6u32;
        let config = Config::new_lan(n as usize);
        let mut sim = joined_cluster(seed, n, config);
        sim.set_latency(Duration::from_millis(2), Duration::from_millis(5));
        sim.set_loss(0.1);
        sim.run_for(Duration::from_secs(20));
        sim.crash(&3);
        sim.run_for(Duration::from_secs(20));
        sim.isolate(&5);
        sim.run_for(Duration::from_secs(15));
        sim.heal();
        sim.with(&2, |ep, now| ep.command(now, Command::Leave))
            .unwrap()
            .unwrap();
        sim.run_for(Duration::from_secs(30));
        sim
    }
    let a = scenario(81);
    let b = scenario(81);
    let c = scenario(82);
    assert!(a.stats().sent > 1000);
    assert_eq!(a.stats(), b.stats());
    assert_eq!(log(&a), log(&b));
    assert_eq!(a.now(), b.now());
    for addr in 1..=6 {
        let (x, y) = (a.endpoint(&addr).unwrap(), b.endpoint(&addr).unwrap());
        assert_eq!(x.foca().metrics(), y.foca().metrics());
        assert_eq!(x.foca().incarnation(), y.foca().incarnation());
    }
    // The run did something worth replaying.
    assert!(log(&a).len() > 30);
    assert!(downs(&a).iter().any(|(_, _, s)| *s == 3));
    assert_ne!(a.stats().digest, c.stats().digest);
    assert_ne!(log(&a), log(&c));
}

#[test]
fn restarted_member_with_new_generation_replaces_the_old_one() {
    let n = 6u32;
    let all = range(n);
    let config = Config::new_lan(n as usize);
    let mut sim = joined_cluster(91, n, config.clone());
    sim.run_for(Duration::from_secs(3));
    let new_id = |k: u32| GenerationalId::new(k, 2);
    let restart = |sim: &mut TestSim, k: u32| {
        sim.crash(&k);
        let ep = member(sim, k, 2, config.clone());
        sim.add(ep);
        sim.with(&k, |ep, now| {
            ep.command(now, Command::Announce(GenerationalId::seed(1)))
        })
        .unwrap()
        .unwrap();
    };
    let converged = |sim: &TestSim| {
        all_see(sim, &all)
            && all.iter().all(|&o| {
                others(&all, o).into_iter().all(|s| {
                    record(sim, o, s).is_some_and(|r| r.0 == if s == 4 || s == 6 { 2 } else { 1 })
                })
            })
    };

    // Member 4 restarts at once: the others still have its old identity
    // active, and rename it.
    restart(&mut sim, 4);
    let restarted_at = sim.now();
    // Member 6 crashes, is declared down, and only then restarts. The new
    // member 4 may hear of 6 only once 6 is gone: it checks, gets no
    // answer, and never lists it.
    sim.crash(&6);
    let six_down = |sim: &TestSim| {
        let seen: BTreeSet<u32> = downs_about(sim, 6).into_iter().map(|(_, o)| o).collect();
        [1, 2, 3, 5].iter().all(|o| seen.contains(o)) && !view(sim, 4).contains(&6)
    };
    assert!(run_until_or(
        &mut sim,
        100 * MS,
        Duration::from_secs(30),
        six_down
    ));
    restart(&mut sim, 6);
    let restarted6_at = sim.now();
    assert!(
        run_until_or(&mut sim, 100 * MS, Duration::from_secs(30), converged),
        "did not converge"
    );
    sim.run_for(Duration::from_secs(20));
    assert!(converged(&sim));

    for &o in &all {
        if o == 4 || o == 6 {
            continue;
        }
        // 4: renamed, never reported down or left.
        assert_eq!(
            notes_about(&sim, o, 4),
            vec![
                Notification::MemberUp(id(4)),
                Notification::Rename(id(4), new_id(4))
            ],
            "observer {o}"
        );
        // 6: down, then up under its new identity.
        assert_eq!(
            notes_about(&sim, o, 6),
            vec![
                Notification::MemberUp(id(6)),
                Notification::MemberDown(id(6)),
                Notification::MemberUp(new_id(6))
            ],
            "observer {o}"
        );
        let renamed_at = sim
            .notifications()
            .iter()
            .find(|(_, at, x)| *at == o && matches!(x, Notification::Rename(..)))
            .unwrap()
            .0;
        // Infection-style: each member passes the news on only
        // `max_transmissions(6)` = 4 times, so one member can be missed for
        // a few periods (seen: 3.1 s for one observer with seed 91).
        assert!(
            renamed_at - restarted_at <= config.probe_period * 5,
            "observer {o}: renamed after {:?}",
            renamed_at - restarted_at
        );
        let up_at = sim
            .notifications()
            .iter()
            .filter(|(_, at, x)| *at == o && *x == Notification::MemberUp(new_id(6)))
            .map(|(t, _, _)| *t)
            .next()
            .unwrap();
        assert!(up_at - restarted6_at <= config.probe_period * 3);
    }
    // The restarted members learned everyone once, under current identities,
    // and nothing about their former selves.
    for k in [4, 6] {
        for s in others(&all, k) {
            let expected = if s == 4 || s == 6 { new_id(s) } else { id(s) };
            let notes: Vec<_> = sim
                .notifications()
                .iter()
                .filter(|(t, at, _)| *at == k && *t >= restarted_at)
                .filter(|(_, _, x)| matches!(x, Notification::MemberUp(i) | Notification::MemberDown(i) | Notification::MemberLeft(i) if *i.address() == s))
                .map(|(_, _, x)| x.clone())
                .collect();
            // 4 came back as 6 crashed: it heard of the old 6 from others,
            // checked it, got no answer, and never listed it.
            let expected = vec![Notification::MemberUp(expected)];
            assert_eq!(notes, expected, "{k} about {s}");
        }
        assert_eq!(incarnation(&sim, k), 0);
    }
    // Nobody else was disturbed.
    for (_, o, s) in downs(&sim) {
        assert_eq!(s, 6, "{o} declared {s} down");
    }
}

#[test]
fn a_datagram_carries_each_update_once() {
    // Regression: piggybacking filled the updates twice when there were no
    // custom broadcasts, so every update went twice in each datagram and
    // used up its transmissions at twice the rate (it reached half as many
    // members). Seen in the runs above as suspects never told in time.
    use foca_core::{Codec, Member, testing::TestCodec};
    let config = Config::simple();
    let mut sim = TestSim::new(1);
    let mut a = member(&mut sim, 1, 1, config.clone());
    let now = Duration::ZERO;
    let news: Vec<_> = (2..=6).map(|k| Member::alive(id(k), 0)).collect();
    a.command(now, Command::Apply(news)).unwrap();
    let limit = config.max_transmissions(6) as usize;
    let mut sent: BTreeMap<u32, usize> = BTreeMap::new();
    let mut datagrams = 0;
    while a.foca().updates_backlog() > 0 {
        assert!(datagrams < 100);
        // Announce is an ordinary piggybacking message.
        a.command(now, Command::Announce(id(2))).unwrap();
        while let Some(t) = a.poll_transmit() {
            datagrams += 1;
            let mut input = &t.data[..];
            TestCodec.decode_header(&mut input).unwrap();
            let (count, rest) = input.split_at(2);
            let count = u16::from_be_bytes([count[0], count[1]]);
            assert_eq!(rest[0], 0, "no findings in a request");
            input = &rest[1..];
            let mut here = BTreeSet::new();
            for _ in 0..count {
                let m = TestCodec.decode_member(&mut input).unwrap();
                assert!(
                    here.insert(*m.id().address()),
                    "{m:?} twice in one datagram"
                );
                *sent.entry(*m.id().address()).or_default() += 1;
            }
            assert_eq!(input[..2], [0, 0], "no custom broadcasts follow");
            let (len, zeros) = input[2..].split_first_chunk::<2>().unwrap();
            assert!(zeros.iter().all(|b| *b == 0), "then padding");
            assert_eq!(usize::from(u16::from_be_bytes(*len)), zeros.len());
            assert_eq!(t.data.len(), config.max_packet_size.div_ceil(3));
        }
    }
    assert_eq!(sent, (2..=6).map(|k| (k, limit)).collect());
    assert_eq!(datagrams, limit);
}
