//! The embassy driver for foca (`no_std` + `alloc`): a [`Runner`] that
//! moves bytes and time for the protocol core's sans-IO
//! [`Endpoint`](foca_core::Endpoint) over an `embassy_net::Stack` UDP
//! socket and `embassy-time`, and a cloneable [`Handle`] to talk to it over
//! embassy-sync primitives. The driver decides nothing about the protocol.
//!
//! Unlike the tokio and async-std drivers it spawns nothing: it does not
//! depend on `embassy-executor`. [`Builder::build`] returns the runner and
//! a handle; the application runs [`Runner::run`] in a task of its own
//! (task functions cannot be generic, so wrap it for your types).
//!
//! The [`Handle`] is foca-core's, as in the other drivers:
//! [`snapshot`](Handle::snapshot), [`members`](Handle::members),
//! [`wait_for`](Handle::wait_for), [`subscribe`](Handle::subscribe)
//! (a [`Subscription`] with `recv` / `try_recv`, [`Lagged`] when behind),
//! [`add_broadcast`](Handle::add_broadcast), [`announce`](Handle::announce),
//! [`rejoin`](Handle::rejoin), [`set_config`](Handle::set_config),
//! [`metrics`](Handle::metrics), [`leave`](Handle::leave),
//! [`shutdown`](Handle::shutdown).
//!
//! ## Bounds and RAM
//! - The socket's buffers are the application's [`SocketBuffers`]
//!   (const generics; their cost is documented there).
//! - Requests: a channel of [`REQUEST_CAPACITY`] (4) requests, a few words
//!   each; a handle waits for room.
//! - Events: a ring of the builder's `event_capacity` (default 1024: set
//!   it lower on a microcontroller), filled only while someone is
//!   subscribed; a subscriber that falls behind is told how many it missed.
//! - A receive buffer of the config's largest datagram plus one byte, on
//!   the heap; everything else (members, timers, backlogs, output queues)
//!   is the core's, bounded by its [`Config`](foca_core::Config).
//!
//! Only IPv4 (embassy-net's `proto-ipv4`); seeds are addresses (a host
//! name seed is counted as a lookup failure: there is no resolver). With
//! feature `defmt`, the start, the stop and membership events are logged.
//! Feature `loopback` adds the `loopback` module, an in-process network of
//! embassy-net stacks for tests and demos.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod builder;
mod handle;
#[cfg(feature = "loopback")]
pub mod loopback;
mod runner;

pub use builder::{Builder, Built, DEFAULT_EVENT_CAPACITY};
pub use foca_core::{AgentError, Event, Lagged, Seed, Snapshot};
pub use handle::{AgentMetrics, Channels, Handle, REQUEST_CAPACITY, Subscription, Watcher};
pub use runner::{Runner, SocketBuffers};

/// Logs with defmt when the feature is on.
macro_rules! log {
    ($($t:tt)*) => {
        #[cfg(feature = "defmt")]
        defmt::info!($($t)*);
    };
}
pub(crate) use log;
