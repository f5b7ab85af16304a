//! Setting an agent up: identity, config, codec, envelope, seeds.

use std::sync::Arc;
use std::time::Duration;

use foca_codec::Envelope;
use foca_core::{
    Agent, AgentError, BroadcastHandler, Codec, Config, Endpoint, Foca, Invalidates,
    NoCustomBroadcast, Seed, SocketIdentity,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::net::{ToSocketAddrs, UdpSocket};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tracing::Instrument;

use crate::handle::{Channels, Handle};
use crate::task::Task;

/// Events kept for slow subscribers by default (see
/// [`Builder::event_capacity`]).
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;
/// Commands waiting for the agent task.
const COMMAND_CAPACITY: usize = 64;

/// Sets up an agent. The identity, the config, the codec and the envelope
/// are required; everything else has a default.
///
/// ```no_run
/// # async fn run() -> Result<(), foca_tokio::AgentError> {
/// use std::net::SocketAddr;
/// use foca_codec::{Envelope, PostcardCodec};
/// use foca_core::{Config, GenerationalId};
/// use foca_tokio::Builder;
///
/// let addr: SocketAddr = "127.0.0.1:7001".parse().unwrap();
/// let identity = GenerationalId::new(addr, 1);
/// let envelope = Envelope::insecure_plaintext(b"my-cluster");
/// let agent = Builder::new(identity, Config::new_lan(16), PostcardCodec::new(), envelope)
///     .seeds(["127.0.0.1:7000", "seed.example.internal:7000"])
///     .bind(addr)
///     .await?;
/// println!("{} members", agent.members().len());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Builder<T, C, B = NoCustomBroadcast> {
    identity: T,
    config: Config,
    codec: C,
    handler: B,
    envelope: Envelope,
    seeds: Vec<Seed>,
    rng_seed: Option<u64>,
    event_capacity: usize,
}

impl<T, C> Builder<T, C, NoCustomBroadcast>
where
    T: SocketIdentity + Send + Sync + 'static,
    C: Codec<T> + Send + 'static,
{
    /// An agent for `identity` with `config`, encoding with `codec`, every
    /// datagram wrapped in `envelope`: [`Envelope::encrypted`] (what to
    /// deploy), or [`Envelope::insecure_plaintext`] for a trusted network.
    /// There is no default: a plaintext cluster is a choice made by name.
    /// Members with another cluster label ignore each other; datagrams
    /// larger than the config's `max_packet_size` plus the envelope's
    /// overhead are dropped and counted.
    pub fn new(identity: T, config: Config, codec: C, envelope: Envelope) -> Self {
        Self {
            identity,
            config,
            codec,
            handler: NoCustomBroadcast,
            envelope,
            seeds: Vec::new(),
            rng_seed: None,
            event_capacity: DEFAULT_EVENT_CAPACITY,
        }
    }
}

impl<T, C, B> Builder<T, C, B>
where
    T: SocketIdentity + Send + Sync + 'static,
    C: Codec<T> + Send + 'static,
    T::Addr: Send,
    B: BroadcastHandler<T> + Send + 'static,
    B::Broadcast: Send,
    <B::Broadcast as Invalidates>::Key: Send,
{
    /// Handles custom broadcasts with `handler`: what it accepts from peers
    /// is also published to subscribers as [`Event::Broadcast`](crate::Event).
    pub fn broadcast_handler<B2>(self, handler: B2) -> Builder<T, C, B2> {
        Builder {
            identity: self.identity,
            config: self.config,
            codec: self.codec,
            handler,
            envelope: self.envelope,
            seeds: self.seeds,
            rng_seed: self.rng_seed,
            event_capacity: self.event_capacity,
        }
    }

    /// Joins through these seeds (addresses or `host:port` names). Without
    /// seeds the member waits for others to announce to it.
    pub fn seeds<S: Into<Seed>>(mut self, seeds: impl IntoIterator<Item = S>) -> Self {
        self.seeds = seeds.into_iter().map(Into::into).collect();
        self
    }

    /// Seeds the member's random choices (for reproducible tests); by
    /// default they come from the OS.
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.rng_seed = Some(seed);
        self
    }

    /// How many events are kept for a subscriber that has not read them
    /// yet; one that falls further behind is told it lagged.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// Binds a UDP socket to `addr` and starts the agent on the current
    /// tokio runtime.
    pub async fn bind(self, addr: impl ToSocketAddrs) -> Result<Handle<T>, AgentError> {
        let socket = UdpSocket::bind(addr).await?;
        self.spawn(socket)
    }

    /// Starts the agent on `socket` (already bound), on the current tokio
    /// runtime. Fails if the config is invalid or does not fit the
    /// envelope.
    pub fn spawn(self, socket: UdpSocket) -> Result<Handle<T>, AgentError> {
        let local_addr = socket.local_addr()?;
        let envelope = self.envelope;
        let rng = SmallRng::seed_from_u64(self.rng_seed.unwrap_or_else(rand::random));
        let span = tracing::info_span!("foca", id = ?self.identity);
        let foca =
            Foca::with_custom_broadcast(self.identity, self.config, rng, self.codec, self.handler)?;
        let origin = Instant::now();
        let mut agent = Agent::new(Endpoint::new(foca, envelope, Duration::ZERO)?, self.seeds);
        agent.join(Duration::ZERO)?;
        let (snapshot, snapshot_rx) = watch::channel(Arc::new(agent.endpoint().snapshot()));
        let (events, _) = broadcast::channel(self.event_capacity);
        // The task holds the only strong sender: subscriptions end with it.
        let weak_events = events.downgrade();
        let (requests_tx, requests) = mpsc::channel(COMMAND_CAPACITY);
        let task = Task {
            agent,
            socket,
            requests,
            snapshot,
            events,
            origin,
        };
        tokio::spawn(task.run().instrument(span));
        let channels = Channels {
            requests: requests_tx,
            snapshot: snapshot_rx,
            events: weak_events,
        };
        Ok(Handle::new(channels, local_addr))
    }
}
