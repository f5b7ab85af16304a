//! The sans-IO object every driver and the simulator drive: see [`Endpoint`].

mod io;
mod outputs;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::time::Duration;

use rand::Rng;

pub use io::{Command, Event, Snapshot, Transmit};
use outputs::{Losses, Outputs, Spares};

use crate::{
    BroadcastHandler, Codec, Config, ConfigError, ConnectionState, Envelope, Error, Foca, Identity,
    MAX_PACKET_SIZE, Metrics, Refusal, Timer, TimerKey, TimerQueue,
};

/// Most datagrams waiting in an endpoint for the driver to send.
pub const MAX_QUEUED_TRANSMITS: usize = 4096;
/// Most events waiting in an endpoint for the driver to publish.
pub const MAX_QUEUED_EVENTS: usize = 4096;
/// Most timer events one `handle_timeouts` call processes; the rest wait for
/// the next call (their deadline has passed, so it comes at once).
pub const MAX_TIMERS_PER_CALL: usize = 1024;
/// Capacity an empty event queue keeps; a larger one is freed.
const SMALL_QUEUE: usize = 64;

/// The shortest time between two snapshots: membership changes within it
/// are published together (see [`Endpoint::poll_snapshot`]).
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_millis(100);

/// Datagrams refused before they reached the protocol.
#[derive(Clone, Copy, Debug, Default)]
struct Refusals {
    oversized: u64,
    malformed: u64,
    other_cluster: u64,
    corrupted: u64,
    unauthenticated: u64,
}

/// What the last snapshot was built from, and when it started a
/// [`SNAPSHOT_INTERVAL`] (the first one, of the member as created, starts
/// none: the first change shows at once).
struct Published<T> {
    version: u64,
    state: ConnectionState,
    identity: T,
    at: Option<Duration>,
}

/// The sans-IO object every driver and the simulator drive: one owner for a
/// [`Foca`], its [`Envelope`], its timers and its output queues (after
/// quinn-proto).
///
/// Three inputs: a wire datagram with the address it came from
/// ([`Endpoint::handle_datagram`]), a deadline reached
/// ([`Endpoint::handle_timeouts`]), a [`Command`] ([`Endpoint::command`]).
/// Four outputs: sealed datagrams with their destination
/// ([`Endpoint::poll_transmit`]), the next deadline
/// ([`Endpoint::next_deadline`]), [`Event`]s ([`Endpoint::poll_event`]),
/// and coalesced member-list [`Snapshot`]s ([`Endpoint::poll_snapshot`]).
/// A driver's loop is then the same everywhere:
///
/// ```text
/// loop {
///     wait for: a datagram, the earlier of next_deadline() and
///               snapshot_due(), or a command
///     endpoint.handle_datagram(now, from, bytes) / handle_timeouts(now) / command(now, c)
///     while let Some(t) = endpoint.poll_transmit() { socket.send_to(&t.data, t.to);
///                                                    endpoint.recycle(t.data) }  // optional
///     while let Some(e) = endpoint.poll_event()    { publish e }
///     if let Some(s) = endpoint.poll_snapshot(now) { publish s }
/// }
/// ```
///
/// Time is a [`Duration`] since an origin the driver picks; it must not go
/// backwards (an earlier time is taken as the latest one given).
///
/// Bounds: output queues hold at most [`MAX_QUEUED_TRANSMITS`] datagrams
/// and [`MAX_QUEUED_EVENTS`] events; a driver that stops draining them
/// loses the oldest, counted in [`Metrics`]. Timers sit in slots (see
/// [`TimerKey`]): at most [`MAX_CHAIN_TIMERS`](crate::MAX_CHAIN_TIMERS) plus
/// three per member of the table are pending, whatever arrives, and none is
/// ever refused.
///
/// The type parameters are `Foca`'s (identity, codec, RNG, broadcast
/// handler) and the [`Envelope`].
///
/// ```
/// use core::time::Duration;
/// use foca_core::testing::{NoEnvelope, TestCodec};
/// use foca_core::{Command, Config, Endpoint, Event, Foca, GenerationalId, Notification};
/// use rand::{SeedableRng, rngs::Xoshiro128PlusPlus};
///
/// let member = |addr: u32| {
///     let id = GenerationalId::new(addr, 1);
///     let rng = Xoshiro128PlusPlus::seed_from_u64(u64::from(addr));
///     let foca = Foca::new(id, Config::simple(), rng, TestCodec).unwrap();
///     Endpoint::new(foca, NoEnvelope, Duration::ZERO).unwrap()
/// };
/// let (mut a, mut b) = (member(1), member(2));
/// let now = Duration::ZERO;
/// // `a` knows only `b`'s address.
/// a.command(now, Command::Announce(GenerationalId::seed(2))).unwrap();
/// while let Some(mut t) = a.poll_transmit() {
///     assert_eq!(t.to, 2);
///     b.handle_datagram(now, 1, &mut t.data).unwrap();
/// }
/// while let Some(mut t) = b.poll_transmit() {
///     a.handle_datagram(now, 2, &mut t.data).unwrap();
/// }
/// assert_eq!(
///     b.poll_event(),
///     Some(Event::Membership(Notification::MemberUp(GenerationalId::new(1, 1))))
/// );
/// assert_eq!(a.snapshot().members.len(), 1);
/// ```
pub struct Endpoint<T, C, R, B, E>
where
    T: Identity,
    C: Codec<T>,
    R: Rng,
    B: BroadcastHandler<T>,
    E: Envelope,
{
    foca: Foca<T, C, R, B>,
    envelope: E,
    now: Duration,
    timers: TimerQueue<TimerKey<T::Addr>, Timer<T>>,
    /// Sealed datagrams, in send order.
    transmits: VecDeque<Transmit<T::Addr>>,
    events: VecDeque<Event<T>>,
    spares: Spares,
    losses: Losses,
    refusals: Refusals,
    published: Option<Published<T>>,
}

/// Refuses a config whose datagrams, once sealed, could exceed the largest
/// UDP payload.
fn check_fit(config: &Config, overhead: usize) -> Result<(), Error> {
    if config.max_packet_size.saturating_add(overhead) > MAX_PACKET_SIZE {
        return Err(Error::Config(ConfigError {
            field: "max_packet_size",
            rule: "plus the envelope's overhead must be at most 65507 bytes (MAX_PACKET_SIZE): lower it by Envelope::overhead",
        }));
    }
    Ok(())
}

impl<T, C, R, B, E> Endpoint<T, C, R, B, E>
where
    T: Identity,
    C: Codec<T>,
    R: Rng,
    B: BroadcastHandler<T>,
    E: Envelope,
{
    /// Wraps `foca` and `envelope`; `now` is the driver's current time.
    /// Fails if `max_packet_size` plus the envelope's overhead exceeds
    /// [`MAX_PACKET_SIZE`].
    pub fn new(foca: Foca<T, C, R, B>, envelope: E, now: Duration) -> Result<Self, Error> {
        check_fit(foca.config(), envelope.overhead())?;
        Ok(Self {
            foca,
            envelope,
            now,
            timers: TimerQueue::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            spares: Spares::default(),
            losses: Losses::default(),
            refusals: Refusals::default(),
            published: None,
        })
    }

    /// Runs `f` with the `Foca` and a runtime bound to this endpoint's
    /// queues, at `now` (never before the latest time given).
    fn with<X>(
        &mut self,
        now: Duration,
        f: impl FnOnce(&mut Foca<T, C, R, B>, &mut Outputs<'_, T, E>) -> X,
    ) -> X {
        self.now = self.now.max(now);
        let mut out = Outputs {
            now: self.now,
            timers: &mut self.timers,
            envelope: &mut self.envelope,
            transmits: &mut self.transmits,
            events: &mut self.events,
            losses: &mut self.losses,
            spares: &mut self.spares,
        };
        f(&mut self.foca, &mut out)
    }

    /// Feeds a datagram received from `from`. The envelope opens it where
    /// it lies (a sealed one is decrypted in place, after quinn-proto): the
    /// driver's receive buffer is all it needs. One larger than
    /// [`max_datagram`](Self::max_datagram), refused by the envelope, or
    /// that fails to parse, is dropped and counted ([`Metrics::dropped`]),
    /// and changes nothing else. `Err` only reports a failure to encode a
    /// reply (a codec bug).
    pub fn handle_datagram(
        &mut self,
        now: Duration,
        from: T::Addr,
        datagram: &mut [u8],
    ) -> Result<(), Error> {
        self.now = self.now.max(now);
        if datagram.len() > self.max_datagram() {
            self.refusals.oversized += 1;
            trace_event!(?from, reason = "oversized", "datagram dropped");
            return Ok(());
        }
        let wire_len = datagram.len();
        let opened = match self.envelope.open(datagram) {
            Ok(opened) => opened,
            Err(refusal) => {
                let r = &mut self.refusals;
                *match refusal {
                    Refusal::OtherCluster => &mut r.other_cluster,
                    Refusal::Corrupted => &mut r.corrupted,
                    Refusal::Unauthenticated => &mut r.unauthenticated,
                    _ => &mut r.malformed,
                } += 1;
                trace_event!(?from, reason = %refusal, "datagram refused");
                return Ok(());
            }
        };
        let overhead = self.envelope.overhead();
        self.with(now, |foca, out| {
            foca.receive_from(opened, from, overhead, wire_len, out)
        })
    }

    /// Fires every timer due at `now`, in deadline order (at most
    /// [`MAX_TIMERS_PER_CALL`]). Returns how many fired; the first error is
    /// returned after all due timers ran.
    pub fn handle_timeouts(&mut self, now: Duration) -> Result<usize, Error> {
        let mut fired = 0;
        let mut first_error = None;
        self.now = self.now.max(now);
        while fired < MAX_TIMERS_PER_CALL {
            let Some(timer) = self.timers.pop_due(self.now) else {
                break;
            };
            fired += 1;
            if let Err(e) = self.with(now, |foca, out| foca.handle_timer(timer, out)) {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(fired),
        }
    }

    /// Carries out a user's [`Command`]. Returns `Ok(false)` only for an
    /// [`AddBroadcast`](Command::AddBroadcast) the handler did not take as
    /// news; the error says what to change.
    pub fn command(&mut self, now: Duration, command: Command<T>) -> Result<bool, Error> {
        match command {
            Command::Announce(dst) => self.with(now, |f, out| f.announce(dst, out)),
            Command::Join(seeds) => self.with(now, |f, out| f.join(seeds, out)),
            Command::Leave => self.with(now, |f, out| f.leave_cluster(out)),
            Command::AddBroadcast(item) => {
                if !self.foca.add_broadcast(&item)? {
                    return Ok(false);
                }
                // Sent at once to a few members; it spreads from there.
                self.with(now, |f, out| f.broadcast(out))
            }
            Command::Gossip => self.with(now, |f, out| f.gossip(out)),
            Command::SetConfig(config) => {
                check_fit(&config, self.envelope.overhead())?;
                self.with(now, |f, out| f.set_config(*config, out))
            }
            Command::ChangeIdentity(id) => self.with(now, |f, out| f.change_identity(id, out)),
            Command::Apply(updates) => self.with(now, |f, out| f.apply_many(updates, out)),
            Command::Restore(members) => self.with(now, |f, out| f.restore(members, out)),
        }?;
        Ok(true)
    }

    /// When [`handle_timeouts`](Self::handle_timeouts) next has work.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.timers.next_deadline()
    }

    /// The next datagram to send, sealed (payloads the envelope could not
    /// seal were dropped and counted: [`Metrics::seal_errors`]).
    pub fn poll_transmit(&mut self) -> Option<Transmit<T::Addr>> {
        self.transmits.pop_front()
    }

    /// Gives back a datagram buffer the driver is done with (a sent
    /// [`Transmit::data`], or a received datagram it owns), for a later
    /// datagram to reuse instead of allocating. Optional: a driver that
    /// never calls it only allocates more. A few buffers are kept; the
    /// others given back are freed.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.spares.give(buf);
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event<T>> {
        let event = self.events.pop_front();
        if self.events.is_empty() && self.events.capacity() > SMALL_QUEUE {
            // A burst (a restored table) is not kept allocated.
            self.events = VecDeque::new();
        }
        event
    }

    /// The member list now.
    pub fn snapshot(&self) -> Snapshot<T> {
        Snapshot {
            identity: self.foca.identity().clone(),
            members: self.foca.iter_members().cloned().collect(),
            state: self.foca.connection_state(),
        }
    }

    /// Whether the member list changed since the last snapshot polled.
    fn view_changed(&self) -> bool {
        let f = &self.foca;
        self.published.as_ref().is_none_or(|p| {
            p.version != f.membership_version()
                || p.state != f.connection_state()
                || p.identity != *f.identity()
        })
    }

    /// When [`poll_snapshot`](Self::poll_snapshot) will have a snapshot:
    /// `None` while the member list is as last published. A driver that
    /// publishes snapshots wakes up then.
    pub fn snapshot_due(&self) -> Option<Duration> {
        if !self.view_changed() {
            return None;
        }
        let last = self.published.as_ref().and_then(|p| p.at);
        Some(last.map_or(Duration::ZERO, |at| at.saturating_add(SNAPSHOT_INTERVAL)))
    }

    /// A new snapshot of the member list, if it changed since the last one
    /// and the last one is at least [`SNAPSHOT_INTERVAL`] old: a change
    /// after a quiet spell shows at once, and the changes of a burst (a
    /// join that brings news of a hundred members) cost one more snapshot,
    /// not one per change.
    pub fn poll_snapshot(&mut self, now: Duration) -> Option<Snapshot<T>> {
        self.now = self.now.max(now);
        if self.snapshot_due()? > self.now {
            return None;
        }
        let snapshot = self.snapshot();
        self.published = Some(Published {
            version: self.foca.membership_version(),
            state: snapshot.state,
            identity: snapshot.identity.clone(),
            at: self.published.is_some().then_some(self.now),
        });
        Some(snapshot)
    }

    /// The wrapped state machine, for queries.
    pub fn foca(&self) -> &Foca<T, C, R, B> {
        &self.foca
    }

    /// The custom broadcast handler, mutably (to update its own state).
    pub fn broadcast_handler_mut(&mut self) -> &mut B {
        self.foca.broadcast_handler_mut()
    }

    /// The envelope.
    pub fn envelope(&self) -> &E {
        &self.envelope
    }

    /// The envelope, mutably (to rotate keys). Sealing follows at once; if
    /// the overhead grows, datagrams that no longer fit are counted in
    /// [`Metrics::seal_errors`]: lower `max_packet_size` first.
    pub fn envelope_mut(&mut self) -> &mut E {
        &mut self.envelope
    }

    /// The largest datagram accepted: the config's `max_packet_size` plus
    /// the envelope's overhead. Larger ones are dropped and counted, so a
    /// driver's receive buffer needs one byte more to tell them apart.
    pub fn max_datagram(&self) -> usize {
        self.foca.config().max_packet_size + self.envelope.overhead()
    }

    /// The protocol's counters ([`Foca::metrics`]) with this endpoint's:
    /// datagrams refused before the protocol saw them, and what its queues
    /// dropped.
    pub fn metrics(&self) -> Metrics {
        let mut m = self.foca.metrics();
        let r = self.refusals;
        m.dropped.oversized += r.oversized;
        m.dropped.malformed_envelope = r.malformed;
        m.dropped.other_cluster = r.other_cluster;
        m.dropped.corrupted = r.corrupted;
        m.dropped.unauthenticated = r.unauthenticated;
        m.dropped_transmits = self.losses.transmits;
        m.dropped_events = self.losses.events;
        m.seal_errors = self.losses.seal_errors;
        m
    }

    /// The latest time this endpoint was given.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Timer events scheduled and not yet fired.
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }
}
