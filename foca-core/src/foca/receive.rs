//! Receiving a datagram: parse it whole, vet the sender, apply its news,
//! then answer what it asks.

use rand::Rng;

use super::apply::{Budget, Origin};
use super::replay::Stale;
use super::send::Pool;
use super::{Foca, Status};
use crate::wire::{self, Datagram, Summary};
use crate::{
    BroadcastHandler, Codec, Error, Header, Identity, Incarnation, Member, Message, Runtime,
    Sequence, State, Timer, TimerKey,
};

/// Relays whose target answered, remembered so that a nack timer a
/// runtime failed to cancel sends nothing (the newest kept).
const MAX_RELAYS_ANSWERED: usize = 16;

/// What [`Foca::vet`] decided about a datagram's sender.
enum Verdict {
    /// Dropped (counted); a reply may have been sent.
    Dropped,
    /// From a member we recorded gone, itself telling us we are gone:
    /// only its news about us is applied.
    Mutual,
    /// Accepted.
    Accepted,
}

impl<T, C, R, B> Foca<T, C, R, B>
where
    T: Identity,
    C: Codec<T>,
    R: Rng,
    B: BroadcastHandler<T>,
{
    pub(super) fn receive(
        &mut self,
        data: &[u8],
        sequence: Option<Sequence>,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        self.metrics.datagrams_in += 1;
        self.metrics.bytes_in += data.len() as u64;
        if self.status != Status::Running {
            self.metrics.dropped.not_active += 1;
            trace_event!(reason = "not_active", "datagram dropped");
            return Ok(());
        }
        if data.len() > self.config.max_packet_size {
            self.metrics.dropped.oversized += 1;
            trace_event!(reason = "oversized", "datagram dropped");
            return Ok(());
        }
        let datagram = match wire::parse(&mut self.codec, data) {
            Ok(d) => d,
            Err(_e) => {
                self.metrics.dropped.decode += 1;
                trace_event!(reason = "decode", part = %_e, "datagram dropped");
                return Ok(());
            }
        };
        if let Some(sequence) = sequence
            && let Err(stale) = self.replay.admit(&datagram.header.src, sequence)
        {
            match stale {
                Stale::Replayed => self.metrics.dropped.replayed += 1,
                Stale::TooOld => self.metrics.dropped.too_old += 1,
            }
            trace_event!(reason = ?stale, "datagram dropped");
            return Ok(());
        }
        let result = match self.vet(&datagram.header, runtime)? {
            Verdict::Dropped => return Ok(()),
            Verdict::Mutual => self.reconcile(datagram, runtime),
            Verdict::Accepted => self.absorb(datagram, runtime),
        };
        self.after_change(runtime);
        result
    }

    /// Checks who sent `header` before anything in the datagram is applied.
    fn vet(&mut self, header: &Header<T>, runtime: &mut impl Runtime<T>) -> Result<Verdict, Error> {
        let Header {
            src,
            src_incarnation,
            dst,
            message,
        } = header;
        let own_addr = self.identity.addr();
        if src.addr() == own_addr {
            self.metrics.dropped.from_self += 1;
            trace_event!(reason = "from_self", "datagram dropped");
            return Ok(Verdict::Dropped);
        }
        if self.config.check_source && !self.guard.came_from(&src.addr()) {
            self.metrics.dropped.source_mismatch += 1;
            trace_event!(reason = "source_mismatch", "datagram dropped");
            return Ok(Verdict::Dropped);
        }
        if *dst != self.identity && !(dst.addr() == own_addr && *message == Message::Announce) {
            self.metrics.dropped.wrong_destination += 1;
            trace_event!(reason = "wrong_destination", "datagram dropped");
            // A probe of a former identity of ours (we restarted, and the
            // news missed this sender): answer with who we are now, or it
            // would declare the old identity down and never learn the new.
            if dst.addr() == own_addr
                && self.identity.win_addr_conflict(dst)
                && matches!(message, Message::Ping(_) | Message::IndirectPing { .. })
            {
                let me = Member::alive(self.identity.clone(), self.incarnation);
                self.send_records(src, Message::Gossip, &[me], runtime)?;
            }
            return Ok(Verdict::Dropped);
        }
        let Some(known) = self.member(&src.addr()).cloned() else {
            return Ok(Verdict::Accepted);
        };
        if known.id() != src {
            if known.id().win_addr_conflict(src) {
                self.metrics.dropped.stale_identity += 1;
                trace_event!(reason = "stale_identity", "datagram dropped");
                return Ok(Verdict::Dropped);
            }
            return Ok(Verdict::Accepted);
        }
        if known.is_active() || known.incarnation() < *src_incarnation {
            return Ok(Verdict::Accepted);
        }
        // It talks, but we recorded it down or left: tell it, so it can
        // refute and come back (a member that really left ignores this; one
        // restarted with the same identity rejoins at once). Never answer a
        // TurnUndead with one (two members could bounce them forever).
        if *message == Message::TurnUndead {
            return Ok(Verdict::Mutual);
        }
        self.metrics.dropped.from_down_member += 1;
        trace_event!(reason = "from_down_member", "datagram dropped");
        self.send_records(src, Message::TurnUndead, &[known], runtime)?;
        Ok(Verdict::Dropped)
    }

    /// A TurnUndead from a member we recorded gone: each side recorded the
    /// other gone (after a partition, say). Not a drop: its news about us is
    /// applied (we refute) and we announce at once, or neither would ever
    /// listen to the other again. Its other news is ignored.
    fn reconcile(
        &mut self,
        datagram: Datagram<'_, T>,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        let own_addr = self.identity.addr();
        let mut budget = Budget::PER_DATAGRAM;
        for update in datagram.updates {
            if update.id().addr() == own_addr {
                let origin = Origin {
                    disseminate: true,
                    hearsay: true,
                    budget: &mut budget,
                };
                self.merge(update, origin, runtime)?;
            }
        }
        let Header { src, message, .. } = datagram.header;
        self.act_on(src, message, datagram.summary, runtime)
    }

    /// Applies an accepted datagram's news, then answers it.
    fn absorb(
        &mut self,
        datagram: Datagram<'_, T>,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        let Datagram {
            header,
            summary,
            updates,
            findings,
            broadcasts,
        } = datagram;
        let Header {
            src,
            src_incarnation,
            message,
            ..
        } = header;
        // A datagram is proof of life of its sender at that incarnation:
        // its own word.
        let mut budget = Budget::PER_DATAGRAM;
        let own_word = Origin {
            disseminate: true,
            hearsay: false,
            budget: &mut budget,
        };
        self.merge(
            Member::alive(src.clone(), src_incarnation),
            own_word,
            runtime,
        )?;
        let known = self.members.len();
        let own_addr = self.identity.addr();
        let mut heard = core::mem::take(&mut self.heard);
        heard.clear();
        heard.extend(
            updates
                .iter()
                .enumerate()
                .filter(|(_, m)| m.state() == State::Suspect && m.id() != &src)
                .filter(|(_, m)| m.id().addr() != own_addr)
                .map(|(i, m)| (m.id().addr(), m.incarnation(), i < findings)),
        );
        for update in updates {
            // What it says about itself is its own word; about others,
            // hearsay.
            let hearsay = update.id() != &src;
            let origin = Origin {
                disseminate: true,
                hearsay,
                budget: &mut budget,
            };
            self.merge(update, origin, runtime)?;
        }
        self.count_findings(&heard, &src);
        self.heard = heard;
        if self.members.len() > known || self.guard.checked() > 0 {
            self.follow_up(&src, &message, runtime)?;
        }
        // What a sync request pushed need not be pulled back (see `kept`).
        self.pushed.clear();
        if message == (Message::Sync { reply: false }) && !self.kept.is_empty() {
            let kept = &self.kept;
            self.pushed
                .extend(broadcasts.iter().map(|item| kept.hash(item)));
            self.pushed.sort_unstable();
        }
        for item in broadcasts {
            match self.handler.receive_item(item, Some(&src)) {
                Ok(Some(broadcast)) => {
                    self.enqueue_broadcast(broadcast, item, Some(src.addr()));
                    runtime.broadcast_received(item, &src);
                }
                Ok(None) => {}
                Err(_) => self.metrics.broadcasts_rejected += 1,
            }
        }
        self.act_on(src, message, summary, runtime)
    }

    /// Lifeguard: the suspicions a datagram from `src` told of, once
    /// applied. Those it marked as its sender's own findings confirm the
    /// suspicion here (once per sender), and are queued for a verification
    /// probe if we have not reported them ourselves (plain hearsay is not:
    /// a rogue repeating suspicions must not steer our probes).
    fn count_findings(&mut self, heard: &[(T::Addr, Incarnation, bool)], src: &T) {
        let me = self.identity.addr();
        let from = src.addr();
        for (addr, incarnation, finding) in heard {
            let suspect = self
                .member(addr)
                .is_some_and(|m| m.state() == State::Suspect && m.incarnation() == *incarnation);
            if !suspect {
                continue;
            }
            if !*finding {
                continue;
            }
            if self.suspicions.confirm(addr, *incarnation, &from) {
                self.metrics.confirmations_received += 1;
            }
            let proven = self.guard.is_proven(addr);
            self.suspicions.verify(addr, &me, proven);
        }
    }

    /// A feed that taught us members we did not know means our view is far
    /// behind (we just joined, or came back after being cut off): pull
    /// another one, from someone else, until feeds stop bringing news.
    /// Likewise for the records answering our summary: the buckets that
    /// differed held members we lacked, and likely more than one datagram's
    /// worth: compare with someone else at once.
    fn follow_up(
        &mut self,
        src: &T,
        message: &Message<T>,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        let next = match message {
            Message::Feed => Message::Announce,
            Message::Sync { reply: true } => Message::Sync { reply: false },
            _ => return Ok(()),
        };
        let sent =
            self.send_to_random(Pool::Active, 1, |m| m.id() != src, || next.clone(), runtime)?;
        if sent == 0 && matches!(next, Message::Announce) {
            // Nobody else known yet (the members it told of are being
            // checked): ask the same member again; feeds are random
            // samples, and members already checked are not checked again.
            return self.send(src, next, runtime);
        }
        Ok(())
    }

    /// Answers the request a message carries.
    fn act_on(
        &mut self,
        src: T,
        message: Message<T>,
        summary: Summary<'_>,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        if self.status != Status::Running {
            // Applying the updates made this member defunct.
            return Ok(());
        }
        let own_addr = self.identity.addr();
        match message {
            Message::Ping(probe_number) => self.send(&src, Message::Ack(probe_number), runtime),
            Message::Ack(probe_number) => {
                self.register_ack(&src, probe_number, false, runtime);
                Ok(())
            }
            Message::PingReq {
                target,
                probe_number,
            } => self.relay_ping_req(src, target, probe_number, runtime),
            Message::IndirectPing {
                origin,
                probe_number,
            } => {
                let ack = Message::IndirectAck {
                    origin,
                    probe_number,
                };
                self.send(&src, ack, runtime)
            }
            Message::IndirectAck {
                origin,
                probe_number,
            } => {
                if origin.addr() == own_addr || origin.addr() == src.addr() {
                    return Ok(());
                }
                // Answered: no nack for this relay.
                let origin_addr = origin.addr();
                if !self
                    .relays_answered
                    .contains(&(origin_addr.clone(), probe_number))
                {
                    if self.relays_answered.len() >= MAX_RELAYS_ANSWERED {
                        self.relays_answered.remove(0);
                    }
                    self.relays_answered
                        .push((origin_addr.clone(), probe_number));
                }
                runtime.cancel(&TimerKey::Nack(origin_addr));
                let target = src;
                let forwarded = Message::ForwardedAck {
                    target,
                    probe_number,
                };
                self.send(&origin, forwarded, runtime)
            }
            Message::ForwardedAck {
                target,
                probe_number,
            } => {
                self.register_ack(&target, probe_number, true, runtime);
                Ok(())
            }
            Message::Nack(probe_number) => {
                // At most one per helper asked: forged ones only bring this
                // member back to plain SWIM timing.
                if let Some(round) = self.probe.numbered(probe_number)
                    && round.nacks < round.helpers
                {
                    round.nacks += 1;
                    self.metrics.nacks_received += 1;
                }
                Ok(())
            }
            Message::Announce => self.answer_announce(&src, runtime),
            // The update it carried was applied: if it was about us at our
            // incarnation, we refuted. Tell the sender right away.
            Message::TurnUndead => self.send(&src, Message::Announce, runtime),
            Message::Sync { reply } => self.answer_sync(&src, summary, reply, runtime),
            Message::Feed | Message::Gossip | Message::Broadcast => Ok(()),
        }
    }

    /// Pings `target` on `src`'s behalf (the helper's side of an indirect
    /// probe), if `target` is an active member: anyone else would be a
    /// third party a forger aims this member's pings at.
    fn relay_ping_req(
        &mut self,
        src: T,
        target: T,
        probe_number: crate::ProbeNumber,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        let target_addr = target.addr();
        if target_addr == self.identity.addr() || target_addr == src.addr() {
            return Ok(());
        }
        let member = self.member(&target_addr);
        if !member.is_some_and(|m| m.id() == &target && m.is_active()) {
            self.metrics.ping_requests_refused += 1;
            // Still, the request arrived: the prober's links are fine.
            return self.send_records(&src, Message::Nack(probe_number), &[], runtime);
        }
        // The prober hears that its request arrived if the target stays
        // silent (Lifeguard's nack, memberlist's timing): at four fifths of
        // what is left of its probe period, so it lands before the prober
        // concludes. A prober not in the table (so with no timer slot)
        // hears it at once.
        if self
            .member(&src.addr())
            .is_some_and(|m| m.id() == &src && m.is_active())
        {
            let left = self
                .config
                .probe_period
                .saturating_sub(self.config.probe_rtt);
            let timer = Timer::SendNack {
                origin: src.clone(),
                probe_number,
            };
            runtime.submit_after(timer, left * 4 / 5);
        } else {
            self.send_records(&src, Message::Nack(probe_number), &[], runtime)?;
        }
        let ping = Message::IndirectPing {
            origin: src,
            probe_number,
        };
        self.send(&target, ping, runtime)
    }

    /// A relay's nack timer fired: nack, unless the target answered.
    pub(super) fn send_nack(
        &mut self,
        origin: &T,
        probe_number: crate::ProbeNumber,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        let key = (origin.addr(), probe_number);
        if let Some(pos) = self.relays_answered.iter().position(|k| *k == key) {
            self.relays_answered.remove(pos);
            self.metrics.stale_timers += 1;
            return Ok(());
        }
        if self.status != Status::Running {
            return Ok(());
        }
        self.send_records(origin, Message::Nack(probe_number), &[], runtime)
    }

    /// Answers an announce with a feed, at most `MAX_FEEDS_PER_SOURCE`
    /// times per probe period to one address.
    fn answer_announce(&mut self, src: &T, runtime: &mut impl Runtime<T>) -> Result<(), Error> {
        if !self.guard.allow_feed(&src.addr()) {
            self.metrics.feeds_limited += 1;
            return Ok(());
        }
        self.send_feed(src, runtime)
    }

    fn register_ack(
        &mut self,
        from: &T,
        probe_number: crate::ProbeNumber,
        forwarded: bool,
        runtime: &mut impl Runtime<T>,
    ) {
        let pending = self.probe.previous.is_some();
        let Some(round) = self.probe.numbered(probe_number) else {
            return;
        };
        let Some(target) = round.target.as_ref() else {
            return;
        };
        if round.acked || target.id() != from {
            return;
        }
        round.acked = true;
        let (indirect_sent, indirect_done) = (round.indirect_sent, round.indirect_done);
        // An answer to the newer probe of the same member (a cluster of
        // two, or a suspect verified) answers the older one too.
        if let Some(previous) = self.probe.previous.as_mut()
            && previous.target.as_ref().is_some_and(|t| t.id() == from)
        {
            previous.acked = true;
        }
        if !forwarded && self.guard.source() == Some(&from.addr()) {
            // A direct ack from where we pinged: the address is reachable
            // and answers for this member.
            self.guard.prove(from.addr(), self.config.max_members);
        }
        if forwarded && indirect_sent {
            self.metrics.indirect_successes += 1;
        }
        if !indirect_done && !pending && self.probe.round.number == probe_number {
            // Acked in time: the indirect stage has nothing to do (and no
            // earlier probe waits for it to conclude).
            runtime.cancel(&TimerKey::IndirectProbe);
        }
    }
}
