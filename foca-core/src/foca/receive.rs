//! Receiving a datagram: decode it whole, vet the sender, then act.

use alloc::vec::Vec;

use rand::Rng;

use super::send::Pool;
use super::{Foca, Status};
use crate::members::MAX_BUCKET_BITS;
use crate::{BroadcastHandler, Codec, Error, Header, Identity, Member, Message, Runtime, Timer};

/// A datagram decoded in full; nothing applied yet.
struct Decoded<'a, T> {
    header: Header<T>,
    /// A `Sync`'s summary: big-endian sums (empty for other messages).
    summary: &'a [u8],
    updates: Vec<Member<T>>,
    broadcasts: Vec<&'a [u8]>,
}

/// Reads a big-endian `u16` off the front of `input`.
fn take_u16(input: &mut &[u8]) -> Option<u16> {
    let (head, rest) = input.split_first_chunk::<2>()?;
    *input = rest;
    Some(u16::from_be_bytes(*head))
}

impl<T, C, R, B> Foca<T, C, R, B>
where
    T: Identity,
    C: Codec<T>,
    R: Rng,
    B: BroadcastHandler<T>,
{
    /// Decodes a whole datagram, or nothing: a failure anywhere rejects it.
    /// Allocations are bounded by the input length (each update takes at
    /// least one byte, each broadcast at least three).
    fn decode<'a>(&mut self, data: &'a [u8]) -> Option<Decoded<'a, T>> {
        let mut input = data;
        let header = self.codec.decode_header(&mut input).ok()?;
        let mut summary: &[u8] = &[];
        if matches!(header.message, Message::Sync { .. }) {
            let k = usize::from(take_u16(&mut input)?);
            if !k.is_power_of_two() || k > 1 << MAX_BUCKET_BITS || 2 * k > input.len() {
                return None;
            }
            let (sums, rest) = input.split_at(2 * k);
            summary = sums;
            input = rest;
        }
        let count = usize::from(take_u16(&mut input)?);
        if count > input.len() {
            return None;
        }
        let mut updates = Vec::with_capacity(count);
        for _ in 0..count {
            let before = input.len();
            let member = self.codec.decode_member(&mut input).ok()?;
            if input.len() >= before {
                // A codec that consumes nothing would let `count` lie.
                return None;
            }
            updates.push(member);
        }
        let items = usize::from(take_u16(&mut input)?);
        // Each item takes at least 3 bytes (length and one byte of data).
        if items > input.len() / 3 {
            return None;
        }
        let mut broadcasts = Vec::with_capacity(items);
        for _ in 0..items {
            let len = usize::from(take_u16(&mut input)?);
            if len == 0 || len > input.len() {
                return None;
            }
            let (item, rest) = input.split_at(len);
            broadcasts.push(item);
            input = rest;
        }
        if !input.is_empty() {
            return None;
        }
        Some(Decoded {
            header,
            summary,
            updates,
            broadcasts,
        })
    }

    pub(super) fn receive(
        &mut self,
        data: &[u8],
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        self.traffic.datagrams_in += 1;
        self.traffic.bytes_in += data.len() as u64;
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
        let Some(Decoded {
            header,
            summary,
            updates,
            broadcasts,
        }) = self.decode(data)
        else {
            self.metrics.dropped.decode += 1;
            trace_event!(reason = "decode", "datagram dropped");
            return Ok(());
        };
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
            return Ok(());
        }
        if dst != self.identity && !(dst.addr() == own_addr && message == Message::Announce) {
            self.metrics.dropped.wrong_destination += 1;
            trace_event!(reason = "wrong_destination", "datagram dropped");
            // A probe of a former identity of ours (we restarted, and the
            // news missed this sender): answer with who we are now, or it
            // would declare the old identity down and never learn the new.
            if dst.addr() == own_addr
                && self.identity.win_addr_conflict(&dst)
                && matches!(message, Message::Ping(_) | Message::IndirectPing { .. })
            {
                let me = Member::alive(self.identity.clone(), self.incarnation);
                self.send_records(&src, Message::Gossip, &[me], runtime)?;
            }
            return Ok(());
        }
        if updates.len() > 1 {
            // Each update is a lookup in a table that is mostly out of
            // cache (a feed carries dozens): start their reads together.
            self.members
                .warm_many(updates.iter().map(|u| u.id().addr()));
        }
        if let Some(known) = self.member(&src.addr()).cloned() {
            if known.id() != &src {
                if known.id().win_addr_conflict(&src) {
                    self.metrics.dropped.stale_identity += 1;
                    trace_event!(reason = "stale_identity", "datagram dropped");
                    return Ok(());
                }
            } else if !known.is_active() && known.incarnation() >= src_incarnation {
                // It talks, but we recorded it down or left: tell it, so it
                // can refute and come back (a member that really left
                // ignores this; one restarted with the same identity
                // rejoins at once). Never answer a TurnUndead with one (two
                // members could bounce them forever).
                if message != Message::TurnUndead {
                    self.metrics.dropped.from_down_member += 1;
                    trace_event!(reason = "from_down_member", "datagram dropped");
                    self.send_records(&src, Message::TurnUndead, &[known], runtime)?;
                    return Ok(());
                }
                // A TurnUndead from a member we recorded gone: each side
                // recorded the other gone (after a partition, say). Not a
                // drop: its news about us is applied (we refute) and we
                // announce at once, or neither would ever listen to the
                // other again. Its other news is ignored.
                for update in updates {
                    if update.id().addr() == own_addr {
                        self.apply_update(update, runtime)?;
                    }
                }
                let result = self.act_on(src, message, summary, runtime);
                self.after_change(runtime);
                return result;
            }
        }

        // A datagram is proof of life of its sender at that incarnation.
        self.apply_update(Member::alive(src.clone(), src_incarnation), runtime)?;
        let known = self.members.len();
        self.verdict_budget = 1;
        let applied = updates
            .into_iter()
            .try_for_each(|update| self.apply_update(update, runtime));
        self.verdict_budget = 0;
        applied?;
        // A feed that taught us members we did not know means our view is
        // far behind (we just joined, or came back after being cut off):
        // pull another one, from someone else, until feeds stop bringing
        // news. Likewise for the records answering our summary: the
        // buckets that differed held members we lacked, and likely more
        // than one datagram's worth: compare with someone else at once.
        let follow_up = match message {
            Message::Feed => Some(Message::Announce),
            Message::Sync { reply: true } => Some(Message::Sync { reply: false }),
            _ => None,
        };
        if let Some(next) = follow_up
            && self.members.len() > known
        {
            self.send_to_random(
                Pool::Active,
                1,
                |m| m.id() != &src,
                || next.clone(),
                runtime,
            )?;
        }
        for item in broadcasts {
            match self.handler.receive_item(item, Some(&src)) {
                Ok(Some(broadcast)) => {
                    self.enqueue_broadcast(broadcast, item);
                }
                Ok(None) => {}
                Err(_) => self.metrics.broadcasts_rejected += 1,
            }
        }
        let result = self.act_on(src, message, summary, runtime);
        self.after_change(runtime);
        result
    }

    /// Answers the request a message carries.
    fn act_on(
        &mut self,
        src: T,
        message: Message<T>,
        summary: &[u8],
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
            } => {
                let target_addr = target.addr();
                if target_addr == own_addr || target_addr == src.addr() {
                    return Ok(());
                }
                self.send(
                    &target,
                    Message::IndirectPing {
                        origin: src,
                        probe_number,
                    },
                    runtime,
                )
            }
            Message::IndirectPing {
                origin,
                probe_number,
            } => self.send(
                &src,
                Message::IndirectAck {
                    origin,
                    probe_number,
                },
                runtime,
            ),
            Message::IndirectAck {
                origin,
                probe_number,
            } => {
                if origin.addr() == own_addr || origin.addr() == src.addr() {
                    return Ok(());
                }
                self.send(
                    &origin,
                    Message::ForwardedAck {
                        target: src,
                        probe_number,
                    },
                    runtime,
                )
            }
            Message::ForwardedAck {
                target,
                probe_number,
            } => {
                self.register_ack(&target, probe_number, true, runtime);
                Ok(())
            }
            Message::Announce => self.send_feed(&src, runtime),
            Message::TurnUndead => {
                // The update it carried was applied above: if it was about us
                // at our incarnation, we refuted. Tell the sender right away.
                self.send(&src, Message::Announce, runtime)
            }
            Message::Sync { reply } => self.answer_sync(&src, summary, reply, runtime),
            Message::Feed | Message::Gossip | Message::Broadcast => Ok(()),
        }
    }

    fn register_ack(
        &mut self,
        from: &T,
        probe_number: crate::ProbeNumber,
        forwarded: bool,
        runtime: &mut impl Runtime<T>,
    ) {
        let Some(target) = self.probe.target.as_ref() else {
            return;
        };
        if self.probe.acked || self.probe.number != probe_number || target.id() != from {
            return;
        }
        self.probe.acked = true;
        if forwarded && self.probe.indirect_sent {
            self.metrics.indirect_successes += 1;
        }
        if !self.probe.indirect_done {
            // Acked in time: the indirect stage has nothing to do.
            runtime.cancel(&Timer::SendIndirectProbe {
                probed_id: from.clone(),
                probe_number,
            });
        }
    }
}
