//! The agent task: one loop over the socket, the next wake-up, the seed
//! lookup and the requests, around the core's sans-IO [`Agent`]. Its IO
//! and its timer are `async-io`'s: any executor runs it.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use async_io::{Async, Timer};
use foca_codec::Envelope;
use foca_core::agent::look_up;
use foca_core::{Agent, BroadcastHandler, Clock, Codec, Event, Request, SocketIdentity};
use futures_lite::future::{or, pending};
use rand::rngs::SmallRng;
use tracing::info;

use crate::handle::Shared;

/// What a seed lookup found, and how many names failed.
type Found = (Vec<SocketAddr>, u64);
/// A seed lookup under way.
type Lookup = Pin<Box<dyn Future<Output = Found> + Send>>;

/// What woke the task.
enum Woke<T> {
    Request(Option<Request<T, Envelope>>),
    Found(Found),
    Received(io::Result<(usize, SocketAddr)>),
    /// The socket is writable, or a deadline passed.
    Ready,
}

pub(crate) struct Task<T: SocketIdentity, C: Codec<T>, B: BroadcastHandler<T>> {
    agent: Agent<T, C, SmallRng, B, Envelope>,
    socket: Arc<Async<UdpSocket>>,
    requests: async_channel::Receiver<Request<T, Envelope>>,
    shared: Arc<Shared<T>>,
    events: async_broadcast::Sender<Event<T>>,
    /// The agent's time.
    clock: Clock,
    /// Tells the handles when the task ends, even unpolled.
    stop: StopOnDrop<T>,
}

/// Marks the task stopped when it ends, however it ends (a task future
/// dropped, even before it was first polled, included).
struct StopOnDrop<T>(Arc<Shared<T>>);

impl<T> Drop for StopOnDrop<T> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

// The builder asks for `Send` and `'static`, where the task is boxed.
impl<T: SocketIdentity, C: Codec<T>, B: BroadcastHandler<T>> Task<T, C, B> {
    pub(crate) fn new(
        agent: Agent<T, C, SmallRng, B, Envelope>,
        socket: Arc<Async<UdpSocket>>,
        requests: async_channel::Receiver<Request<T, Envelope>>,
        shared: Arc<Shared<T>>,
        events: async_broadcast::Sender<Event<T>>,
    ) -> Self {
        Self {
            agent,
            socket,
            requests,
            stop: StopOnDrop(Arc::clone(&shared)),
            shared,
            events,
            clock: Clock::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        info!(local_addr = ?self.socket.get_ref().local_addr().ok(), "agent started");
        let mut lookup: Option<Lookup> = None;
        // Receive buffer: one byte more than the agent accepts, so that
        // larger datagrams are seen as such (and counted).
        let mut buf = Vec::new();
        let stopped_by = loop {
            self.flush();
            buf.resize(self.agent.endpoint().max_datagram() + 1, 0);
            let wake = self.agent.next_wake().map(|d| self.clock.to_instant(d));
            let blocked = self.agent.is_blocked();
            let (requests, socket) = (&self.requests, &self.socket);
            let woke = wait(requests, socket, blocked, wake, &mut lookup, &mut buf).await;
            let now = self.clock.now();
            match woke {
                Woke::Request(None) => break None,
                Woke::Request(Some(r)) => {
                    if let Some(done) = self.agent.handle_request(now, r) {
                        break Some(done);
                    }
                }
                Woke::Found((found, failed)) => {
                    lookup = None;
                    self.agent.looked_up(now, found, failed);
                }
                Woke::Received(received) => self.agent.received(now, received, &mut buf),
                Woke::Ready => {}
            }
            // Due work runs after every event, so a steady stream of
            // datagrams cannot starve the timers.
            if wake.is_some_and(|w| w <= Instant::now())
                && let Some(hosts) = self.agent.handle_timeouts(self.clock.now())
            {
                lookup = Some(Box::pin(look_up(hosts, async_net::resolve)));
            }
        };
        self.agent.stop();
        info!("agent stopped");
        // Closed before confirming: the handles see the agent stopped, and
        // the address can be reused.
        self.requests.close();
        drop(self.socket);
        drop(self.stop);
        if let Some(reply) = stopped_by {
            reply(Ok(()));
        }
    }

    /// Sends what the agent queued, fans out what it reported.
    fn flush(&mut self) {
        let (socket, events) = (self.socket.get_ref(), &self.events);
        // The socket does not block (`Async` made it so): a full buffer is
        // a `WouldBlock` error, and the datagram waits for `writable`.
        let send = |data: &[u8], to| socket.send_to(data, to);
        // No subscriber is not an error; a full buffer drops the oldest.
        let publish = |event| drop(events.try_broadcast(event));
        if let Some(snapshot) = self.agent.flush(self.clock.now(), send, publish) {
            self.shared.publish(snapshot);
        }
    }
}

/// Waits for the first of: a request, the end of a seed lookup, a
/// datagram, room in the socket (when a datagram waits for it), the
/// next deadline. In that order when several are ready.
async fn wait<T>(
    requests: &async_channel::Receiver<Request<T, Envelope>>,
    socket: &Async<UdpSocket>,
    blocked: bool,
    wake: Option<Instant>,
    lookup: &mut Option<Lookup>,
    buf: &mut [u8],
) -> Woke<T> {
    let request = async { Woke::Request(requests.recv().await.ok()) };
    let found = async {
        match lookup {
            Some(l) => Woke::Found(l.await),
            None => pending().await,
        }
    };
    let received = async { Woke::Received(socket.recv_from(buf).await) };
    let writable = async {
        if !blocked {
            pending::<()>().await;
        }
        // An error shows again on the next send, where it is counted.
        let _ = socket.writable().await;
        Woke::Ready
    };
    let timer = async {
        match wake {
            Some(at) => Timer::at(at).await,
            None => pending().await,
        };
        Woke::Ready
    };
    or(request, or(found, or(received, or(writable, timer)))).await
}
