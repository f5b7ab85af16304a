//! The channels between a handle and its agent task, on runtime-neutral
//! primitives, and what a handle hands out.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_broadcast::{InactiveReceiver, RecvError, TryRecvError};
use event_listener::EventListener;
use foca_codec::{Envelope, Rejections};
use foca_core::agent::{Link, Reply};
use foca_core::{AgentError, Event, Lagged, Request, Snapshot};
use futures_lite::Stream;

/// Counters of an agent: the endpoint's, the envelope's refusals by exact
/// reason, and the socket's (see [`foca_core::AgentMetrics`]).
pub type AgentMetrics = foca_core::AgentMetrics<Rejections>;

/// A handle to a running agent: cheap to clone, every clone talks to the
/// same agent; dropping the last one stops it (without leaving). Its
/// methods are foca-core's [`Handle`](foca_core::agent::Handle), the same
/// on every runtime; [`watch`](foca_core::agent::Handle::watch) gives a
/// [`Watcher`].
pub type Handle<T> = foca_core::agent::Handle<Channels<T>>;

/// What the task shares with its handles: the latest snapshot, and the
/// notice that it changed or that the task stopped.
pub(crate) struct Shared<T> {
    snapshot: Mutex<Arc<Snapshot<T>>>,
    published: event_listener::Event,
    stopped: AtomicBool,
}

impl<T> Shared<T> {
    pub(crate) fn new(snapshot: Snapshot<T>) -> Self {
        Self {
            snapshot: Mutex::new(Arc::new(snapshot)),
            published: event_listener::Event::new(),
            stopped: AtomicBool::new(false),
        }
    }

    fn latest(&self) -> Arc<Snapshot<T>> {
        let s = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&s)
    }

    pub(crate) fn publish(&self, snapshot: Snapshot<T>) {
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
        self.published.notify(usize::MAX);
    }

    /// The task has stopped: every watcher wakes (and sees it).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.published.notify(usize::MAX);
    }
}

/// The channels between a [`Handle`] and its agent task.
pub struct Channels<T> {
    pub(crate) requests: async_channel::Sender<Request<T, Envelope>>,
    pub(crate) shared: Arc<Shared<T>>,
    pub(crate) events: InactiveReceiver<Event<T>>,
}

impl<T> Clone for Channels<T> {
    fn clone(&self) -> Self {
        Self {
            requests: self.requests.clone(),
            shared: Arc::clone(&self.shared),
            events: self.events.clone(),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Link for Channels<T> {
    type Id = T;
    type Envelope = Envelope;
    type Subscription = Subscription<T>;
    type Watcher = Watcher<T>;

    async fn send(&self, request: Request<T, Envelope>) -> Result<(), AgentError> {
        let sent = self.requests.send(request).await;
        sent.map_err(|_| AgentError::Stopped)
    }

    fn reply<X: Send + 'static>() -> (
        Reply<X>,
        impl Future<Output = Option<Result<X, AgentError>>> + Send,
    ) {
        let (tx, rx) = async_channel::bounded(1);
        let reply: Reply<X> = Box::new(move |r| drop(tx.try_send(r)));
        (reply, async move { rx.recv().await.ok() })
    }

    fn snapshot(&self) -> Arc<Snapshot<T>> {
        self.shared.latest()
    }

    fn watcher(&self) -> Watcher<T> {
        Watcher {
            listener: self.shared.published.listen(),
            shared: Arc::clone(&self.shared),
        }
    }

    async fn changed(watcher: &mut Watcher<T>) -> bool {
        watcher.changed().await.is_ok()
    }

    fn subscribe(&self) -> Subscription<T> {
        Subscription {
            rx: self.events.activate_cloned(),
        }
    }

    fn is_stopped(&self) -> bool {
        self.requests.is_closed()
    }

    async fn stopped(&self) {
        let mut watcher = self.watcher();
        while watcher.changed().await.is_ok() {}
    }
}

/// Wakes whenever a new snapshot is published (from
/// [`Handle::watch`](foca_core::agent::Handle::watch)); read it with
/// [`Handle::snapshot`](foca_core::agent::Handle::snapshot).
pub struct Watcher<T> {
    shared: Arc<Shared<T>>,
    listener: EventListener,
}

impl<T> Watcher<T> {
    /// Waits for a snapshot published since this watcher was made or last
    /// returned; `Err(Stopped)` once the agent has stopped.
    pub async fn changed(&mut self) -> Result<(), AgentError> {
        if !self.shared.stopped.load(Ordering::SeqCst) {
            (&mut self.listener).await;
            // Listening again before the caller reads the snapshot: what
            // is published after that read wakes the next call.
            self.listener = self.shared.published.listen();
        }
        match self.shared.stopped.load(Ordering::SeqCst) {
            true => Err(AgentError::Stopped),
            false => Ok(()),
        }
    }
}

impl<T> fmt::Debug for Watcher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

/// A subscription to an agent's [`Event`]s.
pub struct Subscription<T> {
    rx: async_broadcast::Receiver<Event<T>>,
}

impl<T: Clone + Send + 'static> Subscription<T> {
    /// The next event; `Err(Lagged(n))` once after missing `n` events, and
    /// `None` when the agent has stopped and every event was read.
    pub async fn recv(&mut self) -> Option<Result<Event<T>, Lagged>> {
        match self.rx.recv_direct().await {
            Ok(e) => Some(Ok(e)),
            Err(RecvError::Overflowed(n)) => Some(Err(Lagged(n))),
            Err(RecvError::Closed) => None,
        }
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Result<Event<T>, Lagged>> {
        match self.rx.try_recv() {
            Ok(e) => Some(Ok(e)),
            Err(TryRecvError::Overflowed(n)) => Some(Err(Lagged(n))),
            Err(_) => None,
        }
    }

    /// The subscription as a [`Stream`].
    pub fn into_stream(self) -> impl Stream<Item = Result<Event<T>, Lagged>> + Send + Unpin
    where
        T: Sync,
    {
        let next = |mut s: Self| async move { Some((s.recv().await?, s)) };
        Box::pin(futures_lite::stream::unfold(self, next))
    }
}

impl<T> fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("pending", &self.rx.len())
            .finish()
    }
}
