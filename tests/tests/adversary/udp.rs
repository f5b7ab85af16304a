//! The rogue against 5 foca-tokio agents over real UDP sockets on loopback,
//! on the wall clock (no paused time: the agents, the rogue and the victim
//! are ordinary sockets and tasks). Each test prints one line per attack:
//! - reflection: the bytes a victim socket got per byte the rogue sent
//!   (0: a sender claiming another address is dropped, `source_mismatch`);
//! - forged verdicts with the key: the longest a live member was missing
//!   from another's view (at most one suspicion timeout), and when a
//!   member killed meanwhile was known down by all;
//! - a wrong key: datagrams refused as unauthenticated, the rogue never
//!   listed.
//!
//! The bounds are generous for a slow shared machine: conditions are
//! polled, never waited for by fixed sleeps, and every test is bounded.

use std::net::SocketAddr;
use std::time::Duration;

use foca_codec::{Cipher, Envelope, Key, Keyring, PostcardCodec};
use foca_core::{
    Config, ConnectionState, GenerationalId, Header, Identity, Member, Message, State,
};
use foca_tokio::{AgentMetrics, Builder, Handle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::net::UdpSocket;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep, timeout};

use super::{Mode, envelope, forge};

type Id = GenerationalId<SocketAddr>;

/// Agents in each cluster.
const N: usize = 5;
/// Longest a test may run, cluster formation included.
const TEST_BOUND: Duration = Duration::from_secs(28);
/// Longest a condition that should hold soon is polled for.
const POLL_BOUND: Duration = Duration::from_secs(10);
/// Between two looks at the agents.
const POLL: Duration = Duration::from_millis(50);
/// Added to the protocol's detection bound for a slow shared machine.
const SLACK: Duration = Duration::from_secs(2);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A fast LAN config: 250 ms periods, 100 ms round trips.
fn config() -> Config {
    Config {
        probe_period: Duration::from_millis(250),
        probe_rtt: Duration::from_millis(100),
        ..Config::new_lan(N)
    }
}

/// A sealed envelope with the cluster's label but a key of its own.
fn wrong_key() -> Envelope {
    let key = Key::new(Cipher::XChaCha20Poly1305, [0x5a; 32]);
    Envelope::encrypted(
        super::LABEL,
        Keyring::new(1, key, &mut StdRng::seed_from_u64(98)),
    )
}

/// Runs `test` within [`TEST_BOUND`].
async fn bounded(test: impl Future<Output = ()>) {
    let start = Instant::now();
    let done = timeout(TEST_BOUND, test).await;
    assert!(
        done.is_ok(),
        "the test did not finish within {TEST_BOUND:?}"
    );
    eprintln!("(test took {:?})", start.elapsed());
}

/// `N` agents on loopback, every one seeded with the first, all joined.
async fn cluster(mode: Mode) -> Vec<Handle<Id>> {
    let mut agents = Vec::new();
    let mut seed = None;
    for i in 0..N {
        let socket = UdpSocket::bind(loopback()).await.unwrap();
        let addr = socket.local_addr().unwrap();
        let agent = Builder::new(
            GenerationalId::new(addr, 1),
            config(),
            PostcardCodec::new(),
            envelope(mode, i as u64),
        )
        .seeds(seed)
        .spawn(socket)
        .unwrap();
        seed.get_or_insert(addr);
        agents.push(agent);
    }
    for a in &agents {
        let joined = timeout(POLL_BOUND, a.wait_for(|s| s.members.len() == N - 1)).await;
        assert!(
            matches!(joined, Ok(Ok(_))),
            "{mode:?}: agent {} did not see all {} others: {:?}",
            a.local_addr(),
            N - 1,
            a.snapshot()
        );
    }
    agents
}

async fn all_metrics(agents: &[Handle<Id>]) -> Vec<AgentMetrics> {
    let mut out = Vec::new();
    for a in agents {
        out.push(a.metrics().await.unwrap());
    }
    out
}

/// Polls the agents' counters until `reached` holds for each (given its
/// metrics and its index), within [`POLL_BOUND`]; returns the last ones.
async fn metrics_until(
    agents: &[Handle<Id>],
    what: &str,
    reached: impl Fn(usize, &AgentMetrics) -> bool,
) -> Vec<AgentMetrics> {
    let deadline = Instant::now() + POLL_BOUND;
    loop {
        let m = all_metrics(agents).await;
        if m.iter().enumerate().all(|(i, m)| reached(i, m)) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {POLL_BOUND:?}: {:#?}",
            m.iter().map(|m| m.protocol.dropped).collect::<Vec<_>>()
        );
        sleep(POLL).await;
    }
}

async fn shutdown_all(agents: &[Handle<Id>]) {
    for a in agents {
        a.shutdown().await.unwrap();
    }
}

/// The rogue: its own socket, any header and records it likes, sealed with
/// its own envelope. It claims a higher incarnation in every datagram, so
/// members that declared it down (it answers no probe) hear it again.
struct Rogue {
    socket: UdpSocket,
    id: Id,
    envelope: Envelope,
    codec: PostcardCodec<Id>,
    incarnation: u32,
    datagrams: u64,
    bytes: u64,
}

impl Rogue {
    async fn new(envelope: Envelope) -> Self {
        let socket = UdpSocket::bind(loopback()).await.unwrap();
        let id = GenerationalId::new(socket.local_addr().unwrap(), 1);
        Self {
            socket,
            id,
            envelope,
            codec: PostcardCodec::new(),
            incarnation: 0,
            datagrams: 0,
            bytes: 0,
        }
    }

    /// Sends `agent` a datagram claiming to be from `src` (from the rogue's
    /// own address, whatever `src` says).
    async fn send(
        &mut self,
        agent: &Handle<Id>,
        src: Id,
        message: Message<Id>,
        records: &[Member<Id>],
    ) {
        self.incarnation += 1;
        let header = Header {
            src,
            src_incarnation: self.incarnation,
            dst: agent.identity(),
            message,
        };
        let datagram = forge(&mut self.codec, &mut self.envelope, &header, records);
        let sent = self
            .socket
            .send_to(&datagram, agent.local_addr())
            .await
            .unwrap();
        assert_eq!(sent, datagram.len());
        self.datagrams += 1;
        self.bytes += sent as u64;
    }

    /// Bytes waiting on the rogue's own socket (what agents answered it).
    fn drain(&self) -> u64 {
        let mut buf = vec![0; 65_536];
        let mut got = 0;
        while let Ok((len, _)) = self.socket.try_recv_from(&mut buf) {
            got += len as u64;
        }
        got
    }
}

/// Bytes `socket` receives within `window`.
async fn received_within(socket: &UdpSocket, window: Duration) -> u64 {
    let deadline = Instant::now() + window;
    let mut buf = vec![0; 65_536];
    let mut got = 0;
    while let Ok(Ok((len, _))) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await
    {
        got += len as u64;
    }
    got
}

/// Attack 1: the rogue sends, from its own address, requests that claim to
/// be from a victim (a socket the test listens on): every member must drop
/// them (`source_mismatch`), and the victim must get nothing.
async fn reflection_refused(mode: Mode) {
    let agents = cluster(mode).await;
    let victim = UdpSocket::bind(loopback()).await.unwrap();
    let victim_id = GenerationalId::new(victim.local_addr().unwrap(), 1);
    let mut rogue = Rogue::new(envelope(mode, 99)).await;
    // Several probe periods after the last datagram.
    let window = 4 * config().probe_period;
    for (name, message) in [
        ("udp: announce as the victim", Message::Announce),
        ("udp: ping as the victim", Message::Ping(1)),
        ("udp: summary as the victim", Message::Sync { reply: false }),
    ] {
        const ROUNDS: u64 = 10;
        let before = all_metrics(&agents).await;
        let (datagrams, bytes) = (rogue.datagrams, rogue.bytes);
        for _ in 0..ROUNDS {
            for a in &agents {
                rogue.send(a, victim_id, message.clone(), &[]).await;
            }
            sleep(POLL).await;
        }
        let sent = rogue.bytes - bytes;
        assert_eq!(rogue.datagrams - datagrams, ROUNDS * N as u64);
        let mismatch = |i: usize, m: &AgentMetrics| {
            m.protocol.dropped.source_mismatch - before[i].protocol.dropped.source_mismatch
        };
        let after = metrics_until(&agents, name, |i, m| mismatch(i, m) >= ROUNDS).await;
        let got = received_within(&victim, window).await;
        let answered_rogue = rogue.drain();
        println!(
            "{name:<32} {mode:<9?} rogue sent {sent:>8} B, the victim got {got:>8} B: ratio {:.2}; \
             source_mismatch +{:?}; the rogue got {answered_rogue} B",
            got as f64 / sent as f64,
            (0..N).map(|i| mismatch(i, &after[i])).collect::<Vec<_>>(),
        );
        assert_eq!(got, 0, "{name}: the victim was sent {got} B");
        for (i, m) in after.iter().enumerate() {
            assert_eq!(
                mismatch(i, m),
                ROUNDS,
                "{name}: agent {i} dropped {} datagrams as source_mismatch, not the {ROUNDS} it got: {:?}",
                mismatch(i, m),
                m.protocol.dropped
            );
        }
        for a in &agents {
            assert!(!a.members().contains(&victim_id), "{name}: victim listed");
        }
    }
    shutdown_all(&agents).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_forged_sources_are_not_reflected_plain() {
    bounded(reflection_refused(Mode::Plain)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_forged_sources_are_not_reflected_sealed() {
    bounded(reflection_refused(Mode::KeyHolder)).await;
}

/// Attacks 2 and 3: a rogue holding the key, sending from its own address
/// as itself, forges verdicts (down, left) about a live member at the
/// incarnation the others list it at, and alive and suspect records at
/// `u32::MAX`, every 100 ms for 3 s, to every member (the target too).
/// Meanwhile another member is killed: the attack must not delay its
/// detection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_forged_verdicts_with_the_key_are_refuted() {
    bounded(async {
        const TARGET: usize = 1;
        const KILLED: usize = 3;
        const ATTACK: Duration = Duration::from_secs(3);
        const KILL_AFTER: Duration = Duration::from_millis(500);
        let mode = Mode::KeyHolder;
        let config = config();
        let suspicion_timeout = config.suspicion_timeout(N);
        let detection_bound = suspicion_timeout + 3 * config.probe_period + SLACK;
        let agents = cluster(mode).await;
        let target = agents[TARGET].identity();
        let killed = agents[KILLED].identity();
        let before = all_metrics(&agents).await;
        let mut rogue = Rogue::new(envelope(mode, 99)).await;

        let mut ticker = interval(POLL);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let start = Instant::now();
        // Per observer: since when it has not listed the target.
        let mut out_since: Vec<Option<Instant>> = vec![None; N];
        let mut longest_out = Duration::ZERO;
        let mut checks = 0u64;
        let mut killed_at = None;
        let mut detected = None;
        let mut defunct = false;
        let mut highest_forged = 0;
        let mut step = 0u64;
        loop {
            ticker.tick().await;
            let elapsed = start.elapsed();
            if killed_at.is_none() && elapsed >= KILL_AFTER {
                agents[KILLED].shutdown().await.unwrap();
                killed_at = Some(Instant::now());
            }
            let running = |i: usize| killed_at.is_none() || i != KILLED;
            if elapsed < ATTACK && step.is_multiple_of(2) {
                // The omniscient rogue reads the target's incarnation from
                // the others' views (the handle does not expose a member's
                // own): the highest any lists it at.
                let incarnation = (0..N)
                    .filter(|&i| i != TARGET && running(i))
                    .filter_map(|i| {
                        let s = agents[i].snapshot();
                        s.members
                            .iter()
                            .find(|m| m.id() == &target)
                            .map(Member::incarnation)
                    })
                    .max()
                    .unwrap_or(0);
                highest_forged = highest_forged.max(incarnation);
                let verdict = if step.is_multiple_of(4) {
                    State::Down
                } else {
                    State::Left
                };
                let verdict = [Member::new(target, incarnation, verdict)];
                let spent = [
                    Member::alive(target, u32::MAX),
                    Member::new(target, u32::MAX, State::Suspect),
                ];
                for i in (0..N).filter(|&i| running(i)) {
                    let me = rogue.id;
                    rogue.send(&agents[i], me, Message::Gossip, &verdict).await;
                    rogue.send(&agents[i], me, Message::Gossip, &spent).await;
                }
            }
            step += 1;
            let now = Instant::now();
            for o in (0..N).filter(|&o| o != TARGET && running(o)) {
                checks += 1;
                if agents[o].members().contains(&target) {
                    if let Some(since) = out_since[o].take() {
                        longest_out = longest_out.max(now - since);
                    }
                } else {
                    let since = *out_since[o].get_or_insert(now);
                    longest_out = longest_out.max(now - since);
                }
            }
            defunct |= agents[TARGET].snapshot().state == ConnectionState::Defunct;
            if let (Some(at), None) = (killed_at, detected)
                && (0..N)
                    .filter(|&i| i != KILLED)
                    .all(|i| !agents[i].members().contains(&killed))
            {
                detected = Some(now - at);
            }
            let waited_enough = match (killed_at, detected) {
                (_, Some(_)) => true,
                (Some(at), None) => now - at > detection_bound + SLACK,
                (None, None) => false,
            };
            if elapsed >= ATTACK && waited_enough {
                break;
            }
        }
        let living: Vec<Handle<Id>> = (0..N)
            .filter(|&i| i != KILLED)
            .map(|i| agents[i].clone())
            .collect();
        let after = all_metrics(&living).await;
        let forwarded: u64 = after.iter().map(|m| m.protocol.verdicts_forwarded).sum();
        let ignored: u64 = after.iter().map(|m| m.protocol.hearsay_ignored).sum();
        // The target's place among the living.
        let tm = &after[TARGET - usize::from(KILLED < TARGET)];
        let refuted = tm.protocol.self_declared_down - before[TARGET].protocol.self_declared_down;
        println!(
            "{:<32} {mode:<9?} rogue sent {:>8} B in {} datagrams: longest out {longest_out:?} \
             (bound {suspicion_timeout:?}, {checks} checks); crash known to all after \
             {detected:?} (bound {detection_bound:?}); target refuted {refuted} verdicts, \
             forged up to incarnation {highest_forged}, verdicts forwarded {forwarded}, \
             hearsay ignored {ignored}, defunct {defunct}",
            "udp: forged verdicts with the key", rogue.bytes, rogue.datagrams,
        );
        assert!(
            refuted > 0,
            "no forged verdict reached the target: the attack proved nothing"
        );
        assert!(
            !defunct && tm.protocol.unrefutable == 0,
            "the target was made defunct: {:?}",
            tm.protocol
        );
        assert!(
            longest_out <= suspicion_timeout,
            "the target was missing from a view for {longest_out:?}, above the suspicion \
             timeout {suspicion_timeout:?}"
        );
        let detected = detected.expect("the killed agent was known down by all");
        assert!(
            detected <= detection_bound,
            "the kill was known to all after {detected:?}, above {detection_bound:?}"
        );
        shutdown_all(&living).await;
    })
    .await;
}

/// Attack 4: a rogue sealing with a key the cluster does not have. Its
/// datagrams are refused as unauthenticated; it never becomes a member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_a_wrong_key_is_refused() {
    bounded(async {
        const ROUNDS: u64 = 10;
        let agents = cluster(Mode::KeyHolder).await;
        let mut rogue = Rogue::new(wrong_key()).await;
        let me = rogue.id;
        let before = all_metrics(&agents).await;
        let mut listed = 0;
        for _ in 0..ROUNDS {
            for a in &agents {
                rogue.send(a, me, Message::Announce, &[]).await;
                let alive = [Member::alive(me, 0)];
                rogue.send(a, me, Message::Gossip, &alive).await;
                rogue.send(a, me, Message::Ping(1), &[]).await;
            }
            sleep(POLL).await;
            listed += agents
                .iter()
                .filter(|a| a.members().iter().any(|m| m.addr() == me.addr()))
                .count();
        }
        let per_agent = 3 * ROUNDS;
        let unauthenticated = |i: usize, m: &AgentMetrics| {
            m.protocol.dropped.unauthenticated - before[i].protocol.dropped.unauthenticated
        };
        let after = metrics_until(&agents, "wrong key", |i, m| {
            unauthenticated(i, m) >= per_agent
        })
        .await;
        // A few more periods for anything that got through to show.
        let answered = received_within(&rogue.socket, 4 * config().probe_period).await;
        for a in &agents {
            listed += usize::from(a.members().iter().any(|m| m.addr() == me.addr()));
        }
        println!(
            "{:<32} {:<9} rogue sent {:>8} B in {} datagrams: unauthenticated +{:?}; \
             listed {listed} times; the rogue got {answered} B",
            "udp: a wrong key",
            "WrongKey",
            rogue.bytes,
            rogue.datagrams,
            (0..N)
                .map(|i| unauthenticated(i, &after[i]))
                .collect::<Vec<_>>(),
        );
        for (i, m) in after.iter().enumerate() {
            assert_eq!(
                unauthenticated(i, m),
                per_agent,
                "agent {i}: {:?}",
                m.rejections
            );
        }
        assert_eq!(listed, 0, "the rogue with the wrong key was listed");
        assert_eq!(answered, 0, "the rogue with the wrong key was answered");
        shutdown_all(&agents).await;
    })
    .await;
}
