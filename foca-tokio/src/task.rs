//! The agent task: one loop over the socket, the next wake-up and the
//! requests, around the core's sans-IO [`Agent`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use foca_codec::Envelope;
use foca_core::agent::look_up;
use foca_core::{
    Agent, BroadcastHandler, Codec, Event, Invalidates, Request, Snapshot, SocketIdentity,
};
use rand::rngs::SmallRng;
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tracing::{Instrument, info};

/// What a seed lookup found, and how many names failed.
type Found = (Vec<SocketAddr>, u64);

pub(crate) struct Task<T: SocketIdentity, C: Codec<T>, B: BroadcastHandler<T>> {
    pub(crate) agent: Agent<T, C, SmallRng, B, Envelope>,
    pub(crate) socket: UdpSocket,
    pub(crate) requests: mpsc::Receiver<Request<T, Envelope>>,
    pub(crate) snapshot: watch::Sender<Arc<Snapshot<T>>>,
    pub(crate) events: broadcast::Sender<Event<T>>,
    /// The instant the agent's time counts from.
    pub(crate) origin: Instant,
}

impl<T, C, B> Task<T, C, B>
where
    T: SocketIdentity + Send + Sync + 'static,
    C: Codec<T> + Send + 'static,
    B: BroadcastHandler<T> + Send + 'static,
    B::Broadcast: Send,
    <B::Broadcast as Invalidates>::Key: Send,
{
    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }

    pub(crate) async fn run(mut self) {
        info!(local_addr = ?self.socket.local_addr().ok(), "agent started");
        let (found_tx, mut found_rx) = mpsc::channel::<Found>(1);
        // Receive buffer: one byte more than the agent accepts, so that
        // larger datagrams are seen as such (and counted).
        let mut buf = Vec::new();
        let stopped_by = loop {
            self.flush();
            buf.resize(self.agent.endpoint().max_datagram() + 1, 0);
            let wake = self.agent.next_wake().map(|d| self.origin + d);
            let origin = self.origin;
            let now = || Instant::now().saturating_duration_since(origin);
            tokio::select! {
                biased;
                request = self.requests.recv() => match request {
                    None => break None,
                    Some(r) => if let Some(done) = self.agent.handle_request(now(), r) {
                        break Some(done);
                    },
                },
                Some((found, failed)) = found_rx.recv() => {
                    self.agent.looked_up(now(), found, failed);
                }
                received = self.socket.recv_from(&mut buf) => {
                    self.agent.received(now(), received, &mut buf);
                }
                _ = self.socket.writable(), if self.agent.is_blocked() => {}
                () = sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {}
            }
            // Due work runs after every event, so a steady stream of
            // datagrams cannot starve the timers.
            if wake.is_some_and(|w| w <= Instant::now())
                && let Some(hosts) = self.agent.handle_timeouts(self.now())
            {
                tokio::spawn(resolve(hosts, found_tx.clone()).in_current_span());
            }
        };
        self.agent.stop();
        info!("agent stopped");
        // Closed before confirming: the handles see the agent stopped
        // (`is_stopped`, on any thread), and the address can be reused.
        self.requests.close();
        drop(self.socket);
        if let Some(reply) = stopped_by {
            reply(Ok(()));
        }
    }

    /// Sends what the agent queued, fans out what it reported.
    fn flush(&mut self) {
        let (socket, events) = (&self.socket, &self.events);
        let send = |data: &[u8], to| socket.try_send_to(data, to);
        // No subscriber is not an error.
        let publish = |event| drop(events.send(event));
        if let Some(snapshot) = self.agent.flush(self.now(), send, publish) {
            self.snapshot.send_replace(Arc::new(snapshot));
        }
    }
}

/// Looks seed host names up, and reports what was found.
async fn resolve(hosts: Vec<String>, found: mpsc::Sender<Found>) {
    let lookup = |host: String| tokio::net::lookup_host(host);
    let _ = found.send(look_up(hosts, lookup).await).await;
}
