//! Key rotation on an encrypted cluster without losing a member: add the
//! new key everywhere, switch the sealing key, retire the old one.
//!
//! `cargo run -p foca-examples --example key_rotation`
//!
//! Four tokio agents on 127.0.0.1 seal every datagram with key 1
//! (XChaCha20-Poly1305). The rotation takes three rounds over the
//! members, each finished everywhere before the next starts:
//!
//! 1. `add_key(2, new)`: every member opens datagrams sealed with key 2;
//!    all still seal with key 1.
//! 2. `use_key(2)`, one member after another: they seal with key 2, which
//!    every member already opens.
//! 3. `remove_key(1)`: datagrams sealed with key 1 are refused from now.
//!
//! Throughout, a watcher samples every member's view every 20 ms and
//! every membership event is checked: the example fails (exit 1) if any
//! member ever sees fewer than the three others, or reports one down or
//! left. At the end a member started with the old key alone must not get
//! in: its datagrams are refused (`unknown_key`), and it sees nobody.
//!
//! This file is in the public domain (CC0-1.0).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use foca_codec::{Cipher, Envelope, Key, Keyring, PostcardCodec};
use foca_core::{Config, GenerationalId, Notification};
use foca_tokio::{Builder, Event, Handle};
use tokio::net::UdpSocket;
use tokio::time::{Instant, sleep, timeout};

type Id = GenerationalId<SocketAddr>;

const MEMBERS: usize = 4;
/// Time between rounds: a few probe periods, so every member has talked
/// to every other under the new setting.
const SETTLE: Duration = Duration::from_millis(1000);

async fn start(n: usize, key: Key, seed: Option<SocketAddr>) -> Result<Handle<Id>, String> {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = socket.local_addr().map_err(|e| e.to_string())?;
    let envelope = Envelope::encrypted(b"rotation", Keyring::new(1, key, &mut rand::rng()));
    let mut config = Config::new_lan(MEMBERS);
    config.probe_period = Duration::from_millis(200);
    config.probe_rtt = Duration::from_millis(80);
    config.max_packet_size = 1400 - envelope.overhead();
    Builder::new(
        GenerationalId::new(addr, 1),
        config,
        PostcardCodec::new(),
        envelope,
    )
    .seeds(seed)
    .rng_seed(n as u64)
    .spawn(socket)
    .map_err(|e| e.to_string())
}

async fn story() -> Result<(), String> {
    let mut rng = rand::rng();
    let old = Key::generate(Cipher::XChaCha20Poly1305, &mut rng);
    let new = Key::generate(Cipher::XChaCha20Poly1305, &mut rng);
    let mut agents: Vec<Handle<Id>> = Vec::new();
    for n in 0..MEMBERS {
        let seed = agents.first().map(Handle::local_addr);
        agents.push(start(n, old.clone(), seed).await?);
    }
    for a in &agents {
        timeout(
            Duration::from_secs(10),
            a.wait_for(|s| s.members.len() == MEMBERS - 1),
        )
        .await
        .map_err(|_| "the cluster did not form within 10 s")?
        .map_err(|e| e.to_string())?;
    }
    println!("{MEMBERS} members, every datagram sealed with key 1");

    // From now on nobody may lose anybody.
    let lost = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(AtomicUsize::new(0));
    let mut watchers = Vec::new();
    for (n, a) in agents.iter().enumerate() {
        let mut events = a.subscribe();
        let lost_ = lost.clone();
        watchers.push(tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if let Ok(Event::Membership(
                    what @ (Notification::MemberDown(_) | Notification::MemberLeft(_)),
                )) = e
                {
                    eprintln!("member {n} reports {what:?}");
                    lost_.store(true, Ordering::Relaxed);
                }
            }
        }));
    }
    let sampled: Vec<Handle<Id>> = agents.clone();
    let (lost_, samples_) = (lost.clone(), samples.clone());
    let sampler = tokio::spawn(async move {
        loop {
            for (n, a) in sampled.iter().enumerate() {
                if a.members().len() != MEMBERS - 1 {
                    eprintln!("member {n} sees {} members", a.members().len());
                    lost_.store(true, Ordering::Relaxed);
                }
            }
            samples_.fetch_add(1, Ordering::Relaxed);
            sleep(Duration::from_millis(20)).await;
        }
    });

    let started = Instant::now();
    let check = |round: &str| -> Result<(), String> {
        if lost.load(Ordering::Relaxed) {
            return Err(format!("a member was lost during: {round}"));
        }
        println!(
            "{:>5.2} s  {round}: every member still sees the {} others",
            started.elapsed().as_secs_f64(),
            MEMBERS - 1
        );
        Ok(())
    };

    for a in &agents {
        a.add_key(2, new.clone()).await.map_err(|e| e.to_string())?;
    }
    sleep(SETTLE).await;
    check("1. key 2 added everywhere (sealing with key 1)")?;

    for a in &agents {
        a.use_key(2).await.map_err(|e| e.to_string())?;
        sleep(SETTLE / 4).await;
    }
    sleep(SETTLE).await;
    check("2. every member seals with key 2")?;

    for a in &agents {
        a.remove_key(1).await.map_err(|e| e.to_string())?;
    }
    sleep(SETTLE).await;
    check("3. key 1 retired everywhere")?;
    sampler.abort();

    let mut refused = 0;
    for a in &agents {
        let m = a.metrics().await.map_err(|e| e.to_string())?;
        refused += m.rejections.total();
    }
    println!(
        "{} samples of every view, no member missing; {refused} datagrams refused by the envelopes",
        samples.load(Ordering::Relaxed)
    );
    if refused != 0 {
        return Err("datagrams were refused during the rotation".into());
    }

    // A member that still holds only the retired key cannot get in.
    let stale = start(MEMBERS, old, Some(agents[0].local_addr())).await?;
    sleep(SETTLE).await;
    let unknown_key = agents[0]
        .metrics()
        .await
        .map_err(|e| e.to_string())?
        .rejections
        .unknown_key;
    let listed = agents.iter().any(|a| {
        a.members()
            .iter()
            .any(|m| m.address() == &stale.local_addr())
    });
    println!(
        "a member with only key 1: sees {} members, listed by none: {}, its datagrams refused by the seed as unknown_key: {unknown_key}",
        stale.members().len(),
        !listed
    );
    if listed || !stale.members().is_empty() || unknown_key == 0 {
        return Err("the retired key still lets a member in".into());
    }
    check("the end")?;
    for a in agents.iter().chain([&stale]) {
        a.shutdown().await.map_err(|e| e.to_string())?;
    }
    for w in watchers {
        let _ = w.await;
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match story().await {
        Ok(()) => {
            println!("key_rotation: OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("key_rotation: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
