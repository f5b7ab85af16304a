//! `Foca::broadcast` sends the custom broadcast backlog now, each item to
//! distinct members as many times as its transmissions allow, within a
//! bound on datagrams.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use foca_core::testing::{NewsOnce, TestCodec, TestId};
use foca_core::{
    Config, Foca, GenerationalId, MAX_FLUSH_DATAGRAMS, Member, Message, Notification, Runtime,
    Timer,
};
use rand::SeedableRng;
use rand::rngs::Xoshiro128PlusPlus;

#[derive(Default)]
struct Rec {
    sent: Vec<(TestId, Vec<u8>)>,
}

impl Runtime<TestId> for Rec {
    fn notify(&mut self, _: Notification<TestId>) {}
    fn send_to(&mut self, to: TestId, data: &[u8]) {
        self.sent.push((to, data.to_vec()));
    }
    fn submit_after(&mut self, _: Timer<TestId>, _: Duration) {}
}

type F = Foca<TestId, TestCodec, Xoshiro128PlusPlus, NewsOnce>;

fn id(addr: u32) -> TestId {
    GenerationalId::new(addr, 1)
}

/// Member 1 of `n`, knowing the other `n - 1`.
fn member_of(n: u32) -> F {
    let config = Config::new_lan(n as usize);
    let rng = Xoshiro128PlusPlus::seed_from_u64(3);
    let mut f =
        Foca::with_custom_broadcast(id(1), config, rng, TestCodec, NewsOnce::default()).unwrap();
    let others: Vec<_> = (2..=n).map(|a| Member::alive(id(a), 0)).collect();
    f.apply_many(others, &mut Rec::default()).unwrap();
    f
}

fn item(k: u32) -> Vec<u8> {
    format!("item {k:04} with some payload").into_bytes()
}

/// For each item sent, the members it went to (each counted per sending).
fn recipients(rec: &Rec) -> BTreeMap<Vec<u8>, Vec<u32>> {
    let mut to = BTreeMap::<Vec<u8>, Vec<u32>>::new();
    for (dst, data) in &rec.sent {
        let d = foca_core::wire::parse(&mut TestCodec, data).unwrap();
        assert_eq!(d.header.message, Message::Broadcast);
        for b in d.broadcasts {
            to.entry(b.to_vec()).or_default().push(*dst.address());
        }
    }
    to
}

#[test]
fn a_queued_backlog_leaves_in_one_call_each_item_to_distinct_members() {
    const N: u32 = 6;
    const ITEMS: u32 = 300;
    let mut f = member_of(N);
    for k in 0..ITEMS {
        assert!(f.add_broadcast(&item(k)).unwrap());
    }
    let mut rec = Rec::default();
    f.broadcast(&mut rec).unwrap();
    assert_eq!(f.custom_broadcast_backlog(), 0, "all sent in the call");
    let limit = f.config().max_transmissions(N as usize) as usize;
    let to = recipients(&rec);
    assert_eq!(to.len(), ITEMS as usize, "every item went out");
    for (item, members) in &to {
        let distinct: BTreeSet<u32> = members.iter().copied().collect();
        assert_eq!(members.len(), limit, "{item:?}: {members:?}");
        assert_eq!(
            distinct.len(),
            limit,
            "{item:?} sent twice to one: {members:?}"
        );
    }
    // Full datagrams: about as few as the bytes need.
    let bytes: usize = to.keys().map(|i| (i.len() + 2) * limit).sum();
    let room = f.config().max_packet_size;
    assert!(
        rec.sent.len() <= bytes / (room / 2) + 1,
        "{} datagrams for {bytes} bytes of items",
        rec.sent.len()
    );
}

#[test]
fn one_call_sends_at_most_max_flush_datagrams() {
    const N: u32 = 40;
    let mut f = member_of(N);
    // Far more than 128 datagrams' worth.
    let mut k = 0;
    while f.custom_broadcast_backlog() < 1000 {
        f.add_broadcast(&item(k)).unwrap();
        k += 1;
    }
    let mut rec = Rec::default();
    f.broadcast(&mut rec).unwrap();
    assert_eq!(rec.sent.len(), MAX_FLUSH_DATAGRAMS);
    assert!(
        f.custom_broadcast_backlog() > 0,
        "the rest waits for gossip"
    );
}

#[test]
fn an_item_is_not_sent_back_to_the_member_it_came_from() {
    const N: u32 = 4;
    let mut f = member_of(N);
    // Member 2 sends one item; member 1 passes it on to 3 and 4 only.
    let mut buf = Vec::new();
    let header = foca_core::Header {
        src: id(2),
        src_incarnation: 0,
        dst: id(1),
        message: Message::Broadcast,
    };
    let w = foca_core::wire::Writer::new(&mut buf, 1400, &mut TestCodec, &header, &[]).unwrap();
    let mut items = Vec::new();
    foca_core::wire::put_item(&mut items, b"from two");
    w.finish(1, &items);
    let mut rec = Rec::default();
    f.handle_data(&buf, &mut rec).unwrap();
    rec.sent.clear();
    f.broadcast(&mut rec).unwrap();
    let to = recipients(&rec);
    let mut members = to[&b"from two".to_vec()].clone();
    members.sort_unstable();
    assert_eq!(members, [3, 4]);
    assert_eq!(
        f.custom_broadcast_backlog(),
        0,
        "everyone holds it: retired"
    );
}
