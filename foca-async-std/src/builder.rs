//! Setting an agent up: identity, config, codec, envelope, seeds (the
//! builder is the core's [`driver_builder`](foca_core::driver_builder));
//! starting it on any executor.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_net::{AsyncToSocketAddrs, UdpSocket};
use foca_codec::Envelope;
use foca_core::AgentError;
use rand::rngs::SmallRng;
use tracing::Instrument;

use crate::handle::{Channels, Handle, Shared};
use crate::task::Task;

/// Commands waiting for the agent task.
const COMMAND_CAPACITY: usize = 64;

/// The agent task: a future that runs the agent until it stops. Spawn it
/// on any executor (it needs none of its own: its IO and timer are
/// `async-io`'s).
pub type AgentTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

foca_core::driver_builder! {
    /// Sets up an agent. The identity, the config, the codec and the
    /// envelope are required; everything else has a default.
    ///
    /// The agent is one task, and this crate has no executor: [`build`]
    /// returns the task for the caller to spawn; [`spawn`] and [`bind`]
    /// take a spawner, a function that spawns it:
    ///
    /// | executor | spawner |
    /// |---|---|
    /// | async-std | `\|task\| drop(async_std::task::spawn(task))` |
    /// | smol | `\|task\| smol::spawn(task).detach()` |
    /// | an `async_executor::Executor` | `\|task\| ex.spawn(task).detach()` |
    ///
    /// ```no_run
    /// # fn main() -> Result<(), foca_async_std::AgentError> {
    /// use foca_codec::{Envelope, PostcardCodec};
    /// use foca_core::{Config, GenerationalId};
    ///
    /// async_std::task::block_on(async {
    ///     let socket = async_net::UdpSocket::bind("127.0.0.1:7001").await?;
    ///     let id = GenerationalId::new(socket.local_addr()?, 1);
    ///     let plain = Envelope::insecure_plaintext(b"my-cluster");
    ///     let builder = foca_async_std::Builder::new(id, Config::new_lan(16), PostcardCodec::new(), plain);
    ///     let (agent, task) = builder.seeds(["seed.example.internal:7000"]).build(socket)?;
    ///     let running = async_std::task::spawn(task);
    ///     agent.wait_for(|s| !s.members.is_empty()).await?;
    ///     agent.shutdown().await?;
    ///     running.await; // the task has ended
    ///     Ok(())
    /// })
    /// # }
    /// ```
    ///
    /// [`build`]: Builder::build
    /// [`spawn`]: Builder::spawn
    /// [`bind`]: Builder::bind
    envelope: Envelope,
    rng: SmallRng,
    os_seed: rand::random,
    impl {
        /// Binds a UDP socket to `addr` and starts the agent, handing its task
        /// to `spawner`.
        pub async fn bind(
            self,
            addr: impl AsyncToSocketAddrs,
            spawner: impl FnOnce(AgentTask),
        ) -> Result<Handle<T>, AgentError> {
            let socket = UdpSocket::bind(addr).await?;
            self.spawn(socket, spawner)
        }

        /// Starts the agent on `socket` (already bound; a `std` socket converts
        /// with `UdpSocket::try_from`), handing its task to `spawner`. Fails if
        /// the config is invalid or does not fit the envelope.
        pub fn spawn(
            self,
            socket: UdpSocket,
            spawner: impl FnOnce(AgentTask),
        ) -> Result<Handle<T>, AgentError> {
            let (handle, task) = self.build(socket)?;
            spawner(task);
            Ok(handle)
        }

        /// The agent on `socket` (already bound): its handle, and its task for
        /// the caller to spawn (or to run: the agent stops when the task is
        /// dropped). Fails if the config is invalid or does not fit the
        /// envelope.
        pub fn build(self, socket: UdpSocket) -> Result<(Handle<T>, AgentTask), AgentError> {
            let local_addr = socket.local_addr()?;
            let span = tracing::info_span!("foca", id = ?self.identity);
            let (agent, event_capacity) = self.start()?;
            let shared = Arc::new(Shared::new(agent.endpoint().snapshot()));
            let (mut events, events_rx) = async_broadcast::broadcast(event_capacity);
            // A full buffer drops the oldest event: subscribers are told they
            // lagged, the agent never waits for them.
            events.set_overflow(true);
            let (requests_tx, requests) = async_channel::bounded(COMMAND_CAPACITY);
            let task = Task::new(agent, socket.into(), requests, Arc::clone(&shared), events);
            let channels = Channels {
                requests: requests_tx,
                shared,
                // Inactive: the handle keeps no events, and subscriptions end
                // when the task drops the sender.
                events: events_rx.deactivate(),
            };
            let task: AgentTask = Box::pin(task.run().instrument(span));
            Ok((Handle::new(channels, local_addr), task))
        }
    }
}
