//! The cloneable handle to a running agent, and what it hands out.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use foca_codec::{Envelope, Rejections};
use foca_core::agent::Reply;
use foca_core::{AgentError, Command, Config, Event, Lagged, Request, Snapshot, SocketIdentity};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::{Stream, StreamExt};

/// Counters of an agent: the endpoint's, the envelope's refusals by exact
/// reason, and the socket's (see [`foca_core::AgentMetrics`]).
pub type AgentMetrics = foca_core::AgentMetrics<Rejections>;

/// A handle to a running agent. Cheap to clone; every clone talks to the
/// same agent. When the last handle is dropped the agent stops (without
/// leaving: call [`Handle::leave`] first to tell the cluster).
pub struct Handle<T> {
    pub(crate) requests: mpsc::Sender<Request<T, Envelope>>,
    pub(crate) snapshot: watch::Receiver<Arc<Snapshot<T>>>,
    /// Weak, so that subscriptions end when the agent stops.
    pub(crate) events: broadcast::WeakSender<Event<T>>,
    pub(crate) local_addr: SocketAddr,
}

impl<T> Clone for Handle<T> {
    fn clone(&self) -> Self {
        Self {
            requests: self.requests.clone(),
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

impl<T: SocketIdentity + Send + Sync + 'static> Handle<T> {
    async fn ask<X: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<X>) -> Request<T, Envelope>,
    ) -> Result<X, AgentError> {
        let (tx, rx) = oneshot::channel();
        let reply: Reply<X> = Box::new(move |r| drop(tx.send(r)));
        let sent = self.requests.send(make(reply)).await;
        sent.map_err(|_| AgentError::Stopped)?;
        rx.await.map_err(|_| AgentError::Stopped)?
    }

    async fn command(&self, command: Command<T>) -> Result<bool, AgentError> {
        self.ask(|r| Request::Command(command, r)).await
    }

    /// The address the agent's socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The latest member list: a shared snapshot, cheap to take. Changes
    /// show within [`SNAPSHOT_INTERVAL`](foca_core::SNAPSHOT_INTERVAL)
    /// (100 ms); a burst of them is published as one snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot<T>> {
        Arc::clone(&self.snapshot.borrow())
    }

    /// The active members (alive or suspect), this member excluded.
    pub fn members(&self) -> Vec<T> {
        let snapshot = self.snapshot.borrow();
        snapshot.members.iter().map(|m| m.id().clone()).collect()
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
        let seen = rx.wait_for(|s| check(s)).await;
        Ok(Arc::clone(&*seen.map_err(|_| AgentError::Stopped)?))
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
        self.command(Command::Announce(T::seed_at(addr))).await?;
        Ok(())
    }

    /// Announces to every seed again (resolving host names anew). After a
    /// leave, this rejoins. Fails with [`AgentError::NoSeeds`] when the
    /// agent was built without seeds.
    pub async fn rejoin(&self) -> Result<(), AgentError> {
        self.ask(Request::Rejoin).await
    }

    /// Adds a custom broadcast. `Ok(true)` when the handler accepted it as
    /// news and it is being disseminated (sent to a few members at once),
    /// `Ok(false)` when it had nothing new.
    pub async fn add_broadcast(&self, item: impl Into<Vec<u8>>) -> Result<bool, AgentError> {
        self.command(Command::AddBroadcast(item.into())).await
    }

    /// Applies a new config (validated first; the change applies from the
    /// next probe period).
    pub async fn set_config(&self, config: Config) -> Result<(), AgentError> {
        self.command(Command::SetConfig(Box::new(config))).await?;
        Ok(())
    }

    /// The agent's counters.
    pub async fn metrics(&self) -> Result<AgentMetrics, AgentError> {
        self.ask(Request::Metrics).await
    }

    /// Leaves the cluster gracefully: tells a few members at once, then
    /// waits `linger` (bounded by the caller) while the news spreads and
    /// the datagrams already queued go out. The agent keeps running, left:
    /// [`announce`](Self::announce) or [`rejoin`](Self::rejoin) comes back.
    pub async fn leave(&self, linger: Duration) -> Result<(), AgentError> {
        self.ask(|r| Request::Leave(linger, r)).await
    }

    /// Stops the agent and closes its socket; returns once it has stopped.
    /// Does not leave first: peers will see this member fail. Stopping a
    /// stopped agent is `Ok`.
    pub async fn shutdown(&self) -> Result<(), AgentError> {
        match self.ask(Request::Shutdown).await {
            Err(AgentError::Stopped) => {
                self.requests.closed().await;
                Ok(())
            }
            other => other,
        }
    }

    /// Whether the agent task has stopped.
    pub fn is_stopped(&self) -> bool {
        self.requests.is_closed()
    }

    #[cfg(feature = "encryption")]
    async fn keys(
        &self,
        change: impl FnOnce(&mut Envelope) -> Result<(), foca_codec::KeyringError> + Send + 'static,
    ) -> Result<(), AgentError> {
        let change = move |e: &mut Envelope| change(e).map_err(|e| AgentError::Keys(Box::new(e)));
        self.ask(|r| Request::Envelope(Box::new(change), r)).await
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
        self.keys(move |e| e.add_key(id, key)).await
    }

    /// Seals from now on with key `id`.
    #[cfg(feature = "encryption")]
    pub async fn use_key(&self, id: foca_codec::KeyId) -> Result<(), AgentError> {
        self.keys(move |e| e.use_key(id)).await
    }

    /// Removes key `id` (not the one in use).
    #[cfg(feature = "encryption")]
    pub async fn remove_key(&self, id: foca_codec::KeyId) -> Result<(), AgentError> {
        self.keys(move |e| e.remove_key(id)).await
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
