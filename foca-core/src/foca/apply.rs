//! Merging membership news into the table (SWIM §4.2, with a total order).

use core::cmp::Ordering;

use rand::Rng;

use super::{Foca, Queued, Status};
use crate::{
    BroadcastHandler, Codec, Error, Identity, Invalidates, Member, Message, Notification, Runtime,
    State, Timer, TimerKey,
};

/// How many verdicts one received datagram may still make this member
/// send (contradicted ones resent, hearsay ones forwarded to their
/// subject): bounded, so a feed full of verdicts cannot set off a storm.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Budget {
    pub(super) verdicts: u8,
    pub(super) notices: u8,
}

impl Budget {
    /// What one received datagram may spend.
    pub(super) const PER_DATAGRAM: Self = Self {
        verdicts: 1,
        notices: 4,
    };
}

/// Where a piece of news comes from (see [`Foca::merge`]).
pub(super) struct Origin<'a> {
    /// Queue it for dissemination (not for a table restored as it was).
    pub(super) disseminate: bool,
    /// Told by someone other than the member it is about.
    pub(super) hearsay: bool,
    /// What it may still make this member send.
    pub(super) budget: &'a mut Budget,
}

impl<'a> Origin<'a> {
    /// This member's own news, or its user's: trusted, disseminated.
    pub(super) fn local(budget: &'a mut Budget) -> Self {
        Self {
            disseminate: true,
            hearsay: false,
            budget,
        }
    }
}

impl<T, C, R, B> Foca<T, C, R, B>
where
    T: Identity,
    C: Codec<T>,
    R: Rng,
    B: BroadcastHandler<T>,
{
    /// Applies news this member makes or is given by its user (its own
    /// suspicions and verdicts, [`Foca::apply_many`]): trusted, and queued
    /// for dissemination. See [`Foca::merge`].
    pub(super) fn apply_update(
        &mut self,
        news: Member<T>,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        let mut spent = Budget::default();
        self.merge(news, Origin::local(&mut spent), runtime)
    }

    /// Merges one piece of news. The table keeps, per address, the greatest
    /// news under this order: a winning identity (see
    /// [`Identity::win_addr_conflict`]) beats a losing one; for one identity,
    /// [`Member::precedence`] decides. Taking a maximum makes merging
    /// commutative and idempotent: members converge whatever order news
    /// arrives in.
    ///
    /// Hearsay (news about a member from someone else) is trusted only so
    /// far: it may raise the incarnation of a known member, this one
    /// included, by at most `Config::max_incarnation_step` (a member's own
    /// word, and news of a member not known yet, are not bounded). So one
    /// forged record cannot spend a member's incarnations.
    pub(super) fn merge(
        &mut self,
        news: Member<T>,
        origin: Origin<'_>,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        let addr = news.id().addr();
        if addr == self.identity.addr() {
            return self.apply_to_self(news, origin.hearsay, runtime);
        }
        let Some(pos) = self.members.find(&addr) else {
            if origin.hearsay && news.is_active() && self.guard.source().is_some() {
                return self.check_newcomer(news.into_id(), runtime);
            }
            // A verdict about a member we never knew is kept (so that stale
            // news of it alive loses), but not spread: those that knew it
            // hear from those that saw it go, and an old tombstone sent
            // back to members that forgot it must not spread again.
            let spread = origin.disseminate && (news.is_active() || !origin.hearsay);
            return self.insert_member(news, spread, runtime);
        };
        let Some(current) = self.members.get(pos) else {
            return Ok(());
        };
        let renamed = if current.id() == news.id() {
            if news.precedence(current) != Ordering::Greater {
                let contradicted = current.state() == State::Down
                    && news.is_active()
                    && news.incarnation() == current.incarnation();
                if origin.disseminate && contradicted {
                    let record = current.clone();
                    let left = &mut origin.budget.verdicts;
                    let count = |m: &mut crate::Metrics| m.verdicts_resent += 1;
                    return self.tell_subject(record, left, count, runtime);
                }
                return Ok(());
            }
            if origin.hearsay && self.implausible(current.incarnation(), news.incarnation()) {
                self.metrics.hearsay_ignored += 1;
                return Ok(());
            }
            false
        } else if news.id().win_addr_conflict(current.id()) {
            if origin.hearsay && current.is_active() {
                let held = current.id().clone();
                return self.confirm_rename(held, runtime);
            }
            true
        } else {
            return Ok(());
        };
        let old = current.clone();
        debug_event!(member = ?news.id(), incarnation = news.incarnation(), state = ?news.state(), "membership change");
        self.members.update(pos, news.clone(), &mut self.rng);
        self.notify_transition(Some(&old), renamed, &news, runtime);
        self.schedule_for(&news, runtime);
        if origin.disseminate {
            self.enqueue_update(&news)?;
        }
        // Someone else says a member we hold alive is gone: tell it at once,
        // so that if the news was wrong (forged, or stale) it refutes within
        // a round trip instead of whenever the news reaches it.
        if origin.hearsay && old.state() == State::Alive && !news.is_active() && !renamed {
            let left = &mut origin.budget.notices;
            let count = |m: &mut crate::Metrics| m.verdicts_forwarded += 1;
            self.tell_subject(news, left, count, runtime)?;
        }
        Ok(())
    }

    /// Someone else says a member held active restarted as a new identity.
    /// A forger could say so too, and a winning identity it made up would
    /// shut the real member out (its datagrams taken as a stale identity's).
    /// So ask the address instead of believing it: a ping to the identity
    /// held is answered by a restarted member with its new record (see
    /// `Foca::vet`), which is its own word and applied; by the member
    /// still running, with an ack, and the rename is never applied. One
    /// ping per address per probe period.
    fn confirm_rename(&mut self, held: T, runtime: &mut impl Runtime<T>) -> Result<(), Error> {
        if !self.start_check(&held) {
            return Ok(());
        }
        self.metrics.renames_checked += 1;
        self.send_records(&held, Message::Ping(0), &[], runtime)
    }

    /// Someone else told of a member not in the table. It may not exist
    /// (news made up at a third party's address, which every member would
    /// then spread and probe), so it is pinged, not believed: if it
    /// exists it answers, and its answer is its own word, which adds it.
    /// Bounded like rename checks (see `Guard::start_check`).
    fn check_newcomer(&mut self, told: T, runtime: &mut impl Runtime<T>) -> Result<(), Error> {
        if !self.start_check(&told) {
            self.metrics.newcomers_unchecked += 1;
            return Ok(());
        }
        self.metrics.newcomers_checked += 1;
        self.send_records(&told, Message::Ping(0), &[], runtime)
    }

    /// Counts a check of `id` if it may be made now (see
    /// `Guard::start_check`).
    fn start_check(&mut self, id: &T) -> bool {
        let cost = self.header_size + crate::wire::SECTION_COUNTS;
        self.guard
            .start_check(id.addr(), cost, self.config.max_members)
    }

    /// Whether hearsay taking a member from incarnation `known` to `told`
    /// goes further than `Config::max_incarnation_step`.
    fn implausible(&self, known: crate::Incarnation, told: crate::Incarnation) -> bool {
        told > known.saturating_add(self.config.max_incarnation_step)
    }

    /// Sends `record`, a verdict, straight to the member it is about, so
    /// that it refutes if the verdict is wrong, while `left` (a per-datagram
    /// share of the [`Budget`]) allows: a feed full of verdicts cannot set
    /// off a storm. `count` counts it. Used for our own verdicts others
    /// still contradict (the member may never have heard them: we were cut
    /// off when we made them) and for verdicts heard from others about a
    /// member we hold alive (see [`Foca::merge`]).
    fn tell_subject(
        &mut self,
        record: Member<T>,
        left: &mut u8,
        count: impl FnOnce(&mut crate::Metrics),
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        if *left == 0 {
            return Ok(());
        }
        *left -= 1;
        count(&mut self.metrics);
        let to = record.id().clone();
        self.send_records(&to, Message::TurnUndead, &[record], runtime)
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
                self.guard.forget(&gone.id().addr());
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
                self.suspicions.end(&addr);
                runtime.cancel(&TimerKey::Suspicion(addr.clone()));
                runtime.cancel(&TimerKey::Removal(addr));
            }
            State::Suspect => {
                runtime.cancel(&TimerKey::Removal(addr.clone()));
                let bounds = self.suspicion_bounds();
                let first = self.suspicions.start(addr, incarnation, &bounds);
                let timer = Timer::ChangeSuspectToDown {
                    member_id,
                    incarnation,
                };
                runtime.submit_after(timer, first);
            }
            State::Down | State::Left => {
                self.suspicions.end(&addr);
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
        hearsay: bool,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        if news.id() != &self.identity {
            // An old identity of ours, or someone claiming our address.
            self.metrics.foreign_self_updates += 1;
            return Ok(());
        }
        let seen = news.incarnation();
        if hearsay && self.implausible(self.incarnation, seen) {
            // Others cannot spend this member's incarnations for it.
            self.metrics.hearsay_ignored += 1;
            return Ok(());
        }
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
                // Lifeguard: suspected while alive, this member is likely
                // the slow one; it probes more gently for a while. Once a
                // period: forged suspicions must not drive it to the
                // maximum.
                if !self.refuted_this_period {
                    self.refuted_this_period = true;
                    self.health_worse(1);
                }
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

    /// Raises the incarnation above `seen` and spreads the news. When the
    /// incarnation is spent, a renewable identity renews; one that cannot
    /// stays as it is (news from others never makes this member defunct):
    /// it cannot refute that news, which is counted.
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
            None if self.identity.renew().is_some() => self.renew_identity(runtime),
            None => {
                self.metrics.unrefutable += 1;
                Ok(())
            }
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

    /// Queues a custom broadcast, received `from` a member or added here;
    /// returns whether it was queued (a queued item with the same key that
    /// is not invalidated keeps its place).
    pub(super) fn enqueue_broadcast(
        &mut self,
        broadcast: B::Broadcast,
        data: &[u8],
        from: Option<T::Addr>,
    ) -> bool {
        let key = broadcast.key();
        let queued = Queued {
            broadcast,
            holders: from.into_iter().collect(),
        };
        self.broadcasts
            .insert(key, queued, data.to_vec(), |new, old| {
                new.broadcast.invalidates(&old.broadcast)
            })
            .is_ok()
    }
}
