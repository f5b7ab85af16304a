//! A deterministic simulator: many members on a virtual clock and a virtual
//! network (feature `sim`).
//!
//! Members are ordinary [`Endpoint`]s, driven through the same poll API the
//! drivers use, so what runs here is what runs in production. Everything
//! random (loss, jitter, duplication, and each member's own RNG if you seed
//! it from [`Sim::member_seed`]) comes from one seed: the same seed and the
//! same calls replay the same run, byte for byte ([`NetStats::digest`]).
//!
//! The network model ([`LinkParams`], per directed link or for all): latency
//! plus uniform jitter (which reorders), loss, duplication, and a per-sender
//! bandwidth limit; links can be blocked one way or both (partitions).
//! Member faults: [`crash`](Sim::crash), [`restart`](Sim::restart) (fresh,
//! or restored from the crashed member's table), [`set_slow`](Sim::set_slow)
//! (every input handled late, as by a CPU-starved process) and
//! [`pause`](Sim::pause) (nothing handled for a while, input buffered).
//!
//! As it runs the simulator measures crash detection ([`Sim::detections`]),
//! false positives ([`Sim::false_positives`]), how tracked news spreads
//! ([`Sim::track`]) and view accuracy over time ([`Sim::sample_accuracy`]).
//!
//! Members run with a real [`Envelope`] (the simulation is generic over it,
//! so the same runs can be sealed), and are reported by address, as the rest
//! of the API does.
//!
//! Cost: a small heap of datagrams in flight and a calendar with one timer
//! per member (module `queue`); the per-member state every event checks
//! sits in a compact array apart from the endpoints, and members are found
//! by address through a hash map. Nothing scans all members per event.

mod net;
mod observe;
mod queue;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use rand::rngs::Xoshiro128PlusPlus;
use rand::{Rng, RngExt, SeedableRng};

use crate::{BroadcastHandler, Codec, Endpoint, Envelope, Event, Identity, Notification};

pub use net::{LinkParams, NetStats};
use observe::Tracker;
pub use observe::{AccuracySample, Detection, Spread, percentile};
use queue::{Next, Queue};

/// Set in a datagram's `from` when a slow member already delayed it.
const LATE: u32 = 1 << 31;

/// Members whose next input is read ahead together (see [`Sim::read_ahead`]).
const READ_AHEAD: usize = 8;

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Datagrams in flight, by index, with their free slots reused.
#[derive(Default)]
struct Slab {
    items: Vec<Vec<u8>>,
    free: Vec<u32>,
}

impl Slab {
    fn put(&mut self, data: Vec<u8>) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.items[i as usize] = data;
                i
            }
            None => {
                self.items.push(data);
                u32::try_from(self.items.len() - 1).unwrap_or(u32::MAX)
            }
        }
    }

    fn take(&mut self, i: u32) -> Vec<u8> {
        self.free.push(i);
        self.items
            .get_mut(i as usize)
            .map(core::mem::take)
            .unwrap_or_default()
    }
}

/// What every event checks about its member, kept apart from the (large)
/// endpoints so that checking costs one small read.
#[derive(Clone, Copy)]
struct Hot {
    up: bool,
    life: u32,
    /// Input waits until then (nanoseconds).
    paused_until: u64,
    /// Every input is handled this late (nanoseconds).
    slow: u64,
}

/// A member's endpoint, and when its uplink is free again.
struct Node<E> {
    endpoint: E,
    egress_free: Duration,
}

type Ep<T, C, R, B, E> = Endpoint<T, C, R, B, E>;
type Nodes<T, C, R, B, E> = Vec<Node<Ep<T, C, R, B, E>>>;
type Trackers<T, C, R, B, E> = Vec<Tracker<Ep<T, C, R, B, E>>>;

/// Datagrams copied by [`Sim::tap`], with their destinations.
pub type Tapped<A> = Vec<(A, Vec<u8>)>;

/// The simulation. See the [module docs](self).
pub struct Sim<T, C, R, B, E>
where
    T: Identity,
    C: Codec<T>,
    R: Rng,
    B: BroadcastHandler<T>,
    E: Envelope,
{
    now: Duration,
    nodes: Nodes<T, C, R, B, E>,
    hot: Vec<Hot>,
    /// Each member's address, by node (as added).
    addrs: Vec<T::Addr>,
    index: HashMap<T::Addr, u32, FixedState>,
    queue: Queue,
    slab: Slab,
    rng: Xoshiro128PlusPlus,
    link: LinkParams,
    links: BTreeMap<(u32, u32), LinkParams>,
    blocked: BTreeSet<(u32, u32)>,
    record: bool,
    notifications: Vec<(Duration, T::Addr, Notification<T>)>,
    stats: NetStats,
    detections: Vec<Detection<T::Addr>>,
    /// For each crashed node: its detection record and who already noticed.
    open_crashes: BTreeMap<u32, (usize, BTreeSet<u32>)>,
    false_positives: u64,
    trackers: Trackers<T, C, R, B, E>,
    /// Bytes sent to addresses no member has.
    strangers: BTreeMap<T::Addr, u64>,
    /// The member whose datagrams are copied as sent (see [`Sim::tap`]).
    tap: Option<(u32, Tapped<T::Addr>)>,
    accuracy: Vec<AccuracySample>,
    /// `(receiver, sender)` of the datagrams sent since the last read-ahead,
    /// and of those read ahead last time (see [`Sim::read_ahead`]).
    sent_recently: Vec<(u32, u32)>,
    sent_before: Vec<(u32, u32)>,
    /// The nodes of the next timers (see [`Sim::read_ahead`]).
    next_timers: Vec<u32>,
    timers_until_read_ahead: usize,
}

impl<T, C, R, B, E> Sim<T, C, R, B, E>
where
    T: Identity,
    C: Codec<T>,
    R: Rng,
    B: BroadcastHandler<T>,
    E: Envelope,
{
    /// An empty simulation with [`LinkParams::default`] links.
    pub fn new(seed: u64) -> Self {
        Self {
            now: Duration::ZERO,
            nodes: Vec::new(),
            hot: Vec::new(),
            addrs: Vec::new(),
            // Never iterated where order matters: a fixed seed is enough.
            index: HashMap::with_hasher(FixedState::with_seed(0)),
            queue: Queue::default(),
            slab: Slab::default(),
            rng: Xoshiro128PlusPlus::seed_from_u64(seed),
            link: LinkParams::default(),
            links: BTreeMap::new(),
            blocked: BTreeSet::new(),
            record: true,
            notifications: Vec::new(),
            stats: NetStats {
                digest: net::DIGEST_START,
                ..NetStats::default()
            },
            detections: Vec::new(),
            open_crashes: BTreeMap::new(),
            false_positives: 0,
            trackers: Vec::new(),
            strangers: BTreeMap::new(),
            tap: None,
            accuracy: Vec::new(),
            sent_recently: Vec::with_capacity(READ_AHEAD),
            sent_before: Vec::with_capacity(READ_AHEAD),
            next_timers: Vec::with_capacity(READ_AHEAD),
            timers_until_read_ahead: 0,
        }
    }

    /// A seed for a member's own RNG, drawn from the simulation's.
    pub fn member_seed(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// The virtual time.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Whether to keep every notification for [`Sim::notifications`]
    /// (default on). Turn it off for large runs: the statistics do not
    /// need it.
    pub fn set_record_notifications(&mut self, record: bool) {
        self.record = record;
    }

    /// Sets every link's latency and jitter.
    pub fn set_latency(&mut self, latency: Duration, jitter: Duration) {
        self.link.latency = latency;
        self.link.jitter = jitter;
    }

    /// Sets every link's loss probability (clamped to `0..=1`).
    pub fn set_loss(&mut self, loss: f64) {
        self.link.loss = clamp01(loss);
    }

    /// Sets the parameters of every link without its own.
    pub fn set_link_defaults(&mut self, params: LinkParams) {
        self.link = params;
    }

    /// Sets the parameters of the link from `from` to `to` (one way).
    pub fn set_link(&mut self, from: &T::Addr, to: &T::Addr, params: LinkParams) {
        if let (Some(a), Some(b)) = (self.node_of(from), self.node_of(to)) {
            self.links.insert((a, b), params);
        }
    }

    fn node_of(&self, addr: &T::Addr) -> Option<u32> {
        self.index.get(addr).copied()
    }

    /// Adds a member, or replaces the one with the same address (a restart
    /// on a new endpoint: use [`Sim::restart`] to also restore its table).
    pub fn add(&mut self, endpoint: Ep<T, C, R, B, E>) -> T::Addr {
        let addr = endpoint.foca().identity().addr();
        let node = match self.index.get(&addr) {
            Some(&n) => {
                self.nodes[n as usize].endpoint = endpoint;
                let hot = &mut self.hot[n as usize];
                hot.up = true;
                hot.life += 1;
                hot.paused_until = 0;
                hot.slow = 0;
                self.queue.disarm(n);
                n
            }
            None => {
                let n = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
                self.nodes.push(Node {
                    endpoint,
                    egress_free: Duration::ZERO,
                });
                self.addrs.push(addr.clone());
                self.hot.push(Hot {
                    up: true,
                    life: 0,
                    paused_until: 0,
                    slow: 0,
                });
                self.index.insert(addr.clone(), n);
                for t in &mut self.trackers {
                    t.reached.push(None);
                }
                n
            }
        };
        self.open_crashes.remove(&node);
        self.after_event(node);
        addr
    }

    /// Restarts a crashed (or running) member on `endpoint`; with `restore`,
    /// the new endpoint first gets the old one's member table, as a process
    /// that persisted its membership would.
    pub fn restart(&mut self, endpoint: Ep<T, C, R, B, E>, restore: bool) -> T::Addr {
        let addr = endpoint.foca().identity().addr();
        let mut endpoint = endpoint;
        if restore && let Some(&n) = self.index.get(&addr) {
            let old: Vec<_> = self.nodes[n as usize]
                .endpoint
                .foca()
                .iter_membership_state()
                .cloned()
                .collect();
            let _ = endpoint.command(self.now, crate::Command::Restore(old));
        }
        self.add(endpoint)
    }

    /// Stops a member: it neither sends nor receives; its timers stop.
    /// Starts measuring how long the others take to declare it down.
    pub fn crash(&mut self, addr: &T::Addr) {
        let Some(n) = self.node_of(addr) else { return };
        let hot = &mut self.hot[n as usize];
        if !hot.up {
            return;
        }
        hot.up = false;
        self.queue.disarm(n);
        let observers = self.running();
        self.detections.push(Detection {
            member: addr.clone(),
            crashed_at: self.now,
            observers,
            latencies: Vec::new(),
        });
        self.open_crashes
            .insert(n, (self.detections.len() - 1, BTreeSet::new()));
    }

    /// Whether a member is running.
    pub fn is_up(&self, addr: &T::Addr) -> bool {
        self.node_of(addr).is_some_and(|n| self.hot[n as usize].up)
    }

    /// Makes a member handle every input `delay` late (a starved process).
    pub fn set_slow(&mut self, addr: &T::Addr, delay: Duration) {
        if let Some(n) = self.node_of(addr) {
            self.hot[n as usize].slow = nanos(delay);
        }
    }

    /// Freezes a member for `duration`: input waits (buffered), timers wait.
    pub fn pause(&mut self, addr: &T::Addr, duration: Duration) {
        if let Some(n) = self.node_of(addr) {
            self.hot[n as usize].paused_until = nanos(self.now + duration);
        }
    }

    /// Drops datagrams from `from` to `to` (one way).
    pub fn block(&mut self, from: T::Addr, to: T::Addr) {
        if let (Some(a), Some(b)) = (self.node_of(&from), self.node_of(&to)) {
            self.blocked.insert((a, b));
        }
    }

    /// Cuts every link between `a` and `b`, both ways.
    pub fn partition(&mut self, a: &[T::Addr], b: &[T::Addr]) {
        for x in a.iter().filter_map(|x| self.node_of(x)).collect::<Vec<_>>() {
            for y in b.iter().filter_map(|y| self.node_of(y)).collect::<Vec<_>>() {
                self.blocked.insert((x, y));
                self.blocked.insert((y, x));
            }
        }
    }

    /// Cuts `addr` off from every other member, both ways.
    pub fn isolate(&mut self, addr: &T::Addr) {
        // Into a set of links: the map's order does not matter.
        let others: Vec<T::Addr> = self.index.keys().filter(|a| *a != addr).cloned().collect();
        self.partition(core::slice::from_ref(addr), &others);
    }

    /// Delivers `data` to the member at `to` now, as if it came from
    /// `from`: any address, a member's or not (a rogue's datagram, with its
    /// source forged or not). Its answers go out as usual; those to
    /// addresses no member has are counted in
    /// [`sent_to_strangers`](Self::sent_to_strangers). Returns false if no
    /// running member is at `to`.
    pub fn inject(&mut self, from: T::Addr, to: &T::Addr, data: &mut [u8]) -> bool {
        let Some(n) = self.node_of(to).filter(|&n| self.hot[n as usize].up) else {
            return false;
        };
        let endpoint = &mut self.nodes[n as usize].endpoint;
        let _ = endpoint.handle_datagram(self.now, from, data);
        self.after_event(n);
        true
    }

    /// Copies every datagram the member at `addr` sends from now on (sealed,
    /// as on the wire), as an eavesdropper on its link would: see
    /// [`take_tapped`](Self::take_tapped). One member at a time; `None`
    /// stops.
    pub fn tap(&mut self, addr: Option<&T::Addr>) {
        self.tap = addr.and_then(|a| self.node_of(a)).map(|n| (n, Vec::new()));
    }

    /// The datagrams copied by [`tap`](Self::tap) since the last call, with
    /// their destinations, oldest first.
    pub fn take_tapped(&mut self) -> Tapped<T::Addr> {
        self.tap
            .as_mut()
            .map(|(_, log)| core::mem::take(log))
            .unwrap_or_default()
    }

    /// Bytes sent to each address no member has (in the envelope, as on
    /// the wire), since the start: what a rogue made members send to a
    /// third party.
    pub fn sent_to_strangers(&self) -> &BTreeMap<T::Addr, u64> {
        &self.strangers
    }

    /// Restores every blocked link.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// The member's endpoint.
    pub fn endpoint(&self, addr: &T::Addr) -> Option<&Ep<T, C, R, B, E>> {
        self.node_of(addr).map(|n| &self.nodes[n as usize].endpoint)
    }

    /// The addresses of all members, running or not, in insertion order.
    pub fn addrs(&self) -> Vec<T::Addr> {
        self.nodes
            .iter()
            .map(|n| n.endpoint.foca().identity().addr())
            .collect()
    }

    /// How many members are running.
    pub fn running(&self) -> usize {
        self.hot.iter().filter(|h| h.up).count()
    }

    /// Runs `f` on a member's endpoint at the current time (a user command:
    /// announce, leave, broadcast...), then sends what it produced.
    pub fn with<X>(
        &mut self,
        addr: &T::Addr,
        f: impl FnOnce(&mut Ep<T, C, R, B, E>, Duration) -> X,
    ) -> Option<X> {
        let n = self.node_of(addr)?;
        let now = self.now;
        let x = f(&mut self.nodes[n as usize].endpoint, now);
        self.after_event(n);
        Some(x)
    }

    /// Every notification so far (while recording): when, which member, what.
    pub fn notifications(&self) -> &[(Duration, T::Addr, Notification<T>)] {
        &self.notifications
    }

    /// Network totals so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Every crash so far, with its detection latencies.
    pub fn detections(&self) -> &[Detection<T::Addr>] {
        &self.detections
    }

    /// `MemberDown` notifications about members that were running.
    pub fn false_positives(&self) -> u64 {
        self.false_positives
    }

    /// Starts measuring how long until `check` holds on every running member
    /// (checked on each member after each of its events). Returns the
    /// tracker's index for [`Sim::spread`].
    pub fn track(
        &mut self,
        name: &str,
        check: impl Fn(&Ep<T, C, R, B, E>) -> bool + 'static,
    ) -> usize {
        let mut tracker = Tracker {
            name: String::from(name),
            started: self.now,
            check: Box::new(check),
            reached: alloc::vec![None; self.nodes.len()],
            done: None,
        };
        for (i, node) in self.nodes.iter().enumerate() {
            if self.hot[i].up && (tracker.check)(&node.endpoint) {
                tracker.reached[i] = Some(Duration::ZERO);
            }
        }
        self.trackers.push(tracker);
        let id = self.trackers.len() - 1;
        self.check_done(id);
        id
    }

    /// How tracked news spread so far.
    pub fn spread(&self, tracker: usize) -> Option<Spread<T::Addr>> {
        let t = self.trackers.get(tracker)?;
        Some(Spread {
            name: t.name.clone(),
            started: t.started,
            reached: self
                .addrs
                .iter()
                .cloned()
                .zip(t.reached.iter().copied())
                .collect(),
            all: t.done,
        })
    }

    /// Records one [`AccuracySample`] now.
    pub fn sample_accuracy(&mut self) -> AccuracySample {
        let crashed: Vec<T::Addr> = self
            .nodes
            .iter()
            .zip(&self.hot)
            .filter(|(_, h)| !h.up)
            .map(|(n, _)| n.endpoint.foca().identity().addr())
            .collect();
        let others = self.nodes.len().saturating_sub(1);
        let mut sum = 0.0;
        let mut observers = 0usize;
        for (node, _) in self.nodes.iter().zip(&self.hot).filter(|(_, h)| h.up) {
            let foca = node.endpoint.foca();
            let stale = crashed
                .iter()
                .filter(|a| foca.member(a).is_some_and(|m| m.is_active()))
                .count();
            let live_seen = foca.num_members().saturating_sub(stale);
            let correct = live_seen + (crashed.len() - stale);
            sum += if others == 0 {
                1.0
            } else {
                correct as f64 / others as f64
            };
            observers += 1;
        }
        let sample = AccuracySample {
            at: self.now,
            accuracy: if observers == 0 {
                1.0
            } else {
                sum / observers as f64
            },
        };
        self.accuracy.push(sample);
        sample
    }

    /// Every accuracy sample taken so far.
    pub fn accuracy(&self) -> &[AccuracySample] {
        &self.accuracy
    }

    /// Runs until virtual time `now + duration`.
    pub fn run_for(&mut self, duration: Duration) {
        let until = self.now + duration;
        self.run_until(until);
    }

    /// Runs until virtual time `until`, processing every delivery and timer
    /// due by then in time order.
    pub fn run_until(&mut self, until: Duration) {
        let limit = nanos(until);
        while let Some(next) = self.queue.pop_due(limit) {
            match next {
                Next::Datagram(d) => {
                    self.now = self.now.max(Duration::from_nanos(d.at));
                    self.deliver(d);
                    self.queue.settle();
                }
                Next::Timer(n, at) => {
                    self.timers_until_read_ahead = self.timers_until_read_ahead.saturating_sub(1);
                    if self.timers_until_read_ahead == 0 {
                        self.read_ahead_timers();
                    }
                    self.now = self.now.max(Duration::from_nanos(at));
                    self.fire(n);
                    self.queue.settle();
                }
            }
        }
        self.now = self.now.max(until);
    }

    /// Reads, through the public API, some of what the next inputs of
    /// these members will read: with many members in one process those
    /// reads miss the cache, and a miss costs about the same whether it
    /// waits alone or with a batch of independent others. Two stages, one
    /// batch apart: first each endpoint's own fields (its counters, config,
    /// timers), then, once those are in cache, the record of the datagram's
    /// sender in its table (an index slot, then the record). A datagram
    /// arrives a link latency after it is read ahead for, a few dozen
    /// events later: the lines are still in cache then. Changes nothing.
    fn read_ahead(&self, stage: u8, batch: impl Iterator<Item = (u32, Option<u32>)>) {
        for (node, sender) in batch {
            let Some(ep) = self.nodes.get(node as usize).map(|n| &n.endpoint) else {
                continue;
            };
            if stage == 1 {
                let foca = ep.foca();
                core::hint::black_box(ep.metrics().datagrams_in);
                core::hint::black_box(ep.max_datagram());
                core::hint::black_box(ep.next_deadline());
                core::hint::black_box(ep.now());
                core::hint::black_box((foca.incarnation(), foca.identity()));
                core::hint::black_box(foca.connection_state());
                core::hint::black_box(foca.seeds().len());
            } else if let Some(addr) = sender.and_then(|s| self.addrs.get(s as usize)) {
                core::hint::black_box(ep.foca().member(addr));
            }
        }
    }

    /// Reads ahead for the next timers (see [`Sim::read_ahead`]).
    fn read_ahead_timers(&mut self) {
        let mut next = core::mem::take(&mut self.next_timers);
        self.queue.next_timers(READ_AHEAD, &mut next);
        self.read_ahead(1, next.iter().map(|&n| (n, None)));
        self.next_timers = next;
        self.timers_until_read_ahead = READ_AHEAD;
    }

    /// Reads ahead for the datagrams sent lately (see [`Sim::read_ahead`]).
    fn read_ahead_datagrams(&mut self) {
        let before = core::mem::take(&mut self.sent_before);
        self.read_ahead(2, before.iter().map(|&(to, from)| (to, Some(from))));
        let recent = core::mem::replace(&mut self.sent_recently, before);
        self.read_ahead(1, recent.iter().map(|&(to, from)| (to, Some(from))));
        self.sent_before = recent;
        self.sent_recently.clear();
    }

    /// A member's timer is due.
    fn fire(&mut self, n: u32) {
        let Some(hot) = self.hot.get(n as usize) else {
            return;
        };
        if !hot.up {
            return;
        }
        let now = nanos(self.now);
        if now < hot.paused_until {
            self.queue.arm(n, hot.paused_until);
            return;
        }
        let _ = self.nodes[n as usize].endpoint.handle_timeouts(self.now);
        self.after_event(n);
    }

    fn deliver(&mut self, d: queue::Datagram) {
        let n = d.node;
        let now = nanos(self.now);
        let Some(&hot) = self.hot.get(n as usize) else {
            return;
        };
        if !hot.up || hot.life != d.life {
            self.slab.take(d.payload);
            self.stats.blocked += 1;
            return;
        }
        if now < hot.paused_until {
            self.queue
                .push(hot.paused_until, n, d.life, d.payload, d.from);
            return;
        }
        if d.from & LATE == 0 && hot.slow != 0 {
            let later = now.saturating_add(hot.slow);
            self.queue.push(later, n, d.life, d.payload, d.from | LATE);
            return;
        }
        let from = d.from & !LATE;
        let mut data = self.slab.take(d.payload);
        // The link may have been cut while the datagram was in flight.
        if self.blocked.contains(&(from, n)) {
            self.stats.blocked += 1;
            return;
        }
        self.stats.delivered += 1;
        // Errors are failures to encode replies: a codec bug that the
        // member's metrics and the tests surface.
        let endpoint = &mut self.nodes[n as usize].endpoint;
        let _ = endpoint.handle_datagram(self.now, self.addrs[from as usize].clone(), &mut data);
        // Its replies reuse the buffer (no allocation per datagram).
        endpoint.recycle(data);
        self.after_event(n);
    }

    /// Moves a member's outputs to the network and the observers, checks
    /// trackers, and re-arms its timer.
    fn after_event(&mut self, n: u32) {
        let i = n as usize;
        let now = self.now;
        let up = self.hot[i].up;
        while let Some(event) = self.nodes[i].endpoint.poll_event() {
            if let Event::Membership(note) = event {
                self.observe(n, note);
            }
        }
        while let Some(t) = self.nodes[i].endpoint.poll_transmit() {
            if up {
                self.transmit(n, &t.to, t.data);
            }
        }
        if !up {
            return;
        }
        for id in 0..self.trackers.len() {
            let t = &mut self.trackers[id];
            if t.done.is_none() && t.reached[i].is_none() && (t.check)(&self.nodes[i].endpoint) {
                t.reached[i] = Some(now.saturating_sub(t.started));
                self.check_done(id);
            }
        }
        if let Some(deadline) = self.nodes[i].endpoint.next_deadline() {
            let at = nanos(deadline.max(now)).saturating_add(self.hot[i].slow);
            // Re-armed when the deadline moved either way (a cancelled
            // timer moves it later).
            if self.queue.armed(n) != Some(at) {
                self.queue.arm(n, at);
            }
        }
    }

    fn check_done(&mut self, id: usize) {
        let t = &mut self.trackers[id];
        if t.done.is_some() {
            return;
        }
        let all = self
            .hot
            .iter()
            .zip(&t.reached)
            .filter(|(hot, _)| hot.up)
            .all(|(_, r)| r.is_some());
        if all {
            t.done = Some(self.now.saturating_sub(t.started));
        }
    }

    fn observe(&mut self, observer: u32, note: Notification<T>) {
        if let Notification::MemberDown(id) = &note
            && let Some(subject) = self.node_of(&id.addr())
        {
            let node = &self.nodes[subject as usize];
            if self.hot[subject as usize].up && node.endpoint.foca().identity() == id {
                self.false_positives += 1;
            } else if let Some((record, seen)) = self.open_crashes.get_mut(&subject)
                && seen.insert(observer)
            {
                let d = &mut self.detections[*record];
                d.latencies.push(self.now.saturating_sub(d.crashed_at));
            }
        }
        if self.record {
            let addr = self.nodes[observer as usize]
                .endpoint
                .foca()
                .identity()
                .addr();
            self.notifications.push((self.now, addr, note));
        }
    }

    fn transmit(&mut self, from: u32, to: &T::Addr, data: Vec<u8>) {
        self.stats.sent += 1;
        self.stats.bytes += data.len() as u64;
        let sent_at = nanos(self.now);
        self.stats.digest = net::digest(self.stats.digest, sent_at, &data);
        if let Some((tapped, log)) = &mut self.tap
            && *tapped == from
        {
            log.push((to.clone(), data.clone()));
        }
        let Some(to) = self.node_of(to) else {
            self.stats.blocked += 1;
            *self.strangers.entry(to.clone()).or_default() += data.len() as u64;
            return;
        };
        if self.blocked.contains(&(from, to)) {
            self.stats.blocked += 1;
            return;
        }
        let params = self.links.get(&(from, to)).copied().unwrap_or(self.link);
        if params.loss > 0.0 && self.rng.random_bool(clamp01(params.loss)) {
            self.stats.lost += 1;
            return;
        }
        let mut depart = self.now;
        if let Some(nanos) = (data.len() as u64)
            .saturating_mul(1_000_000_000)
            .checked_div(params.bandwidth)
        {
            let sender = &mut self.nodes[from as usize];
            depart = depart.max(sender.egress_free);
            sender.egress_free = depart + Duration::from_nanos(nanos);
        }
        let copies = if params.duplicate > 0.0 && self.rng.random_bool(clamp01(params.duplicate)) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        self.sent_recently.push((to, from));
        if self.sent_recently.len() >= READ_AHEAD {
            self.read_ahead_datagrams();
        }
        let life = self.hot[to as usize].life;
        if copies == 2 {
            let at = depart + params.latency + self.jitter(params.jitter);
            let copy = self.slab.put(data.clone());
            self.queue.push(nanos(at), to, life, copy, from);
        }
        let at = depart + params.latency + self.jitter(params.jitter);
        let payload = self.slab.put(data);
        self.queue.push(nanos(at), to, life, payload, from);
    }

    fn jitter(&mut self, max: Duration) -> Duration {
        if max.is_zero() {
            return Duration::ZERO;
        }
        let max = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.random_range(0..=max))
    }
}

fn clamp01(p: f64) -> f64 {
    if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) }
}
