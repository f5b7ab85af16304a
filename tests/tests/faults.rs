//! Faults across real hosts (tracker issue #16): a virtual network of
//! network namespaces joined by veth pairs and a bridge (in a namespace of
//! its own, so nothing touches the machine's network), one
//! `foca_insecure_udp_agent` process per host, and one fault per test:
//! kill -9, a partition and its heal, a one-way cut, a rolling restart, a
//! mass restart, packet loss, a flood of garbage, agents with a wrong key or
//! label, forged verdicts about a live member, forged announces aimed at a
//! third party.
//!
//! What the tests see is only what the agents show: the `--filename`
//! member file each writes (the active members, itself included) and its
//! stdout (`--broadcasts`: custom broadcasts sent and received).
//!
//! Needs root and `ip netns` (iproute2); the loss, one-way and
//! third-party tests also need `nft` (nftables). Without them each test says why on stderr and
//! passes. Run: `cargo test -p foca-tests --test faults -- --test-threads=1`
//! (tests also serialize themselves on a process-wide lock, so the
//! default parallel run of `cargo test --workspace` is safe). Each test
//! prints its measured times beside the bounds below (`FAULTS …` lines;
//! `--nocapture` shows them), and what became of its custom broadcasts
//! (every one must reach every live member: see [`Spread`]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "faults/net.rs"]
mod net;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use foca_core::{AMPLIFICATION_FACTOR, Config};
use net::Net;

/// Agents in each test's cluster.
const N: usize = 5;
/// Hosts 0..N run the cluster; these two are extra.
const ROGUE: usize = N;
const VICTIM: usize = N + 1;
/// The assertions allow this many times the protocol's bound, for a slow
/// shared machine; every line printed says the measured time and the bound.
const LIMIT_FACTOR: u32 = 3;

/// The bounds each test checks, derived from the agent's config: the
/// example runs `Config::new_lan(--cluster-size)`, and the tests pass
/// `--cluster-size N`. With N = 5: a 1 s probe period, 500 ms probe round
/// trip, suspicion multiplier 4 (suspicion timeout 4 × max(1, ⌈log10 5⌉)
/// × 1 s = 4 s once 3 members confirmed it, 6 × that = 24 s unconfirmed:
/// Lifeguard), gossip to 3 members every 200 ms, announces to one down
/// member every 10 s, down members remembered 180 s (longer than any
/// test, so a partition heals by those announces).
#[derive(Debug)]
struct Bounds {
    /// News (a join, a leave, a refutation, a custom broadcast) reaches
    /// every member: gossip fans out to 3 members every 200 ms, so 5
    /// members are covered within ~3 rounds; allow two probe periods
    /// (ten gossip rounds, also covering piggybacking on probes).
    spread: Duration,
    /// A custom broadcast a member missed (its transmissions went to it
    /// while it was cut off, crashing or behind loss) comes with that
    /// member's next periodic sync: the answer carries the kept items the
    /// request lacked. Its sync timer runs every 30 s, jittered by up to a
    /// tenth, and once the fault is over one exchange suffices; a member
    /// it asks could have missed it too, so allow a second sync, plus
    /// `spread`.
    repair: Duration,
    /// A new member is listed by all: its seed answers its announce at
    /// once, the others hear of it by gossip and check it with a ping of
    /// their own before listing it (within a probe period): one probe
    /// period plus `spread`.
    join: Duration,
    /// A crashed member is absent from every view: some member probes it
    /// within a round of probes (each member probes the N − 1 others in
    /// turn, one per period: (N − 1) periods at worst), the probe gets
    /// its verdict (at the end of its period, and with `patient_probes`
    /// at the next probe's `probe_rtt`), the suspicion times
    /// out (the shortest timeout: the 3 other survivors confirm it), and
    /// the verdict spreads.
    detect: Duration,
    /// The same for a member nobody can confirm for: a side of a partition
    /// with fewer than 3 other members, a host that hears nothing, or
    /// survivors whose confirmations a rogue's made-up members delay. The
    /// suspicion then runs up to its longest timeout
    /// (`suspicion_timeout_max`).
    detect_unconfirmed: Duration,
    /// A healed partition merges: every member announces to one member it
    /// holds down every 10 s, so within 10 s one crosses; the answer
    /// carries the views, the members held down refute with a higher
    /// incarnation, and that spreads (twice `spread`), plus one probe
    /// period for the checks of members heard of from others.
    heal: Duration,
    /// Longest a live member may be missing from a view under attack or
    /// loss: a forged or mistaken verdict is refuted as soon as the
    /// member hears it, well within one suspicion timeout (as the
    /// simulator-level adversary tests assert).
    suspicion: Duration,
}

fn bounds() -> Bounds {
    let c = Config::new_lan(N);
    let period = c.probe_period;
    let suspicion = c.suspicion_timeout(N);
    let spread = 2 * period;
    let announce_down = c
        .periodic_announce_to_down_members
        .expect("new_lan announces to down members")
        .frequency;
    let checked_round = period * u32::try_from(N - 1).unwrap();
    let verdict = if c.patient_probes {
        period + c.probe_rtt
    } else {
        period
    };
    let sync = c
        .periodic_sync
        .expect("new_lan runs anti-entropy")
        .frequency;
    Bounds {
        spread,
        repair: 2 * (sync + sync / 10) + spread,
        join: period + spread,
        detect: checked_round + verdict + suspicion + spread,
        detect_unconfirmed: checked_round + verdict + c.suspicion_timeout_max(N) + spread,
        heal: announce_down + 2 * spread + period,
        suspicion,
    }
}

fn limit(bound: Duration) -> Duration {
    bound * LIMIT_FACTOR
}

/// Prints a measured time beside its bound, and asserts it within the
/// generous limit (the wait that measured it already panics past it).
fn report(test: &str, what: &str, measured: Duration, bound: Duration) {
    print_time(test, what, measured, bound);
    assert!(measured <= limit(bound), "{test}: {what} took {measured:?}");
}

/// Prints a measured time beside its bound.
fn print_time(test: &str, what: &str, measured: Duration, bound: Duration) {
    let mark = if measured <= bound {
        ""
    } else {
        "  (above bound)"
    };
    eprintln!(
        "FAULTS {test:<12} {what:<44} {:>6.2} s   bound {:>6.2} s{mark}",
        measured.as_secs_f64(),
        bound.as_secs_f64()
    );
}

/// One test at a time, whoever runs them: the namespaces and processes of
/// two tests at once would only slow each other down.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the lock and checks the machine; `None` (after saying why) when
/// these tests cannot run here.
fn setup(test: &str, needs_nft: bool) -> Option<MutexGuard<'static, ()>> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(why) = net::unavailable() {
        eprintln!("SKIPPED faults::{test}: {why}");
        return None;
    }
    if needs_nft && !net::have_nft() {
        eprintln!("SKIPPED faults::{test}: `nft` (nftables) is not installed");
        return None;
    }
    net::clean_leftovers();
    Some(guard)
}

fn all() -> Vec<usize> {
    (0..N).collect()
}

fn except(gone: &[usize]) -> Vec<usize> {
    (0..N).filter(|i| !gone.contains(i)).collect()
}

/// A network with `hosts` hosts and the cluster formed on hosts 0..N (all
/// seeded with host 0), every view exact.
fn cluster(test: &str, hosts: usize, extra: &[&str]) -> Net {
    let b = bounds();
    let mut net = Net::new(hosts);
    net.start(0, None, extra);
    for i in 1..N {
        net.start(i, Some(0), extra);
    }
    let formed = net.wait_views(&all(), &all(), "formation", limit(b.join));
    report(test, "cluster formed (5 started at once)", formed, b.join);
    net
}

/// Samples views every 50 ms for `span` (calling `each` between samples):
/// the longest time any host in `watched` was missing from the view of any
/// host in `observers`, and whether any view listed an address of
/// `intruders`.
fn watch(
    net: &mut Net,
    span: Duration,
    observers: &[usize],
    watched: &[usize],
    intruders: &[String],
    mut each: impl FnMut(&mut Net, Duration),
) -> (Duration, usize) {
    let start = Instant::now();
    let mut out_since: Vec<Option<Instant>> = vec![None; observers.len() * N];
    let mut longest = Duration::ZERO;
    let mut intruded = 0;
    while start.elapsed() < span {
        each(net, start.elapsed());
        let now = Instant::now();
        for (k, &o) in observers.iter().enumerate() {
            let view = net.view(o).unwrap_or_default();
            intruded += view
                .iter()
                .filter(|a| intruders.iter().any(|i| a.starts_with(i.as_str())))
                .count();
            for &w in watched {
                let since = &mut out_since[k * N + w];
                if view.contains(&Net::addr(w)) {
                    if let Some(s) = since.take() {
                        longest = longest.max(now - s);
                    }
                } else {
                    let s = *since.get_or_insert(now);
                    longest = longest.max(now - s);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (longest, intruded)
}

/// Custom broadcasts issued during a fault, each with the hosts it should
/// reach and how long it took to reach them all.
///
/// Each member sends an item only `max_transmissions(n)` times
/// (`retransmit_multiplier × ⌈log10(n + 1)⌉` = 4 at n = 5), each time to a
/// member not known to hold it. While a member that no longer answers is
/// still listed (crashed, cut off, leaving, behind a lossy link) some of
/// those go to it and are lost; then the periodic sync repairs it (see
/// [`Bounds::repair`]). So an item is expected everywhere within `spread`,
/// and must be within `repair`: the time each took is printed beside the
/// bound it met, and a test fails if any delivery is missing past
/// `limit(repair)`.
struct Spread {
    items: Vec<Item>,
}

struct Item {
    text: String,
    to: Vec<usize>,
    issued: Instant,
    took: Option<Duration>,
    /// The hosts it had not reached `limit(bound)` after it was issued.
    lost: Vec<usize>,
}

impl Spread {
    fn new() -> Self {
        Self { items: Vec::new() }
    }

    /// Has host `from` broadcast, to reach every host of `to` (but itself);
    /// returns the item's text.
    fn issue(&mut self, net: &Net, from: usize, to: &[usize]) -> String {
        let issued = Instant::now();
        let text = net.broadcast(from);
        let to = to.iter().copied().filter(|&r| r != from).collect();
        self.expect(&text, to, issued);
        text
    }

    /// Expects the item `text` (already broadcast) to reach every host of
    /// `to`, timed from `since`.
    fn expect(&mut self, text: &str, to: Vec<usize>, since: Instant) {
        self.items.push(Item {
            text: text.to_owned(),
            to,
            issued: since,
            took: None,
            lost: Vec::new(),
        });
    }

    /// Notes the items that have now reached all their hosts.
    fn poll(&mut self, net: &Net) {
        let now = Instant::now();
        for item in self.items.iter_mut().filter(|i| i.took.is_none()) {
            if item
                .to
                .iter()
                .all(|&r| net.received(r).contains(&item.text))
            {
                item.took = Some(now - item.issued);
            }
        }
    }

    /// Waits until every item reached all its hosts, or `limit(bound)`
    /// passed since it was issued (it is then lost for the hosts without
    /// it).
    fn settle(&mut self, net: &Net, bound: Duration) {
        loop {
            self.poll(net);
            let mut waiting = false;
            for item in self.items.iter_mut() {
                if item.took.is_some() || !item.lost.is_empty() {
                    continue;
                }
                if item.issued.elapsed() <= limit(bound) {
                    waiting = true;
                    continue;
                }
                let lacking = item.to.iter().copied();
                item.lost = lacking
                    .filter(|&r| !net.received(r).contains(&item.text))
                    .collect();
            }
            if !waiting {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// [`settle`](Self::settle)s within the repair bound, reports the
    /// slowest item beside `bound` (the epidemic's), and if some item took
    /// longer, the slowest beside [`Bounds::repair`]; reports every loss
    /// (`LOST: …`) and forgets the items. Fails on any loss.
    fn finish(&mut self, net: &Net, test: &str, what: &str, bound: Duration) {
        let repair = bounds().repair;
        self.settle(net, repair);
        let took: Vec<Duration> = self.items.iter().filter_map(|i| i.took).collect();
        let pairs: usize = self.items.iter().map(|i| i.to.len()).sum();
        let lost: usize = self.items.iter().map(|i| i.lost.len()).sum();
        let by_epidemic = took.iter().filter(|&&t| t <= bound).count();
        let line = format!(
            "{what}: {by_epidemic}/{} broadcasts reached all, slowest",
            self.items.len()
        );
        match took.iter().copied().filter(|&t| t <= bound).max() {
            Some(slowest) => print_time(test, &line, slowest, bound),
            None => eprintln!("FAULTS {test:<12} {what}: none within {bound:?}"),
        }
        if let Some(slowest) = took.iter().copied().filter(|&t| t > bound).max() {
            let line = format!(
                "{what}: {} more repaired by sync, slowest",
                took.len() - by_epidemic
            );
            print_time(test, &line, slowest, repair);
        }
        for item in self.items.iter().filter(|i| !i.lost.is_empty()) {
            eprintln!(
                "FAULTS {test:<12} LOST: broadcast {} never reached hosts {:?} (of {:?})",
                item.text, item.lost, item.to
            );
        }
        assert_eq!(lost, 0, "{test}: {what}: {lost} of {pairs} deliveries lost");
        self.items.clear();
    }
}

/// Once the cluster has settled after a fault (every view exact, then
/// `spread` more for the news of the change to die down), broadcasts from
/// `from` to every host of `to`: reported apart from those issued during
/// the fault, to compare.
fn settled_broadcasts(net: &Net, test: &str, from: &[usize], to: &[usize]) {
    let b = bounds();
    std::thread::sleep(b.spread);
    let mut spread = Spread::new();
    for &f in from {
        spread.issue(net, f, to);
    }
    spread.finish(net, test, "once settled", b.spread);
}

#[test]
fn kill9_of_a_host() {
    const T: &str = "kill9";
    let Some(_serial) = setup(T, false) else {
        return;
    };
    let b = bounds();
    let mut net = cluster(T, N, &[]);
    let survivors = except(&[3]);
    let mut spread = Spread::new();
    spread.issue(&net, 1, &survivors);
    let killed_at = Instant::now();
    net.kill9(3);
    // Broadcasts while the cluster has not noticed yet: the dead member is
    // still picked as a target, and must not eat them.
    spread.issue(&net, 0, &survivors);
    spread.issue(&net, 4, &survivors);
    spread.finish(&net, T, "around the kill", b.spread);
    net.wait_views(&survivors, &survivors, "kill -9 detected", limit(b.detect));
    report(
        T,
        "the killed host absent from all views",
        killed_at.elapsed(),
        b.detect,
    );
    settled_broadcasts(&net, T, &[1, 2], &survivors);
}

#[test]
fn partition_and_heal() {
    const T: &str = "partition";
    let Some(_serial) = setup(T, false) else {
        return;
    };
    let b = bounds();
    let net = cluster(T, N, &[]);
    // Hosts 3 and 4 move to a bridge of their own: two sides that each
    // still work.
    let (left, right) = (vec![0, 1, 2], vec![3, 4]);
    let cut_at = Instant::now();
    for &i in &right {
        net.attach(i, "br1");
    }
    let mut spread = Spread::new();
    let from_left = spread.issue(&net, 0, &left);
    let from_right = spread.issue(&net, 3, &right);
    spread.finish(&net, T, "in the partition (own side)", b.spread);
    let alone = b.detect_unconfirmed;
    net.wait_views(&left, &left, "left side alone", limit(alone));
    net.wait_views(&right, &right, "right side alone", limit(alone));
    report(T, "each side lists only itself", cut_at.elapsed(), alone);
    let healed_at = Instant::now();
    for &i in &right {
        net.attach(i, "br0");
    }
    net.wait_views(&all(), &all(), "healed", limit(b.heal));
    report(T, "healed: every view exact", healed_at.elapsed(), b.heal);
    // The items issued on each side, long retired from the backlogs, come
    // across with the first summary exchange between the sides.
    let mut across = Spread::new();
    across.expect(&from_left, right.clone(), healed_at);
    across.expect(&from_right, left.clone(), healed_at);
    across.finish(
        &net,
        T,
        "issued in the partition, across the heal",
        b.repair,
    );
    settled_broadcasts(&net, T, &[4, 1], &all());
}

/// An nftables table that drops every packet coming in on `eth0`.
const DEAF: &str = "table inet fcf_cut {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    iifname \"eth0\" drop\n  }\n}\n";

#[test]
fn one_way_cut_and_heal() {
    const T: &str = "one-way";
    const DEAF_HOST: usize = 2;
    let Some(_serial) = setup(T, true) else {
        return;
    };
    let b = bounds();
    let net = cluster(T, N, &[]);
    // Host 2 still sends, but hears nothing: it cannot answer a probe.
    let cut_at = Instant::now();
    net.nft(DEAF_HOST, DEAF);
    let others = except(&[DEAF_HOST]);
    let mut spread = Spread::new();
    spread.issue(&net, 0, &others);
    spread.finish(&net, T, "during the cut (to the rest)", b.spread);
    net.wait_views(&others, &others, "the deaf host dropped", limit(b.detect));
    report(
        T,
        "the deaf host absent from the others' views",
        cut_at.elapsed(),
        b.detect,
    );
    net.wait_views(
        &[DEAF_HOST],
        &[DEAF_HOST],
        "the deaf host alone",
        limit(b.detect_unconfirmed),
    );
    report(
        T,
        "the deaf host lists only itself",
        cut_at.elapsed(),
        b.detect_unconfirmed,
    );
    let heard = net.received(DEAF_HOST);
    assert!(
        heard.is_empty(),
        "the deaf host received broadcasts: {heard:?}"
    );
    let healed_at = Instant::now();
    net.exec(DEAF_HOST, &["nft", "delete", "table", "inet", "fcf_cut"]);
    net.wait_views(&all(), &all(), "healed", limit(b.heal));
    report(T, "healed: every view exact", healed_at.elapsed(), b.heal);
    settled_broadcasts(&net, T, &[DEAF_HOST, 3], &all());
}

#[test]
fn rolling_restart_of_every_member() {
    const T: &str = "rolling";
    let Some(_serial) = setup(T, false) else {
        return;
    };
    let b = bounds();
    let mut net = cluster(T, N, &[]);
    let mut worst = Duration::ZERO;
    // Issued as a member goes (until the others hear it left, some
    // transmissions go to it), and by each member once back (amid the news
    // of its return): best effort.
    let mut going = Spread::new();
    let mut back = Spread::new();
    let rolled_at = Instant::now();
    for i in 0..N {
        // As a deployment does it: stop (the agent leaves), start again at
        // once on the same address, with a live member as its seed.
        going.issue(&net, (i + 2) % N, &except(&[i]));
        net.terminate(i, Duration::from_secs(10));
        going.settle(&net, b.spread);
        let seed = (i + 1) % N;
        net.start(i, Some(seed), &[]);
        let t = net.wait_views(&all(), &all(), "restarted member back", limit(b.join));
        worst = worst.max(t);
        back.issue(&net, i, &all());
        back.settle(&net, b.spread);
    }
    report(T, "slowest member back (of 5 restarts)", worst, b.join);
    going.finish(&net, T, "as members left", b.spread);
    back.finish(&net, T, "from members back", b.spread);
    eprintln!(
        "FAULTS {T:<12} the whole roll took {:.2} s",
        rolled_at.elapsed().as_secs_f64()
    );
    settled_broadcasts(&net, T, &[0, 3], &all());
}

#[test]
fn mass_restart() {
    const T: &str = "mass";
    let Some(_serial) = setup(T, false) else {
        return;
    };
    let b = bounds();
    let mut net = cluster(T, N, &[]);
    let mut spread = Spread::new();
    // Everyone but the seed killed at once, and started again at once on
    // the same addresses: the seed still lists their former selves.
    for i in 1..N {
        net.kill9(i);
    }
    let restarted_at = Instant::now();
    for i in 1..N {
        net.start(i, Some(0), &[]);
    }
    net.wait_views(&all(), &all(), "all but the seed restarted", limit(b.join));
    report(
        T,
        "4 of 5 killed and restarted: views exact",
        restarted_at.elapsed(),
        b.join,
    );
    spread.issue(&net, 0, &all());
    spread.issue(&net, 3, &all());
    spread.finish(&net, T, "just after 4 restarts", b.spread);
    // Then everyone, the seed too.
    for i in 0..N {
        net.kill9(i);
    }
    let restarted_at = Instant::now();
    net.start(0, None, &[]);
    for i in 1..N {
        net.start(i, Some(0), &[]);
    }
    net.wait_views(&all(), &all(), "all restarted", limit(b.join));
    report(
        T,
        "all 5 killed and restarted: views exact",
        restarted_at.elapsed(),
        b.join,
    );
    spread.issue(&net, 4, &all());
    spread.issue(&net, 0, &all());
    spread.finish(&net, T, "just after 5 restarts", b.spread);
    settled_broadcasts(&net, T, &[2, 1], &all());
}

#[test]
fn packet_loss_on_a_link() {
    const T: &str = "loss";
    const LOSS_PERCENT: u32 = 20;
    const LOSSY: [usize; 2] = [2, 4];
    const SPAN: Duration = Duration::from_secs(15);
    let Some(_serial) = setup(T, true) else {
        return;
    };
    let b = bounds();
    let mut net = cluster(T, N, &[]);
    // Hosts 2 and 4 lose 20% of their packets each way (so 2 to 4 loses
    // 36% each way).
    let rules = format!(
        "table inet fcf_loss {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    \
         iifname \"eth0\" numgen random mod 100 < {LOSS_PERCENT} drop\n  }}\n  chain output {{\n    \
         type filter hook output priority 0; policy accept;\n    \
         oifname \"eth0\" numgen random mod 100 < {LOSS_PERCENT} drop\n  }}\n}}\n"
    );
    for h in LOSSY {
        net.nft(h, &rules);
    }
    // Broadcasts from a lossy host and from another, every 3 s.
    let mut spread = Spread::new();
    let mut next = Duration::ZERO;
    let (longest_out, _) = watch(&mut net, SPAN, &all(), &all(), &[], |net, t| {
        if t >= next {
            spread.issue(net, LOSSY[0], &all());
            spread.issue(net, 0, &all());
            next += Duration::from_secs(3);
        }
        spread.poll(net);
    });
    report(
        T,
        &format!("{LOSS_PERCENT}% loss on 2 links: longest out of a view"),
        longest_out,
        b.suspicion,
    );
    assert!(
        longest_out <= b.suspicion,
        "a live member was missing from a view for {longest_out:?} under {LOSS_PERCENT}% loss"
    );
    spread.finish(&net, T, "under loss", b.spread);
    for h in LOSSY {
        net.exec(h, &["nft", "delete", "table", "inet", "fcf_loss"]);
    }
    let t = net.wait_views(&all(), &all(), "after the loss", limit(b.spread));
    report(T, "views exact after the loss", t, b.spread);
    settled_broadcasts(&net, T, &LOSSY, &all());
}

#[test]
fn garbage_flood_from_a_rogue_host() {
    const T: &str = "garbage";
    const DATAGRAMS: u32 = 10_000;
    const INTERVAL_US: u32 = 500;
    let Some(_serial) = setup(T, false) else {
        return;
    };
    let b = bounds();
    let mut net = cluster(T, N + 1, &[]);
    let to: Vec<String> = all().into_iter().map(Net::addr).collect();
    let rogue = net.spawn_helper(
        ROGUE,
        &[
            "garbage".into(),
            "--bind".into(),
            Net::addr(ROGUE),
            "--to".into(),
            to.join(","),
            "--count".into(),
            DATAGRAMS.to_string(),
            "--interval-us".into(),
            INTERVAL_US.to_string(),
        ],
    );
    // At most 2,000 datagrams a second for 5 s or more; watched as long,
    // and a little longer.
    let span = Duration::from_micros(u64::from(DATAGRAMS * INTERVAL_US)) + b.spread;
    let mut spread = Spread::new();
    let mut changed = 0;
    let want = Net::view_of(&all());
    let intruders = [Net::ip_of(ROGUE) + ":"];
    let (longest_out, intruded) = watch(&mut net, span, &all(), &all(), &intruders, |net, t| {
        if spread.items.len() < 2 && t >= Duration::from_secs(1) {
            spread.issue(net, 1, &all());
            spread.issue(net, 4, &all());
        }
        spread.poll(net);
        changed += all()
            .into_iter()
            .filter(|&i| net.view(i).as_deref() != Some(&want[..]))
            .count();
    });
    let summary = net.finish_helper(rogue, Duration::from_secs(60));
    eprintln!("FAULTS {T:<12} rogue: {summary}");
    assert_eq!(
        longest_out,
        Duration::ZERO,
        "garbage removed a member from a view"
    );
    assert_eq!(intruded, 0, "the rogue was listed");
    assert_eq!(changed, 0, "a view changed during the flood");
    for i in all() {
        assert!(net.running(i), "host {i}'s agent died in the flood");
    }
    eprintln!(
        "FAULTS {T:<12} no view changed in {:.1} s of flood",
        span.as_secs_f64()
    );
    spread.finish(&net, T, "during the flood", b.spread);
}

#[test]
fn wrong_key_and_wrong_label_never_get_in() {
    const T: &str = "wrong-key";
    const KEY: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const OTHER: &str = "2222222222222222222222222222222222222222222222222222222222222222";
    let Some(_serial) = setup(T, false) else {
        return;
    };
    let b = bounds();
    let mut net = cluster(T, N + 2, &["--key", KEY]);
    // One intruder with another key, one with the key but another label;
    // both announce to the seed.
    net.start(N, Some(0), &["--key", OTHER]);
    net.start(N + 1, Some(0), &["--key", KEY, "--cluster", "other"]);
    let intruders = [Net::ip_of(N) + ":", Net::ip_of(N + 1) + ":"];
    let mut spread = Spread::new();
    spread.issue(&net, 0, &all());
    // As long as a crash takes to be detected: anything let in would show.
    let (longest_out, intruded) =
        watch(&mut net, b.detect, &all(), &all(), &intruders, |net, _| {
            spread.poll(net);
        });
    assert_eq!(intruded, 0, "an intruder was listed");
    assert_eq!(longest_out, Duration::ZERO, "a member left a view");
    for i in [N, N + 1] {
        assert_eq!(
            net.view(i),
            Some(Net::view_of(&[i])),
            "intruder {i} saw members"
        );
        assert!(net.received(i).is_empty(), "intruder {i} got a broadcast");
    }
    eprintln!(
        "FAULTS {T:<12} intruders listed by nobody in {:.1} s",
        b.detect.as_secs_f64()
    );
    spread.finish(&net, T, "members only", b.spread);
}

#[test]
fn forged_verdicts_about_a_live_member() {
    const T: &str = "verdicts";
    const TARGET: usize = 1;
    const KILLED: usize = 3;
    const ATTACK_MS: u64 = 8_000;
    let Some(_serial) = setup(T, false) else {
        return;
    };
    let b = bounds();
    let mut net = cluster(T, N + 1, &[]);
    let to: Vec<String> = all().into_iter().map(Net::addr).collect();
    // The rogue speaks the protocol (plain envelopes, the default label):
    // every 100 ms it learns the target's identity and incarnation from its
    // answer to an announce, and tells every member the target is down,
    // then suspect, at that incarnation.
    let rogue = net.spawn_helper(
        ROGUE,
        &[
            "verdicts".into(),
            "--bind".into(),
            Net::addr(ROGUE),
            "--to".into(),
            to.join(","),
            "--target".into(),
            Net::addr(TARGET),
            "--ms".into(),
            ATTACK_MS.to_string(),
            "--interval-ms".into(),
            "100".into(),
        ],
    );
    // Meanwhile a real crash: the attack must not delay its detection; and
    // a broadcast from the target.
    let mut killed_at = None;
    let mut detected = None;
    let survivors = except(&[KILLED]);
    let observers = except(&[TARGET, KILLED]);
    let mut spread = Spread::new();
    let (longest_out, _) = watch(
        &mut net,
        Duration::from_millis(ATTACK_MS),
        &observers,
        &[TARGET],
        &[],
        |net, t| {
            if killed_at.is_none() && t >= Duration::from_secs(1) {
                net.kill9(KILLED);
                killed_at = Some(Instant::now());
                spread.issue(net, TARGET, &survivors);
            }
            if let (Some(at), None) = (killed_at, detected)
                && net.listed_by_none(&survivors, KILLED)
            {
                detected = Some(at.elapsed());
            }
            spread.poll(net);
        },
    );
    // Not yet found when the attack ends: keep watching for the killed
    // host alone (the rogue, listed while it spoke, is dropped later).
    let detected = detected.unwrap_or_else(|| {
        let bound = limit(b.detect_unconfirmed);
        loop {
            let at = killed_at.expect("killed during the attack").elapsed();
            if net.listed_by_none(&survivors, KILLED) {
                break at;
            }
            assert!(at < bound, "crash detected: not within {bound:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let summary = net.finish_helper(rogue, Duration::from_secs(30));
    let attack_over = Instant::now();
    eprintln!("FAULTS {T:<12} rogue: {summary}");
    report(
        T,
        "target's longest absence from a view",
        longest_out,
        b.suspicion,
    );
    assert!(
        longest_out <= b.suspicion,
        "the target was missing from a view for {longest_out:?}"
    );
    report(
        T,
        "crash under attack absent from all views",
        detected,
        b.detect_unconfirmed,
    );
    spread.finish(&net, T, "from the target under attack", b.spread);
    // The rogue was listed while it spoke (it answers no probe): gone
    // once silent.
    net.wait_views(&survivors, &survivors, "after the attack", limit(b.detect));
    report(
        T,
        "views exact after the attack (rogue gone)",
        attack_over.elapsed(),
        b.detect,
    );
    settled_broadcasts(&net, T, &[TARGET], &survivors);
}

/// An nftables table that counts the UDP packets arriving on `eth0`.
const COUNT_UDP: &str = "table inet fcf_count {\n  counter udp_in { }\n  chain input {\n    type filter hook input priority 0; policy accept;\n    iifname \"eth0\" meta l4proto udp counter name \"udp_in\"\n  }\n}\n";

/// UDP payload bytes counted by [`COUNT_UDP`] in host `i` (IPv4: 20 bytes
/// of IP header and 8 of UDP per packet).
fn udp_payload_in(net: &Net, i: usize) -> u64 {
    let listing = net.exec_output(
        i,
        &["nft", "list", "counter", "inet", "fcf_count", "udp_in"],
    );
    let number = |after: &str| -> u64 {
        listing
            .split(after)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {after} in {listing}"))
    };
    number("bytes ") - 28 * number("packets ")
}

#[test]
fn forged_announces_aimed_at_a_third_party() {
    const T: &str = "third-party";
    const ATTACK_MS: u64 = 5_000;
    let Some(_serial) = setup(T, true) else {
        return;
    };
    let b = bounds();
    let mut net = cluster(T, N + 2, &[]);
    let to: Vec<String> = all().into_iter().map(Net::addr).collect();
    // The victim runs nothing; its kernel counts every UDP packet that
    // reaches it, on any port.
    net.nft(VICTIM, COUNT_UDP);
    // The rogue claims to be the victim in announces (from its own
    // address), and gossips fake members at the victim's address, every
    // 100 ms, to every member.
    let rogue = net.spawn_helper(
        ROGUE,
        &[
            "third-party".into(),
            "--bind".into(),
            Net::addr(ROGUE),
            "--to".into(),
            to.join(","),
            "--victim".into(),
            Net::addr(VICTIM),
            "--ms".into(),
            ATTACK_MS.to_string(),
            "--interval-ms".into(),
            "100".into(),
        ],
    );
    let mut spread = Spread::new();
    let (longest_out, intruded) = watch(
        &mut net,
        Duration::from_millis(ATTACK_MS),
        &all(),
        &all(),
        &[Net::ip_of(VICTIM) + ":"],
        |net, t| {
            if spread.items.is_empty() && t >= Duration::from_secs(1) {
                spread.issue(net, 2, &all());
            }
            spread.poll(net);
        },
    );
    let summary = net.finish_helper(rogue, Duration::from_secs(30));
    let attack_over = Instant::now();
    // Checks of the fake members still under way get a few periods more.
    std::thread::sleep(b.spread);
    let got = udp_payload_in(&net, VICTIM);
    let sent: u64 = summary
        .strip_prefix("sent ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    eprintln!(
        "FAULTS {T:<12} rogue: {summary}; the victim got {got} B of UDP payload: ratio {:.3} \
         (at most {AMPLIFICATION_FACTOR} allowed)",
        got as f64 / sent.max(1) as f64
    );
    assert!(
        got as f64 <= AMPLIFICATION_FACTOR as f64 * sent as f64,
        "the victim got {got} B for the rogue's {sent} B"
    );
    assert_eq!(intruded, 0, "the victim was listed");
    assert_eq!(
        longest_out,
        Duration::ZERO,
        "a member left a view during the attack"
    );
    // The rogue is listed while it speaks, and answers no probe.
    spread.finish(&net, T, "during the attack", b.spread);
    // The rogue itself was listed while it spoke; gone once it is silent.
    net.wait_views(&all(), &all(), "after the attack", limit(b.detect));
    report(
        T,
        "views exact after the attack (rogue gone)",
        attack_over.elapsed(),
        b.detect,
    );
    settled_broadcasts(&net, T, &[2], &all());
}
