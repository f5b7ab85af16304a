//! Persistence across restarts: a member saves its member table to a file
//! as it changes, and on start restores it, so it rejoins without seeds.
//!
//! `cargo run -p foca-examples --example persistence`
//!
//! Three tokio agents on 127.0.0.1; the third, C, keeps its view in a file
//! (one member a line: address, generation, incarnation, state), replaced
//! atomically whenever a new snapshot is published. C then stops without
//! a goodbye (a crash, a redeploy) and starts again on the same address
//! under the next generation, built with no seeds at all: it reads the
//! file and hands the members to `Handle::restore` (the core's
//! `Command::Restore`: the table goes in as it is, nothing is gossiped
//! about it). C probes those members; its probes carry its new identity,
//! and the others take it as C's restart. The example exits 0 once C sees
//! both others again and both see C's new generation, 1 if that takes more
//! than 10 s.
//!
//! A saved table grows stale: members that left meanwhile are probed,
//! found dead and dropped as usual; if every saved member is gone, the
//! member stays alone, so keep seeds as a fallback in real deployments.
//!
//! This file is in the public domain (CC0-1.0).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use foca_codec::{Envelope, PostcardCodec};
use foca_core::{AgentError, Config, GenerationalId, Member, Snapshot, State};
use foca_tokio::{Builder, Handle};
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

type Id = GenerationalId<SocketAddr>;

const LIMIT: Duration = Duration::from_secs(10);

/// Writes the snapshot's members through a temporary file and a rename:
/// a crash mid-write leaves the previous table, never half of one.
fn save(path: &Path, snapshot: &Snapshot<Id>) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    for m in &snapshot.members {
        let state = match m.state() {
            State::Alive => "alive",
            State::Suspect => "suspect",
            State::Down => "down",
            State::Left => "left",
        };
        let id = m.id();
        writeln!(
            f,
            "{} {} {} {state}",
            id.address(),
            id.generation(),
            m.incarnation()
        )?;
    }
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Reads a saved table. Lines that do not parse are skipped: a table is a
/// hint, the protocol corrects it.
fn load(path: &Path) -> std::io::Result<Vec<Member<Id>>> {
    let text = std::fs::read_to_string(path)?;
    let parse = |line: &str| -> Option<Member<Id>> {
        let mut words = line.split_whitespace();
        let addr: SocketAddr = words.next()?.parse().ok()?;
        let generation = words.next()?.parse().ok()?;
        let incarnation = words.next()?.parse().ok()?;
        let state = match words.next()? {
            "alive" => State::Alive,
            "suspect" => State::Suspect,
            "down" => State::Down,
            "left" => State::Left,
            _ => return None,
        };
        Some(Member::new(
            GenerationalId::new(addr, generation),
            incarnation,
            state,
        ))
    };
    Ok(text.lines().filter_map(parse).collect())
}

/// Saves the table whenever a new snapshot is published, until the agent
/// stops.
async fn keep_saved(agent: Handle<Id>, path: PathBuf) {
    loop {
        let snapshot = agent.snapshot();
        if let Err(e) = save(&path, &snapshot) {
            eprintln!("could not save {}: {e}", path.display());
        }
        if agent
            .wait_for(|s| !std::ptr::eq(s, &*snapshot))
            .await
            .is_err()
        {
            return;
        }
    }
}

async fn start(
    socket: UdpSocket,
    generation: u32,
    seed: Option<SocketAddr>,
) -> Result<Handle<Id>, String> {
    let addr = socket.local_addr().map_err(|e| e.to_string())?;
    let envelope = Envelope::insecure_plaintext(b"persistence");
    let mut config = Config::new_lan(3);
    config.probe_period = Duration::from_millis(300);
    config.probe_rtt = Duration::from_millis(100);
    config.max_packet_size = 1400 - envelope.overhead();
    Builder::new(
        GenerationalId::new(addr, generation),
        config,
        PostcardCodec::new(),
        envelope,
    )
    .seeds(seed)
    .spawn(socket)
    .map_err(|e| e.to_string())
}

async fn bind() -> Result<UdpSocket, String> {
    UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())
}

async fn within<X>(
    what: &str,
    f: impl Future<Output = Result<X, AgentError>>,
) -> Result<X, String> {
    timeout(LIMIT, f)
        .await
        .map_err(|_| format!("{what}: not within {LIMIT:?}"))?
        .map_err(|e| format!("{what}: {e}"))
}

async fn story(path: PathBuf) -> Result<(), String> {
    let a = start(bind().await?, 1, None).await?;
    let b = start(bind().await?, 1, Some(a.local_addr())).await?;
    let c_socket = bind().await?;
    let c_addr = c_socket.local_addr().map_err(|e| e.to_string())?;
    let c = start(c_socket, 1, Some(a.local_addr())).await?;
    println!(
        "A {}, B {}, C {c_addr} (C saves its table to {})",
        a.local_addr(),
        b.local_addr(),
        path.display()
    );
    let saver = tokio::spawn(keep_saved(c.clone(), path.clone()));
    within("C sees A and B", c.wait_for(|s| s.members.len() == 2)).await?;
    // The saver writes each snapshot as it is published.
    let limit = Instant::now() + LIMIT;
    while load(&path).map_or(0, |t| t.len()) < 2 {
        if Instant::now() > limit {
            return Err("the table was not saved".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "saved table:\n{}",
        std::fs::read_to_string(&path).map_err(|e| e.to_string())?
    );

    c.shutdown().await.map_err(|e| e.to_string())?;
    saver.await.map_err(|e| e.to_string())?;
    println!("C stopped without leaving");

    // The restart: same address, next generation, no seeds.
    let restarted = Instant::now();
    let socket = UdpSocket::bind(c_addr).await.map_err(|e| e.to_string())?;
    let c = start(socket, 2, None).await?;
    match c.rejoin().await {
        Err(AgentError::NoSeeds) => println!("C restarted with no seeds (rejoin: NoSeeds)"),
        other => return Err(format!("C should have no seeds, rejoin gave {other:?}")),
    }
    let table = load(&path).map_err(|e| e.to_string())?;
    println!("C restores {} members from the file", table.len());
    c.restore(table).await.map_err(|e| e.to_string())?;

    let is_new_c = |s: &Snapshot<Id>| {
        s.members
            .iter()
            .any(|m| *m.id() == GenerationalId::new(c_addr, 2))
    };
    within("C sees A and B again", c.wait_for(|s| s.members.len() == 2)).await?;
    within("A sees C's new generation", a.wait_for(is_new_c)).await?;
    within("B sees C's new generation", b.wait_for(is_new_c)).await?;
    println!(
        "{:.2} s after the restart: C sees A and B, and both see C at generation 2",
        restarted.elapsed().as_secs_f64()
    );
    for agent in [a, b, c] {
        agent.shutdown().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let path = std::env::temp_dir().join(format!("foca-persistence-{}.txt", std::process::id()));
    let result = story(path.clone()).await;
    let _ = std::fs::remove_file(&path);
    match result {
        Ok(()) => {
            println!("persistence: OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("persistence: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
