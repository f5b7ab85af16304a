//! Replays of sealed datagrams, end to end: endpoints sealing and opening
//! with `foca_codec::Envelope`, datagrams captured on the way and sent
//! again later, as an attacker on the path would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use foca_codec::{Cipher, Envelope, Key, Keyring, PostcardCodec};
use foca_core::{Command, Config, Endpoint, Foca, GenerationalId, NoCustomBroadcast, State};
use rand::SeedableRng;
use rand::rngs::{StdRng, Xoshiro128PlusPlus};

type Id = GenerationalId<u16>;
type Ep = Endpoint<Id, PostcardCodec<Id>, Xoshiro128PlusPlus, NoCustomBroadcast, Envelope>;

fn config() -> Config {
    Config {
        remove_down_after: Duration::from_secs(20),
        ..Config::simple()
    }
}

fn endpoint(addr: u16, seed: u64) -> Ep {
    let key = Key::new(Cipher::XChaCha20Poly1305, [7; 32]);
    let keyring = Keyring::new(1, key, &mut StdRng::seed_from_u64(seed));
    let envelope = Envelope::encrypted(b"replay", keyring);
    let rng = Xoshiro128PlusPlus::seed_from_u64(seed);
    let id = GenerationalId::new(addr, 1);
    let foca = Foca::new(id, config(), rng, PostcardCodec::new()).unwrap();
    Endpoint::new(foca, envelope, Duration::ZERO).unwrap()
}

/// Endpoints at addresses 1, 2, 3 (indexes 0, 1, 2) exchanging datagrams
/// in 10 ms steps; every datagram the first sends is kept, with its
/// destination.
struct Net {
    eps: Vec<Option<Ep>>,
    now: Duration,
    captured: Vec<(u16, Vec<u8>)>,
}

impl Net {
    fn step(&mut self) {
        self.now += Duration::from_millis(10);
        let mut flights = Vec::new();
        for (i, ep) in self.eps.iter_mut().enumerate() {
            let Some(ep) = ep else { continue };
            ep.handle_timeouts(self.now).unwrap();
            while let Some(t) = ep.poll_transmit() {
                if i == 0 {
                    self.captured.push((t.to, t.data.clone()));
                }
                flights.push((i as u16 + 1, t));
            }
            while ep.poll_event().is_some() {}
        }
        for (from, t) in flights {
            if let Some(Some(ep)) = self.eps.get_mut(usize::from(t.to) - 1) {
                let mut data = t.data;
                ep.handle_datagram(self.now, from, &mut data).unwrap();
            }
        }
    }

    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    fn b(&mut self) -> &mut Ep {
        self.eps[1].as_mut().unwrap()
    }

    fn announce(&mut self, i: usize, to: u16) {
        let now = self.now;
        let ep = self.eps[i].as_mut().unwrap();
        ep.command(now, Command::Announce(GenerationalId::new(to, 1)))
            .unwrap();
    }
}

#[test]
fn captured_datagrams_replayed_are_refused_even_after_their_sender_was_forgotten() {
    // Members A, B and C at addresses 1, 2 and 3.
    let mut net = Net {
        eps: (1..=3).map(|a| Some(endpoint(a, u64::from(a)))).collect(),
        now: Duration::ZERO,
        captured: Vec::new(),
    };
    net.announce(0, 2);
    net.announce(2, 2);
    net.run(Duration::from_secs(5));
    assert_eq!(net.b().foca().num_members(), 2, "A and C joined B");
    let captured = std::mem::take(&mut net.captured);
    assert!(captured.len() > 5, "{} datagrams", captured.len());

    // Every datagram A sent B, sent again now: each dropped as a replay,
    // none answered.
    let to_b: Vec<_> = captured.iter().filter(|(to, _)| *to == 2).collect();
    let before = net.b().metrics().dropped;
    let now = net.now;
    for (_, data) in &to_b {
        let mut data = data.clone();
        net.b().handle_datagram(now, 1, &mut data).unwrap();
    }
    let after = net.b().metrics().dropped;
    let refused = (after.replayed - before.replayed) + (after.too_old - before.too_old);
    assert_eq!(refused, to_b.len() as u64, "{after:?}");
    assert!(net.b().poll_transmit().is_none(), "a replay was answered");

    // A dies; B declares it down and, after `remove_down_after`, forgets it.
    net.eps[0] = None;
    net.run(Duration::from_secs(40));
    assert!(net.b().foca().member(&1).is_none(), "A forgotten");
    // A's old datagrams (its announce first of all) do not bring it back.
    let now = net.now;
    for (_, data) in &to_b {
        let mut data = data.clone();
        net.b().handle_datagram(now, 1, &mut data).unwrap();
    }
    net.run(Duration::from_secs(5));
    assert!(net.b().foca().member(&1).is_none(), "a replay revived A");
    let dropped = net.b().metrics().dropped;
    assert_eq!(
        dropped.replayed + dropped.too_old,
        2 * to_b.len() as u64,
        "{dropped:?}"
    );

    // A restarts with the same identity: its keyring starts from the wall
    // clock, above every number it used, and it is heard at once.
    std::thread::sleep(Duration::from_millis(2));
    net.eps[0] = Some(endpoint(1, 4));
    net.announce(0, 2);
    net.run(Duration::from_secs(2));
    let a_in_b = net.b().foca().member(&1).map(|m| m.state());
    assert_eq!(a_in_b, Some(State::Alive), "the restarted A joined");
}
