//! Merging membership news into the table (SWIM §4.2, with a total order).

use core::cmp::Ordering;

use rand::Rng;

use super::{Foca, Status};
use crate::{
    BroadcastHandler, Codec, Error, Identity, Invalidates, Member, Message, Notification, Runtime,
    State, Timer, TimerKey,
};

impl<T, C, R, B> Foca<T, C, R, B>
where
    T: Identity,
    C: Codec<T>,
    R: Rng,
    B: BroadcastHandler<T>,
{
    /// Merges one piece of news. The table keeps, per address, the greatest
    /// news under this order: a winning identity (see
    /// [`Identity::win_addr_conflict`]) beats a losing one; for one identity,
    /// [`Member::precedence`] decides. Taking a maximum makes merging
    /// commutative and idempotent: members converge whatever order news
    /// arrives in.
    pub(super) fn apply_update(
        &mut self,
        news: Member<T>,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        self.merge(news, true, &mut 0, runtime)
    }

    /// [`Foca::apply_update`], optionally without queuing the news for
    /// dissemination (when every peer has it already). `verdicts` is how
    /// many down verdicts this news may still make us resend (see below);
    /// each resend spends one.
    pub(super) fn merge(
        &mut self,
        news: Member<T>,
        disseminate: bool,
        verdicts: &mut u8,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        let addr = news.id().addr();
        if addr == self.identity.addr() {
            return self.apply_to_self(news, runtime);
        }
        let Some(pos) = self.members.find(&addr) else {
            return self.insert_member(news, disseminate, runtime);
        };
        let Some(current) = self.members.get(pos) else {
            return Ok(());
        };
        let renamed = if current.id() == news.id() {
            if news.precedence(current) != Ordering::Greater {
                // Others still see it alive at the incarnation we declared it
                // down at: it may never have heard our verdict (we were cut
                // off when we made it). Tell it directly, so it refutes.
                // A bounded number per datagram received, so a feed full
                // of such members cannot set off a storm.
                if disseminate
                    && *verdicts > 0
                    && current.state() == State::Down
                    && news.is_active()
                    && news.incarnation() == current.incarnation()
                {
                    *verdicts -= 1;
                    let record = current.clone();
                    self.metrics.verdicts_resent += 1;
                    return self.send_records(news.id(), Message::TurnUndead, &[record], runtime);
                }
                return Ok(());
            }
            false
        } else if news.id().win_addr_conflict(current.id()) {
            true
        } else {
            return Ok(());
        };
        let old = current.clone();
        debug_event!(member = ?news.id(), incarnation = news.incarnation(), state = ?news.state(), "membership change");
        self.members.update(pos, news.clone(), &mut self.rng);
        self.notify_transition(Some(&old), renamed, &news, runtime);
        self.schedule_for(&news, runtime);
        if disseminate {
            self.enqueue_update(&news)?;
        }
        Ok(())
    }

    fn insert_member(
        &mut self,
        news: Member<T>,
        disseminate: bool,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        if self.members.len() >= self.config.max_members {
            // Make room by forgetting an inactive member, never an active one.
            let inactive = self.members.num_inactive();
            if inactive == 0 || !news.is_active() {
                self.metrics.members_dropped += 1;
                return Ok(());
            }
            let last = self.members.len() - 1;
            if let Some(gone) = self.members.remove(last) {
                runtime.cancel(&TimerKey::Removal(gone.id().addr()));
            }
        }
        debug_event!(member = ?news.id(), incarnation = news.incarnation(), state = ?news.state(), "new member");
        self.members.insert(news.clone(), &mut self.rng);
        self.notify_transition(None, false, &news, runtime);
        self.schedule_for(&news, runtime);
        if disseminate {
            self.enqueue_update(&news)?;
        }
        Ok(())
    }

    fn notify_transition(
        &mut self,
        old: Option<&Member<T>>,
        renamed: bool,
        new: &Member<T>,
        runtime: &mut impl Runtime<T>,
    ) {
        let was_active = old.is_some_and(Member::is_active);
        let id = new.id().clone();
        match (was_active, new.state()) {
            (true, State::Alive | State::Suspect) => {
                if let Some(old) = old {
                    if renamed {
                        runtime.notify(Notification::Rename(old.id().clone(), id));
                    } else if old.state() == State::Suspect && new.state() == State::Alive {
                        self.metrics.suspicions_refuted += 1;
                    }
                }
            }
            (true, State::Down) => {
                let gone = old.map_or(id, |o| o.id().clone());
                runtime.notify(Notification::MemberDown(gone));
            }
            (true, State::Left) => {
                let gone = old.map_or(id, |o| o.id().clone());
                runtime.notify(Notification::MemberLeft(gone));
            }
            (false, State::Alive | State::Suspect) => runtime.notify(Notification::MemberUp(id)),
            (false, State::Down | State::Left) => {}
        }
    }

    /// The timers a member needs in its new state, in its own slots: the
    /// one it no longer needs is cancelled, the one it needs (re)set. So
    /// each member of the table has at most one timer pending, however
    /// often its record changes.
    fn schedule_for(&mut self, member: &Member<T>, runtime: &mut impl Runtime<T>) {
        let addr = member.id().addr();
        let member_id = member.id().clone();
        let incarnation = member.incarnation();
        match member.state() {
            State::Alive => {
                runtime.cancel(&TimerKey::Suspicion(addr.clone()));
                runtime.cancel(&TimerKey::Removal(addr));
            }
            State::Suspect => {
                runtime.cancel(&TimerKey::Removal(addr));
                let timeout = self.config.suspicion_timeout(self.members.num_active() + 1);
                let timer = Timer::ChangeSuspectToDown {
                    member_id,
                    incarnation,
                };
                runtime.submit_after(timer, timeout);
            }
            State::Down | State::Left => {
                runtime.cancel(&TimerKey::Suspicion(addr));
                let timer = Timer::RemoveDown {
                    member_id,
                    incarnation,
                };
                runtime.submit_after(timer, self.config.remove_down_after);
            }
        }
    }

    /// News about this member's own address.
    fn apply_to_self(
        &mut self,
        news: Member<T>,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        if news.id() != &self.identity {
            // An old identity of ours, or someone claiming our address.
            self.metrics.foreign_self_updates += 1;
            return Ok(());
        }
        let seen = news.incarnation();
        match news.state() {
            State::Alive => {
                // A former life of ours (before a restart) got further:
                // carry on from there so our news is not taken as stale.
                if seen > self.incarnation {
                    self.incarnation = seen;
                    self.enqueue_self()?;
                }
                Ok(())
            }
            State::Suspect if seen >= self.incarnation => {
                self.metrics.self_suspicions_refuted += 1;
                debug_event!(incarnation = seen, "refuting a suspicion of this member");
                self.refute(seen, runtime)
            }
            State::Down | State::Left if seen >= self.incarnation => {
                if self.status == Status::Left {
                    return Ok(());
                }
                self.metrics.self_declared_down += 1;
                debug_event!(incarnation = seen, state = ?news.state(), "this member was declared gone; refuting");
                self.refute(seen, runtime)
            }
            _ => Ok(()),
        }
    }

    /// Raises the incarnation above `seen` and spreads the news; renews the
    /// identity when the incarnation is spent.
    pub(super) fn refute(
        &mut self,
        seen: crate::Incarnation,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        if self.status != Status::Running {
            return Ok(());
        }
        match seen.checked_add(1) {
            Some(next) => {
                if next > self.incarnation {
                    self.incarnation = next;
                }
                self.enqueue_self()
            }
            None => self.renew_identity(runtime),
        }
    }

    /// Queues an update for dissemination, replacing older news about the
    /// same address. The queue keeps the address and the encoded size; the
    /// record is encoded again when sent, from the table (or this member's
    /// own state, or [`Foca::detached`] for an identity left behind, see
    /// [`Foca::enqueue_detached`]), so it goes out as it is then.
    pub(super) fn enqueue_update(&mut self, member: &Member<T>) -> Result<(), Error> {
        let mut data = core::mem::take(&mut self.scratch);
        data.clear();
        let encoded = self.codec.encode_member(member, &mut data);
        let size = data.len();
        self.scratch = data;
        encoded.map_err(|e| Error::Encode(alloc::string::ToString::to_string(&e)))?;
        if size > self.max_item_size() {
            // Only news about a peer whose identity is larger than ours
            // can get here: the table has it, but it cannot be gossiped.
            self.metrics.updates_too_large += 1;
            return Ok(());
        }
        // Below max_packet_size (≤ 65507): fits.
        let size = u16::try_from(size).unwrap_or(u16::MAX);
        // Whatever reaches here won the merge: it replaces queued news.
        let _ = self
            .updates
            .insert(member.id().addr(), (), size, |_, _| true);
        Ok(())
    }

    /// Queues news about an identity this member left behind (neither in
    /// the table nor its own any more): its record waits in
    /// [`Foca::detached`] until sent.
    pub(super) fn enqueue_detached(&mut self, member: Member<T>) -> Result<(), Error> {
        let addr = member.id().addr();
        self.detached.retain(|m| m.id().addr() != addr);
        if self.detached.len() >= super::MAX_DETACHED {
            self.detached.remove(0);
        }
        self.enqueue_update(&member)?;
        self.detached.push(member);
        Ok(())
    }

    /// Queues a custom broadcast; returns whether it was queued (a queued
    /// item with the same key that is not invalidated keeps its place).
    pub(super) fn enqueue_broadcast(&mut self, broadcast: B::Broadcast, data: &[u8]) -> bool {
        let key = broadcast.key();
        self.broadcasts
            .insert(key, broadcast, data.to_vec(), |new, old| {
                new.invalidates(old)
            })
            .is_ok()
    }
}
