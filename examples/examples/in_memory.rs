//! A six-member cluster in one process, on the deterministic simulator:
//! members join through a seed, one crashes and is detected, one leaves
//! gracefully, the crashed one restarts and rejoins. Prints a timeline and
//! exits 0 when everything happened as it should.
//!
//! `cargo run -p foca-examples --example in_memory [SEED]`
//!
//! This file is in the public domain (CC0-1.0).

use std::process::ExitCode;
use std::time::Duration;

use foca_codec::{Envelope, PostcardCodec};
use foca_core::sim::Sim;
use foca_core::{Command, Config, Endpoint, Foca, GenerationalId, NoCustomBroadcast, Notification};
use rand::SeedableRng;
use rand::rngs::Xoshiro128PlusPlus;

type Id = GenerationalId<u32>;
type Net = Sim<Id, PostcardCodec<Id>, Xoshiro128PlusPlus, NoCustomBroadcast, Envelope>;

fn start(net: &mut Net, addr: u32, generation: u32) -> Result<(), foca_core::Error> {
    let rng = Xoshiro128PlusPlus::seed_from_u64(net.member_seed());
    let config = Config::new_lan(6);
    let foca = Foca::new(
        GenerationalId::new(addr, generation),
        config,
        rng,
        PostcardCodec::new(),
    )?;
    // Every datagram in its envelope, as on a real network.
    net.add(Endpoint::new(
        foca,
        Envelope::insecure_plaintext(b"in-memory"),
        net.now(),
    )?);
    if addr != 1 {
        let join = Command::Join(vec![GenerationalId::seed(1)]);
        net.with(&addr, |ep, now| ep.command(now, join))
            .unwrap_or(Ok(true))?;
    }
    Ok(())
}

fn views_agree(net: &Net, expected: usize) -> bool {
    net.addrs().iter().filter(|a| net.is_up(a)).all(|a| {
        net.endpoint(a)
            .is_some_and(|ep| ep.foca().num_members() == expected)
    })
}

fn print_new(net: &Net, from: &mut usize) {
    for (at, who, n) in &net.notifications()[*from..] {
        let what = match n {
            Notification::MemberUp(id) => format!("sees {} up", show(id)),
            Notification::MemberDown(id) => format!("sees {} DOWN", show(id)),
            Notification::MemberLeft(id) => format!("sees {} leave", show(id)),
            Notification::Rename(a, b) => format!("sees {} restart as {}", show(a), show(b)),
            Notification::Active => "is connected".into(),
            Notification::Idle => "has no live peer".into(),
            Notification::Rejoin(id) => format!("is now {}", show(id)),
            Notification::Defunct => "is defunct".into(),
        };
        println!("{:>8.1}s  member {who}: {what}", at.as_secs_f64());
    }
    *from = net.notifications().len();
}

fn show(id: &Id) -> String {
    format!("{}#{}", id.address(), id.generation())
}

fn main() -> ExitCode {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let mut net = Net::new(seed);
    net.set_latency(Duration::from_millis(2), Duration::from_millis(3));
    net.set_loss(0.01);
    let mut shown = 0;
    let mut ok = true;
    let mut check = |what: &str, passed: bool| {
        println!(
            "          [{}] {what}",
            if passed { "ok" } else { "FAILED" }
        );
        ok &= passed;
    };

    println!("== six members join through member 1 (1% loss, 2-5 ms latency)");
    for addr in 1..=6 {
        if let Err(e) = start(&mut net, addr, 1) {
            eprintln!("cannot start member {addr}: {e}");
            return ExitCode::FAILURE;
        }
    }
    net.run_for(Duration::from_secs(5));
    print_new(&net, &mut shown);
    check("every member sees the 5 others", views_agree(&net, 5));

    println!("== member 4 crashes");
    net.crash(&4);
    net.run_for(Duration::from_secs(20));
    print_new(&net, &mut shown);
    check("the 5 survivors see 4 others", views_agree(&net, 4));

    println!("== member 5 leaves gracefully");
    let _ = net.with(&5, |ep, now| ep.command(now, Command::Leave));
    net.run_for(Duration::from_secs(5));
    print_new(&net, &mut shown);
    net.crash(&5);
    let left_seen = net
        .notifications()
        .iter()
        .filter(|(_, _, n)| matches!(n, Notification::MemberLeft(id) if *id.address() == 5))
        .count();
    check("the 4 others saw member 5 leave (not fail)", left_seen == 4);

    println!("== member 4 restarts with a new generation");
    if let Err(e) = start(&mut net, 4, 2) {
        eprintln!("cannot restart member 4: {e}");
        return ExitCode::FAILURE;
    }
    net.run_for(Duration::from_secs(10));
    print_new(&net, &mut shown);
    check("members 1, 2, 3, 4, 6 see each other", views_agree(&net, 4));

    let stats = net.stats();
    println!(
        "== {} datagrams ({} bytes) sent, {} lost, in {:.0}s of virtual time",
        stats.sent,
        stats.bytes,
        stats.lost,
        net.now().as_secs_f64()
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
