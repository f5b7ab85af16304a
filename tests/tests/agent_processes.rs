//! The `foca_insecure_udp_agent` example as 5 separate processes on
//! 127.0.0.1 to 127.0.0.5: their `--filename` files converge to the same
//! member list, a SIGKILLed process disappears from the others' files, and
//! SIGTERM makes an agent leave and exit 0. Real UDP, real time (bounded).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AGENT: &str = "foca_insecure_udp_agent";

/// The agent binary: built by `cargo test --workspace` (examples are built
/// with the tests); when only this package is tested, it is built here into
/// a target directory of its own (the outer cargo holds the main one).
fn agent_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test binary>
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let built = profile_dir.join("examples").join(AGENT);
    if built.exists() {
        return built;
    }
    let target = profile_dir.parent().unwrap().join("agent-build");
    let status = Command::new(env!("CARGO"))
        .args(["build", "-p", "foca-examples", "--example", AGENT])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(status.success(), "building {AGENT} failed");
    target.join("debug").join("examples").join(AGENT)
}

struct Agents(Vec<Option<Child>>);

impl Drop for Agents {
    fn drop(&mut self) {
        for child in self.0.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read(path: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(text.lines().map(str::to_owned).collect())
}

/// Waits until every file in `files` holds exactly `expected`.
fn wait_files(files: &[PathBuf], expected: &[String], what: &str, limit: Duration) {
    let start = Instant::now();
    loop {
        let contents: Vec<_> = files.iter().map(|f| read(f)).collect();
        if contents.iter().all(|c| c.as_deref() == Some(expected)) {
            eprintln!("{what}: {:.1} s", start.elapsed().as_secs_f64());
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{what}: files did not converge to {expected:?} within {limit:?}: {contents:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn five_agent_processes_converge_and_see_a_kill() {
    let binary = agent_binary();
    let dir = std::env::temp_dir().join(format!("foca-agents-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A port unlikely to clash with another run of this test.
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let addrs: Vec<String> = (1..=5).map(|i| format!("127.0.0.{i}:{port}")).collect();
    let files: Vec<PathBuf> = (1..=5)
        .map(|i| dir.join(format!("members-{i}.txt")))
        .collect();

    let mut agents = Agents(Vec::new());
    for (i, addr) in addrs.iter().enumerate() {
        let mut cmd = Command::new(&binary);
        cmd.arg(addr)
            .args(["-f", files[i].to_str().unwrap()])
            .args(["--cluster-size", "5"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if i > 0 {
            cmd.args(["-a", &addrs[0]]);
        }
        agents.0.push(Some(cmd.spawn().unwrap()));
    }

    let mut expected = addrs.clone();
    expected.sort();
    let limit = Duration::from_secs(60);
    wait_files(&files, &expected, "5 processes converged", limit);

    // SIGKILL the fourth: no goodbye, so the others must detect it.
    let mut victim = agents.0[3].take().unwrap();
    victim.kill().unwrap();
    victim.wait().unwrap();
    expected.retain(|a| *a != addrs[3]);
    let survivors: Vec<PathBuf> = files
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, f)| f.clone())
        .collect();
    wait_files(&survivors, &expected, "SIGKILLed process gone", limit);

    // SIGTERM the fifth: it leaves gracefully and exits 0.
    let mut leaver = agents.0[4].take().unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &leaver.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(s) = leaver.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status after SIGTERM: {exit}");
    expected.retain(|a| *a != addrs[4]);
    wait_files(&survivors[..3], &expected, "SIGTERMed process gone", limit);
    drop(agents);
    let _ = std::fs::remove_dir_all(&dir);
}
