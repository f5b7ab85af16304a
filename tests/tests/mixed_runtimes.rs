//! One cluster of tokio agents (foca-tokio) and async-std agents
//! (foca-async-std) over real UDP on loopback: they converge, and the
//! crash of one of each kind (a shutdown, without a word) is detected by
//! all the others. The two drivers' handles are the core's generic
//! `Handle`, so the checks below are written once for both. Real time;
//! every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use foca_codec::{Envelope, PostcardCodec};
use foca_core::agent::{Handle, Link};
use foca_core::{Config, ConnectionState, GenerationalId, Snapshot};

type Id = GenerationalId<SocketAddr>;

/// Agents of each kind.
const EACH: usize = 5;
const N: usize = 2 * EACH;

/// A fast config: 200 ms probes.
fn config() -> Config {
    let mut c = Config::new_lan(N);
    c.probe_period = Duration::from_millis(200);
    c.probe_rtt = Duration::from_millis(100);
    c
}

/// Four times what the protocol needs for `periods` probe periods and a
/// suspicion timeout, and at least 10 s (a slow, shared machine stalls).
fn bound(periods: u32) -> Duration {
    let c = config();
    ((c.probe_period * periods + c.suspicion_timeout(N)) * 4).max(Duration::from_secs(10))
}

fn envelope() -> Envelope {
    Envelope::insecure_plaintext(b"mixed-runtimes")
}

/// Waits (at most `limit`) until `check` holds on `agent`, whatever its
/// driver.
async fn wait_until<L>(
    agent: &Handle<L>,
    limit: Duration,
    what: &str,
    check: impl Fn(&Snapshot<Id>) -> bool,
) where
    L: Link<Id = Id> + Sync,
{
    let done = tokio::time::timeout(limit, agent.wait_for(check)).await;
    assert!(
        matches!(done, Ok(Ok(_))),
        "{what}: {} did not get there within {limit:?}: {:?}",
        agent.local_addr(),
        agent.snapshot()
    );
}

fn ids(s: &Snapshot<Id>) -> Vec<Id> {
    s.members.iter().map(|m| *m.id()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_and_async_std_agents_converge_and_detect_crashes() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut tokio_agents = Vec::new();
    let mut async_agents = Vec::new();
    let mut seed = None;
    for i in 0..EACH {
        // A tokio agent, then an async-std one, each seeded with the first.
        let socket = tokio::net::UdpSocket::bind(any).await.unwrap();
        let id = GenerationalId::new(socket.local_addr().unwrap(), 1);
        let t = foca_tokio::Builder::new(id, config(), PostcardCodec::new(), envelope())
            .seeds(seed)
            .rng_seed(i as u64)
            .spawn(socket)
            .unwrap();
        seed.get_or_insert(t.local_addr());
        tokio_agents.push(t);

        let socket = async_net::UdpSocket::bind(any).await.unwrap();
        let id = GenerationalId::new(socket.local_addr().unwrap(), 1);
        let a = foca_async_std::Builder::new(id, config(), PostcardCodec::new(), envelope())
            .seeds(seed)
            .rng_seed(100 + i as u64)
            .spawn(socket, |task| drop(async_std::task::spawn(task)))
            .unwrap();
        async_agents.push(a);
    }

    let started = Instant::now();
    for t in &tokio_agents {
        wait_until(t, bound(20), "join", |s| s.members.len() == N - 1).await;
    }
    for a in &async_agents {
        wait_until(a, bound(20), "join", |s| s.members.len() == N - 1).await;
        assert_eq!(a.snapshot().state, ConnectionState::Connected);
    }
    eprintln!(
        "{N} agents on two runtimes joined in {:?}",
        started.elapsed()
    );

    // An async-std agent crashes, then a tokio one.
    let crashed = [async_agents[1].identity(), tokio_agents[2].identity()];
    async_agents[1].shutdown().await.unwrap();
    tokio_agents[2].shutdown().await.unwrap();
    assert!(async_agents[1].is_stopped() && tokio_agents[2].is_stopped());
    let started = Instant::now();
    let gone = |s: &Snapshot<Id>| crashed.iter().all(|c| !ids(s).contains(c));
    let limit = bound(2 * N as u32);
    for t in tokio_agents.iter().filter(|t| !t.is_stopped()) {
        wait_until(t, limit, "crash", gone).await;
        assert_eq!(t.members().len(), N - 3);
    }
    for a in async_agents.iter().filter(|a| !a.is_stopped()) {
        wait_until(a, limit, "crash", gone).await;
        assert_eq!(a.members().len(), N - 3);
    }
    eprintln!("both crashes detected by all in {:?}", started.elapsed());

    for t in &tokio_agents {
        t.shutdown().await.unwrap();
    }
    for a in &async_agents {
        a.shutdown().await.unwrap();
    }
}
