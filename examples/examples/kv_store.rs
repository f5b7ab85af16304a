//! A key-value store replicated with custom broadcasts: five tokio agents
//! on 127.0.0.1 write keys, and every replica converges on the same map.
//!
//! `cargo run -p foca-examples --example kv_store`
//!
//! Each write is one custom broadcast item: a key, a version and the
//! value. The `BroadcastHandler` is the store:
//!
//! - `receive_item` applies an item if its version is newer than the
//!   replica's (last writer wins, ties broken by the writer's id), and
//!   only then returns it as news to pass on; an old or repeated write is
//!   dropped there, which is what stops the epidemic.
//! - `Invalidates`: items with the same key compete for one place in the
//!   backlog, and a newer version replaces an older one still waiting to
//!   be sent, so a key written twice quickly is sent once.
//! - The sender: the handler records which member each write was heard
//!   from, and `should_send` never sends it back there.
//!
//! The story: each member writes five keys of its own, all five write one
//! shared key at once (a conflict), and one member writes another key
//! twice in a row. The example exits 0 once every replica holds the same
//! 27 keys with the expected winners, 1 if that takes more than 15 s.
//! Custom broadcasts are best effort (a datagram lost too often loses an
//! item); a real store would add a periodic digest exchange to repair.
//!
//! This file is in the public domain (CC0-1.0).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use foca_codec::{Envelope, PostcardCodec};
use foca_core::{BroadcastHandler, Config, GenerationalId, Invalidates};
use foca_tokio::{Builder, Handle};
use tokio::net::UdpSocket;
use tokio::time::Instant;

type Id = GenerationalId<SocketAddr>;

const REPLICAS: usize = 5;
/// Five keys of its own per replica, one written by all, one written twice.
const KEYS: usize = 5 * REPLICAS + 2;

/// A version: a counter, then the writer's id (ties between concurrent
/// writes of one key go to the larger id: every replica picks the same).
type Version = (u64, u64);

/// One key's value in a replica.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    version: Version,
    value: String,
    /// The member whose datagram brought it (`None`: written here).
    heard_from: Option<Id>,
}

type Map = Arc<Mutex<BTreeMap<String, Entry>>>;

fn lock(map: &Map) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
    // A panic while holding the lock leaves a map that is still whole.
    map.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A write on the wire: `u8` key length, key, `u64` counter, `u64`
/// writer (big-endian), then the value (UTF-8, to the end).
fn encode(key: &str, version: Version, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(17 + key.len() + value.len());
    out.push(u8::try_from(key.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(&key.as_bytes()[..key.len().min(255)]);
    out.extend_from_slice(&version.0.to_be_bytes());
    out.extend_from_slice(&version.1.to_be_bytes());
    out.extend_from_slice(value.as_bytes());
    out
}

#[derive(Debug)]
struct BadItem;

impl fmt::Display for BadItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a key-value write")
    }
}

fn decode(item: &[u8]) -> Result<(String, Version, String), BadItem> {
    let (&len, rest) = item.split_first().ok_or(BadItem)?;
    let (key, rest) = rest.split_at_checked(usize::from(len)).ok_or(BadItem)?;
    let (counter, rest) = rest.split_first_chunk::<8>().ok_or(BadItem)?;
    let (writer, value) = rest.split_first_chunk::<8>().ok_or(BadItem)?;
    let key = std::str::from_utf8(key).map_err(|_| BadItem)?;
    let value = std::str::from_utf8(value).map_err(|_| BadItem)?;
    let version = (u64::from_be_bytes(*counter), u64::from_be_bytes(*writer));
    Ok((key.to_string(), version, value.to_string()))
}

/// A write being disseminated: what the backlog needs to know about it.
struct Write {
    key: String,
    version: Version,
    heard_from: Option<Id>,
}

impl Invalidates for Write {
    type Key = String;

    fn key(&self) -> String {
        self.key.clone()
    }

    /// A newer version of a key replaces an older one in the backlog.
    fn invalidates(&self, other: &Self) -> bool {
        self.version > other.version
    }
}

/// One replica of the store; the agent task owns the handler, the main
/// task reads the map through the shared pointer.
struct Store {
    map: Map,
}

impl BroadcastHandler<Id> for Store {
    type Broadcast = Write;
    type Error = BadItem;

    fn receive_item(&mut self, item: &[u8], sender: Option<&Id>) -> Result<Option<Write>, BadItem> {
        let (key, version, value) = decode(item)?;
        let mut map = lock(&self.map);
        if map.get(&key).is_some_and(|e| e.version >= version) {
            return Ok(None); // known, or older than what we hold: not news
        }
        let heard_from = sender.cloned();
        map.insert(
            key.clone(),
            Entry {
                version,
                value,
                heard_from,
            },
        );
        Ok(Some(Write {
            key,
            version,
            heard_from,
        }))
    }

    /// Never back to the member it came from: it has it.
    fn should_send(&self, write: &Write, _item: &[u8], to: &Id) -> bool {
        write.heard_from.as_ref() != Some(to)
    }
}

struct Replica {
    agent: Handle<Id>,
    map: Map,
    /// This replica's writer id (its port).
    writer: u64,
}

impl Replica {
    /// Writes `key` here (one version above what this replica holds) and
    /// disseminates it.
    async fn put(&self, key: &str, value: &str) -> Result<(), String> {
        let counter = lock(&self.map).get(key).map_or(0, |e| e.version.0) + 1;
        self.put_at(key, counter, value).await
    }

    /// Writes version `counter` of `key`, whatever this replica holds (a
    /// concurrent write, as if made before news of the others arrived).
    /// Not news here if the replica holds that version from a larger
    /// writer id already.
    async fn put_at(&self, key: &str, counter: u64, value: &str) -> Result<(), String> {
        let item = encode(key, (counter, self.writer), value);
        self.agent
            .add_broadcast(item)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn contents(&self) -> BTreeMap<String, (Version, String)> {
        lock(&self.map)
            .iter()
            .map(|(k, e)| (k.clone(), (e.version, e.value.clone())))
            .collect()
    }
}

async fn start(n: usize, seed: Option<SocketAddr>) -> Result<Replica, String> {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = socket.local_addr().map_err(|e| e.to_string())?;
    let envelope = Envelope::insecure_plaintext(b"kv-store");
    let mut config = Config::new_lan(REPLICAS);
    config.probe_period = Duration::from_millis(300);
    config.probe_rtt = Duration::from_millis(100);
    config.max_packet_size = 1400 - envelope.overhead();
    let map = Map::default();
    let agent = Builder::new(
        GenerationalId::new(addr, 1),
        config,
        PostcardCodec::new(),
        envelope,
    )
    .broadcast_handler(Store { map: map.clone() })
    .seeds(seed)
    .rng_seed(n as u64)
    .spawn(socket)
    .map_err(|e| e.to_string())?;
    Ok(Replica {
        agent,
        map,
        writer: u64::from(addr.port()),
    })
}

async fn story() -> Result<(), String> {
    let mut replicas: Vec<Replica> = Vec::new();
    for n in 0..REPLICAS {
        let seed = replicas.first().map(|r| r.agent.local_addr());
        replicas.push(start(n, seed).await?);
    }
    for r in &replicas {
        tokio::time::timeout(
            Duration::from_secs(10),
            r.agent.wait_for(|s| s.members.len() == REPLICAS - 1),
        )
        .await
        .map_err(|_| "the cluster did not form within 10 s")?
        .map_err(|e| e.to_string())?;
    }
    println!("{REPLICAS} replicas up on 127.0.0.1; writing");
    let start = Instant::now();
    for (n, r) in replicas.iter().enumerate() {
        for k in 0..5 {
            r.put(&format!("m{n}/key{k}"), &format!("value {k} from m{n}"))
                .await?;
        }
    }
    // A conflict: every replica writes version 1 of "leader" at once.
    for (n, r) in replicas.iter().enumerate() {
        r.put_at("leader", 1, &format!("m{n}")).await?;
    }
    // Two writes in a row: the second invalidates the first.
    replicas[1].put("config", "v1").await?;
    replicas[1].put("config", "v2").await?;

    let winner = replicas
        .iter()
        .enumerate()
        .max_by_key(|(_, r)| r.writer)
        .map(|(n, _)| format!("m{n}"))
        .unwrap_or_default();
    let limit = start + Duration::from_secs(15);
    loop {
        let first = replicas[0].contents();
        let same = replicas.iter().all(|r| r.contents() == first);
        let complete = first.len() == KEYS
            && first.get("leader").map(|e| &e.1) == Some(&winner)
            && first.get("config").map(|e| e.1.as_str()) == Some("v2");
        if same && complete {
            break;
        }
        if Instant::now() > limit {
            for (n, r) in replicas.iter().enumerate() {
                eprintln!("m{n}: {} keys", r.contents().len());
            }
            return Err("the replicas did not converge within 15 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "converged in {:.2} s: every replica holds {KEYS} keys; leader = {winner} (the largest writer id), config = v2",
        start.elapsed().as_secs_f64()
    );
    for (n, r) in replicas.iter().enumerate() {
        let map = lock(&r.map);
        let relayed = map
            .iter()
            .filter(|(_, e)| {
                e.heard_from
                    .is_some_and(|from| u64::from(from.address().port()) != e.version.1)
            })
            .count();
        let own = map.values().filter(|e| e.heard_from.is_none()).count();
        println!(
            "m{n}: {own} written here, {} heard from their writer, {relayed} relayed by another member",
            map.len() - own - relayed
        );
    }
    for r in &replicas {
        r.agent.shutdown().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match story().await {
        Ok(()) => {
            println!("kv_store: OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kv_store: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
