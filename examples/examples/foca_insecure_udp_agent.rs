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
//! The command line, the member-list file and the goodbye are shared with
//! the async-std agent (`async_std_agent`): see `foca_examples::udp_agent`.
//!
//! This file is in the public domain (CC0-1.0).

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};
use foca_codec::PostcardCodec;
use foca_core::{BroadcastHandler, Config, Invalidates};
use foca_examples::udp_agent::{self, Id, init_logging, keep_file, leave_and_stop};
use foca_tokio::{Builder, Event, Handle};
use tracing::{error, info, warn};

/// A foca cluster member over UDP, on tokio.
#[derive(Parser, Debug)]
#[command(version)]
struct AgentArgs {
    #[command(flatten)]
    common: udp_agent::Args,
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

async fn run(args: AgentArgs) -> Result<(), String> {
    let AgentArgs { common, broadcasts } = args;
    // Listening before the agent starts, so that an early SIGUSR1 does not
    // end the process.
    #[cfg(unix)]
    let usr1 = if broadcasts {
        use tokio::signal::unix::{SignalKind, signal};
        Some(signal(SignalKind::user_defined1()).map_err(|e| format!("SIGUSR1: {e}"))?)
    } else {
        None
    };
    let agent = Builder::new(
        common.identity(),
        Config::new_lan(common.cluster_size),
        PostcardCodec::new(),
        common.envelope()?,
    )
    .broadcast_handler(TextBroadcasts {
        enabled: broadcasts,
        seen: BTreeSet::new(),
    })
    .seeds(common.announce.iter().map(String::as_str))
    .bind(common.bind)
    .await
    .map_err(|e| format!("cannot start on {}: {e}", common.bind))?;
    info!(identity = ?agent.identity(), bind = %agent.local_addr(), "running; Ctrl-C leaves");
    let writer = common
        .filename
        .clone()
        .map(|path| tokio::spawn(keep_file(agent.clone(), path)));
    if broadcasts {
        tokio::spawn(print_broadcasts(agent.clone()));
        #[cfg(unix)]
        if let Some(usr1) = usr1 {
            let addr = *agent.identity().address();
            tokio::spawn(broadcast_on_signal(agent.clone(), usr1, addr));
        }
    }

    shutdown_signal().await;
    leave_and_stop(&agent).await?;
    if let Some(w) = writer {
        let _ = w.await;
    }
    Ok(())
}

fn main() -> ExitCode {
    let matches = AgentArgs::command()
        .name("foca_insecure_udp_agent")
        .get_matches();
    let args = AgentArgs::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging();
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
