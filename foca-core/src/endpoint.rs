//! The poll-style wrapper every driver uses: one owner for a [`Foca`], its
//! timer queue and its output buffers.
//!
//! A driver's loop is then the same everywhere (after quinn-proto):
//!
//! ```text
//! loop {
//!     wait for: a datagram, the next deadline, or a command
//!     endpoint.handle_datagram(now, bytes) / handle_timeouts(now) / a command
//!     while let Some(t) = endpoint.poll_transmit()     { socket.send_to(&t.data, t.to);
//!                                                        endpoint.recycle(t.data) }  // optional
//!     while let Some(n) = endpoint.poll_notification() { publish n }
//! }
//! ```
//!
//! Time is a [`Duration`] since an origin the driver picks; it must not go
//! backwards. Output queues are bounded ([`MAX_QUEUED_TRANSMITS`],
//! [`MAX_QUEUED_NOTIFICATIONS`]): a driver that stops draining them loses the
//! oldest entries, counted in [`Endpoint::dropped_transmits`] and
//! [`Endpoint::dropped_notifications`]; so is the timer queue
//! ([`max_pending_timers`]).

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::time::Duration;

use rand::Rng;

use crate::{
    BroadcastHandler, Codec, Config, Error, Foca, Identity, Member, Notification, Runtime, Timer,
    TimerQueue,
};

/// Most datagrams waiting in an endpoint for the driver to send.
pub const MAX_QUEUED_TRANSMITS: usize = 4096;
/// Most notifications waiting in an endpoint for the driver to publish.
pub const MAX_QUEUED_NOTIFICATIONS: usize = 4096;
/// Most timer events one `handle_timeouts` call processes; the rest wait for
/// the next call (their deadline has passed, so it comes at once).
pub const MAX_TIMERS_PER_CALL: usize = 1024;

/// The bound on pending timers for a config's `max_members`: four per
/// member (a suspicion and a removal, with room for stale ones) plus 256.
/// Beyond it, new per-member timers are refused and counted
/// ([`Endpoint::dropped_timers`]); a suspect whose timer was refused is
/// rescheduled when it fails its next probe.
pub const fn max_pending_timers(max_members: usize) -> usize {
    max_members.saturating_mul(4).saturating_add(256)
}

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit<T> {
    /// The destination member (the driver maps it to a socket address).
    pub to: T,
    /// The datagram.
    pub data: Vec<u8>,
}

/// The [`Runtime`] an endpoint hands to its `Foca`.
struct Outputs<'a, T> {
    now: Duration,
    timers: &'a mut TimerQueue<Timer<T>>,
    transmits: &'a mut VecDeque<Transmit<T>>,
    notifications: &'a mut VecDeque<Notification<T>>,
    dropped_transmits: &'a mut u64,
    dropped_notifications: &'a mut u64,
    dropped_timers: &'a mut u64,
    max_timers: usize,
    /// A buffer given back through [`Endpoint::recycle`].
    spare: &'a mut Option<Vec<u8>>,
}

impl<T: PartialEq> Runtime<T> for Outputs<'_, T> {
    fn notify(&mut self, notification: Notification<T>) {
        if self.notifications.len() >= MAX_QUEUED_NOTIFICATIONS {
            self.notifications.pop_front();
            *self.dropped_notifications += 1;
        }
        self.notifications.push_back(notification);
    }

    fn send_to(&mut self, to: T, data: &[u8]) {
        if self.transmits.len() >= MAX_QUEUED_TRANSMITS {
            self.transmits.pop_front();
            *self.dropped_transmits += 1;
        }
        let data = match self.spare.take() {
            Some(mut buf) => {
                buf.clear();
                buf.extend_from_slice(data);
                buf
            }
            None => data.to_vec(),
        };
        self.transmits.push_back(Transmit { to, data });
    }

    fn submit_after(&mut self, event: Timer<T>, after: Duration) {
        // Per-member timers are what a flood of flapping news could pile up;
        // the protocol's own chains (a handful) are always kept.
        let per_member = matches!(
            event,
            Timer::ChangeSuspectToDown { .. } | Timer::RemoveDown { .. }
        );
        if per_member && self.timers.len() >= self.max_timers {
            *self.dropped_timers += 1;
            return;
        }
        self.timers.schedule(self.now.saturating_add(after), event);
    }

    fn cancel(&mut self, event: &Timer<T>) {
        // Usually the next timer due (an acked probe's indirect stage):
        // no scan then.
        if !self.timers.cancel_next(|e| e == event) {
            self.timers.cancel(|e| e == event);
        }
    }
}

/// A [`Foca`] with its timers and output queues: the sans-IO unit a driver
/// or the simulator runs.
///
/// A driver's loop: wait for a datagram, the next deadline
/// ([`next_deadline`](Self::next_deadline)) or a command; feed it
/// ([`handle_datagram`](Self::handle_datagram),
/// [`handle_timeouts`](Self::handle_timeouts), or a command method); then
/// drain [`poll_transmit`](Self::poll_transmit) to the socket and
/// [`poll_notification`](Self::poll_notification) to the user.
// Layout: `repr(C)` keeps the declared order, so that what every input
// touches (these queues, then the start of the `Foca`, see its layout) sits
// together and the drop counters out of the way.
#[repr(C)]
pub struct Endpoint<T: Identity, C: Codec<T>, R: Rng, B: BroadcastHandler<T>> {
    now: Duration,
    timers: TimerQueue<Timer<T>>,
    transmits: VecDeque<Transmit<T>>,
    notifications: VecDeque<Notification<T>>,
    /// Kept in the struct, not behind a pointer: one miss fewer.
    spare: Option<Vec<u8>>,
    foca: Foca<T, C, R, B>,
    dropped_transmits: u64,
    dropped_notifications: u64,
    dropped_timers: u64,
}

impl<T, C, R, B> Endpoint<T, C, R, B>
where
    T: Identity,
    C: Codec<T>,
    R: Rng,
    B: BroadcastHandler<T>,
{
    /// Wraps `foca`; `now` is the driver's current time.
    pub fn new(foca: Foca<T, C, R, B>, now: Duration) -> Self {
        Self {
            foca,
            timers: TimerQueue::new(),
            transmits: VecDeque::new(),
            notifications: VecDeque::new(),
            dropped_transmits: 0,
            dropped_notifications: 0,
            dropped_timers: 0,
            now,
            spare: None,
        }
    }

    /// Runs `f` with the `Foca` and a runtime bound to this endpoint's queues.
    fn with<X>(
        &mut self,
        now: Duration,
        f: impl FnOnce(&mut Foca<T, C, R, B>, &mut Outputs<'_, T>) -> X,
    ) -> X {
        // Time never goes backwards, whatever the driver passes.
        self.now = self.now.max(now);
        let max_timers = max_pending_timers(self.foca.config().max_members);
        let mut out = Outputs {
            now: self.now,
            timers: &mut self.timers,
            transmits: &mut self.transmits,
            notifications: &mut self.notifications,
            dropped_transmits: &mut self.dropped_transmits,
            dropped_notifications: &mut self.dropped_notifications,
            dropped_timers: &mut self.dropped_timers,
            max_timers,
            spare: &mut self.spare,
        };
        f(&mut self.foca, &mut out)
    }

    /// Feeds a received datagram.
    pub fn handle_datagram(&mut self, now: Duration, data: &[u8]) -> Result<(), Error> {
        self.with(now, |foca, out| foca.handle_data(data, out))
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

    /// Cache hints for the simulator, which runs many endpoints: reads
    /// (and changes nothing) what this endpoint's next input will most
    /// likely read, in three stages a few events apart, so that the reads
    /// overlap instead of waiting on one another. Stage 1 reads the
    /// endpoint itself; stage 2, what it points to; stage 3, what that
    /// points to (see `Foca::warm`). `sender` is the datagram's sender
    /// (`None` for a timer).
    #[cfg(feature = "sim")]
    pub(crate) fn warm(&self, stage: u8, sender: Option<&T::Addr>) {
        match stage {
            1 => {
                let start = core::ptr::from_ref(self).cast::<u8>();
                crate::sim::prefetch_range(start, (&raw const self.foca).cast());
                self.foca.warm_self();
            }
            2 => {
                self.timers.warm();
                self.foca.warm(2, sender);
            }
            _ => self.foca.warm(3, sender),
        }
    }

    /// When [`handle_timeouts`](Self::handle_timeouts) next has work.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.timers.next_deadline()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit<T>> {
        self.transmits.pop_front()
    }

    /// Gives back a datagram buffer the driver is done with (a sent
    /// [`Transmit::data`], or a received datagram it owns), for a later
    /// [`Transmit`] to reuse instead of allocating. Optional: a driver that
    /// never calls it only allocates more. One buffer is kept; while one
    /// is, the others given back are freed.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.is_none() {
            self.spare = Some(buf);
        }
    }

    /// The next membership event.
    pub fn poll_notification(&mut self) -> Option<Notification<T>> {
        self.notifications.pop_front()
    }

    /// See [`Foca::announce`].
    pub fn announce(&mut self, now: Duration, dst: T) -> Result<(), Error> {
        self.with(now, |foca, out| foca.announce(dst, out))
    }

    /// See [`Foca::join`].
    pub fn join(&mut self, now: Duration, seeds: impl IntoIterator<Item = T>) -> Result<(), Error> {
        self.with(now, |foca, out| foca.join(seeds, out))
    }

    /// See [`Foca::leave_cluster`].
    pub fn leave_cluster(&mut self, now: Duration) -> Result<(), Error> {
        self.with(now, |foca, out| foca.leave_cluster(out))
    }

    /// See [`Foca::gossip`].
    pub fn gossip(&mut self, now: Duration) -> Result<(), Error> {
        self.with(now, |foca, out| foca.gossip(out))
    }

    /// See [`Foca::broadcast`].
    pub fn broadcast(&mut self, now: Duration) -> Result<(), Error> {
        self.with(now, |foca, out| foca.broadcast(out))
    }

    /// See [`Foca::add_broadcast`].
    pub fn add_broadcast(&mut self, data: &[u8]) -> Result<bool, Error> {
        self.foca.add_broadcast(data)
    }

    /// See [`Foca::apply_many`].
    pub fn apply_many(
        &mut self,
        now: Duration,
        updates: impl IntoIterator<Item = Member<T>>,
    ) -> Result<(), Error> {
        self.with(now, |foca, out| foca.apply_many(updates, out))
    }

    /// See [`Foca::restore`].
    pub fn restore(
        &mut self,
        now: Duration,
        members: impl IntoIterator<Item = Member<T>>,
    ) -> Result<(), Error> {
        self.with(now, |foca, out| foca.restore(members, out))
    }

    /// See [`Foca::set_config`].
    pub fn set_config(&mut self, now: Duration, config: Config) -> Result<(), Error> {
        self.with(now, |foca, out| foca.set_config(config, out))
    }

    /// See [`Foca::change_identity`].
    pub fn change_identity(&mut self, now: Duration, identity: T) -> Result<(), Error> {
        self.with(now, |foca, out| foca.change_identity(identity, out))
    }

    /// The wrapped state machine, for queries.
    pub fn foca(&self) -> &Foca<T, C, R, B> {
        &self.foca
    }

    /// The wrapped state machine, for calls this wrapper does not forward
    /// (its broadcast handler, say).
    pub fn foca_mut(&mut self) -> &mut Foca<T, C, R, B> {
        &mut self.foca
    }

    /// The latest time this endpoint was given.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Timer events scheduled and not yet fired.
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// Datagrams dropped because the driver did not drain them in time.
    pub fn dropped_transmits(&self) -> u64 {
        self.dropped_transmits
    }

    /// Notifications dropped because the driver did not drain them in time.
    pub fn dropped_notifications(&self) -> u64 {
        self.dropped_notifications
    }

    /// Per-member timers (suspicion and removal) refused because
    /// [`max_pending_timers`] were already pending.
    pub fn dropped_timers(&self) -> u64 {
        self.dropped_timers
    }
}
