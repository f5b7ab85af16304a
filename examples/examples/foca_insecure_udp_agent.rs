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
//! Logs go to stderr through `tracing-subscriber`; `RUST_LOG` picks the
//! level (default `info`). Ctrl-C or SIGTERM leaves the cluster gracefully.
//!
//! The command line, the member-list file and the goodbye are shared with
//! the async-std agent (`async_std_agent`): see `foca_examples::udp_agent`.
//!
//! This file is in the public domain (CC0-1.0).

use std::process::ExitCode;

use foca_codec::PostcardCodec;
use foca_core::Config;
use foca_examples::udp_agent::{Args, init_logging, keep_file, leave_and_stop};
use foca_tokio::Builder;
use tracing::{error, info};

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
    let config = Config::new_lan(args.cluster_size);
    let agent = Builder::new(
        args.identity(),
        config,
        PostcardCodec::new(),
        args.envelope()?,
    )
    .seeds(args.announce.iter().map(String::as_str))
    .bind(args.bind)
    .await
    .map_err(|e| format!("cannot start on {}: {e}", args.bind))?;
    info!(identity = ?agent.identity(), bind = %agent.local_addr(), "running; Ctrl-C leaves");
    let writer = args
        .filename
        .clone()
        .map(|path| tokio::spawn(keep_file(agent.clone(), path)));

    shutdown_signal().await;
    leave_and_stop(&agent).await?;
    if let Some(w) = writer {
        let _ = w.await;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse_as("foca_insecure_udp_agent");
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
