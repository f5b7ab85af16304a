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
//!   `foca-codec` crate has postcard and bincode codecs); [`wire`] frames
//!   them into datagrams.
//! - [`Envelope`]: wraps each datagram for the wire (`foca-codec` has one
//!   with a cluster label, a checksum or authenticated encryption).
//! - [`BroadcastHandler`]: what custom broadcasts mean.
//! - [`Config`]: tuning, with presets and validation.
//! - [`Foca`]: the state machine, driven through a [`Runtime`].
//! - [`Endpoint`]: a `Foca`, its envelope, its timers and its output queues
//!   behind a poll API; every driver and the simulator drive one.
//!
//! ## Which to pick: `Endpoint` or `Foca` + `Runtime`
//! Most users pick a driver crate (`foca-tokio`, ...) and never touch
//! either. To write your own event loop, drive an [`Endpoint`]: three
//! inputs (a datagram with its source address, a deadline reached, a
//! [`Command`]) and polled outputs (sealed datagrams with their destination,
//! the next deadline, [`Event`]s, [`Snapshot`]s); timers, sealing and
//! bounds are handled. [`Foca`] with your own [`Runtime`] is the low-level
//! callback API of the original foca crate: it sends payloads (unsealed),
//! asks you to keep its timers (in the slots [`TimerKey`] names) and calls
//! you back with notifications; pick it only to fit an existing runtime.
//!
//! ## Example
//! Two members in one process, bytes shuttled by hand, on virtual time:
//!
//! ```
//! use core::time::Duration;
//! use foca_core::testing::{NoEnvelope, TestCodec};
//! use foca_core::{Command, Config, Endpoint, Event, Foca, GenerationalId, Notification};
//! use rand::{SeedableRng, rngs::Xoshiro128PlusPlus};
//!
//! let member = |addr: u32| {
//!     let foca = Foca::new(
//!         GenerationalId::new(addr, 1),
//!         Config::simple(),
//!         Xoshiro128PlusPlus::seed_from_u64(u64::from(addr)),
//!         TestCodec,
//!     )
//!     .unwrap();
//!     Endpoint::new(foca, NoEnvelope, Duration::ZERO).unwrap()
//! };
//! let (mut a, mut b) = (member(1), member(2));
//! let now = Duration::ZERO;
//!
//! // `a` knows only `b`'s address.
//! a.command(now, Command::Announce(GenerationalId::seed(2))).unwrap();
//! while let Some(mut t) = a.poll_transmit() {
//!     b.handle_datagram(now, 1, &mut t.data).unwrap();
//! }
//! while let Some(mut t) = b.poll_transmit() {
//!     a.handle_datagram(now, 2, &mut t.data).unwrap();
//! }
//! assert_eq!(a.foca().num_members(), 1);
//! assert_eq!(b.foca().num_members(), 1);
//! assert_eq!(
//!     b.poll_event(),
//!     Some(Event::Membership(Notification::MemberUp(GenerationalId::new(1, 1))))
//! );
//! ```
//!
//! ## Features
//! - `std`: `Clock`, the mapping from `std::time::Instant` to the core's
//!   time (every std driver needs it). Identities need no `std`:
//!   `core::net::SocketAddr` works without it.
//! - `serde`: `Serialize`/`Deserialize` for the wire types and `Config`.
//! - `sim`: the deterministic [`sim`] simulator (no_std + alloc too). It
//!   drives public [`Endpoint`]s only: the protocol built with it is the
//!   protocol built without it.
//! - `tracing`: protocol decisions as `tracing` events (membership changes,
//!   suspicions, refutations at DEBUG; dropped datagrams at TRACE). No_std.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
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

pub mod agent;
mod backlog;
mod broadcast;
#[cfg(feature = "std")]
mod clock;
mod codec;
mod config;
mod endpoint;
mod envelope;
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
pub mod wire;

pub use agent::{Agent, AgentError, AgentMetrics, Lagged, Request, Seed, Seeds};
pub use broadcast::{BroadcastHandler, BroadcastsDisabled, Invalidates, Never, NoCustomBroadcast};
#[cfg(feature = "std")]
pub use clock::Clock;
pub use codec::Codec;
pub use config::{
    Config, ConfigError, DEFAULT_AWARENESS_MAX, DEFAULT_INCARNATION_STEP, MAX_PACKET_SIZE,
    MIN_PACKET_SIZE, PeriodicParams,
};
pub use endpoint::{
    Command, Endpoint, Event, MAX_QUEUED_EVENTS, MAX_QUEUED_TRANSMITS, MAX_TIMERS_PER_CALL,
    SNAPSHOT_INTERVAL, Snapshot, Transmit,
};
pub use envelope::{Envelope, KeyedEnvelope, Opened, Refusal, Sequence};
pub use error::Error;
pub use foca::{
    AMPLIFICATION_FACTOR, ConnectionState, DEFAULT_FANOUT, Foca, JITTER_DIVISOR, LEAVE_FANOUT,
    MAX_FEEDS_PER_SOURCE, MAX_FLUSH_DATAGRAMS, MAX_SEEDS, MAX_VERDICTS_REMEMBERED, REPLAY_WINDOW,
};
pub use identity::{GenerationalId, Identity, SocketIdentity};
pub use member::{Incarnation, Member, State};
pub use message::{Header, Message, ProbeNumber};
pub use metrics::{DropCounts, Metrics};
pub use runtime::{MAX_CHAIN_TIMERS, Notification, Runtime, Timer, TimerKey, TimerToken};
pub use timer_queue::TimerQueue;
