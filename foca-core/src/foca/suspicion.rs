//! Lifeguard's suspicion with independent confirmations.
//!
//! A suspicion starts at the longest timeout (`max`) and shrinks toward the
//! shortest (`min`) as distinct members report the same suspect from their
//! own failed probes:
//!
//! ```text
//! timeout(c) = max(min, max − (max − min) · ln(c + 1) / ln(k + 1))
//! ```
//!
//! with `c` the confirmations (reporters beyond the first) and `k` the
//! confirmations that bring it down to `min`. A real crash is seen by
//! everyone who probes the suspect, so it is confirmed within a period or
//! two and declared down near `min`; a false suspicion, raised by one slow
//! or lossy prober, stays unconfirmed and gives the suspect `max` to hear
//! of it and refute.
//!
//! The core has no clock: a suspicion's timer first fires after `min`, then
//! every `step` (a probe period) until what it has waited reaches the
//! timeout its confirmations allow. Everything here is bounded: one entry
//! per suspect in the member table, [`MAX_REPORTERS`] reporters each,
//! [`MAX_OWN_FINDINGS`] findings of this member's own and
//! [`MAX_TO_VERIFY`] suspects waiting for a verification probe.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::time::Duration;

use crate::Incarnation;

/// Most reporters remembered per suspicion (so at most 15 confirmations).
pub const MAX_REPORTERS: usize = 16;
/// Most of this member's own findings it marks as such in what it sends.
pub const MAX_OWN_FINDINGS: usize = 8;
/// Most suspects waiting for this member to probe them itself.
pub const MAX_TO_VERIFY: usize = 4;

/// `ln(n) × 1000` for `n` in `0..=MAX_REPORTERS` (`ln 0` unused): no
/// floating-point logarithm in `core`.
const LN_MILLI: [u64; MAX_REPORTERS + 1] = [
    0, 0, 693, 1099, 1386, 1609, 1792, 1946, 2079, 2197, 2303, 2398, 2485, 2565, 2639, 2708, 2773,
];

/// A suspicion's timeout range and the confirmations that shrink it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// The timeout once `k` members confirmed.
    pub min: Duration,
    /// The timeout without any confirmation.
    pub max: Duration,
    /// Confirmations that bring the timeout down to `min` (0: always `min`).
    pub k: usize,
}

impl Bounds {
    /// The timeout after `confirmations` independent confirmations.
    pub fn timeout(&self, confirmations: usize) -> Duration {
        let k = self.k.min(MAX_REPORTERS - 1);
        if k == 0 || self.max <= self.min {
            return self.min;
        }
        let c = confirmations.min(k);
        let span = self.max - self.min;
        let span_nanos = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
        // span × ln(c+1) / ln(k+1), in u128 so that it cannot overflow.
        let cut =
            u128::from(span_nanos) * u128::from(LN_MILLI[c + 1]) / u128::from(LN_MILLI[k + 1]);
        let cut = u64::try_from(cut).unwrap_or(u64::MAX);
        self.max
            .saturating_sub(Duration::from_nanos(cut))
            .max(self.min)
    }
}

/// What a suspicion's timer says when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checkpoint {
    /// Its timeout ran out: declare the suspect down.
    Due,
    /// Not yet: check again after this long.
    Wait(Duration),
}

/// One suspicion in flight.
struct Entry<A> {
    incarnation: Incarnation,
    /// Distinct members that reported it from their own probes (this
    /// member included, if it did), the first one first.
    reporters: Vec<A>,
    /// Time waited so far, counted in the delays of its fired timers.
    waited: Duration,
    /// The delay of the timer in flight.
    pending: Duration,
}

/// The suspicions in flight, by suspect address.
pub struct Suspicions<A> {
    entries: BTreeMap<A, Entry<A>>,
    /// Suspicions this member raised or confirmed from its own probes:
    /// sent marked as findings, oldest first.
    findings: Vec<(A, Incarnation, bool)>,
    /// Suspects heard of that this member has not probed itself yet.
    to_verify: Vec<(A, bool)>,
}

impl<A: Clone + Ord> Suspicions<A> {
    /// No suspicion.
    pub fn new() -> Self {
        Self {
            entries: BTreeMap::new(),
            findings: Vec::new(),
            to_verify: Vec::new(),
        }
    }

    /// A suspicion of `addr` at `incarnation` starts (or restarts): its
    /// first checkpoint is due after the returned delay (`bounds.min`).
    pub fn start(&mut self, addr: A, incarnation: Incarnation, bounds: &Bounds) -> Duration {
        self.forget_finding(&addr);
        let first = bounds.min;
        self.entries.insert(
            addr,
            Entry {
                incarnation,
                reporters: Vec::new(),
                waited: Duration::ZERO,
                pending: first,
            },
        );
        first
    }

    /// The suspicion of `addr` is over (refuted, concluded, forgotten).
    pub fn end(&mut self, addr: &A) {
        if self.entries.remove(addr).is_some() {
            self.forget_finding(addr);
            self.to_verify.retain(|(a, _)| a != addr);
        }
    }

    fn forget_finding(&mut self, addr: &A) {
        self.findings.retain(|(a, _, _)| a != addr);
    }

    /// `reporter` says it found `addr` unresponsive at `incarnation`.
    /// Returns whether that is a new reporter of the suspicion in flight.
    pub fn confirm(&mut self, addr: &A, incarnation: Incarnation, reporter: &A) -> bool {
        let Some(entry) = self.entries.get_mut(addr) else {
            return false;
        };
        if entry.incarnation != incarnation
            || entry.reporters.len() >= MAX_REPORTERS
            || entry.reporters.contains(reporter)
        {
            return false;
        }
        entry.reporters.push(reporter.clone());
        true
    }

    /// This member's own probe of `addr` failed: it reports the suspicion
    /// (as `me`) and marks it as its finding in what it sends. `proven`:
    /// `addr` answered a ping of ours directly before. When the findings
    /// are full, one about a member never proven goes first (a made-up
    /// member at a third party's address never answers: a rogue must not
    /// push real findings out with those), else the oldest.
    pub fn found(&mut self, addr: &A, incarnation: Incarnation, me: &A, proven: bool) {
        if !self.confirm(addr, incarnation, me) {
            return;
        }
        self.to_verify.retain(|(a, _)| a != addr);
        if self.findings.len() >= MAX_OWN_FINDINGS {
            let unproven = self.findings.iter().position(|f| !f.2);
            if unproven.is_none() && !proven {
                return;
            }
            self.findings.remove(unproven.unwrap_or(0));
        }
        self.findings.push((addr.clone(), incarnation, proven));
    }

    /// This member's own findings, oldest first.
    pub fn findings(&self) -> impl Iterator<Item = (&A, Incarnation)> {
        self.findings.iter().map(|(a, i, _)| (a, *i))
    }

    /// Whether `reporter` already reported the suspicion of `addr`.
    pub fn reported_by(&self, addr: &A, reporter: &A) -> bool {
        self.entries
            .get(addr)
            .is_some_and(|e| e.reporters.contains(reporter))
    }

    /// Queues `addr` for a verification probe, if this member has not
    /// reported it. `proven`: as for [`found`](Self::found); when the queue
    /// is full, a proven suspect takes the place of one never proven.
    pub fn verify(&mut self, addr: &A, me: &A, proven: bool) {
        if self.to_verify.iter().any(|(a, _)| a == addr)
            || !self.entries.contains_key(addr)
            || self.reported_by(addr, me)
        {
            return;
        }
        if self.to_verify.len() >= MAX_TO_VERIFY {
            let unproven = self.to_verify.iter().position(|v| !v.1);
            match unproven {
                Some(pos) if proven => {
                    self.to_verify.remove(pos);
                }
                _ => return,
            }
        }
        self.to_verify.push((addr.clone(), proven));
    }

    /// The next suspect to probe for verification: the oldest proven one,
    /// else the oldest.
    pub fn next_to_verify(&mut self) -> Option<A> {
        if self.to_verify.is_empty() {
            return None;
        }
        let pos = self.to_verify.iter().position(|v| v.1).unwrap_or(0);
        Some(self.to_verify.remove(pos).0)
    }

    /// The suspicion's timer fired. `bounds` are the current ones (the
    /// cluster may have grown or shrunk since it started), `step` the
    /// longest wait between checkpoints. A suspicion with no entry (its
    /// state was lost) is due.
    pub fn checkpoint(
        &mut self,
        addr: &A,
        incarnation: Incarnation,
        bounds: &Bounds,
        step: Duration,
    ) -> Checkpoint {
        let Some(entry) = self
            .entries
            .get_mut(addr)
            .filter(|e| e.incarnation == incarnation)
        else {
            return Checkpoint::Due;
        };
        entry.waited = entry.waited.saturating_add(entry.pending);
        let confirmations = entry.reporters.len().saturating_sub(1);
        let timeout = bounds.timeout(confirmations);
        if entry.waited >= timeout {
            return Checkpoint::Due;
        }
        let next = (timeout - entry.waited).min(step);
        entry.pending = next;
        Checkpoint::Wait(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn bounds(k: usize) -> Bounds {
        Bounds {
            min: S * 8,
            max: S * 48,
            k,
        }
    }

    #[test]
    fn timeout_shrinks_from_max_to_min_with_confirmations() {
        let b = bounds(3);
        assert_eq!(b.timeout(0), S * 48);
        // 48 - 40·ln2/ln4 = 28; 48 - 40·ln3/ln4 ≈ 16.3; then min.
        assert_eq!(b.timeout(1).as_secs(), 28);
        assert_eq!(b.timeout(2).as_secs(), 16);
        assert_eq!(b.timeout(3), S * 8);
        assert_eq!(b.timeout(50), S * 8);
        assert_eq!(bounds(0).timeout(0), S * 8);
        for k in 1..40 {
            let b = bounds(k);
            let mut last = b.timeout(0);
            for c in 1..=k + 1 {
                let t = b.timeout(c);
                assert!(t <= last && t >= b.min, "k {k} c {c}");
                last = t;
            }
        }
    }

    #[test]
    fn unconfirmed_suspicion_waits_max_in_steps() {
        let b = bounds(3);
        let mut s = Suspicions::new();
        assert_eq!(s.start(7u32, 2, &b), S * 8);
        let mut waited = S * 8;
        loop {
            match s.checkpoint(&7, 2, &b, S) {
                Checkpoint::Due => break,
                Checkpoint::Wait(d) => {
                    assert_eq!(d, S);
                    waited += d;
                }
            }
        }
        assert_eq!(waited, S * 48);
    }

    #[test]
    fn confirmations_bring_the_verdict_forward() {
        let b = bounds(3);
        let mut s = Suspicions::new();
        s.start(7u32, 2, &b);
        s.found(&7, 2, &1, true);
        assert!(s.confirm(&7, 2, &2));
        assert!(!s.confirm(&7, 2, &2), "a reporter counts once");
        assert!(!s.confirm(&7, 1, &3), "another incarnation does not count");
        assert!(s.confirm(&7, 2, &3));
        assert!(s.confirm(&7, 2, &4));
        // Three confirmations beyond the first reporter: min, at once.
        assert_eq!(s.checkpoint(&7, 2, &b, S), Checkpoint::Due);
        assert_eq!(s.findings().collect::<Vec<_>>(), [(&7, 2)]);
        s.end(&7);
        assert_eq!(s.findings().count(), 0);
        assert!(s.entries.is_empty());
        assert_eq!(s.checkpoint(&7, 2, &b, S), Checkpoint::Due);
    }

    #[test]
    fn unproven_findings_cannot_push_out_proven_ones() {
        let b = bounds(3);
        let mut s = Suspicions::new();
        s.start(1u32, 0, &b);
        s.found(&1, 0, &1000, true);
        for fake in 100..200 {
            s.start(fake, 0, &b);
            s.found(&fake, 0, &1000, false);
        }
        let kept: Vec<_> = s.findings().map(|(a, _)| *a).collect();
        assert_eq!(kept.len(), MAX_OWN_FINDINGS);
        assert_eq!(kept[0], 1, "{kept:?}");
        // Proven ones push out the unproven, then the oldest.
        for real in 2..20 {
            s.start(real, 0, &b);
            s.found(&real, 0, &1000, true);
        }
        let kept: Vec<_> = s.findings().map(|(a, _)| *a).collect();
        assert_eq!(kept, (12..20).collect::<Vec<_>>());
    }

    #[test]
    fn everything_is_bounded() {
        let b = bounds(100);
        let mut s = Suspicions::new();
        for addr in 0..100u32 {
            s.start(addr, 0, &b);
            s.verify(&addr, &1000, addr % 3 == 0);
            s.found(&addr, 0, &1000, addr % 2 == 0);
            for r in 0..100 {
                s.confirm(&addr, 0, &r);
            }
        }
        assert!(s.findings().count() <= MAX_OWN_FINDINGS);
        assert!(s.to_verify.len() <= MAX_TO_VERIFY);
        assert!(
            s.entries
                .values()
                .all(|e| e.reporters.len() <= MAX_REPORTERS)
        );
        // A reported suspect is not queued for verification.
        assert_eq!(s.next_to_verify(), None);
    }
}
