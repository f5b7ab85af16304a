//! The first thing to run: a small cluster of real agents over UDP on
//! loopback, in one process, with a timeline of what each member sees.
//!
//! `cargo run -p foca-examples --example demo`
//!
//! Six members join through a seed; one crashes and the others detect it;
//! one leaves gracefully and the others report it as left, not failed; the
//! crashed one restarts on the same address and is seen again; a custom
//! broadcast reaches everyone. Each step is bounded; the demo exits 0 with
//! a summary when all of them happened, 1 otherwise. Probe periods are
//! shortened to 500 ms so the whole run takes about 15 s.
//!
//! This file is in the public domain (CC0-1.0).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use foca_codec::{Cipher, Envelope, Key, Keyring, PostcardCodec};
use foca_core::{BroadcastHandler, Config, GenerationalId, Invalidates, Notification};
use foca_tokio::{Builder, Event, Handle};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

type Id = GenerationalId<SocketAddr>;

const MEMBERS: usize = 6;
/// The most any step may take.
const STEP_LIMIT: Duration = Duration::from_secs(20);

/// Custom broadcasts here are short text messages, each news once.
#[derive(Default)]
struct Messages(BTreeSet<Vec<u8>>);

struct Message(Vec<u8>);

impl Invalidates for Message {
    type Key = Vec<u8>;
    fn key(&self) -> Vec<u8> {
        self.0.clone()
    }
    fn invalidates(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl BroadcastHandler<Id> for Messages {
    type Broadcast = Message;
    type Error = std::str::Utf8Error;

    fn receive_item(
        &mut self,
        item: &[u8],
        _sender: Option<&Id>,
    ) -> Result<Option<Message>, Self::Error> {
        std::str::from_utf8(item)?;
        Ok(self.0.insert(item.to_vec()).then(|| Message(item.to_vec())))
    }
}

fn config() -> Config {
    let mut c = Config::new_lan(MEMBERS);
    c.probe_period = Duration::from_millis(500);
    c.probe_rtt = Duration::from_millis(200);
    c
}

/// What the timeline collects: when, who saw it, what.
type Seen = (Instant, usize, Event<Id>);

struct Demo {
    start: Instant,
    agents: Vec<Option<Handle<Id>>>,
    names: Vec<(SocketAddr, usize)>,
    seen: mpsc::UnboundedReceiver<Seen>,
    seen_tx: mpsc::UnboundedSender<Seen>,
    summary: Vec<String>,
    /// Print every "sees X up" line (off while everyone joins: too many).
    show_ups: bool,
    /// The cluster's key, made up for this run.
    key: [u8; 32],
}

impl Demo {
    /// A member's envelope: every datagram sealed with the cluster's key
    /// (XChaCha20-Poly1305), as a deployment would.
    fn envelope(&self) -> Envelope {
        let key = Key::new(Cipher::XChaCha20Poly1305, self.key);
        Envelope::encrypted(b"demo", Keyring::new(1, key, &mut rand::rng()))
    }

    fn name(&self, id: &Id) -> String {
        self.names
            .iter()
            .find(|(a, _)| a == id.address())
            .map_or_else(|| id.address().to_string(), |(_, n)| format!("m{n}"))
    }

    fn at(&self, t: Instant) -> String {
        format!("{:>6.2}s", t.duration_since(self.start).as_secs_f64())
    }

    async fn start_member(
        &mut self,
        n: usize,
        addr: SocketAddr,
        generation: u32,
    ) -> Result<(), String> {
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|e| format!("bind {addr}: {e}"))?;
        let addr = socket.local_addr().map_err(|e| e.to_string())?;
        let seeds = self
            .agents
            .first()
            .and_then(|a| a.as_ref())
            .map(Handle::local_addr);
        let handle = Builder::new(
            GenerationalId::new(addr, generation),
            config(),
            PostcardCodec::new(),
            self.envelope(),
        )
        .broadcast_handler(Messages::default())
        .seeds(seeds.filter(|s| *s != addr))
        .spawn(socket)
        .map_err(|e| e.to_string())?;
        let mut sub = handle.subscribe();
        let tx = self.seen_tx.clone();
        tokio::spawn(async move {
            while let Some(e) = sub.recv().await {
                if let Ok(e) = e
                    && tx.send((Instant::now(), n, e)).is_err()
                {
                    return;
                }
            }
        });
        if let Some(i) = self.names.iter().position(|(a, _)| *a == addr) {
            self.names[i].1 = n;
        } else {
            self.names.push((addr, n));
        }
        if self.agents.len() < n {
            self.agents.resize(n, None);
        }
        self.agents[n - 1] = Some(handle);
        println!("{}  m{n} starts on {addr}", self.at(Instant::now()));
        Ok(())
    }

    fn running(&self) -> Vec<(usize, &Handle<Id>)> {
        self.agents
            .iter()
            .enumerate()
            .filter_map(|(i, a)| a.as_ref().map(|a| (i + 1, a)))
            .collect()
    }

    /// Prints what members see until `done` says the step is over; returns
    /// when that happened, or fails after [`STEP_LIMIT`].
    async fn until(
        &mut self,
        step: &str,
        mut done: impl FnMut(&Self, &Seen) -> bool,
    ) -> Result<Instant, String> {
        let limit = Instant::now() + STEP_LIMIT;
        loop {
            let Ok(Some(seen)) = timeout(
                limit.saturating_duration_since(Instant::now()),
                self.seen.recv(),
            )
            .await
            else {
                return Err(format!("{step}: did not happen within {STEP_LIMIT:?}"));
            };
            let (t, who, event) = &seen;
            let what = match event {
                Event::Membership(Notification::MemberUp(id)) => {
                    format!("sees {} up", self.name(id))
                }
                Event::Membership(Notification::MemberDown(id)) => {
                    format!("sees {} FAILED", self.name(id))
                }
                Event::Membership(Notification::MemberLeft(id)) => {
                    format!("sees {} leave", self.name(id))
                }
                Event::Membership(Notification::Rename(a, b)) => {
                    format!(
                        "sees {} restart (generation {} -> {})",
                        self.name(a),
                        a.generation(),
                        b.generation()
                    )
                }
                Event::Membership(Notification::Active) => "is connected".into(),
                Event::Membership(Notification::Idle) => "has no live peer".into(),
                Event::Membership(n) => format!("{n:?}"),
                Event::Broadcast { item, from } => {
                    format!(
                        "receives \"{}\" (via {})",
                        String::from_utf8_lossy(item),
                        self.name(from)
                    )
                }
            };
            let up = matches!(
                event,
                Event::Membership(Notification::MemberUp(_) | Notification::Active)
            );
            if self.show_ups || !up {
                println!("{}    m{who} {what}", self.at(*t));
            }
            if done(self, &seen) {
                return Ok(*t);
            }
        }
    }

    fn note(&mut self, line: String) {
        println!("          -> {line}");
        self.summary.push(line);
    }
}

/// Counts, per member, whether it has seen what `want` matches.
struct Quorum(BTreeSet<usize>, usize);

impl Quorum {
    fn new(of: usize) -> Self {
        Self(BTreeSet::new(), of)
    }
    fn saw(&mut self, who: usize) -> bool {
        self.0.insert(who);
        self.0.len() >= self.1
    }
}

async fn run() -> Result<(), String> {
    let (seen_tx, seen) = mpsc::unbounded_channel();
    let mut demo = Demo {
        start: Instant::now(),
        agents: Vec::new(),
        names: Vec::new(),
        seen,
        seen_tx,
        summary: Vec::new(),
        show_ups: false,
        key: rand::random(),
    };
    let any: SocketAddr = "127.0.0.1:0".parse().map_err(|_| "address")?;

    println!("== {MEMBERS} members join through m1");
    let t0 = Instant::now();
    for n in 1..=MEMBERS {
        demo.start_member(n, any, 1).await?;
    }
    let mut ups = std::collections::BTreeMap::<usize, usize>::new();
    demo.until("join", |d, (t, who, e)| {
        if let Event::Membership(Notification::MemberUp(_)) = e {
            let count = ups.entry(*who).or_default();
            *count += 1;
            if *count == MEMBERS - 1 {
                println!("{}    m{who} sees all {MEMBERS} members", d.at(*t));
            }
        }
        ups.len() == MEMBERS && ups.values().all(|&c| c >= MEMBERS - 1)
    })
    .await?;
    let joined = t0.elapsed();
    demo.note(format!(
        "all {MEMBERS} members see {MEMBERS} members after {:.2} s",
        joined.as_secs_f64()
    ));

    println!("== m4 crashes (its task stops without a word)");
    let victim = demo.agents[3].as_ref().ok_or("m4")?.identity();
    let victim_addr = *victim.address();
    let crash = Instant::now();
    demo.agents[3]
        .take()
        .ok_or("m4")?
        .shutdown()
        .await
        .map_err(|e| e.to_string())?;
    let mut q = Quorum::new(MEMBERS - 1);
    let mut first = None;
    let detected = demo
        .until("crash detection", |_, (t, who, e)| {
            if *e == Event::Membership(Notification::MemberDown(victim)) {
                first.get_or_insert(*t);
                return q.saw(*who);
            }
            false
        })
        .await?;
    let first = first.unwrap_or(detected);
    demo.note(format!(
        "m4 crash detected by the first member after {:.2} s, by all {} after {:.2} s",
        first.duration_since(crash).as_secs_f64(),
        MEMBERS - 1,
        detected.duration_since(crash).as_secs_f64()
    ));

    println!("== m5 leaves gracefully");
    let leaver = demo.agents[4].as_ref().ok_or("m5")?.clone();
    let leaver_id = leaver.identity();
    let leave = Instant::now();
    leaver
        .leave(Duration::from_millis(500))
        .await
        .map_err(|e| e.to_string())?;
    leaver.shutdown().await.map_err(|e| e.to_string())?;
    demo.agents[4] = None;
    let mut q = Quorum::new(MEMBERS - 2);
    let mut failed = false;
    let left = demo
        .until("graceful leave", |_, (_, who, e)| match e {
            Event::Membership(Notification::MemberLeft(id)) if *id == leaver_id => q.saw(*who),
            Event::Membership(Notification::MemberDown(id)) if *id == leaver_id => {
                failed = true;
                false
            }
            _ => false,
        })
        .await?;
    if failed {
        return Err("a member reported m5 as failed although it left".into());
    }
    demo.note(format!(
        "m5's leave reached all {} members after {:.2} s, reported as left (not failed)",
        MEMBERS - 2,
        left.duration_since(leave).as_secs_f64()
    ));

    println!("== m4 restarts on the same address, a generation up");
    let restart = Instant::now();
    demo.start_member(4, victim_addr, 2).await?;
    let back = demo.agents[3].as_ref().ok_or("m4")?.identity();
    let mut q = Quorum::new(MEMBERS - 2);
    let rejoined = demo
        .until("rejoin", |_, (_, who, e)| match e {
            Event::Membership(Notification::MemberUp(id)) if *id == back && *who != 4 => {
                q.saw(*who)
            }
            _ => false,
        })
        .await?;
    demo.note(format!(
        "m4 seen again by all {} members {:.2} s after its restart",
        MEMBERS - 2,
        rejoined.duration_since(restart).as_secs_f64()
    ));

    println!("== m2 broadcasts a message");
    let sent = Instant::now();
    let accepted = demo.agents[1]
        .as_ref()
        .ok_or("m2")?
        .add_broadcast(&b"hello from m2"[..])
        .await
        .map_err(|e| e.to_string())?;
    if !accepted {
        return Err("the broadcast was not accepted".into());
    }
    let mut q = Quorum::new(MEMBERS - 2);
    let reached = demo
        .until("broadcast", |_, (_, who, e)| match e {
            Event::Broadcast { item, .. } if item == b"hello from m2" => q.saw(*who),
            _ => false,
        })
        .await?;
    demo.note(format!(
        "the broadcast reached all {} other members after {:.2} s",
        MEMBERS - 2,
        reached.duration_since(sent).as_secs_f64()
    ));

    let mut sent_total = 0;
    let mut refused = 0;
    for (_, a) in demo.running() {
        let m = a.metrics().await.map_err(|e| e.to_string())?;
        sent_total += m.datagrams_sent;
        refused += m.rejections.total();
    }
    for (_, a) in demo.running() {
        a.shutdown().await.map_err(|e| e.to_string())?;
    }
    println!();
    println!(
        "Summary ({:.1} s, {sent_total} datagrams sent by the members still running, {refused} refused):",
        demo.start.elapsed().as_secs_f64()
    );
    for line in &demo.summary {
        println!("  - {line}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}
