//! The cloneable handle to a running agent, and what it hands out.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use foca_codec::{Envelope, Rejections};
use foca_core::agent::{Link, Reply};
use foca_core::{AgentError, Event, Lagged, Request, Snapshot};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::{Stream, StreamExt};

/// Counters of an agent: the endpoint's, the envelope's refusals by exact
/// reason, and the socket's (see [`foca_core::AgentMetrics`]).
pub type AgentMetrics = foca_core::AgentMetrics<Rejections>;

/// A handle to a running agent: cheap to clone, every clone talks to the
/// same agent; dropping the last one stops it (without leaving). Its
/// methods are foca-core's [`Handle`](foca_core::agent::Handle), the same
/// on every runtime; [`watch`](foca_core::agent::Handle::watch) gives a
/// tokio `watch::Receiver` of the snapshots.
pub type Handle<T> = foca_core::agent::Handle<Channels<T>>;

/// The tokio channels between a [`Handle`] and its agent task.
pub struct Channels<T> {
    pub(crate) requests: mpsc::Sender<Request<T, Envelope>>,
    pub(crate) snapshot: watch::Receiver<Arc<Snapshot<T>>>,
    /// Weak, so that subscriptions end when the agent stops.
    pub(crate) events: broadcast::WeakSender<Event<T>>,
}

impl<T> Clone for Channels<T> {
    fn clone(&self) -> Self {
        Self {
            requests: self.requests.clone(),
            snapshot: self.snapshot.clone(),
            events: self.events.clone(),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Link for Channels<T> {
    type Id = T;
    type Envelope = Envelope;
    type Subscription = Subscription<T>;
    type Watcher = watch::Receiver<Arc<Snapshot<T>>>;

    async fn send(&self, request: Request<T, Envelope>) -> Result<(), AgentError> {
        let sent = self.requests.send(request).await;
        sent.map_err(|_| AgentError::Stopped)
    }

    fn reply<X: Send + 'static>() -> (
        Reply<X>,
        impl Future<Output = Option<Result<X, AgentError>>> + Send,
    ) {
        let (tx, rx) = oneshot::channel();
        let reply: Reply<X> = Box::new(move |r| drop(tx.send(r)));
        (reply, async move { rx.await.ok() })
    }

    fn snapshot(&self) -> Arc<Snapshot<T>> {
        Arc::clone(&self.snapshot.borrow())
    }

    fn watcher(&self) -> Self::Watcher {
        let mut rx = self.snapshot.clone();
        rx.mark_unchanged();
        rx
    }

    async fn changed(watcher: &mut Self::Watcher) -> bool {
        watcher.changed().await.is_ok()
    }

    fn subscribe(&self) -> Subscription<T> {
        let rx = match self.events.upgrade() {
            Some(tx) => tx.subscribe(),
            // Stopped: a subscription that ends at once.
            None => broadcast::channel(1).1,
        };
        Subscription { rx }
    }

    fn is_stopped(&self) -> bool {
        self.requests.is_closed()
    }

    async fn stopped(&self) {
        self.requests.closed().await;
    }
}

/// A subscription to an agent's [`Event`]s.
pub struct Subscription<T> {
    rx: broadcast::Receiver<Event<T>>,
}

impl<T: Clone + Send + 'static> Subscription<T> {
    /// The next event; `Err(Lagged(n))` once after missing `n` events, and
    /// `None` when the agent has stopped and every event was read.
    pub async fn recv(&mut self) -> Option<Result<Event<T>, Lagged>> {
        match self.rx.recv().await {
            Ok(e) => Some(Ok(e)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(Err(Lagged(n))),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Result<Event<T>, Lagged>> {
        match self.rx.try_recv() {
            Ok(e) => Some(Ok(e)),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Some(Err(Lagged(n))),
            Err(_) => None,
        }
    }

    /// The subscription as a [`Stream`].
    pub fn into_stream(self) -> impl Stream<Item = Result<Event<T>, Lagged>> + Send + Unpin
    where
        T: Sync,
    {
        BroadcastStream::new(self.rx)
            .map(|r| r.map_err(|BroadcastStreamRecvError::Lagged(n)| Lagged(n)))
    }
}

impl<T> fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("pending", &self.rx.len())
            .finish()
    }
}
