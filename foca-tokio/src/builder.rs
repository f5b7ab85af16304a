//! Setting an agent up: identity, config, codec, envelope, seeds.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use foca_codec::Envelope;
use foca_core::{
    BroadcastHandler, Codec, Config, Endpoint, Foca, Invalidates, NoCustomBroadcast, SocketIdentity,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::net::{ToSocketAddrs, UdpSocket};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::Instrument;

use crate::handle::{AgentError, Handle, Snapshot};
use crate::tap::Tap;
use crate::task::Agent;

/// The cluster label of the default envelope.
pub const DEFAULT_LABEL: &[u8] = b"foca";
/// Events kept for slow subscribers by default (see
/// [`Builder::event_capacity`]).
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;
/// Commands waiting for the agent task.
const COMMAND_CAPACITY: usize = 64;

/// A member to join through: an address, or a host name with a port that is
/// resolved when the agent starts and again whenever it is alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seed {
    /// A socket address.
    Addr(SocketAddr),
    /// `host:port`, resolved through the system resolver.
    Host(String),
}

impl From<SocketAddr> for Seed {
    fn from(addr: SocketAddr) -> Self {
        Seed::Addr(addr)
    }
}

impl From<&str> for Seed {
    /// An address if `s` parses as one, a host name otherwise.
    fn from(s: &str) -> Self {
        Seed::from(s.to_owned())
    }
}

impl From<String> for Seed {
    /// An address if `s` parses as one, a host name otherwise.
    fn from(s: String) -> Self {
        match s.parse() {
            Ok(addr) => Seed::Addr(addr),
            Err(_) => Seed::Host(s),
        }
    }
}

impl fmt::Display for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seed::Addr(a) => a.fmt(f),
            Seed::Host(h) => f.write_str(h),
        }
    }
}

/// Sets up an agent. Only the identity, the config and the codec are
/// required; everything else has a default.
///
/// ```no_run
/// # async fn run() -> Result<(), foca_tokio::AgentError> {
/// use std::net::SocketAddr;
/// use foca_codec::PostcardCodec;
/// use foca_core::{Config, GenerationalId};
/// use foca_tokio::Builder;
///
/// let addr: SocketAddr = "127.0.0.1:7001".parse().unwrap();
/// let identity = GenerationalId::new(addr, 1);
/// let agent = Builder::new(identity, Config::new_lan(16), PostcardCodec::new())
///     .seeds(["127.0.0.1:7000", "seed.example.internal:7000"])
///     .bind(addr)
///     .await?;
/// println!("{} members", agent.members().len());
/// # Ok(()) }
/// ```
pub struct Builder<T, C, B = NoCustomBroadcast> {
    identity: T,
    config: Config,
    codec: C,
    handler: B,
    envelope: Option<Envelope>,
    seeds: Vec<Seed>,
    rng_seed: Option<u64>,
    event_capacity: usize,
}

impl<T, C, B> fmt::Debug for Builder<T, C, B>
where
    T: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("identity", &self.identity)
            .field("config", &self.config)
            .field("seeds", &self.seeds)
            .finish_non_exhaustive()
    }
}

impl<T, C> Builder<T, C, NoCustomBroadcast>
where
    T: SocketIdentity + Send + Sync + 'static,
    C: Codec<T> + Send + 'static,
{
    /// An agent for `identity` with `config`, encoding with `codec`.
    pub fn new(identity: T, config: Config, codec: C) -> Self {
        Self {
            identity,
            config,
            codec,
            handler: NoCustomBroadcast,
            envelope: None,
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

    /// Wraps datagrams in `envelope` (default: plain, with CRC32C, label
    /// [`DEFAULT_LABEL`]). Members with another label ignore each other.
    /// Its `max_datagram` is set to the config's `max_packet_size` plus
    /// the envelope's overhead: larger datagrams are dropped and counted.
    pub fn envelope(mut self, envelope: Envelope) -> Self {
        self.envelope = Some(envelope);
        self
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
        let mut envelope = self
            .envelope
            .unwrap_or_else(|| Envelope::new(DEFAULT_LABEL));
        crate::task::fit_envelope(&mut envelope, &self.config)?;
        let rng = match self.rng_seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::seed_from_u64(rand::random()),
        };
        let span = tracing::info_span!("foca", id = ?self.identity);
        let foca = Foca::with_custom_broadcast(
            self.identity.clone(),
            self.config,
            rng,
            self.codec,
            Tap::new(self.handler),
        )?;
        let origin = tokio::time::Instant::now();
        let endpoint = Endpoint::new(foca, std::time::Duration::ZERO);
        let snapshot = Arc::new(Snapshot {
            identity: self.identity,
            members: Vec::new(),
            state: endpoint.foca().connection_state(),
        });
        let (snapshot_tx, snapshot_rx) = watch::channel(snapshot);
        let (events, _) = broadcast::channel(self.event_capacity);
        // The task holds the only strong sender: subscriptions end with it.
        let weak_events = events.downgrade();
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_CAPACITY);
        let mut agent = Agent::new(
            endpoint,
            socket,
            envelope,
            origin,
            self.seeds,
            commands_rx,
            snapshot_tx,
            events,
        );
        agent.join()?;
        tokio::spawn(agent.run().instrument(span));
        Ok(Handle {
            commands: commands_tx,
            snapshot: snapshot_rx,
            events: weak_events,
            local_addr,
        })
    }
}
