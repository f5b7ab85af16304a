//! The `Endpoint` as drivers see it: commands, coalesced snapshots, events
//! for received custom broadcasts, refusals counted before the protocol.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use foca_core::testing::{NoEnvelope, TestCodec, TestId};
use foca_core::{
    BroadcastHandler, Command, Config, Endpoint, Event, Foca, GenerationalId, Invalidates, Member,
    SNAPSHOT_INTERVAL,
};
use rand::SeedableRng;
use rand::rngs::Xoshiro128PlusPlus;

fn id(addr: u32) -> TestId {
    GenerationalId::new(addr, 1)
}

/// Items are news once each.
#[derive(Default)]
struct Once(std::collections::BTreeSet<Vec<u8>>);

struct Item(Vec<u8>);

impl Invalidates for Item {
    type Key = Vec<u8>;
    fn key(&self) -> Vec<u8> {
        self.0.clone()
    }
    fn invalidates(&self, _: &Self) -> bool {
        false
    }
}

impl BroadcastHandler<TestId> for Once {
    type Broadcast = Item;
    type Error = &'static str;
    fn receive_item(
        &mut self,
        item: &[u8],
        _: Option<&TestId>,
    ) -> Result<Option<Item>, Self::Error> {
        Ok(self.0.insert(item.to_vec()).then(|| Item(item.to_vec())))
    }
}

type Ep = Endpoint<TestId, TestCodec, Xoshiro128PlusPlus, Once, NoEnvelope>;

fn endpoint(addr: u32) -> Ep {
    let rng = Xoshiro128PlusPlus::seed_from_u64(u64::from(addr));
    let foca =
        Foca::with_custom_broadcast(id(addr), Config::simple(), rng, TestCodec, Once::default())
            .unwrap();
    Endpoint::new(foca, NoEnvelope, Duration::ZERO).unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn apply(ep: &mut Ep, now: Duration, addrs: impl IntoIterator<Item = u32>) {
    let news = addrs.into_iter().map(|a| Member::alive(id(a), 0)).collect();
    ep.command(now, Command::Apply(news)).unwrap();
}

#[test]
fn a_change_after_a_quiet_spell_shows_at_once_and_a_burst_costs_one_more_snapshot() {
    let mut ep = endpoint(1);
    // The member as created.
    let first = ep.poll_snapshot(Duration::ZERO).unwrap();
    assert!(first.members.is_empty());
    assert_eq!(ep.snapshot_due(), None);
    assert_eq!(ep.poll_snapshot(ms(1)), None);
    // A join: at once.
    apply(&mut ep, ms(10), [2]);
    assert_eq!(ep.snapshot_due(), Some(Duration::ZERO));
    assert_eq!(ep.poll_snapshot(ms(10)).unwrap().members.len(), 1);
    // A burst right after: held until the interval has passed, then one
    // snapshot with all of it.
    for a in 3..=50 {
        apply(&mut ep, ms(20), [a]);
    }
    assert_eq!(ep.snapshot_due(), Some(ms(10) + SNAPSHOT_INTERVAL));
    assert_eq!(ep.poll_snapshot(ms(20)), None);
    assert_eq!(ep.poll_snapshot(ms(109)), None);
    let burst = ep.poll_snapshot(ms(110)).unwrap();
    assert_eq!(burst.members.len(), 49);
    assert_eq!(ep.poll_snapshot(ms(500)), None);
    // Leaving changes the state: a snapshot says so.
    ep.command(ms(600), Command::Leave).unwrap();
    let left = ep.poll_snapshot(ms(600)).unwrap();
    assert_eq!(left.state, foca_core::ConnectionState::Left);
}

#[test]
fn a_broadcast_is_sent_at_once_and_received_as_an_event_with_its_sender() {
    let (mut a, mut b) = (endpoint(1), endpoint(2));
    apply(&mut a, ms(0), [2]);
    apply(&mut b, ms(0), [1]);
    while a.poll_transmit().is_some() {}
    assert!(
        a.command(ms(1), Command::AddBroadcast(b"hello".to_vec()))
            .unwrap()
    );
    // Not news twice.
    assert!(
        !a.command(ms(1), Command::AddBroadcast(b"hello".to_vec()))
            .unwrap()
    );
    let mut sent = 0;
    while let Some(mut t) = a.poll_transmit() {
        assert_eq!(t.to, 2);
        b.handle_datagram(ms(2), 1, &mut t.data).unwrap();
        sent += 1;
    }
    assert_eq!(sent, 1, "sent at once, to the one member there is");
    let events: Vec<_> = std::iter::from_fn(|| b.poll_event()).collect();
    assert!(
        events.contains(&Event::Broadcast {
            item: b"hello".to_vec(),
            from: id(1)
        }),
        "{events:?}"
    );
}

#[test]
fn oversized_datagrams_are_dropped_before_the_protocol_and_counted() {
    let mut ep = endpoint(1);
    let max = ep.max_datagram();
    assert_eq!(max, Config::simple().max_packet_size);
    let mut big = vec![0u8; max + 1];
    ep.handle_datagram(ms(1), 9, &mut big).unwrap();
    let m = ep.metrics();
    assert_eq!(m.dropped.oversized, 1);
    assert_eq!(m.datagrams_in, 0, "the protocol never saw it");
    assert_eq!(m.dropped.total(), 1);
}

#[test]
fn a_config_that_leaves_no_room_for_the_envelope_is_refused() {
    struct Fat;
    impl foca_core::Envelope for Fat {
        type SealError = core::convert::Infallible;
        type Rejections = ();
        fn overhead(&self) -> usize {
            100
        }
        fn seal(&mut self, p: &[u8], out: &mut Vec<u8>) -> Result<(), Self::SealError> {
            out.clear();
            out.extend_from_slice(p);
            Ok(())
        }
        fn open<'a>(
            &mut self,
            d: &'a mut [u8],
        ) -> Result<foca_core::Opened<'a>, foca_core::Refusal> {
            Ok(foca_core::Opened::plain(d))
        }
        fn rejections(&self) {}
    }
    let config = Config {
        max_packet_size: foca_core::MAX_PACKET_SIZE,
        ..Config::simple()
    };
    let rng = Xoshiro128PlusPlus::seed_from_u64(1);
    let foca = Foca::new(id(1), config, rng, TestCodec).unwrap();
    let Err(e) = Endpoint::new(foca, Fat, Duration::ZERO) else {
        panic!("accepted a config the envelope cannot carry");
    };
    assert!(e.to_string().contains("max_packet_size"), "{e}");
}
