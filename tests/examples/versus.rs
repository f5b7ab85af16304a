//! Ours against the original: foca-core and the `foca` 2.x crate from
//! crates.io, side by side on one lockstep event loop (issue #17).
//!
//! ```text
//! cargo run --release -p foca-tests --example versus -- --members 1000 --json
//! cargo run --release -p foca-tests --example versus -- --scenario assemble --members 10000 --json
//! cargo run --release -p foca-tests --example versus -- --plot detection.svg
//! ```
//!
//! # Fairness
//! - **One loop, one network.** [`Lab`] is generic over a small adapter
//!   trait, [`Side`] (deliver a datagram, fire a timer, collect what the
//!   implementation sent, scheduled and reported); both implementations run
//!   in it with the same network model: a binary heap of deliveries keyed by
//!   virtual time, 1 ms latency plus uniform jitter up to 1 ms, loss drawn
//!   per datagram, all from one seeded `Xoshiro128PlusPlus`. Every timer an
//!   implementation asks for is delivered (the original requires it; ours
//!   tolerates superseded timers and ignores them when they fire, and pays
//!   for those firings here).
//! - **Same API level.** Ours runs as `foca_core::Foca` with its `Runtime`,
//!   the original as `foca::Foca` with its `Runtime`: no envelope, no
//!   `Endpoint` queues on our side.
//! - **Same identity, same codec family.** [`Id`] (a `u32` address and a
//!   `u32` generation, 8 bytes; renewing bumps the generation) implements
//!   both `Identity` traits; both sides encode with postcard (foca-codec's
//!   `PostcardCodec`, the original's `postcard-codec` feature).
//! - **Equivalent configs.** Ours is `Config::new_lan(n)`; the original's is
//!   derived from it field by field ([`original_config`]): probe period 1 s,
//!   probe RTT 500 ms, 3 indirect probes, 1,400-byte datagrams, the same
//!   number of transmissions per update (`4 × ⌈log10(n + 1)⌉`), the same
//!   suspicion timeout (`4 × max(1, ⌈log10 n⌉)` periods), periodic gossip
//!   every 200 ms to 3 members, announce to one down member every 10 s, the
//!   same time to forget the down, `notify_down_members` on, and the
//!   original's periodic announce (30 s, 1 member) in place of our periodic
//!   table sync (30 s, 1 member). Features only one side has stay as
//!   shipped: ours runs with Lifeguard (local health awareness, up to 8×),
//!   which the original does not have.
//! - **Same custom broadcasts.** A versioned key-value item (`key u32 BE |
//!   version u32 BE | 16 bytes`), a newer version of a key invalidating an
//!   older one, handled by one [`Kv`] store on both sides.
//!
//! # Scenarios and figures
//! Every figure is printed for ours (`_ours`), the original (`_foca`) and
//! their `_ratio`, chosen so that **a ratio above 1 means ours is better**:
//! `foca / ours` for costs and times, `ours / foca` for speeds and shares
//! (`*_coverage`, `member_periods_per_cpu_second`), and
//! `(foca + 1) / (ours + 1)` for counts that may be zero (`false_*`).
//! - `assemble`: build `n` members that each know every other (ours through
//!   `Foca::restore`, the original through `apply_many(.., false)`, both
//!   "install without disseminating"). `assembly_seconds` is the CPU time;
//!   `memory_bytes_per_known_member` is what a counting global allocator
//!   sees live per member, divided by the `n - 1` members it knows. Above
//!   2,000 members both sides are measured on the same 200 members
//!   (evenly spaced addresses, each built with the full table and dropped)
//!   and the time is scaled by `n / 200`: the original's table is a vector
//!   searched linearly, so building 10,000 of them in full would take hours.
//! - `steady`: the assembled cluster runs [`STEADY_PERIODS`] probe periods:
//!   `member_periods_per_cpu_second` (members × periods / CPU seconds spent
//!   in the loop for that side), `datagrams_per_member_per_period`,
//!   `bytes_per_member_per_period`, `false_downs_steady`.
//! - `crash`: then [`CRASHES`] members crash, 0.2 periods apart:
//!   `detection_{first,p50,max}_periods`, from a crash until the first, the
//!   median and the last running member reports it down (first and median:
//!   mean over the crashes; max: the worst), `detection_coverage` (share of
//!   running members that did, within the run), `false_downs_crash`.
//! - `loss`: fresh clusters under 5%, 10% and 20% loss for [`LOSS_PERIODS`]
//!   periods: `false_downs_lossP` (Down notifications about running members)
//!   and `falsely_downed_members_lossP` (how many distinct members).
//! - `broadcasts`: 20 broadcasts on 6 members, from members in turn, each
//!   published with `add_broadcast` then `broadcast` (what our `Endpoint`
//!   does; the original has both calls too): `broadcast_spread_periods`,
//!   until every member holds all 20 or no member has any left to send
//!   (SWIM sends each item a bounded number of times, so some may never
//!   arrive: `broadcast_coverage` is the share of (member, item) pairs
//!   delivered).
//! - `queued`: 1,000 broadcasts queued at once by one member of 6 (then one
//!   `broadcast` call): `queued_broadcasts_queue_cpu_seconds` (the 1,000
//!   `add_broadcast` calls), `queued_broadcasts_sender_cpu_seconds` and
//!   `queued_broadcasts_sent_periods` (the sender's own CPU time, every
//!   call into it, and the virtual time until its backlog is empty, at the
//!   loop's resolution of 0.01 periods: a backlog sent within the
//!   `broadcast` call counts as 0.01),
//!   `queued_broadcasts_cpu_seconds` and `queued_broadcasts_spread_periods`
//!   (the whole cluster until every member holds all 1,000 or no member has
//!   any left to send), `queued_broadcasts_coverage`.
//!
//! CPU time is the thread's own (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`):
//! other processes on the machine do not count against either side.
#![allow(unsafe_code)] // the counting global allocator and the CPU clock below

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use rand::rngs::Xoshiro128PlusPlus;
use rand::{Rng, RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

mod counting {
    //! A global allocator that keeps a count of live heap bytes.

    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicIsize, Ordering};

    /// Forwards to [`System`], counting.
    pub struct Counting;

    static LIVE: AtomicIsize = AtomicIsize::new(0);

    /// Heap bytes allocated and not yet freed, process-wide.
    pub fn live() -> isize {
        LIVE.load(Ordering::Relaxed)
    }

    fn add(n: usize) {
        LIVE.fetch_add(n as isize, Ordering::Relaxed);
    }

    fn sub(n: usize) {
        LIVE.fetch_sub(n as isize, Ordering::Relaxed);
    }

    // SAFETY: every call is forwarded unchanged to `System`; the counter is
    // bookkeeping only.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller upholds `alloc`'s contract, which we forward.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                add(layout.size());
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: as for `alloc`.
            let p = unsafe { System.alloc_zeroed(layout) };
            if !p.is_null() {
                add(layout.size());
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from this allocator, i.e. from `System`.
            unsafe { System.dealloc(ptr, layout) };
            sub(layout.size());
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: `ptr` came from `System` with `layout`; the caller
            // upholds the rest of `realloc`'s contract.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                sub(layout.size());
                add(new_size);
            }
            p
        }
    }
}

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// Probe periods of the steady-state measurement.
const STEADY_PERIODS: u32 = 100;
/// Members that crash in the crash scenario.
const CRASHES: u32 = 5;
/// Probe periods of each loss run.
const LOSS_PERIODS: u32 = 30;
/// Members of the broadcast scenarios.
const SMALL: u32 = 6;
/// Broadcasts of the `broadcasts` scenario.
const BROADCASTS: u32 = 20;
/// Broadcasts of the `queued` scenario.
const QUEUED: u32 = 1_000;
/// Above this many members, assembly is measured on [`SAMPLE`] members.
const FULL_ASSEMBLY_MAX: u32 = 2_000;
/// Members measured when assembly is sampled.
const SAMPLE: u32 = 200;

/// The identity both sides use: an address and a generation (8 bytes).
/// Renewing bumps the generation; the higher generation wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Id {
    addr: u32,
    generation: u32,
}

impl foca_core::Identity for Id {
    type Addr = u32;
    fn addr(&self) -> u32 {
        self.addr
    }
    fn renew(&self) -> Option<Self> {
        self.generation.checked_add(1).map(|generation| Id {
            addr: self.addr,
            generation,
        })
    }
    fn win_addr_conflict(&self, other: &Self) -> bool {
        self.generation > other.generation
    }
}

impl foca::Identity for Id {
    type Addr = u32;
    fn renew(&self) -> Option<Self> {
        foca_core::Identity::renew(self)
    }
    fn addr(&self) -> u32 {
        self.addr
    }
    fn win_addr_conflict(&self, other: &Self) -> bool {
        self.generation > other.generation
    }
}

/// A versioned key-value store, disseminated as custom broadcasts: each
/// item is `key (u32 BE) | version (u32 BE) | value`; a higher version of a
/// key replaces a lower one. The same store serves both sides.
#[derive(Clone, Debug, Default)]
pub struct Kv {
    values: BTreeMap<u32, u32>,
    /// How many keys this store holds, shared with the harness (the
    /// original has no accessor for its handler).
    held: std::rc::Rc<std::cell::Cell<usize>>,
}

/// One version of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvItem {
    key: u32,
    version: u32,
}

/// A malformed item.
#[derive(Debug)]
pub struct BadItem;

impl std::fmt::Display for BadItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("item shorter than 8 bytes")
    }
}

impl std::error::Error for BadItem {}

impl Kv {
    fn item(key: u32, version: u32) -> Vec<u8> {
        let mut v = Vec::with_capacity(24);
        v.extend_from_slice(&key.to_be_bytes());
        v.extend_from_slice(&version.to_be_bytes());
        v.extend_from_slice(&[0xab; 16]);
        v
    }

    fn receive(&mut self, item: &[u8]) -> Result<Option<KvItem>, BadItem> {
        let (Some(key), Some(version)) = (item.get(..4), item.get(4..8)) else {
            return Err(BadItem);
        };
        let key = u32::from_be_bytes(key.try_into().map_err(|_| BadItem)?);
        let version = u32::from_be_bytes(version.try_into().map_err(|_| BadItem)?);
        if self.values.get(&key).is_some_and(|v| *v >= version) {
            return Ok(None);
        }
        self.values.insert(key, version);
        self.held.set(self.values.len());
        Ok(Some(KvItem { key, version }))
    }
}

impl foca_core::Invalidates for KvItem {
    type Key = u32;
    fn key(&self) -> u32 {
        self.key
    }
    fn invalidates(&self, other: &Self) -> bool {
        self.version > other.version
    }
}

impl foca::Invalidates for KvItem {
    fn invalidates(&self, other: &Self) -> bool {
        self.key == other.key && self.version > other.version
    }
}

impl foca_core::BroadcastHandler<Id> for Kv {
    type Broadcast = KvItem;
    type Error = BadItem;
    fn receive_item(&mut self, item: &[u8], _: Option<&Id>) -> Result<Option<KvItem>, BadItem> {
        self.receive(item)
    }
}

impl foca::BroadcastHandler<Id> for Kv {
    type Key = KvItem;
    type Error = BadItem;
    fn receive_item(&mut self, item: &[u8], _: Option<&Id>) -> Result<Option<KvItem>, BadItem> {
        self.receive(item)
    }
}

/// What one call into an implementation produced; the [`Runtime`]s of both
/// sides write here.
///
/// [`Runtime`]: foca_core::Runtime
pub struct Out<Tm> {
    sends: Vec<(u32, Vec<u8>)>,
    timers: Vec<(Duration, Tm)>,
    downs: Vec<Id>,
}

impl<Tm> Default for Out<Tm> {
    fn default() -> Self {
        Self {
            sends: Vec::new(),
            timers: Vec::new(),
            downs: Vec::new(),
        }
    }
}

impl foca_core::Runtime<Id> for Out<foca_core::Timer<Id>> {
    fn notify(&mut self, n: foca_core::Notification<Id>) {
        if let foca_core::Notification::MemberDown(id) = n {
            self.downs.push(id);
        }
    }
    fn send_to(&mut self, to: Id, data: &[u8]) {
        self.sends.push((to.addr, data.to_vec()));
    }
    fn submit_after(&mut self, event: foca_core::Timer<Id>, after: Duration) {
        self.timers.push((after, event));
    }
}

impl foca::Runtime<Id> for Out<foca::Timer<Id>> {
    fn notify(&mut self, n: foca::Notification<'_, Id>) {
        if let foca::Notification::MemberDown(id) = n {
            self.downs.push(*id);
        }
    }
    fn send_to(&mut self, to: Id, data: &[u8]) {
        self.sends.push((to.addr, data.to_vec()));
    }
    fn submit_after(&mut self, event: foca::Timer<Id>, after: Duration) {
        self.timers.push((after, event));
    }
}

/// The adapter the loop drives: one per implementation.
pub trait Side {
    /// Short name, for messages.
    const NAME: &'static str;
    /// One member.
    type Node;
    /// What the member asks the runtime to hand back later.
    type Timer;
    /// A member with identity `id`, configured for a cluster of `n`.
    fn node(id: Id, n: u32, seed: u64) -> Self::Node;
    /// Installs `everyone` (alive) without disseminating it.
    fn assemble(node: &mut Self::Node, everyone: &[Id], out: &mut Out<Self::Timer>);
    /// Hands over a datagram.
    fn deliver(node: &mut Self::Node, data: &[u8], out: &mut Out<Self::Timer>);
    /// Fires a timer.
    fn fire(node: &mut Self::Node, timer: Self::Timer, out: &mut Out<Self::Timer>);
    /// Queues a custom broadcast.
    fn add_broadcast(node: &mut Self::Node, item: &[u8]);
    /// Sends the custom broadcast backlog to a few members now
    /// (`Foca::broadcast` on both sides).
    fn broadcast(node: &mut Self::Node, out: &mut Out<Self::Timer>);
    /// Custom broadcast keys this member holds.
    fn items_held(node: &Self::Node) -> usize;
    /// Custom broadcasts this member still has to send.
    fn backlog(node: &Self::Node) -> usize;
}

/// A member and the count of broadcast keys its store holds.
pub struct Node<F> {
    foca: F,
    held: std::rc::Rc<std::cell::Cell<usize>>,
}

/// Ours: `foca_core::Foca` with its `Runtime`.
pub struct Ours;
/// The original: `foca::Foca` (2.x) with its `Runtime`.
pub struct Original;

type OurFoca = foca_core::Foca<Id, foca_codec::PostcardCodec<Id>, Xoshiro128PlusPlus, Kv>;
type TheirFoca = foca::Foca<Id, foca::PostcardCodec, Xoshiro128PlusPlus, Kv>;

/// Our config for a cluster of `n`.
fn our_config(n: u32) -> foca_core::Config {
    foca_core::Config::new_lan(n as usize)
}

/// The original's config, field by field from [`our_config`].
fn original_config(n: u32) -> foca::Config {
    use std::num::{NonZeroU8, NonZeroUsize};
    let ours = our_config(n);
    let nz = |v: u8| NonZeroUsize::new(usize::from(v.max(1))).unwrap_or(NonZeroUsize::MIN);
    let periodic = |p: Option<foca_core::PeriodicParams>| {
        p.map(|p| foca::PeriodicParams {
            frequency: p.frequency,
            num_members: nz(p.num_members),
        })
    };
    let max_tx = u8::try_from(ours.max_transmissions(n as usize)).unwrap_or(u8::MAX);
    foca::Config {
        probe_period: ours.probe_period,
        probe_rtt: ours.probe_rtt,
        num_indirect_probes: nz(ours.num_indirect_probes),
        max_transmissions: NonZeroU8::new(max_tx).unwrap_or(NonZeroU8::MIN),
        suspect_to_down_after: ours.suspicion_timeout(n as usize),
        remove_down_after: Some(ours.remove_down_after),
        max_packet_size: NonZeroUsize::new(ours.max_packet_size).unwrap_or(NonZeroUsize::MIN),
        notify_down_members: true,
        periodic_announce: periodic(ours.periodic_sync),
        periodic_announce_to_down_members: periodic(ours.periodic_announce_to_down_members),
        periodic_gossip: periodic(ours.periodic_gossip),
    }
}

impl Side for Ours {
    const NAME: &'static str = "ours";
    type Node = Node<OurFoca>;
    type Timer = foca_core::Timer<Id>;

    fn node(id: Id, n: u32, seed: u64) -> Node<OurFoca> {
        let rng = Xoshiro128PlusPlus::seed_from_u64(seed);
        let codec = foca_codec::PostcardCodec::new();
        let kv = Kv::default();
        let held = kv.held.clone();
        match foca_core::Foca::with_custom_broadcast(id, our_config(n), rng, codec, kv) {
            Ok(foca) => Node { foca, held },
            // new_lan validates for every size and the identity is tiny.
            Err(e) => unreachable!("Config::new_lan is valid: {e}"),
        }
    }

    fn assemble(node: &mut Node<OurFoca>, everyone: &[Id], out: &mut Out<Self::Timer>) {
        let members = everyone.iter().map(|id| foca_core::Member::alive(*id, 0));
        let _ = node.foca.restore(members, out);
    }

    fn deliver(node: &mut Node<OurFoca>, data: &[u8], out: &mut Out<Self::Timer>) {
        let _ = node.foca.handle_data(data, out);
    }

    fn fire(node: &mut Node<OurFoca>, timer: Self::Timer, out: &mut Out<Self::Timer>) {
        let _ = node.foca.handle_timer(timer, out);
    }

    fn add_broadcast(node: &mut Node<OurFoca>, item: &[u8]) {
        let _ = node.foca.add_broadcast(item);
    }

    fn broadcast(node: &mut Node<OurFoca>, out: &mut Out<Self::Timer>) {
        let _ = node.foca.broadcast(out);
    }

    fn items_held(node: &Node<OurFoca>) -> usize {
        node.held.get()
    }

    fn backlog(node: &Node<OurFoca>) -> usize {
        node.foca.custom_broadcast_backlog()
    }
}

impl Side for Original {
    const NAME: &'static str = "foca";
    type Node = Node<TheirFoca>;
    type Timer = foca::Timer<Id>;

    fn node(id: Id, n: u32, seed: u64) -> Node<TheirFoca> {
        let rng = Xoshiro128PlusPlus::seed_from_u64(seed);
        let kv = Kv::default();
        let held = kv.held.clone();
        let config = original_config(n);
        let foca = foca::Foca::with_custom_broadcast(id, config, rng, foca::PostcardCodec, kv);
        Node { foca, held }
    }

    fn assemble(node: &mut Node<TheirFoca>, everyone: &[Id], out: &mut Out<Self::Timer>) {
        let members = everyone.iter().map(|id| foca::Member::alive(*id));
        let _ = node.foca.apply_many(members, false, out);
    }

    fn deliver(node: &mut Node<TheirFoca>, data: &[u8], out: &mut Out<Self::Timer>) {
        let _ = node.foca.handle_data(data, out);
    }

    fn fire(node: &mut Node<TheirFoca>, timer: Self::Timer, out: &mut Out<Self::Timer>) {
        let _ = node.foca.handle_timer(timer, out);
    }

    fn add_broadcast(node: &mut Node<TheirFoca>, item: &[u8]) {
        let _ = node.foca.add_broadcast(item);
    }

    fn broadcast(node: &mut Node<TheirFoca>, out: &mut Out<Self::Timer>) {
        let _ = node.foca.broadcast(out);
    }

    fn items_held(node: &Node<TheirFoca>) -> usize {
        node.held.get()
    }

    fn backlog(node: &Node<TheirFoca>) -> usize {
        node.foca.custom_broadcast_backlog()
    }
}

/// CPU time this thread has used so far (`CLOCK_THREAD_CPUTIME_ID`).
fn cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// An event of the loop: a datagram arriving or a timer firing at `node`.
struct Ev<Tm> {
    at: u64,
    seq: u64,
    node: u32,
    kind: Kind<Tm>,
}

enum Kind<Tm> {
    Data(Vec<u8>),
    Timer(Tm),
}

impl<Tm> PartialEq for Ev<Tm> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<Tm> Eq for Ev<Tm> {}
impl<Tm> PartialOrd for Ev<Tm> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<Tm> Ord for Ev<Tm> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The network model: latency plus uniform jitter, and loss.
#[derive(Clone, Copy, Debug)]
struct NetModel {
    latency: u64,
    jitter: u64,
    loss: f64,
}

impl Default for NetModel {
    fn default() -> Self {
        Self {
            latency: 1_000_000,
            jitter: 1_000_000,
            loss: 0.0,
        }
    }
}

/// The lockstep loop: members of one side, virtual time, the network.
pub struct Lab<S: Side> {
    now: u64,
    seq: u64,
    heap: BinaryHeap<Reverse<Ev<S::Timer>>>,
    nodes: Vec<S::Node>,
    up: Vec<bool>,
    rng: Xoshiro128PlusPlus,
    net: NetModel,
    out: Out<S::Timer>,
    datagrams: u64,
    bytes: u64,
    /// (time, observer, about) of every Down notification.
    downs: Vec<(u64, u32, Id)>,
    cpu: Duration,
    /// A member whose own calls are timed apart, and their CPU time.
    watch: Option<(u32, Duration)>,
}

impl<S: Side> Lab<S> {
    /// `n` members, each knowing every other; returns the lab and the CPU
    /// time assembly took.
    fn assembled(n: u32, seed: u64, net: NetModel) -> (Self, Duration) {
        let mut rng = Xoshiro128PlusPlus::seed_from_u64(seed);
        let ids: Vec<Id> = (0..n)
            .map(|addr| Id {
                addr,
                generation: 1,
            })
            .collect();
        let mut lab = Lab {
            now: 0,
            seq: 0,
            heap: BinaryHeap::new(),
            nodes: Vec::with_capacity(n as usize),
            up: vec![true; n as usize],
            rng: Xoshiro128PlusPlus::seed_from_u64(seed ^ 0x5eed),
            net,
            out: Out::default(),
            datagrams: 0,
            bytes: 0,
            downs: Vec::new(),
            cpu: Duration::ZERO,
            watch: None,
        };
        let start = cpu_now();
        for (i, id) in ids.iter().enumerate() {
            let mut node = S::node(*id, n, rng.next_u64());
            S::assemble(&mut node, &ids, &mut lab.out);
            lab.nodes.push(node);
            lab.flush(i as u32);
        }
        (lab, cpu_now().saturating_sub(start))
    }

    fn push(&mut self, at: u64, node: u32, kind: Kind<S::Timer>) {
        self.seq += 1;
        self.heap.push(Reverse(Ev {
            at,
            seq: self.seq,
            node,
            kind,
        }));
    }

    /// Whether a datagram is on its way.
    fn data_in_flight(&self) -> bool {
        self.heap
            .iter()
            .any(|Reverse(ev)| matches!(ev.kind, Kind::Data(_)))
    }

    /// Routes what `node` just produced.
    fn flush(&mut self, node: u32) {
        let mut out = std::mem::take(&mut self.out);
        for (after, timer) in out.timers.drain(..) {
            let at = self.now + u64::try_from(after.as_nanos()).unwrap_or(u64::MAX / 2);
            self.push(at, node, Kind::Timer(timer));
        }
        for (to, data) in out.sends.drain(..) {
            self.datagrams += 1;
            self.bytes += data.len() as u64;
            if self.net.loss > 0.0 && self.rng.random::<f64>() < self.net.loss {
                continue;
            }
            let jitter = if self.net.jitter > 0 {
                self.rng.random_range(0..=self.net.jitter)
            } else {
                0
            };
            if (to as usize) < self.nodes.len() {
                let at = self.now + self.net.latency + jitter;
                self.push(at, to, Kind::Data(data));
            }
        }
        for about in out.downs.drain(..) {
            self.downs.push((self.now, node, about));
        }
        self.out = out;
    }

    /// Runs every event up to `until` (nanoseconds of virtual time).
    fn run_until(&mut self, until: u64) {
        let start = cpu_now();
        while let Some(Reverse(ev)) = self.heap.peek() {
            if ev.at > until {
                break;
            }
            let Some(Reverse(ev)) = self.heap.pop() else {
                break;
            };
            self.now = ev.at;
            let i = ev.node as usize;
            if !self.up[i] {
                continue;
            }
            let watched = self.watch.is_some_and(|(w, _)| w == ev.node);
            let t0 = if watched { cpu_now() } else { Duration::ZERO };
            match ev.kind {
                Kind::Data(data) => S::deliver(&mut self.nodes[i], &data, &mut self.out),
                Kind::Timer(t) => S::fire(&mut self.nodes[i], t, &mut self.out),
            }
            if watched && let Some((_, spent)) = &mut self.watch {
                *spent += cpu_now().saturating_sub(t0);
            }
            self.flush(ev.node);
        }
        self.now = until;
        self.cpu += cpu_now().saturating_sub(start);
    }

    fn run_periods(&mut self, periods: f64) {
        self.run_until(self.now + (periods * 1e9) as u64);
    }

    /// False Downs (about members still running) since `from`, and how
    /// many distinct members they were about.
    fn false_downs(&self, from: u64) -> (u64, u64) {
        let mut count = 0;
        let mut distinct = BTreeSet::new();
        for (at, _, about) in &self.downs {
            if *at >= from && self.up[about.addr as usize] {
                count += 1;
                distinct.insert(about.addr);
            }
        }
        (count, distinct.len() as u64)
    }
}

/// A figure of both sides.
#[derive(Clone, Copy, Debug)]
struct Pair {
    ours: f64,
    foca: f64,
    /// How the ratio reads so that above 1 is ours better.
    dir: Dir,
}

#[derive(Clone, Copy, Debug)]
enum Dir {
    /// Lower is better: `foca / ours`.
    Lower,
    /// Higher is better: `ours / foca`.
    Higher,
    /// A count, lower is better, maybe zero: `(foca + 1) / (ours + 1)`.
    Count,
}

impl Pair {
    fn ratio(&self) -> f64 {
        match self.dir {
            Dir::Lower => self.foca / self.ours,
            Dir::Higher => self.ours / self.foca,
            Dir::Count => (self.foca + 1.0) / (self.ours + 1.0),
        }
    }
}

/// The figures of one side, by name (missing ones are absent).
type Figures = BTreeMap<&'static str, f64>;

/// Assembly time and memory per known member (see the module docs).
fn assembly<S: Side>(n: u32, seed: u64, figures: &mut Figures) {
    let ids: Vec<Id> = (0..n)
        .map(|addr| Id {
            addr,
            generation: 1,
        })
        .collect();
    let sampled = n > FULL_ASSEMBLY_MAX;
    let which: Vec<u32> = if sampled {
        (0..SAMPLE).map(|k| k * (n / SAMPLE)).collect()
    } else {
        (0..n).collect()
    };
    let mut rng = Xoshiro128PlusPlus::seed_from_u64(seed);
    let mut out = Out::<S::Timer>::default();
    let mut kept = Vec::with_capacity(if sampled { 0 } else { n as usize });
    let mut cpu = Duration::ZERO;
    let mut bytes: i64 = 0;
    for &a in &which {
        let seed = rng.next_u64();
        let before = counting::live();
        let start = cpu_now();
        let mut node = S::node(ids[a as usize], n, seed);
        S::assemble(&mut node, &ids, &mut out);
        cpu += cpu_now().saturating_sub(start);
        out.timers.clear();
        out.sends.clear();
        out.downs.clear();
        bytes += (counting::live() - before) as i64;
        if !sampled {
            kept.push(node);
        }
    }
    drop(kept);
    let scale = f64::from(n) / which.len() as f64;
    figures.insert("assembly_seconds", cpu.as_secs_f64() * scale);
    figures.insert(
        "memory_bytes_per_known_member",
        bytes as f64 / which.len() as f64 / f64::from(n.saturating_sub(1).max(1)),
    );
}

/// Steady state, then a crash.
fn steady_and_crash<S: Side>(n: u32, seed: u64, crash: bool, figures: &mut Figures) {
    let (mut lab, _) = Lab::<S>::assembled(n, seed, NetModel::default());
    // One period to let the probe cycles start, then measure.
    lab.run_periods(1.0);
    let (d0, b0, c0) = (lab.datagrams, lab.bytes, lab.cpu);
    lab.run_periods(f64::from(STEADY_PERIODS));
    let member_periods = f64::from(n) * f64::from(STEADY_PERIODS);
    let cpu = (lab.cpu - c0).as_secs_f64();
    figures.insert("member_periods_per_cpu_second", member_periods / cpu);
    figures.insert(
        "datagrams_per_member_per_period",
        (lab.datagrams - d0) as f64 / member_periods,
    );
    figures.insert(
        "bytes_per_member_per_period",
        (lab.bytes - b0) as f64 / member_periods,
    );
    let (false_downs, _) = lab.false_downs(0);
    figures.insert("false_downs_steady", false_downs as f64);
    if !crash {
        return;
    }
    // CRASHES members crash, 0.2 periods apart (so that the crashes do not
    // line up with the probe periods of either side); every figure is
    // over them all.
    let crashes = CRASHES.min(n - 2);
    let victims: Vec<u32> = (1..=crashes).map(|k| n * k / (crashes + 1)).collect();
    let mut crashed_at = BTreeMap::new();
    for (k, &v) in victims.iter().enumerate() {
        if k > 0 {
            lab.run_periods(0.2);
        }
        lab.up[v as usize] = false;
        crashed_at.insert(v, lab.now);
    }
    let first_crash = crashed_at.values().copied().min().unwrap_or(lab.now);
    let timeout = our_config(n).suspicion_timeout(n as usize).as_secs_f64();
    let limit = timeout + 2.0 * f64::from(n.ilog2() + 1) + 10.0;
    let observers = (n - crashes) as usize;
    let mut seen: BTreeMap<u32, BTreeMap<u32, u64>> = BTreeMap::new();
    let mut scanned = 0;
    while lab.now < first_crash + (limit * 1e9) as u64 {
        lab.run_periods(0.1);
        for &(at, who, about) in &lab.downs[scanned..] {
            if let Some(&t0) = crashed_at.get(&about.addr)
                && at >= t0
                && lab.up[who as usize]
            {
                seen.entry(about.addr)
                    .or_default()
                    .entry(who)
                    .or_insert(at - t0);
            }
        }
        scanned = lab.downs.len();
        if seen.len() == victims.len() && seen.values().all(|m| m.len() >= observers) {
            break;
        }
    }
    let (mut firsts, mut medians, mut last, mut complete, mut total) =
        (0.0, 0.0, 0.0f64, true, 0usize);
    for v in &victims {
        let mut times: Vec<f64> = seen
            .get(v)
            .map(|m| m.values().map(|ns| *ns as f64 / 1e9).collect())
            .unwrap_or_default();
        times.sort_by(f64::total_cmp);
        total += times.len();
        complete &= times.len() >= observers;
        firsts += times.first().copied().unwrap_or(f64::NAN);
        medians += times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
        last = last.max(times.last().copied().unwrap_or(f64::NAN));
    }
    let k = victims.len() as f64;
    figures.insert("detection_first_periods", firsts / k);
    figures.insert("detection_p50_periods", medians / k);
    if complete {
        figures.insert("detection_max_periods", last);
    }
    figures.insert("detection_coverage", total as f64 / (k * observers as f64));
    let (false_downs, _) = lab.false_downs(first_crash);
    figures.insert("false_downs_crash", false_downs as f64);
}

/// Fresh clusters under loss: false Downs.
fn loss<S: Side>(n: u32, seed: u64, figures: &mut Figures) {
    for (pct, count_key, distinct_key) in [
        (5, "false_downs_loss5", "falsely_downed_members_loss5"),
        (10, "false_downs_loss10", "falsely_downed_members_loss10"),
        (20, "false_downs_loss20", "falsely_downed_members_loss20"),
    ] {
        let net = NetModel {
            loss: f64::from(pct) / 100.0,
            ..NetModel::default()
        };
        let (mut lab, _) = Lab::<S>::assembled(n, seed, net);
        let wall = Instant::now();
        lab.run_periods(f64::from(LOSS_PERIODS));
        eprintln!(
            "{}: {pct}% loss: {:.1} s, {:.2} datagrams and {:.0} bytes per member-period",
            S::NAME,
            wall.elapsed().as_secs_f64(),
            lab.datagrams as f64 / f64::from(n) / f64::from(LOSS_PERIODS),
            lab.bytes as f64 / f64::from(n) / f64::from(LOSS_PERIODS),
        );
        let (count, distinct) = lab.false_downs(0);
        figures.insert(count_key, count as f64);
        figures.insert(distinct_key, distinct as f64);
    }
}

/// How a dissemination went.
struct Spread {
    /// Virtual time until every member held every item or, if some never
    /// did, until no member had any left to send, in periods.
    periods: f64,
    /// Share of (member, item) pairs delivered by then.
    coverage: f64,
}

/// Runs until every member holds `items` broadcast keys, or no member has
/// any broadcast left to send, checking every 10 ms, for at most `limit`
/// periods.
fn spread<S: Side>(lab: &mut Lab<S>, items: usize, start: u64, limit: f64) -> Spread {
    let end = start + (limit * 1e9) as u64;
    loop {
        let all_held = lab.nodes.iter().all(|node| S::items_held(node) >= items);
        // Drained: no backlog left anywhere, nor a datagram on the way
        // that could start one.
        let drained = lab.nodes.iter().all(|node| S::backlog(node) == 0) && !lab.data_in_flight();
        if all_held || drained || lab.now >= end {
            let held: usize = lab.nodes.iter().map(|n| S::items_held(n).min(items)).sum();
            return Spread {
                periods: (lab.now - start) as f64 / 1e9,
                coverage: held as f64 / (items * lab.nodes.len()) as f64,
            };
        }
        lab.run_until(lab.now + 10_000_000);
    }
}

/// 20 broadcasts on 6 members, from members in turn.
fn broadcasts<S: Side>(seed: u64, figures: &mut Figures) {
    let (mut lab, _) = Lab::<S>::assembled(SMALL, seed, NetModel::default());
    lab.run_periods(1.0);
    for k in 0..BROADCASTS {
        let node = k % SMALL;
        S::add_broadcast(&mut lab.nodes[node as usize], &Kv::item(k, 1));
        S::broadcast(&mut lab.nodes[node as usize], &mut lab.out);
        lab.flush(node);
    }
    let t0 = lab.now;
    let spread = spread(&mut lab, BROADCASTS as usize, t0, 60.0);
    figures.insert("broadcast_spread_periods", spread.periods);
    figures.insert("broadcast_coverage", spread.coverage);
}

/// 1,000 broadcasts queued at once by one member of 6.
fn queued<S: Side>(seed: u64, figures: &mut Figures) {
    let (mut lab, _) = Lab::<S>::assembled(SMALL, seed, NetModel::default());
    lab.run_periods(1.0);
    let c0 = lab.cpu;
    let start = cpu_now();
    for k in 0..QUEUED {
        S::add_broadcast(&mut lab.nodes[0], &Kv::item(k, 1));
    }
    let queueing = cpu_now().saturating_sub(start);
    let start = cpu_now();
    S::broadcast(&mut lab.nodes[0], &mut lab.out);
    lab.flush(0);
    let first_call = cpu_now().saturating_sub(start);
    lab.watch = Some((0, Duration::ZERO));
    // The sender, until its backlog is drained: every call into it.
    let mut sender_done = None;
    let limit = lab.now + 600_000_000_000;
    let t0 = lab.now;
    while lab.now < limit {
        if S::backlog(&lab.nodes[0]) == 0 {
            let step = 0.01;
            sender_done = Some(((lab.now - t0) as f64 / 1e9).max(step));
            break;
        }
        lab.run_until(lab.now + 10_000_000);
    }
    figures.insert(
        "queued_broadcasts_queue_cpu_seconds",
        queueing.as_secs_f64(),
    );
    let sender_cpu = queueing + first_call + lab.watch.map_or(Duration::ZERO, |w| w.1);
    lab.watch = None;
    if let Some(p) = sender_done {
        figures.insert("queued_broadcasts_sent_periods", p);
        figures.insert(
            "queued_broadcasts_sender_cpu_seconds",
            sender_cpu.as_secs_f64(),
        );
    }
    let spread = spread(&mut lab, QUEUED as usize, t0, 600.0);
    let cpu = queueing + first_call + (lab.cpu - c0);
    figures.insert("queued_broadcasts_spread_periods", spread.periods);
    figures.insert("queued_broadcasts_cpu_seconds", cpu.as_secs_f64());
    figures.insert("queued_broadcasts_coverage", spread.coverage);
}

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// Every scenario below.
    All,
    /// Build `n` members that each know every other.
    Assemble,
    /// Assemble, then run in steady state.
    Steady,
    /// Steady state, then one member crashes.
    Crash,
    /// Steady state under 5%, 10% and 20% loss: false Downs.
    Loss,
    /// 20 broadcasts on 6 members.
    Broadcasts,
    /// 1,000 broadcasts queued at once on 6 members.
    Queued,
}

/// Ours against the original foca, on one event loop.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Cluster size.
    #[arg(long, default_value_t = 1000)]
    members: u32,
    /// What to run.
    #[arg(long, value_enum, default_value = "all")]
    scenario: Scenario,
    /// Seed of everything random.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Draw crash detection time against cluster size, for both sides, to
    /// this SVG file (runs the crash scenario at several sizes).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Cluster sizes of the plot, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,30,100,300,1000")]
    plot_sizes: Vec<u32>,
}

fn run_side<S: Side>(args: &Args) -> Figures {
    let mut f = Figures::new();
    let n = args.members;
    let s = args.scenario;
    let all = s == Scenario::All;
    eprintln!("{}: running", S::NAME);
    if all || s == Scenario::Assemble {
        assembly::<S>(n, args.seed, &mut f);
    }
    if all || s == Scenario::Steady || s == Scenario::Crash {
        steady_and_crash::<S>(n, args.seed, s != Scenario::Steady, &mut f);
    }
    if all || s == Scenario::Loss {
        loss::<S>(n, args.seed, &mut f);
    }
    if all || s == Scenario::Broadcasts {
        broadcasts::<S>(args.seed, &mut f);
    }
    if all || s == Scenario::Queued {
        queued::<S>(args.seed, &mut f);
    }
    f
}

fn dir_of(figure: &str) -> Dir {
    if figure == "member_periods_per_cpu_second" || figure.ends_with("coverage") {
        Dir::Higher
    } else if figure.starts_with("false") {
        Dir::Count
    } else {
        Dir::Lower
    }
}

fn plot(args: &Args, path: &PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let mut series: [Vec<(f64, f64, f64)>; 2] = [Vec::new(), Vec::new()];
    for &n in &args.plot_sizes {
        let n = n.max(3);
        let mut ours = Figures::new();
        steady_and_crash::<Ours>(n, args.seed, true, &mut ours);
        let mut foca = Figures::new();
        steady_and_crash::<Original>(n, args.seed, true, &mut foca);
        for (k, f) in [ours, foca].iter().enumerate() {
            if let (Some(p50), Some(max)) = (
                f.get("detection_p50_periods"),
                f.get("detection_max_periods"),
            ) {
                series[k].push((f64::from(n), *p50, *max));
            }
        }
        let show = |k: usize| {
            series[k]
                .last()
                .filter(|p| p.0 == f64::from(n))
                .map_or_else(|| "-".to_string(), |p| format!("{:.2} / {:.2}", p.1, p.2))
        };
        eprintln!(
            "plot: {n} members: detection p50 / max, ours {}, original {}",
            show(0),
            show(1)
        );
    }
    let top = series.iter().flatten().map(|p| p.2).fold(1.0f64, f64::max) * 1.1;
    let right = args.plot_sizes.iter().copied().max().unwrap_or(10).max(10);
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Crash detection vs cluster size (ours: foca-core; original: foca 2.0.0)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d((3f64..f64::from(right) * 1.1).log_scale(), 0f64..top)?;
    chart
        .configure_mesh()
        .x_desc("members (log scale)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc("probe periods after the crash")
        .draw()?;
    let styles = [("ours", BLUE), ("original", RED)];
    for (k, (name, color)) in styles.iter().enumerate() {
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                series[k].iter().map(|p| (p.0, p.1)),
                color.stroke_width(2),
            ))?
            .label(format!("{name}: median member"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(DashedLineSeries::new(
                series[k].iter().map(|p| (p.0, p.2)),
                6,
                4,
                color.into(),
            ))?
            .label(format!("{name}: last member"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.members < 3 {
        eprintln!("--members must be at least 3, got {}", args.members);
        return ExitCode::FAILURE;
    }
    if let Some(path) = &args.plot {
        if let Err(e) = plot(&args, path) {
            eprintln!("cannot draw {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }
    let wall = Instant::now();
    let ours = run_side::<Ours>(&args);
    let foca = run_side::<Original>(&args);
    let mut obj = Map::new();
    obj.insert("members".into(), json!(args.members));
    obj.insert("seed".into(), json!(args.seed));
    obj.insert(
        "scenario".into(),
        json!(format!("{:?}", args.scenario).to_lowercase()),
    );
    obj.insert("steady_periods".into(), json!(STEADY_PERIODS));
    obj.insert("loss_periods".into(), json!(LOSS_PERIODS));
    obj.insert(
        "assembly_sampled".into(),
        json!(args.members > FULL_ASSEMBLY_MAX),
    );
    let names: BTreeSet<&str> = ours.keys().chain(foca.keys()).copied().collect();
    let mut rows = Vec::new();
    for name in names {
        let (o, f) = (ours.get(name).copied(), foca.get(name).copied());
        obj.insert(format!("{name}_ours"), json!(o));
        obj.insert(format!("{name}_foca"), json!(f));
        let ratio = match (o, f) {
            (Some(ours), Some(foca)) => {
                let r = Pair {
                    ours,
                    foca,
                    dir: dir_of(name),
                }
                .ratio();
                r.is_finite().then_some(r)
            }
            _ => None,
        };
        obj.insert(format!("{name}_ratio"), json!(ratio));
        rows.push((name, o, f, ratio));
    }
    obj.insert("wall_seconds".into(), json!(wall.elapsed().as_secs_f64()));
    if args.json {
        println!("{}", Value::Object(obj));
    } else {
        println!(
            "{:<36} {:>14} {:>14} {:>10}",
            "figure (ratio > 1: ours better)", "ours", "foca 2.0.0", "ratio"
        );
        let show = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
        for (name, o, f, r) in rows {
            println!("{name:<36} {:>14} {:>14} {:>10}", show(o), show(f), show(r));
        }
    }
    ExitCode::SUCCESS
}
