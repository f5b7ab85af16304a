//! Setting an agent up: identity, config, codec, envelope, seeds (the
//! builder is the core's [`driver_builder`](foca_core::driver_builder));
//! building its [`Runner`] on an embassy-net stack.

use alloc::sync::Arc;

use embassy_net::Stack;
use embassy_time::Instant;
use foca_codec::Envelope;
use foca_core::{Agent, AgentError};
use rand::rngs::Xoshiro128PlusPlus;

use crate::handle::{Channels, Handle, Shared};
use crate::runner::{Runner, SocketBuffers, StopOnDrop};

/// Without [`Builder::rng_seed`] the rng is seeded from the clock, which
/// is not random on a device that boots the same way each time: give a
/// seed from a hardware RNG.
fn clock_seed() -> u64 {
    Instant::now()
        .as_ticks()
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// What [`Builder::build`] returns: the runner to spawn, and a handle.
pub type Built<'a, T, C, B> = (Runner<'a, T, C, B>, Handle<T>);

foca_core::driver_builder! {
    /// Sets up an agent. The identity, the config, the codec and the envelope
    /// are required; everything else has a default.
    ///
    /// ```ignore
    /// static BUFFERS: StaticCell<SocketBuffers<8, 4096>> = StaticCell::new();
    /// let envelope = Envelope::insecure_plaintext(b"my-cluster");
    /// let id = GenerationalId::new(SocketAddr::from(([10, 0, 0, 2], 7000)), boot_count);
    /// let (runner, agent) = Builder::new(id, Config::new_lan(8), PostcardCodec::new(), envelope)
    ///     .seeds([SocketAddr::from(([10, 0, 0, 1], 7000))])
    ///     .rng_seed(hardware_rng.next_u64())
    ///     .event_capacity(16)
    ///     .build(stack, BUFFERS.init(SocketBuffers::new()))?;
    /// spawner.spawn(foca_task(runner).unwrap()); // your task: `runner.run().await`
    /// ```
    envelope: Envelope,
    rng: Xoshiro128PlusPlus,
    os_seed: clock_seed,
    impl {
        /// The agent's [`Runner`] (spawn it, it does the work) and a
        /// [`Handle`] to it, on a UDP socket of `stack` bound to the
        /// identity's port, over `buffers`. Fails if the config is invalid
        /// or does not fit the envelope. The handle's `local_addr` is the
        /// identity's address.
        pub fn build<'a, const PACKETS: usize, const BYTES: usize>(
            self,
            stack: Stack<'a>,
            buffers: &'a mut SocketBuffers<PACKETS, BYTES>,
        ) -> Result<Built<'a, T, C, B>, AgentError> {
            let addr = self.identity.addr();
            let origin = Instant::now();
            let (agent, capacity): (Agent<T, C, _, B, _>, _) = self.start()?;
            let mut socket = buffers.socket(stack);
            // Cannot fail: the socket is new, and embassy-net replaces a
            // port 0 with an ephemeral one.
            let _ = socket.bind(addr.port());
            let shared = Arc::new(Shared::new(agent.endpoint().snapshot(), capacity));
            let handle = Handle::new(Channels::new(Arc::clone(&shared)), addr);
            let shared = StopOnDrop(shared);
            Ok((Runner { agent, socket, shared, origin }, handle))
        }
    }
}
