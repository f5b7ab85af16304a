//! Where a datagram came from: a sender claiming another address is
//! dropped, and an address that has not proven itself gets back at most
//! three times what it sent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use foca_core::testing::{NoEnvelope, TestCodec, TestId};
use foca_core::{
    AMPLIFICATION_FACTOR, Codec, Command, Config, Endpoint, Envelope, Foca, GenerationalId, Header,
    MAX_FEEDS_PER_SOURCE, Member, Message, Opened, Refusal, wire,
};
use rand::SeedableRng;
use rand::rngs::Xoshiro128PlusPlus;

fn id(addr: u32) -> TestId {
    GenerationalId::new(addr, 1)
}

/// Passes payloads through, vouching for them when told to (a sealed
/// envelope whose key opened the datagram).
#[derive(Default)]
struct Vouching(bool);

impl Envelope for Vouching {
    type SealError = core::convert::Infallible;
    type Rejections = ();
    fn overhead(&self) -> usize {
        0
    }
    fn seal(&mut self, p: &[u8], out: &mut Vec<u8>) -> Result<(), Self::SealError> {
        out.clear();
        out.extend_from_slice(p);
        Ok(())
    }
    fn open<'a>(&mut self, d: &'a mut [u8]) -> Result<Opened<'a>, Refusal> {
        Ok(if self.0 {
            Opened::authenticated(d)
        } else {
            Opened::plain(d)
        })
    }
    fn rejections(&self) {}
}

type Ep<E = NoEnvelope> =
    Endpoint<TestId, TestCodec, Xoshiro128PlusPlus, foca_core::NoCustomBroadcast, E>;

fn config() -> Config {
    Config {
        max_packet_size: 1400,
        ..Config::new_lan(100)
    }
}

fn endpoint_with<E: Envelope>(config: Config, envelope: E) -> Ep<E> {
    let rng = Xoshiro128PlusPlus::seed_from_u64(7);
    let foca = Foca::new(id(1), config, rng, TestCodec).unwrap();
    let mut ep = Endpoint::new(foca, envelope, Duration::ZERO).unwrap();
    // 80 members: a feed fills a whole datagram.
    let table = (10..90).map(|a| Member::alive(id(a), 0)).collect();
    ep.command(Duration::ZERO, Command::Restore(table)).unwrap();
    while ep.poll_transmit().is_some() {}
    ep
}

fn endpoint() -> Ep {
    endpoint_with(config(), NoEnvelope)
}

/// A datagram from `src` to member 1, padded to `pad` bytes if it is a
/// request (as members pad them; 0: the shortest padding).
fn datagram(src: TestId, message: Message<TestId>, pad: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let header = Header {
        src,
        src_incarnation: 0,
        dst: id(1),
        message,
    };
    TestCodec.encode_header(&header, &mut out).unwrap();
    out.extend_from_slice(&[0, 0, 0, 0, 0]); // no updates or findings, no broadcasts
    if wire::is_padded(&header.message) {
        wire::pad(&mut out, pad);
    }
    out
}

fn sent<E: Envelope>(ep: &mut Ep<E>) -> Vec<(u32, usize)> {
    std::iter::from_fn(|| ep.poll_transmit())
        .map(|t| (t.to, t.data.len()))
        .collect()
}

#[test]
fn a_sender_claiming_another_address_is_dropped_and_counted() {
    let mut ep = endpoint();
    let now = Duration::from_millis(1);
    // Claims to be member 2, comes from address 66: dropped, unanswered.
    let mut ping = datagram(id(2), Message::Ping(5), 0);
    ep.handle_datagram(now, 66, &mut ping.clone()).unwrap();
    assert!(sent(&mut ep).is_empty());
    assert_eq!(ep.metrics().dropped.source_mismatch, 1);
    assert!(ep.foca().member(&2).is_none(), "nothing applied");
    // From its own address: answered.
    ep.handle_datagram(now, 2, &mut ping).unwrap();
    assert_eq!(sent(&mut ep).first().map(|s| s.0), Some(2));
}

#[test]
fn with_the_check_off_a_forged_sender_is_answered_but_within_three_times() {
    // Behind NAT: the claimed address is believed, and so a forger can aim
    // replies at member 2. They stay within 3× what the forger sent.
    let config = Config {
        check_source: false,
        ..config()
    };
    let mut ep = endpoint_with(config, NoEnvelope);
    let now = Duration::from_millis(1);
    let mut announce = datagram(id(2), Message::Announce, 0);
    let len = announce.len();
    ep.handle_datagram(now, 66, &mut announce).unwrap();
    let out = sent(&mut ep);
    let total: usize = out.iter().map(|s| s.1).sum();
    assert!(out.iter().all(|s| s.0 == 2), "{out:?}");
    assert!(total <= AMPLIFICATION_FACTOR * len, "{total} for {len}");
    assert_eq!(ep.metrics().dropped.source_mismatch, 0);
}

#[test]
fn an_unproven_address_gets_at_most_three_times_its_bytes() {
    let mut ep = endpoint();
    let now = Duration::from_millis(1);
    // A bare announce (the shortest padding): the feed is cut to 3×.
    let mut small = datagram(id(2), Message::Announce, 0);
    let len = small.len();
    ep.handle_datagram(now, 2, &mut small).unwrap();
    let out = sent(&mut ep);
    assert_eq!(out.len(), 1);
    assert!(out[0].1 <= AMPLIFICATION_FACTOR * len, "{out:?} for {len}");
    // Padded as members pad it: a full feed.
    let mut padded = datagram(id(3), Message::Announce, 1400usize.div_ceil(3));
    ep.handle_datagram(now, 3, &mut padded).unwrap();
    let out = sent(&mut ep);
    assert_eq!(out.len(), 1);
    assert!(out[0].1 > 1000, "a full feed: {out:?}");
}

#[test]
fn requests_members_send_are_padded_to_a_third_of_a_datagram() {
    let mut ep = endpoint();
    ep.command(Duration::ZERO, Command::Announce(id(2)))
        .unwrap();
    let out = sent(&mut ep);
    assert_eq!(out, vec![(2, 1400usize.div_ceil(3))]);
}

#[test]
fn an_address_that_acked_our_ping_is_proven() {
    let mut ep = endpoint();
    // Run until member 1 pings someone, and have that one ack.
    let mut now = Duration::ZERO;
    let (target, number) = loop {
        now += Duration::from_millis(100);
        ep.handle_timeouts(now).unwrap();
        let pings: Vec<_> = std::iter::from_fn(|| ep.poll_transmit())
            .filter_map(|t| {
                let mut input = &t.data[..];
                let h: Header<TestId> = TestCodec.decode_header(&mut input).unwrap();
                match h.message {
                    Message::Ping(n) => Some((h.dst, n)),
                    _ => None,
                }
            })
            .collect();
        if let Some(p) = pings.into_iter().next() {
            break p;
        }
        assert!(now < Duration::from_secs(5), "no probe");
    };
    let addr = *target.address();
    // Before: a bare ping from it gets an ack within 3× (news waits).
    let news: Vec<_> = (200..230).map(|a| Member::alive(id(a), 0)).collect();
    ep.command(now, Command::Apply(news)).unwrap();
    while ep.poll_transmit().is_some() {}
    let mut ping = datagram(target, Message::Ping(9), 0);
    let len = ping.len();
    ep.handle_datagram(now, addr, &mut ping.clone()).unwrap();
    let before = sent(&mut ep);
    assert!(
        before.iter().all(|s| s.1 <= AMPLIFICATION_FACTOR * len),
        "{before:?}"
    );
    // It acks our probe from its address: proven, and its next ping gets
    // an ack carrying as much news as fits.
    let mut ack = datagram(target, Message::Ack(number), 0);
    ep.handle_datagram(now, addr, &mut ack).unwrap();
    while ep.poll_transmit().is_some() {}
    ep.handle_datagram(now, addr, &mut ping).unwrap();
    let after = sent(&mut ep);
    assert!(
        after.iter().any(|s| s.1 > AMPLIFICATION_FACTOR * len),
        "{after:?}"
    );
}

#[test]
fn an_authenticated_datagram_is_not_limited() {
    let mut ep = endpoint_with(config(), Vouching(true));
    let now = Duration::from_millis(1);
    let mut small = datagram(id(2), Message::Announce, 0);
    ep.handle_datagram(now, 2, &mut small).unwrap();
    let out = sent(&mut ep);
    assert!(out[0].1 > 1000, "a full feed: {out:?}");
}

#[test]
fn one_address_gets_a_bounded_number_of_feeds_per_period() {
    let mut ep = endpoint();
    let now = Duration::from_millis(1);
    let announce = datagram(id(2), Message::Announce, 1400usize.div_ceil(3));
    for _ in 0..5 {
        ep.handle_datagram(now, 2, &mut announce.clone()).unwrap();
    }
    let feeds = sent(&mut ep).len();
    assert_eq!(feeds, usize::from(MAX_FEEDS_PER_SOURCE));
    assert_eq!(
        ep.foca().metrics().feeds_limited,
        5 - u64::from(MAX_FEEDS_PER_SOURCE)
    );
    // Another address is not held back by it.
    let mut other = datagram(id(3), Message::Announce, 1400usize.div_ceil(3));
    ep.handle_datagram(now, 3, &mut other).unwrap();
    assert_eq!(sent(&mut ep).len(), 1);
    // The next probe period, member 2 is answered again.
    ep.handle_timeouts(Duration::from_secs(2)).unwrap();
    while ep.poll_transmit().is_some() {}
    ep.handle_datagram(Duration::from_secs(2), 2, &mut announce.clone())
        .unwrap();
    assert!(sent(&mut ep).iter().any(|s| s.0 == 2));
}
