//! The cloneable handle to a running agent, and what it hands out.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use foca_codec::envelope::Rejections;
use foca_core::{Config, ConnectionState, Member, Metrics as ProtocolMetrics, Notification};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_stream::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

/// What subscribers see, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<T> {
    /// A membership event from the protocol: a member up, down or left, a
    /// restart seen as a rename, this member connected or idle, renewed or
    /// defunct.
    Membership(Notification<T>),
    /// A custom broadcast from a peer that the broadcast handler accepted
    /// as new.
    Broadcast {
        /// The item, as the handler received it.
        item: Vec<u8>,
        /// The member whose datagram carried it (not necessarily its author).
        from: T,
    },
}

/// The member list as the agent last published it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot<T> {
    /// This member's identity (it changes when the identity is renewed).
    pub identity: T,
    /// The active members (alive or suspect), this member excluded, in no
    /// particular order.
    pub members: Vec<Member<T>>,
    /// Connected (at least one live peer), disconnected (retrying its
    /// seeds), left or defunct.
    pub state: ConnectionState,
}

/// A subscriber fell behind: this many events were overwritten before it
/// read them. The subscription goes on with the oldest event still kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lagged(pub u64);

impl fmt::Display for Lagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "this subscriber missed {} events; read faster or raise Builder::event_capacity",
            self.0
        )
    }
}

impl std::error::Error for Lagged {}

/// Errors from the agent and its handle.
#[derive(Debug)]
#[non_exhaustive]
pub enum AgentError {
    /// Binding or configuring the socket failed.
    Io(std::io::Error),
    /// The protocol core refused the call (see its message).
    Core(foca_core::Error),
    /// `max_packet_size` plus the envelope's overhead is more than the
    /// envelope's `max_datagram`.
    PacketTooLarge {
        /// The config's `max_packet_size`.
        max_packet_size: usize,
        /// The largest payload the envelope seals.
        max_payload: usize,
    },
    /// A keyring operation failed.
    #[cfg(feature = "encryption")]
    Keyring(foca_codec::KeyringError),
    /// The envelope has no keyring: build it with `Envelope::encrypted`.
    #[cfg(feature = "encryption")]
    NotEncrypted,
    /// `rejoin` needs seeds: give them to the builder, or use `announce`.
    NoSeeds,
    /// The agent has stopped (shut down, or every handle was dropped).
    Stopped,
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentError::Io(e) => write!(f, "socket error: {e}"),
            AgentError::Core(e) => e.fmt(f),
            AgentError::PacketTooLarge {
                max_packet_size,
                max_payload,
            } => write!(
                f,
                "max_packet_size ({max_packet_size}) is more than the envelope can carry ({max_payload}): lower Config::max_packet_size or raise the envelope's max_datagram"
            ),
            #[cfg(feature = "encryption")]
            AgentError::Keyring(e) => e.fmt(f),
            #[cfg(feature = "encryption")]
            AgentError::NotEncrypted => f.write_str(
                "the envelope has no keyring: build the agent with Envelope::encrypted to use keys",
            ),
            AgentError::NoSeeds => f.write_str(
                "this agent has no seeds to rejoin through: give Builder::seeds, or call announce with an address",
            ),
            AgentError::Stopped => f.write_str("the agent has stopped"),
        }
    }
}

impl std::error::Error for AgentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AgentError::Io(e) => Some(e),
            AgentError::Core(e) => Some(e),
            _ => None,
        }
    }
}

impl From<foca_core::Error> for AgentError {
    fn from(e: foca_core::Error) -> Self {
        AgentError::Core(e)
    }
}

impl From<std::io::Error> for AgentError {
    fn from(e: std::io::Error) -> Self {
        AgentError::Io(e)
    }
}

/// Counters of an agent: the protocol's, the envelope's, and the socket's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentMetrics {
    /// What the protocol did and dropped (see [`foca_core::Metrics`]).
    pub protocol: ProtocolMetrics,
    /// Datagrams the envelope refused, by reason; `oversized` counts the
    /// datagrams larger than the configured limit.
    pub rejections: Rejections,
    /// Datagrams received from the socket (accepted or not).
    pub datagrams_received: u64,
    /// Bytes received from the socket.
    pub bytes_received: u64,
    /// Datagrams handed to the socket.
    pub datagrams_sent: u64,
    /// Bytes handed to the socket.
    pub bytes_sent: u64,
    /// Receive errors survived (an ICMP unreachable reported by the OS, ...).
    pub recv_errors: u64,
    /// Send errors survived (unreachable network, refused, ...).
    pub send_errors: u64,
    /// Datagrams dropped because the socket's send buffer stayed full
    /// while more than 1,024 others waited.
    pub send_buffer_full: u64,
    /// Datagrams the envelope could not seal (too large for the limit).
    pub seal_errors: u64,
    /// Outgoing datagrams the endpoint dropped (its queue was full).
    pub dropped_transmits: u64,
    /// Notifications the endpoint dropped (its queue was full).
    pub dropped_notifications: u64,
    /// Per-member timers refused (the timer queue was at its bound).
    pub dropped_timers: u64,
    /// Accepted custom broadcasts dropped before publication.
    pub dropped_broadcasts: u64,
    /// Seed host names that failed to resolve.
    pub dns_failures: u64,
    /// Events published to subscribers.
    pub events_published: u64,
}

pub(crate) type Reply<X> = oneshot::Sender<Result<X, AgentError>>;

/// What a handle asks of the agent task.
pub(crate) enum Command {
    Announce(SocketAddr, Reply<()>),
    Join(Reply<()>),
    AddBroadcast(Vec<u8>, Reply<bool>),
    SetConfig(Box<Config>, Reply<()>),
    Metrics(Reply<AgentMetrics>),
    Leave(Duration, Reply<()>),
    Shutdown(Reply<()>),
    #[cfg(feature = "encryption")]
    Keys(KeyCommand, Reply<()>),
}

/// Keyring changes, applied by the task that owns the envelope.
#[cfg(feature = "encryption")]
pub(crate) enum KeyCommand {
    Add(foca_codec::KeyId, foca_codec::Key),
    Use(foca_codec::KeyId),
    Remove(foca_codec::KeyId),
}

/// A handle to a running agent. Cheap to clone; every clone talks to the
/// same agent. When the last handle is dropped the agent stops (without
/// leaving: call [`Handle::leave`] first to tell the cluster).
pub struct Handle<T> {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) snapshot: watch::Receiver<Arc<Snapshot<T>>>,
    /// Weak, so that subscriptions end when the agent stops.
    pub(crate) events: broadcast::WeakSender<Event<T>>,
    pub(crate) local_addr: SocketAddr,
}

impl<T> Clone for Handle<T> {
    fn clone(&self) -> Self {
        Self {
            commands: self.commands.clone(),
            snapshot: self.snapshot.clone(),
            events: self.events.clone(),
            local_addr: self.local_addr,
        }
    }
}

impl<T> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl<T: Clone + Send + 'static> Handle<T> {
    async fn ask<X>(&self, make: impl FnOnce(Reply<X>) -> Command) -> Result<X, AgentError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| AgentError::Stopped)?;
        rx.await.map_err(|_| AgentError::Stopped)?
    }

    /// The address the agent's socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The latest member list: a shared snapshot, cheap to take. Joins,
    /// departures and failures show at once; a change of state between
    /// alive and suspect shows within half a second.
    pub fn snapshot(&self) -> Arc<Snapshot<T>> {
        Arc::clone(&self.snapshot.borrow())
    }

    /// The active members (alive or suspect), this member excluded.
    pub fn members(&self) -> Vec<T> {
        self.snapshot
            .borrow()
            .members
            .iter()
            .map(|m| m.id().clone())
            .collect()
    }

    /// This member's current identity.
    pub fn identity(&self) -> T {
        self.snapshot.borrow().identity.clone()
    }

    /// A receiver that wakes whenever a new snapshot is published.
    pub fn watch(&self) -> watch::Receiver<Arc<Snapshot<T>>> {
        let mut rx = self.snapshot.clone();
        rx.mark_unchanged();
        rx
    }

    /// Waits until `check` holds for the published snapshot, or the agent
    /// stops.
    pub async fn wait_for(
        &self,
        mut check: impl FnMut(&Snapshot<T>) -> bool,
    ) -> Result<Arc<Snapshot<T>>, AgentError> {
        let mut rx = self.snapshot.clone();
        let seen = rx
            .wait_for(|s| check(s))
            .await
            .map_err(|_| AgentError::Stopped)?;
        Ok(Arc::clone(&seen))
    }

    /// A new subscription to the agent's events, from now on. Each
    /// subscriber sees every event; one that falls more than the event
    /// capacity behind is told how many it missed ([`Lagged`]).
    pub fn subscribe(&self) -> Subscription<T> {
        let rx = match self.events.upgrade() {
            Some(tx) => tx.subscribe(),
            // Stopped: a subscription that ends at once.
            None => broadcast::channel(1).1,
        };
        Subscription { rx }
    }

    /// Announces this member to `addr` (a seed, or any member): it answers
    /// with its view of the cluster. After a leave, this rejoins.
    pub async fn announce(&self, addr: SocketAddr) -> Result<(), AgentError> {
        self.ask(|r| Command::Announce(addr, r)).await
    }

    /// Announces to every seed again (resolving host names anew). After a
    /// leave, this rejoins. Fails with [`AgentError::NoSeeds`] when the
    /// agent was built without seeds.
    pub async fn rejoin(&self) -> Result<(), AgentError> {
        self.ask(Command::Join).await
    }

    /// Adds a custom broadcast. `Ok(true)` when the handler accepted it as
    /// news and it is being disseminated, `Ok(false)` when it had nothing
    /// new.
    pub async fn add_broadcast(&self, item: impl Into<Vec<u8>>) -> Result<bool, AgentError> {
        let item = item.into();
        self.ask(|r| Command::AddBroadcast(item, r)).await
    }

    /// Applies a new config (validated first; the change applies from the
    /// next probe period).
    pub async fn set_config(&self, config: Config) -> Result<(), AgentError> {
        self.ask(|r| Command::SetConfig(Box::new(config), r)).await
    }

    /// The agent's counters.
    pub async fn metrics(&self) -> Result<AgentMetrics, AgentError> {
        self.ask(Command::Metrics).await
    }

    /// Leaves the cluster gracefully: tells a few members at once, then
    /// waits `linger` (bounded by the caller) while the news spreads and
    /// the datagrams already queued go out. The agent keeps running, left:
    /// [`announce`](Self::announce) or [`rejoin`](Self::rejoin) comes back.
    pub async fn leave(&self, linger: Duration) -> Result<(), AgentError> {
        self.ask(|r| Command::Leave(linger, r)).await
    }

    /// Stops the agent and closes its socket; returns once it has stopped.
    /// Does not leave first: peers will see this member fail. Stopping a
    /// stopped agent is `Ok`.
    pub async fn shutdown(&self) -> Result<(), AgentError> {
        match self.ask(Command::Shutdown).await {
            Err(AgentError::Stopped) => {
                self.commands.closed().await;
                Ok(())
            }
            other => other,
        }
    }

    /// Whether the agent task has stopped.
    pub fn is_stopped(&self) -> bool {
        self.commands.is_closed()
    }

    /// Adds a key to the envelope's keyring (it decrypts at once; make it
    /// the sealing key with [`use_key`](Self::use_key) once every member
    /// has it).
    #[cfg(feature = "encryption")]
    pub async fn add_key(
        &self,
        id: foca_codec::KeyId,
        key: foca_codec::Key,
    ) -> Result<(), AgentError> {
        self.ask(|r| Command::Keys(KeyCommand::Add(id, key), r))
            .await
    }

    /// Seals from now on with key `id`.
    #[cfg(feature = "encryption")]
    pub async fn use_key(&self, id: foca_codec::KeyId) -> Result<(), AgentError> {
        self.ask(|r| Command::Keys(KeyCommand::Use(id), r)).await
    }

    /// Removes key `id` (not the one in use).
    #[cfg(feature = "encryption")]
    pub async fn remove_key(&self, id: foca_codec::KeyId) -> Result<(), AgentError> {
        self.ask(|r| Command::Keys(KeyCommand::Remove(id), r)).await
    }
}

/// A subscription to an agent's [`Event`]s.
pub struct Subscription<T> {
    rx: broadcast::Receiver<Event<T>>,
}

impl<T: Clone + Send + 'static> Subscription<T> {
    /// The next event; `Err(Lagged(n))` once after missing `n` events, and
    /// `None` when the agent has stopped and every event was read.
    pub async fn recv(&mut self) -> Option<Result<Event<T>, Lagged>> {
        match self.rx.recv().await {
            Ok(e) => Some(Ok(e)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(Err(Lagged(n))),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Result<Event<T>, Lagged>> {
        match self.rx.try_recv() {
            Ok(e) => Some(Ok(e)),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Some(Err(Lagged(n))),
            Err(_) => None,
        }
    }

    /// The subscription as a [`Stream`].
    pub fn into_stream(self) -> impl Stream<Item = Result<Event<T>, Lagged>> + Send + Unpin
    where
        T: Sync,
    {
        BroadcastStream::new(self.rx)
            .map(|r| r.map_err(|BroadcastStreamRecvError::Lagged(n)| Lagged(n)))
    }
}

impl<T> fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("pending", &self.rx.len())
            .finish()
    }
}
