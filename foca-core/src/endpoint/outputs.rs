//! The [`Runtime`] an endpoint hands its `Foca` for one input: bounded
//! queues, the envelope (datagrams are sealed as they are sent) and the
//! keyed timer queue.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::time::Duration;

use super::{Event, MAX_QUEUED_EVENTS, MAX_QUEUED_TRANSMITS, Transmit};
use crate::{Envelope, Identity, Notification, Runtime, Timer, TimerKey, TimerQueue};

/// Buffers kept for reuse: the usual input sends a datagram or two.
const SPARE_BUFFERS: usize = 2;

/// What an endpoint dropped because its user did not keep up, and what it
/// could not seal.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Losses {
    pub(super) transmits: u64,
    pub(super) events: u64,
    pub(super) seal_errors: u64,
}

/// Datagram buffers given back, for the next datagram to reuse (the last
/// one given back first: it is the most likely still in cache).
#[derive(Default)]
pub(super) struct Spares([Option<Vec<u8>>; SPARE_BUFFERS]);

impl Spares {
    /// A buffer, cleared.
    pub(super) fn take(&mut self) -> Vec<u8> {
        let mut buf = self
            .0
            .iter_mut()
            .rev()
            .find_map(Option::take)
            .unwrap_or_default();
        buf.clear();
        buf
    }

    /// Keeps `buf` for reuse, if there is room.
    pub(super) fn give(&mut self, buf: Vec<u8>) {
        if let Some(slot) = self.0.iter_mut().find(|s| s.is_none()) {
            *slot = Some(buf);
        }
    }
}

/// The runtime of one input.
pub(super) struct Outputs<'a, T: Identity, E> {
    pub(super) now: Duration,
    pub(super) timers: &'a mut TimerQueue<TimerKey<T::Addr>, Timer<T>>,
    pub(super) envelope: &'a mut E,
    pub(super) transmits: &'a mut VecDeque<Transmit<T::Addr>>,
    pub(super) events: &'a mut VecDeque<Event<T>>,
    pub(super) losses: &'a mut Losses,
    pub(super) spares: &'a mut Spares,
}

impl<T: Identity, E> Outputs<'_, T, E> {
    fn push_event(&mut self, event: Event<T>) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.pop_front();
            self.losses.events += 1;
        }
        self.events.push_back(event);
    }
}

impl<T: Identity, E: Envelope> Runtime<T> for Outputs<'_, T, E> {
    fn notify(&mut self, notification: Notification<T>) {
        self.push_event(Event::Membership(notification));
    }

    fn send_to(&mut self, to: T, payload: &[u8]) {
        let mut data = self.spares.take();
        if let Err(_e) = self.envelope.seal(payload, &mut data) {
            self.losses.seal_errors += 1;
            debug_event!(error = %_e, "could not seal a datagram");
            self.spares.give(data);
            return;
        }
        if self.transmits.len() >= MAX_QUEUED_TRANSMITS {
            if let Some(old) = self.transmits.pop_front() {
                self.spares.give(old.data);
            }
            self.losses.transmits += 1;
        }
        self.transmits.push_back(Transmit {
            to: to.addr(),
            data,
        });
    }

    fn submit_after(&mut self, event: Timer<T>, after: Duration) {
        let key = event.key();
        self.timers
            .schedule(self.now.saturating_add(after), key, event);
    }

    fn cancel(&mut self, key: &TimerKey<T::Addr>) {
        self.timers.cancel(key);
    }

    fn broadcast_received(&mut self, item: &[u8], from: &T) {
        self.push_event(Event::Broadcast {
            item: item.to_vec(),
            from: from.clone(),
        });
    }
}
