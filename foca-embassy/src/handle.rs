//! The cloneable handle to a running agent, on embassy-sync primitives: a
//! request [`Channel`], one [`Signal`] per reply, and a snapshot and an
//! event ring behind a critical-section mutex with waker registrations.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::cell::RefCell;
use core::fmt;
use core::future::{Future, poll_fn};
use core::task::{Context, Poll};

use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use embassy_sync::signal::Signal;
use embassy_sync::waitqueue::{MultiWakerRegistration, WakerRegistration};
use foca_codec::{Envelope, Rejections};
use foca_core::agent::{Link, Reply};
use foca_core::{AgentError, Event, Lagged, Request, Snapshot};

/// Requests waiting for the runner (each a few words: see the crate docs).
pub const REQUEST_CAPACITY: usize = 4;
/// Tasks waiting on a handle (for a snapshot, an event or the stop) that
/// are woken one by one; more still work, woken all at once.
const WAKERS: usize = 8;

/// Counters of an agent: the endpoint's, the envelope's refusals by exact
/// reason, and the socket's (see [`foca_core::AgentMetrics`]).
pub type AgentMetrics = foca_core::AgentMetrics<Rejections>;

/// A handle to a running agent: cheap to clone, every clone talks to the
/// same agent; dropping the last one stops it (without leaving). Its
/// methods are foca-core's [`Handle`](foca_core::agent::Handle), the same
/// on every runtime; [`watch`](foca_core::agent::Handle::watch) gives a
/// [`Watcher`] of the snapshots.
pub type Handle<T> = foca_core::agent::Handle<Channels<T>>;

/// What the handles and the runner share.
pub(crate) struct Shared<T> {
    pub(crate) requests: Channel<CriticalSectionRawMutex, Request<T, Envelope>, REQUEST_CAPACITY>,
    state: Mutex<CriticalSectionRawMutex, RefCell<State<T>>>,
}

struct State<T> {
    snapshot: Arc<Snapshot<T>>,
    /// Snapshots published so far.
    version: u64,
    /// The last `capacity` events, the first numbered `first`.
    events: VecDeque<Event<T>>,
    first: u64,
    capacity: usize,
    subscribers: usize,
    handles: usize,
    stopped: bool,
    /// Whoever waits for any of the above: woken by any change.
    waiters: MultiWakerRegistration<WAKERS>,
    runner: WakerRegistration,
}

impl<T: Clone> Shared<T> {
    pub(crate) fn new(snapshot: Snapshot<T>, capacity: usize) -> Self {
        let state = State {
            snapshot: Arc::new(snapshot),
            version: 0,
            events: VecDeque::new(),
            first: 0,
            capacity,
            subscribers: 0,
            handles: 0,
            stopped: false,
            waiters: MultiWakerRegistration::new(),
            runner: WakerRegistration::new(),
        };
        Self {
            requests: Channel::new(),
            state: Mutex::new(RefCell::new(state)),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State<T>) -> R) -> R {
        self.state.lock(|s| f(&mut s.borrow_mut()))
    }

    pub(crate) fn publish_snapshot(&self, snapshot: Snapshot<T>) {
        self.with(|s| {
            s.snapshot = Arc::new(snapshot);
            s.version += 1;
            s.waiters.wake();
        });
    }

    /// Keeps `event` for the subscribers (dropped when there is none).
    pub(crate) fn publish_event(&self, event: Event<T>) {
        self.with(|s| {
            if s.subscribers == 0 {
                s.first += s.events.len() as u64 + 1;
                s.events.clear();
                return;
            }
            if s.events.len() >= s.capacity {
                s.events.pop_front();
                s.first += 1;
            }
            s.events.push_back(event);
            s.waiters.wake();
        });
    }

    /// Ready once no handle is left.
    pub(crate) fn poll_orphaned(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.with(|s| {
            if s.handles == 0 {
                return Poll::Ready(());
            }
            s.runner.register(cx.waker());
            Poll::Pending
        })
    }

    /// The runner has stopped: every wait ends, queued requests are
    /// dropped (their replies say `Stopped`).
    pub(crate) fn stop(&self) {
        self.with(|s| {
            s.stopped = true;
            s.waiters.wake();
        });
        while self.requests.try_receive().is_ok() {}
    }

    fn is_stopped(&self) -> bool {
        self.with(|s| s.stopped)
    }
}

/// The embassy-sync channels between a [`Handle`] and its runner.
pub struct Channels<T: Clone> {
    shared: Arc<Shared<T>>,
}

impl<T: Clone> Channels<T> {
    pub(crate) fn new(shared: Arc<Shared<T>>) -> Self {
        shared.with(|s| s.handles += 1);
        Self { shared }
    }
}

impl<T: Clone> Clone for Channels<T> {
    fn clone(&self) -> Self {
        Self::new(Arc::clone(&self.shared))
    }
}

impl<T: Clone> Drop for Channels<T> {
    fn drop(&mut self) {
        self.shared.with(|s| {
            s.handles -= 1;
            if s.handles == 0 {
                s.runner.wake();
            }
        });
    }
}

/// Wakes when a new snapshot is published (see
/// [`Handle::watch`](foca_core::agent::Handle::watch)).
pub struct Watcher<T: Clone> {
    shared: Arc<Shared<T>>,
    seen: u64,
}

impl<T: Clone> Watcher<T> {
    /// Waits until a snapshot is published after the last one seen:
    /// `false` if the agent stopped instead.
    pub async fn changed(&mut self) -> bool {
        poll_fn(|cx| {
            self.shared.with(|s| {
                if s.version > self.seen {
                    self.seen = s.version;
                    Poll::Ready(true)
                } else if s.stopped {
                    Poll::Ready(false)
                } else {
                    s.waiters.register(cx.waker());
                    Poll::Pending
                }
            })
        })
        .await
    }
}

/// Answers one request: `None` if dropped unanswered (the runner stopped).
struct Replier<X: Send> {
    slot: Arc<Signal<CriticalSectionRawMutex, Option<Result<X, AgentError>>>>,
    answered: bool,
}

impl<X: Send> Drop for Replier<X> {
    fn drop(&mut self) {
        if !self.answered {
            self.slot.signal(None);
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Link for Channels<T> {
    type Id = T;
    type Envelope = Envelope;
    type Subscription = Subscription<T>;
    type Watcher = Watcher<T>;

    async fn send(&self, request: Request<T, Envelope>) -> Result<(), AgentError> {
        if self.shared.is_stopped() {
            return Err(AgentError::Stopped);
        }
        let send = self.shared.requests.send(request);
        match select(send, self.stopped()).await {
            // Stopped while it went in: it is dropped, so the reply says so.
            Either::First(()) if self.shared.is_stopped() => self.shared.stop(),
            Either::First(()) => {}
            Either::Second(()) => return Err(AgentError::Stopped),
        }
        Ok(())
    }

    fn reply<X: Send + 'static>() -> (
        Reply<X>,
        impl Future<Output = Option<Result<X, AgentError>>> + Send,
    ) {
        let slot = Arc::new(Signal::new());
        let mut replier = Replier {
            slot: Arc::clone(&slot),
            answered: false,
        };
        let reply: Reply<X> = Box::new(move |r| {
            replier.answered = true;
            replier.slot.signal(Some(r));
        });
        (reply, async move { slot.wait().await })
    }

    fn snapshot(&self) -> Arc<Snapshot<T>> {
        self.shared.with(|s| Arc::clone(&s.snapshot))
    }

    fn watcher(&self) -> Watcher<T> {
        let seen = self.shared.with(|s| s.version);
        let shared = Arc::clone(&self.shared);
        Watcher { shared, seen }
    }

    async fn changed(watcher: &mut Watcher<T>) -> bool {
        watcher.changed().await
    }

    fn subscribe(&self) -> Subscription<T> {
        let next = self.shared.with(|s| {
            s.subscribers += 1;
            s.first + s.events.len() as u64
        });
        let shared = Arc::clone(&self.shared);
        Subscription { shared, next }
    }

    fn is_stopped(&self) -> bool {
        self.shared.is_stopped()
    }

    async fn stopped(&self) {
        poll_fn(|cx| {
            self.shared.with(|s| {
                if s.stopped {
                    return Poll::Ready(());
                }
                s.waiters.register(cx.waker());
                Poll::Pending
            })
        })
        .await;
    }
}

/// A subscription to an agent's [`Event`]s, kept in a ring of the
/// builder's event capacity.
pub struct Subscription<T: Clone> {
    shared: Arc<Shared<T>>,
    /// The number of the next event to read.
    next: u64,
}

impl<T: Clone> Subscription<T> {
    fn poll_next(
        &mut self,
        cx: Option<&mut Context<'_>>,
    ) -> Poll<Option<Result<Event<T>, Lagged>>> {
        self.shared.with(|s| {
            if self.next < s.first {
                let missed = s.first - self.next;
                self.next = s.first;
                return Poll::Ready(Some(Err(Lagged(missed))));
            }
            let index = usize::try_from(self.next - s.first).unwrap_or(usize::MAX);
            if let Some(event) = s.events.get(index) {
                self.next += 1;
                return Poll::Ready(Some(Ok(event.clone())));
            }
            if s.stopped {
                return Poll::Ready(None);
            }
            if let Some(cx) = cx {
                s.waiters.register(cx.waker());
            }
            Poll::Pending
        })
    }

    /// The next event; `Err(Lagged(n))` once after missing `n` events, and
    /// `None` when the agent has stopped and every event was read.
    pub async fn recv(&mut self) -> Option<Result<Event<T>, Lagged>> {
        poll_fn(|cx| self.poll_next(Some(cx))).await
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Result<Event<T>, Lagged>> {
        match self.poll_next(None) {
            Poll::Ready(next) => next,
            Poll::Pending => None,
        }
    }
}

impl<T: Clone> Drop for Subscription<T> {
    fn drop(&mut self) {
        self.shared.with(|s| s.subscribers -= 1);
    }
}

impl<T: Clone> fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("next", &self.next)
            .finish()
    }
}
