//! The tokio driver for foca: one task that moves bytes and time for the
//! protocol core's [`Endpoint`](foca_core::Endpoint) (a UDP socket, a sleep
//! until the next deadline, a command channel, an event fan-out), and a
//! cloneable [`Handle`] to talk to it.
//!
//! The driver decides nothing about the protocol: the endpoint seals and
//! opens datagrams, orders timers, and says what to send where; the task
//! feeds it and publishes what it reports.
//!
//! What a [`Handle`] offers:
//! - [`snapshot`](Handle::snapshot) / [`members`](Handle::members): the
//!   current member list, a shared snapshot that is cheap to read (changes
//!   are published at most every 100 ms, coalesced), and
//!   [`wait_for`](Handle::wait_for) a condition on it;
//! - [`subscribe`](Handle::subscribe): every membership [`Event`] and every
//!   custom broadcast accepted from a peer; a subscriber that falls behind is
//!   told how many events it missed ([`Lagged`]);
//! - [`add_broadcast`](Handle::add_broadcast), [`announce`](Handle::announce),
//!   [`rejoin`](Handle::rejoin), [`restore`](Handle::restore) (a saved
//!   member table), [`set_config`](Handle::set_config),
//!   [`metrics`](Handle::metrics), [`leave`](Handle::leave) and
//!   [`shutdown`](Handle::shutdown).
//!
//! Seeds are addresses or `host:port` names ([`Seed`]); names are resolved
//! at start and again every 10 s while the member is alone. Socket errors
//! are counted ([`AgentMetrics`]) and survived. The task runs inside a
//! tracing span `foca` that carries the member's identity.
//!
//! Every datagram goes in the envelope given to [`Builder::new`]: sealed
//! with the cluster's keys (`Envelope::encrypted`, feature `encryption`),
//! or plain by a choice that says so (`Envelope::insecure_plaintext`).
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use std::time::Duration;
//! use foca_codec::{Envelope, PostcardCodec};
//! use foca_core::{Config, GenerationalId};
//! use foca_tokio::{Builder, Event};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let addr: SocketAddr = "127.0.0.1:7001".parse()?;
//! // A trusted network; see `Envelope::encrypted` for anything else.
//! let envelope = Envelope::insecure_plaintext(b"my-cluster");
//! let id = GenerationalId::new(addr, 1);
//! let agent = Builder::new(id, Config::new_lan(8), PostcardCodec::new(), envelope)
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
#![deny(missing_docs)]

mod builder;
mod handle;
mod task;

pub use builder::{Builder, DEFAULT_EVENT_CAPACITY};
pub use foca_core::{AgentError, Event, Lagged, Seed, Snapshot};
pub use handle::{AgentMetrics, Channels, Handle, Subscription};
