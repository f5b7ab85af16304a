//! A stateful target: one `Endpoint` (`127.0.0.1:7000#1`, postcard codec,
//! `Config::new_lan(8)`, members in every state applied and restored) fed
//! a sequence of at most [`MAX_OPS`] operations decoded from the input:
//!
//! - a datagram from one of a few source addresses (members of the table in
//!   every state, strangers, the endpoint's own): raw fuzz bytes, a fuzz
//!   payload sealed by a twin of the endpoint's envelope, or a well-formed
//!   datagram built with `foca_core::wire::Writer` (fuzz-chosen header,
//!   message, records, broadcast items and padding) sealed by the twin, or
//!   by an envelope of the other kind (which the endpoint must refuse);
//! - the virtual clock moved forward, then `handle_timeouts`;
//! - a command: `Gossip`, or `Announce` to some identity.
//!
//! The first input byte picks the variant: a plain envelope (CRC32C, not
//! authenticated), or XChaCha20-Poly1305 with a fixed key. The harness
//! holds a twin envelope (same label, same key) to seal what it sends and
//! to open what the endpoint sends.
//!
//! After every operation the transmits and events are drained and checked:
//! 1. no panic; `handle_datagram`, `handle_timeouts` and the commands
//!    return `Ok`;
//! 2. anti-amplification (plain variant): while handling a datagram from an
//!    address never validated, what goes to never-validated addresses
//!    totals at most `AMPLIFICATION_FACTOR` times the datagram's wire
//!    length. An address counts as validated once the harness delivered
//!    from it a datagram that decodes to an `Ack`: a superset of what the
//!    core proves (a direct ack of its own probe). The sealed variant is
//!    exempt: the core does not limit authenticated datagrams;
//! 3. never defunct: no `Notification::Defunct`, and the connection state
//!    never `Defunct` (nothing here changes the identity by command);
//! 4. bounded: members ≤ `max_members`, updates backlog ≤
//!    `max_updates_backlog`, pending timers ≤ `MAX_CHAIN_TIMERS` + 2 per
//!    table row, at most [`MAX_TRANSMITS_PER_OP`] transmits per operation,
//!    each within `max_datagram()`; nothing lost by the queues or the
//!    envelope;
//! 5. well-formed output: every transmit opens with the twin envelope and
//!    parses, from this member's address, to the address it is sent to;
//! 6. a datagram the twin envelope refuses gets no answer and no event.
#![no_main]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use foca_codec::{Cipher, Envelope, PostcardCodec};
use foca_core::wire::{self, Writer, put_item};
use foca_core::{
    AMPLIFICATION_FACTOR, Command, ConnectionState, Event, GenerationalId, Header, Identity,
    Incarnation, MAX_CHAIN_TIMERS, Member, Message, Notification, ProbeNumber, State,
};
use foca_fuzz::{
    FuzzedEndpoint, Id, SELF_PORT, addr, encrypted_envelope, fuzzed_endpoint, plain_envelope,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Most operations per input.
const MAX_OPS: usize = 64;

/// Most transmits one operation may produce.
const MAX_TRANSMITS_PER_OP: usize = 64;

/// Ports datagrams come from (all on 127.0.0.1): the endpoint's own, the
/// members of the table (7001-7003 alive, 7004 suspect, 7005 down, 7006
/// left, 7007 restored alive) and two strangers.
const SOURCE_PORTS: [u16; 10] = [
    SELF_PORT, 7001, 7002, 7003, 7004, 7005, 7006, 7007, 7008, 7009,
];

/// Generations of the identities in headers and records (1 is what every
/// member of the table has).
const GENERATIONS: [u32; 5] = [1, 1, 0, 2, u32::MAX];

/// Incarnations worth trying: small ones, around `max_incarnation_step`
/// (64), and the end of the range.
const INCARNATIONS: [Incarnation; 10] = [0, 1, 2, 3, 4, 63, 64, 65, u32::MAX - 1, u32::MAX];

/// Probe numbers the endpoint sent recently, kept for acks.
const PROBES_KEPT: usize = 8;

/// The variant's envelope for the endpoint and its twin (same label, same
/// key, another nonce seed), and an envelope of the other variant.
fn envelopes(sealed: bool) -> (Envelope, Envelope, Envelope) {
    let cipher = Cipher::XChaCha20Poly1305;
    if sealed {
        (
            encrypted_envelope(cipher, 1),
            encrypted_envelope(cipher, 2),
            plain_envelope(),
        )
    } else {
        (
            plain_envelope(),
            plain_envelope(),
            encrypted_envelope(cipher, 3),
        )
    }
}

struct Harness {
    ep: FuzzedEndpoint,
    /// Seals what the harness sends, opens what the endpoint sends.
    twin: Envelope,
    /// The other variant's envelope: the endpoint must refuse its datagrams.
    other: Envelope,
    sealed: bool,
    codec: PostcardCodec<Id>,
    now: Duration,
    /// Addresses the harness delivered an `Ack` from (see the module docs).
    validated: HashSet<SocketAddr>,
    /// Probe numbers seen in the endpoint's datagrams, newest last.
    probes: Vec<ProbeNumber>,
    /// The last summary the endpoint sent in a `Sync`.
    summary: Vec<u16>,
}

impl Harness {
    fn new(sealed: bool) -> Self {
        let (envelope, twin, other) = envelopes(sealed);
        let mut h = Self {
            ep: fuzzed_endpoint(envelope),
            twin,
            other,
            sealed,
            codec: PostcardCodec::new(),
            now: Duration::ZERO,
            validated: HashSet::new(),
            probes: Vec::new(),
            summary: Vec::new(),
        };
        h.drain("setup");
        h
    }

    /// Decodes and runs one operation.
    fn step(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        match u.int_in_range(0u8..=15)? {
            0..=10 => self.datagram(u),
            11..=13 => self.advance(u),
            _ => self.command(u),
        }
    }

    /// A datagram from one of [`SOURCE_PORTS`].
    fn datagram(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let from = addr(*u.choose(&SOURCE_PORTS)?);
        let mut bytes = Vec::new();
        match u.int_in_range(0u8..=9)? {
            // Raw bytes: mostly refused by the envelope.
            0 => {
                let len = u.int_in_range(0usize..=1500)?.min(u.len());
                bytes.extend_from_slice(u.bytes(len)?);
            }
            // A fuzz payload, sealed so that it opens.
            1 => {
                let len = u.int_in_range(0usize..=1400)?.min(u.len());
                let payload = u.bytes(len)?.to_vec();
                self.twin.seal(&payload, &mut bytes).expect("fits");
            }
            // A well-formed datagram sealed by the envelope of the other
            // kind: a plain forgery, or a key the endpoint lacks.
            2 => {
                let payload = self.payload(u, from)?;
                self.other.seal(&payload, &mut bytes).expect("fits");
            }
            // A well-formed datagram, sealed so that it opens.
            _ => {
                let payload = self.payload(u, from)?;
                self.twin.seal(&payload, &mut bytes).expect("fits");
                // Now and then damaged on the way: one bit flipped.
                if u.ratio(1u8, 16)? && !bytes.is_empty() {
                    let i = u.choose_index(bytes.len())?;
                    bytes[i] ^= 1 << u.int_in_range(0u8..=7)?;
                }
            }
        }
        self.deliver(from, bytes);
        Ok(())
    }

    /// Feeds `bytes` from `from` and checks the answer.
    fn deliver(&mut self, from: SocketAddr, mut bytes: Vec<u8>) {
        let wire_len = bytes.len();
        let mut copy = bytes.clone();
        let message = match self.twin.open_in_place(&mut copy) {
            Ok(payload) => Some(
                wire::parse::<Id, _>(&mut self.codec, payload)
                    .map(|d| d.header.message)
                    .ok(),
            ),
            Err(_) => None,
        };
        let refused = message.is_none();
        if let Some(Some(Message::Ack(_))) = message {
            self.validated.insert(from);
        }
        let limited = !self.sealed && !self.validated.contains(&from);

        let result = self.ep.handle_datagram(self.now, from, &mut bytes);
        assert!(result.is_ok(), "handle_datagram failed: {result:?}");
        let (sent, events) = self.drain("handle_datagram");

        if refused {
            // Oracle 6.
            assert!(
                sent.is_empty() && events == 0,
                "a datagram the envelope refuses got {} transmits and {events} events",
                sent.len()
            );
        }
        if limited {
            // Oracle 2.
            let to_unvalidated: usize = sent
                .iter()
                .filter(|(to, _)| !self.validated.contains(to))
                .map(|(_, len)| len)
                .sum();
            assert!(
                to_unvalidated <= AMPLIFICATION_FACTOR * wire_len,
                "a datagram of {wire_len} bytes from unvalidated {from} got {to_unvalidated} \
                 bytes sent to unvalidated addresses: {sent:?}"
            );
        }
    }

    /// A well-formed payload: a header claiming (mostly) the sender's
    /// address, a message, a few records and broadcast items, padding.
    fn payload(&mut self, u: &mut Unstructured<'_>, from: SocketAddr) -> Result<Vec<u8>> {
        let src = if u.ratio(3u8, 4)? {
            GenerationalId::new(from, *u.choose(&GENERATIONS)?)
        } else {
            self.identity(u)?
        };
        let dst = if u.ratio(7u8, 8)? {
            *self.ep.foca().identity()
        } else {
            self.identity(u)?
        };
        let header = Header {
            src,
            src_incarnation: self.incarnation(u)?,
            dst,
            message: self.message(u)?,
        };
        let sums = if matches!(header.message, Message::Sync { .. }) {
            self.sums(u)?
        } else {
            Vec::new()
        };

        let max = self.ep.foca().config().max_packet_size;
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out, max, &mut self.codec, &header, &sums)
            .expect("a small header fits");
        for _ in 0..u.int_in_range(0u8..=6)? {
            let member = Member::new(
                self.identity(u)?,
                self.incarnation(u)?,
                *u.choose(&[State::Alive, State::Suspect, State::Down, State::Left])?,
            );
            if !w.push_update(&mut self.codec, &member).expect("encodes") {
                break;
            }
        }
        // Items are refused by the endpoint (no broadcast handler), but
        // parsed and counted.
        let mut items = Vec::new();
        let count = if u.ratio(1u8, 8)? {
            let n = u.int_in_range(1u8..=2)?;
            for _ in 0..n {
                let len = u.int_in_range(1usize..=8)?;
                put_item(&mut items, &[0xB5; 8][..len]);
            }
            usize::from(n)
        } else {
            0
        };
        w.finish(count, &items);
        if wire::is_padded(&header.message) {
            wire::pad(&mut out, u.int_in_range(0usize..=max)?);
        }
        Ok(out)
    }

    /// An identity: the endpoint's own, or one at the address of a member,
    /// a stranger, the endpoint, or another IP, at some generation.
    fn identity(&mut self, u: &mut Unstructured<'_>) -> Result<Id> {
        if u.ratio(1u8, 8)? {
            return Ok(*self.ep.foca().identity());
        }
        let address = if u.ratio(1u8, 16)? {
            SocketAddr::from(([10, 0, 0, 1], 7001))
        } else {
            addr(*u.choose(&SOURCE_PORTS)?)
        };
        Ok(GenerationalId::new(address, *u.choose(&GENERATIONS)?))
    }

    fn incarnation(&mut self, u: &mut Unstructured<'_>) -> Result<Incarnation> {
        if u.ratio(1u8, 8)? {
            u.arbitrary()
        } else {
            u.choose(&INCARNATIONS).copied()
        }
    }

    /// A probe number: mostly one the endpoint sent.
    fn probe_number(&mut self, u: &mut Unstructured<'_>) -> Result<ProbeNumber> {
        if !self.probes.is_empty() && u.ratio(3u8, 4)? {
            u.choose(&self.probes).copied()
        } else {
            u.arbitrary()
        }
    }

    fn message(&mut self, u: &mut Unstructured<'_>) -> Result<Message<Id>> {
        Ok(match u.int_in_range(0u8..=13)? {
            0 => Message::Ping(self.probe_number(u)?),
            1 | 2 => Message::Ack(self.probe_number(u)?),
            3 => Message::PingReq {
                target: self.identity(u)?,
                probe_number: self.probe_number(u)?,
            },
            4 => Message::IndirectPing {
                origin: self.identity(u)?,
                probe_number: self.probe_number(u)?,
            },
            5 => Message::IndirectAck {
                origin: self.identity(u)?,
                probe_number: self.probe_number(u)?,
            },
            6 => Message::ForwardedAck {
                target: self.identity(u)?,
                probe_number: self.probe_number(u)?,
            },
            7 => Message::Announce,
            8 => Message::Feed,
            9 => Message::Gossip,
            10 => Message::TurnUndead,
            11 => Message::Broadcast,
            12 => Message::Nack(self.probe_number(u)?),
            _ => Message::Sync {
                reply: u.arbitrary()?,
            },
        })
    }

    /// A `Sync` summary: the endpoint's last one, perhaps with one sum
    /// changed, or fuzz-chosen sums of a power-of-two count.
    fn sums(&mut self, u: &mut Unstructured<'_>) -> Result<Vec<u16>> {
        if !self.summary.is_empty() && u.ratio(3u8, 4)? {
            let mut sums = self.summary.clone();
            if u.arbitrary()? {
                let i = u.choose_index(sums.len())?;
                sums[i] = u.arbitrary()?;
            }
            return Ok(sums);
        }
        let k = 1usize << u.int_in_range(0u8..=5)?;
        (0..k).map(|_| u.arbitrary()).collect()
    }

    /// Moves the clock forward (to the next deadline, or by up to a few
    /// minutes, past `remove_down_after`) and fires the timers due.
    fn advance(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let step = match u.int_in_range(0u8..=3)? {
            0 => self
                .ep
                .next_deadline()
                .map_or(Duration::ZERO, |d| d.saturating_sub(self.now)),
            1 => Duration::from_millis(u.int_in_range(0..=1_000)?),
            2 => Duration::from_millis(u.int_in_range(0..=10_000)?),
            _ => Duration::from_millis(u.int_in_range(0..=300_000)?),
        };
        self.now += step;
        let result = self.ep.handle_timeouts(self.now);
        assert!(result.is_ok(), "handle_timeouts failed: {result:?}");
        self.drain("handle_timeouts");
        Ok(())
    }

    /// `Gossip`, or `Announce` to an identity not at the endpoint's address.
    fn command(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let own = self.ep.foca().identity().addr();
        let dst = self.identity(u)?;
        let command = if u.arbitrary()? && dst.addr() != own {
            Command::Announce(dst)
        } else {
            Command::Gossip
        };
        let result = self.ep.command(self.now, command.clone());
        assert!(result.is_ok(), "{command:?} failed: {result:?}");
        self.drain("command");
        Ok(())
    }

    /// Drains and checks the outputs of one operation (`what`). Returns the
    /// transmits' destinations and wire lengths, and the number of events.
    fn drain(&mut self, what: &str) -> (Vec<(SocketAddr, usize)>, usize) {
        let own = self.ep.foca().identity().addr();
        let max_datagram = self.ep.max_datagram();
        let mut sent = Vec::new();
        while let Some(t) = self.ep.poll_transmit() {
            // Oracles 4 and 5.
            assert!(
                t.data.len() <= max_datagram,
                "{what}: a transmit of {} bytes, over max_datagram {max_datagram}",
                t.data.len()
            );
            let mut data = t.data.clone();
            let payload = self
                .twin
                .open_in_place(&mut data)
                .unwrap_or_else(|e| panic!("{what}: a transmit the twin cannot open: {e:?}"));
            let datagram = wire::parse::<Id, _>(&mut self.codec, payload)
                .unwrap_or_else(|e| panic!("{what}: a transmit that does not parse: {e}"));
            let header = &datagram.header;
            assert_eq!(header.src.addr(), own, "{what}: sent as someone else");
            assert_eq!(header.dst.addr(), t.to, "{what}: sent to the wrong address");
            match &header.message {
                Message::Ping(n)
                | Message::PingReq {
                    probe_number: n, ..
                }
                | Message::IndirectPing {
                    probe_number: n, ..
                } => {
                    if self.probes.len() == PROBES_KEPT {
                        self.probes.remove(0);
                    }
                    self.probes.push(*n);
                }
                Message::Sync { .. } => self.summary = datagram.summary.sums().collect(),
                _ => {}
            }
            sent.push((t.to, t.data.len()));
            self.ep.recycle(t.data);
        }
        assert!(
            sent.len() <= MAX_TRANSMITS_PER_OP,
            "{what}: {} transmits from one operation",
            sent.len()
        );

        let mut events = 0;
        while let Some(event) = self.ep.poll_event() {
            // Oracle 3.
            assert!(
                event != Event::Membership(Notification::Defunct),
                "{what}: defunct from remote input"
            );
            events += 1;
        }
        let _ = self.ep.poll_snapshot(self.now);

        let foca = self.ep.foca();
        let config = foca.config();
        assert_ne!(
            foca.connection_state(),
            ConnectionState::Defunct,
            "{what}: defunct from remote input"
        );
        assert!(
            foca.num_members() <= config.max_members,
            "{what}: {} members, over max_members {}",
            foca.num_members(),
            config.max_members
        );
        assert!(
            foca.updates_backlog() <= config.max_updates_backlog,
            "{what}: updates backlog {}, over {}",
            foca.updates_backlog(),
            config.max_updates_backlog
        );
        let rows = foca.iter_membership_state().count();
        assert!(
            self.ep.pending_timers() <= MAX_CHAIN_TIMERS + 2 * rows,
            "{what}: {} timers pending for {rows} table rows",
            self.ep.pending_timers()
        );
        let m = self.ep.metrics();
        assert_eq!(
            (m.dropped_transmits, m.dropped_events, m.seal_errors),
            (0, 0, 0),
            "{what}: queues or the envelope lost output"
        );
        (sent, events)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(variant) = u.arbitrary::<u8>() else {
        return;
    };
    let mut h = Harness::new(variant & 1 == 1);
    for _ in 0..MAX_OPS {
        // Out of input: the sequence ends (a half-decoded operation that
        // ran out of bytes is simply not run).
        if u.is_empty() || h.step(&mut u).is_err() {
            break;
        }
    }
});
