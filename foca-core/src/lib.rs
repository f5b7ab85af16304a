//! # foca-core: SWIM cluster membership, sans-IO and `no_std`
//!
//! This crate is the protocol of [foca](https://example.invalid/foca): the
//! SWIM failure detector with its infection-style dissemination and suspicion
//! extensions, custom broadcasts, periodic gossip, anti-entropy by table
//! summaries ([`Message::Sync`]), and recovery from losing every peer. It
//! performs no IO and reads no clock: it needs only `alloc`, so it runs on
//! servers (through a driver crate such as `foca-tokio`), on
//! microcontrollers, and in a deterministic simulator.
//!
//! ## Pieces
//! - [`Identity`]: who a member is ([`core::net::SocketAddr`] and
//!   [`GenerationalId`] ship ready).
//! - [`Codec`]: turns [`Header`]s and [`Member`] updates into bytes (the
//!   `foca-codec` crate has postcard and bincode codecs).
//! - [`Runtime`]: where datagrams, timers and [`Notification`]s go.
//! - [`BroadcastHandler`]: what custom broadcasts mean.
//! - [`Foca`]: the state machine; [`Endpoint`] wraps it with a
//!   [`TimerQueue`] and output queues into a poll-style API.
//! - [`Config`]: tuning, with presets and validation.
//!
//! ## Example
//! Two members in one process, bytes shuttled by hand, on virtual time:
//!
//! ```
//! use core::time::Duration;
//! use foca_core::{Config, Endpoint, Foca, GenerationalId, Notification};
//! use foca_core::testing::TestCodec;
//! use rand::{SeedableRng, rngs::Xoshiro128PlusPlus};
//!
//! type Id = GenerationalId<u32>;
//! let member = |addr: u32| {
//!     let foca = Foca::new(
//!         GenerationalId::new(addr, 1),
//!         Config::simple(),
//!         Xoshiro128PlusPlus::seed_from_u64(u64::from(addr)),
//!         TestCodec,
//!     )
//!     .unwrap();
//!     Endpoint::new(foca, Duration::ZERO)
//! };
//! let (mut a, mut b) = (member(1), member(2));
//! let now = Duration::ZERO;
//!
//! // `a` knows only `b`'s address.
//! a.announce(now, GenerationalId::seed(2)).unwrap();
//! while let Some(t) = a.poll_transmit() {
//!     b.handle_datagram(now, &t.data).unwrap();
//! }
//! while let Some(t) = b.poll_transmit() {
//!     a.handle_datagram(now, &t.data).unwrap();
//! }
//! assert_eq!(a.foca().num_members(), 1);
//! assert_eq!(b.foca().num_members(), 1);
//! assert_eq!(
//!     b.poll_notification(),
//!     Some(Notification::MemberUp(GenerationalId::new(1, 1)))
//! );
//! ```
//!
//! ## Features
//! - `std`: `Clock`, the mapping from `std::time::Instant` to the core's
//!   time (every std driver needs it). Identities need no `std`:
//!   `core::net::SocketAddr` works without it.
//! - `serde`: `Serialize`/`Deserialize` for the wire types and `Config`.
//! - `sim`: the deterministic [`sim`] simulator (no_std + alloc too). Its
//!   cache hints use one x86_64 prefetch instruction, the only `unsafe` code
//!   in the crate; without `sim` the crate is `#![forbid(unsafe_code)]`.
//! - `tracing`: protocol decisions as `tracing` events (membership changes,
//!   suspicions, refutations at DEBUG; dropped datagrams at TRACE). No_std.
#![no_std]
// No unsafe code, except one cache-prefetch hint in the simulator (see
// `sim::prefetch`), which only the `sim` feature builds.
#![cfg_attr(not(feature = "sim"), forbid(unsafe_code))]
#![cfg_attr(feature = "sim", deny(unsafe_code))]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;

/// A `tracing` event at DEBUG when the `tracing` feature is on; nothing otherwise.
macro_rules! debug_event {
    ($($arg:tt)*) => {{
        #[cfg(feature = "tracing")]
        tracing::debug!($($arg)*);
    }};
}

/// A `tracing` event at TRACE when the `tracing` feature is on; nothing otherwise.
macro_rules! trace_event {
    ($($arg:tt)*) => {{
        #[cfg(feature = "tracing")]
        tracing::trace!($($arg)*);
    }};
}

#[cfg(feature = "std")]
extern crate std;

mod backlog;
mod broadcast;
#[cfg(feature = "std")]
mod clock;
mod codec;
mod config;
mod endpoint;
mod error;
mod foca;
mod identity;
mod member;
mod members;
pub mod message;
mod metrics;
mod runtime;
#[cfg(feature = "sim")]
pub mod sim;
pub mod testing;
mod timer_queue;

pub use broadcast::{BroadcastHandler, BroadcastsDisabled, Invalidates, Never, NoCustomBroadcast};
#[cfg(feature = "std")]
pub use clock::Clock;
pub use codec::Codec;
pub use config::{Config, ConfigError, MAX_PACKET_SIZE, MIN_PACKET_SIZE, PeriodicParams};
pub use endpoint::{
    Endpoint, MAX_QUEUED_NOTIFICATIONS, MAX_QUEUED_TRANSMITS, MAX_TIMERS_PER_CALL, Transmit,
    max_pending_timers,
};
pub use error::Error;
pub use foca::{ConnectionState, Foca, MAX_SEEDS, MAX_VERDICTS_RESENT};
pub use identity::{GenerationalId, Identity, SocketIdentity};
pub use member::{Incarnation, Member, State};
pub use message::{Header, Message, ProbeNumber};
pub use metrics::{DropCounts, Metrics};
pub use runtime::{Notification, Runtime, Timer, TimerToken};
pub use timer_queue::TimerQueue;
