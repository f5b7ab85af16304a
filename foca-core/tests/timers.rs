//! Late, reordered and duplicated timer events: the protocol tolerates them.
//!
//! A small harness of its own (not the simulator) runs five members and
//! decides when each timer event is handed back: at its deadline, or
//! collected over a window and fed back during the next one in shuffled
//! order, or twice. Datagrams are delivered normally meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use foca_core::testing::{TestCodec, TestId};
use foca_core::{
    Codec, Config, Error, Foca, GenerationalId, Member, Message, Notification, PeriodicParams,
    Runtime, State, Timer,
};
use rand::rngs::Xoshiro128PlusPlus;
use rand::{RngExt, SeedableRng};

type F = Foca<TestId, TestCodec, Xoshiro128PlusPlus>;

fn id(addr: u32) -> TestId {
    GenerationalId::new(addr, 1)
}

fn message_of(data: &[u8]) -> Option<Message<TestId>> {
    let mut input = data;
    TestCodec.decode_header(&mut input).ok().map(|h| h.message)
}

/// Records what a member asks of its environment.
#[derive(Default)]
struct Rt {
    now: Duration,
    timers: Vec<(Duration, Timer<TestId>)>,
    sends: Vec<(TestId, Vec<u8>)>,
    notes: Vec<Notification<TestId>>,
}

impl Runtime<TestId> for Rt {
    fn notify(&mut self, n: Notification<TestId>) {
        self.notes.push(n);
    }

    fn send_to(&mut self, to: TestId, data: &[u8]) {
        self.sends.push((to, data.to_vec()));
    }

    fn submit_after(&mut self, timer: Timer<TestId>, after: Duration) {
        self.timers.push((self.now + after, timer));
    }
}

struct Node {
    foca: F,
    rt: Rt,
    /// `Ping` datagrams sent (direct probes).
    pings: u64,
}

/// When timer events are handed back.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Delivery {
    /// Each at its deadline.
    InOrder,
    /// Every event due by the end of a window is handed back during the next
    /// window at a random time: all late (by up to two windows), in
    /// shuffled order.
    Shuffled(Duration),
}

enum Ev {
    Deliver {
        to: u32,
        data: Vec<u8>,
    },
    Fire {
        node: u32,
        deadline: Duration,
        timer: Timer<TestId>,
    },
    Window,
}

struct Harness {
    now: Duration,
    nodes: BTreeMap<u32, Node>,
    events: BTreeMap<(Duration, u64), Ev>,
    seq: u64,
    rng: Xoshiro128PlusPlus,
    delivery: Delivery,
    /// Hand every timer event back twice (the copy up to 2 s later, or in
    /// the same window when shuffled).
    duplicate: bool,
    /// Chance that a datagram is lost.
    loss: f64,
    held: Vec<(u32, Duration, Timer<TestId>)>,
    errors: Vec<(u32, Error)>,
    /// MemberDown and MemberLeft notifications, by observer.
    downs: Vec<(u32, Notification<TestId>)>,
    /// Timer events handed back after one with a later deadline (same node).
    reordered: u64,
    fired: u64,
    last_deadline: BTreeMap<u32, Duration>,
}

impl Harness {
    fn new(n: u32, config: &Config, seed: u64) -> Self {
        let nodes = (1..=n)
            .map(|a| {
                let rng = Xoshiro128PlusPlus::seed_from_u64(seed * 1000 + u64::from(a));
                let foca = Foca::new(id(a), config.clone(), rng, TestCodec).unwrap();
                (
                    a,
                    Node {
                        foca,
                        rt: Rt::default(),
                        pings: 0,
                    },
                )
            })
            .collect();
        Self {
            now: Duration::ZERO,
            nodes,
            events: BTreeMap::new(),
            seq: 0,
            rng: Xoshiro128PlusPlus::seed_from_u64(seed),
            delivery: Delivery::InOrder,
            duplicate: false,
            loss: 0.0,
            held: Vec::new(),
            errors: Vec::new(),
            downs: Vec::new(),
            reordered: 0,
            fired: 0,
            last_deadline: BTreeMap::new(),
        }
    }

    fn push(&mut self, at: Duration, ev: Ev) {
        self.seq += 1;
        self.events.insert((at, self.seq), ev);
    }

    /// A random delay in `0..max`.
    fn within(&mut self, max: Duration) -> Duration {
        let nanos = u64::try_from(max.as_nanos()).unwrap().max(1);
        Duration::from_nanos(self.rng.random_range(0..nanos))
    }

    /// Takes what `addr` asked for: datagrams go on the network, timers to
    /// the delivery policy, notifications are checked.
    fn flush(&mut self, addr: u32) {
        let node = self.nodes.get_mut(&addr).unwrap();
        let sends = std::mem::take(&mut node.rt.sends);
        let timers = std::mem::take(&mut node.rt.timers);
        let notes = std::mem::take(&mut node.rt.notes);
        for (to, data) in sends {
            if matches!(message_of(&data), Some(Message::Ping(_))) {
                self.nodes.get_mut(&addr).unwrap().pings += 1;
            }
            if self.loss > 0.0 && self.rng.random_bool(self.loss) {
                continue;
            }
            let latency = Duration::from_millis(1) + self.within(Duration::from_millis(20));
            let at = self.now + latency;
            self.push(
                at,
                Ev::Deliver {
                    to: *to.address(),
                    data,
                },
            );
        }
        for (deadline, timer) in timers {
            let copies = if self.duplicate { 2 } else { 1 };
            for copy in 0..copies {
                match self.delivery {
                    Delivery::InOrder => {
                        let at = if copy == 1 {
                            deadline + self.within(Duration::from_secs(2))
                        } else {
                            deadline
                        };
                        self.push(
                            at,
                            Ev::Fire {
                                node: addr,
                                deadline,
                                timer: timer.clone(),
                            },
                        );
                    }
                    Delivery::Shuffled(_) => self.held.push((addr, deadline, timer.clone())),
                }
            }
        }
        for n in notes {
            if matches!(n, Notification::MemberDown(_) | Notification::MemberLeft(_)) {
                self.downs.push((addr, n));
            }
        }
    }

    fn set_delivery(&mut self, delivery: Delivery) {
        self.delivery = delivery;
        match delivery {
            Delivery::Shuffled(window) => {
                let at = self.now + window;
                self.push(at, Ev::Window);
            }
            Delivery::InOrder => {
                self.events.retain(|_, ev| !matches!(ev, Ev::Window));
                for (node, deadline, timer) in std::mem::take(&mut self.held) {
                    let at = deadline.max(self.now);
                    self.push(
                        at,
                        Ev::Fire {
                            node,
                            deadline,
                            timer,
                        },
                    );
                }
            }
        }
    }

    fn run_until(&mut self, end: Duration) {
        while let Some(entry) = self.events.first_entry() {
            if entry.key().0 > end {
                break;
            }
            let ((at, _), ev) = entry.remove_entry();
            self.now = at;
            match ev {
                Ev::Deliver { to, data } => {
                    let node = self.nodes.get_mut(&to).unwrap();
                    node.rt.now = at;
                    if let Err(e) = node.foca.handle_data(&data, &mut node.rt) {
                        self.errors.push((to, e));
                    }
                    self.flush(to);
                }
                Ev::Fire {
                    node: addr,
                    deadline,
                    timer,
                } => {
                    self.fired += 1;
                    let last = self.last_deadline.entry(addr).or_default();
                    if deadline < *last {
                        self.reordered += 1;
                    }
                    *last = (*last).max(deadline);
                    let node = self.nodes.get_mut(&addr).unwrap();
                    node.rt.now = at;
                    if let Err(e) = node.foca.handle_timer(timer, &mut node.rt) {
                        self.errors.push((addr, e));
                    }
                    self.flush(addr);
                }
                Ev::Window => {
                    let Delivery::Shuffled(window) = self.delivery else {
                        continue;
                    };
                    let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
                        .into_iter()
                        .partition(|(_, deadline, _)| *deadline <= at);
                    self.held = later;
                    for (node, deadline, timer) in due {
                        let fire = at + self.within(window);
                        self.push(
                            fire,
                            Ev::Fire {
                                node,
                                deadline,
                                timer,
                            },
                        );
                    }
                    self.push(at + window, Ev::Window);
                }
            }
        }
        self.now = end;
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end);
    }

    /// Every member joins through member 1, timers in order, no loss.
    fn join_all(&mut self) {
        let addrs: Vec<u32> = self.nodes.keys().copied().collect();
        for &a in &addrs[1..] {
            let node = self.nodes.get_mut(&a).unwrap();
            node.rt.now = self.now;
            node.foca
                .join([GenerationalId::seed(1)], &mut node.rt)
                .unwrap();
            self.flush(a);
        }
        for _ in 0..100 {
            if self.all_see_all() {
                return;
            }
            self.run_for(Duration::from_millis(100));
        }
        panic!("the cluster did not form");
    }

    fn all_see_all(&self) -> bool {
        let all: BTreeSet<u32> = self.nodes.keys().copied().collect();
        self.nodes.iter().all(|(a, n)| {
            let seen: BTreeSet<u32> = n.foca.iter_members().map(|m| *m.id().address()).collect();
            let mut others = all.clone();
            others.remove(a);
            seen == others
        })
    }

    /// Every member sees every other as `Alive` (no standing suspicion).
    fn all_alive(&self) -> bool {
        self.all_see_all()
            && self.nodes.values().all(|n| {
                n.foca
                    .iter_membership_state()
                    .all(|m| m.state() == State::Alive)
            })
    }

    fn total(&self, f: impl Fn(&foca_core::Metrics) -> u64) -> u64 {
        self.nodes.values().map(|n| f(&n.foca.metrics())).sum()
    }

    fn reset_pings(&mut self) {
        for n in self.nodes.values_mut() {
            n.pings = 0;
        }
    }

    /// Direct probes are never sent faster than one per probe period: the
    /// probe chain has one link in flight, and each link is handed back no
    /// earlier than its deadline. So a span of `elapsed` holds at most
    /// `elapsed / period + 1` pings per member.
    fn assert_one_probe_cycle(&self, elapsed: Duration, period: Duration) -> (u64, u64) {
        let bound = (elapsed.as_nanos() / period.as_nanos()) as u64 + 1;
        let mut total = 0;
        for (a, n) in &self.nodes {
            assert!(
                n.pings <= bound,
                "member {a} sent {} pings in {elapsed:?}: two probe cycles",
                n.pings
            );
            total += n.pings;
        }
        (total, bound)
    }

    fn assert_clean(&self) {
        assert!(self.errors.is_empty(), "errors: {:?}", self.errors);
        assert!(self.downs.is_empty(), "members went down: {:?}", self.downs);
    }
}

/// Plain SWIM plus the periodic tasks, so that many timer chains are in
/// flight at once (gossip every 200 ms, announces every few seconds).
fn config() -> Config {
    Config {
        periodic_gossip: Some(PeriodicParams {
            frequency: Duration::from_millis(200),
            num_members: 2,
        }),
        periodic_sync: Some(PeriodicParams {
            frequency: Duration::from_secs(5),
            num_members: 1,
        }),
        periodic_announce_to_down_members: Some(PeriodicParams {
            frequency: Duration::from_secs(7),
            num_members: 1,
        }),
        patient_probes: true,
        ..Config::simple()
    }
}

/// Timers due within each 2.5 s window are handed back during the next
/// window, shuffled, for 150 s; datagrams flow normally (1–21 ms). Acks
/// always arrive before a probe concludes, so no suspicion is ever raised;
/// probing never stops; no error; no member goes down.
#[test]
fn late_shuffled_timers_raise_no_suspicion() {
    let config = config();
    let mut h = Harness::new(5, &config, 1);
    h.join_all();
    let probes0 = h.total(|m| m.probes_sent);
    h.reset_pings();
    let start = h.now;
    let window = Duration::from_millis(2500);
    h.set_delivery(Delivery::Shuffled(window));
    h.run_for(Duration::from_secs(150));
    h.set_delivery(Delivery::InOrder);
    h.run_for(Duration::from_secs(10));
    let elapsed = h.now - start;

    h.assert_clean();
    let (pings, bound) = h.assert_one_probe_cycle(elapsed, config.probe_period);
    let probes = h.total(|m| m.probes_sent) - probes0;
    let stale = h.total(|m| m.stale_timers);
    println!(
        "shuffled: {} timer events handed back, {} after one with a later deadline; \
         {stale} ignored as stale; {probes} probes ({pings} pings, at most {bound} per member allowed) in {elapsed:?}; \
         suspicions {}, incomplete probes {}",
        h.fired,
        h.reordered,
        h.total(|m| m.suspicions_raised),
        h.total(|m| m.probes_incomplete),
    );
    assert!(h.reordered > 100, "the harness did not reorder much");
    assert!(stale > 0, "no timer was made stale by the reordering");
    assert_eq!(h.total(|m| m.suspicions_raised), 0);
    assert_eq!(h.total(|m| m.members_declared_down), 0);
    assert_eq!(h.total(|m| m.self_suspicions_refuted), 0);
    // Probing went on: late probe timers slow it, never stop it.
    for (a, n) in &h.nodes {
        assert!(n.pings >= 20, "member {a} probed only {} times", n.pings);
    }
    assert!(h.all_alive());
}

/// The same with 10% of datagrams lost: direct probes now go unanswered, and
/// a probe whose period ends before its (late) indirect stage ran is
/// concluded without suspicion. The suspicions that are raised (indirect
/// stage ran, no ack) are all refuted: nobody is declared down, and once the
/// network is clean every member sees every other alive.
#[test]
fn late_shuffled_timers_with_loss_leave_no_standing_suspicion() {
    let config = config();
    let (mut raised, mut refuted, mut incomplete, mut failed, mut downs) = (0, 0, 0, 0, 0);
    for seed in 1..=10 {
        let mut h = Harness::new(5, &config, seed);
        h.join_all();
        h.reset_pings();
        let start = h.now;
        h.loss = 0.10;
        h.set_delivery(Delivery::Shuffled(Duration::from_millis(2500)));
        h.run_for(Duration::from_secs(150));
        h.loss = 0.0;
        h.set_delivery(Delivery::InOrder);
        h.run_for(Duration::from_secs(20));
        let elapsed = h.now - start;
        assert!(h.errors.is_empty(), "seed {seed}: errors: {:?}", h.errors);
        h.assert_one_probe_cycle(elapsed, config.probe_period);
        assert!(h.all_alive(), "seed {seed}: a suspicion stands");
        raised += h.total(|m| m.suspicions_raised);
        refuted += h.total(|m| m.suspicions_refuted);
        incomplete += h.total(|m| m.probes_incomplete);
        failed += h.total(|m| m.probes_failed);
        downs += h.downs.len() as u64;
    }
    println!(
        "shuffled with 10% loss, 10 seeds: probes failed {failed}, incomplete (late indirect \
         stage: no suspicion) {incomplete}, suspicions raised {raised}, refuted (seen by \
         someone) {refuted}, members declared down {downs}"
    );
    assert!(
        incomplete > 0,
        "no probe concluded before its indirect stage"
    );
    assert!(raised <= failed);
    // Timers up to 2.5 probe periods late and 10% loss: a refutation can
    // miss the whole suspicion timeout now and then (then the member
    // refutes the verdict and is back), but not most of the time.
    assert!(
        downs * 4 <= raised,
        "{downs} of {raised} suspicions ended down"
    );
}

/// A probe whose period ends before its indirect stage ran is concluded
/// without suspicion, and the late indirect-probe timer is then ignored;
/// with the timers in order, the same unanswered probe raises a suspicion.
/// (SWIM's timing: one indirect stage, the verdict at the period's end.)
#[test]
fn late_indirect_probe_timer_concludes_the_probe_without_suspicion() {
    let mut rt = Rt::default();
    let mut f: F = Foca::new(
        id(1),
        Config {
            patient_probes: false,
            ..config()
        },
        Xoshiro128PlusPlus::seed_from_u64(3),
        TestCodec,
    )
    .unwrap();
    f.apply_many([Member::alive(id(2), 0)], &mut rt).unwrap();
    let probe_timer = |rt: &mut Rt| {
        let pos = rt
            .timers
            .iter()
            .position(|(_, t)| matches!(t, Timer::ProbeRandomMember(_)))
            .expect("a probe timer is scheduled");
        rt.timers.remove(pos).1
    };
    let indirect_timer = |rt: &mut Rt| {
        let pos = rt
            .timers
            .iter()
            .position(|(_, t)| matches!(t, Timer::SendIndirectProbe { .. }))
            .expect("an indirect-probe timer is scheduled");
        rt.timers.remove(pos).1
    };

    // Probe 1 starts: a ping to 2, which never answers.
    let t = probe_timer(&mut rt);
    f.handle_timer(t, &mut rt).unwrap();
    assert_eq!(f.metrics().probes_sent, 1);
    let late_indirect = indirect_timer(&mut rt);
    // The period ends before the indirect stage: no suspicion.
    let t = probe_timer(&mut rt);
    f.handle_timer(t, &mut rt).unwrap();
    let m = f.metrics();
    assert_eq!(
        (m.probes_incomplete, m.probes_failed, m.suspicions_raised),
        (1, 0, 0)
    );
    assert_eq!(f.member(&2).unwrap().state(), State::Alive);
    // The late indirect-probe timer (of probe 1) is stale now.
    let stale = m.stale_timers;
    f.handle_timer(late_indirect, &mut rt).unwrap();
    assert_eq!(f.metrics().stale_timers, stale + 1);
    assert_eq!(f.metrics().indirect_probes_sent, 0);

    // Probe 2, timers in order: indirect stage, then the end of the period.
    let t = indirect_timer(&mut rt);
    f.handle_timer(t, &mut rt).unwrap();
    let t = probe_timer(&mut rt);
    f.handle_timer(t, &mut rt).unwrap();
    let m = f.metrics();
    assert_eq!((m.probes_failed, m.suspicions_raised), (1, 1));
    assert_eq!(f.member(&2).unwrap().state(), State::Suspect);
}

/// Every timer event handed back twice, the copy up to 2 s late: no error,
/// no suspicion, and never more than one probe per member per period.
#[test]
fn duplicated_timers_never_run_two_probe_cycles() {
    let config = config();
    let mut h = Harness::new(5, &config, 4);
    h.join_all();
    h.reset_pings();
    let stale0 = h.total(|m| m.stale_timers);
    let start = h.now;
    h.duplicate = true;
    h.run_for(Duration::from_secs(100));
    let elapsed = h.now - start;

    h.assert_clean();
    let (pings, bound) = h.assert_one_probe_cycle(elapsed, config.probe_period);
    let stale = h.total(|m| m.stale_timers) - stale0;
    println!(
        "duplicated in order: {pings} pings by 5 members in {elapsed:?} (at most {bound} each); {stale} duplicate events ignored as stale"
    );
    // In order, each chain link fires on time: about one ping per period.
    for (a, n) in &h.nodes {
        assert!(n.pings + 2 >= bound, "member {a}: only {} pings", n.pings);
    }
    assert!(stale > 100);
    assert_eq!(h.total(|m| m.suspicions_raised), 0);
    assert!(h.all_alive());
}

/// Duplicated and shuffled together.
#[test]
fn duplicated_and_shuffled_timers_never_run_two_probe_cycles() {
    let config = config();
    let mut h = Harness::new(5, &config, 5);
    h.join_all();
    h.reset_pings();
    let start = h.now;
    h.duplicate = true;
    h.set_delivery(Delivery::Shuffled(Duration::from_millis(1700)));
    h.run_for(Duration::from_secs(120));
    h.set_delivery(Delivery::InOrder);
    h.run_for(Duration::from_secs(10));
    let elapsed = h.now - start;

    h.assert_clean();
    let (pings, bound) = h.assert_one_probe_cycle(elapsed, config.probe_period);
    println!(
        "duplicated and shuffled: {pings} pings by 5 members in {elapsed:?} (at most {bound} each); {} events, {} reordered",
        h.fired, h.reordered
    );
    for (a, n) in &h.nodes {
        assert!(n.pings >= 20, "member {a} probed only {} times", n.pings);
    }
    assert_eq!(h.total(|m| m.suspicions_raised), 0);
    assert!(h.all_alive());
}
