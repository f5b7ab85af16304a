//! Bootstrapping from a seed list with DNS names: `localhost:PORT` seeds,
//! a seed that is not up yet, and looking the names up again.
//!
//! `cargo run -p foca-examples --example bootstrap`
//!
//! Seeds are given to the builder as addresses or `host:port` names
//! (`foca_core::Seed`). The driver resolves names when the member starts,
//! again every `RESOLVE_INTERVAL` (10 s) while the member is alone, and
//! on every `Handle::rejoin`; meanwhile a member with no live peer keeps
//! announcing to the addresses it has, with backoff
//! (`Config::rejoin_backoff_min` to `rejoin_backoff_max`). So the order in
//! which members start does not matter.
//!
//! The story, on 127.0.0.1:
//! 1. A starts with the seed `localhost:P`, where nothing runs yet: the
//!    name resolves, the announce goes unanswered, A is alone and retries.
//! 2. S starts on port P, with no seeds. A's next retry reaches it: A and
//!    S see each other.
//! 3. B starts with the seeds `localhost:P` and `127.0.0.1:Q` (Q a port
//!    nobody uses: a dead seed costs nothing but an unanswered announce)
//!    and joins at once.
//! 4. B leaves, then calls `rejoin()`: the names are looked up anew and B
//!    is back.
//!
//! It exits 0 when each step happened, 1 if one takes more than 10 s.
//!
//! This file is in the public domain (CC0-1.0).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use foca_codec::{Envelope, PostcardCodec};
use foca_core::{AgentError, Config, ConnectionState, GenerationalId, Seed, Snapshot};
use foca_tokio::{Builder, Handle};
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

type Id = GenerationalId<SocketAddr>;

const LIMIT: Duration = Duration::from_secs(10);

async fn start(addr: &str, seeds: Vec<Seed>) -> Result<Handle<Id>, String> {
    let socket = UdpSocket::bind(addr).await.map_err(|e| e.to_string())?;
    let addr = socket.local_addr().map_err(|e| e.to_string())?;
    let envelope = Envelope::insecure_plaintext(b"bootstrap");
    let mut config = Config::new_lan(3);
    config.probe_period = Duration::from_millis(300);
    config.probe_rtt = Duration::from_millis(100);
    config.rejoin_backoff_min = Duration::from_millis(250);
    config.rejoin_backoff_max = Duration::from_secs(2);
    config.max_packet_size = 1400 - envelope.overhead();
    Builder::new(
        GenerationalId::new(addr, 1),
        config,
        PostcardCodec::new(),
        envelope,
    )
    .seeds(seeds)
    .spawn(socket)
    .map_err(|e| e.to_string())
}

/// A port nobody listens on (the OS picked it free, and it is freed again).
fn free_port() -> Result<u16, String> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(s.local_addr().map_err(|e| e.to_string())?.port())
}

async fn within<X>(
    what: &str,
    f: impl Future<Output = Result<X, AgentError>>,
) -> Result<X, String> {
    let t = Instant::now();
    let x = timeout(LIMIT, f)
        .await
        .map_err(|_| format!("{what}: not within {LIMIT:?}"))?
        .map_err(|e| format!("{what}: {e}"))?;
    println!("  {what} ({:.2} s)", t.elapsed().as_secs_f64());
    Ok(x)
}

fn sees(addr: SocketAddr) -> impl Fn(&Snapshot<Id>) -> bool {
    move |s| s.members.iter().any(|m| *m.id().address() == addr)
}

async fn story() -> Result<(), String> {
    let p = free_port()?;
    let q = free_port()?;
    let seed_name = format!("localhost:{p}");

    println!("1. A starts with seed {seed_name}; nothing runs there yet");
    let a = start("127.0.0.1:0", vec![Seed::from(seed_name.as_str())]).await?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    if a.snapshot().state != ConnectionState::Disconnected || !a.members().is_empty() {
        return Err("A should be alone".into());
    }
    let metrics = a.metrics().await.map_err(|e| e.to_string())?;
    println!(
        "  A is alone, retrying ({} datagrams sent, none answered)",
        metrics.datagrams_sent
    );

    println!("2. S starts on 127.0.0.1:{p}, with no seeds");
    let s = start(&format!("127.0.0.1:{p}"), Vec::new()).await?;
    within(
        "A joined through the name",
        a.wait_for(sees(s.local_addr())),
    )
    .await?;
    within("S sees A", s.wait_for(sees(a.local_addr()))).await?;

    println!("3. B starts with seeds {seed_name} and 127.0.0.1:{q} (dead)");
    let seeds = vec![
        Seed::from(seed_name.as_str()),
        Seed::from(format!("127.0.0.1:{q}")),
    ];
    let b = start("127.0.0.1:0", seeds).await?;
    within("B sees S and A", b.wait_for(|s| s.members.len() == 2)).await?;

    println!("4. B leaves, then rejoins (the names looked up again)");
    b.leave(Duration::from_millis(300))
        .await
        .map_err(|e| e.to_string())?;
    within("S sees B gone", s.wait_for(|x| !sees(b.local_addr())(x))).await?;
    b.rejoin().await.map_err(|e| e.to_string())?;
    within("S sees B again", s.wait_for(sees(b.local_addr()))).await?;
    within("B sees S and A again", b.wait_for(|s| s.members.len() == 2)).await?;

    for agent in [a, b, s] {
        agent.shutdown().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match story().await {
        Ok(()) => {
            println!("bootstrap: OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bootstrap: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
