//! What a member sends back to addresses that have not proven themselves.
//!
//! A plain datagram's source address can be forged, and so can the sender
//! it claims. Without a bound, a forger sends one small datagram and a
//! member answers a third party with a large one (an announce of 40 bytes
//! got a feed of 1,400), or with many. So, after QUIC (RFC 9000 §8):
//!
//! - An address has *proven* itself once it answered one of this member's
//!   pings directly (an ack can only come from whoever received the ping),
//!   or once a datagram from it was authenticated by the envelope's key.
//! - While a datagram from an address that has not proven itself is
//!   handled, everything sent to addresses that have not either totals at
//!   most [`AMPLIFICATION_FACTOR`] times the datagram's bytes on the wire:
//!   replies are cut short (fewer piggybacked updates) or not sent, and
//!   counted (`Metrics::replies_limited`). Requests for a large answer
//!   (announces, summaries) are padded to a third of a datagram so that a
//!   full answer fits (see [`wire::pad`](crate::wire::pad)), unless sent to
//!   an address this member proved: proofs mostly go both ways (after a
//!   probe round, every pair of members has pinged each other), so a
//!   long-running cluster pads almost nothing.
//! - An address gets at most [`MAX_FEEDS_PER_SOURCE`] feeds per probe
//!   period, proven or not.
//! - News from others of a member not in the table, or of a member held
//!   active under a new identity (a restart), is checked with a ping
//!   instead of believed: made-up members at a third party's addresses
//!   would otherwise be spread and probed by every member. The pings one
//!   datagram causes total at most [`AMPLIFICATION_FACTOR`] times its
//!   bytes, proven source or not.
//!
//! Only [`Foca::handle_data_from`](super::Foca::handle_data_from) (which the
//! [`Endpoint`](crate::Endpoint) calls) knows a datagram's source; through
//! [`Foca::handle_data`](super::Foca::handle_data) nothing is limited.

use alloc::vec::Vec;

use foldhash::fast::FixedState;
use hashbrown::HashSet;

/// What a member may send to unproven addresses while handling a datagram
/// from an unproven one, as a multiple of that datagram's size (RFC 9000's
/// anti-amplification limit).
pub const AMPLIFICATION_FACTOR: usize = 3;

/// Most feeds (answers to announces) sent to one address per probe period.
pub const MAX_FEEDS_PER_SOURCE: u8 = 2;

/// Most distinct addresses whose feeds are counted in a probe period;
/// beyond, announces are answered without counting (each is still bound by
/// [`AMPLIFICATION_FACTOR`] unless authenticated).
const FEED_SOURCES_COUNTED: usize = 256;

/// Fewest checks (of a rename or of a new member heard from others, one
/// ping each) per probe period; the bound is `max_members / 2` when that
/// is more. The rest wait for the news to come again.
const MIN_CHECKS_PER_PERIOD: usize = 256;

/// The datagram being handled.
struct Inbound<A> {
    from: A,
    /// Bytes that may still go to unproven addresses; `None`: no bound
    /// (the source has proven itself).
    allowance: Option<usize>,
    /// The envelope's overhead, added to each datagram sent.
    overhead: usize,
    /// Bytes of checks (pings to members it told of) it may still cause,
    /// proven or not: what a check costs is charged to whoever asked for
    /// it, so news of members that do not exist, at a third party's
    /// addresses, gets that third party at most 3× the news' bytes.
    checks: usize,
    /// Checks it caused.
    checked: usize,
}

/// The source-related state of a member (see the module docs).
pub(super) struct Guard<A> {
    proven: HashSet<A, FixedState>,
    inbound: Option<Inbound<A>>,
    feeds: Vec<(A, u8)>,
    /// Addresses pinged this probe period to check news heard from others
    /// (see `Foca::check_newcomer` and `Foca::confirm_rename`).
    checks: HashSet<A, FixedState>,
}

impl<A: Clone + Eq + core::hash::Hash> Guard<A> {
    pub(super) fn new(seed: u64) -> Self {
        Self {
            proven: HashSet::with_hasher(FixedState::with_seed(seed)),
            inbound: None,
            feeds: Vec::new(),
            checks: HashSet::with_hasher(FixedState::with_seed(seed.rotate_left(16))),
        }
    }

    /// Starts handling a datagram of `wire_len` bytes from `from`.
    pub(super) fn begin(&mut self, from: A, wire_len: usize, authenticated: bool, overhead: usize) {
        let allowance = (!authenticated && !self.proven.contains(&from))
            .then(|| wire_len.saturating_mul(AMPLIFICATION_FACTOR));
        self.inbound = Some(Inbound {
            from,
            allowance,
            overhead,
            checks: wire_len.saturating_mul(AMPLIFICATION_FACTOR),
            checked: 0,
        });
    }

    /// Done with the datagram.
    pub(super) fn end(&mut self) {
        self.inbound = None;
    }

    /// The source of the datagram being handled, if known.
    pub(super) fn source(&self) -> Option<&A> {
        self.inbound.as_ref().map(|i| &i.from)
    }

    /// The largest payload that may go to `to` now: `max`, or less while
    /// handling an unproven source's datagram and `to` is unproven too.
    pub(super) fn room(&self, to: &A, max: usize) -> usize {
        match &self.inbound {
            Some(Inbound {
                allowance: Some(left),
                overhead,
                ..
            }) if !self.proven.contains(to) => left.saturating_sub(*overhead).min(max),
            _ => max,
        }
    }

    /// Counts a payload of `len` bytes sent to `to`.
    pub(super) fn spend(&mut self, to: &A, len: usize) {
        if let Some(Inbound {
            allowance: Some(left),
            overhead,
            ..
        }) = &mut self.inbound
            && !self.proven.contains(to)
        {
            *left = left.saturating_sub(len + *overhead);
        }
    }

    /// Whether the datagram being handled came from `addr` (always true
    /// when its source is unknown).
    pub(super) fn came_from(&self, addr: &A) -> bool {
        self.source().is_none_or(|from| from == addr)
    }

    /// `addr` answered a ping of ours directly: it is reachable there.
    pub(super) fn prove(&mut self, addr: A, limit: usize) {
        if self.proven.len() < limit {
            self.proven.insert(addr);
        }
    }

    /// Whether `addr` answered a ping of ours directly.
    pub(super) fn is_proven(&self, addr: &A) -> bool {
        self.proven.contains(addr)
    }

    /// `addr` left the table.
    pub(super) fn forget(&mut self, addr: &A) {
        self.proven.remove(addr);
    }

    /// Whether `addr` may get a feed now (and counts it).
    pub(super) fn allow_feed(&mut self, addr: &A) -> bool {
        if let Some((_, n)) = self.feeds.iter_mut().find(|(a, _)| a == addr) {
            if *n >= MAX_FEEDS_PER_SOURCE {
                return false;
            }
            *n += 1;
        } else if self.feeds.len() < FEED_SOURCES_COUNTED {
            self.feeds.push((addr.clone(), 1));
        }
        true
    }

    /// Whether `addr` may be pinged now to check news about it heard from
    /// others, with a ping of `cost` bytes on the wire (payload and
    /// envelope), and counts it: once per address per probe period, at
    /// most `max(256, max_members / 2)` a period, and within 3× the bytes
    /// of the datagram that told of it.
    pub(super) fn start_check(&mut self, addr: A, cost: usize, max_members: usize) -> bool {
        let limit = MIN_CHECKS_PER_PERIOD.max(max_members / 2);
        if self.checks.len() >= limit || self.checks.contains(&addr) {
            return false;
        }
        if let Some(inbound) = &mut self.inbound {
            let cost = cost + inbound.overhead;
            // The ping must also fit what an unproven source's datagram
            // allows (sending it spends that).
            let fits = match inbound.allowance {
                Some(left) if !self.proven.contains(&addr) => left >= cost,
                _ => true,
            };
            if !fits || inbound.checks < cost {
                return false;
            }
            inbound.checks -= cost;
            inbound.checked += 1;
        }
        self.checks.insert(addr);
        true
    }

    /// How many checks the datagram being handled caused so far.
    pub(super) fn checked(&self) -> usize {
        self.inbound.as_ref().map_or(0, |i| i.checked)
    }

    /// A new probe period: feed counts and rename checks start over.
    pub(super) fn new_period(&mut self) {
        self.feeds.clear();
        self.checks.clear();
    }
}
