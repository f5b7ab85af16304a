//! The simulator's event queue: datagrams in flight, and one timer per
//! member.
//!
//! Events come out in `(time, seq)` order, `seq` counting every push and
//! every arming, so ties go in the order things were sent or armed: the
//! whole run is a function of the seed.
//!
//! A member's timer is one slot, not a heap entry per arming: the
//! simulator only ever needs a member's next deadline, and when it moves
//! (a cancelled timer moves it later, a new one earlier) the slot is
//! updated in place. So no superseded timer ever comes out of the queue,
//! and the timer queue holds at most one entry per member: a calendar
//! ([`Calendar`]) of short buckets for the next few seconds, where arming,
//! moving and taking out a timer touch a few words, and an indexed heap for
//! the rare timers beyond. Datagrams are few at any time (those in flight)
//! and sit in a plain binary heap.

use alloc::collections::BinaryHeap;
use alloc::vec::Vec;
use core::cmp::{Ordering, Reverse};

/// A datagram on its way, kept small (32 bytes): the heap moves these
/// around on every push and pop. Its bytes wait in the simulator's slab.
#[derive(Clone, Copy)]
pub(super) struct Datagram {
    /// Delivery time in nanoseconds.
    pub(super) at: u64,
    seq: u64,
    /// Receiver.
    pub(super) node: u32,
    /// The receiver's life it was sent to (restarts start a new one).
    pub(super) life: u32,
    /// Index of the bytes in the slab.
    pub(super) payload: u32,
    /// Sender, with a flag bit the simulator may use.
    pub(super) from: u32,
}

impl PartialEq for Datagram {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Datagram {}
impl PartialOrd for Datagram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Datagram {
    /// Reversed: the max-heap pops the earliest, ties in send order.
    fn cmp(&self, other: &Self) -> Ordering {
        Reverse((self.at, self.seq)).cmp(&Reverse((other.at, other.seq)))
    }
}

/// What comes out of the queue.
pub(super) enum Next {
    Datagram(Datagram),
    /// A member's timer is due: `(node, time in nanoseconds)`.
    Timer(u32, u64),
}

#[derive(Default)]
pub(super) struct Queue {
    seq: u64,
    datagrams: BinaryHeap<Datagram>,
    timers: Calendar,
    /// The timer last popped, still in the heap: the member's next
    /// deadline usually replaces it in place (one sift instead of a
    /// removal and an insertion). See [`Queue::settle`].
    fired: Option<(u32, u64)>,
    /// Whether the datagram at the top of its heap was popped already: the
    /// next push replaces it in place (a handled datagram is usually
    /// answered). See [`Queue::settle`].
    delivered: bool,
}

impl Queue {
    /// Queues a datagram for `node` at `at` (nanoseconds).
    pub(super) fn push(&mut self, at: u64, node: u32, life: u32, payload: u32, from: u32) {
        self.seq += 1;
        let datagram = Datagram {
            at,
            seq: self.seq,
            node,
            life,
            payload,
            from,
        };
        if self.delivered
            && let Some(mut top) = self.datagrams.peek_mut()
        {
            self.delivered = false;
            *top = datagram;
        } else {
            self.datagrams.push(datagram);
        }
    }

    /// Sets `node`'s timer to `at` (nanoseconds), replacing any armed one.
    pub(super) fn arm(&mut self, node: u32, at: u64) {
        self.seq += 1;
        self.timers.set(node, at, self.seq);
    }

    /// Removes `node`'s timer, if armed.
    pub(super) fn disarm(&mut self, node: u32) {
        self.timers.remove(node);
    }

    /// When `node`'s timer is armed for (a timer popped and not re-armed
    /// since is not).
    pub(super) fn armed(&self, node: u32) -> Option<u64> {
        match self.fired {
            Some((n, seq)) if n == node && self.timers.seq_of(node) == Some(seq) => None,
            _ => self.timers.get(node),
        }
    }

    /// Removes the timer popped last unless it was re-armed since, and
    /// the datagram popped last unless a push replaced it: call after
    /// handling each event.
    pub(super) fn settle(&mut self) {
        if core::mem::take(&mut self.delivered) {
            self.datagrams.pop();
        }
        if let Some((node, seq)) = self.fired.take()
            && self.timers.seq_of(node) == Some(seq)
        {
            self.timers.remove(node);
        }
    }

    /// The earliest event due at `limit` (nanoseconds) or before. A timer
    /// stays armed until [`Queue::settle`].
    pub(super) fn pop_due(&mut self, limit: u64) -> Option<Next> {
        self.settle();
        let d = self.datagrams.peek().map(|d| (d.at, d.seq));
        let t = self.timers.peek().map(|t| (t.at, t.seq));
        match (d, t) {
            (Some(d), Some(t)) if t < d => (t.0 <= limit).then(|| self.pop_timer()).flatten(),
            (Some(d), _) => (d.0 <= limit)
                .then(|| {
                    self.delivered = true;
                    self.datagrams.peek().copied().map(Next::Datagram)
                })
                .flatten(),
            (None, Some(t)) => (t.0 <= limit).then(|| self.pop_timer()).flatten(),
            (None, None) => None,
        }
    }

    /// The nodes of the next `k` timers, soonest first, as things stand
    /// (for cache hints).
    pub(super) fn next_timers(&mut self, k: usize, out: &mut Vec<u32>) {
        self.timers.smallest(k, out);
    }

    fn pop_timer(&mut self) -> Option<Next> {
        let top = self.timers.peek()?;
        self.fired = Some((top.node, top.seq));
        Some(Next::Timer(top.node, top.at))
    }
}

/// Bucket width of the [`Calendar`]: 2^16 ns (65.5 µs).
const WIDTH_BITS: u32 = 16;
/// Buckets in the calendar's ring: 2^16, so it spans 4.3 s ahead.
const RING_BITS: u32 = 16;
const RING: usize = 1 << RING_BITS;
/// A node's timer is not in the ring: in the far heap, or not armed.
const FAR: u32 = u32::MAX - 1;
/// End of a bucket's list.
const NIL: u32 = u32::MAX;

/// A node's timer in the [`Calendar`].
#[derive(Clone, Copy)]
struct Entry {
    at: u64,
    seq: u64,
    /// Neighbours in the bucket's list.
    next: u32,
    prev: u32,
    /// Ring bucket, [`FAR`], or [`ABSENT`].
    place: u32,
}

const UNARMED: Entry = Entry {
    at: 0,
    seq: 0,
    next: NIL,
    prev: NIL,
    place: ABSENT,
};

/// Armed timers, one per node at most, soonest first.
///
/// A ring of [`RING`] buckets, each [`WIDTH_BITS`] of time wide, holds the
/// timers due within the ring's span from `cursor` (the bucket of the
/// earliest one, as last found): each bucket is a doubly linked list
/// through the nodes' entries, and a bitmap tells the non-empty buckets
/// apart. Timers due later sit in an indexed heap ([`TimerHeap`]); the
/// earliest timer is the earlier of the first non-empty bucket's least and
/// the heap's top, so nothing needs to move between the two. A timer armed
/// before `cursor` (between two runs, after the queue looked past it) goes
/// in the cursor's bucket, whose least is taken exactly: order is by
/// `(at, seq)` throughout, whatever the bucket.
///
/// Arming and removal touch a node's entry, its list neighbours and one
/// bucket; finding the earliest scans the bitmap from the cursor (a few
/// words) and one short list. A binary heap of every timer costs a sift
/// through its levels instead, each a likely cache miss when many members
/// run.
#[derive(Default)]
struct Calendar {
    entries: Vec<Entry>,
    /// First node of each bucket's list (allocated on first use).
    heads: Vec<u32>,
    /// Bit `b % 64` of word `b / 64` set when bucket `b` is not empty.
    occupied: Vec<u64>,
    /// Absolute bucket number (time >> WIDTH_BITS) below which no timer
    /// is kept apart from the cursor's own bucket.
    cursor: u64,
    /// Timers beyond the ring's span.
    far: TimerHeap,
    /// Scratch for [`Calendar::smallest`], kept to avoid allocating.
    found: Vec<Armed>,
    far_nodes: Vec<u32>,
}

impl Calendar {
    fn entry(&self, node: u32) -> Option<&Entry> {
        self.entries
            .get(node as usize)
            .filter(|e| e.place != ABSENT)
    }

    fn seq_of(&self, node: u32) -> Option<u64> {
        self.entry(node).map(|e| e.seq)
    }

    fn get(&self, node: u32) -> Option<u64> {
        self.entry(node).map(|e| e.at)
    }

    fn set(&mut self, node: u32, at: u64, seq: u64) {
        self.remove(node);
        let n = node as usize;
        if self.entries.len() <= n {
            self.entries.resize(n + 1, UNARMED);
        }
        let bucket = (at >> WIDTH_BITS).max(self.cursor);
        if bucket - self.cursor >= RING as u64 {
            self.far.set(node, at, seq);
            self.entries[n] = Entry {
                at,
                seq,
                place: FAR,
                ..UNARMED
            };
            return;
        }
        if self.heads.is_empty() {
            self.heads = alloc::vec![NIL; RING];
            self.occupied = alloc::vec![0; RING / 64];
        }
        let b = (bucket as usize) & (RING - 1);
        let head = self.heads[b];
        if head != NIL {
            self.entries[head as usize].prev = node;
        }
        self.entries[n] = Entry {
            at,
            seq,
            next: head,
            prev: NIL,
            place: b as u32,
        };
        self.heads[b] = node;
        self.occupied[b / 64] |= 1 << (b % 64);
    }

    fn remove(&mut self, node: u32) {
        let Some(&e) = self.entries.get(node as usize) else {
            return;
        };
        match e.place {
            ABSENT => return,
            FAR => self.far.remove(node),
            b => {
                let b = b as usize;
                if e.prev == NIL {
                    self.heads[b] = e.next;
                    if e.next == NIL {
                        self.occupied[b / 64] &= !(1 << (b % 64));
                    }
                } else {
                    self.entries[e.prev as usize].next = e.next;
                }
                if e.next != NIL {
                    self.entries[e.next as usize].prev = e.prev;
                }
            }
        }
        self.entries[node as usize] = UNARMED;
    }

    /// The first non-empty bucket at or after the cursor, as its distance
    /// from the cursor.
    fn first_occupied(&self, from: u64) -> Option<usize> {
        if self.occupied.is_empty() {
            return None;
        }
        let words = self.occupied.len();
        let start = (from as usize) & (RING - 1);
        let (w0, bit) = (start / 64, start % 64);
        // The first word from `bit` on, the others whole, the first word's
        // low bits last (wrapped around).
        let first = self.occupied[w0] >> bit;
        if first != 0 {
            return Some(first.trailing_zeros() as usize);
        }
        for k in 1..=words {
            let w = (w0 + k) % words;
            let mut word = self.occupied[w];
            if k == words {
                word &= (1u64 << bit).wrapping_sub(1);
            }
            if word != 0 {
                return Some(k * 64 - bit + word.trailing_zeros() as usize);
            }
        }
        None
    }

    /// The least `(at, seq)` of bucket `b`'s list.
    fn least_in(&self, b: usize) -> Option<Armed> {
        let mut node = self.heads[b];
        let mut best: Option<Armed> = None;
        while node != NIL {
            let e = &self.entries[node as usize];
            if best.is_none_or(|a| (e.at, e.seq) < a.key()) {
                best = Some(Armed {
                    at: e.at,
                    seq: e.seq,
                    node,
                });
            }
            node = e.next;
        }
        best
    }

    /// The earliest timer; moves the cursor up to its bucket.
    fn peek(&mut self) -> Option<Armed> {
        let near = self.first_occupied(self.cursor).and_then(|d| {
            self.cursor += d as u64;
            self.least_in((self.cursor as usize) & (RING - 1))
        });
        let far = self.far.peek().copied();
        match (near, far) {
            (Some(a), Some(b)) => Some(if b.key() < a.key() { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// The nodes of the `k` earliest timers, earliest first.
    fn smallest(&mut self, k: usize, out: &mut Vec<u32>) {
        out.clear();
        let mut found = core::mem::take(&mut self.found);
        found.clear();
        let mut from = self.cursor;
        let mut seen = 0;
        while found.len() < k && seen < RING {
            let Some(d) = self.first_occupied(from) else {
                break;
            };
            if seen + d >= RING {
                break;
            }
            let b = ((from + d as u64) as usize) & (RING - 1);
            let mut node = self.heads[b];
            while node != NIL {
                let e = &self.entries[node as usize];
                found.push(Armed {
                    at: e.at,
                    seq: e.seq,
                    node,
                });
                node = e.next;
            }
            seen += d + 1;
            from += d as u64 + 1;
        }
        let mut far = core::mem::take(&mut self.far_nodes);
        far.clear();
        if !self.far.heap.is_empty() {
            self.far.smallest(k, &mut far);
            found.extend(far.iter().filter_map(|&n| {
                let e = self.entries.get(n as usize)?;
                Some(Armed {
                    at: e.at,
                    seq: e.seq,
                    node: n,
                })
            }));
        }
        found.sort_unstable_by_key(Armed::key);
        out.extend(found.iter().take(k).map(|a| a.node));
        self.found = found;
        self.far_nodes = far;
    }
}

#[derive(Clone, Copy)]
pub(super) struct Armed {
    at: u64,
    seq: u64,
    node: u32,
}

impl Armed {
    fn key(&self) -> (u64, u64) {
        (self.at, self.seq)
    }
}

/// Where a node's entry sits in the heap: none.
const ABSENT: u32 = u32::MAX;
/// Children per heap node: a shallower heap, each level's children in
/// about one cache line.
const ARITY: usize = 4;

/// An indexed 4-ary min-heap of armed timers, one per node at most.
#[derive(Default)]
struct TimerHeap {
    pub(super) heap: Vec<Armed>,
    /// Each node's index in `heap`, or [`ABSENT`].
    pos: Vec<u32>,
    /// Scratch for [`TimerHeap::smallest`], kept to avoid allocating.
    frontier: Vec<((u64, u64), usize)>,
}

impl TimerHeap {
    fn peek(&self) -> Option<&Armed> {
        self.heap.first()
    }

    /// The nodes of the `k` earliest timers, earliest first: a best-first
    /// walk down the heap, whose frontier (at most `3k + 1` entries, a few
    /// cache lines) is scanned for its least at each step.
    fn smallest(&mut self, k: usize, out: &mut Vec<u32>) {
        out.clear();
        let mut frontier = core::mem::take(&mut self.frontier);
        frontier.clear();
        if let Some(root) = self.heap.first() {
            frontier.push((root.key(), 0));
        }
        while out.len() < k && !frontier.is_empty() {
            let mut best = 0;
            for (j, f) in frontier.iter().enumerate().skip(1) {
                if f.0 < frontier[best].0 {
                    best = j;
                }
            }
            let (_, i) = frontier.swap_remove(best);
            out.push(self.heap[i].node);
            let first = i * ARITY + 1;
            for c in first..(first + ARITY).min(self.heap.len()) {
                frontier.push((self.heap[c].key(), c));
            }
        }
        self.frontier = frontier;
    }

    fn set(&mut self, node: u32, at: u64, seq: u64) {
        let n = node as usize;
        if self.pos.len() <= n {
            self.pos.resize(n + 1, ABSENT);
        }
        let entry = Armed { at, seq, node };
        match self.pos[n] {
            ABSENT => {
                self.heap.push(entry);
                self.sift_up(self.heap.len() - 1);
            }
            i => {
                let i = i as usize;
                let earlier = entry.key() < self.heap[i].key();
                self.heap[i] = entry;
                if earlier {
                    self.sift_up(i);
                } else {
                    self.sift_down(i);
                }
            }
        }
    }

    fn remove(&mut self, node: u32) {
        let Some(slot) = self.pos.get_mut(node as usize) else {
            return;
        };
        let i = core::mem::replace(slot, ABSENT);
        if i == ABSENT {
            return;
        }
        let i = i as usize;
        let Some(last) = self.heap.pop() else { return };
        if i < self.heap.len() {
            let earlier = last.key() < self.heap[i].key();
            self.heap[i] = last;
            if earlier {
                self.sift_up(i);
            } else {
                self.sift_down(i);
            }
        }
    }

    fn place(&mut self, i: usize, entry: Armed) {
        self.pos[entry.node as usize] = i as u32;
        self.heap[i] = entry;
    }

    fn sift_up(&mut self, mut i: usize) {
        let entry = self.heap[i];
        while i > 0 {
            let parent = (i - 1) / ARITY;
            if self.heap[parent].key() <= entry.key() {
                break;
            }
            let moved = self.heap[parent];
            self.place(i, moved);
            i = parent;
        }
        self.place(i, entry);
    }

    fn sift_down(&mut self, mut i: usize) {
        let entry = self.heap[i];
        let len = self.heap.len();
        loop {
            let first = i * ARITY + 1;
            if first >= len {
                break;
            }
            let last = (first + ARITY).min(len);
            let mut best = first;
            for c in first + 1..last {
                if self.heap[c].key() < self.heap[best].key() {
                    best = c;
                }
            }
            if self.heap[best].key() >= entry.key() {
                break;
            }
            let moved = self.heap[best];
            self.place(i, moved);
            i = best;
        }
        self.place(i, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut Queue, limit: u64) -> Vec<(char, u32, u64)> {
        let mut out = Vec::new();
        while let Some(next) = q.pop_due(limit) {
            out.push(match next {
                Next::Datagram(d) => ('d', d.node, d.at),
                Next::Timer(node, at) => ('t', node, at),
            });
        }
        out
    }

    #[test]
    fn time_order_ties_in_push_order_one_timer_per_node() {
        let mut q = Queue::default();
        q.arm(3, 50);
        q.push(20, 1, 0, 0, 0);
        q.arm(2, 20); // after the datagram at the same time
        q.arm(3, 10); // moves node 3's timer earlier, replacing it
        q.arm(4, 70);
        q.arm(4, 90); // and later
        q.arm(5, 30);
        q.disarm(5);
        q.push(5, 7, 0, 0, 0);
        assert_eq!(q.armed(4), Some(90));
        assert_eq!(q.armed(5), None);
        assert_eq!(
            drain(&mut q, 80),
            [('d', 7, 5), ('t', 3, 10), ('d', 1, 20), ('t', 2, 20)]
        );
        assert_eq!(drain(&mut q, 100), [('t', 4, 90)]);
        assert!(q.pop_due(u64::MAX).is_none());
    }

    #[test]
    fn next_timers_are_the_earliest_in_order() {
        let mut q = Queue::default();
        let mut x: u64 = 99;
        for node in 0..300u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            q.arm(node, (x >> 40) % 50);
        }
        let mut ahead = Vec::new();
        q.next_timers(20, &mut ahead);
        for want in ahead {
            let Some(Next::Timer(got, _)) = q.pop_due(u64::MAX) else {
                panic!("fewer timers than peeked");
            };
            assert_eq!(got, want);
        }
    }

    #[test]
    fn heap_stays_ordered_under_churn() {
        let mut q = Queue::default();
        let mut x: u64 = 12345;
        let mut model: Vec<Option<u64>> = alloc::vec![None; 64];
        for round in 0..2000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let node = ((x >> 33) % 64) as u32;
            let at = round + (x >> 40) % 100;
            if (x >> 20).is_multiple_of(5) {
                q.disarm(node);
                model[node as usize] = None;
            } else {
                q.arm(node, at);
                model[node as usize] = Some(at);
            }
        }
        let mut last = 0;
        let mut seen = 0;
        while let Some(Next::Timer(node, at)) = q.pop_due(u64::MAX) {
            assert!(at >= last);
            assert_eq!(model[node as usize].take(), Some(at));
            last = at;
            seen += 1;
        }
        assert!(seen > 0);
        assert!(model.iter().all(Option::is_none));
    }

    #[test]
    fn calendar_agrees_with_a_model_across_buckets_laps_and_the_far_heap() {
        let mut q = Queue::default();
        // node -> (at, seq) of its armed timer.
        const NODES: usize = 300;
        let mut model: Vec<Option<(u64, u64)>> = alloc::vec![None; NODES];
        let mut seq = 0u64;
        let mut now = 0u64;
        let mut x: u64 = 2024;
        let mut rand = |m: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        let mut far_popped = 0;
        for _ in 0..40_000 {
            let node = rand(NODES as u64) as u32;
            match rand(20) {
                // Arm: within a bucket or two (ties in the same
                // nanosecond too), within the ring's span, or beyond it
                // (4.3 s) and then due while the ring holds timers.
                0..=9 => {
                    let at = match rand(4) {
                        0 => now,
                        1 => now + rand(200_000),
                        2 => now + rand(3_000_000_000),
                        _ => now + 4_000_000_000 + rand(3_000_000_000),
                    };
                    q.arm(node, at);
                    seq += 1;
                    model[node as usize] = Some((at, seq));
                }
                10 => {
                    q.disarm(node);
                    model[node as usize] = None;
                }
                // Look past now without taking anything, then arm a timer
                // due before what it saw.
                11 if now > 0 => {
                    assert!(q.pop_due(now - 1).is_none());
                    q.arm(node, now);
                    seq += 1;
                    model[node as usize] = Some((now, seq));
                }
                _ => {
                    let want = (0..NODES).filter_map(|n| model[n].map(|k| (k, n))).min();
                    match q.pop_due(u64::MAX) {
                        Some(Next::Timer(got, at)) => {
                            let ((wat, _), wn) = want.expect("a timer the model lacks");
                            assert_eq!((got as usize, at), (wn, wat));
                            assert_eq!(q.armed(got), None, "popped, not re-armed");
                            model[wn] = None;
                            // Taken from the far heap while the ring held
                            // later timers.
                            if q.timers.far.heap.iter().any(|a| a.node == got)
                                && q.timers.occupied.iter().any(|w| *w != 0)
                            {
                                far_popped += 1;
                            }
                            now = at;
                            q.settle();
                        }
                        _ => assert!(want.is_none(), "lost {want:?}"),
                    }
                }
            }
            if rand(100) == 0 {
                let mut ahead = Vec::new();
                q.next_timers(8, &mut ahead);
                let mut order: Vec<((u64, u64), usize)> = (0..NODES)
                    .filter_map(|n| model[n].map(|k| (k, n)))
                    .collect();
                order.sort();
                let want: Vec<u32> = order.iter().take(8).map(|&(_, n)| n as u32).collect();
                assert_eq!(ahead, want);
            }
        }
        assert!(far_popped > 10, "{far_popped}");
    }
}
