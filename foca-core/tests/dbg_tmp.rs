#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;
use common::*;
use foca_core::{Config, State};
use std::time::Duration;

#[test]
fn dbg_crash() {
    let mut worst = (0, 0);
    for seed in 0..300u64 {
        let n = 8u32;
        let config = Config::simple();
        let mut sim = joined_cluster(seed, n, config.clone());
        sim.run_for(Duration::from_millis(5000 + seed * 37 % 1000));
        let crashed = 5;
        let t0 = sim.now();
        sim.crash(&crashed);
        let mut first = std::collections::BTreeMap::new();
        for _ in 0..2000 {
            sim.run_for(Duration::from_millis(10));
            for o in 1..=n {
                if o == crashed {
                    continue;
                }
                if let Some(m) = sim.endpoint(&o).unwrap().foca().member(&crashed) {
                    if m.state() == State::Suspect {
                        first.entry(o).or_insert((sim.now() - t0).as_millis());
                    }
                }
            }
        }
        let notes: Vec<_> = sim
            .notifications()
            .iter()
            .filter(|(t, _, _)| *t > t0)
            .map(|(t, o, n)| ((*t - t0).as_millis(), *o, n.clone()))
            .collect();
        let mx = notes.iter().map(|x| x.0).max().unwrap();
        let f = *first.values().min().unwrap();
        if mx - f > 10000 || seed == 0 {
            println!("seed {seed} first {first:?}\n  notes {notes:?}");
            let m = sim.endpoint(&1).unwrap().foca().metrics();
            println!("  {m:?}");
        }
        if mx - f > worst.1 {
            worst = (seed, mx - f);
        }
    }
    println!("worst {worst:?}");
}
