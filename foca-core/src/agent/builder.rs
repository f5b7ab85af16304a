//! The builder every driver offers: one definition, expanded in each
//! driver (its `bind` and `spawn` are the runtime's).

/// Defines a driver's `Builder<T, C, B>`: the identity, the config, the
/// codec and the envelope (required), the seeds, the rng seed, the event
/// capacity and the broadcast handler (optional), with the same methods in
/// every driver. The driver's own methods (`bind`, `spawn`) are given in
/// `impl { .. }` and land in the same `impl` block, with every type `Send`
/// and `'static`; they start the [`Agent`](crate::Agent) with the
/// generated private method `start(self) -> Result<(Agent,
/// event_capacity), AgentError>`, which validates the config and joins
/// through the address seeds at time zero.
///
/// `envelope` is the envelope type (`foca_codec::Envelope` for the drivers
/// here); `rng` the random generator (a `SeedableRng`) and `os_seed` what
/// seeds it when the builder was given no rng seed; the attributes given
/// first go on the struct (its docs, with the driver's example).
#[macro_export]
macro_rules! driver_builder {
    (
        $(#[$meta:meta])*
        envelope: $env:ty,
        rng: $rng:ty,
        os_seed: $os_seed:expr,
        impl { $($driver:tt)* }
    ) => {
        /// Events kept for slow subscribers by default (see
        /// [`Builder::event_capacity`]).
        pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

        $(#[$meta])*
        #[derive(Debug)]
        pub struct Builder<T, C, B = $crate::NoCustomBroadcast> {
            identity: T,
            config: $crate::Config,
            codec: C,
            handler: B,
            envelope: $env,
            seeds: $crate::agent::BuilderVec<$crate::Seed>,
            rng_seed: ::core::option::Option<u64>,
            event_capacity: usize,
        }

        impl<T, C> Builder<T, C, $crate::NoCustomBroadcast>
        where
            T: $crate::SocketIdentity + Send + Sync + 'static,
            C: $crate::Codec<T> + Send + 'static,
        {
            /// An agent for `identity` with `config`, encoding with `codec`,
            /// every datagram wrapped in `envelope`: `Envelope::encrypted`
            /// (what to deploy), or `Envelope::insecure_plaintext` for a
            /// trusted network. There is no default: a plaintext cluster is
            /// a choice made by name. Members with another cluster label
            /// ignore each other; datagrams larger than the config's
            /// `max_packet_size` plus the envelope's overhead are dropped
            /// and counted.
            pub fn new(identity: T, config: $crate::Config, codec: C, envelope: $env) -> Self {
                Self {
                    identity,
                    config,
                    codec,
                    handler: $crate::NoCustomBroadcast,
                    envelope,
                    seeds: $crate::agent::BuilderVec::new(),
                    rng_seed: None,
                    event_capacity: DEFAULT_EVENT_CAPACITY,
                }
            }
        }

        impl<T, C, B> Builder<T, C, B>
        where
            T: $crate::SocketIdentity + Send + Sync + 'static,
            C: $crate::Codec<T> + Send + 'static,
            T::Addr: Send,
            B: $crate::BroadcastHandler<T> + Send + 'static,
            B::Broadcast: Send,
            <B::Broadcast as $crate::Invalidates>::Key: Send,
        {
            /// Handles custom broadcasts with `handler`: what it accepts
            /// from peers is also published to subscribers as
            /// [`Event::Broadcast`]($crate::Event::Broadcast).
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

            /// Joins through these seeds (addresses or `host:port` names).
            /// Without seeds the member waits for others to announce to it.
            pub fn seeds<S: Into<$crate::Seed>>(mut self, seeds: impl IntoIterator<Item = S>) -> Self {
                self.seeds = seeds.into_iter().map(Into::into).collect();
                self
            }

            /// Seeds the member's random choices (for reproducible tests);
            /// by default they come from the OS.
            pub fn rng_seed(mut self, seed: u64) -> Self {
                self.rng_seed = Some(seed);
                self
            }

            /// How many events are kept for a subscriber that has not read
            /// them yet; one that falls further behind is told it lagged.
            pub fn event_capacity(mut self, capacity: usize) -> Self {
                self.event_capacity = capacity.max(1);
                self
            }

            /// The agent, joined through the address seeds at time zero,
            /// and the event capacity.
            fn start(
                self,
            ) -> ::core::result::Result<($crate::Agent<T, C, $rng, B, $env>, usize), $crate::AgentError> {
                let zero = ::core::time::Duration::ZERO;
                let seed = self.rng_seed.unwrap_or_else($os_seed);
                let rng = <$rng as $crate::agent::SeedableRng>::seed_from_u64(seed);
                let foca = $crate::Foca::with_custom_broadcast(
                    self.identity,
                    self.config,
                    rng,
                    self.codec,
                    self.handler,
                )?;
                let endpoint = $crate::Endpoint::new(foca, self.envelope, zero)?;
                let mut agent = $crate::Agent::new(endpoint, self.seeds);
                agent.join(zero)?;
                Ok((agent, self.event_capacity))
            }

            $($driver)*
        }
    };
}
