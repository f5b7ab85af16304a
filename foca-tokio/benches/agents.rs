//! Many agents in one process, over real UDP on 127.0.0.1, in real time
//! (no paused clock): how long until every agent sees every member, and what
//! an idle, converged cluster costs in CPU and traffic per agent.
//!
//! ```text
//! cargo bench -p foca-tokio --bench agents
//! ```
//!
//! For each cluster size (20, the baseline, then 200, in the same run; about
//! 75 s in all):
//! 1. starts N agents, each with `Config::new_lan(N)`, agent 0 the seed of
//!    every other, and measures the wall time from the first bind until
//!    every agent's snapshot holds N - 1 members (bounded: 120 s); a join
//!    slower than 5 s names the agents that were still missing members;
//! 2. waits until no agent has membership updates left to disseminate
//!    (bounded: 30 s), so the idle window starts on a quiet cluster;
//! 3. over an idle window of 30 s (one mean period of the periodic
//!    announce, so its cost is in the average) measures the process's CPU
//!    time (user + system, every thread, from `/proc/self/task/*/schedstat`,
//!    with `/proc/self/stat` as a coarse cross-check; Linux only, "n/a"
//!    elsewhere) and the datagrams and bytes each agent sent (deltas of
//!    `Handle::metrics`), and shows the kernel's UDP drop counters;
//! 4. checks that after the window every agent still sees N - 1 members,
//!    that nobody was declared down during the whole run, and that no
//!    subscriber saw a member go down, leave or restart while idle; any
//!    failure is printed loudly and the bench exits non-zero.
//!
//! It prints a table and the ratios of the largest size to the baseline.
//! Knobs, all optional: `FOCA_BENCH_SIZES=20,200` (the first is the
//! baseline), `FOCA_BENCH_IDLE_SECS=30`, `FOCA_BENCH_RUNTIME=multi|current`
//! (tokio multi-thread with 2 workers, the default, or current-thread).
//! Command-line arguments (cargo passes `--bench`) are ignored.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use foca_codec::PostcardCodec;
use foca_core::{Config, ConnectionState, GenerationalId, Identity, Notification, State};
use foca_tokio::{AgentMetrics, Builder, Event, Handle, Subscription};
use tokio::net::UdpSocket;
use tokio::time::{Instant, sleep, sleep_until, timeout_at};

type Id = GenerationalId<SocketAddr>;
/// One counter of an agent's metrics.
type Counter = fn(&AgentMetrics) -> u64;

/// Longest wait for every agent to see every member.
const JOIN_LIMIT: Duration = Duration::from_secs(120);
/// When the join is checked for stragglers (it normally takes 1-2 s).
const LATE: Duration = Duration::from_secs(5);
/// Longest wait for the updates backlogs to drain after the join.
const QUIET_LIMIT: Duration = Duration::from_secs(30);
/// How often the backlogs are polled while waiting for quiet.
const QUIET_POLL: Duration = Duration::from_millis(250);
/// Worker threads of the multi-thread runtime (the machine it was written
/// for has 2 cores).
const WORKERS: usize = 2;

fn main() -> ExitCode {
    let sizes = env_sizes();
    let idle = Duration::from_secs(env_u64("FOCA_BENCH_IDLE_SECS", 30).max(1));
    let multi = !matches!(
        std::env::var("FOCA_BENCH_RUNTIME").as_deref(),
        Ok("current" | "current_thread" | "current-thread")
    );
    let runtime = if multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .expect("a tokio runtime (the process could not start its threads)");

    println!("foca-tokio agents bench: cargo bench -p foca-tokio --bench agents");
    println!(
        "machine: {} cores available",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    if multi {
        println!(
            "runtime: tokio multi-thread, {WORKERS} worker threads: one per core of the \
             2-core machine, as a server would run its tasks; the main thread only waits \
             (FOCA_BENCH_RUNTIME=current for one thread)"
        );
    } else {
        println!(
            "runtime: tokio current-thread: every agent and the bench itself on one \
             thread (no work stealing; the join may be CPU-bound on one core)"
        );
    }
    println!(
        "sizes: {sizes:?} (baseline {}), Config::new_lan(N), agent 0 the only seed, \
         idle window {} s",
        sizes[0],
        idle.as_secs()
    );
    if let Err(e) = check_fd_limit(sizes.iter().copied().max().unwrap_or(0)) {
        eprintln!("\n!!! FAILED: {e}");
        return ExitCode::FAILURE;
    }

    let mut results = Vec::new();
    for &n in &sizes {
        println!("\n--- N = {n} ---");
        match runtime.block_on(run(n, idle)) {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("\n!!! FAILED at N = {n}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    report(&results);
    ExitCode::SUCCESS
}

/// What one cluster size measured.
struct Measured {
    n: usize,
    join_p50: Duration,
    join_max: Duration,
    quiet_after: Option<Duration>,
    /// Datagrams sent per agent from the first bind to the start of the
    /// idle window (join and dissemination).
    join_datagrams_per_agent: f64,
    idle: Duration,
    cpu: Option<Duration>,
    cpu_stat: Option<Duration>,
    datagrams_sent: u64,
    bytes_sent: u64,
    suspicions_idle: u64,
    suspicions_total: u64,
    probes_incomplete_total: u64,
    /// Non-zero drop and error counters over the whole run.
    losses: Vec<String>,
}

impl Measured {
    fn per_agent_second(&self, x: f64) -> f64 {
        x / self.n as f64 / self.idle.as_secs_f64()
    }
    /// CPU ms per agent per second of the idle window.
    fn cpu_per_agent(&self) -> Option<f64> {
        self.cpu
            .map(|c| self.per_agent_second(c.as_secs_f64() * 1e3))
    }
    /// Process CPU as a percentage of one core.
    fn cpu_percent(&self) -> Option<f64> {
        self.cpu
            .map(|c| 100.0 * c.as_secs_f64() / self.idle.as_secs_f64())
    }
    fn datagrams_per_agent(&self) -> f64 {
        self.per_agent_second(self.datagrams_sent as f64)
    }
    fn bytes_per_agent(&self) -> f64 {
        self.per_agent_second(self.bytes_sent as f64)
    }
}

async fn start(n: usize, seed: Option<SocketAddr>) -> Result<Handle<Id>, String> {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind 127.0.0.1:0: {e} (is `ulimit -n` too low?)"))?;
    let addr = socket.local_addr().map_err(|e| e.to_string())?;
    Builder::new(
        GenerationalId::new(addr, 1),
        Config::new_lan(n),
        PostcardCodec::new(),
        // Loopback, one process: the plain envelope (CRC32C) is enough.
        foca_codec::Envelope::insecure_plaintext(b"bench"),
    )
    .seeds(seed)
    .spawn(socket)
    .map_err(|e| format!("start agent {addr}: {e}"))
}

async fn run(n: usize, idle: Duration) -> Result<Measured, String> {
    assert!(n >= 2, "a cluster of {n} has nobody to join");
    let udp0 = udp_counters();
    let t0 = Instant::now();
    let seed = start(n, None).await?;
    let seed_addr = seed.local_addr();
    let mut agents = vec![seed];
    for _ in 1..n {
        agents.push(start(n, Some(seed_addr)).await?);
    }
    println!("started {n} agents in {:.0?}", t0.elapsed());

    let result = measure(n, idle, t0, udp0, &agents).await;
    for a in &agents {
        let _ = a.shutdown().await;
    }
    result
}

async fn measure(
    n: usize,
    idle: Duration,
    t0: Instant,
    udp0: Option<UdpCounters>,
    agents: &[Handle<Id>],
) -> Result<Measured, String> {
    // 1. Join: every agent watched by its own task, so each one's time is
    // taken when its snapshot changes, not when the bench gets round to it.
    let deadline = t0 + JOIN_LIMIT;
    let waiters: Vec<_> = agents
        .iter()
        .map(|a| {
            let a = a.clone();
            tokio::spawn(async move {
                let r = timeout_at(deadline, a.wait_for(|s| s.members.len() == n - 1)).await;
                matches!(r, Ok(Ok(_))).then(|| t0.elapsed())
            })
        })
        .collect();
    // Who is still short of members a few seconds in, and of whom: looked
    // at only if the join takes that long.
    let stragglers = {
        let agents = agents.to_vec();
        tokio::spawn(async move {
            sleep_until(t0 + LATE).await;
            missing_members(&agents)
        })
    };
    let mut times = Vec::with_capacity(n);
    for w in waiters {
        if let Some(t) = w.await.map_err(|e| e.to_string())? {
            times.push(t);
        }
    }
    if times.len() < n {
        let counts: Vec<usize> = agents.iter().map(|a| a.snapshot().members.len()).collect();
        let min = counts.iter().min().copied().unwrap_or(0);
        let max = counts.iter().max().copied().unwrap_or(0);
        let lonely = agents
            .iter()
            .filter(|a| a.snapshot().state != ConnectionState::Connected)
            .count();
        let missing: Vec<String> = missing_members(agents)
            .iter()
            .take(5)
            .map(|(i, missing)| format!("agent {i} misses {} agents", missing.len()))
            .collect();
        return Err(format!(
            "join did not converge within {JOIN_LIMIT:?}: {} of {n} agents saw {} members; \
             members seen per agent: min {min}, max {max}; {lonely} agents not connected; {}",
            times.len(),
            n - 1,
            missing.join(", ")
        ));
    }
    times.sort_unstable();
    let join_p50 = times[times.len() / 2];
    let join_max = times[times.len() - 1];
    if join_max > LATE {
        let late = stragglers.await.map_err(|e| e.to_string())?;
        let shown: Vec<String> = late
            .iter()
            .take(5)
            .map(|(i, missing)| format!("agent {i} missed agents {missing:?}"))
            .collect();
        println!(
            "SLOW JOIN: after {LATE:?}, {} agents still missed members: {}{}",
            late.len(),
            shown.join("; "),
            if late.len() > 5 { "; ..." } else { "" }
        );
    } else {
        stragglers.abort();
    }
    println!(
        "join: every agent sees {n} members after {join_max:.2?} (median agent {join_p50:.2?})"
    );

    // 2. Quiet: nothing left to disseminate anywhere.
    let quiet_from = Instant::now();
    let quiet_after = loop {
        let backlog: u64 = all_metrics(agents)
            .await?
            .iter()
            .map(|m| m.protocol.updates_backlog + m.protocol.broadcast_backlog)
            .sum();
        if backlog == 0 {
            break Some(t0.elapsed());
        }
        if quiet_from.elapsed() > QUIET_LIMIT {
            println!(
                "WARNING: {backlog} updates still queued {QUIET_LIMIT:?} after the join; \
                 measuring anyway"
            );
            break None;
        }
        sleep(QUIET_POLL).await;
    };
    if let Some(q) = quiet_after {
        println!("quiet: no updates queued anywhere after {q:.2?}");
    }

    // 3. Idle window. Metrics are read outside the CPU window so that
    // asking every agent for them is not counted as idle work.
    let mut subs: Vec<Subscription<Id>> = agents.iter().map(Handle::subscribe).collect();
    let before = all_metrics(agents).await?;
    let join_datagrams: u64 = before.iter().map(|m| m.datagrams_sent).sum();
    let udp1 = udp_counters();
    let w0 = Instant::now();
    let cpu0 = cpu_schedstat();
    let stat0 = cpu_stat();
    sleep(idle).await;
    let cpu1 = cpu_schedstat();
    let stat1 = cpu_stat();
    let window = w0.elapsed();
    let udp2 = udp_counters();
    if let (Some(a), Some(b), Some(c)) = (udp0, udp1, udp2) {
        println!(
            "kernel UDP counters (/proc/net/snmp, whole machine): join {}; idle {}",
            b.since(&a),
            c.since(&b)
        );
    }
    let after = all_metrics(agents).await?;
    let metrics_window = w0.elapsed();

    // 4. Correctness.
    let mut failures = Vec::new();
    for (i, a) in agents.iter().enumerate() {
        let s = a.snapshot();
        if s.members.len() != n - 1 || s.state != ConnectionState::Connected {
            failures.push(format!(
                "agent {i} ({}) sees {} members, state {:?}",
                a.local_addr(),
                s.members.len() + 1,
                s.state
            ));
        }
    }
    let suspects: usize = agents
        .iter()
        .map(|a| {
            a.snapshot()
                .members
                .iter()
                .filter(|m| m.state() == State::Suspect)
                .count()
        })
        .sum();
    let declared_down: u64 = after.iter().map(|m| m.protocol.members_declared_down).sum();
    if declared_down > 0 {
        failures.push(format!(
            "{declared_down} members were declared down during the run"
        ));
    }
    let mut bad_events = 0;
    let mut lagged = 0;
    for sub in &mut subs {
        while let Some(e) = sub.try_recv() {
            match e {
                Ok(Event::Membership(
                    Notification::MemberDown(_)
                    | Notification::MemberLeft(_)
                    | Notification::Rename(..)
                    | Notification::Idle
                    | Notification::Defunct,
                )) => bad_events += 1,
                Ok(_) => {}
                Err(_) => lagged += 1,
            }
        }
    }
    if bad_events > 0 || lagged > 0 {
        failures.push(format!(
            "while idle, subscribers saw {bad_events} down/left/restart/idle events \
             ({lagged} subscriptions lagged)"
        ));
    }

    let sum = |f: Counter| -> u64 {
        after
            .iter()
            .zip(&before)
            .map(|(a, b)| f(a).saturating_sub(f(b)))
            .sum()
    };
    let total = |f: Counter| -> u64 { after.iter().map(f).sum() };
    let datagrams_sent = sum(|m| m.datagrams_sent);
    let bytes_sent = sum(|m| m.bytes_sent);
    let socket_trouble = sum(|m| m.send_errors + m.recv_errors + m.protocol.dropped_transmits);
    let losses: [(&str, Counter); 7] = [
        ("send errors", |m| m.send_errors),
        ("receive errors", |m| m.recv_errors),
        ("transmits dropped", |m| m.protocol.dropped_transmits),
        ("events dropped", |m| m.protocol.dropped_events),
        ("seal errors", |m| m.protocol.seal_errors),
        ("updates dropped (backlog full)", |m| {
            m.protocol.updates_dropped
        }),
        ("members dropped (table full)", |m| {
            m.protocol.members_dropped
        }),
    ];
    let mut losses: Vec<String> = losses
        .iter()
        .filter_map(|(name, f)| {
            let t = total(*f);
            (t > 0).then(|| format!("{t} {name}"))
        })
        .collect();
    // Loopback UDP hardly ever keeps a socket unwritable long enough to
    // overflow an endpoint's queue: say where it happened.
    let full_at = after
        .iter()
        .filter(|m| m.protocol.dropped_transmits > 0)
        .count();
    if full_at > 0 {
        losses.push(format!(
            "transmit queue full at {full_at} agents ({} at the seed)",
            after[0].protocol.dropped_transmits
        ));
    }
    let measured = Measured {
        n,
        join_p50,
        join_max,
        quiet_after,
        join_datagrams_per_agent: join_datagrams as f64 / n as f64,
        // Traffic is counted over the metrics window, CPU over the CPU
        // window; they differ by the time it takes to read the metrics.
        idle: window,
        cpu: cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a)),
        cpu_stat: stat0.zip(stat1).map(|(a, b)| b.saturating_sub(a)),
        datagrams_sent: scale(datagrams_sent, window, metrics_window),
        bytes_sent: scale(bytes_sent, window, metrics_window),
        suspicions_idle: sum(|m| m.protocol.suspicions_raised),
        suspicions_total: total(|m| m.protocol.suspicions_raised),
        probes_incomplete_total: total(|m| m.protocol.probes_incomplete),
        losses,
    };
    println!(
        "idle {:.1?}: CPU {} (stat cross-check {}), {:.1} datagrams and {:.0} bytes \
         sent per agent per s; suspicions while idle {}, suspects at the end {suspects}, \
         socket errors/drops while idle {socket_trouble}",
        window,
        fmt_opt(
            measured
                .cpu
                .map(|c| format!("{:.1} ms", c.as_secs_f64() * 1e3))
        ),
        fmt_opt(
            measured
                .cpu_stat
                .map(|c| format!("{:.0} ms", c.as_secs_f64() * 1e3))
        ),
        measured.datagrams_per_agent(),
        measured.bytes_per_agent(),
        measured.suspicions_idle,
    );
    println!(
        "whole run: {} suspicions raised, {} probes incomplete (late timers), \
         {declared_down} declared down; drops and errors: {}",
        measured.suspicions_total,
        measured.probes_incomplete_total,
        if measured.losses.is_empty() {
            "none".to_owned()
        } else {
            measured.losses.join(", ")
        }
    );
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("!!! {f}");
        }
        return Err(format!("{} correctness check(s) failed", failures.len()));
    }
    println!("check: every agent still sees {n} members, nobody went down");
    Ok(measured)
}

/// For every agent that does not see every other one: its index, and the
/// indices of those it misses.
fn missing_members(agents: &[Handle<Id>]) -> Vec<(usize, Vec<usize>)> {
    agents
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            let snapshot = a.snapshot();
            let seen: std::collections::HashSet<SocketAddr> =
                snapshot.members.iter().map(|m| m.id().addr()).collect();
            let missing: Vec<usize> = agents
                .iter()
                .enumerate()
                .filter(|&(j, b)| j != i && !seen.contains(&b.local_addr()))
                .map(|(j, _)| j)
                .collect();
            (!missing.is_empty()).then_some((i, missing))
        })
        .collect()
}

/// `count` observed over `observed`, scaled to `window`.
fn scale(count: u64, window: Duration, observed: Duration) -> u64 {
    if observed.is_zero() {
        return count;
    }
    (count as f64 * window.as_secs_f64() / observed.as_secs_f64()).round() as u64
}

async fn all_metrics(agents: &[Handle<Id>]) -> Result<Vec<AgentMetrics>, String> {
    let mut out = Vec::with_capacity(agents.len());
    for a in agents {
        out.push(
            a.metrics()
                .await
                .map_err(|e| format!("metrics of {}: {e}", a.local_addr()))?,
        );
    }
    Ok(out)
}

fn report(results: &[Measured]) {
    println!("\n{:=<104}", "");
    println!(
        "{:>5} | {:>9} | {:>9} | {:>8} | {:>15} | {:>10} | {:>15} | {:>13} | {:>5}",
        "N",
        "join p50",
        "join max",
        "quiet at",
        "CPU ms/agent/s",
        "CPU % core",
        "datagrams/ag/s",
        "bytes/agent/s",
        "susp."
    );
    for r in results {
        println!(
            "{:>5} | {:>8.2}s | {:>8.2}s | {:>8} | {:>15} | {:>10} | {:>15.2} | {:>13.0} | {:>5}",
            r.n,
            r.join_p50.as_secs_f64(),
            r.join_max.as_secs_f64(),
            fmt_opt(r.quiet_after.map(|q| format!("{:.1}s", q.as_secs_f64()))),
            fmt_opt(r.cpu_per_agent().map(|c| format!("{c:.4}"))),
            fmt_opt(r.cpu_percent().map(|c| format!("{c:.2}"))),
            r.datagrams_per_agent(),
            r.bytes_per_agent(),
            r.suspicions_idle,
        );
    }
    println!(
        "(join: from the first bind; quiet: no updates queued anywhere; CPU, datagrams, \
         bytes: idle window; susp.: suspicions raised while idle)"
    );
    for r in results {
        println!(
            "N = {}: {:.0} datagrams sent per agent during join and dissemination",
            r.n, r.join_datagrams_per_agent
        );
    }
    let (Some(base), Some(last)) = (results.first(), results.last()) else {
        return;
    };
    if results.len() < 2 {
        return;
    }
    println!(
        "\nratios, N = {} against the baseline N = {}:",
        last.n, base.n
    );
    println!(
        "  time until every agent sees every member: {:.2}x ({:.2} s vs {:.2} s)",
        ratio(last.join_max.as_secs_f64(), base.join_max.as_secs_f64()),
        last.join_max.as_secs_f64(),
        base.join_max.as_secs_f64()
    );
    match (last.cpu_per_agent(), base.cpu_per_agent()) {
        (Some(l), Some(b)) => println!(
            "  idle CPU per agent: {:.2}x ({l:.4} vs {b:.4} ms per agent per s)",
            ratio(l, b)
        ),
        _ => println!("  idle CPU per agent: n/a (no /proc/self/task/*/schedstat)"),
    }
    println!(
        "  datagrams per agent per s while idle: {:.2}x ({:.2} vs {:.2})",
        ratio(last.datagrams_per_agent(), base.datagrams_per_agent()),
        last.datagrams_per_agent(),
        base.datagrams_per_agent()
    );
    println!(
        "  bytes per agent per s while idle: {:.2}x ({:.0} vs {:.0})",
        ratio(last.bytes_per_agent(), base.bytes_per_agent()),
        last.bytes_per_agent(),
        base.bytes_per_agent()
    );
    println!(
        "total idle CPU at N = {}: {} of one core",
        last.n,
        fmt_opt(last.cpu_percent().map(|c| format!("{c:.2}%")))
    );
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

fn fmt_opt(s: Option<String>) -> String {
    s.unwrap_or_else(|| "n/a".to_owned())
}

/// The kernel's UDP counters for this network namespace (every process
/// in it, not only this one): datagrams it dropped on receive.
#[derive(Clone, Copy, Debug)]
struct UdpCounters {
    no_ports: u64,
    in_errors: u64,
    rcvbuf_errors: u64,
    sndbuf_errors: u64,
}

impl UdpCounters {
    fn since(&self, earlier: &Self) -> String {
        format!(
            "{} receive-buffer overflows, {} send-buffer errors, {} input errors, {} to closed ports",
            self.rcvbuf_errors.saturating_sub(earlier.rcvbuf_errors),
            self.sndbuf_errors.saturating_sub(earlier.sndbuf_errors),
            self.in_errors.saturating_sub(earlier.in_errors),
            self.no_ports.saturating_sub(earlier.no_ports),
        )
    }
}

/// Reads the `Udp:` header and value lines of `/proc/net/snmp`.
fn udp_counters() -> Option<UdpCounters> {
    let text = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let names = lines.next()?.split_whitespace();
    let values = lines.next()?.split_whitespace();
    let field = |wanted: &str| -> Option<u64> {
        names
            .clone()
            .zip(values.clone())
            .find(|(name, _)| *name == wanted)
            .and_then(|(_, v)| v.parse().ok())
    };
    Some(UdpCounters {
        no_ports: field("NoPorts")?,
        in_errors: field("InErrors")?,
        rcvbuf_errors: field("RcvbufErrors")?,
        sndbuf_errors: field("SndbufErrors")?,
    })
}

/// CPU time (user + system) of every live thread of this process, in
/// nanoseconds, from `/proc/self/task/*/schedstat`; `None` without /proc.
/// A thread that exits between two readings takes its time with it (the
/// runtime's threads all live through the window; the bench uses no
/// blocking pool).
fn cpu_schedstat() -> Option<Duration> {
    let mut nanos = 0u64;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(entry) = entry else { continue };
        // A thread that just exited has no file any more: skip it.
        let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        nanos += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(nanos))
}

/// The process's utime + stime from `/proc/self/stat` (every thread,
/// exited ones included), in clock ticks of 10 ms (`USER_HZ` is 100 on
/// Linux's common architectures): coarse, a cross-check.
fn cpu_stat() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces; fields resume after its ')'.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Fails early, with advice, if the open-file limit cannot hold `n`
/// sockets (plus the runtime's own descriptors). Unknown limits pass.
fn check_fd_limit(n: usize) -> Result<(), String> {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return Ok(());
    };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|s| s.parse::<usize>().ok());
    match soft {
        Some(soft) if soft < n + 64 => Err(format!(
            "the open-file limit is {soft}, {n} agents need about {}: raise it (ulimit -n {})",
            n + 64,
            (n + 64).next_power_of_two()
        )),
        Some(soft) => {
            println!("open-file limit: {soft} (enough for {n} sockets)");
            Ok(())
        }
        None => Ok(()),
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn env_sizes() -> Vec<usize> {
    let sizes: Vec<usize> = std::env::var("FOCA_BENCH_SIZES")
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|s| s.trim().parse().ok())
                .filter(|&n| n >= 2)
                .collect()
        })
        .unwrap_or_default();
    if sizes.is_empty() {
        vec![20, 200]
    } else {
        sizes
    }
}
