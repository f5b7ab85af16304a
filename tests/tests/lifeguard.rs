//! Lifeguard's acceptance figures on the simulator, with Lifeguard on and,
//! side by side, off (`Params::lifeguard`: plain SWIM timing and a fixed
//! suspicion timeout). Each run is seeded: the figures are the same on
//! every machine. Reproduce one with
//! `cargo run --release -p foca-examples --example simulate -- --scenario
//! loss --members 100 --periods 500 --loss 0.1 --lifeguard on`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use foca_examples::scenario::{self, Params, Report, Scenario};

fn run(scenario: Scenario, members: u32, loss: f64, periods: u32, lifeguard: bool) -> Report {
    let params = Params {
        seed: 1,
        loss,
        periods: Some(periods),
        lifeguard,
        ..Params::new(scenario, members)
    };
    scenario::run(&params, &mut |_, _| {}).unwrap()
}

#[test]
fn under_loss_no_false_downs_and_traffic_within_bounds() {
    // 100 members, 500 periods. Traffic: every datagram, probes included.
    for (loss, datagrams, false_downs) in [(0.05, 3.5, 0), (0.10, 5.0, 0), (0.20, 8.0, 1)] {
        let on = run(Scenario::Loss, 100, loss, 500, true);
        let off = run(Scenario::Loss, 100, loss, 500, false);
        println!(
            "loss {loss}: on {} false downs, {:.2} datagrams/member/period, {} suspicions; \
             off {} false downs, {:.2}, {}",
            on.false_positives,
            on.datagrams_per_member_per_period,
            on.suspicions_raised,
            off.false_positives,
            off.datagrams_per_member_per_period,
            off.suspicions_raised,
        );
        assert!(on.false_positives <= false_downs, "loss {loss}: {on:?}");
        assert!(
            on.datagrams_per_member_per_period <= datagrams,
            "loss {loss}: {} datagrams",
            on.datagrams_per_member_per_period
        );
        assert!(on.false_positives <= off.false_positives, "loss {loss}");
    }
}

#[test]
fn slow_members_cause_no_false_downs_and_crashes_are_found_as_fast() {
    // 500 members, one in ten handling its input (and its timers) 1.5
    // probe RTTs late, under 5% loss. Off: each lost ping or ack to a slow
    // member makes it a suspect, since helpers asked after the probe RTT
    // cannot get its answer back within the period. On (patient probes): a
    // second ping at half the probe RTT and a verdict at the next probe's
    // probe RTT give its answer time.
    let on = run(Scenario::Slow, 500, 0.05, 500, true);
    let off = run(Scenario::Slow, 500, 0.05, 500, false);
    println!(
        "slow: on {} false downs, {} false suspicions; off {} and {}",
        on.false_positives,
        on.false_suspicions.unwrap_or(0),
        off.false_positives,
        off.false_suspicions.unwrap_or(0)
    );
    assert_eq!(on.false_positives, 0);
    assert!(on.false_positives < off.false_positives);
    let (on_s, off_s) = (
        on.false_suspicions.expect("counted"),
        off.false_suspicions.expect("counted"),
    );
    assert!(on_s * 10 <= off_s, "{on_s} vs {off_s}: not 10× fewer");
    // Crash detection: confirmations bring a real crash's suspicion down
    // to the shortest timeout, so it is at most 20% slower than a fixed
    // one.
    let periods = 60;
    let on = run(Scenario::Crash, 500, 0.0, periods, true);
    let off = run(Scenario::Crash, 500, 0.0, periods, false);
    let (on_p50, off_p50) = (
        on.detection_all_p50_periods.expect("detected"),
        off.detection_all_p50_periods.expect("detected"),
    );
    println!("crash p50: on {on_p50:.2} periods, off {off_p50:.2}");
    assert!(on_p50 <= off_p50 * 1.2, "{on_p50} vs {off_p50}");
}

#[test]
fn a_hundred_broadcasts_reach_a_thousand_members_while_a_tenth_crash() {
    let r = run(Scenario::BroadcastsChurn, 1000, 0.0, 30, true);
    let all = r
        .dissemination_all_max_periods
        .expect("every running member got every broadcast");
    let bound = 2.0 * f64::from(1000u32).log2() + 10.0;
    println!("100 broadcasts, 1000 members, 10% crashed: all after {all:.2} periods");
    assert!(all <= bound, "{all} periods (bound {bound:.1})");
}
