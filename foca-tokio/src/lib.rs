//! The tokio driver for foca: one task that owns a UDP socket, the protocol
//! core's [`Endpoint`](foca_core::Endpoint) and the packet
//! [`Envelope`](foca_codec::Envelope), and a cloneable [`Handle`] to talk to
//! it.
//!
//! The driver does input and output only: it feeds received datagrams and
//! due deadlines to the endpoint, seals and sends what it queues, and
//! publishes what it notices. Every protocol decision, and the ordering of
//! timers, is the core's (the classic failure of hand-wired timer tasks,
//! timers that fire out of order, cannot happen here).
//!
//! What a [`Handle`] offers:
//! - [`snapshot`](Handle::snapshot) / [`members`](Handle::members): the
//!   current member list, a shared snapshot that is cheap to read, and
//!   [`wait_for`](Handle::wait_for) a condition on it;
//! - [`subscribe`](Handle::subscribe): every membership [`Event`] and every
//!   custom broadcast accepted from a peer; a subscriber that falls behind is
//!   told how many events it missed ([`Lagged`]);
//! - [`add_broadcast`](Handle::add_broadcast), [`announce`](Handle::announce),
//!   [`rejoin`](Handle::rejoin), [`set_config`](Handle::set_config),
//!   [`metrics`](Handle::metrics), [`leave`](Handle::leave) and
//!   [`shutdown`](Handle::shutdown).
//!
//! Seeds are addresses or `host:port` names ([`Seed`]); names are resolved
//! at start and again every 10 s while the member is alone. Socket errors
//! are counted ([`AgentMetrics`]) and survived; a datagram larger than the
//! configured limit (`max_packet_size` plus the envelope's overhead) is
//! dropped and counted. The task runs inside a tracing span `foca` that
//! carries the member's identity.
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use std::time::Duration;
//! use foca_codec::PostcardCodec;
//! use foca_core::{Config, GenerationalId};
//! use foca_tokio::{Builder, Event};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let addr: SocketAddr = "127.0.0.1:7001".parse()?;
//! let agent = Builder::new(GenerationalId::new(addr, 1), Config::new_lan(8), PostcardCodec::new())
//!     .seeds(["127.0.0.1:7000"])
//!     .bind(addr)
//!     .await?;
//! let mut events = agent.subscribe();
//! while let Some(event) = events.recv().await {
//!     match event {
//!         Ok(Event::Membership(n)) => println!("{n:?}"),
//!         Ok(Event::Broadcast { item, from }) => println!("{from:?} sent {item:?}"),
//!         Err(lagged) => eprintln!("{lagged}"),
//!     }
//! }
//! agent.leave(Duration::from_secs(1)).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod builder;
mod handle;
mod tap;
mod task;

pub use builder::{Builder, DEFAULT_EVENT_CAPACITY, DEFAULT_LABEL, Seed};
pub use handle::{AgentError, AgentMetrics, Event, Handle, Lagged, Snapshot, Subscription};
