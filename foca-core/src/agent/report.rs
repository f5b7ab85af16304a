//! What an agent reports: its counters, lag notices, errors.

use core::fmt;

use crate::Metrics;

/// Counters of an agent: the endpoint's ([`Metrics`]), the envelope's
/// refusals by exact reason (`R`: `foca_codec::Rejections` for the drivers
/// here), and the socket's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentMetrics<R> {
    /// What the protocol and its endpoint did and dropped; refusals by the
    /// envelope are counted there by class.
    pub protocol: Metrics,
    /// Datagrams the envelope refused, by exact reason.
    pub rejections: R,
    /// Datagrams received from the socket (accepted or not).
    pub datagrams_received: u64,
    /// Bytes received from the socket.
    pub bytes_received: u64,
    /// Datagrams handed to the socket.
    pub datagrams_sent: u64,
    /// Bytes handed to the socket.
    pub bytes_sent: u64,
    /// Receive errors survived (an ICMP unreachable reported by the OS, ...).
    pub recv_errors: u64,
    /// Send errors survived (unreachable network, refused, ...). A socket
    /// that stays unwritable leaves datagrams in the endpoint's bounded
    /// queue: those it drops are [`Metrics::dropped_transmits`].
    pub send_errors: u64,
    /// Seed host names that failed to resolve.
    pub dns_failures: u64,
    /// Events published to subscribers.
    pub events_published: u64,
}

/// A subscriber fell behind: this many events were overwritten before it
/// read them. The subscription goes on with the oldest event still kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lagged(pub u64);

impl fmt::Display for Lagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "this subscriber missed {} events; read faster or raise the agent's event capacity",
            self.0
        )
    }
}

impl core::error::Error for Lagged {}

/// Errors from an agent and its handle (every driver's).
#[derive(Debug)]
#[non_exhaustive]
pub enum AgentError {
    /// Binding or configuring the socket failed.
    #[cfg(feature = "std")]
    Io(std::io::Error),
    /// The protocol core refused the call (see its message).
    Core(crate::Error),
    /// The envelope refused a key change (a `foca_codec::KeyringError`,
    /// or a plain envelope asked to change keys).
    Keys(alloc::boxed::Box<dyn core::error::Error + Send + Sync>),
    /// A rejoin needs seeds: give them to the builder, or announce to an
    /// address.
    NoSeeds,
    /// The agent has stopped (shut down, or every handle was dropped).
    Stopped,
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "std")]
            AgentError::Io(e) => write!(f, "socket error: {e}"),
            AgentError::Core(e) => e.fmt(f),
            AgentError::Keys(e) => e.fmt(f),
            AgentError::NoSeeds => f.write_str(
                "this agent has no seeds to rejoin through: give the builder seeds, or announce to an address",
            ),
            AgentError::Stopped => f.write_str("the agent has stopped"),
        }
    }
}

impl core::error::Error for AgentError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            #[cfg(feature = "std")]
            AgentError::Io(e) => Some(e),
            AgentError::Core(e) => Some(e),
            AgentError::Keys(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl From<crate::Error> for AgentError {
    fn from(e: crate::Error) -> Self {
        AgentError::Core(e)
    }
}

#[cfg(feature = "std")]
impl From<std::io::Error> for AgentError {
    fn from(e: std::io::Error) -> Self {
        AgentError::Io(e)
    }
}
