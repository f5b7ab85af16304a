//! The handle every driver hands out: the same methods on every runtime,
//! over the runtime's channels to its agent task (a [`Link`]).

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::net::SocketAddr;
use core::time::Duration;

use super::{AgentError, AgentMetrics, Reply, Request};
use crate::{Command, Config, Envelope, KeyedEnvelope, Member, Snapshot, SocketIdentity};

/// A driver's channels between its [`Handle`]s and its agent task: how a
/// request reaches the task and its reply comes back, where the latest
/// snapshot is, how events are subscribed to. Each driver implements it
/// once, on its runtime's primitives.
pub trait Link: Clone {
    /// The members' identity.
    type Id;
    /// The agent's envelope.
    type Envelope: Envelope;
    /// A subscription to the agent's events.
    type Subscription;
    /// Wakes when a new snapshot is published (see [`Handle::watch`]).
    type Watcher;

    /// Hands `request` to the agent task, waiting for room in the channel;
    /// `Err(Stopped)` once the task has stopped.
    fn send(
        &self,
        request: Request<Self::Id, Self::Envelope>,
    ) -> impl Future<Output = Result<(), AgentError>> + Send;

    /// A reply for one request, and what resolves to the answer (`None`
    /// when the reply was dropped unanswered: the task stopped).
    fn reply<X: Send + 'static>() -> (
        Reply<X>,
        impl Future<Output = Option<Result<X, AgentError>>> + Send,
    );

    /// The latest published snapshot.
    fn snapshot(&self) -> Arc<Snapshot<Self::Id>>;

    /// A watcher of the snapshots published from now on.
    fn watcher(&self) -> Self::Watcher;

    /// Waits until a snapshot is published after the ones `watcher` saw:
    /// `false` if the agent stopped instead.
    fn changed(watcher: &mut Self::Watcher) -> impl Future<Output = bool> + Send;

    /// A subscription to events from now on (one that ends at once if the
    /// task has stopped).
    fn subscribe(&self) -> Self::Subscription;

    /// Whether the task has stopped.
    fn is_stopped(&self) -> bool;

    /// Waits until the task has stopped.
    fn stopped(&self) -> impl Future<Output = ()> + Send;
}

/// A handle to a running agent. Cheap to clone; every clone talks to the
/// same agent. When the last handle is dropped the agent stops (without
/// leaving: call [`Handle::leave`] first to tell the cluster).
///
/// Drivers name it for their runtime (`foca_tokio::Handle<T>`,
/// `foca_async_std::Handle<T>`): the methods are the same.
pub struct Handle<L> {
    link: L,
    local_addr: SocketAddr,
}

impl<L: Clone> Clone for Handle<L> {
    fn clone(&self) -> Self {
        Self {
            link: self.link.clone(),
            local_addr: self.local_addr,
        }
    }
}

impl<L> fmt::Debug for Handle<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl<L> Handle<L>
where
    L: Link + Sync,
    L::Id: SocketIdentity + Send + Sync + 'static,
{
    /// A handle over `link` to a task whose socket is bound to
    /// `local_addr` (for drivers).
    pub fn new(link: L, local_addr: SocketAddr) -> Self {
        Self { link, local_addr }
    }

    async fn ask<X: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<X>) -> Request<L::Id, L::Envelope>,
    ) -> Result<X, AgentError> {
        let (reply, answer) = L::reply();
        self.link.send(make(reply)).await?;
        answer.await.ok_or(AgentError::Stopped)?
    }

    async fn command(&self, command: Command<L::Id>) -> Result<bool, AgentError> {
        self.ask(|r| Request::Command(command, r)).await
    }

    /// The address the agent's socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The latest member list: a shared snapshot, cheap to take. Changes
    /// show within [`SNAPSHOT_INTERVAL`](crate::SNAPSHOT_INTERVAL)
    /// (100 ms); a burst of them is published as one snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot<L::Id>> {
        self.link.snapshot()
    }

    /// The active members (alive or suspect), this member excluded.
    pub fn members(&self) -> Vec<L::Id> {
        let snapshot = self.link.snapshot();
        snapshot.members.iter().map(|m| m.id().clone()).collect()
    }

    /// This member's current identity.
    pub fn identity(&self) -> L::Id {
        self.link.snapshot().identity.clone()
    }

    /// Something that wakes whenever a new snapshot is published (the
    /// runtime's kind: see the driver).
    pub fn watch(&self) -> L::Watcher {
        self.link.watcher()
    }

    /// Waits until `check` holds for the published snapshot, or the agent
    /// stops.
    pub async fn wait_for(
        &self,
        mut check: impl FnMut(&Snapshot<L::Id>) -> bool,
    ) -> Result<Arc<Snapshot<L::Id>>, AgentError> {
        // Watching first: a snapshot published after the check still wakes.
        let mut watcher = self.link.watcher();
        loop {
            let snapshot = self.link.snapshot();
            if check(&snapshot) {
                return Ok(snapshot);
            }
            if !L::changed(&mut watcher).await {
                return Err(AgentError::Stopped);
            }
        }
    }

    /// A new subscription to the agent's events, from now on. Each
    /// subscriber sees every event; one that falls more than the event
    /// capacity behind is told how many it missed
    /// ([`Lagged`](crate::Lagged)).
    pub fn subscribe(&self) -> L::Subscription {
        self.link.subscribe()
    }

    /// Announces this member to `addr` (a seed, or any member): it answers
    /// with its view of the cluster. After a leave, this rejoins.
    pub async fn announce(&self, addr: SocketAddr) -> Result<(), AgentError> {
        self.command(Command::Announce(L::Id::seed_at(addr)))
            .await?;
        Ok(())
    }

    /// Installs a member table the cluster already has, such as one saved
    /// before a restart ([`Snapshot::members`]), without disseminating it
    /// (see [`Foca::restore`](crate::Foca::restore)): the member probes
    /// those members and so rejoins without seeds. A record of this member
    /// itself is handled as news about it (a suspicion is refuted).
    pub async fn restore(&self, members: Vec<Member<L::Id>>) -> Result<(), AgentError> {
        self.command(Command::Restore(members)).await?;
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
    pub async fn metrics(
        &self,
    ) -> Result<AgentMetrics<<L::Envelope as Envelope>::Rejections>, AgentError>
    where
        <L::Envelope as Envelope>::Rejections: Send + 'static,
    {
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
                self.link.stopped().await;
                Ok(())
            }
            other => other,
        }
    }

    /// Whether the agent task has stopped.
    pub fn is_stopped(&self) -> bool {
        self.link.is_stopped()
    }
}

impl<L> Handle<L>
where
    L: Link + Sync,
    L::Id: SocketIdentity + Send + Sync + 'static,
    L::Envelope: KeyedEnvelope,
{
    async fn keys(
        &self,
        change: impl FnOnce(&mut L::Envelope) -> Result<(), <L::Envelope as KeyedEnvelope>::KeyError>
        + Send
        + 'static,
    ) -> Result<(), AgentError> {
        let change =
            move |e: &mut L::Envelope| change(e).map_err(|e| AgentError::Keys(Box::new(e)));
        self.ask(|r| Request::Envelope(Box::new(change), r)).await
    }

    /// Adds a key to the envelope's keyring (it decrypts at once; make it
    /// the sealing key with [`use_key`](Self::use_key) once every member
    /// has it).
    pub async fn add_key(
        &self,
        id: <L::Envelope as KeyedEnvelope>::KeyId,
        key: <L::Envelope as KeyedEnvelope>::Key,
    ) -> Result<(), AgentError> {
        self.keys(move |e| e.add_key(id, key)).await
    }

    /// Seals from now on with key `id`.
    pub async fn use_key(
        &self,
        id: <L::Envelope as KeyedEnvelope>::KeyId,
    ) -> Result<(), AgentError> {
        self.keys(move |e| e.use_key(id)).await
    }

    /// Removes key `id` (not the one in use).
    pub async fn remove_key(
        &self,
        id: <L::Envelope as KeyedEnvelope>::KeyId,
    ) -> Result<(), AgentError> {
        self.keys(move |e| e.remove_key(id)).await
    }
}
