//! The runner: one loop over the socket, the next wake-up and the
//! requests, around the core's sans-IO [`Agent`]. The application spawns
//! [`Runner::run`] on its executor.

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::future::{pending, poll_fn};
use core::net::SocketAddr;
use core::task::Poll;
use core::time::Duration;

use embassy_futures::select::{Either4, select, select4};
use embassy_net::IpEndpoint;
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_time::{Instant, Timer};
use foca_codec::Envelope;
use foca_core::{Agent, BroadcastHandler, Codec, NoCustomBroadcast, SocketIdentity};
use rand::rngs::Xoshiro128PlusPlus;

use crate::handle::Shared;

/// The UDP socket's buffers, owned by the application (in a `static` or
/// in the task that runs the agent): `PACKETS` datagrams and `BYTES`
/// bytes of payload each way. RAM:
/// `2 × (PACKETS × size_of::<PacketMetadata>() + BYTES)`, with
/// `PacketMetadata` 16 bytes on thumbv7em (IPv4 only): 8,320 bytes for
/// `SocketBuffers<4, 4096>`.
/// `BYTES` should hold at least a few datagrams of the config's
/// `max_packet_size` plus the envelope's overhead; a datagram that does
/// not fit is dropped (on receive) or counted as a send error.
pub struct SocketBuffers<const PACKETS: usize, const BYTES: usize> {
    rx_meta: [PacketMetadata; PACKETS],
    rx: [u8; BYTES],
    tx_meta: [PacketMetadata; PACKETS],
    tx: [u8; BYTES],
}

impl<const PACKETS: usize, const BYTES: usize> SocketBuffers<PACKETS, BYTES> {
    /// Empty buffers (`const`, for a `static`).
    pub const fn new() -> Self {
        Self {
            rx_meta: [PacketMetadata::EMPTY; PACKETS],
            rx: [0; BYTES],
            tx_meta: [PacketMetadata::EMPTY; PACKETS],
            tx: [0; BYTES],
        }
    }

    /// A socket on `stack` over these buffers.
    pub(crate) fn socket<'a>(&'a mut self, stack: embassy_net::Stack<'a>) -> UdpSocket<'a> {
        UdpSocket::new(
            stack,
            &mut self.rx_meta,
            &mut self.rx,
            &mut self.tx_meta,
            &mut self.tx,
        )
    }
}

impl<const PACKETS: usize, const BYTES: usize> Default for SocketBuffers<PACKETS, BYTES> {
    fn default() -> Self {
        Self::new()
    }
}

/// The agent's loop, to spawn on the application's executor (embassy's
/// task functions cannot be generic: wrap `run` in a task for your
/// concrete types). It returns when the agent stops: after
/// [`shutdown`](foca_core::agent::Handle::shutdown), or once every handle
/// is dropped. Dropping it unfinished stops the agent too.
pub struct Runner<'a, T, C, B = NoCustomBroadcast>
where
    T: SocketIdentity + Clone,
    C: Codec<T>,
    B: BroadcastHandler<T>,
{
    pub(crate) agent: Agent<T, C, Xoshiro128PlusPlus, B, Envelope>,
    pub(crate) socket: UdpSocket<'a>,
    pub(crate) shared: StopOnDrop<T>,
    /// The instant the agent's time counts from.
    pub(crate) origin: Instant,
}

/// Marks the agent stopped when the runner ends, however it ends.
pub(crate) struct StopOnDrop<T: Clone>(pub(crate) Arc<Shared<T>>);

impl<T: Clone> Drop for StopOnDrop<T> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

fn since(origin: Instant) -> Duration {
    Duration::from_micros(Instant::now().saturating_duration_since(origin).as_micros())
}

impl<T, C, B> Runner<'_, T, C, B>
where
    T: SocketIdentity + Clone,
    C: Codec<T>,
    B: BroadcastHandler<T>,
{
    /// Runs the agent until it stops.
    pub async fn run(mut self) {
        crate::log!("foca agent started");
        // One byte more than the agent accepts, so larger datagrams are
        // seen as such (and counted).
        let mut buf = Vec::new();
        let stopped_by = loop {
            self.flush().await;
            buf.resize(self.agent.endpoint().max_datagram() + 1, 0);
            let origin = self.origin;
            let wake = self.agent.next_wake().map(|d| origin + to_embassy(d));
            let shared = &self.shared.0;
            let timer = Timer::at(wake.unwrap_or(Instant::MAX));
            let blocked = self.agent.is_blocked();
            let writable = async {
                match blocked {
                    true => self.socket.wait_send_ready().await,
                    false => pending().await,
                }
            };
            let orphaned = poll_fn(|cx| shared.poll_orphaned(cx));
            let received = self.socket.recv_from(&mut buf);
            let woke = select4(
                shared.requests.receive(),
                received,
                orphaned,
                select(timer, writable),
            );
            match woke.await {
                Either4::First(request) => {
                    if let Some(done) = self.agent.handle_request(since(origin), request) {
                        break Some(done);
                    }
                }
                Either4::Second(Ok((len, meta))) => match buf.get_mut(..len) {
                    Some(datagram) => {
                        let from = SocketAddr::from(meta.endpoint);
                        self.agent.handle_datagram(since(origin), from, datagram);
                    }
                    None => self.agent.recv_error(),
                },
                // Truncated: larger than the buffer, so larger than accepted.
                Either4::Second(Err(_)) => self.agent.recv_error(),
                Either4::Third(()) => break None,
                // A deadline, or room in the socket.
                Either4::Fourth(_) => {}
            }
            // Due work runs after every event, so a steady stream of
            // datagrams cannot starve the timers.
            if wake.is_some_and(|w| w <= Instant::now())
                && let Some(hosts) = self.agent.handle_timeouts(since(origin))
            {
                // No resolver here: host-name seeds count as failures.
                let now = since(origin);
                self.agent.looked_up(now, vec![], hosts.len() as u64);
            }
        };
        self.agent.stop();
        crate::log!("foca agent stopped");
        self.shared.0.stop();
        self.socket.close();
        if let Some(reply) = stopped_by {
            reply(Ok(()));
        }
    }

    /// Sends what the agent queued, fans out what it reported.
    async fn flush(&mut self) {
        while let Some(t) = self.agent.poll_transmit() {
            let to = match t.to {
                SocketAddr::V4(v4) => IpEndpoint::from(v4),
                // IPv4 only (embassy-net's `proto-ipv4`): a send error.
                SocketAddr::V6(_) => {
                    self.agent.sent(t.data, None);
                    continue;
                }
            };
            let sent = poll_fn(|cx| Poll::Ready(self.socket.poll_send_to(&t.data, to, cx))).await;
            match sent {
                Poll::Ready(Ok(())) => {
                    let len = t.data.len();
                    self.agent.sent(t.data, Some(len));
                }
                Poll::Ready(Err(_)) => self.agent.sent(t.data, None),
                Poll::Pending => {
                    self.agent.would_block(t);
                    break;
                }
            }
        }
        while let Some(event) = self.agent.poll_event() {
            #[cfg(feature = "defmt")]
            if let foca_core::Event::Membership(n) = &event {
                defmt::info!("foca membership: {}", defmt::Debug2Format(n));
            }
            self.shared.0.publish_event(event);
        }
        if let Some(snapshot) = self.agent.poll_snapshot(since(self.origin)) {
            self.shared.0.publish_snapshot(snapshot);
        }
    }
}

/// The core's time as embassy's (microseconds, saturating).
fn to_embassy(d: Duration) -> embassy_time::Duration {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2);
    embassy_time::Duration::from_micros(micros)
}
