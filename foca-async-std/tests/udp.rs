//! Agents over real UDP on loopback, in real time, each scenario run twice:
//! under async-std (its `block_on` and `task::spawn`) and under smol (its
//! `block_on` and global executor). Every wait is bounded by a multiple of
//! the config's own timings, generous for a slow shared machine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_io::Timer;
use async_net::UdpSocket;
use foca_async_std::{AgentTask, Builder, Event, Handle, Snapshot, Subscription};
use foca_codec::PostcardCodec;
use foca_codec::envelope::Envelope;
use foca_core::testing::NewsOnce;
use foca_core::{Config, ConnectionState, GenerationalId, Notification};
use futures_lite::future;

type Id = GenerationalId<SocketAddr>;

/// How an agent's task is spawned: the executor under test.
type Spawner = fn(AgentTask);

fn on_async_std(task: AgentTask) {
    drop(async_std::task::spawn(task));
}

fn on_smol(task: AgentTask) {
    smol::spawn(task).detach();
}

/// The cluster label of the test agents (plaintext: loopback only).
const LABEL: &[u8] = b"async-udp-tests";

/// A fast config: 200 ms probes, so that a crash is detected in seconds.
fn config(n: usize) -> Config {
    let mut c = Config::new_lan(n);
    c.probe_period = Duration::from_millis(200);
    c.probe_rtt = Duration::from_millis(100);
    c
}

/// The bound on a wait for something the protocol does within `periods`
/// probe periods plus a suspicion timeout: four times that, and at least
/// ten seconds (a slow, shared machine stalls).
fn bound(n: usize, periods: u32) -> Duration {
    let c = config(n);
    let expected = c.probe_period * periods + c.suspicion_timeout(n);
    (expected * 4).max(Duration::from_secs(10))
}

/// `fut`, or `None` once `limit` has passed.
async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
    let timeout = async {
        Timer::after(limit).await;
        None
    };
    future::or(async { Some(fut.await) }, timeout).await
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A builder for an agent on a free loopback port, and its socket.
async fn builder(n: usize, index: u64) -> (UdpSocket, Builder<Id, PostcardCodec<Id>>) {
    sealed_with(n, index, Envelope::insecure_plaintext(LABEL)).await
}

/// [`builder`], with this envelope.
async fn sealed_with(
    n: usize,
    index: u64,
    envelope: Envelope,
) -> (UdpSocket, Builder<Id, PostcardCodec<Id>>) {
    let socket = UdpSocket::bind(any_port()).await.unwrap();
    let id = GenerationalId::new(socket.local_addr().unwrap(), 1);
    let b = Builder::new(id, config(n), PostcardCodec::new(), envelope).rng_seed(index);
    (socket, b)
}

/// `n` agents, all seeded with the first.
async fn cluster(n: usize, spawn: Spawner) -> Vec<Handle<Id>> {
    let mut agents: Vec<Handle<Id>> = Vec::new();
    for i in 0..n {
        let (socket, b) = builder(n, i as u64).await;
        let seed = agents.first().map(Handle::local_addr);
        agents.push(b.seeds(seed).spawn(socket, spawn).unwrap());
    }
    agents
}

/// Waits until `check` holds for every agent, all within `limit` in total.
async fn wait_all(
    agents: &[&Handle<Id>],
    limit: Duration,
    what: &str,
    check: impl Fn(&Snapshot<Id>) -> bool,
) {
    let deadline = Instant::now() + limit;
    for a in agents {
        let left = deadline.saturating_duration_since(Instant::now());
        if !matches!(within(left, a.wait_for(&check)).await, Some(Ok(_))) {
            let (addr, seen) = (a.local_addr(), a.snapshot());
            panic!("{what}: agent {addr} not there after {limit:?}: {seen:?}");
        }
    }
}

fn ids(s: &Snapshot<Id>) -> Vec<Id> {
    s.members.iter().map(|m| *m.id()).collect()
}

/// Every event waiting in `sub`, without waiting.
fn drain(sub: &mut Subscription<Id>) -> Vec<Event<Id>> {
    std::iter::from_fn(|| sub.try_recv().map(Result::unwrap)).collect()
}

async fn shutdown_all<'a>(agents: impl IntoIterator<Item = &'a Handle<Id>>) {
    for h in agents {
        within(Duration::from_secs(10), h.shutdown())
            .await
            .expect("shutdown took over 10 s")
            .unwrap();
    }
}

/// Ten agents join through one seed and converge; a crash (a shutdown,
/// without a word) is detected by all; a graceful leave is reported as
/// left, not failed.
async fn join_crash_and_leave(spawn: Spawner) {
    const N: usize = 10;
    let started = Instant::now();
    let agents = cluster(N, spawn).await;
    let all: Vec<&Handle<Id>> = agents.iter().collect();
    wait_all(&all, bound(N, 20), "join", |s| s.members.len() == N - 1).await;
    for a in &agents {
        assert_eq!(a.snapshot().state, ConnectionState::Connected);
    }
    let joined = started.elapsed();
    let mut subs: Vec<_> = agents.iter().map(Handle::subscribe).collect();

    let crashed = agents[3].identity();
    agents[3].shutdown().await.unwrap();
    assert!(agents[3].is_stopped());
    let others: Vec<&Handle<Id>> = all.iter().copied().filter(|a| !a.is_stopped()).collect();
    assert_eq!(others.len(), N - 1);
    let t = Instant::now();
    wait_all(&others, bound(N, 2 * N as u32), "crash", |s| {
        !ids(s).contains(&crashed)
    })
    .await;
    let detected = t.elapsed();
    for (i, sub) in subs.iter_mut().enumerate().filter(|(i, _)| *i != 3) {
        let events = drain(sub);
        let down = Event::Membership(Notification::MemberDown(crashed));
        assert!(events.contains(&down), "agent {i} saw {events:?}");
    }

    let leaving = agents[6].identity();
    within(bound(N, 0), agents[6].leave(Duration::from_millis(500)))
        .await
        .expect("leave took too long")
        .unwrap();
    assert_eq!(agents[6].snapshot().state, ConnectionState::Left);
    agents[6].shutdown().await.unwrap();
    let rest: Vec<&Handle<Id>> = all.iter().copied().filter(|a| !a.is_stopped()).collect();
    assert_eq!(rest.len(), N - 2);
    wait_all(&rest, bound(N, 10), "leave", |s| !ids(s).contains(&leaving)).await;
    for (i, sub) in subs
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 6)
    {
        let events = drain(sub);
        let left = Event::Membership(Notification::MemberLeft(leaving));
        let down = Event::Membership(Notification::MemberDown(leaving));
        assert!(events.contains(&left), "agent {i} saw {events:?}");
        assert!(!events.contains(&down), "agent {i} saw a leave as a crash");
    }
    eprintln!("joined in {joined:?}, crash detected in {detected:?}");
    shutdown_all(&agents).await;
}

/// A custom broadcast reaches every other member, once.
async fn broadcast_reaches_all(spawn: Spawner) {
    const N: usize = 6;
    let mut agents: Vec<Handle<Id>> = Vec::new();
    for i in 0..N {
        let (socket, b) = builder(N, 100 + i as u64).await;
        let seed = agents.first().map(Handle::local_addr);
        let b = b.broadcast_handler(NewsOnce::default()).seeds(seed);
        agents.push(b.spawn(socket, spawn).unwrap());
    }
    let all: Vec<&Handle<Id>> = agents.iter().collect();
    wait_all(&all, bound(N, 20), "join", |s| s.members.len() == N - 1).await;
    let mut subs: Vec<_> = agents.iter().map(Handle::subscribe).collect();
    assert!(agents[2].add_broadcast(&b"hello"[..]).await.unwrap());
    assert!(!agents[2].add_broadcast(&b"hello"[..]).await.unwrap());
    for (i, sub) in subs.iter_mut().enumerate().filter(|(i, _)| *i != 2) {
        let got = within(bound(N, 10), async {
            loop {
                match sub.recv().await {
                    Some(Ok(Event::Broadcast { item, .. })) => return item,
                    Some(_) => {}
                    None => panic!("agent {i} stopped"),
                }
            }
        })
        .await;
        assert_eq!(got.as_deref(), Some(&b"hello"[..]), "agent {i}");
    }
    // Once: nobody hears it again, and the author never heard it.
    Timer::after(config(N).probe_period * 5).await;
    for (i, sub) in subs.iter_mut().enumerate() {
        let again = drain(sub)
            .into_iter()
            .filter(|e| matches!(e, Event::Broadcast { .. }))
            .count();
        assert_eq!(again, 0, "agent {i}");
    }
    shutdown_all(&agents).await;
}

/// Garbage, truncated envelopes and another cluster's datagrams are
/// dropped, counted, and change nothing.
async fn hostile_datagrams_are_dropped_and_counted(spawn: Spawner) {
    const N: usize = 3;
    let agents = cluster(N, spawn).await;
    let all: Vec<&Handle<Id>> = agents.iter().collect();
    wait_all(&all, bound(N, 20), "join", |s| s.members.len() == N - 1).await;
    let target = &agents[0];
    let before = target.metrics().await.unwrap();

    let attacker = UdpSocket::bind(any_port()).await.unwrap();
    let to = target.local_addr();
    let mut sent = 0u64;
    for i in 0..40u8 {
        let junk: Vec<u8> = (0..usize::from(i) * 9 + 1)
            .map(|j| (j as u8).wrapping_mul(37) ^ i)
            .collect();
        attacker.send_to(&junk, to).await.unwrap();
        sent += 1;
    }
    // Another cluster's well-formed datagrams, and one of ours cut short.
    let mut other = Envelope::insecure_plaintext(b"another-cluster");
    let mut sealed = Vec::new();
    other.seal(&[1, 2, 3, 4], &mut sealed).unwrap();
    for _ in 0..5 {
        attacker.send_to(&sealed, to).await.unwrap();
        sent += 1;
    }
    let mut ours = Envelope::insecure_plaintext(LABEL);
    ours.seal(&[9; 32], &mut sealed).unwrap();
    attacker
        .send_to(&sealed[..sealed.len() / 2], to)
        .await
        .unwrap();
    sent += 1;

    // Every one of them is read and refused.
    let counted = within(bound(N, 5), async {
        loop {
            let m = target.metrics().await.unwrap();
            if m.rejections.total() - before.rejections.total() >= sent {
                return m;
            }
            Timer::after(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the hostile datagrams were not all counted");
    assert!(counted.datagrams_received - before.datagrams_received >= sent);
    assert_eq!(counted.rejections.total() - before.rejections.total(), sent);
    assert_eq!(
        counted.rejections.other_cluster - before.rejections.other_cluster,
        5,
        "{:?}",
        counted.rejections
    );
    let dropped = counted.protocol.dropped.total() - before.protocol.dropped.total();
    assert_eq!(dropped, sent, "{:?}", counted.protocol.dropped);
    let mut members = target.members();
    members.sort();
    let mut expected = vec![agents[1].identity(), agents[2].identity()];
    expected.sort();
    assert_eq!(members, expected);
    assert!(!target.is_stopped());
    shutdown_all(&agents).await;
}

/// Stopping: calls fail with `Stopped`, subscriptions end, watchers wake,
/// a second shutdown is fine.
async fn stopping_ends_everything(spawn: Spawner) {
    let (socket, b) = builder(2, 7).await;
    let a = b.spawn(socket, spawn).unwrap();
    let mut sub = a.subscribe();
    let mut watch = a.watch();
    a.shutdown().await.unwrap();
    assert!(a.is_stopped());
    let ended = within(Duration::from_secs(10), async {
        while sub.recv().await.is_some() {}
        watch.changed().await
    })
    .await;
    assert!(
        matches!(ended, Some(Err(foca_async_std::AgentError::Stopped))),
        "{ended:?}"
    );
    assert!(a.subscribe().recv().await.is_none());
    assert!(matches!(
        a.metrics().await,
        Err(foca_async_std::AgentError::Stopped)
    ));
    assert!(a.wait_for(|_| false).await.is_err());
    a.shutdown().await.unwrap();

    // Dropping every handle stops the agent; so does dropping its task.
    let (socket, b) = builder(2, 8).await;
    let b = b.spawn(socket, spawn).unwrap();
    let mut sub = b.subscribe();
    drop(b);
    let ended = within(Duration::from_secs(10), async {
        while sub.recv().await.is_some() {}
    })
    .await;
    assert!(ended.is_some(), "the agent outlived its handles");
    let (socket, c) = builder(2, 9).await;
    let (c, task) = c.build(socket).unwrap();
    drop(task);
    assert!(c.is_stopped());
    assert!(c.wait_for(|_| false).await.is_err());
    assert!(c.shutdown().await.is_ok());
}

/// Keys rotate on a running cluster without a datagram refused; a member
/// without the key is kept out.
#[cfg(feature = "encryption")]
async fn keys_rotate_and_strangers_stay_out(spawn: Spawner) {
    use foca_codec::{Cipher, Key, Keyring};
    const N: usize = 3;
    let ring = || {
        Keyring::new(
            1,
            Key::new(Cipher::ChaCha20Poly1305, [3; 32]),
            &mut rand::rng(),
        )
    };
    let mut agents: Vec<Handle<Id>> = Vec::new();
    for i in 0..N {
        let sealed = Envelope::encrypted(LABEL, ring());
        let (socket, b) = sealed_with(N, 200 + i as u64, sealed).await;
        let seed = agents.first().map(Handle::local_addr);
        agents.push(b.seeds(seed).spawn(socket, spawn).unwrap());
    }
    let all: Vec<&Handle<Id>> = agents.iter().collect();
    wait_all(&all, bound(N, 20), "join", |s| s.members.len() == N - 1).await;
    for a in &agents {
        a.add_key(2, Key::new(Cipher::XChaCha20Poly1305, [5; 32]))
            .await
            .unwrap();
    }
    for a in &agents {
        a.use_key(2).await.unwrap();
    }
    // A few probe periods on key 2, then key 1 goes.
    Timer::after(config(N).probe_period * 5).await;
    for a in &agents {
        a.remove_key(1).await.unwrap();
    }
    let err = agents[0].remove_key(2).await.unwrap_err();
    assert!(err.to_string().contains('2'), "{err}");

    let (socket, b) = sealed_with(N, 299, Envelope::insecure_plaintext(LABEL)).await;
    let stranger = b
        .seeds([agents[0].local_addr()])
        .spawn(socket, spawn)
        .unwrap();
    Timer::after(config(N).probe_period * 5).await;
    assert!(stranger.members().is_empty());
    for (i, a) in agents.iter().enumerate() {
        let r = a.metrics().await.unwrap().rejections;
        // Only the stranger's datagrams were refused, and the seed it
        // announced to refused them.
        assert_eq!(r.total(), r.plaintext_refused, "agent {i}: {r:?}");
        assert!(
            i != 0 || r.plaintext_refused > 0,
            "the stranger got through"
        );
        assert_eq!(a.members().len(), N - 1);
    }
    shutdown_all(agents.iter().chain([&stranger])).await;
}

/// The scenarios, each under both executors.
macro_rules! on_both {
    ($($scenario:ident),* $(,)?) => {
        mod async_std_runtime {
            $(#[test]
            fn $scenario() {
                async_std::task::block_on(super::$scenario(super::on_async_std));
            })*
        }
        mod smol_runtime {
            $(#[test]
            fn $scenario() {
                smol::block_on(super::$scenario(super::on_smol));
            })*
        }
    };
}

on_both!(
    join_crash_and_leave,
    broadcast_reaches_all,
    hostile_datagrams_are_dropped_and_counted,
    stopping_ends_everything,
);

#[cfg(feature = "encryption")]
mod encrypted {
    #[test]
    fn keys_rotate_and_strangers_stay_out_on_async_std() {
        async_std::task::block_on(super::keys_rotate_and_strangers_stay_out(
            super::on_async_std,
        ));
    }

    #[test]
    fn keys_rotate_and_strangers_stay_out_on_smol() {
        smol::block_on(super::keys_rotate_and_strangers_stay_out(super::on_smol));
    }
}
