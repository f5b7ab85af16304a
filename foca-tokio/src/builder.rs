//! Setting an agent up: identity, config, codec, envelope, seeds (the
//! builder is the core's [`driver_builder`](foca_core::driver_builder));
//! starting it on tokio.

use std::sync::Arc;

use foca_codec::Envelope;
use foca_core::AgentError;
use rand::rngs::SmallRng;
use tokio::net::{ToSocketAddrs, UdpSocket};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tracing::Instrument;

use crate::handle::{Channels, Handle};
use crate::task::Task;

/// Commands waiting for the agent task.
const COMMAND_CAPACITY: usize = 64;

foca_core::driver_builder! {
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
    envelope: Envelope,
    rng: SmallRng,
    os_seed: rand::random,
    impl {
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
            let span = tracing::info_span!("foca", id = ?self.identity);
            let origin = Instant::now();
            let (agent, event_capacity) = self.start()?;
            let (snapshot, snapshot_rx) = watch::channel(Arc::new(agent.endpoint().snapshot()));
            let (events, _) = broadcast::channel(event_capacity);
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
}
