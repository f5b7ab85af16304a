//! An embassy agent joins a cluster of tokio agents over real UDP. The
//! embassy agent's stack (10.0.0.1) sits on a loopback hub whose uplink a
//! bridge task carries to a real UDP socket on 127.0.0.1: it unwraps the
//! IPv4 + UDP headers of what the stack sends and sends the payload from
//! the socket, and wraps what the socket receives for the stack. The
//! embassy agent's identity is the socket's address, which is where its
//! datagrams come from for the tokio agents. No root needed. Real time;
//! every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use foca_codec::{Envelope, PostcardCodec};
use foca_core::GenerationalId;
use foca_core::agent::{Handle, Link};
use foca_embassy::loopback::{Hub, Uplink, parse_udp, udp_packet};

const TOKIO_AGENTS: usize = 3;

async fn wait_tokio<L: Link<Id = Id> + Sync>(
    agent: &Handle<L>,
    what: &str,
    check: impl FnMut(&foca_core::Snapshot<Id>) -> bool,
) {
    let done = tokio::time::timeout(bound(20), agent.wait_for(check)).await;
    assert!(
        matches!(done, Ok(Ok(_))),
        "{what}: {} did not get there: {:?}",
        agent.local_addr(),
        agent.snapshot()
    );
}

/// Carries packets between the hub's uplink and `socket`; packets from
/// the socket go to `inner` (the embassy stack's address and port).
async fn bridge(uplink: Uplink, socket: Arc<tokio::net::UdpSocket>, inner: SocketAddrV4) {
    let mut buf = vec![0; 65536];
    loop {
        tokio::select! {
            packet = uplink.recv() => {
                if let Some((_, dst, payload)) = parse_udp(&packet) {
                    let _ = socket.send_to(payload, dst).await;
                }
            }
            received = socket.recv_from(&mut buf) => {
                if let Ok((len, SocketAddr::V4(from))) = received
                    && let Some(packet) = udp_packet(from, inner, &buf[..len])
                {
                    uplink.send(packet);
                }
            }
        }
    }
}

#[test]
fn an_embassy_agent_joins_tokio_agents_over_real_udp_and_leaves() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let envelope = || Envelope::insecure_plaintext(b"foca-embassy-tests");
        let mut tokio_agents = Vec::new();
        for _ in 0..TOKIO_AGENTS {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let id = GenerationalId::new(socket.local_addr().unwrap(), 1);
            let seeds: Vec<SocketAddr> = tokio_agents
                .iter()
                .take(1)
                .map(|h: &foca_tokio::Handle<Id>| h.local_addr())
                .collect();
            let agent = foca_tokio::Builder::new(id, config(), PostcardCodec::new(), envelope())
                .seeds(seeds)
                .spawn(socket)
                .unwrap();
            tokio_agents.push(agent);
        }
        let seed = tokio_agents[0].local_addr();

        // The bridge's real socket is the embassy agent's public address.
        let socket = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let public = socket.local_addr().unwrap();
        let embassy_id = GenerationalId::new(public, 1);
        let hub = Hub::new(64);
        let inner = SocketAddrV4::new(ip(1), public.port());
        tokio::spawn(bridge(hub.uplink(), socket, inner));

        // The embassy side, on its own executor thread; its handle comes back.
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let hub2 = Arc::clone(&hub);
        std::thread::spawn(move || {
            run(Duration::from_secs(3600), move |spawner| async move {
                let handle = agent(spawner, stack(spawner, &hub2, 1), embassy_id, &[seed]);
                handle_tx.send(handle).unwrap();
                core::future::pending::<()>().await;
            });
        });
        let embassy = handle_rx.recv_timeout(Duration::from_secs(10)).unwrap();

        let all: Vec<Id> = tokio_agents.iter().map(|a| a.identity()).collect();
        let mut want = all.clone();
        want.sort();
        wait_tokio(&embassy, "embassy joined", |s| ids(s) == want).await;
        for a in &tokio_agents {
            wait_tokio(a, "tokio sees embassy", |s| ids(s).contains(&embassy_id)).await;
        }

        embassy.leave(Duration::from_millis(300)).await.unwrap();
        for a in &tokio_agents {
            wait_tokio(a, "embassy left", |s| !ids(s).contains(&embassy_id)).await;
        }
        embassy.shutdown().await.unwrap();
        for a in &tokio_agents {
            a.shutdown().await.unwrap();
        }
        assert_eq!(hub.stats().overflowed, 0);
    });
}
