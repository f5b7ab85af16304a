//! A deterministic simulator: many members on a virtual clock and a virtual
//! network (feature `sim`).
//!
//! Members are ordinary [`Endpoint`]s, driven through the same poll API the
//! drivers use, so what runs here is what runs in production. Everything
//! random (loss, jitter, each member's own RNG if you seed it from
//! [`Sim::member_seed`]) comes from one seed: the same seed and the same calls
//! replay the same run, byte for byte.
//!
//! The network model: every datagram is delayed by `latency` plus a uniform
//! jitter in `0..=jitter` (jitter reorders datagrams), lost with probability
//! `loss`, and dropped if its link is blocked (partitions may be one-way).
//! Crashed members neither send nor receive; a restarted member is a new
//! endpoint on the same address.

use alloc::collections::{BTreeMap, BTreeSet, BinaryHeap};
use alloc::vec::Vec;
use core::cmp::{Ordering, Reverse};
use core::time::Duration;

use rand::rngs::Xoshiro128PlusPlus;
use rand::{Rng, RngExt, SeedableRng};

use crate::{BroadcastHandler, Codec, Endpoint, Identity, Notification};

struct InFlight<A> {
    at: Duration,
    seq: u64,
    to: A,
    from: A,
    data: Vec<u8>,
}

impl<A> PartialEq for InFlight<A> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl<A> Eq for InFlight<A> {}
impl<A> PartialOrd for InFlight<A> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<A> Ord for InFlight<A> {
    fn cmp(&self, other: &Self) -> Ordering {
        (Reverse(self.at), Reverse(self.seq)).cmp(&(Reverse(other.at), Reverse(other.seq)))
    }
}

/// A simulated member: its endpoint and whether it is running.
struct Slot<E> {
    endpoint: E,
    up: bool,
}

type Slots<T, C, R, B> = BTreeMap<<T as Identity>::Addr, Slot<Endpoint<T, C, R, B>>>;

/// Totals over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams handed to the network.
    pub sent: u64,
    /// Bytes handed to the network.
    pub bytes: u64,
    /// Datagrams delivered to a running member.
    pub delivered: u64,
    /// Datagrams lost at random.
    pub lost: u64,
    /// Datagrams dropped by a blocked link or a crashed receiver.
    pub blocked: u64,
    /// FNV-1a digest of every datagram sent, with its send time: two runs
    /// sent the same bytes at the same times iff their digests match
    /// (up to hash collisions).
    pub digest: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The simulation. See the [module docs](self).
pub struct Sim<T, C, R, B>
where
    T: Identity,
    C: Codec<T>,
    R: Rng,
    B: BroadcastHandler<T>,
{
    now: Duration,
    members: Slots<T, C, R, B>,
    in_flight: BinaryHeap<InFlight<T::Addr>>,
    rng: Xoshiro128PlusPlus,
    seq: u64,
    latency: Duration,
    jitter: Duration,
    loss: f64,
    blocked: BTreeSet<(T::Addr, T::Addr)>,
    notifications: Vec<(Duration, T::Addr, Notification<T>)>,
    stats: NetStats,
}

impl<T, C, R, B> Sim<T, C, R, B>
where
    T: Identity,
    C: Codec<T>,
    R: Rng,
    B: BroadcastHandler<T>,
{
    /// An empty simulation: 1 ms latency, no jitter, no loss.
    pub fn new(seed: u64) -> Self {
        Self {
            now: Duration::ZERO,
            members: BTreeMap::new(),
            in_flight: BinaryHeap::new(),
            rng: Xoshiro128PlusPlus::seed_from_u64(seed),
            seq: 0,
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss: 0.0,
            blocked: BTreeSet::new(),
            notifications: Vec::new(),
            stats: NetStats {
                digest: FNV_OFFSET,
                ..NetStats::default()
            },
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

    /// Sets every link's one-way latency and jitter.
    pub fn set_latency(&mut self, latency: Duration, jitter: Duration) {
        self.latency = latency;
        self.jitter = jitter;
    }

    /// Sets the probability that a datagram is lost (clamped to `0..=1`).
    pub fn set_loss(&mut self, loss: f64) {
        self.loss = if loss.is_nan() {
            0.0
        } else {
            loss.clamp(0.0, 1.0)
        };
    }

    /// Adds (or replaces, as a restart) the member with `endpoint`'s address.
    pub fn add(&mut self, endpoint: Endpoint<T, C, R, B>) -> T::Addr {
        let addr = endpoint.foca().identity().addr();
        self.members
            .insert(addr.clone(), Slot { endpoint, up: true });
        addr
    }

    /// Stops a member: it neither sends nor receives, its timers stop.
    pub fn crash(&mut self, addr: &T::Addr) {
        if let Some(slot) = self.members.get_mut(addr) {
            slot.up = false;
        }
    }

    /// Whether a member is running.
    pub fn is_up(&self, addr: &T::Addr) -> bool {
        self.members.get(addr).is_some_and(|s| s.up)
    }

    /// Drops datagrams from `from` to `to` (one way).
    pub fn block(&mut self, from: T::Addr, to: T::Addr) {
        self.blocked.insert((from, to));
    }

    /// Cuts every link between `a` and `b`, both ways.
    pub fn partition(&mut self, a: &[T::Addr], b: &[T::Addr]) {
        for x in a {
            for y in b {
                self.blocked.insert((x.clone(), y.clone()));
                self.blocked.insert((y.clone(), x.clone()));
            }
        }
    }

    /// Cuts `addr` off from every other member, both ways.
    pub fn isolate(&mut self, addr: &T::Addr) {
        let others: Vec<T::Addr> = self
            .members
            .keys()
            .filter(|a| *a != addr)
            .cloned()
            .collect();
        self.partition(core::slice::from_ref(addr), &others);
    }

    /// Restores every blocked link.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// The member's endpoint.
    pub fn endpoint(&self, addr: &T::Addr) -> Option<&Endpoint<T, C, R, B>> {
        self.members.get(addr).map(|s| &s.endpoint)
    }

    /// The addresses of all members, running or not, in order.
    pub fn addrs(&self) -> Vec<T::Addr> {
        self.members.keys().cloned().collect()
    }

    /// Runs `f` on a member's endpoint at the current time (a user command:
    /// announce, leave, broadcast...), then sends what it produced.
    pub fn with<X>(
        &mut self,
        addr: &T::Addr,
        f: impl FnOnce(&mut Endpoint<T, C, R, B>, Duration) -> X,
    ) -> Option<X> {
        let now = self.now;
        let slot = self.members.get_mut(addr)?;
        let x = f(&mut slot.endpoint, now);
        self.drain(addr);
        Some(x)
    }

    /// Every notification so far: when, which member, what.
    pub fn notifications(&self) -> &[(Duration, T::Addr, Notification<T>)] {
        &self.notifications
    }

    /// Network totals so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Moves a member's outputs to the network and the notification log.
    fn drain(&mut self, addr: &T::Addr) {
        let Some(slot) = self.members.get_mut(addr) else {
            return;
        };
        let up = slot.up;
        while let Some(n) = slot.endpoint.poll_notification() {
            self.notifications.push((self.now, addr.clone(), n));
        }
        while let Some(t) = slot.endpoint.poll_transmit() {
            if !up {
                continue;
            }
            self.stats.sent += 1;
            self.stats.bytes += t.data.len() as u64;
            let nanos = u64::try_from(self.now.as_nanos()).unwrap_or(u64::MAX);
            self.stats.digest = fnv(self.stats.digest, &nanos.to_be_bytes());
            self.stats.digest = fnv(self.stats.digest, &t.data);
            let to = t.to.addr();
            if self.blocked.contains(&(addr.clone(), to.clone())) {
                self.stats.blocked += 1;
                continue;
            }
            if self.loss > 0.0 && self.rng.random_bool(self.loss) {
                self.stats.lost += 1;
                continue;
            }
            let jitter = if self.jitter.is_zero() {
                Duration::ZERO
            } else {
                let max = u64::try_from(self.jitter.as_nanos()).unwrap_or(u64::MAX);
                Duration::from_nanos(self.rng.random_range(0..=max))
            };
            self.seq += 1;
            self.in_flight.push(InFlight {
                at: self.now + self.latency + jitter,
                seq: self.seq,
                to,
                from: addr.clone(),
                data: t.data,
            });
        }
    }

    /// Runs until virtual time `now + duration`.
    pub fn run_for(&mut self, duration: Duration) {
        let until = self.now + duration;
        self.run_until(until);
    }

    /// Runs until virtual time `until`, processing every delivery and timer
    /// due by then in time order.
    pub fn run_until(&mut self, until: Duration) {
        loop {
            let next_net = self.in_flight.peek().map(|f| f.at);
            let next_timer = self
                .members
                .values()
                .filter(|s| s.up)
                .filter_map(|s| s.endpoint.next_deadline())
                .min();
            let next = match (next_net, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            self.step();
        }
        self.now = self.now.max(until);
    }

    /// Delivers every datagram and fires every timer due now.
    fn step(&mut self) {
        let now = self.now;
        while self.in_flight.peek().is_some_and(|f| f.at <= now) {
            let Some(f) = self.in_flight.pop() else { break };
            // A link cut while the datagram was in flight drops it too.
            let link_cut = self.blocked.contains(&(f.from.clone(), f.to.clone()));
            match self.members.get_mut(&f.to) {
                Some(slot) if slot.up && !link_cut => {
                    self.stats.delivered += 1;
                    // Errors are failures to encode replies: test codecs
                    // don't fail, and a real one would be a bug to surface.
                    let _ = slot.endpoint.handle_datagram(now, &f.data);
                    self.drain(&f.to.clone());
                }
                _ => self.stats.blocked += 1,
            }
        }
        let due: Vec<T::Addr> = self
            .members
            .iter()
            .filter(|(_, s)| s.up && s.endpoint.next_deadline().is_some_and(|d| d <= now))
            .map(|(a, _)| a.clone())
            .collect();
        for addr in due {
            if let Some(slot) = self.members.get_mut(&addr) {
                let _ = slot.endpoint.handle_timeouts(now);
            }
            self.drain(&addr);
        }
    }
}
