//! Criterion benchmarks of the core's hot paths, through its public API only
//! (issue #17): the core users ship is the core measured.
//!
//! ```text
//! cargo bench -p foca-core --bench core
//! cargo bench -p foca-core --bench core -- --test     # each once, quick
//! ```
//!
//! - `handle_data/ping_10_updates/N`: one member (as deployed: one per
//!   process) with a table of N handles a ping carrying 10 piggybacked
//!   updates about members it knows, and answers it. Should not grow with N.
//! - `backlog/insert/L`: a custom broadcast with a new key enters a full
//!   backlog of L items (evicting the most-sent one).
//! - `backlog/invalidate/L`: a newer version of a queued key replaces it, in
//!   a backlog of L.
//! - `backlog/fill/L`: `Foca::broadcast` fills datagrams from a backlog of
//!   L (topped up between runs, untimed), for members in turn, until each
//!   item was sent its number of times or 128 datagrams went out;
//!   reported per item sent.
//! - `members/lookup/10000`, `members/choose/10000`: `Foca::member` by
//!   address, and `Foca::gossip`, which draws 3 random members (and sends
//!   each a small datagram with one update, queued untimed before each
//!   call), at 10,000 members.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use foca_core::testing::{TestCodec, TestId};
use foca_core::{
    BroadcastHandler, Config, Foca, GenerationalId, Invalidates, Member, Notification, Runtime,
    Timer,
};
use rand::SeedableRng;
use rand::rngs::Xoshiro128PlusPlus;

/// Keeps what is sent and scheduled, until cleared.
#[derive(Default)]
struct Collect {
    sends: Vec<(TestId, Vec<u8>)>,
    timers: Vec<Timer<TestId>>,
    sent: usize,
}

impl Runtime<TestId> for Collect {
    fn notify(&mut self, _: Notification<TestId>) {}
    fn send_to(&mut self, to: TestId, data: &[u8]) {
        self.sent += 1;
        if self.sends.len() < 64 {
            self.sends.push((to, data.to_vec()));
        }
    }
    fn submit_after(&mut self, event: Timer<TestId>, _: Duration) {
        if self.timers.len() < 64 {
            self.timers.push(event);
        }
    }
}

/// Throws everything away.
struct Discard;

impl Runtime<TestId> for Discard {
    fn notify(&mut self, _: Notification<TestId>) {}
    fn send_to(&mut self, _: TestId, data: &[u8]) {
        black_box(data);
    }
    fn submit_after(&mut self, _: Timer<TestId>, _: Duration) {}
}

/// Custom broadcasts for the backlog benches: `key u32 BE | version u32 BE
/// | 16 bytes`, every item news.
#[derive(Default)]
struct Versions;

#[derive(Clone, Copy)]
struct Version {
    key: u32,
    version: u32,
}

impl Invalidates for Version {
    type Key = u32;
    fn key(&self) -> u32 {
        self.key
    }
    fn invalidates(&self, other: &Self) -> bool {
        self.version > other.version
    }
}

impl BroadcastHandler<TestId> for Versions {
    type Broadcast = Version;
    type Error = &'static str;
    fn receive_item(
        &mut self,
        item: &[u8],
        _: Option<&TestId>,
    ) -> Result<Option<Version>, Self::Error> {
        let key = u32::from_be_bytes(item[..4].try_into().map_err(|_| "short")?);
        let version = u32::from_be_bytes(item[4..8].try_into().map_err(|_| "short")?);
        Ok(Some(Version { key, version }))
    }
}

fn item(key: u32, version: u32) -> [u8; 24] {
    let mut b = [0xab; 24];
    b[..4].copy_from_slice(&key.to_be_bytes());
    b[4..8].copy_from_slice(&version.to_be_bytes());
    b
}

fn id(addr: u32) -> TestId {
    GenerationalId::new(addr, 1)
}

fn rng(seed: u64) -> Xoshiro128PlusPlus {
    Xoshiro128PlusPlus::seed_from_u64(seed)
}

/// A ping from member 1 to one of 10 members, carrying 10 updates about
/// them; returns the target and the datagram.
fn ping_with_10_updates() -> (TestId, Vec<u8>) {
    let config = Config::new_lan(16);
    let mut sender = Foca::new(id(1), config, rng(1), TestCodec).unwrap();
    let mut out = Collect::default();
    // Queued for dissemination: news.
    let news: Vec<_> = (2..12).map(|a| Member::alive(id(a), 0)).collect();
    sender.apply_many(news, &mut out).unwrap();
    let probe = out
        .timers
        .iter()
        .find(|t| matches!(t, Timer::ProbeRandomMember(_)))
        .cloned()
        .expect("joining a cluster starts the probe chain");
    out.sends.clear();
    sender.handle_timer(probe, &mut out).unwrap();
    out.sends
        .into_iter()
        .next()
        .expect("a probe period sends a ping")
}

fn handle_data(c: &mut Criterion) {
    let (target, ping) = ping_with_10_updates();
    let mut group = c.benchmark_group("handle_data");
    for n in [10u32, 1_000, 10_000] {
        let mut config = Config::new_lan(n as usize);
        config.check_source = false;
        let mut member = Foca::new(target, config, rng(2), TestCodec).unwrap();
        // The table: the sender and the members the updates are about, and
        // others up to n.
        let table = (1..12)
            .chain(1_000..)
            .filter(|a| a != target.address())
            .take(n as usize)
            .map(|a| Member::alive(id(a), 0));
        member.restore(table, Discard).unwrap();
        // Warm up until the answers carry nothing new.
        for _ in 0..200 {
            member.handle_data(&ping, Discard).unwrap();
        }
        // The ping (159 bytes: a header and 10 member records) is handled,
        // not dropped: it is answered.
        let mut out = Collect::default();
        member.handle_data(&ping, &mut out).unwrap();
        assert_eq!(out.sent, 1, "a ping gets one ack");
        assert!(member.num_members() >= n as usize);
        group.bench_with_input(BenchmarkId::new("ping_10_updates", n), &n, |b, _| {
            b.iter(|| member.handle_data(black_box(&ping), Discard))
        });
    }
    group.finish();
}

/// A member with 10 peers and a custom broadcast backlog of `len` items
/// (keys `0..len`), holding at most `cap`.
fn with_backlog(len: u32, cap: usize) -> Foca<TestId, TestCodec, Xoshiro128PlusPlus, Versions> {
    let config = Config {
        max_broadcast_backlog: cap,
        ..Config::new_lan(16)
    };
    let mut foca = Foca::with_custom_broadcast(id(1), config, rng(3), TestCodec, Versions).unwrap();
    foca.restore((2..12).map(|a| Member::alive(id(a), 0)), Discard)
        .unwrap();
    for k in 0..len {
        foca.add_broadcast(&item(k, 1)).unwrap();
    }
    assert_eq!(foca.custom_broadcast_backlog(), len as usize);
    foca
}

fn backlog(c: &mut Criterion) {
    let mut group = c.benchmark_group("backlog");
    for len in [10u32, 1_000, 100_000] {
        group.throughput(Throughput::Elements(1));
        // A full backlog: every insert evicts one.
        let mut foca = with_backlog(len, len as usize);
        let mut next = len;
        group.bench_with_input(BenchmarkId::new("insert", len), &len, |b, _| {
            b.iter(|| {
                next += 1;
                foca.add_broadcast(black_box(&item(next, 1))).unwrap()
            })
        });

        let mut foca = with_backlog(len, len as usize);
        let mut version = 1;
        let mut key = 0;
        group.bench_with_input(BenchmarkId::new("invalidate", len), &len, |b, _| {
            b.iter(|| {
                key = (key + 7919) % len;
                version += 1;
                foca.add_broadcast(black_box(&item(key, version))).unwrap()
            })
        });

        // Per item sent: one call fills up to 128 datagrams of about 50
        // items (fewer at 10: each item goes to 8 of the 10 members).
        let mut foca = with_backlog(len, len as usize);
        let mut out = Collect::default();
        foca.broadcast(&mut out).unwrap();
        let per_call = (out.sends.iter().map(|(_, d)| d.len()).sum::<usize>() / 28).max(1);
        group.throughput(Throughput::Elements(per_call as u64));
        let mut next = len;
        group.bench_with_input(BenchmarkId::new("fill", len), &len, |b, _| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    // Top up, untimed: items leave after their last send.
                    while foca.custom_broadcast_backlog() < len as usize {
                        next += 1;
                        foca.add_broadcast(&item(next, 1)).unwrap();
                    }
                    let start = Instant::now();
                    foca.broadcast(Discard).unwrap();
                    spent += start.elapsed();
                }
                spent
            })
        });
    }
    group.finish();
}

fn members(c: &mut Criterion) {
    let n = 10_000u32;
    let mut group = c.benchmark_group("members");
    let mut foca = Foca::new(id(0), Config::new_lan(n as usize), rng(4), TestCodec).unwrap();
    foca.restore((1..=n).map(|a| Member::alive(id(a), 0)), Discard)
        .unwrap();
    let mut a = 0u32;
    group.bench_with_input(BenchmarkId::new("lookup", n), &n, |b, _| {
        b.iter(|| {
            a = a % n + 1;
            black_box(foca.member(black_box(&a)).is_some())
        })
    });
    // Gossip runs only with news to send: one incarnation bump, untimed,
    // before each call.
    let mut incarnation = 0;
    group.bench_with_input(BenchmarkId::new("choose", n), &n, |b, _| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                incarnation += 1;
                let news = Member::alive(id(1 + incarnation % n), incarnation / n + 1);
                foca.apply_many([news], Discard).unwrap();
                let start = Instant::now();
                foca.gossip(Discard).unwrap();
                spent += start.elapsed();
            }
            spent
        })
    });
    group.finish();
}

criterion_group!(benches, handle_data, backlog, members);
criterion_main!(benches);
