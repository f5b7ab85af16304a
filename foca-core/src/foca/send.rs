//! Building datagrams: header, then as many updates and custom broadcasts as
//! fit, each kind with a guaranteed share.

use alloc::vec::Vec;

use rand::{Rng, RngExt};

use super::{Foca, Status};
use crate::backlog::Pick;
use crate::members::{Digest, record_hash};
use crate::wire::{self, Summary, Writer};
use crate::{BroadcastHandler, Codec, Error, Header, Identity, Member, Message, Runtime, State};

/// How many times the summaries its peers' configs make a member receive
/// per probe period it answers at most (see `Foca::sync_answer_limit`).
const SYNC_ANSWER_FACTOR: u128 = 8;

/// Where [`Foca::send_to_random`] picks members.
pub(super) enum Pool {
    /// Alive and suspect members.
    Active,
    /// Down and left members.
    Inactive,
}

/// What fills the space after the header.
enum Payload<'a, T> {
    /// Backlogged updates and custom broadcasts, sharing the space.
    Piggyback,
    /// Backlogged custom broadcasts only.
    Broadcasts,
    /// The kept custom broadcasts that the sync request being answered
    /// did not carry (see `kept`).
    Kept,
    /// These records, as many as fit.
    Records(&'a [Member<T>]),
    /// A table summary (the section a [`Message::Sync`] carries), then
    /// these records, as many as fit, then kept custom broadcasts.
    Summary(&'a [u16], &'a [Member<T>], Keeps),
}

/// Which kept custom broadcasts a sync datagram carries (see `kept`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keeps {
    /// All, newest first (a request).
    All,
    /// Those the request being answered did not carry.
    Missing,
}

impl<T, C, R, B> Foca<T, C, R, B>
where
    T: Identity,
    C: Codec<T>,
    R: Rng,
    B: BroadcastHandler<T>,
{
    /// Sends `message` to `dst`, piggybacking backlogged news.
    pub(super) fn send(
        &mut self,
        dst: &T,
        message: Message<T>,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        let summary;
        let payload = match message {
            // Both backlogs, each guaranteed half the space: a stream of
            // membership churn cannot starve custom broadcasts, nor they
            // the membership news.
            Message::Gossip => Payload::Piggyback,
            Message::Broadcast => Payload::Broadcasts,
            Message::Sync { .. } => {
                summary = self.summary();
                Payload::Summary(&summary, &[], Keeps::All)
            }
            _ => Payload::Piggyback,
        };
        self.send_with(dst, message, payload, runtime)
    }

    /// Sends `message` to `dst` carrying `records` instead of the backlog.
    pub(super) fn send_records(
        &mut self,
        dst: &T,
        message: Message<T>,
        records: &[Member<T>],
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        self.send_with(dst, message, Payload::Records(records), runtime)
    }

    /// About how many records fit a datagram, sized from our own record's
    /// encoded size.
    fn records_room(&mut self) -> Result<usize, Error> {
        let mut probe = Vec::with_capacity(32);
        let me = Member::alive(self.identity.clone(), self.incarnation);
        self.codec
            .encode_member(&me, &mut probe)
            .map_err(|e| Error::Encode(alloc::string::ToString::to_string(&e)))?;
        Ok(self.max_item_size() / probe.len().max(1))
    }

    /// Answers an announce with a random sample of active members, as many
    /// as fit (the sender itself excluded).
    pub(super) fn send_feed(
        &mut self,
        dst: &T,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        let room = self.records_room()?;
        let dst_addr = dst.addr();
        let mut records = Vec::with_capacity(room + 1);
        self.members.choose_active_records(
            room + 1,
            &mut self.rng,
            |m| m.id().addr() != dst_addr,
            &mut records,
        );
        self.send_with(dst, Message::Feed, Payload::Records(&records), runtime)
    }

    /// Most summaries answered per probe period: [`SYNC_ANSWER_FACTOR`]
    /// times the requests the config makes a member receive on average
    /// (each member asks `num_members` peers every `frequency`; an exchange
    /// may cost two answers), and at least that factor.
    fn sync_answer_limit(&self) -> u16 {
        let expected = self.config.periodic_sync.map_or(0, |p| {
            let per_period = self.config.probe_period.as_nanos() * u128::from(p.num_members);
            per_period.div_ceil(p.frequency.as_nanos().max(1))
        });
        let limit = expected
            .saturating_mul(SYNC_ANSWER_FACTOR)
            .max(SYNC_ANSWER_FACTOR);
        u16::try_from(limit).unwrap_or(u16::MAX)
    }

    /// This member's table summary: the table's, plus its own record.
    pub(super) fn summary(&self) -> Vec<u16> {
        let mut digest = self.members.digest().clone();
        digest.add(record_hash(&self.identity, self.incarnation));
        digest.into_sums()
    }

    /// Answers a summary (`theirs`) from `src` with our
    /// records in the buckets that differ: to a request, in one
    /// `Sync { reply: true }` that also carries our summary (so that `src`
    /// sends back its records there); to a reply, in a `Gossip`.
    pub(super) fn answer_sync(
        &mut self,
        src: &T,
        theirs: Summary<'_>,
        reply: bool,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        // Answering costs a pass over the table and up to two datagrams: a
        // peer (or a forger) asking far more often than the config makes
        // members ask is not answered beyond a bound.
        if self.sync_answers >= self.sync_answer_limit() {
            self.metrics.syncs_unanswered += 1;
            return Ok(());
        }
        self.sync_answers += 1;
        let ours = self.summary();
        if theirs.len() != ours.len() {
            // Configs that give different bucket counts: nothing to compare,
            // so a random sample, as an announce gets.
            return if reply {
                Ok(())
            } else {
                self.send_feed(src, runtime)
            };
        }
        let differs: Vec<bool> = theirs.sums().zip(&ours).map(|(t, o)| t != *o).collect();
        if !differs.contains(&true) {
            // Same tables: a reply only to bring kept broadcasts the
            // request did not carry.
            if reply || !self.kept_missing() {
                return Ok(());
            }
            return self.send_with(src, Message::Broadcast, Payload::Kept, runtime);
        }
        let bits = self.members.digest().bits();
        let in_differing = |id: &T, incarnation| {
            let bucket = Digest::bucket_of(record_hash(id, incarnation), bits);
            differs.get(bucket).copied().unwrap_or(false)
        };
        // As many as fit, starting at a random place so that when more
        // differ than fit, the next exchange brings others.
        let room = self.records_room()?;
        let mut records = Vec::new();
        if in_differing(&self.identity, self.incarnation) {
            records.push(Member::alive(self.identity.clone(), self.incarnation));
        }
        let active = self.members.active_members();
        let start = if active.is_empty() {
            0
        } else {
            self.rng.random_range(0..active.len())
        };
        let src_addr = src.addr();
        for m in active[start..].iter().chain(&active[..start]) {
            if records.len() > room {
                break;
            }
            if m.id().addr() != src_addr && in_differing(m.id(), m.incarnation()) {
                records.push(m.clone());
            }
        }
        // Down and left records too, after the active ones: a member that
        // missed a verdict holds that member active, so its bucket differs
        // (summaries sum active records only: a member that forgot a
        // verdict and one that still remembers it agree, and do not trade
        // old tombstones forever).
        let active = self.members.active_members().len();
        for m in &self.members.all()[active..] {
            if records.len() > room {
                break;
            }
            if m.id().addr() != src_addr && in_differing(m.id(), m.incarnation()) {
                records.push(m.clone());
            }
        }
        if reply {
            if records.is_empty() {
                return Ok(());
            }
            return self.send_records(src, Message::Gossip, &records, runtime);
        }
        self.send_with(
            src,
            Message::Sync { reply: true },
            Payload::Summary(&ours, &records, Keeps::Missing),
            runtime,
        )
    }

    /// Sends a `Gossip` to up to `fanout` random active members, if there is
    /// anything to gossip (membership updates or custom broadcasts).
    pub(super) fn gossip_to(
        &mut self,
        fanout: usize,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        if self.updates.is_empty() && self.broadcasts.is_empty() {
            return Ok(());
        }
        self.send_to_random(Pool::Active, fanout, |_| true, || Message::Gossip, runtime)
            .map(drop)
    }

    /// Sends `message()` to up to `count` random members of `pool` that
    /// `keep` accepts. Returns how many were chosen; on a failure to encode,
    /// the others are still sent to and the first error is returned.
    pub(super) fn send_to_random(
        &mut self,
        pool: Pool,
        count: usize,
        keep: impl FnMut(&Member<T>) -> bool,
        message: impl Fn() -> Message<T>,
        runtime: &mut impl Runtime<T>,
    ) -> Result<usize, Error> {
        let mut ids = core::mem::take(&mut self.ids);
        match pool {
            Pool::Active => self
                .members
                .choose_active(count, &mut self.rng, keep, &mut ids),
            Pool::Inactive => self
                .members
                .choose_inactive(count, &mut self.rng, keep, &mut ids),
        }
        let result = self.send_each(&ids, message, runtime).map(|()| ids.len());
        self.ids = ids;
        result
    }

    /// Sends `message()` to each of `ids`; the first error is returned after
    /// all were tried.
    pub(super) fn send_each(
        &mut self,
        ids: &[T],
        message: impl Fn() -> Message<T>,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        let mut result = Ok(());
        for id in ids {
            let sent = self.send(id, message(), runtime);
            result = result.and(sent);
        }
        result
    }

    fn send_with(
        &mut self,
        dst: &T,
        message: Message<T>,
        payload: Payload<'_, T>,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        let mut buf = core::mem::take(&mut self.buf);
        let header = Header {
            src: self.identity.clone(),
            src_incarnation: self.incarnation,
            dst: dst.clone(),
            message,
        };
        let dst_addr = dst.addr();
        let full = self.config.max_packet_size;
        let max = self.guard.room(&dst_addr, full);
        let padded = wire::is_padded(&header.message);
        let items_max = if padded {
            max.saturating_sub(wire::PAD_LEN)
        } else {
            max
        };
        // Gossip exists for what it carries: with nothing to carry for
        // `dst` (every broadcast held by it already), it is not sent.
        let optional = matches!(
            (&header.message, &payload),
            (Message::Gossip, Payload::Piggyback)
                | (Message::Broadcast, Payload::Broadcasts | Payload::Kept)
        );
        let result = match self.build(&mut buf, items_max, &header, payload) {
            Ok(false) if optional => Ok(()),
            Ok(_) => {
                if padded {
                    self.pad_request(&mut buf, &dst_addr, max);
                }
                self.guard.spend(&dst_addr, buf.len());
                self.metrics.datagrams_out += 1;
                self.metrics.bytes_out += buf.len() as u64;
                runtime.send_to(header.dst, &buf);
                Ok(())
            }
            // Over what an unproven source's datagram allows.
            Err(Error::HeaderTooLarge { .. }) if max < full => {
                self.metrics.replies_limited += 1;
                Ok(())
            }
            // A peer with an identity too large to answer: noise, not an error.
            Err(Error::HeaderTooLarge { .. }) if header.dst != self.identity => {
                self.metrics.unsendable += 1;
                Ok(())
            }
            Err(e) => Err(e),
        };
        self.buf = buf;
        result
    }

    /// Pads a request so that the answer it asks for is not cut short (see
    /// `guard`), with the shortest padding if `to` was proven by us (and so
    /// most likely proved us too) or is recorded down or left (most likely
    /// gone: if not, its first answer, cut short or not, starts a chain of
    /// exchanges that brings the rest).
    fn pad_request(&self, buf: &mut Vec<u8>, to: &T::Addr, max: usize) {
        let gone = self.member(to).is_some_and(|m| !m.is_active());
        let len = if gone || self.guard.is_proven(to) {
            0
        } else {
            let third = self
                .config
                .max_packet_size
                .div_ceil(super::AMPLIFICATION_FACTOR);
            third.min(max)
        };
        wire::pad(buf, len);
    }

    /// Emits the datagram: header, then the payload's items. Returns
    /// whether it holds any update or item.
    fn build(
        &mut self,
        buf: &mut Vec<u8>,
        max: usize,
        header: &Header<T>,
        payload: Payload<'_, T>,
    ) -> Result<bool, Error> {
        let sums = match payload {
            Payload::Summary(sums, _, _) => sums,
            _ => &[],
        };
        let mut w = Writer::new(buf, max, &mut self.codec, header, sums)?;
        let limit = self.config.max_transmissions(self.members.num_active() + 1);
        let to = &header.dst;
        let mut items = core::mem::take(&mut self.scratch);
        items.clear();
        let count = match payload {
            Payload::Records(records) => {
                self.push_records(&mut w, records)?;
                0
            }
            Payload::Summary(_, records, keeps) => {
                self.push_records(&mut w, records)?;
                self.fill_kept(&mut items, w.room(), keeps)
            }
            Payload::Kept => self.fill_kept(&mut items, w.room(), Keeps::Missing),
            Payload::Broadcasts => self.fill_broadcasts(&mut items, w.room(), limit, to).0,
            Payload::Piggyback => {
                let mut skip = core::mem::take(&mut self.written);
                skip.clear();
                self.write_findings(&mut w, &mut skip)?;
                self.tell_suspect(&mut w, to, &mut skip)?;
                // Each kind is guaranteed half the space when both wait;
                // whatever one leaves unused, the other may take. One fill
                // per kind: a second fill of updates would put the same
                // items in the datagram twice (and count both).
                let budget = w.room();
                let reserved = self.updates.bytes().min(budget / 2);
                let (count, bytes) = if self.broadcasts.is_empty() {
                    (0, 0)
                } else {
                    self.fill_broadcasts(&mut items, budget - reserved, limit, to)
                };
                self.fill_updates(&mut w, budget - bytes, limit, &skip);
                self.written = skip;
                count
            }
        };
        let carries = count > 0 || w.updates() > 0;
        w.finish(count, &items);
        self.scratch = items;
        Ok(carries)
    }

    /// Writes `records` while they fit.
    fn push_records(&mut self, w: &mut Writer<'_>, records: &[Member<T>]) -> Result<(), Error> {
        for record in records {
            if !w.push_update(&mut self.codec, record)? {
                break;
            }
        }
        Ok(())
    }

    /// Whether some kept custom broadcast is not among those the sync
    /// request being answered carried.
    fn kept_missing(&self) -> bool {
        self.kept
            .newest_first()
            .any(|(_, hash)| self.pushed.binary_search(&hash).is_err())
    }

    /// Fills framed kept custom broadcasts into `out` within `budget`,
    /// newest first; returns how many.
    fn fill_kept(&self, out: &mut Vec<u8>, budget: usize, keeps: Keeps) -> usize {
        let mut count = 0;
        let mut remaining = budget;
        for (data, hash) in self.kept.newest_first() {
            if keeps == Keeps::Missing && self.pushed.binary_search(&hash).is_ok() {
                continue;
            }
            let need = data.len() + wire::ITEM_FRAME;
            if need > remaining {
                continue;
            }
            wire::put_item(out, data);
            remaining -= need;
            count += 1;
            if remaining <= wire::ITEM_FRAME {
                break;
            }
        }
        count
    }

    /// Lifeguard: this member's own findings (suspicions its own probes
    /// raised or confirmed), first and marked as such, so that receivers
    /// count each reporter once. Adds the addresses written to `written`.
    fn write_findings(
        &mut self,
        w: &mut Writer<'_>,
        written: &mut Vec<T::Addr>,
    ) -> Result<(), Error> {
        for (addr, incarnation) in self.suspicions.findings() {
            let Some(record) = self
                .members
                .find(addr)
                .and_then(|pos| self.members.get(pos))
                .filter(|m| m.state() == State::Suspect && m.incarnation() == incarnation)
            else {
                continue;
            };
            if !w.push_finding(&mut self.codec, record)? {
                break;
            }
            written.push(addr.clone());
        }
        Ok(())
    }

    /// Buddy system (Lifeguard): a member we suspect hears it from us
    /// first thing, so it can refute even if the gossip missed it. Writes
    /// `to`'s record if it is a suspect, not written yet, and fits; adds
    /// its address to `written` then (the backlog fill must skip it).
    fn tell_suspect(
        &mut self,
        w: &mut Writer<'_>,
        to: &T,
        written: &mut Vec<T::Addr>,
    ) -> Result<(), Error> {
        if self.members.num_suspects() == 0 {
            return Ok(());
        }
        let addr = to.addr();
        if written.contains(&addr) {
            return Ok(());
        }
        let Some(record) = self
            .member(&addr)
            .filter(|m| m.id() == to && m.state() == State::Suspect)
            .cloned()
        else {
            return Ok(());
        };
        if w.push_update(&mut self.codec, &record)? {
            written.push(addr);
        }
        Ok(())
    }

    /// Fills backlogged updates within `budget`, except those about the
    /// addresses in `skip` (already written).
    fn fill_updates(&mut self, w: &mut Writer<'_>, budget: usize, limit: u32, skip: &[T::Addr]) {
        let own = self.identity.addr();
        let (identity, incarnation, status) = (&self.identity, self.incarnation, self.status);
        let (members, detached, codec) = (&self.members, &self.detached, &mut self.codec);
        let (count, _) = self.updates.fill(
            w.buf(),
            budget,
            0,
            limit,
            |addr, _, _| {
                if skip.contains(addr) {
                    Pick::Skip
                } else {
                    Pick::Send
                }
            },
            |out, addr, _, _| {
                if *addr == own {
                    let state = if status == Status::Left {
                        State::Left
                    } else {
                        State::Alive
                    };
                    let me = Member::new(identity.clone(), incarnation, state);
                    return codec.encode_member(&me, out).is_ok();
                }
                let record = members
                    .find(addr)
                    .and_then(|pos| members.get(pos))
                    .or_else(|| detached.iter().find(|m| m.id().addr() == *addr));
                // Not found: forgotten since it was queued; it is dropped.
                record.is_some_and(|m| codec.encode_member(m, out).is_ok())
            },
        );
        w.counted(count);
    }

    /// Fills framed custom broadcast items into `out` within `budget`: those
    /// `to` is not known to hold. An item every active member holds is
    /// retired (its transmissions could reach nobody new).
    fn fill_broadcasts(
        &mut self,
        out: &mut Vec<u8>,
        budget: usize,
        limit: u32,
        to: &T,
    ) -> (usize, usize) {
        let (handler, members) = (&self.handler, &self.members);
        let dst = to.addr();
        let filled = self.broadcasts.fill(
            out,
            budget,
            wire::ITEM_FRAME,
            limit,
            |_, queued, data| {
                if !queued.holders.contains(&dst) {
                    return if handler.should_send(&queued.broadcast, data, to) {
                        Pick::Send
                    } else {
                        Pick::Skip
                    };
                }
                // Cheap first: fewer holders than active members cannot
                // cover them (the common case beyond a few members).
                if queued.holders.len() < members.num_active() {
                    return Pick::Held;
                }
                let held = queued
                    .holders
                    .iter()
                    .filter(|a| {
                        members
                            .find(a)
                            .and_then(|pos| members.get(pos))
                            .is_some_and(|m| m.is_active())
                    })
                    .count();
                if held >= members.num_active() {
                    Pick::Retire
                } else {
                    Pick::Held
                }
            },
            |out, _, queued, data| {
                // Items are refused at insert if they exceed a datagram.
                wire::put_item(out, data);
                queued.holders.push(dst.clone());
                true
            },
        );
        for (key, data) in self.broadcasts.drain_retired() {
            self.kept.keep(key, data);
        }
        filled
    }
}
