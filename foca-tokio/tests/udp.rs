//! Agents over real UDP on loopback, with tokio's paused clock: time only
//! advances when every agent is idle, so a slow machine cannot cause false
//! suspicions, and minutes of protocol time take well under a second.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use foca_codec::PostcardCodec;
use foca_codec::envelope::{Envelope, HEADER_LEN};
use foca_core::{Config, ConnectionState, GenerationalId, Notification};
use foca_tokio::{Builder, Event, Handle, Lagged, Snapshot};
use tokio::net::UdpSocket;
use tokio::time::timeout;

type Id = GenerationalId<SocketAddr>;

/// The cluster label of the test agents (plaintext: loopback only).
const LABEL: &[u8] = b"udp-tests";

fn plain() -> Envelope {
    Envelope::insecure_plaintext(LABEL)
}

async fn start(
    addr: SocketAddr,
    generation: u32,
    seed: Option<SocketAddr>,
    n: usize,
) -> Handle<Id> {
    let socket = UdpSocket::bind(addr).await.unwrap();
    let addr = socket.local_addr().unwrap();
    Builder::new(
        GenerationalId::new(addr, generation),
        Config::new_lan(n),
        PostcardCodec::new(),
        plain(),
    )
    .seeds(seed)
    .rng_seed(u64::from(addr.port()) << 8 | u64::from(generation))
    .spawn(socket)
    .unwrap()
}

/// A socket on a free loopback port and a builder for an agent on it,
/// sealing with `envelope`.
async fn builder_with(n: usize, envelope: Envelope) -> (UdpSocket, Builder<Id, PostcardCodec<Id>>) {
    let socket = UdpSocket::bind(any_port()).await.unwrap();
    let addr = socket.local_addr().unwrap();
    let b = Builder::new(
        GenerationalId::new(addr, 1),
        Config::new_lan(n),
        PostcardCodec::new(),
        envelope,
    );
    (socket, b)
}

/// [`builder_with`] a plaintext envelope.
async fn builder(n: usize) -> (UdpSocket, Builder<Id, PostcardCodec<Id>>) {
    builder_with(n, plain()).await
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn wait_all(agents: &[&Handle<Id>], what: &str, check: impl Fn(&Snapshot<Id>) -> bool) {
    for a in agents {
        let r = timeout(Duration::from_secs(120), a.wait_for(&check)).await;
        assert!(
            matches!(r, Ok(Ok(_))),
            "{what}: agent {} did not get there: {:?}",
            a.local_addr(),
            a.snapshot()
        );
    }
}

fn ids(s: &Snapshot<Id>) -> Vec<Id> {
    s.members.iter().map(|m| *m.id()).collect()
}

/// Stops every agent in `agents`.
async fn shutdown_all<'a>(agents: impl IntoIterator<Item = &'a Handle<Id>>) {
    for h in agents {
        h.shutdown().await.unwrap();
    }
}

/// Two agents, the second seeded with the first (not yet joined).
async fn pair() -> (Handle<Id>, Handle<Id>) {
    let a = start(any_port(), 1, None, 4).await;
    let b = start(any_port(), 1, Some(a.local_addr()), 4).await;
    (a, b)
}

/// Every event waiting in `sub`, without waiting.
fn drain(sub: &mut foca_tokio::Subscription<Id>) -> Vec<Event<Id>> {
    let mut out = Vec::new();
    while let Some(e) = sub.try_recv() {
        out.push(e.unwrap());
    }
    out
}

#[tokio::test(start_paused = true)]
async fn twenty_agents_join_fail_leave_and_restart() {
    const N: usize = 20;
    let seed = start(any_port(), 1, None, N).await;
    let mut agents = vec![seed.clone()];
    for _ in 1..N {
        agents.push(start(any_port(), 1, Some(seed.local_addr()), N).await);
    }
    let all: Vec<&Handle<Id>> = agents.iter().collect();
    wait_all(&all, "join", |s| s.members.len() == N - 1).await;
    for a in &agents {
        assert_eq!(a.snapshot().state, ConnectionState::Connected);
    }

    let mut subs: Vec<_> = agents.iter().map(Handle::subscribe).collect();

    // A crash: the task stops without a word.
    let crashed = agents[5].identity();
    agents[5].shutdown().await.unwrap();
    assert!(agents[5].is_stopped());
    let others: Vec<&Handle<Id>> = agents
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 5)
        .map(|(_, a)| a)
        .collect();
    wait_all(&others, "crash detection", |s| !ids(s).contains(&crashed)).await;
    for (i, sub) in subs.iter_mut().enumerate() {
        if i == 5 {
            continue;
        }
        let events = drain(sub);
        assert!(
            events.contains(&Event::Membership(Notification::MemberDown(crashed))),
            "agent {i} saw {events:?}"
        );
    }

    // A graceful leave: reported as left, not failed.
    let leaving = agents[7].identity();
    let leaving_addr = agents[7].local_addr();
    agents[7].leave(Duration::from_secs(2)).await.unwrap();
    assert_eq!(agents[7].snapshot().state, ConnectionState::Left);
    agents[7].shutdown().await.unwrap();
    let rest: Vec<&Handle<Id>> = agents
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 5 && *i != 7)
        .map(|(_, a)| a)
        .collect();
    wait_all(&rest, "leave", |s| !ids(s).contains(&leaving)).await;
    for (i, sub) in subs.iter_mut().enumerate() {
        if i == 5 || i == 7 {
            continue;
        }
        let events = drain(sub);
        assert!(
            events.contains(&Event::Membership(Notification::MemberLeft(leaving))),
            "agent {i} saw {events:?}"
        );
        assert!(
            !events.contains(&Event::Membership(Notification::MemberDown(leaving))),
            "agent {i} declared a member that left down: {events:?}"
        );
    }

    // The member that left restarts on the same address, a generation up.
    let back = start(leaving_addr, 2, Some(seed.local_addr()), N).await;
    let back_id = back.identity();
    assert_eq!(back.local_addr(), leaving_addr);
    wait_all(&rest, "restart", |s| ids(s).contains(&back_id)).await;
    wait_all(&[&back], "restart view", |s| s.members.len() == N - 2).await;

    shutdown_all(agents.iter().chain([&back])).await;
}

/// The first announce goes out at once (a socket the reactor has not yet
/// reported writable must not lose it): joining takes a round trip, not a
/// retry after the 500 ms rejoin backoff.
#[tokio::test(start_paused = true)]
async fn joining_takes_one_round_trip() {
    let (a, b) = pair().await;
    let joined = timeout(
        Duration::from_millis(100),
        b.wait_for(|s| s.members.len() == 1),
    )
    .await;
    assert!(
        joined.is_ok(),
        "b did not join within 100 ms: {:?}",
        b.metrics().await
    );
    shutdown_all([&a, &b]).await;
}

#[tokio::test(start_paused = true)]
async fn hostile_datagrams_are_dropped_and_counted() {
    let (a, b) = pair().await;
    let c = start(any_port(), 1, Some(a.local_addr()), 4).await;
    wait_all(&[&a, &b, &c], "join", |s| s.members.len() == 2).await;
    let before = a.snapshot();
    let metrics_before = a.metrics().await.unwrap();

    let attacker = UdpSocket::bind(any_port()).await.unwrap();
    let target = a.local_addr();
    // Garbage.
    for i in 0..50u8 {
        let junk: Vec<u8> = (0..usize::from(i) * 7 + 1)
            .map(|j| (j as u8).wrapping_mul(31) ^ i)
            .collect();
        attacker.send_to(&junk, target).await.unwrap();
    }
    // Truncated: a real envelope cut short, and a header alone.
    let mut sealed = Vec::new();
    let mut env = plain();
    env.seal(&[1, 2, 3, 4, 5, 6, 7, 8], &mut sealed).unwrap();
    for cut in 1..sealed.len() {
        attacker.send_to(&sealed[..cut], target).await.unwrap();
    }
    // A well-formed envelope whose payload is not a message.
    attacker.send_to(&sealed, target).await.unwrap();
    // Oversized: larger than max_packet_size (1,400) plus the envelope.
    let big = vec![0xAB; 1400 + HEADER_LEN + 64];
    for _ in 0..5 {
        attacker.send_to(&big, target).await.unwrap();
    }
    // Let it all be read, and a few periods pass.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let m = a.metrics().await.unwrap();
    let sent = 50 + (sealed.len() - 1) as u64 + 1 + 5;
    assert!(m.datagrams_received >= metrics_before.datagrams_received + sent);
    // The endpoint drops oversized datagrams before the envelope sees
    // them; the envelope refuses the rest of the junk.
    let oversized = m.protocol.dropped.oversized - metrics_before.protocol.dropped.oversized;
    assert_eq!(oversized, 5);
    assert_eq!(
        m.rejections.total() - metrics_before.rejections.total() + oversized,
        sent - 1,
        "{:?}",
        m.rejections
    );
    assert_eq!(
        m.protocol.dropped.total() - metrics_before.protocol.dropped.total(),
        sent,
        "every one counted by class too: {:?}",
        m.protocol.dropped
    );
    assert_eq!(
        m.protocol.dropped.decode - metrics_before.protocol.dropped.decode,
        1
    );
    let after = a.snapshot();
    assert_eq!(before.members.len(), after.members.len());
    let mut ids: Vec<_> = after.members.iter().map(|m| *m.id()).collect();
    ids.sort();
    let mut expected = vec![b.identity(), c.identity()];
    expected.sort();
    assert_eq!(ids, expected);
    shutdown_all([&a, &b, &c]).await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_subscriber_is_told_it_lagged() {
    let (socket, a) = builder(16).await;
    let addr = socket.local_addr().unwrap();
    let a = a.event_capacity(4).spawn(socket).unwrap();
    let mut sub = a.subscribe();
    let mut others = Vec::new();
    for _ in 0..10 {
        others.push(start(any_port(), 1, Some(addr), 16).await);
    }
    wait_all(&[&a], "join", |s| s.members.len() == 10).await;
    let mut lagged = 0;
    let mut seen = 0;
    while let Some(e) = sub.try_recv() {
        match e {
            Ok(_) => seen += 1,
            Err(Lagged(n)) => lagged += n,
        }
    }
    assert!(lagged > 0, "10 joins into a 4-event buffer must lag");
    assert!(seen <= 4);
    shutdown_all(others.iter().chain([&a])).await;
}

#[tokio::test(start_paused = true)]
async fn broadcasts_reach_every_subscriber() {
    use foca_core::testing::NewsOnce;

    let mut agents = Vec::new();
    let mut seed = None;
    for _ in 0..6 {
        let (socket, h) = builder(6).await;
        let addr = socket.local_addr().unwrap();
        let h = h
            .broadcast_handler(NewsOnce::default())
            .seeds(seed)
            .spawn(socket)
            .unwrap();
        seed.get_or_insert(addr);
        agents.push(h);
    }
    let all: Vec<&Handle<Id>> = agents.iter().collect();
    wait_all(&all, "join", |s| s.members.len() == 5).await;
    let mut subs: Vec<_> = agents.iter().map(Handle::subscribe).collect();
    assert!(agents[2].add_broadcast(&b"hello"[..]).await.unwrap());
    assert!(!agents[2].add_broadcast(&b"hello"[..]).await.unwrap());
    tokio::time::sleep(Duration::from_secs(10)).await;
    for (i, sub) in subs.iter_mut().enumerate() {
        let got: Vec<_> = drain(sub)
            .into_iter()
            .filter_map(|e| match e {
                Event::Broadcast { item, .. } => Some(item),
                Event::Membership(_) => None,
            })
            .collect();
        if i == 2 {
            assert!(got.is_empty(), "the author is not told its own broadcast");
        } else {
            assert_eq!(got, vec![b"hello".to_vec()], "agent {i}");
        }
    }
    shutdown_all(&agents).await;
}

#[tokio::test(start_paused = true)]
async fn seeds_may_be_host_names() {
    let a = start(any_port(), 1, None, 4).await;
    let (socket, b) = builder(4).await;
    let b = b
        .seeds([format!("localhost:{}", a.local_addr().port())])
        .spawn(socket)
        .unwrap();
    wait_all(&[&a, &b], "join by name", |s| s.members.len() == 1).await;
    shutdown_all([&a, &b]).await;
}

#[tokio::test(start_paused = true)]
async fn invalid_config_and_calls_are_refused_with_reasons() {
    let socket = UdpSocket::bind(any_port()).await.unwrap();
    let addr = socket.local_addr().unwrap();
    let mut config = Config::new_lan(4);
    config.probe_rtt = config.probe_period * 2;
    let err = Builder::new(
        GenerationalId::new(addr, 1),
        config,
        PostcardCodec::new(),
        plain(),
    )
    .spawn(socket)
    .unwrap_err();
    assert!(err.to_string().contains("probe_rtt"), "{err}");

    let a = start(any_port(), 1, None, 4).await;
    let mut bad = Config::new_lan(4);
    bad.max_packet_size = 10;
    let err = a.set_config(bad).await.unwrap_err();
    assert!(err.to_string().contains("max_packet_size"), "{err}");
    let err = a.announce(a.local_addr()).await.unwrap_err();
    assert!(matches!(err, foca_tokio::AgentError::Core(_)), "{err}");
    a.shutdown().await.unwrap();
    assert!(matches!(
        a.metrics().await,
        Err(foca_tokio::AgentError::Stopped)
    ));
    a.shutdown().await.unwrap();
}

/// Announcing to a port nobody listens on draws ICMP port-unreachable
/// replies; whatever the OS reports of them, the agent keeps working.
#[tokio::test(start_paused = true)]
async fn unreachable_seeds_are_survived() {
    let dead = UdpSocket::bind(any_port()).await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let a = start(any_port(), 1, Some(dead_addr), 4).await;
    // Several rejoin attempts, each answered by ICMP.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let m = a.metrics().await.unwrap();
    assert!(m.datagrams_sent >= 3, "{m:?}");
    eprintln!(
        "recv_errors={} send_errors={}",
        m.recv_errors, m.send_errors
    );
    let b = start(any_port(), 1, Some(a.local_addr()), 4).await;
    wait_all(&[&a, &b], "join after errors", |s| s.members.len() == 1).await;
    shutdown_all([&a, &b]).await;
}

#[tokio::test(start_paused = true)]
async fn leave_then_rejoin_and_subscriptions_end_with_the_agent() {
    let (a, b) = pair().await;
    wait_all(&[&a, &b], "join", |s| s.members.len() == 1).await;
    let err = a.rejoin().await.unwrap_err();
    assert!(matches!(err, foca_tokio::AgentError::NoSeeds), "{err}");

    b.leave(Duration::from_millis(500)).await.unwrap();
    wait_all(&[&a], "leave", |s| s.members.is_empty()).await;
    b.rejoin().await.unwrap();
    wait_all(&[&a, &b], "rejoin", |s| s.members.len() == 1).await;
    assert_eq!(b.snapshot().state, ConnectionState::Connected);

    let mut sub = b.subscribe();
    b.shutdown().await.unwrap();
    let end = timeout(Duration::from_secs(1), async {
        while sub.recv().await.is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the subscription did not end with the agent");
    assert!(b.subscribe().recv().await.is_none());
    a.shutdown().await.unwrap();
}

/// Sealed clusters: members with the key join; keys rotate with no
/// rejections; a member without the key is refused and counted.
#[cfg(feature = "encryption")]
#[tokio::test(start_paused = true)]
async fn encrypted_agents_rotate_keys_and_refuse_strangers() {
    use foca_codec::{Cipher, Key, Keyring};

    let key1 = [7u8; 32];
    let key2 = [9u8; 32];
    let mut rng = rand::rng();
    let mut agents = Vec::new();
    let mut seed = None;
    for _ in 0..3 {
        let socket = UdpSocket::bind(any_port()).await.unwrap();
        let addr = socket.local_addr().unwrap();
        let ring = Keyring::new(1, Key::new(Cipher::ChaCha20Poly1305, key1), &mut rng);
        let h = Builder::new(
            GenerationalId::new(addr, 1),
            Config::new_lan(4),
            PostcardCodec::new(),
            Envelope::encrypted(b"sealed", ring),
        )
        .seeds(seed)
        .spawn(socket)
        .unwrap();
        seed.get_or_insert(addr);
        agents.push(h);
    }
    let all: Vec<&Handle<Id>> = agents.iter().collect();
    wait_all(&all, "join", |s| s.members.len() == 2).await;

    // Rotation: everyone learns key 2, then seals with it, then drops key 1.
    for h in &agents {
        h.add_key(2, Key::new(Cipher::XChaCha20Poly1305, key2))
            .await
            .unwrap();
    }
    for h in &agents {
        h.use_key(2).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    for h in &agents {
        h.remove_key(1).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    for h in &agents {
        let m = h.metrics().await.unwrap();
        assert_eq!(m.rejections.total(), 0, "{:?}", m.rejections);
        assert_eq!(h.members().len(), 2);
    }
    let err = agents[0].remove_key(2).await.unwrap_err();
    assert!(err.to_string().contains('2'), "{err}");

    // A plain member with the right label cannot get in.
    let (socket, stranger) = builder_with(4, Envelope::insecure_plaintext(b"sealed")).await;
    let stranger = stranger.seeds(seed).spawn(socket).unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(stranger.members().is_empty());
    let refused = agents[0]
        .metrics()
        .await
        .unwrap()
        .rejections
        .plaintext_refused;
    assert!(refused > 0);
    assert_eq!(agents[0].members().len(), 2);
    shutdown_all(agents.iter().chain([&stranger])).await;
}

/// A config change applies while running: a smaller `max_packet_size`
/// lowers the datagram limit, so a datagram that fitted before is now
/// refused as oversized.
#[tokio::test(start_paused = true)]
async fn a_config_change_applies_while_running() {
    let (a, b) = pair().await;
    wait_all(&[&a, &b], "join", |s| s.members.len() == 1).await;
    let mut smaller = Config::new_lan(4);
    smaller.max_packet_size = 512;
    a.set_config(smaller).await.unwrap();
    let attacker = UdpSocket::bind(any_port()).await.unwrap();
    attacker
        .send_to(&vec![0u8; 512 + HEADER_LEN + 100], a.local_addr())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let m = a.metrics().await.unwrap();
    assert_eq!(m.protocol.dropped.oversized, 1, "{:?}", m.protocol.dropped);
    assert_eq!(a.members(), vec![b.identity()]);
    shutdown_all([&a, &b]).await;
}
