//! Scenarios on the deterministic simulator, and the statistics they report.
//!
//! Every scenario runs `members` members (identity `GenerationalId<u32>`,
//! postcard codec, the plain CRC32C envelope, a versioned key-value
//! broadcast handler) with one config preset, from one seed. Time is
//! reported in probe periods.

use std::time::{Duration, Instant};

use foca_codec::{Envelope, PostcardCodec};
use foca_core::sim::{Sim, percentile};
use foca_core::{
    BroadcastHandler, Command, Config, Endpoint, Error, Foca, GenerationalId, Invalidates, Member,
    State,
};
use rand::SeedableRng;
use rand::rngs::Xoshiro128PlusPlus;
use serde::Serialize;

/// The identity every simulated member uses: an address index and a
/// generation (8 bytes).
pub type Id = GenerationalId<u32>;
/// A simulated member.
pub type Ep = Endpoint<Id, PostcardCodec<Id>, Xoshiro128PlusPlus, Kv, Envelope>;
/// The simulation the scenarios run.
pub type Net = Sim<Id, PostcardCodec<Id>, Xoshiro128PlusPlus, Kv, Envelope>;

/// Custom broadcasts the `broadcasts` scenario publishes at once.
pub const BROADCASTS: u32 = 20;

/// The cluster label of every simulated member's envelope.
pub const LABEL: &[u8] = b"foca-sim";

/// A versioned key-value store disseminated as custom broadcasts: each item
/// is `key (u32 BE) | version (u32 BE) | value`, and a higher version of a
/// key replaces a lower one.
#[derive(Clone, Debug, Default)]
pub struct Kv {
    values: std::collections::BTreeMap<u32, u32>,
}

impl Kv {
    /// The version of `key` this member holds.
    pub fn version(&self, key: u32) -> Option<u32> {
        self.values.get(&key).copied()
    }

    /// Encodes an item.
    pub fn item(key: u32, version: u32, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(8 + value.len());
        v.extend_from_slice(&key.to_be_bytes());
        v.extend_from_slice(&version.to_be_bytes());
        v.extend_from_slice(value);
        v
    }
}

/// Identifies one version of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvItem {
    key: u32,
    version: u32,
}

impl Invalidates for KvItem {
    type Key = u32;
    fn key(&self) -> u32 {
        self.key
    }
    fn invalidates(&self, other: &Self) -> bool {
        self.version > other.version
    }
}

/// A malformed item.
#[derive(Debug)]
pub struct BadItem;

impl std::fmt::Display for BadItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("item shorter than 8 bytes")
    }
}

impl BroadcastHandler<Id> for Kv {
    type Broadcast = KvItem;
    type Error = BadItem;

    fn receive_item(
        &mut self,
        item: &[u8],
        _sender: Option<&Id>,
    ) -> Result<Option<KvItem>, BadItem> {
        let (Some(key), Some(version)) = (item.get(..4), item.get(4..8)) else {
            return Err(BadItem);
        };
        let key = u32::from_be_bytes(key.try_into().map_err(|_| BadItem)?);
        let version = u32::from_be_bytes(version.try_into().map_err(|_| BadItem)?);
        if self.values.get(&key).is_some_and(|v| *v >= version) {
            return Ok(None);
        }
        self.values.insert(key, version);
        Ok(Some(KvItem { key, version }))
    }
}

/// What to simulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Every member joins through one seed; how long until all see all.
    Join,
    /// One member crashes; how long until one, then every member declares it down.
    Crash,
    /// Steady state under packet loss (5% unless `--loss` says otherwise):
    /// false positives.
    Loss,
    /// One member in ten (at least one) handles its input late (1.5 × probe
    /// RTT), under `--loss` if given: false suspicions and false positives.
    Slow,
    /// The cluster splits in halves for longer than the longest suspicion
    /// timeout, then heals: time to converge.
    Partition,
    /// Members restart one after another with a new generation.
    RollingRestart,
    /// 30% of members crash and restart together.
    MassRestart,
    /// One member publishes a custom broadcast: time to reach everyone.
    Broadcast,
    /// 20 custom broadcasts at once, from members taken in turn: time until
    /// every member holds all of them.
    Broadcasts,
    /// One member loses every peer, then the network returns: it must
    /// rejoin by itself.
    Isolate,
    /// 100 custom broadcasts at once, from members taken in turn, while one
    /// member in ten (none of the publishers) crashes at that moment: the
    /// broadcasts share datagrams with the suspicions and verdicts of the
    /// crashed. Time until every running member holds all of them.
    BroadcastsChurn,
}

/// How many broadcasts the `broadcasts-churn` scenario publishes.
pub const CHURN_BROADCASTS: u32 = 100;

/// A config preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// `Config::new_lan(members)`.
    Lan,
    /// `Config::new_wan(members)`.
    Wan,
    /// `Config::new_embedded()` (with room for `members`).
    Embedded,
    /// `Config::simple()` (with room for `members`).
    Simple,
}

impl Preset {
    /// The config for a cluster of `members`.
    pub fn config(self, members: usize) -> Config {
        let room = |c: Config| Config {
            max_members: c.max_members.max(members * 2),
            max_updates_backlog: c.max_updates_backlog.max(members.min(4096)),
            ..c
        };
        match self {
            Preset::Lan => Config::new_lan(members),
            Preset::Wan => Config::new_wan(members),
            Preset::Embedded => room(Config::new_embedded()),
            Preset::Simple => room(Config::simple()),
        }
    }
}

/// A scenario run's parameters.
#[derive(Clone, Debug, Serialize)]
pub struct Params {
    /// What to simulate.
    pub scenario: Scenario,
    /// Cluster size.
    pub members: u32,
    /// Seed of everything random.
    pub seed: u64,
    /// Datagram loss probability (the `loss` scenario uses 5% when this is 0).
    pub loss: f64,
    /// Probe periods to run after assembly (a default per scenario when `None`).
    pub periods: Option<u32>,
    /// Config preset.
    pub config: Preset,
    /// One-way latency in milliseconds, plus up to as much again of jitter.
    pub latency_ms: u64,
    /// Lifeguard (on by default; off sets `Config::awareness_max_multiplier`
    /// and `Config::suspicion_max_multiplier` to 1 and
    /// `Config::patient_probes` to false: plain SWIM timing and a fixed
    /// suspicion timeout).
    pub lifeguard: bool,
}

impl Params {
    /// Defaults for `scenario` with `members` members.
    pub fn new(scenario: Scenario, members: u32) -> Self {
        Self {
            scenario,
            members,
            seed: 1,
            loss: 0.0,
            periods: None,
            config: Preset::Lan,
            latency_ms: 1,
            lifeguard: true,
        }
    }
}

/// Everything a run measured. Times are in probe periods; `None` when the
/// event did not happen within the run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// The scenario.
    pub scenario: String,
    /// Cluster size.
    pub members: u32,
    /// The seed.
    pub seed: u64,
    /// Loss probability used.
    pub loss: f64,
    /// Probe periods simulated after assembly.
    pub periods: u32,
    /// The config's suspicion timeout for this size, in periods.
    pub suspicion_timeout_periods: f64,
    /// Crash detection: first member to declare the crashed one down
    /// (mean over crashes), from the crash.
    pub detection_first_mean_periods: Option<f64>,
    /// Crash detection: median over members, worst crash.
    pub detection_all_p50_periods: Option<f64>,
    /// Crash detection: last member, worst crash (`None` if some never did).
    pub detection_all_max_periods: Option<f64>,
    /// `MemberDown` verdicts about members that were running.
    pub false_positives: u64,
    /// Whether Lifeguard's local health awareness was on.
    pub lifeguard: bool,
    /// Suspicions members raised (failed probes of an alive member) while
    /// the scenario ran.
    pub suspicions_raised: u64,
    /// Suspicions raised about members that were running: all of them in
    /// scenarios where no member crashes or restarts (`None` in the others,
    /// where the simulator cannot tell which were about a dead member).
    pub false_suspicions: Option<u64>,
    /// The scenario's news (a join, a restart, a broadcast...): median time
    /// to reach a member.
    pub dissemination_p50_periods: Option<f64>,
    /// The scenario's news: time to reach every running member.
    pub dissemination_all_max_periods: Option<f64>,
    /// After a partition heals or an isolated member returns: time until
    /// every member sees every other.
    pub convergence_after_heal_periods: Option<f64>,
    /// Datagrams sent per member per probe period.
    pub datagrams_per_member_per_period: f64,
    /// Bytes sent per member per probe period.
    pub bytes_per_member_per_period: f64,
    /// Largest updates backlog any member had.
    pub max_updates_backlog: u64,
    /// Lowest view accuracy sampled (1.0: every member right about every other).
    pub view_accuracy_min: f64,
    /// View accuracy at the end.
    pub view_accuracy_final: f64,
    /// Wall time to build the cluster, seconds.
    pub assemble_seconds: f64,
    /// Wall time to simulate, seconds.
    pub run_seconds: f64,
    /// Simulation speed: members × periods / run seconds.
    pub member_periods_per_sec: f64,
    /// Peak resident memory of the process, bytes (Linux; 0 elsewhere).
    pub peak_rss_bytes: u64,
    /// Peak RSS divided by members × (members - 1) known members.
    pub bytes_per_known_member: f64,
    /// View accuracy after each period: (period, accuracy).
    #[serde(skip)]
    pub accuracy_timeline: Vec<(f64, f64)>,
    /// Share of members the scenario's news had reached: (period, share).
    #[serde(skip)]
    pub dissemination_timeline: Vec<(f64, f64)>,
}

/// Suspicions raised by every member, running or not, since it started.
fn suspicions_raised(net: &Net) -> u64 {
    net.addrs()
        .iter()
        .filter_map(|a| net.endpoint(a))
        .map(|ep| ep.foca().metrics().suspicions_raised)
        .sum()
}

/// Peak resident set size of this process, from `/proc/self/status`.
pub fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

struct Run {
    net: Net,
    config: Config,
    period: Duration,
    n: u32,
    sent_base: (u64, u64),
    /// Suspicions raised before the scenario started.
    suspicions_base: u64,
    periods: u32,
    accuracy: Vec<(f64, f64)>,
    start: Duration,
}

fn member(net: &mut Net, addr: u32, generation: u32, config: &Config) -> Result<Ep, Error> {
    let rng = Xoshiro128PlusPlus::seed_from_u64(net.member_seed());
    let id = GenerationalId::new(addr, generation);
    let foca =
        Foca::with_custom_broadcast(id, config.clone(), rng, PostcardCodec::new(), Kv::default())?;
    Endpoint::new(foca, Envelope::insecure_plaintext(LABEL), net.now())
}

impl Run {
    fn periods_since(&self, t: Duration) -> f64 {
        t.as_secs_f64() / self.period.as_secs_f64()
    }

    /// Runs one probe period, sampling accuracy.
    fn step(&mut self, progress: &mut dyn FnMut(u32)) {
        self.net.run_for(self.period);
        self.periods += 1;
        let sample = self.net.sample_accuracy();
        let at = self.periods_since(sample.at.saturating_sub(self.start));
        self.accuracy.push((at, sample.accuracy));
        progress(self.periods);
    }

    fn run(&mut self, periods: u32, progress: &mut dyn FnMut(u32)) {
        for _ in 0..periods {
            self.step(progress);
        }
    }

    /// Runs until every member sees every other (checked each period) or
    /// the run ends; returns how many periods that took, then runs out the
    /// remaining periods.
    fn converge(&mut self, total: u32, progress: &mut dyn FnMut(u32)) -> Option<f64> {
        let from = self.periods;
        self.run_until(total.saturating_sub(self.periods), progress, converged);
        let took = converged(&self.net).then(|| f64::from(self.periods - from));
        self.run(total.saturating_sub(self.periods), progress);
        took
    }

    /// Runs until `done` holds (checked each period) or `max` periods pass.
    fn run_until(&mut self, max: u32, progress: &mut dyn FnMut(u32), done: impl Fn(&Net) -> bool) {
        for _ in 0..max {
            if done(&self.net) {
                return;
            }
            self.step(progress);
        }
    }
}

/// Whether every running member sees exactly the other running members.
fn converged(net: &Net) -> bool {
    let up: Vec<u32> = net.addrs().into_iter().filter(|a| net.is_up(a)).collect();
    let expected = up.len().saturating_sub(1);
    up.iter().all(|a| {
        net.endpoint(a)
            .is_some_and(|ep| ep.foca().num_members() == expected)
    })
}

/// The default number of periods each scenario runs.
pub fn default_periods(scenario: Scenario, config: &Config, members: u32) -> u32 {
    let timeout = config.suspicion_timeout(members as usize).as_secs_f64()
        / config.probe_period.as_secs_f64();
    let timeout = timeout.ceil() as u32;
    match scenario {
        Scenario::Join => 60,
        Scenario::Crash => timeout + 2 * (members.ilog2() + 1) + 10,
        Scenario::Loss | Scenario::Slow => 200,
        Scenario::Partition => {
            let max = config.suspicion_timeout_max(members as usize).as_secs_f64()
                / config.probe_period.as_secs_f64();
            2 * max.ceil() as u32 + 60
        }
        // The isolated member probes one member per period: it takes about
        // `members` periods to declare them all down and be alone.
        Scenario::Isolate => 2 * timeout + 2 * members + 60,
        Scenario::RollingRestart => 80,
        // 3 in 10 restart with empty tables and must each learn every
        // other member: 38 periods at 1,000 members, 59 at 10,000.
        Scenario::MassRestart => 60.max(6 * (members.ilog2() + 1)),
        Scenario::Broadcast | Scenario::Broadcasts | Scenario::BroadcastsChurn => 30,
    }
}

/// Runs a scenario. `progress` is called after every simulated period with
/// the number of periods done (out of `report.periods`).
/// Fails only if the config cannot hold the members' headers.
pub fn run(params: &Params, progress: &mut dyn FnMut(u32, u32)) -> Result<Report, Error> {
    let n = params.members.max(2);
    let mut config = params.config.config(n as usize);
    if !params.lifeguard {
        config.awareness_max_multiplier = 1;
        config.suspicion_max_multiplier = 1;
        config.patient_probes = false;
    }
    let period = config.probe_period;
    let total = params
        .periods
        .unwrap_or_else(|| default_periods(params.scenario, &config, n));
    let mut net = Net::new(params.seed);
    net.set_record_notifications(false);
    let latency = Duration::from_millis(params.latency_ms);
    net.set_latency(latency, latency);

    // Assemble: every member knows every other from the start (restored
    // tables), except in the join scenario where they must find each other.
    let started = Instant::now();
    let everyone: Vec<Member<Id>> = (0..n)
        .map(|a| Member::alive(GenerationalId::new(a, 1), 0))
        .collect();
    for a in 0..n {
        let mut ep = member(&mut net, a, 1, &config)?;
        if params.scenario != Scenario::Join {
            let others = everyone.iter().filter(|m| *m.id().address() != a).cloned();
            // Restoring valid members into a fresh, running member cannot fail.
            let _ = ep.command(Duration::ZERO, Command::Restore(others.collect()));
            while ep.poll_event().is_some() {}
        }
        net.add(ep);
    }
    let assemble_seconds = started.elapsed().as_secs_f64();
    let loss = if params.scenario == Scenario::Loss && params.loss == 0.0 {
        0.05
    } else {
        params.loss
    };
    net.set_loss(loss);

    let mut run = Run {
        sent_base: (net.stats().sent, net.stats().bytes),
        suspicions_base: suspicions_raised(&net),
        net,
        config: config.clone(),
        period,
        n,
        periods: 0,
        accuracy: Vec::new(),
        start: Duration::ZERO,
    };
    let mut progress = |done: u32| progress(done, total);
    let mut tracker = None;
    let mut heal_convergence = None;
    let started = Instant::now();
    let subject = n / 2;

    match params.scenario {
        Scenario::Join => {
            tracker = Some(run.net.track("full view", move |ep: &Ep| {
                ep.foca().num_members() == (n - 1) as usize
            }));
            for a in 1..n {
                run.net.with(&a, |ep, now| {
                    let _ = ep.command(now, Command::Join(vec![GenerationalId::seed(0)]));
                });
            }
            run.run(total, &mut progress);
        }
        Scenario::Crash => {
            run.run(2, &mut progress);
            run.net.crash(&subject);
            run.run(total.saturating_sub(2), &mut progress);
        }
        Scenario::Loss => run.run(total, &mut progress),
        Scenario::Slow => {
            let slow = run.config.probe_rtt.mul_f64(1.5);
            for a in (0..n).step_by(10) {
                run.net.set_slow(&a, slow);
            }
            run.run(total, &mut progress);
        }
        Scenario::Partition => {
            run.run(2, &mut progress);
            let (a, b): (Vec<u32>, Vec<u32>) = (0..n).partition(|x| *x < n / 2);
            run.net.partition(&a, &b);
            // Longer than the longest suspicion timeout (an unconfirmed
            // suspicion's): each side declares the other down.
            let timeout = run.config.suspicion_timeout_max(n as usize).as_secs_f64()
                / run.period.as_secs_f64();
            run.run((timeout.ceil() as u32 + 10).min(total / 2), &mut progress);
            run.net.heal();
            heal_convergence = run.converge(total, &mut progress);
        }
        Scenario::Isolate => {
            run.run(2, &mut progress);
            run.net.isolate(&subject);
            let alone = move |net: &Net| {
                net.endpoint(&subject)
                    .is_some_and(|ep| ep.foca().num_members() == 0)
            };
            let timeout =
                run.config.suspicion_timeout(n as usize).as_secs_f64() / run.period.as_secs_f64();
            let heal_budget = 2 * timeout.ceil() as u32 + 40;
            run.run_until(total.saturating_sub(heal_budget), &mut progress, alone);
            run.net.heal();
            heal_convergence = run.converge(total, &mut progress);
        }
        Scenario::RollingRestart => {
            run.run(2, &mut progress);
            let restarts = n.min(8);
            let gap = (total.saturating_sub(10) / restarts).max(1);
            let mut spreads = Vec::new();
            for k in 0..restarts {
                run.net.crash(&k);
                let fresh = member(&mut run.net, k, 2, &run.config)?;
                run.net.restart(fresh, false);
                let seed = (k + 1) % n;
                run.net.with(&k, |ep, now| {
                    let _ = ep.command(now, Command::Join(vec![GenerationalId::seed(seed)]));
                });
                spreads.push(run.net.track("restart", move |ep: &Ep| {
                    *ep.foca().identity().address() == k
                        || ep
                            .foca()
                            .member(&k)
                            .is_some_and(|m| m.id().generation() == 2 && m.state() == State::Alive)
                }));
                run.run(gap, &mut progress);
            }
            tracker = spreads.last().copied();
            run.run(total.saturating_sub(run.periods), &mut progress);
        }
        Scenario::MassRestart => {
            run.run(2, &mut progress);
            let victims: Vec<u32> = (0..n).filter(|a| a % 10 < 3).collect();
            for v in &victims {
                run.net.crash(v);
            }
            run.run(2, &mut progress);
            for v in &victims {
                let fresh = member(&mut run.net, *v, 2, &run.config)?;
                run.net.restart(fresh, false);
                let seed = (v + 1) % n;
                let seed = if seed % 10 < 3 {
                    (seed / 10) * 10 + 3
                } else {
                    seed
                } % n;
                run.net.with(v, |ep, now| {
                    let _ = ep.command(now, Command::Join(vec![GenerationalId::seed(seed)]));
                });
            }
            tracker = Some(run.net.track("full view", move |ep: &Ep| {
                ep.foca().num_members() == (n - 1) as usize
            }));
            heal_convergence = run.converge(total, &mut progress);
        }
        Scenario::Broadcast => {
            run.run(2, &mut progress);
            run.net.with(&0, |ep, now| {
                let _ = ep.command(now, Command::AddBroadcast(Kv::item(7, 1, b"hello")));
            });
            tracker = Some(run.net.track("broadcast", |ep: &Ep| {
                ep.foca().broadcast_handler().version(7) == Some(1)
            }));
            run.run(total.saturating_sub(run.periods), &mut progress);
        }
        Scenario::Broadcasts => {
            run.run(2, &mut progress);
            for key in 0..BROADCASTS {
                run.net.with(&(key % n), |ep, now| {
                    let _ = ep.command(now, Command::AddBroadcast(Kv::item(key, 1, b"value")));
                });
            }
            tracker = Some(run.net.track("broadcasts", |ep: &Ep| {
                let kv = ep.foca().broadcast_handler();
                (0..BROADCASTS).all(|key| kv.version(key) == Some(1))
            }));
            run.run(total.saturating_sub(run.periods), &mut progress);
        }
        Scenario::BroadcastsChurn => {
            run.run(2, &mut progress);
            let publishers = CHURN_BROADCASTS.min(n);
            for key in 0..CHURN_BROADCASTS {
                run.net.with(&(key % n), |ep, now| {
                    let _ = ep.command(now, Command::AddBroadcast(Kv::item(key, 1, b"value")));
                });
            }
            for a in (publishers..n).filter(|a| a % 10 == 9) {
                run.net.crash(&a);
            }
            tracker = Some(run.net.track("broadcasts", |ep: &Ep| {
                let kv = ep.foca().broadcast_handler();
                (0..CHURN_BROADCASTS).all(|key| kv.version(key) == Some(1))
            }));
            run.run(total.saturating_sub(run.periods), &mut progress);
        }
    }
    let run_seconds = started.elapsed().as_secs_f64();
    Ok(report(
        params,
        run,
        tracker,
        heal_convergence,
        loss,
        assemble_seconds,
        run_seconds,
    ))
}

fn report(
    params: &Params,
    run: Run,
    tracker: Option<usize>,
    heal_convergence: Option<f64>,
    loss: f64,
    assemble_seconds: f64,
    run_seconds: f64,
) -> Report {
    let net = &run.net;
    let n = run.n;
    let p = |d: Duration| run.periods_since(d);
    let detections = net.detections();
    let firsts: Vec<f64> = detections.iter().filter_map(|d| d.first()).map(p).collect();
    let worst = detections
        .iter()
        .max_by_key(|d| d.percentile(100).unwrap_or(Duration::MAX));
    let stats = net.stats();
    let member_periods = f64::from(n) * f64::from(run.periods.max(1));
    let mut max_backlog = 0;
    for a in net.addrs() {
        if let Some(ep) = net.endpoint(&a) {
            max_backlog = max_backlog.max(ep.foca().metrics().max_updates_backlog);
        }
    }
    let spread = tracker.and_then(|t| net.spread(t));
    let (dissemination_p50, dissemination_all, timeline) = match &spread {
        Some(s) => {
            let mut reached: Vec<Duration> = s.reached.iter().filter_map(|(_, r)| *r).collect();
            reached.sort();
            let total = s.reached.len().max(1) as f64;
            let timeline = reached
                .iter()
                .enumerate()
                .map(|(i, d)| (p(s.started + *d), (i + 1) as f64 / total))
                .collect();
            (percentile(&reached, 50).map(p), s.all.map(p), timeline)
        }
        None => (None, None, Vec::new()),
    };
    let accuracy_min = run.accuracy.iter().map(|(_, a)| *a).fold(1.0f64, f64::min);
    let rss = peak_rss();
    let known = f64::from(n) * f64::from(n - 1);
    Report {
        scenario: format!("{:?}", params.scenario),
        members: n,
        seed: params.seed,
        loss,
        periods: run.periods,
        suspicion_timeout_periods: p(run.config.suspicion_timeout(n as usize)),
        detection_first_mean_periods: (!firsts.is_empty())
            .then(|| firsts.iter().sum::<f64>() / firsts.len() as f64),
        detection_all_p50_periods: worst.and_then(|d| d.percentile(50)).map(p),
        detection_all_max_periods: worst.and_then(|d| d.all()).map(p),
        false_positives: net.false_positives(),
        lifeguard: params.lifeguard,
        suspicions_raised: suspicions_raised(net).saturating_sub(run.suspicions_base),
        false_suspicions: (!matches!(
            params.scenario,
            Scenario::Crash | Scenario::RollingRestart | Scenario::MassRestart
        ))
        .then(|| suspicions_raised(net).saturating_sub(run.suspicions_base)),
        dissemination_p50_periods: dissemination_p50,
        dissemination_all_max_periods: dissemination_all,
        convergence_after_heal_periods: heal_convergence,
        datagrams_per_member_per_period: (stats.sent - run.sent_base.0) as f64 / member_periods,
        bytes_per_member_per_period: (stats.bytes - run.sent_base.1) as f64 / member_periods,
        max_updates_backlog: max_backlog,
        view_accuracy_min: accuracy_min,
        view_accuracy_final: run.accuracy.last().map_or(1.0, |(_, a)| *a),
        assemble_seconds,
        run_seconds,
        member_periods_per_sec: member_periods / run_seconds.max(1e-9),
        peak_rss_bytes: rss,
        bytes_per_known_member: if known > 0.0 { rss as f64 / known } else { 0.0 },
        accuracy_timeline: run.accuracy,
        dissemination_timeline: timeline,
    }
}
