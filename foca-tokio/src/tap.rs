//! A broadcast handler wrapper that lets the agent publish the custom
//! broadcasts the user's handler accepted.

use std::collections::VecDeque;

use foca_core::BroadcastHandler;

/// Most accepted broadcasts waiting for the agent to publish them; beyond
/// it the oldest is dropped and counted (the agent drains the queue after
/// every datagram, so this only fills if one datagram carries that many).
pub(crate) const MAX_PENDING_BROADCASTS: usize = 1024;

/// Wraps the user's handler `B`: every item it accepts from a peer is kept
/// for the agent's subscribers.
pub(crate) struct Tap<T, B> {
    pub(crate) inner: B,
    pub(crate) accepted: VecDeque<(Vec<u8>, T)>,
    pub(crate) dropped: u64,
}

impl<T, B> Tap<T, B> {
    pub(crate) fn new(inner: B) -> Self {
        Self {
            inner,
            accepted: VecDeque::new(),
            dropped: 0,
        }
    }
}

impl<T: Clone, B: BroadcastHandler<T>> BroadcastHandler<T> for Tap<T, B> {
    type Broadcast = B::Broadcast;
    type Error = B::Error;

    fn receive_item(
        &mut self,
        item: &[u8],
        sender: Option<&T>,
    ) -> Result<Option<Self::Broadcast>, Self::Error> {
        let accepted = self.inner.receive_item(item, sender)?;
        // Items added locally (no sender) are not news to this member.
        if let (Some(_), Some(sender)) = (&accepted, sender) {
            if self.accepted.len() >= MAX_PENDING_BROADCASTS {
                self.accepted.pop_front();
                self.dropped += 1;
            }
            self.accepted.push_back((item.to_vec(), sender.clone()));
        }
        Ok(accepted)
    }

    fn should_send(&self, broadcast: &Self::Broadcast, item: &[u8], to: &T) -> bool {
        self.inner.should_send(broadcast, item, to)
    }
}
