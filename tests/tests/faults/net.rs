//! The harness of the fault tests: a virtual network of network namespaces
//! on this machine, one `foca_insecure_udp_agent` process per host.
//!
//! Layout, for a test numbered `t` in process `pid` (`tag` = `fcf<pid>-<t>`):
//! - namespace `<tag>b` holds two bridges, `br0` (the network) and `br1`
//!   (the far side of a partition), and one veth end `p<i>` per host;
//! - namespace `<tag>h<i>` is host `i`: the other veth end, `eth0`, with
//!   address `10.231.7.<10 + i>/24`, and `lo`.
//!
//! Every veth is created from inside the bridge namespace straight into the
//! host namespace, so no interface ever exists in the machine's own
//! namespace, and interface names are local to their namespace (`p<i>`,
//! `eth0`, `br0`: well under 15 characters). Nothing is routed to
//! 10.231.7.0/24 from outside: agents, the rogue and the victim only ever
//! address hosts on this private bridge.
//!
//! Teardown is a `Drop` (so it also runs when a test panics): every process
//! started is killed and waited for, every process still inside one of
//! these namespaces is killed by its id, and the namespaces are deleted. A
//! run that was interrupted (SIGKILL, Ctrl-C) leaves namespaces behind:
//! [`clean_leftovers`] deletes those whose creating process is gone.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Every name this harness makes starts with this.
pub const PREFIX: &str = "fcf";
/// The agents' UDP port.
pub const PORT: u16 = 7946;
const AGENT: &str = "foca_insecure_udp_agent";

/// Runs a command, returning its output (never panics).
fn run(program: &str, args: &[&str]) -> std::io::Result<Output> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
}

/// Runs `ip` with `args`; panics with its stderr if it fails.
pub fn ip(args: &[&str]) {
    let out = run("ip", args).unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Why these tests cannot run on this machine, or `None` if they can.
pub fn unavailable() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    if euid != "0" {
        return Some(format!(
            "not root (effective uid {euid}): network namespaces need root"
        ));
    }
    let probe = format!("{PREFIX}{}-probe", std::process::id());
    match run("ip", &["netns", "add", &probe]) {
        Err(e) => Some(format!("cannot run `ip` (iproute2): {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "`ip netns add` fails here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => {
            let _ = run("ip", &["netns", "del", &probe]);
            None
        }
    }
}

/// Whether `nft` (nftables) is installed.
pub fn have_nft() -> bool {
    run("nft", &["--version"]).is_ok_and(|o| o.status.success())
}

/// Deletes namespaces (and kills the processes in them) left by a run of
/// these tests that was interrupted: names `fcf<pid>-…` whose `<pid>` is
/// not this process and no longer runs.
pub fn clean_leftovers() {
    let Ok(out) = run("ip", &["netns", "list"]) else {
        return;
    };
    let me = std::process::id().to_string();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some((pid, _)) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('-'))
        else {
            continue;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        if Path::new("/proc").join(pid).exists() {
            // Another run still going: not ours to touch.
            continue;
        }
        eprintln!("removing namespace {name}, left by an interrupted run (pid {pid})");
        kill_all_in(name);
        let _ = run("ip", &["netns", "del", name]);
    }
}

/// SIGKILLs every process inside namespace `ns` (by id) and waits briefly
/// for them to go.
fn kill_all_in(ns: &str) {
    for _ in 0..50 {
        let Ok(out) = run("ip", &["netns", "pids", ns]) else {
            return;
        };
        let pids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if pids.is_empty() {
            return;
        }
        for pid in &pids {
            let _ = run("kill", &["-KILL", pid]);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The agent binary, built once per test process with
/// `cargo build -p foca-examples --example foca_insecure_udp_agent` into a
/// target directory of its own (`target/agent-build`, shared with
/// `agent_processes.rs`; the outer cargo holds the main one). Always asked
/// of cargo, so it is never stale; a no-op when up to date.
pub fn agent_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/<test binary>
        let target = exe
            .parent()
            .and_then(Path::parent)
            .and_then(Path::parent)
            .unwrap()
            .join("agent-build");
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "foca-examples", "--example", AGENT])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "building {AGENT} failed");
        target.join("debug").join("examples").join(AGENT)
    })
}

/// The rogue helper (`src/bin/foca_fault_rogue.rs`), built by cargo with
/// this test.
pub fn rogue_binary() -> &'static str {
    env!("CARGO_BIN_EXE_foca_fault_rogue")
}

/// One running agent process.
struct Agent {
    child: Child,
    /// Its stdout (broadcasts sent and received).
    out: PathBuf,
}

/// The virtual network of one test, and the agents on it.
pub struct Net {
    tag: String,
    bridge: String,
    hosts: Vec<String>,
    dir: PathBuf,
    agents: Vec<Option<Agent>>,
    /// Starts per host, to name each process's output files.
    starts: Vec<usize>,
    /// Other processes started in the namespaces (rogue, victim).
    helpers: Vec<Option<Child>>,
}

impl Net {
    /// A bridge and `hosts` hosts on it, no agent running yet.
    pub fn new(hosts: usize) -> Self {
        static TESTS: AtomicUsize = AtomicUsize::new(0);
        let n = TESTS.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{PREFIX}{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&tag);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let net = Self {
            bridge: format!("{tag}b"),
            hosts: (0..hosts).map(|i| format!("{tag}h{i}")).collect(),
            tag,
            dir,
            agents: (0..hosts).map(|_| None).collect(),
            starts: vec![0; hosts],
            helpers: Vec::new(),
        };
        // From here on, a failure tears down what was made (Drop).
        let b = net.bridge.clone();
        ip(&["netns", "add", &b]);
        ip(&["-n", &b, "link", "set", "lo", "up"]);
        for br in ["br0", "br1"] {
            ip(&["-n", &b, "link", "add", br, "type", "bridge"]);
            ip(&["-n", &b, "link", "set", br, "up"]);
        }
        for i in 0..hosts {
            let h = net.hosts[i].clone();
            let port = format!("p{i}");
            let addr = format!("{}/24", Self::ip_of(i));
            ip(&["netns", "add", &h]);
            ip(&[
                "-n", &b, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &h,
            ]);
            ip(&["-n", &b, "link", "set", &port, "master", "br0", "up"]);
            ip(&["-n", &h, "addr", "add", &addr, "dev", "eth0"]);
            ip(&["-n", &h, "link", "set", "eth0", "up"]);
            ip(&["-n", &h, "link", "set", "lo", "up"]);
        }
        net
    }

    /// Host `i`'s IP address.
    pub fn ip_of(i: usize) -> String {
        format!("10.231.7.{}", 10 + i)
    }

    /// Host `i`'s agent address, as its member file lists it.
    pub fn addr(i: usize) -> String {
        format!("{}:{PORT}", Self::ip_of(i))
    }

    /// The sorted member-file lines that list exactly `hosts`.
    pub fn view_of(hosts: &[usize]) -> Vec<String> {
        // Sorted as the agent sorts: as socket addresses.
        let mut addrs: Vec<std::net::SocketAddr> = hosts
            .iter()
            .map(|&i| Self::addr(i).parse().unwrap())
            .collect();
        addrs.sort_unstable();
        addrs.iter().map(ToString::to_string).collect()
    }

    fn member_file(&self, i: usize) -> PathBuf {
        self.dir.join(format!("members-{i}.txt"))
    }

    /// Starts the agent of host `i`, announcing to `seed` (a host), with
    /// `extra` arguments. Its member file starts empty.
    pub fn start(&mut self, i: usize, seed: Option<usize>, extra: &[&str]) {
        assert!(self.agents[i].is_none(), "host {i} already runs an agent");
        let file = self.member_file(i);
        let _ = std::fs::remove_file(&file);
        self.starts[i] += 1;
        let base = self.dir.join(format!("agent-{i}-{}", self.starts[i]));
        let out = base.with_extension("out");
        let err = base.with_extension("err");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.hosts[i]])
            .arg(agent_binary())
            .arg(Self::addr(i))
            .arg("-f")
            .arg(&file)
            .args(["--cluster-size", &super::N.to_string(), "--broadcasts"])
            .args(extra)
            // FOCA_FAULTS_LOG sets the agents' RUST_LOG (default info).
            .env(
                "RUST_LOG",
                std::env::var("FOCA_FAULTS_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap());
        if let Some(s) = seed {
            cmd.args(["-a", &Self::addr(s)]);
        }
        // `ip netns exec` execs the agent: the child is the agent itself.
        let child = cmd.spawn().unwrap();
        self.agents[i] = Some(Agent { child, out });
    }

    /// Whether host `i`'s agent process is still running.
    pub fn running(&mut self, i: usize) -> bool {
        self.agents[i]
            .as_mut()
            .is_some_and(|a| a.child.try_wait().unwrap().is_none())
    }

    /// SIGKILLs host `i`'s agent: no goodbye.
    pub fn kill9(&mut self, i: usize) {
        let mut agent = self.agents[i].take().expect("no agent to kill");
        agent.child.kill().unwrap();
        agent.child.wait().unwrap();
    }

    /// SIGTERMs host `i`'s agent (it leaves the cluster) and waits for it
    /// to exit 0, within `limit`.
    pub fn terminate(&mut self, i: usize, limit: Duration) {
        let mut agent = self.agents[i].take().expect("no agent to stop");
        let pid = agent.child.id().to_string();
        let ok = run("kill", &["-TERM", &pid]).is_ok_and(|o| o.status.success());
        assert!(ok, "kill -TERM {pid} failed");
        let start = Instant::now();
        let status = loop {
            if let Some(s) = agent.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > limit {
                let _ = agent.child.kill();
                let _ = agent.child.wait();
                panic!("host {i}'s agent did not exit within {limit:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "host {i}'s agent exited with {status}");
    }

    /// Host `i`'s member file: sorted addresses, `None` if not written yet.
    pub fn view(&self, i: usize) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(self.member_file(i)).ok()?;
        Some(text.lines().map(str::to_owned).collect())
    }

    /// Whether host `i` is missing from the view of every one of
    /// `observers` (each has written one).
    pub fn listed_by_none(&self, observers: &[usize], i: usize) -> bool {
        let gone = Self::addr(i);
        observers
            .iter()
            .all(|&o| self.view(o).is_some_and(|v| !v.contains(&gone)))
    }

    /// Waits until every host in `observers` lists exactly `expected`;
    /// returns how long that took. Panics after `limit`, with the views.
    pub fn wait_views(
        &self,
        observers: &[usize],
        expected: &[usize],
        what: &str,
        limit: Duration,
    ) -> Duration {
        let want = Self::view_of(expected);
        let start = Instant::now();
        loop {
            let views: Vec<_> = observers.iter().map(|&o| self.view(o)).collect();
            if views.iter().all(|v| v.as_deref() == Some(&want[..])) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{what}: hosts {observers:?} did not all list exactly {want:?} within \
                 {limit:?}; their views: {views:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn out_lines(&self, i: usize) -> Vec<String> {
        let Some(agent) = &self.agents[i] else {
            return Vec::new();
        };
        std::fs::read_to_string(&agent.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Has host `i`'s agent send a custom broadcast (SIGUSR1); returns its
    /// text once the agent says it sent it.
    pub fn broadcast(&self, i: usize) -> String {
        let sent = |net: &Self| {
            net.out_lines(i)
                .iter()
                .filter_map(|l| l.strip_prefix("broadcast sent "))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let before = sent(self).len();
        let pid = self.agents[i].as_ref().expect("no agent").child.id();
        let ok = run("kill", &["-USR1", &pid.to_string()]).is_ok_and(|o| o.status.success());
        assert!(ok, "kill -USR1 {pid} failed");
        let start = Instant::now();
        loop {
            let now = sent(self);
            if now.len() > before {
                return now[before].clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "host {i}'s agent did not report a broadcast sent"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The broadcasts host `i`'s current agent process received.
    pub fn received(&self, i: usize) -> BTreeSet<String> {
        self.out_lines(i)
            .iter()
            .filter_map(|l| l.strip_prefix("broadcast received "))
            .filter_map(|l| l.split(" from ").next())
            .map(str::to_owned)
            .collect()
    }

    /// Runs `args` inside host `i`'s namespace and waits for it to succeed.
    pub fn exec(&self, i: usize, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.hosts[i]];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// Runs `args` inside host `i`'s namespace; returns its stdout.
    pub fn exec_output(&self, i: usize, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", &self.hosts[i]];
        all.extend_from_slice(args);
        let out = run("ip", &all).unwrap();
        assert!(
            out.status.success(),
            "{all:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Applies an nftables ruleset inside host `i`'s namespace.
    pub fn nft(&self, i: usize, ruleset: &str) {
        let path = self.dir.join(format!("rules-{i}.nft"));
        std::fs::write(&path, ruleset).unwrap();
        self.exec(i, &["nft", "-f", path.to_str().unwrap()]);
    }

    /// Moves host `i`'s bridge port to bridge `br` (`br0`: the network;
    /// `br1`: the far side of a partition).
    pub fn attach(&self, i: usize, br: &str) {
        ip(&[
            "-n",
            &self.bridge,
            "link",
            "set",
            &format!("p{i}"),
            "master",
            br,
        ]);
    }

    /// Starts the rogue helper inside host `i`'s namespace with `args`.
    /// Returns its index for [`Net::finish_helper`].
    pub fn spawn_helper(&mut self, i: usize, args: &[String]) -> usize {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.hosts[i]])
            .arg(rogue_binary())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.helpers.push(Some(child));
        self.helpers.len() - 1
    }

    /// Waits (within `limit`) for helper `h` to finish; returns its
    /// summary line. Panics if it failed.
    pub fn finish_helper(&mut self, h: usize, limit: Duration) -> String {
        let start = Instant::now();
        let child = self.helpers[h].as_mut().expect("helper already finished");
        while child.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < limit,
                "helper did not finish within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let child = self.helpers[h].take().expect("helper already finished");
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "helper failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for agent in self.agents.iter_mut().flatten() {
            let _ = agent.child.kill();
            let _ = agent.child.wait();
        }
        for child in self.helpers.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.hosts.iter().chain([&self.bridge]) {
            kill_all_in(ns);
            let _ = run("ip", &["netns", "del", ns]);
        }
        if std::thread::panicking() {
            eprintln!(
                "{}: files kept for a look in {}",
                self.tag,
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
