//! Key rotation in a running three-member cluster (add B everywhere, make it primary member by member, remove A everywhere): every datagram opens and no member is ever declared down; B made primary too early is refused (the negative control).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Fate, Id, Net, gid, key, keyring};
use foca_codec::{Cipher, Envelope, KeyId, OpenError, PostcardCodec};
use foca_core::{GenerationalId, Notification};

const LABEL: &[u8] = b"rotation";
const A: KeyId = 1;
const B: KeyId = 2;
const STEP: Duration = Duration::from_secs(3);

type RotNet = Net<Id, PostcardCodec<Id>>;

/// Three members sealing with key A (`cipher_a`), joined and converged.
fn cluster(cipher_a: Cipher) -> RotNet {
    let mut net = Net::new(PostcardCodec::new());
    // Long enough that datagrams are in flight when keys change.
    net.latency = Duration::from_millis(20);
    for n in 1..=3u8 {
        let env = Envelope::encrypted(LABEL, keyring(A, key(cipher_a, 0xa1), u64::from(n)));
        // Room for the largest overhead, whichever key is primary.
        let ep = common::endpoint(
            gid(n),
            common::config(60),
            PostcardCodec::new(),
            u64::from(n),
        );
        net.add(ep, env);
    }
    for i in 1..3 {
        net.with(i, |ep, now| {
            common::join(ep, now, GenerationalId::seed(common::v4(1)));
        });
    }
    assert!(net.converge(Duration::from_secs(10)), "did not converge");
    net
}

/// Which key each member seals with, from which datagram of the log on.
struct Schedule(Vec<(usize, usize, KeyId, Cipher)>);

impl Schedule {
    fn primary(&self, member: usize, record: usize) -> (KeyId, Cipher) {
        self.0
            .iter()
            .rev()
            .find(|(at, m, _, _)| *m == member && *at <= record)
            .map(|(_, _, id, c)| (*id, *c))
            .unwrap()
    }
}

/// Advances the clock until datagrams are in flight, then changes a
/// keyring: the change always races traffic sealed before it. Returns how
/// many were in flight.
fn when_in_flight(net: &mut RotNet, change: impl FnOnce(&mut RotNet)) -> usize {
    let deadline = net.now + Duration::from_secs(2);
    while net.in_flight() == 0 && net.now < deadline {
        net.run_for(Duration::from_millis(1));
    }
    let n = net.in_flight();
    assert!(n > 0, "no traffic");
    change(net);
    n
}

/// Runs `STEP`, with a custom broadcast from each member besides the
/// probes, and checks that every member sent something and that the cluster
/// is still fully connected.
fn step(net: &mut RotNet, what: &str) {
    let from = net.log.len();
    for i in 0..3 {
        let item = format!("{what} from {i}");
        net.with(i, |ep, now| common::broadcast(ep, now, item.as_bytes()));
    }
    net.run_for(STEP);
    let window = &net.log[from..];
    for i in 0..3 {
        assert!(
            window.iter().any(|r| r.from == i),
            "{what}: member {i} sent nothing"
        );
    }
    assert!(net.fully_connected(), "{what}: not fully connected");
    let kinds: std::collections::BTreeSet<&str> = window.iter().map(|r| r.kind).collect();
    println!("{what}: {} datagrams sent ({kinds:?})", window.len());
}

/// The documented rotation, with the cluster running between every change
/// and each change made while datagrams sealed before it are in flight.
fn rotate(cipher_a: Cipher, cipher_b: Cipher) {
    let mut net = cluster(cipher_a);
    let key_b = key(cipher_b, 0xb2);
    let tag = format!("{cipher_a:?} -> {cipher_b:?}");
    let mut schedule = Schedule((0..3).map(|i| (0, i, A, cipher_a)).collect());
    let mut raced = 0;

    step(&mut net, &format!("{tag}: steady on A"));
    for i in 0..3 {
        raced += when_in_flight(&mut net, |net| {
            let ring = net.nodes[i].env.keyring_mut().unwrap();
            ring.add(B, key_b.clone()).unwrap();
        });
        step(&mut net, &format!("{tag}: B added on {i}"));
    }
    for i in 0..3 {
        raced += when_in_flight(&mut net, |net| {
            net.nodes[i].env.keyring_mut().unwrap().use_key(B).unwrap();
            schedule.0.push((net.log.len(), i, B, cipher_b));
        });
        step(&mut net, &format!("{tag}: B primary on {i}"));
    }
    for i in 0..3 {
        raced += when_in_flight(&mut net, |net| {
            net.nodes[i].env.keyring_mut().unwrap().remove(A).unwrap();
        });
        step(&mut net, &format!("{tag}: A removed on {i}"));
    }
    step(&mut net, &format!("{tag}: steady on B"));
    let sent = net.log.len();
    net.run_for(Duration::from_secs(1));

    // Every datagram sealed with its sender's primary key at the time,
    // opened unchanged and accepted by its receiver.
    for (n, r) in net.log[..sent].iter().enumerate() {
        let (id, cipher) = schedule.primary(r.from, n);
        assert_eq!(r.key_id, Some(id), "{tag}: datagram {n}: {r:?}");
        assert_eq!(r.mode, cipher.mode(), "{tag}: datagram {n}: {r:?}");
        assert!(r.accepted(), "{tag}: datagram {n}: {r:?}");
        assert_eq!(r.opened_same, Some(true), "{tag}: datagram {n}: {r:?}");
    }
    // Nothing refused, nothing dropped, nobody suspected or down.
    for (i, node) in net.nodes.iter().enumerate() {
        assert_eq!(
            node.env.rejections().total(),
            0,
            "{tag}: member {i}: {:?}",
            node.env.rejections()
        );
        let ring = node.env.keyring().unwrap();
        assert_eq!(ring.primary(), B);
        assert_eq!(ring.ids().collect::<Vec<_>>(), [B]);
        let m = node.ep.foca().metrics();
        assert_eq!(m.dropped.total(), 0, "{tag}: member {i}: {:?}", m.dropped);
        assert_eq!(m.suspicions_raised, 0, "{tag}: member {i}");
    }
    let downs: Vec<_> = net
        .notifications
        .iter()
        .filter(|(_, _, n)| matches!(n, Notification::MemberDown(_)))
        .collect();
    assert!(downs.is_empty(), "{tag}: {downs:?}");
    println!(
        "{tag}: {sent} datagrams, all opened and accepted; {raced} were in flight across a keyring change"
    );
}

#[test]
fn rotation_chacha_to_xchacha() {
    rotate(Cipher::ChaCha20Poly1305, Cipher::XChaCha20Poly1305);
}

#[test]
fn rotation_aes_to_aes() {
    rotate(Cipher::Aes256Gcm, Cipher::Aes256Gcm);
}

#[test]
fn rotation_xchacha_to_aes() {
    rotate(Cipher::XChaCha20Poly1305, Cipher::Aes256Gcm);
}

/// The negative control: member 0 seals with B before the others have it.
/// They refuse all its datagrams as `UnknownKey(2)` (counted), stop hearing
/// from it and declare it down; once they add B, it is heard again and
/// rejoins.
#[test]
fn making_b_primary_too_early_is_refused() {
    let cipher = Cipher::ChaCha20Poly1305;
    let mut net = cluster(cipher);
    let key_b = key(cipher, 0xb2);
    net.run_for(STEP);
    let before = net.log.len();
    {
        let ring = net.nodes[0].env.keyring_mut().unwrap();
        ring.add(B, key_b.clone()).unwrap();
        ring.use_key(B).unwrap();
    }
    net.run_for(Duration::from_secs(15));
    let window = &net.log[before..];
    let from_0: Vec<_> = window.iter().filter(|r| r.from == 0).collect();
    assert!(!from_0.is_empty());
    for r in &from_0 {
        assert_eq!(r.key_id, Some(B));
        if r.fate != Fate::InFlight {
            assert_eq!(r.fate, Fate::Rejected(OpenError::UnknownKey(B)), "{r:?}");
        }
    }
    // What 1 and 2 send (with A) still opens at 0, which has both keys
    // (0's own protocol may then drop it: it cannot hear their acks, so it
    // declares them down).
    assert!(
        window
            .iter()
            .filter(|r| r.from != 0 && r.to == 0)
            .all(|r| r.key_id == Some(A) && matches!(r.fate, Fate::Handled(_) | Fate::InFlight))
    );
    let refused = |i: usize| {
        window
            .iter()
            .filter(|r| r.to == i && r.fate == Fate::Rejected(OpenError::UnknownKey(B)))
            .count() as u64
    };
    for i in [1, 2] {
        let r = net.nodes[i].env.rejections();
        assert!(r.unknown_key > 0, "member {i}: {r:?}");
        assert_eq!(r.unknown_key, refused(i), "member {i}");
        assert_eq!(r.total(), r.unknown_key, "member {i}: {r:?}");
    }
    assert_eq!(net.nodes[0].env.rejections().total(), 0);
    let down_0 = |n: &Notification<Id>| *n == Notification::MemberDown(gid(1));
    assert!(
        net.notifications
            .iter()
            .any(|(_, i, n)| *i != 0 && down_0(n)),
        "member 0 was not declared down: {:?}",
        net.notifications
    );
    println!(
        "B primary on 0 only: {} of its datagrams refused as UnknownKey(2) by 1 and 2, 0 declared down",
        refused(1) + refused(2)
    );

    // The rest of the rotation repairs it.
    for i in [1, 2] {
        net.nodes[i]
            .env
            .keyring_mut()
            .unwrap()
            .add(B, key_b.clone())
            .unwrap();
    }
    let repaired = net.log.len();
    assert!(net.converge(Duration::from_secs(60)), "did not recover");
    assert!(
        net.log[repaired..]
            .iter()
            .all(|r| !matches!(r.fate, Fate::Rejected(_)))
    );
}

/// Rotating to a cipher with longer nonces (ChaCha20 to XChaCha20: 48 to
/// 60 bytes of overhead) with full-size datagrams, the core's
/// `max_packet_size` sized as the crate docs say (`max_datagram` minus the
/// envelope's overhead at start: 352 of 400). Adding B must not stop
/// member from sealing what fits with its primary A; before B becomes
/// primary, `max_packet_size` is lowered to the new `max_payload()` (340),
/// on all members at once while nothing is in flight. Every datagram opens,
/// none is refused or dropped.
#[test]
fn full_size_datagrams_through_a_rotation_to_longer_nonces() {
    let (cipher_a, cipher_b) = (Cipher::ChaCha20Poly1305, Cipher::XChaCha20Poly1305);
    let max = 400;
    let mut net = Net::new(PostcardCodec::new());
    net.latency = Duration::from_millis(20);
    for n in 1..=3u8 {
        let env = Envelope::encrypted(LABEL, keyring(A, key(cipher_a, 0xa1), u64::from(n)))
            .with_max_datagram(max);
        assert_eq!(env.max_payload(), 352);
        let config = foca_core::Config {
            max_packet_size: env.max_payload(),
            ..foca_core::Config::new_lan(3)
        };
        net.add(
            common::endpoint(gid(n), config, PostcardCodec::new(), u64::from(n)),
            env,
        );
    }
    for i in 1..3 {
        net.with(i, |ep, now| {
            common::join(ep, now, GenerationalId::seed(common::v4(1)));
        });
    }
    assert!(net.converge(Duration::from_secs(10)));
    // Broadcast items of many sizes, so that datagrams fill up.
    let mut item = 0usize;
    let mut big_step = |net: &mut RotNet| {
        for i in 0..3 {
            for _ in 0..10 {
                item += 1;
                let mut data = format!("{item:08}").into_bytes();
                data.resize(8 + (item * 37) % 160, b'.');
                net.with(i, |ep, now| common::broadcast(ep, now, &data));
            }
        }
        net.run_for(STEP);
    };
    big_step(&mut net);
    let key_b = key(cipher_b, 0xb2);
    for i in 0..3 {
        net.nodes[i]
            .env
            .keyring_mut()
            .unwrap()
            .add(B, key_b.clone())
            .unwrap();
        assert_eq!(net.nodes[i].env.overhead(), 60);
        big_step(&mut net);
    }
    let largest_on_a = net.log.iter().map(|r| r.payload_len).max().unwrap();
    assert!(
        largest_on_a > 340,
        "no datagram used the room: {largest_on_a}"
    );
    assert!(
        net.log
            .iter()
            .all(|r| r.key_id == Some(A) && r.sealed_len <= max)
    );

    // Lower every member's max_packet_size at once, nothing in flight.
    while net.in_flight() > 0 {
        net.run_for(Duration::from_millis(1));
    }
    let lowered = net.log.len();
    for i in 0..3 {
        let config = foca_core::Config {
            max_packet_size: net.nodes[i].env.max_payload(),
            ..net.nodes[i].ep.foca().config().clone()
        };
        assert_eq!(config.max_packet_size, 340);
        net.with(i, |ep, now| {
            let command = foca_core::Command::SetConfig(Box::new(config));
            ep.command(now, command).unwrap()
        });
    }
    for i in 0..3 {
        net.nodes[i].env.keyring_mut().unwrap().use_key(B).unwrap();
        big_step(&mut net);
    }
    for i in 0..3 {
        net.nodes[i].env.keyring_mut().unwrap().remove(A).unwrap();
        big_step(&mut net);
    }
    net.run_for(Duration::from_secs(1));
    assert!(net.fully_connected());
    assert!(
        net.log[lowered..]
            .iter()
            .all(|r| r.payload_len <= 340 && r.sealed_len <= max)
    );
    let largest = net.log.iter().map(|r| r.sealed_len).max().unwrap();
    // Every datagram's fate is known once none is in flight.
    while net.in_flight() > 0 {
        net.run_for(Duration::from_millis(1));
    }
    for r in &net.log {
        assert!(r.accepted(), "{r:?}");
    }
    for node in &net.nodes {
        assert_eq!(node.env.rejections().total(), 0);
        assert_eq!(node.ep.foca().metrics().dropped.total(), 0);
    }
    println!(
        "{} datagrams, largest payload {largest_on_a} B with A, largest datagram {largest} B of {max}",
        net.log.len()
    );
}

/// Sealing checks the size the datagram will really have: with the primary
/// key's overhead, not the largest of the installed keys'.
#[test]
fn sealing_counts_the_primary_keys_overhead() {
    let mut env = Envelope::encrypted(LABEL, keyring(A, key(Cipher::ChaCha20Poly1305, 1), 1))
        .with_max_datagram(400);
    let mut rx = Envelope::encrypted(LABEL, keyring(A, key(Cipher::ChaCha20Poly1305, 1), 2));
    rx.keyring_mut()
        .unwrap()
        .add(B, key(Cipher::XChaCha20Poly1305, 2))
        .unwrap();
    let mut wire = Vec::new();
    assert_eq!(env.max_payload(), 352);
    env.seal(&[7; 352], &mut wire).unwrap();
    assert_eq!(wire.len(), 400);
    env.keyring_mut()
        .unwrap()
        .add(B, key(Cipher::XChaCha20Poly1305, 2))
        .unwrap();
    assert_eq!((env.overhead(), env.max_payload()), (60, 340));
    env.seal(&[7; 352], &mut wire).unwrap();
    assert_eq!((wire.len(), &wire[8..12]), (400, &A.to_be_bytes()[..]));
    assert_eq!(rx.open(&wire).unwrap(), [7; 352]);
    env.keyring_mut().unwrap().use_key(B).unwrap();
    assert_eq!(
        env.seal(&[7; 352], &mut wire),
        Err(foca_codec::SealError::Oversized {
            size: 412,
            max: 400
        })
    );
    env.seal(&[7; 340], &mut wire).unwrap();
    assert_eq!((wire.len(), &wire[8..12]), (400, &B.to_be_bytes()[..]));
    assert_eq!(rx.open(&wire).unwrap(), [7; 340]);
}
