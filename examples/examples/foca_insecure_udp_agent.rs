//! A cluster member over UDP, one per process: the command-line agent the
//! original foca crate documents, on the tokio driver.
//!
//! ```text
//! # terminal 1
//! cargo run -p foca-examples --example foca_insecure_udp_agent -- 127.0.0.1:8000
//! # terminal 2..n
//! cargo run -p foca-examples --example foca_insecure_udp_agent -- 127.0.0.1:8001 -a 127.0.0.1:8000 -f /tmp/members.txt
//! ```
//!
//! "Insecure" because by default datagrams are only checksummed: anyone who
//! can reach the port can take part. `--key` seals them with
//! XChaCha20-Poly1305 (every member needs the same key), `--cluster` keeps
//! separate clusters on one network apart.
//!
//! `--broadcasts` turns custom broadcasts on: each is a short line of text,
//! news once. On SIGUSR1 the agent disseminates a new one,
//! `<its address>#<n>` (n counting from 1 in each process), and prints
//! `broadcast sent <text>` on stdout; every broadcast it receives from a
//! peer is printed as `broadcast received <text> from <address>`. Stdout
//! carries nothing else, one line per event, flushed at once (the fault
//! tests in `tests/tests/faults.rs` read it).
//!
//! Logs go to stderr through `tracing-subscriber`; `RUST_LOG` picks the
//! level (default `info`). Ctrl-C or SIGTERM leaves the cluster gracefully.
//!
//! This file is in the public domain (CC0-1.0).

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use foca_codec::{Cipher, Envelope, Key, Keyring, PostcardCodec};
use foca_core::{BroadcastHandler, Config, GenerationalId, Invalidates};
use foca_tokio::{Builder, Event, Handle, Snapshot};
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

type Id = GenerationalId<SocketAddr>;

/// A foca cluster member over UDP.
#[derive(Parser, Debug)]
#[command(name = "foca_insecure_udp_agent", version, about)]
struct Args {
    /// Address to bind the UDP socket to.
    #[arg(value_name = "BIND_ADDR")]
    bind: SocketAddr,
    /// Member to announce to (a seed): an address or host:port. Repeat for
    /// more than one.
    #[arg(short = 'a', long = "announce", value_name = "ADDR")]
    announce: Vec<String>,
    /// File kept up to date with the active members (this one included),
    /// one address per line, sorted; replaced atomically.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    filename: Option<PathBuf>,
    /// Address the others should use to reach this member (default: the
    /// bind address), e.g. when binding 0.0.0.0.
    #[arg(short = 'i', long = "identity", value_name = "ADDR")]
    identity: Option<SocketAddr>,
    /// Cluster label: members with another label ignore these datagrams.
    #[arg(long, default_value = "foca")]
    cluster: String,
    /// Seal datagrams with this XChaCha20-Poly1305 key: 64 hex digits.
    #[arg(long, value_name = "HEX")]
    key: Option<String>,
    /// Expected cluster size (sizes the backlogs and timeouts).
    #[arg(long, default_value_t = 16)]
    cluster_size: usize,
    /// Accept and pass on custom broadcasts (text), print them on stdout,
    /// and send a new one on SIGUSR1.
    #[arg(long)]
    broadcasts: bool,
}

/// Most broadcasts one agent remembers (and so accepts): beyond that,
/// new ones are refused, so that no peer can grow the set without bound.
const MAX_BROADCASTS: usize = 100_000;

/// Custom broadcasts as text, each news once; refused when disabled.
struct TextBroadcasts {
    enabled: bool,
    seen: BTreeSet<Vec<u8>>,
}

/// One broadcast: its text is its key.
struct Text(Vec<u8>);

impl Invalidates for Text {
    type Key = Vec<u8>;
    fn key(&self) -> Vec<u8> {
        self.0.clone()
    }
    fn invalidates(&self, _other: &Self) -> bool {
        // Equal keys are the same item: the queued one stays.
        false
    }
}

/// Why a broadcast was refused.
#[derive(Debug)]
enum Refused {
    Disabled,
    NotText,
    Full,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::Disabled => "custom broadcasts are off (--broadcasts turns them on)",
            Refused::NotText => "a broadcast that is not UTF-8 text",
            Refused::Full => "too many broadcasts remembered",
        })
    }
}

impl BroadcastHandler<Id> for TextBroadcasts {
    type Broadcast = Text;
    type Error = Refused;

    fn receive_item(&mut self, item: &[u8], _sender: Option<&Id>) -> Result<Option<Text>, Refused> {
        if !self.enabled {
            return Err(Refused::Disabled);
        }
        std::str::from_utf8(item).map_err(|_| Refused::NotText)?;
        if self.seen.contains(item) {
            return Ok(None);
        }
        if self.seen.len() >= MAX_BROADCASTS {
            return Err(Refused::Full);
        }
        self.seen.insert(item.to_vec());
        Ok(Some(Text(item.to_vec())))
    }
}

/// Prints one line on stdout, flushed (the reader may be a file or a pipe).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Prints every broadcast received from a peer.
async fn print_broadcasts(agent: Handle<Id>) {
    let mut events = agent.subscribe();
    while let Some(event) = events.recv().await {
        match event {
            Ok(Event::Broadcast { item, from }) => say(&format!(
                "broadcast received {} from {}",
                String::from_utf8_lossy(&item),
                from.address()
            )),
            Ok(Event::Membership(_)) => {}
            Err(lagged) => warn!(%lagged, "missed events"),
        }
    }
}

/// Sends a new broadcast on every SIGUSR1.
#[cfg(unix)]
async fn broadcast_on_signal(
    agent: Handle<Id>,
    mut usr1: tokio::signal::unix::Signal,
    addr: SocketAddr,
) {
    let mut n = 0u64;
    while usr1.recv().await.is_some() {
        n += 1;
        let text = format!("{addr}#{n}");
        match agent.add_broadcast(text.as_bytes()).await {
            Ok(_) => say(&format!("broadcast sent {text}")),
            Err(e) => warn!(error = %e, "could not add a broadcast"),
        }
    }
}

fn parse_key(hex: &str) -> Result<[u8; 32], String> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return Err(format!(
            "--key must be 64 hex digits (32 bytes), got {} characters",
            hex.len()
        ));
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| format!("--key: '{}' is not hex", &hex[2 * i..2 * i + 2]))?;
    }
    Ok(key)
}

/// Writes the member list to `path` through a temporary file and a rename,
/// so readers never see half a list.
fn write_members(path: &Path, snapshot: &Snapshot<Id>) -> std::io::Result<()> {
    let mut addrs: Vec<SocketAddr> = snapshot.members.iter().map(|m| *m.id().address()).collect();
    addrs.push(*snapshot.identity.address());
    addrs.sort_unstable();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        for a in addrs {
            writeln!(f, "{a}")?;
        }
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

async fn keep_file(agent: Handle<Id>, path: PathBuf) {
    let mut watch = agent.watch();
    loop {
        let snapshot = agent.snapshot();
        if let Err(e) = write_members(&path, &snapshot) {
            warn!(file = %path.display(), error = %e, "could not write the member list");
        }
        if watch.changed().await.is_err() {
            return;
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run(args: Args) -> Result<(), String> {
    let addr = args.identity.unwrap_or(args.bind);
    // A restarted agent picks a higher generation, so it supersedes its
    // former self at once.
    let generation = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0);
    let identity = GenerationalId::new(addr, generation);
    let envelope = match &args.key {
        None => Envelope::insecure_plaintext(args.cluster.as_bytes()),
        Some(hex) => {
            let key = Key::new(Cipher::XChaCha20Poly1305, parse_key(hex)?);
            Envelope::encrypted(
                args.cluster.as_bytes(),
                Keyring::new(1, key, &mut rand::rng()),
            )
        }
    };
    // Listening before the agent starts, so that an early SIGUSR1 does not
    // end the process.
    #[cfg(unix)]
    let usr1 = if args.broadcasts {
        use tokio::signal::unix::{SignalKind, signal};
        Some(signal(SignalKind::user_defined1()).map_err(|e| format!("SIGUSR1: {e}"))?)
    } else {
        None
    };
    let agent = Builder::new(
        identity,
        Config::new_lan(args.cluster_size),
        PostcardCodec::new(),
        envelope,
    )
    .broadcast_handler(TextBroadcasts {
        enabled: args.broadcasts,
        seen: BTreeSet::new(),
    })
    .seeds(args.announce.iter().map(String::as_str))
    .bind(args.bind)
    .await
    .map_err(|e| format!("cannot start on {}: {e}", args.bind))?;
    info!(identity = ?agent.identity(), bind = %agent.local_addr(), "running; Ctrl-C leaves");
    let writer = args
        .filename
        .clone()
        .map(|path| tokio::spawn(keep_file(agent.clone(), path)));
    if args.broadcasts {
        tokio::spawn(print_broadcasts(agent.clone()));
        #[cfg(unix)]
        if let Some(usr1) = usr1 {
            tokio::spawn(broadcast_on_signal(agent.clone(), usr1, addr));
        }
    }

    shutdown_signal().await;
    info!("leaving the cluster");
    if let Err(e) = agent.leave(Duration::from_secs(1)).await {
        warn!(error = %e, "leave");
    }
    let metrics = agent.metrics().await.map_err(|e| e.to_string())?;
    info!(
        sent = metrics.datagrams_sent,
        received = metrics.datagrams_received,
        refused = metrics.rejections.total(),
        "bye"
    );
    agent.shutdown().await.map_err(|e| e.to_string())?;
    if let Some(w) = writer {
        let _ = w.await;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}
