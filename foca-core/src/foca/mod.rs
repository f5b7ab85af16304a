//! The SWIM state machine; see [`Foca`].

mod apply;
mod guard;
mod kept;
mod receive;
mod replay;
mod send;
mod suspicion;
mod timers;
mod verdicts;

use alloc::vec::Vec;
use core::fmt;

use rand::Rng;

use crate::backlog::Backlog;
use crate::members::Members;
use crate::wire;
use crate::{
    BroadcastHandler, Codec, Config, Error, Header, Identity, Incarnation, Invalidates, Member,
    Message, Metrics, NoCustomBroadcast, Notification, Opened, ProbeNumber, Runtime, State, Timer,
};

use guard::Guard;
pub use guard::{AMPLIFICATION_FACTOR, MAX_FEEDS_PER_SOURCE};
use kept::Kept;
pub use replay::REPLAY_WINDOW;
use replay::Replay;
use send::Pool;
use suspicion::Suspicions;
use timers::Chains;
pub use timers::JITTER_DIVISOR;
pub use verdicts::MAX_VERDICTS_REMEMBERED;
use verdicts::Verdicts;

/// Most seeds remembered for recovery; further ones are ignored.
pub const MAX_SEEDS: usize = 32;

/// Whether this member is part of a cluster, as far as it can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    /// Running, with at least one live peer.
    Connected,
    /// Running with no live peer: retrying its seeds and known members.
    Disconnected,
    /// Left the cluster on purpose; `announce` or `join` rejoins.
    Left,
    /// Incarnation spent and identity not renewable; `change_identity`
    /// revives it.
    Defunct,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Running,
    Left,
    Defunct,
}

/// One probe: a ping, then (after `probe_rtt`) helpers, then a verdict.
struct Round<T> {
    number: ProbeNumber,
    /// The member probed, as it was when the probe started.
    target: Option<Member<T>>,
    acked: bool,
    /// Whether the target was pinged again (`Config::patient_probes`).
    retried: bool,
    /// Whether the indirect stage (`SendIndirectProbe`) has run.
    indirect_done: bool,
    /// Whether helpers were asked (so an ack counts as an indirect success).
    indirect_sent: bool,
    /// Helpers asked, and nacks received from them, for this probe.
    helpers: u8,
    nacks: u8,
}

impl<T> Round<T> {
    const fn new() -> Self {
        Self {
            number: 0,
            target: None,
            acked: false,
            retried: false,
            indirect_done: false,
            indirect_sent: false,
            helpers: 0,
            nacks: 0,
        }
    }
}

/// The probes in progress.
struct Probe<T> {
    /// This period's.
    round: Round<T>,
    /// The previous period's, unanswered when its period ended, waiting for
    /// its verdict until this period's indirect stage (see
    /// `Config::patient_probes`).
    previous: Option<Round<T>>,
    /// Whether this probe may verify a suspicion (every other one).
    verify_turn: bool,
}

impl<T> Probe<T> {
    /// The probe numbered `number`, this period's or the previous one.
    fn numbered(&mut self, number: ProbeNumber) -> Option<&mut Round<T>> {
        if self.round.number == number && self.round.target.is_some() {
            return Some(&mut self.round);
        }
        self.previous.as_mut().filter(|r| r.number == number)
    }

    /// Drops every probe in progress.
    fn clear(&mut self) {
        self.round.target = None;
        self.previous = None;
    }
}

type BroadcastKey<T, B> = <<B as BroadcastHandler<T>>::Broadcast as Invalidates>::Key;

/// A queued custom broadcast: what the handler made of it, and the members
/// known to hold it (the one it came from, and those it was sent to).
/// Sends skip holders, so an item's transmissions reach distinct members:
/// with random targets, 20 broadcasts on 6 members missed someone in 10 of
/// 40 simulator runs (`simulate --scenario broadcasts --members 6`). At
/// most one holder more than the item's transmissions.
struct Queued<B, A> {
    broadcast: B,
    holders: Vec<A>,
}

/// The SWIM state machine.
///
/// [`Foca`] is one cluster member. It is driven by three kinds of input, each a
/// method: datagrams ([`Foca::handle_data`]), timer events
/// ([`Foca::handle_timer`]), user commands (announce, leave, broadcast, ...)
/// and nothing else. Its output goes through a [`Runtime`]: datagrams to send,
/// timers to schedule, notifications. It never blocks, reads a clock or
/// touches a socket, so the same code runs in a tokio service, on a
/// microcontroller and in the simulator.
///
/// The protocol, in short (SWIM, Das et al. 2002, with its Inf. and Susp.
/// extensions):
/// - every `probe_period` one member is pinged, in randomized round-robin
///   order; if no ack comes within `probe_rtt`, `num_indirect_probes` helpers
///   ping it on our behalf; with no ack at all by the end of the period it is
///   *suspected* (with `Config::patient_probes`, the default: it is pinged
///   again at half the probe RTT, and the verdict waits until the next
///   probe's `probe_rtt`, so a member that answers late is not suspected
///   for one lost datagram);
/// - a suspect that does not refute (by raising its incarnation) within the
///   suspicion timeout is declared *down*;
/// - all news rides on the datagrams the protocol sends anyway, each item a
///   bounded number of times (infection-style dissemination).
///
/// Where it departs from the original foca crate, on purpose:
/// - News about one identity is totally ordered (incarnation, then
///   `Left > Down > Suspect > Alive`), and every merge takes the maximum. So a
///   stale `Down` can never override a refutation, merging is commutative and
///   idempotent, and a member declared down rejoins by refuting at a higher
///   incarnation, with no identity change needed.
/// - A member with no live peer keeps retrying its seeds and the members it
///   knew, with exponential backoff and jitter, until the network returns.
/// - Timer events carry tokens: late, duplicated and reordered events are
///   recognised and ignored, never an error.
///
/// # Type parameters
/// - `T`: the [`Identity`] type;
/// - `C`: the [`Codec`];
/// - `R`: the random number generator (seed it for reproducible runs);
/// - `B`: the [`BroadcastHandler`] for custom broadcasts.
pub struct Foca<T, C, R, B = NoCustomBroadcast>
where
    T: Identity,
    C: Codec<T>,
    R: Rng,
    B: BroadcastHandler<T>,
{
    members: Members<T>,
    identity: T,
    incarnation: Incarnation,
    status: Status,
    connected: bool,
    /// Lost every live peer since it was last connected.
    cut_off: bool,
    /// Summaries answered this probe period (see `sync_answer_limit`).
    sync_answers: u16,
    /// What may be sent back to addresses that have not proven themselves.
    guard: Guard<T::Addr>,
    /// Sequence numbers seen from each sender, for sealed datagrams.
    replay: Replay<T>,
    /// Encoded size of the largest header this member sends.
    header_size: usize,
    rng: R,
    probe: Probe<T>,
    /// Lifeguard's local health score: the probe period and RTT are
    /// stretched by `health + 1` (see `Config::awareness_max_multiplier`).
    health: u8,
    /// Whether a refutation already counted against `health` this probe
    /// period (at most once: a rogue forging suspicions of this member
    /// many times a second must not slow its probing to the maximum).
    refuted_this_period: bool,
    /// Datagrams periodic gossip may still send: one back each probe
    /// period, up to `gossip_burst()`.
    gossip_credits: u32,
    /// Lifeguard's suspicions in flight, with their confirmations.
    suspicions: Suspicions<T::Addr>,
    /// Scratch: the suspicions a datagram told of, `(addr, incarnation,
    /// a finding of its sender's)`.
    heard: Vec<(T::Addr, Incarnation, bool)>,
    /// Relays (prober, probe number) whose target answered: their nack
    /// timers send nothing. At most 16.
    relays_answered: Vec<(T::Addr, ProbeNumber)>,
    /// Scratch: the addresses a datagram's findings and buddy record took.
    written: Vec<T::Addr>,
    chains: Chains,
    /// Scratch buffers, kept to avoid allocating per datagram.
    buf: Vec<u8>,
    scratch: Vec<u8>,
    ids: Vec<T>,
    /// Queued membership updates, by address: only their sizes are kept,
    /// the records are encoded from the table when sent.
    updates: Backlog<T::Addr, (), u16>,
    broadcasts: Backlog<BroadcastKey<T, B>, Queued<B::Broadcast, T::Addr>>,
    /// Custom broadcasts kept for anti-entropy (see `kept`).
    kept: Kept<BroadcastKey<T, B>>,
    /// Scratch: hashes of the custom broadcasts a sync request carried,
    /// sorted.
    pushed: Vec<u64>,
    config: Config,
    codec: C,
    handler: B,
    seeds: Vec<T>,
    metrics: Metrics,
    /// The verdicts this member made, withdrawn after a reconnect.
    verdicts: Verdicts<T::Addr>,
    /// Queued updates about identities neither in the table nor ours (an
    /// identity this member left behind), newest last, at most
    /// [`MAX_DETACHED`].
    detached: Vec<Member<T>>,
}

/// Members told directly when this one leaves (all of them in a cluster
/// this small): a member that has not heard of the leave when its probe of
/// the leaver goes unanswered suspects it, and would report it down, not
/// left, if the news took longer than the suspicion to arrive (with
/// gossip rounds held back by their budget after a burst of news, it
/// can).
pub const LEAVE_FANOUT: usize = 16;

/// The most datagrams one [`Foca::broadcast`] call sends.
pub const MAX_FLUSH_DATAGRAMS: usize = 128;

/// How many records of left-behind identities wait for dissemination.
const MAX_DETACHED: usize = 4;

/// Members told at once of news that cannot wait for the next probe (this
/// member leaving or changing identity, a manual gossip without
/// `periodic_gossip`, a recovery attempt to members recorded down).
pub const DEFAULT_FANOUT: usize = 3;

impl<T, C, R> Foca<T, C, R, NoCustomBroadcast>
where
    T: Identity,
    C: Codec<T>,
    R: Rng,
{
    /// A member without custom broadcasts. Fails if `config` is invalid or
    /// a header with `identity` cannot fit in `config.max_packet_size`.
    pub fn new(identity: T, config: Config, rng: R, codec: C) -> Result<Self, Error> {
        Self::with_custom_broadcast(identity, config, rng, codec, NoCustomBroadcast)
    }
}

impl<T, C, R, B> Foca<T, C, R, B>
where
    T: Identity,
    C: Codec<T>,
    R: Rng,
    B: BroadcastHandler<T>,
{
    /// A member whose custom broadcasts are handled by `handler`.
    pub fn with_custom_broadcast(
        identity: T,
        config: Config,
        mut rng: R,
        codec: C,
        handler: B,
    ) -> Result<Self, Error> {
        config.validate()?;
        let seed = rng.next_u64();
        let digest_bits = crate::members::bucket_bits(config.max_members);
        let mut foca = Self {
            identity,
            incarnation: 0,
            status: Status::Running,
            connected: false,
            cut_off: false,
            sync_answers: 0,
            guard: Guard::new(seed.rotate_left(32)),
            replay: Replay::new(seed.rotate_left(48), replay::capacity(config.max_members)),
            updates: Backlog::new(config.max_updates_backlog),
            broadcasts: Backlog::new(config.max_broadcast_backlog),
            kept: Kept::new(config.max_broadcast_backlog),
            config,
            rng,
            codec,
            handler,
            members: Members::new(seed, digest_bits),
            probe: Probe {
                round: Round::new(),
                previous: None,
                verify_turn: false,
            },
            health: 0,
            refuted_this_period: false,
            gossip_credits: 0,
            suspicions: Suspicions::new(),
            heard: Vec::new(),
            written: Vec::new(),
            pushed: Vec::new(),
            relays_answered: Vec::new(),
            chains: Chains::new(),
            seeds: Vec::new(),
            metrics: Metrics::default(),
            header_size: 0,
            buf: Vec::new(),
            scratch: Vec::new(),
            detached: Vec::new(),
            verdicts: Verdicts::new(),
            ids: Vec::new(),
        };
        foca.header_size = foca.measure_header()?;
        foca.gossip_credits = foca.gossip_burst();
        foca.updates.pin(foca.identity.addr());
        let keeps = foca.config.periodic_sync.is_some();
        foca.broadcasts.keep_retired(keeps);
        Ok(foca)
    }

    /// This member's identity.
    pub fn identity(&self) -> &T {
        &self.identity
    }

    /// This member's incarnation.
    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    /// The config in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether this member is connected, alone, gone or defunct.
    pub fn connection_state(&self) -> ConnectionState {
        match self.status {
            Status::Left => ConnectionState::Left,
            Status::Defunct => ConnectionState::Defunct,
            Status::Running if self.members.num_active() > 0 => ConnectionState::Connected,
            Status::Running => ConnectionState::Disconnected,
        }
    }

    /// The custom broadcast handler.
    pub fn broadcast_handler(&self) -> &B {
        &self.handler
    }

    /// The custom broadcast handler, mutably (to update its own state).
    pub fn broadcast_handler_mut(&mut self) -> &mut B {
        &mut self.handler
    }

    /// Counters of what this member did and dropped, with current gauges.
    pub fn metrics(&self) -> Metrics {
        let mut m = self.metrics;
        m.updates_dropped = self.updates.dropped;
        m.broadcasts_dropped = self.broadcasts.dropped;
        m.updates_backlog = self.updates.len() as u64;
        m.broadcast_backlog = self.broadcasts.len() as u64;
        m.broadcasts_kept = self.kept.len() as u64;
        m.health_multiplier = u64::from(self.health_multiplier());
        m
    }

    /// How much this member stretches its probe period and probe RTT now:
    /// 1 when healthy, up to [`Config::awareness_max_multiplier`] when its
    /// probes keep failing without its helpers answering (Lifeguard's
    /// local health awareness).
    pub fn health_multiplier(&self) -> u32 {
        u32::from(self.health) + 1
    }

    /// The number of active (alive or suspect) members, not counting this one.
    pub fn num_members(&self) -> usize {
        self.members.num_active()
    }

    /// A number that changes whenever the member table changes (a member
    /// added, updated or removed): a driver compares it to know when to
    /// publish a new member list.
    pub fn membership_version(&self) -> u64 {
        self.members.version()
    }

    /// The active (alive or suspect) members, not counting this one.
    pub fn iter_members(&self) -> impl Iterator<Item = &Member<T>> + '_ {
        self.members.active_members().iter()
    }

    /// Every member in the table, down and left ones included: the state to
    /// persist and restore (with [`Foca::apply_many`]) across restarts.
    pub fn iter_membership_state(&self) -> impl Iterator<Item = &Member<T>> + '_ {
        self.members.all().iter()
    }

    /// What this member knows about `addr`, if anything.
    pub fn member(&self, addr: &T::Addr) -> Option<&Member<T>> {
        self.members
            .find(addr)
            .and_then(|pos| self.members.get(pos))
    }

    /// Membership updates waiting to be disseminated.
    pub fn updates_backlog(&self) -> usize {
        self.updates.len()
    }

    /// Custom broadcasts waiting to be disseminated.
    pub fn custom_broadcast_backlog(&self) -> usize {
        self.broadcasts.len()
    }

    /// Heap bytes held by the member table and its lookup index.
    pub fn member_table_heap_bytes(&self) -> usize {
        self.members.heap_bytes()
    }

    /// The seeds retried while this member has no live peer.
    pub fn seeds(&self) -> &[T] {
        &self.seeds
    }

    fn check_running(&self) -> Result<(), Error> {
        match self.status {
            Status::Running => Ok(()),
            Status::Left => Err(Error::Left),
            Status::Defunct => Err(Error::Defunct),
        }
    }

    /// Asks `dst` to let this member in. `dst` may be a placeholder identity
    /// that only has the right address (see
    /// [`GenerationalId::seed`](crate::GenerationalId::seed)). After a leave,
    /// this rejoins at a higher incarnation.
    pub fn announce(&mut self, dst: T, mut runtime: impl Runtime<T>) -> Result<(), Error> {
        if dst.addr() == self.identity.addr() {
            return Err(Error::AnnounceToSelf);
        }
        self.resume(&mut runtime)?;
        self.send(&dst, Message::Announce, &mut runtime)?;
        self.after_change(&mut runtime);
        Ok(())
    }

    /// Joins through `seeds`: announces to each and remembers them (up to
    /// [`MAX_SEEDS`]), so that if this member ever loses every peer it
    /// retries them, with backoff, until the network returns.
    pub fn join(
        &mut self,
        seeds: impl IntoIterator<Item = T>,
        mut runtime: impl Runtime<T>,
    ) -> Result<(), Error> {
        let own = self.identity.addr();
        self.seeds.clear();
        for seed in seeds {
            if seed.addr() != own && self.seeds.len() < MAX_SEEDS && !self.seeds.contains(&seed) {
                self.seeds.push(seed);
            }
        }
        self.resume(&mut runtime)?;
        let seeds = core::mem::take(&mut self.seeds);
        let mut result = Ok(());
        for seed in &seeds {
            if let Err(e) = self.send(seed, Message::Announce, &mut runtime) {
                result = Err(e);
            }
        }
        self.seeds = seeds;
        self.after_change(&mut runtime);
        result
    }

    /// After a leave, come back at a higher incarnation. No-op when running.
    fn resume(&mut self, runtime: &mut impl Runtime<T>) -> Result<(), Error> {
        match self.status {
            Status::Running => Ok(()),
            Status::Defunct => Err(Error::Defunct),
            Status::Left => {
                self.status = Status::Running;
                match self.incarnation.checked_add(1) {
                    Some(next) => {
                        self.incarnation = next;
                        self.enqueue_self()
                    }
                    None => self.renew_identity(runtime),
                }
            }
        }
    }

    /// Applies membership news from outside the protocol: restoring a
    /// persisted table, or news learned some other way. News about this
    /// member is handled as if gossiped (suspicions are refuted).
    pub fn apply_many(
        &mut self,
        updates: impl IntoIterator<Item = Member<T>>,
        mut runtime: impl Runtime<T>,
    ) -> Result<(), Error> {
        self.check_running()?;
        for update in updates {
            self.apply_update(update, &mut runtime)?;
        }
        self.after_change(&mut runtime);
        Ok(())
    }

    /// Installs membership the rest of the cluster already has (a table
    /// persisted before a restart, or one copied when assembling a large
    /// cluster) without queuing it for dissemination: like
    /// [`Foca::apply_many`], but sends nothing about these members.
    pub fn restore(
        &mut self,
        members: impl IntoIterator<Item = Member<T>>,
        mut runtime: impl Runtime<T>,
    ) -> Result<(), Error> {
        self.check_running()?;
        // Live members new to the table go in as one batch; the rest (news
        // about known members, suspects, the dead, ourselves, duplicates)
        // merges one by one.
        let own = self.identity.addr();
        let mut fresh = Vec::new();
        // Only inserted into, never iterated: its order cannot leak.
        let mut batch = hashbrown::HashSet::with_hasher(foldhash::fast::FixedState::with_seed(0));
        let mut rest = Vec::new();
        let room = self.config.max_members.saturating_sub(self.members.len());
        // Sized once: growing it step by step rehashed it again and again.
        let members: Vec<Member<T>> = members.into_iter().collect();
        batch.reserve(members.len().min(room));
        for member in members {
            let addr = member.id().addr();
            if member.state() == State::Alive
                && addr != own
                && fresh.len() < room
                && self.members.find(&addr).is_none()
                && batch.insert(addr)
            {
                fresh.push(member);
            } else {
                rest.push(member);
            }
        }
        for member in &fresh {
            runtime.notify(Notification::MemberUp(member.id().clone()));
        }
        self.members.insert_many(fresh, &mut self.rng);
        for member in rest {
            let mut spent = apply::Budget::default();
            let origin = apply::Origin {
                disseminate: false,
                hearsay: false,
                budget: &mut spent,
            };
            self.merge(member, origin, &mut runtime)?;
        }
        self.after_change(&mut runtime);
        Ok(())
    }

    /// Sends the updates backlog to a few random members now (as many as
    /// `periodic_gossip.num_members`, or 3). Does nothing with an empty backlog.
    pub fn gossip(&mut self, mut runtime: impl Runtime<T>) -> Result<(), Error> {
        self.check_running()?;
        let fanout = self
            .config
            .periodic_gossip
            .map_or(DEFAULT_FANOUT, |p| usize::from(p.num_members));
        self.gossip_to(fanout, &mut runtime)?;
        self.after_change(&mut runtime);
        Ok(())
    }

    /// Sends the custom broadcast backlog now, as far as it goes: to
    /// random active members in turn (twice as many as an item's
    /// transmissions), to each as many `Broadcast` datagrams as carry items
    /// it is not known to hold, until every item was sent its number of
    /// times or [`MAX_FLUSH_DATAGRAMS`] went out. Periodic gossip carries
    /// on with whatever is left. Does nothing with an empty backlog.
    ///
    /// So 1,000 items queued on 6 members leave in one call (80 datagrams
    /// of 1,400 bytes), not over several probe periods.
    pub fn broadcast(&mut self, mut runtime: impl Runtime<T>) -> Result<(), Error> {
        self.check_running()?;
        if self.broadcasts.is_empty() {
            return Ok(());
        }
        let limit = self.config.max_transmissions(self.members.num_active() + 1);
        let wanted = usize::try_from(limit.saturating_mul(2)).unwrap_or(usize::MAX);
        let mut ids = core::mem::take(&mut self.ids);
        self.members
            .choose_active(wanted, &mut self.rng, |_| true, &mut ids);
        let mut result = Ok(());
        let mut sent = 0;
        'members: for id in &ids {
            loop {
                if self.broadcasts.is_empty() || sent >= MAX_FLUSH_DATAGRAMS {
                    break 'members;
                }
                // A datagram goes out only if it carries something.
                let before = self.metrics.datagrams_out;
                result = result.and(self.send(id, Message::Broadcast, &mut runtime));
                if self.metrics.datagrams_out == before {
                    break;
                }
                sent += 1;
            }
        }
        self.ids = ids;
        // Starts periodic gossip, which carries the rest on.
        self.after_change(&mut runtime);
        result
    }

    /// Hands `data` to the broadcast handler as a locally created item and,
    /// if the handler says it is news, queues it for dissemination. Returns
    /// whether it was queued.
    pub fn add_broadcast(&mut self, data: &[u8]) -> Result<bool, Error> {
        let max = self.max_item_size().saturating_sub(wire::ITEM_FRAME);
        if data.len() > max {
            return Err(Error::ItemTooLarge {
                size: data.len(),
                max,
            });
        }
        match self.handler.receive_item(data, None) {
            Ok(Some(broadcast)) => Ok(self.enqueue_broadcast(broadcast, data, None)),
            Ok(None) => Ok(false),
            Err(e) => Err(Error::BroadcastRejected(
                alloc::string::ToString::to_string(&e),
            )),
        }
    }

    /// Leaves the cluster gracefully: marks this member `Left` and tells
    /// up to [`LEAVE_FANOUT`] members at once; the news then spreads like
    /// any other. Probing
    /// stops. The driver should keep delivering datagrams for a moment so
    /// that the news is passed on. `announce` or `join` rejoins later.
    pub fn leave_cluster(&mut self, mut runtime: impl Runtime<T>) -> Result<(), Error> {
        match self.status {
            Status::Left => return Ok(()),
            Status::Defunct => return Err(Error::Defunct),
            Status::Running => {}
        }
        let left = Member::new(self.identity.clone(), self.incarnation, State::Left);
        self.enqueue_update(&left)?;
        // Before sending: our own queued record is encoded from the status.
        self.status = Status::Left;
        // The record itself to each (the backlog's copy, sent its number
        // of times, would run out before the fanout does).
        let fanout = usize::from(self.config.num_indirect_probes).max(LEAVE_FANOUT);
        let mut ids = core::mem::take(&mut self.ids);
        self.members
            .choose_active(fanout, &mut self.rng, |_| true, &mut ids);
        let mut result = Ok(());
        let record = [left];
        for id in &ids {
            let sent = self.send_records(id, Message::Gossip, &record, &mut runtime);
            result = result.and(sent);
        }
        self.ids = ids;
        self.connected = false;
        self.probe.clear();
        self.chains.reset();
        result
    }

    /// Switches to a new identity (a renewal, or a new address) and tells
    /// the cluster. The old identity is reported as left. Incarnation starts
    /// over at 0. Also revives a defunct member.
    pub fn change_identity(&mut self, new: T, mut runtime: impl Runtime<T>) -> Result<(), Error> {
        if new == self.identity || self.members.find(&new.addr()).is_some() {
            return Err(Error::IdentityInUse);
        }
        if new.addr() == self.identity.addr() && !new.win_addr_conflict(&self.identity) {
            return Err(Error::IdentityLosesConflict);
        }
        self.switch_identity(new, &mut runtime)?;
        self.after_change(&mut runtime);
        Ok(())
    }

    fn switch_identity(&mut self, new: T, runtime: &mut impl Runtime<T>) -> Result<(), Error> {
        let old = core::mem::replace(&mut self.identity, new);
        self.updates.pin(self.identity.addr());
        let old_incarnation = self.incarnation;
        self.incarnation = 0;
        self.status = Status::Running;
        self.header_size = self.measure_header()?;
        if old.addr() != self.identity.addr() {
            // Peers would otherwise wait for the old identity to fail probes.
            self.enqueue_detached(Member::new(old, old_incarnation, State::Left))?;
        }
        self.enqueue_self()?;
        self.probe.clear();
        self.chains.reset();
        runtime.notify(Notification::Rejoin(self.identity.clone()));
        // Announce to a few members so the new identity is known at once.
        let announce = || Message::Announce;
        self.send_to_random(Pool::Active, DEFAULT_FANOUT, |_| true, announce, runtime)
            .map(drop)
    }

    /// Moves to `identity.renew()` when the incarnation is spent; defunct if
    /// the identity cannot be renewed.
    fn renew_identity(&mut self, runtime: &mut impl Runtime<T>) -> Result<(), Error> {
        match self.identity.renew() {
            Some(new)
                if self.members.find(&new.addr()).is_none()
                    || new.addr() == self.identity.addr() =>
            {
                self.switch_identity(new, runtime)
            }
            _ => {
                self.status = Status::Defunct;
                self.connected = false;
                self.chains.reset();
                runtime.notify(Notification::Defunct);
                Ok(())
            }
        }
    }

    /// Replaces the config. Every field may change; timers are re-armed with
    /// the new periods, backlogs re-bounded. Invalid configs are refused.
    pub fn set_config(
        &mut self,
        config: Config,
        mut runtime: impl Runtime<T>,
    ) -> Result<(), Error> {
        config.validate()?;
        let old = core::mem::replace(&mut self.config, config);
        if let Err(e) = self.measure_header() {
            self.config = old;
            return Err(e);
        }
        self.updates.set_capacity(self.config.max_updates_backlog);
        self.replay
            .set_capacity(replay::capacity(self.config.max_members));
        self.members
            .set_digest_bits(crate::members::bucket_bits(self.config.max_members));
        self.broadcasts
            .set_capacity(self.config.max_broadcast_backlog);
        let keeps = self.config.periodic_sync.is_some();
        self.broadcasts.keep_retired(keeps);
        self.kept
            .set_capacity(self.config.max_broadcast_backlog * usize::from(keeps));
        self.chains.reset();
        self.after_change(&mut runtime);
        Ok(())
    }

    /// Feeds a received datagram. Datagrams that fail to decode, or are
    /// stale, foreign or misdirected, are dropped and counted in
    /// [`Metrics::dropped`]; they change nothing else. `Err` only reports a
    /// failure to encode a reply.
    ///
    /// The datagram's source is unknown here, so nothing is checked or
    /// limited by it: a driver that knows where datagrams come from calls
    /// [`handle_data_from`](Self::handle_data_from) instead.
    pub fn handle_data(&mut self, data: &[u8], mut runtime: impl Runtime<T>) -> Result<(), Error> {
        self.receive(data, None, &mut runtime)
    }

    /// [`handle_data`](Self::handle_data) for a datagram that came from
    /// `from`, its envelope already opened (see [`Opened`]: the payload,
    /// whether a key vouched for it, and its sender's sequence number). A
    /// datagram whose sender claims another address is dropped (see
    /// [`Config::check_source`]), as is one whose sequence number its
    /// sender used before ([`REPLAY_WINDOW`]); until `from` has proven
    /// itself, what is sent back totals at most [`AMPLIFICATION_FACTOR`]
    /// times the payload's size (see [`Endpoint`](crate::Endpoint), which
    /// calls this).
    pub fn handle_data_from(
        &mut self,
        opened: Opened<'_>,
        from: T::Addr,
        mut runtime: impl Runtime<T>,
    ) -> Result<(), Error> {
        let len = opened.payload.len();
        self.receive_from(opened, from, 0, len, &mut runtime)
    }

    /// Handles `data`, the payload of a datagram of `wire_len` bytes from
    /// `from`, opened by an envelope adding `overhead` bytes to each
    /// datagram it seals.
    pub(crate) fn receive_from(
        &mut self,
        opened: Opened<'_>,
        from: T::Addr,
        overhead: usize,
        wire_len: usize,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        self.guard
            .begin(from, wire_len, opened.authenticated, overhead);
        let result = self.receive(opened.payload, opened.sequence, runtime);
        self.guard.end();
        result
    }

    /// Feeds a timer event scheduled through [`Runtime::submit_after`].
    /// Late, duplicated and stale events are ignored (and counted).
    pub fn handle_timer(
        &mut self,
        timer: Timer<T>,
        mut runtime: impl Runtime<T>,
    ) -> Result<(), Error> {
        self.on_timer(timer, &mut runtime)
    }

    /// Queues this member's own `Alive` at its current incarnation.
    fn enqueue_self(&mut self) -> Result<(), Error> {
        let me = Member::alive(self.identity.clone(), self.incarnation);
        self.enqueue_update(&me)
    }

    /// Connection notifications, timer chains: called after every input.
    fn after_change(&mut self, runtime: &mut impl Runtime<T>) {
        let connected = self.status == Status::Running && self.members.num_active() > 0;
        if self.status == Status::Running && connected != self.connected {
            runtime.notify(if connected {
                Notification::Active
            } else {
                Notification::Idle
            });
        }
        if connected != self.connected {
            self.chains.rejoin_delay = self.config.rejoin_backoff_min;
        }
        if self.status == Status::Running && self.connected && !connected {
            self.cut_off = true;
        }
        let reconnected = connected && !self.connected && self.cut_off;
        self.connected = connected;
        if reconnected {
            self.cut_off = false;
            self.withdraw_own_verdicts(runtime);
            // Our health was measured against a network that was not
            // there: start afresh, probing at full pace, so that the
            // members we suspected while cut off hear of it (buddy system)
            // and refute before our suspicions run out.
            self.health = 0;
            // Our view is far behind (members we declared down and then
            // forgot): pull a feed, which starts a chain of them (see
            // `receive`) until feeds stop bringing news.
            let _ = self.send_to_random(Pool::Active, 1, |_| true, || Message::Announce, runtime);
        }
        self.ensure_timers(runtime);
        let backlog = self.updates.len() as u64;
        if backlog > self.metrics.max_updates_backlog {
            self.metrics.max_updates_backlog = backlog;
        }
    }

    /// Encodes the largest header this member sends, to size budgets.
    fn measure_header(&mut self) -> Result<usize, Error> {
        let header = Header {
            src: self.identity.clone(),
            src_incarnation: Incarnation::MAX,
            dst: self.identity.clone(),
            message: Message::PingReq {
                target: self.identity.clone(),
                probe_number: ProbeNumber::MAX,
            },
        };
        let mut buf = Vec::new();
        self.codec
            .encode_header(&header, &mut buf)
            .map_err(|e| Error::Encode(alloc::string::ToString::to_string(&e)))?;
        let size = buf.len();
        // A header, the two section counts and a few small items must fit.
        if size + wire::SECTION_COUNTS + wire::MIN_ITEM_ROOM > self.config.max_packet_size {
            return Err(Error::HeaderTooLarge {
                size,
                max: self.config.max_packet_size,
            });
        }
        Ok(size)
    }

    /// The most bytes of items one datagram can carry (after the header and
    /// the two section counts).
    fn max_item_size(&self) -> usize {
        self.config.max_packet_size - self.header_size - wire::SECTION_COUNTS
    }
}

impl<T, C, R, B> fmt::Debug for Foca<T, C, R, B>
where
    T: Identity,
    C: Codec<T>,
    R: Rng,
    B: BroadcastHandler<T>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Foca")
            .field("identity", &self.identity)
            .field("incarnation", &self.incarnation)
            .field("state", &self.connection_state())
            .field("members", &self.members.num_active())
            .field("inactive", &self.members.num_inactive())
            .field("updates_backlog", &self.updates.len())
            .finish()
    }
}
