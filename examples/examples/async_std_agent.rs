//! A cluster member over UDP, one per process, on async-std (the
//! `foca-async-std` driver): the same command line as
//! `foca_insecure_udp_agent`, which runs on tokio, and agents of both kinds
//! form one cluster.
//!
//! ```text
//! # terminal 1
//! cargo run -p foca-examples --example async_std_agent -- 127.0.0.1:8000
//! # terminal 2..n (either example)
//! cargo run -p foca-examples --example async_std_agent -- 127.0.0.1:8001 -a 127.0.0.1:8000 -f /tmp/members.txt
//! ```
//!
//! Datagrams are only checksummed by default: anyone who can reach the port
//! can take part. `--key` seals them with XChaCha20-Poly1305 (every member
//! needs the same key), `--cluster` keeps separate clusters on one network
//! apart.
//!
//! Logs go to stderr through `tracing-subscriber`; `RUST_LOG` picks the
//! level (default `info`). Ctrl-C or SIGTERM leaves the cluster gracefully.
//! The agent's task is spawned with `async_std::task::spawn`; under smol,
//! `smol::spawn(task).detach()` is the one line to change.
//!
//! This file is in the public domain (CC0-1.0).

use std::process::ExitCode;

use async_signal::{Signal, Signals};
use foca_async_std::Builder;
use foca_codec::PostcardCodec;
use foca_core::Config;
use foca_examples::udp_agent::{Args, init_logging, keep_file, leave_and_stop};
use futures_lite::StreamExt;
use tracing::{error, info, warn};

/// Waits for Ctrl-C (or SIGTERM, on Unix).
async fn shutdown_signal() {
    #[cfg(unix)]
    let signals = [Signal::Int, Signal::Term];
    #[cfg(not(unix))]
    let signals = [Signal::Int];
    match Signals::new(signals) {
        Ok(mut signals) => {
            let _ = signals.next().await;
        }
        Err(e) => {
            warn!(error = %e, "cannot listen for signals; running until killed");
            futures_lite::future::pending::<()>().await;
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let config = Config::new_lan(args.cluster_size);
    let agent = Builder::new(
        args.identity(),
        config,
        PostcardCodec::new(),
        args.envelope()?,
    )
    .seeds(args.announce.iter().map(String::as_str))
    .bind(args.bind, |task| drop(async_std::task::spawn(task)))
    .await
    .map_err(|e| format!("cannot start on {}: {e}", args.bind))?;
    info!(identity = ?agent.identity(), bind = %agent.local_addr(), "running; Ctrl-C leaves");
    let writer = args
        .filename
        .clone()
        .map(|path| async_std::task::spawn(keep_file(agent.clone(), path)));

    shutdown_signal().await;
    leave_and_stop(&agent).await?;
    if let Some(w) = writer {
        w.await;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse_as("async_std_agent");
    init_logging();
    match async_std::task::block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}
