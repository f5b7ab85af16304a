//! The agent task: one loop over the socket, the next deadline and the
//! commands, around the core's [`Endpoint`].

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use foca_codec::Envelope;
use foca_codec::envelope::DEFAULT_MAX_DATAGRAM;
use foca_core::{
    BroadcastHandler, Codec, Config, ConnectionState, Endpoint, Invalidates, Notification,
    SocketIdentity,
};
use rand::rngs::SmallRng;
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tracing::{Instrument, debug, info, warn};

use crate::builder::Seed;
use crate::handle::{AgentError, AgentMetrics, Command, Event, Reply, Snapshot};
use crate::tap::Tap;

/// How often the snapshot is refreshed while only member states (alive,
/// suspect) change; joins, failures and departures publish at once.
const SNAPSHOT_INTERVAL: Duration = Duration::from_millis(500);
/// How often host-name seeds are resolved again while this member is
/// alone.
const RESOLVE_INTERVAL: Duration = Duration::from_secs(10);
/// Most sealed datagrams waiting for the socket to become writable; past
/// it the oldest is dropped and counted (`send_buffer_full`).
const MAX_OUTBOX: usize = 1024;

/// Sets the envelope's datagram limit to what the config produces.
pub(crate) fn fit_envelope(envelope: &mut Envelope, config: &Config) -> Result<(), AgentError> {
    let max = config.max_packet_size.saturating_add(envelope.overhead());
    if max > DEFAULT_MAX_DATAGRAM {
        return Err(AgentError::PacketTooLarge {
            max_packet_size: config.max_packet_size,
            max_payload: DEFAULT_MAX_DATAGRAM - envelope.overhead(),
        });
    }
    envelope.set_max_datagram(max);
    Ok(())
}

type Ep<T, C, B> = Endpoint<T, C, SmallRng, Tap<T, B>>;

pub(crate) struct Agent<T: SocketIdentity, C: Codec<T>, B: BroadcastHandler<T>> {
    endpoint: Ep<T, C, B>,
    socket: UdpSocket,
    envelope: Envelope,
    origin: Instant,
    seeds: Vec<Seed>,
    commands: mpsc::Receiver<Command>,
    resolved_tx: mpsc::Sender<(Vec<SocketAddr>, u64)>,
    resolved_rx: mpsc::Receiver<(Vec<SocketAddr>, u64)>,
    snapshot: watch::Sender<Arc<Snapshot<T>>>,
    events: broadcast::Sender<Event<T>>,
    metrics: AgentMetrics,
    /// Receive buffer: one byte more than the limit, to see oversized ones.
    buf: Vec<u8>,
    sealed: Vec<u8>,
    /// Sealed datagrams waiting for the socket to become writable.
    outbox: VecDeque<(Vec<u8>, SocketAddr)>,
    /// A leave waiting for its linger to end.
    linger: Option<(Instant, Reply<()>)>,
    /// The core's membership version in the last snapshot.
    published_version: u64,
    /// Membership changed: publish at once.
    changed: bool,
    last_snapshot: Instant,
    /// When host-name seeds should be resolved next.
    next_resolve: Option<Instant>,
    resolving: bool,
}

impl<T, C, B> Agent<T, C, B>
where
    T: SocketIdentity + Send + Sync + 'static,
    C: Codec<T> + Send + 'static,
    T::Addr: Send,
    B: BroadcastHandler<T> + Send + 'static,
    B::Broadcast: Send,
    <B::Broadcast as Invalidates>::Key: Send,
{
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        endpoint: Ep<T, C, B>,
        socket: UdpSocket,
        envelope: Envelope,
        origin: Instant,
        seeds: Vec<Seed>,
        commands: mpsc::Receiver<Command>,
        snapshot: watch::Sender<Arc<Snapshot<T>>>,
        events: broadcast::Sender<Event<T>>,
    ) -> Self {
        let (resolved_tx, resolved_rx) = mpsc::channel(1);
        let buf = vec![0; envelope.max_datagram() + 1];
        Self {
            endpoint,
            socket,
            envelope,
            origin,
            seeds,
            commands,
            resolved_tx,
            resolved_rx,
            snapshot,
            events,
            metrics: AgentMetrics::default(),
            buf,
            sealed: Vec::new(),
            outbox: VecDeque::new(),
            linger: None,
            published_version: 0,
            changed: true,
            last_snapshot: origin,
            next_resolve: None,
            resolving: false,
        }
    }

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }

    pub(crate) async fn run(mut self) {
        info!(local_addr = ?self.socket.local_addr().ok(), "agent started");
        self.flush();
        self.publish();
        let stopped_by = loop {
            let wake = self.next_wake();
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    None => break None,
                    Some(Command::Shutdown(reply)) => break Some(reply),
                    Some(command) => self.command(command),
                },
                Some((addrs, failures)) = self.resolved_rx.recv() => self.resolved(addrs, failures),
                received = self.socket.recv_from(&mut self.buf) => self.received(received),
                ready = self.socket.writable(), if !self.outbox.is_empty() => {
                    if let Err(e) = ready {
                        self.metrics.send_errors += 1;
                        debug!(error = %e, "socket not writable");
                    }
                }
                // Woken for a deadline: handled below, with the others.
                () = sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {}
            }
            // Due deadlines run after every event, so a steady stream of
            // datagrams cannot starve the timers.
            if self.next_wake().is_some_and(|w| w <= Instant::now()) {
                self.wake();
            }
            self.flush();
            self.publish();
        };
        if let Some((_, reply)) = self.linger.take() {
            let _ = reply.send(Ok(()));
        }
        info!("agent stopped");
        // Close the socket before confirming, so the address can be reused.
        drop(self.socket);
        if let Some(reply) = stopped_by {
            let _ = reply.send(Ok(()));
        }
    }

    /// The earliest of: the next protocol deadline, the end of a linger, a
    /// due snapshot refresh, a due resolution.
    fn next_wake(&self) -> Option<Instant> {
        let deadline = self.endpoint.next_deadline().map(|d| self.origin + d);
        let snapshot = self
            .stale_snapshot()
            .then(|| self.last_snapshot + SNAPSHOT_INTERVAL);
        let resolve = if self.resolving {
            None
        } else {
            self.next_resolve
        };
        [
            deadline,
            self.linger.as_ref().map(|l| l.0),
            snapshot,
            resolve,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn wake(&mut self) {
        let now = self.now();
        match self.endpoint.handle_timeouts(now) {
            Ok(_) => {}
            Err(e) => debug!(error = %e, "timer"),
        }
        let instant = Instant::now();
        if self.linger.as_ref().is_some_and(|l| l.0 <= instant)
            && let Some((_, reply)) = self.linger.take()
        {
            let _ = reply.send(Ok(()));
        }
        if !self.resolving && self.next_resolve.is_some_and(|t| t <= instant) {
            self.resolve();
        }
    }

    fn received(&mut self, received: io::Result<(usize, SocketAddr)>) {
        let (len, from) = match received {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors surface here on some systems; the socket
                // itself is fine.
                self.metrics.recv_errors += 1;
                debug!(error = %e, "receive error");
                return;
            }
        };
        self.metrics.datagrams_received += 1;
        self.metrics.bytes_received += len as u64;
        let now = self.now();
        let Some(datagram) = self.buf.get(..len) else {
            return;
        };
        match self.envelope.open(datagram) {
            Ok(payload) => {
                if let Err(e) = self.endpoint.handle_datagram(now, payload) {
                    debug!(error = %e, %from, "datagram");
                }
            }
            Err(e) => debug!(error = %e, %from, "datagram refused"),
        }
    }

    fn command(&mut self, command: Command) {
        let now = self.now();
        match command {
            Command::Announce(addr, reply) => {
                let r = self.endpoint.announce(now, T::seed_at(addr));
                let _ = reply.send(r.map_err(Into::into));
            }
            Command::Join(reply) => {
                let r = if self.seeds.is_empty() {
                    Err(AgentError::NoSeeds)
                } else {
                    self.join()
                };
                let _ = reply.send(r);
            }
            Command::AddBroadcast(item, reply) => {
                let r = self.endpoint.add_broadcast(&item);
                if let Ok(true) = r
                    && let Err(e) = self.endpoint.broadcast(now)
                {
                    debug!(error = %e, "broadcast");
                }
                let _ = reply.send(r.map_err(Into::into));
            }
            Command::SetConfig(config, reply) => {
                let r = self.set_config(now, *config);
                let _ = reply.send(r);
            }
            Command::Metrics(reply) => {
                let _ = reply.send(Ok(self.collect_metrics()));
            }
            Command::Leave(linger, reply) => match self.endpoint.leave_cluster(now) {
                Ok(()) => {
                    info!("left the cluster");
                    self.changed = true;
                    if let Some((_, earlier)) = self.linger.take() {
                        let _ = earlier.send(Ok(()));
                    }
                    self.linger = Some((Instant::now() + linger, reply));
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            #[cfg(feature = "encryption")]
            Command::Keys(keys, reply) => {
                let r = self.keys(keys);
                let _ = reply.send(r);
            }
            // Handled by the loop.
            Command::Shutdown(reply) => {
                let _ = reply.send(Ok(()));
            }
        }
    }

    fn set_config(&mut self, now: Duration, config: Config) -> Result<(), AgentError> {
        config
            .validate()
            .map_err(|e| AgentError::Core(foca_core::Error::Config(e)))?;
        let mut envelope_max = self.envelope.max_datagram();
        fit_envelope(&mut self.envelope, &config)?;
        let max_packet_size = config.max_packet_size;
        if let Err(e) = self.endpoint.set_config(now, config) {
            // Put the limit back as it was.
            self.envelope.set_max_datagram(envelope_max);
            return Err(e.into());
        }
        envelope_max = self.envelope.max_datagram();
        self.buf.resize(envelope_max + 1, 0);
        debug!(max_packet_size, "config changed");
        Ok(())
    }

    #[cfg(feature = "encryption")]
    fn keys(&mut self, command: crate::handle::KeyCommand) -> Result<(), AgentError> {
        use crate::handle::KeyCommand;
        let keyring = self
            .envelope
            .keyring_mut()
            .ok_or(AgentError::NotEncrypted)?;
        match command {
            KeyCommand::Add(id, key) => keyring.add(id, key),
            KeyCommand::Use(id) => keyring.use_key(id),
            KeyCommand::Remove(id) => keyring.remove(id),
        }
        .map_err(AgentError::Keyring)?;
        // A key with a longer nonce raises the overhead.
        let config = self.endpoint.foca().config().clone();
        fit_envelope(&mut self.envelope, &config)?;
        self.buf.resize(self.envelope.max_datagram() + 1, 0);
        Ok(())
    }

    /// The seeds given as addresses.
    fn seed_addrs(&self) -> Vec<SocketAddr> {
        self.seeds
            .iter()
            .filter_map(|s| match s {
                Seed::Addr(a) => Some(*a),
                Seed::Host(_) => None,
            })
            .collect()
    }

    fn has_host_seeds(&self) -> bool {
        self.seeds.iter().any(|s| matches!(s, Seed::Host(_)))
    }

    /// Announces to every address seed, and resolves the host names.
    pub(crate) fn join(&mut self) -> Result<(), AgentError> {
        let addrs = self.seed_addrs();
        if self.has_host_seeds() {
            self.next_resolve = Some(Instant::now());
        }
        self.join_addrs(addrs)
    }

    fn join_addrs(&mut self, mut addrs: Vec<SocketAddr>) -> Result<(), AgentError> {
        let own = self.endpoint.foca().identity().socket_addr();
        addrs.retain(|a| *a != own);
        addrs.sort_unstable();
        addrs.dedup();
        if addrs.is_empty() {
            // Leaving the state as is: a member without seeds waits for
            // others; a left member stays left.
            return Ok(());
        }
        let now = self.now();
        self.endpoint
            .join(now, addrs.into_iter().map(T::seed_at))
            .map_err(Into::into)
    }

    /// Resolves the host-name seeds on a separate task.
    fn resolve(&mut self) {
        let hosts: Vec<String> = self
            .seeds
            .iter()
            .filter_map(|s| match s {
                Seed::Host(h) => Some(h.clone()),
                Seed::Addr(_) => None,
            })
            .collect();
        if hosts.is_empty() {
            self.next_resolve = None;
            return;
        }
        self.resolving = true;
        let tx = self.resolved_tx.clone();
        tokio::spawn(
            async move {
                let mut found = Vec::new();
                let mut failures = 0;
                for host in hosts {
                    match tokio::net::lookup_host(host.as_str()).await {
                        Ok(addrs) => found.extend(addrs),
                        Err(e) => {
                            failures += 1;
                            warn!(%host, error = %e, "seed did not resolve");
                        }
                    }
                }
                let _ = tx.send((found, failures)).await;
            }
            .in_current_span(),
        );
    }

    fn resolved(&mut self, addrs: Vec<SocketAddr>, failures: u64) {
        self.resolving = false;
        self.metrics.dns_failures += failures;
        self.next_resolve = match self.endpoint.foca().connection_state() {
            ConnectionState::Disconnected => Some(Instant::now() + RESOLVE_INTERVAL),
            _ => None,
        };
        let mut all = self.seed_addrs();
        all.extend(addrs);
        if matches!(
            self.endpoint.foca().connection_state(),
            ConnectionState::Left
        ) {
            return;
        }
        if let Err(e) = self.join_addrs(all) {
            debug!(error = %e, "join after resolution");
        }
    }

    /// Sends what the endpoint queued, publishes what it noticed.
    fn flush(&mut self) {
        self.send_queued();
        while let Some(t) = self.endpoint.poll_transmit() {
            if let Err(e) = self.envelope.seal(&t.data, &mut self.sealed) {
                self.metrics.seal_errors += 1;
                debug!(error = %e, "seal");
                continue;
            }
            let to = t.to.socket_addr();
            // The payload is sealed into `sealed`; its buffer can serve
            // the next transmit.
            self.endpoint.recycle(t.data);
            if self.outbox.is_empty() && self.try_send(to) {
                continue;
            }
            // The socket is not writable yet (a full send buffer, or a
            // socket the reactor has not reported ready): wait for it, up
            // to a bound.
            if self.outbox.len() >= MAX_OUTBOX {
                self.outbox.pop_front();
                self.metrics.send_buffer_full += 1;
            }
            self.outbox.push_back((self.sealed.clone(), to));
        }
        while let Some(n) = self.endpoint.poll_notification() {
            self.notification(&n);
            self.emit(Event::Membership(n));
        }
        let tap = self.endpoint.foca_mut().broadcast_handler_mut();
        let accepted: Vec<_> = tap.accepted.drain(..).collect();
        for (item, from) in accepted {
            self.emit(Event::Broadcast { item, from });
        }
    }

    /// Sends `self.sealed` to `to`; false if the socket would block.
    fn try_send(&mut self, to: SocketAddr) -> bool {
        match self.socket.try_send_to(&self.sealed, to) {
            Ok(n) => {
                self.metrics.datagrams_sent += 1;
                self.metrics.bytes_sent += n as u64;
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => {
                self.metrics.send_errors += 1;
                debug!(error = %e, %to, "send error");
                true
            }
        }
    }

    /// Sends what waited for the socket to become writable.
    fn send_queued(&mut self) {
        while let Some((data, to)) = self.outbox.pop_front() {
            self.sealed = data;
            if !self.try_send(to) {
                self.outbox
                    .push_front((core::mem::take(&mut self.sealed), to));
                return;
            }
        }
    }

    fn notification(&mut self, n: &Notification<T>) {
        self.changed = true;
        match n {
            Notification::MemberUp(id) => info!(member = ?id, "member up"),
            Notification::MemberDown(id) => info!(member = ?id, "member down"),
            Notification::MemberLeft(id) => info!(member = ?id, "member left"),
            Notification::Rename(old, new) => info!(?old, ?new, "member restarted"),
            Notification::Active => {
                info!("connected");
                self.next_resolve = None;
            }
            Notification::Idle => {
                warn!("no live peer left; retrying seeds");
                if self.has_host_seeds() {
                    self.next_resolve = Some(Instant::now());
                }
            }
            Notification::Rejoin(id) => info!(identity = ?id, "identity renewed"),
            Notification::Defunct => warn!("defunct: change the identity to continue"),
        }
    }

    fn emit(&mut self, event: Event<T>) {
        self.metrics.events_published += 1;
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }

    /// Whether the member table changed since the last snapshot.
    fn stale_snapshot(&self) -> bool {
        self.endpoint.foca().membership_version() != self.published_version
    }

    /// Publishes a new snapshot if membership changed, or if states
    /// changed and the last one is older than [`SNAPSHOT_INTERVAL`].
    fn publish(&mut self) {
        let instant = Instant::now();
        let due = self.stale_snapshot() && instant >= self.last_snapshot + SNAPSHOT_INTERVAL;
        if !self.changed && !due {
            return;
        }
        let foca = self.endpoint.foca();
        let snapshot = Snapshot {
            identity: foca.identity().clone(),
            members: foca.iter_members().cloned().collect(),
            state: foca.connection_state(),
        };
        self.snapshot.send_if_modified(|current| {
            if **current == snapshot {
                false
            } else {
                *current = Arc::new(snapshot);
                true
            }
        });
        self.changed = false;
        self.published_version = foca.membership_version();
        self.last_snapshot = instant;
    }

    fn collect_metrics(&self) -> AgentMetrics {
        let mut m = self.metrics.clone();
        m.protocol = self.endpoint.foca().metrics();
        m.rejections = *self.envelope.rejections();
        m.dropped_transmits = self.endpoint.dropped_transmits();
        m.dropped_notifications = self.endpoint.dropped_notifications();
        m.dropped_timers = self.endpoint.dropped_timers();
        m.dropped_broadcasts = self.endpoint.foca().broadcast_handler().dropped;
        m
    }
}
