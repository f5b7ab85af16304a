//! What the command-line UDP agents share, whatever their runtime (the
//! `foca_insecure_udp_agent` example on tokio, `async_std_agent` on
//! async-std): the command line, the identity and the envelope it asks
//! for, the member-list file, logging, and the goodbye. The agent handle
//! is the core's generic one, so this is written once for every driver.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{CommandFactory, FromArgMatches, Parser};
use foca_codec::{Cipher, Envelope, Key, Keyring};
use foca_core::agent::{Handle, Link};
use foca_core::{GenerationalId, Snapshot};
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

/// The agents' identity: the address others reach them at, and a
/// generation.
pub type Id = GenerationalId<SocketAddr>;

/// A foca cluster member over UDP.
#[derive(Parser, Debug)]
#[command(version)]
pub struct Args {
    /// Address to bind the UDP socket to.
    #[arg(value_name = "BIND_ADDR")]
    pub bind: SocketAddr,
    /// Member to announce to (a seed): an address or host:port. Repeat for
    /// more than one.
    #[arg(short = 'a', long = "announce", value_name = "ADDR")]
    pub announce: Vec<String>,
    /// File kept up to date with the active members (this one included),
    /// one address per line, sorted; replaced atomically.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub filename: Option<PathBuf>,
    /// Address the others should use to reach this member (default: the
    /// bind address), e.g. when binding 0.0.0.0.
    #[arg(short = 'i', long = "identity", value_name = "ADDR")]
    pub identity: Option<SocketAddr>,
    /// Cluster label: members with another label ignore these datagrams.
    #[arg(long, default_value = "foca")]
    pub cluster: String,
    /// Seal datagrams with this XChaCha20-Poly1305 key: 64 hex digits.
    #[arg(long, value_name = "HEX")]
    pub key: Option<String>,
    /// Expected cluster size (sizes the backlogs and timeouts).
    #[arg(long, default_value_t = 16)]
    pub cluster_size: usize,
}

impl Args {
    /// The command line of the program called `name` (exits with usage on
    /// an error, as clap does).
    pub fn parse_as(name: &'static str) -> Self {
        let matches = Self::command().name(name).get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// This member's identity: the address others reach it at, and a
    /// generation from the clock, so that a restarted agent supersedes its
    /// former self at once.
    pub fn identity(&self) -> Id {
        let generation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
            .unwrap_or(0);
        GenerationalId::new(self.identity.unwrap_or(self.bind), generation)
    }

    /// The envelope the command line asks for: sealed with `--key`, plain
    /// otherwise.
    pub fn envelope(&self) -> Result<Envelope, String> {
        Ok(match &self.key {
            None => Envelope::insecure_plaintext(self.cluster.as_bytes()),
            Some(hex) => {
                let key = Key::new(Cipher::XChaCha20Poly1305, parse_key(hex)?);
                Envelope::encrypted(
                    self.cluster.as_bytes(),
                    Keyring::new(1, key, &mut rand::rng()),
                )
            }
        })
    }
}

/// A 32-byte key from 64 hex digits.
pub fn parse_key(hex: &str) -> Result<[u8; 32], String> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return Err(format!(
            "--key must be 64 hex digits (32 bytes), got {} characters",
            hex.len()
        ));
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        let digits = hex
            .get(2 * i..2 * i + 2)
            .ok_or_else(|| "--key: not hex".to_string())?;
        *byte =
            u8::from_str_radix(digits, 16).map_err(|_| format!("--key: '{digits}' is not hex"))?;
    }
    Ok(key)
}

/// Logs to stderr; `RUST_LOG` picks the level (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Writes the member list to `path` through a temporary file and a rename,
/// so readers never see half a list.
pub fn write_members(path: &Path, snapshot: &Snapshot<Id>) -> std::io::Result<()> {
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

/// Keeps the file at `path` up to date with the member list until the
/// agent stops.
pub async fn keep_file<L>(agent: Handle<L>, path: PathBuf)
where
    L: Link<Id = Id> + Sync,
{
    loop {
        let snapshot = agent.snapshot();
        if let Err(e) = write_members(&path, &snapshot) {
            warn!(file = %path.display(), error = %e, "could not write the member list");
        }
        // The next snapshot published after this one.
        if agent
            .wait_for(|s| !std::ptr::eq(s, &*snapshot))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Leaves the cluster (lingering a second while the news spreads), logs
/// the counters, and stops the agent.
pub async fn leave_and_stop<L>(agent: &Handle<L>) -> Result<(), String>
where
    L: Link<Id = Id, Envelope = Envelope> + Sync,
{
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
    agent.shutdown().await.map_err(|e| e.to_string())
}
