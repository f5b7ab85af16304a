//! The sans-IO agent every driver runs: an [`Endpoint`] and what a
//! long-running member needs around it besides the protocol, once for all
//! drivers. A driver owns a socket, a sleep, a request channel and an event
//! fan-out, and moves bytes and time between them and an [`Agent`]:
//!
//! ```text
//! agent.join(now)
//! loop {
//!     wait for: a datagram, a request, a finished seed lookup, or next_wake()
//!     agent.handle_datagram(now, from, bytes) / handle_request(now, r) / looked_up(..)
//!     if due: if let Some(hosts) = agent.handle_timeouts(now) { look them up }
//!     while let Some(t) = agent.poll_transmit() { send; agent.sent(t.data, result) }
//!     while let Some(e) = agent.poll_event()     { fan out e }
//!     if let Some(s) = agent.poll_snapshot(now)  { publish s }
//! }
//! ```
//!
//! What it adds to the endpoint: the [`Request`]s a handle sends (a core
//! [`Command`], a rejoin through the seeds, a leave that lingers, the
//! counters, a change to the envelope's keys) with their replies; the
//! seeds, with host-name lookups at start and while alone ([`Seeds`]); and
//! the socket's counters ([`AgentMetrics`]).

mod builder;
mod handle;
mod report;
mod seeds;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

/// `Vec`, named from `alloc` for [`driver_builder`](crate::driver_builder)
/// (which no_std drivers expand too).
#[doc(hidden)]
pub use alloc::vec::Vec as BuilderVec;
use rand::Rng;
/// The random generators' seeding, for [`driver_builder`](crate::driver_builder).
#[doc(hidden)]
pub use rand::SeedableRng;

pub use handle::{Handle, Link};
pub use report::{AgentError, AgentMetrics, Lagged};
#[cfg(feature = "std")]
pub use seeds::look_up;
pub use seeds::{RESOLVE_INTERVAL, Seed, Seeds};

use crate::{
    BroadcastHandler, Codec, Command, Endpoint, Envelope, Event, Snapshot, SocketIdentity, Transmit,
};

/// How a request is answered: a driver wraps its reply channel in this.
pub type Reply<X> = Box<dyn FnOnce(Result<X, AgentError>) + Send>;

/// A change to an agent's envelope (its keys), run where the agent runs.
pub type EnvelopeChange<E> = Box<dyn FnOnce(&mut E) -> Result<(), AgentError> + Send>;

/// What a driver's handle asks of its agent.
pub enum Request<T, E: Envelope> {
    /// A core command, as it is; the reply is
    /// [`Endpoint::command`]'s.
    Command(Command<T>, Reply<bool>),
    /// Look the seeds up again and join through them.
    Rejoin(Reply<()>),
    /// Leave, and reply once this long has passed (the news spreads and
    /// the datagrams already queued go out meanwhile).
    Leave(Duration, Reply<()>),
    /// The counters.
    Metrics(Reply<AgentMetrics<E::Rejections>>),
    /// Change the envelope (rotate keys).
    Envelope(EnvelopeChange<E>, Reply<()>),
    /// Stop: [`Agent::handle_request`] hands the reply back, for the driver
    /// to send once its socket is closed.
    Shutdown(Reply<()>),
}

/// An [`Endpoint`] with the requests, seeds and counters of a running
/// member. See the [module docs](self).
pub struct Agent<T, C, R, B, E>
where
    T: SocketIdentity,
    C: Codec<T>,
    R: Rng,
    B: BroadcastHandler<T>,
    E: Envelope,
{
    endpoint: Endpoint<T, C, R, B, E>,
    seeds: Seeds,
    /// A leave waiting for its linger to end.
    linger: Option<(Duration, Reply<()>)>,
    /// The socket's counters (the rest is filled when asked).
    metrics: AgentMetrics<E::Rejections>,
    /// A datagram the socket could not take yet; the others wait in the
    /// endpoint's bounded queue meanwhile.
    blocked: Option<Transmit<SocketAddr>>,
}

impl<T, C, R, B, E> Agent<T, C, R, B, E>
where
    T: SocketIdentity,
    C: Codec<T>,
    R: Rng,
    B: BroadcastHandler<T>,
    E: Envelope,
{
    /// An agent around `endpoint`, joining through `seeds`.
    pub fn new(endpoint: Endpoint<T, C, R, B, E>, seeds: Vec<Seed>) -> Self {
        Self {
            endpoint,
            seeds: Seeds::new(seeds),
            linger: None,
            metrics: AgentMetrics::default(),
            blocked: None,
        }
    }

    /// Announces to the address seeds now; host names are looked up next.
    pub fn join(&mut self, now: Duration) -> Result<(), AgentError> {
        let own = self.endpoint.foca().identity().addr();
        if let Some(join) = self.seeds.join(now, own) {
            self.endpoint.command(now, join)?;
        }
        Ok(())
    }

    /// The endpoint, for queries.
    pub fn endpoint(&self) -> &Endpoint<T, C, R, B, E> {
        &self.endpoint
    }

    /// When the agent next has work without input: the endpoint's next
    /// deadline, a snapshot due, a seed lookup due, or the end of a linger.
    pub fn next_wake(&self) -> Option<Duration> {
        let ep = &self.endpoint;
        let linger = self.linger.as_ref().map(|l| l.0);
        [
            ep.next_deadline(),
            ep.snapshot_due(),
            self.seeds.lookup_due(),
            linger,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Does what is due at `now`: timers, the end of a linger. Returns the
    /// seed host names to look up now, if a lookup is due (report with
    /// [`looked_up`](Self::looked_up)).
    pub fn handle_timeouts(&mut self, now: Duration) -> Option<Vec<String>> {
        // Errors are failures to encode (a codec bug); counted as sends
        // that did not happen, nothing to do here.
        let _ = self.endpoint.handle_timeouts(now);
        if self.linger.as_ref().is_some_and(|l| l.0 <= now)
            && let Some((_, reply)) = self.linger.take()
        {
            reply(Ok(()));
        }
        self.seeds.start_lookup(now)
    }

    /// Feeds a datagram the socket received from `from` (opened where it
    /// lies: see [`Endpoint::handle_datagram`]).
    pub fn handle_datagram(&mut self, now: Duration, from: SocketAddr, datagram: &mut [u8]) {
        self.metrics.datagrams_received += 1;
        self.metrics.bytes_received += datagram.len() as u64;
        let _ = self.endpoint.handle_datagram(now, from, datagram);
    }

    /// The socket failed to receive (an ICMP error reported by the OS, say):
    /// counted, survived.
    pub fn recv_error(&mut self) {
        self.metrics.recv_errors += 1;
    }

    /// Carries out a request and replies to it. Returns the reply of a
    /// [`Request::Shutdown`]: the driver stops, closes its socket, then
    /// sends it.
    pub fn handle_request(&mut self, now: Duration, request: Request<T, E>) -> Option<Reply<()>> {
        match request {
            Request::Command(command, reply) => {
                reply(self.endpoint.command(now, command).map_err(Into::into));
            }
            Request::Rejoin(reply) if self.seeds.is_empty() => reply(Err(AgentError::NoSeeds)),
            Request::Rejoin(reply) => reply(self.join(now)),
            Request::Leave(linger, reply) => match self.endpoint.command(now, Command::Leave) {
                Ok(_) => {
                    if let Some((_, earlier)) = self.linger.take() {
                        earlier(Ok(()));
                    }
                    self.linger = Some((now.saturating_add(linger), reply));
                }
                Err(e) => reply(Err(e.into())),
            },
            Request::Metrics(reply) => reply(Ok(self.metrics())),
            Request::Envelope(change, reply) => reply(change(self.endpoint.envelope_mut())),
            Request::Shutdown(reply) => return Some(reply),
        }
        None
    }

    /// A seed lookup ended: `found` addresses, `failures` names that did
    /// not resolve. Joins through the seeds and what was found.
    pub fn looked_up(&mut self, now: Duration, found: Vec<SocketAddr>, failures: u64) {
        self.metrics.dns_failures += failures;
        let foca = self.endpoint.foca();
        let (own, state) = (foca.identity().addr(), foca.connection_state());
        if let Some(join) = self.seeds.looked_up(now, found, own, state) {
            let _ = self.endpoint.command(now, join);
        }
    }

    /// The next datagram to send (one the socket refused for want of room
    /// first); report how it went with [`sent`](Self::sent) or
    /// [`would_block`](Self::would_block).
    pub fn poll_transmit(&mut self) -> Option<Transmit<SocketAddr>> {
        self.blocked
            .take()
            .or_else(|| self.endpoint.poll_transmit())
    }

    /// The socket has no room for `transmit` now: it is the next one
    /// [`poll_transmit`](Self::poll_transmit) returns. The driver waits
    /// until the socket is writable (see [`is_blocked`](Self::is_blocked)).
    pub fn would_block(&mut self, transmit: Transmit<SocketAddr>) {
        self.blocked = Some(transmit);
    }

    /// Whether a datagram waits for the socket to become writable.
    pub fn is_blocked(&self) -> bool {
        self.blocked.is_some()
    }

    /// What a driver does after every wake-up: hands the queued datagrams
    /// to `send` (a send that does not wait: a `WouldBlock` error keeps the
    /// datagram for when the socket is writable, any other is counted and
    /// survived), hands every event to `publish`, and returns the snapshot
    /// to publish, if one is due.
    #[cfg(feature = "std")]
    pub fn flush(
        &mut self,
        now: Duration,
        mut send: impl FnMut(&[u8], SocketAddr) -> std::io::Result<usize>,
        mut publish: impl FnMut(Event<T>),
    ) -> Option<Snapshot<T>> {
        while let Some(t) = self.poll_transmit() {
            match send(&t.data, t.to) {
                Ok(n) => self.sent(t.data, Some(n)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.would_block(t);
                    break;
                }
                Err(_e) => {
                    debug_event!(error = %_e, to = %t.to, "send error");
                    self.sent(t.data, None);
                }
            }
        }
        while let Some(event) = self.poll_event() {
            #[cfg(feature = "tracing")]
            if let Event::Membership(n) = &event {
                tracing::info!(event = ?n, "membership");
            }
            publish(event);
        }
        self.poll_snapshot(now)
    }

    /// What the socket's receive gave: a datagram in `buf` (fed to the
    /// endpoint), or an error (counted and survived: ICMP errors surface
    /// there on some systems, the socket itself is fine).
    #[cfg(feature = "std")]
    pub fn received(
        &mut self,
        now: Duration,
        received: std::io::Result<(usize, SocketAddr)>,
        buf: &mut [u8],
    ) {
        match received {
            Ok((len, from)) => match buf.get_mut(..len) {
                Some(datagram) => self.handle_datagram(now, from, datagram),
                None => self.recv_error(),
            },
            Err(_e) => {
                self.recv_error();
                debug_event!(error = %_e, "receive error");
            }
        }
    }

    /// A datagram was handed to the socket (`Some(bytes)`) or the socket
    /// refused it (`None`, counted and survived); its buffer is reused.
    pub fn sent(&mut self, data: Vec<u8>, sent: Option<usize>) {
        match sent {
            Some(bytes) => {
                self.metrics.datagrams_sent += 1;
                self.metrics.bytes_sent += bytes as u64;
            }
            None => self.metrics.send_errors += 1,
        }
        self.endpoint.recycle(data);
    }

    /// The next event to fan out.
    pub fn poll_event(&mut self) -> Option<Event<T>> {
        let event = self.endpoint.poll_event()?;
        self.metrics.events_published += 1;
        if let Event::Membership(n) = &event {
            let now = self.endpoint.now();
            self.seeds.notice(now, n);
        }
        Some(event)
    }

    /// A new member-list snapshot to publish, if one is due (see
    /// [`Endpoint::poll_snapshot`]).
    pub fn poll_snapshot(&mut self, now: Duration) -> Option<Snapshot<T>> {
        self.endpoint.poll_snapshot(now)
    }

    /// The agent's counters now.
    pub fn metrics(&self) -> AgentMetrics<E::Rejections> {
        let mut m = self.metrics.clone();
        m.protocol = self.endpoint.metrics();
        m.rejections = self.endpoint.envelope().rejections();
        m
    }

    /// Stops: a leave still lingering is answered.
    pub fn stop(&mut self) {
        if let Some((_, reply)) = self.linger.take() {
            reply(Ok(()));
        }
    }
}
