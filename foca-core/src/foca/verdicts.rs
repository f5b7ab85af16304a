//! The down verdicts this member made, withdrawn when it comes back from
//! having no live peer.
//!
//! A member cut off from the others declares them all down, most likely
//! wrongly: the fault was its own. Back, it forgets its own verdicts that
//! still stand in its table (and so the news of them it had queued), and
//! pulls a feed (see `Foca::after_change`): the members still alive come
//! back as members, the ones others declared down do not. Nothing is sent
//! for them, so coming back is no burst of datagrams (it was one per
//! verdict, up to 1,024, each to a member that had to refute), and only
//! this member's own verdicts are withdrawn: others' are not its to undo.

use alloc::collections::VecDeque;

use rand::Rng;

use super::Foca;
use crate::{BroadcastHandler, Codec, Identity, Runtime, State, TimerKey};

/// Most of this member's own verdicts remembered (the oldest is forgotten
/// first); as many can be withdrawn after a reconnect.
pub const MAX_VERDICTS_REMEMBERED: usize = 1024;

/// Addresses this member declared down, oldest first.
pub(super) struct Verdicts<A> {
    made: VecDeque<A>,
}

impl<A: PartialEq> Verdicts<A> {
    pub(super) const fn new() -> Self {
        Self {
            made: VecDeque::new(),
        }
    }

    /// Records a verdict this member made.
    pub(super) fn made(&mut self, addr: A) {
        self.made.retain(|a| *a != addr);
        if self.made.len() >= MAX_VERDICTS_REMEMBERED {
            self.made.pop_front();
        }
        self.made.push_back(addr);
    }
}

impl<T, C, R, B> Foca<T, C, R, B>
where
    T: Identity,
    C: Codec<T>,
    R: Rng,
    B: BroadcastHandler<T>,
{
    /// Back from having no live peer: forgets this member's own verdicts
    /// that still stand (see the module docs).
    pub(super) fn withdraw_own_verdicts(&mut self, runtime: &mut impl Runtime<T>) {
        for addr in core::mem::take(&mut self.verdicts.made) {
            let Some(pos) = self.members.find(&addr) else {
                continue;
            };
            if self
                .members
                .get(pos)
                .is_some_and(|m| m.state() == State::Down)
            {
                self.members.remove(pos);
                self.guard.forget(&addr);
                runtime.cancel(&TimerKey::Removal(addr));
                self.metrics.verdicts_withdrawn += 1;
            }
        }
    }
}
