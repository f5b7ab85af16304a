//! foca-embassy agents on embassy-net stacks joined by the in-process
//! loopback hub, under embassy-executor's std platform: they form a
//! cluster, detect a member that stopped without a word, and see one
//! leave; once on a clean network and once with 10% loss. Real time;
//! every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use foca_core::{ConnectionState, Event, Notification};
use foca_embassy::loopback::Hub;

/// `N` agents (1 is the seed); all see each other; 5 stops without a
/// word, then 4 leaves: the others see both.
fn crash_and_leave(loss_per_mille: u32) {
    run(bound(60) * 3, move |spawner| async move {
        let hub = Hub::new(64);
        hub.set_loss(loss_per_mille, 7);
        let n = N as u8;
        let seed = [id(1).addr()];
        let agents: Vec<_> = (1..=n)
            .map(|i| agent(spawner, stack(spawner, &hub, i), id(i), &seed))
            .collect();
        let mut events = agents[0].subscribe();
        for (i, a) in agents.iter().enumerate() {
            let others: Vec<_> = (1..=n).filter(|&j| j != i as u8 + 1).map(id).collect();
            wait_until(a, bound(20), "join", |s| ids(s) == others).await;
        }

        // 5 stops: no leave, no word.
        agents[4].shutdown().await.unwrap();
        assert!(agents[4].is_stopped());
        let rest: Vec<_> = (1..=3).map(id).collect();
        for (i, a) in agents[..4].iter().enumerate() {
            let mut want: Vec<_> = (1..=4).filter(|&j| j != i as u8 + 1).map(id).collect();
            want.sort();
            wait_until(a, bound(10), "crash detected", |s| ids(s) == want).await;
        }

        // 4 leaves.
        agents[3].leave(Duration::from_millis(300)).await.unwrap();
        for (i, a) in agents[..3].iter().enumerate() {
            let want: Vec<_> = rest
                .iter()
                .copied()
                .filter(|m| *m != id(i as u8 + 1))
                .collect();
            wait_until(a, bound(10), "leave seen", |s| ids(s) == want).await;
        }
        assert_eq!(agents[3].snapshot().state, ConnectionState::Left);

        // Member 1 was told, in order: 2..5 up (in some order), 5 down, 4 left.
        let mut seen = Vec::new();
        while let Some(Ok(Event::Membership(n))) = events.try_recv() {
            seen.push(n);
        }
        assert!(seen.contains(&Notification::MemberDown(id(5))), "{seen:?}");
        assert!(seen.contains(&Notification::MemberLeft(id(4))), "{seen:?}");
        let metrics = agents[0].metrics().await.unwrap();
        assert!(metrics.datagrams_received > 0 && metrics.datagrams_sent > 0);
        for a in &agents[..4] {
            a.shutdown().await.unwrap();
        }
        let stats = hub.stats();
        assert!(stats.delivered > 0);
        assert_eq!(stats.overflowed, 0, "{stats:?}");
        if loss_per_mille > 0 {
            assert!(stats.lost > 0, "{stats:?}");
        }
    });
}

#[test]
fn a_cluster_forms_detects_a_crash_and_sees_a_leave() {
    crash_and_leave(0);
}

#[test]
fn the_same_with_ten_percent_loss() {
    crash_and_leave(100);
}

/// Dropping every handle stops the agent; a stopped agent answers
/// `Stopped`, its subscriptions end, and shutting it down again is `Ok`.
#[test]
fn dropping_the_handles_stops_the_agent() {
    run(Duration::from_secs(20), |spawner| async move {
        let hub = Hub::new(16);
        let a = agent(spawner, stack(spawner, &hub, 1), id(1), &[]);
        let b = agent(spawner, stack(spawner, &hub, 2), id(2), &[id(1).addr()]);
        wait_until(&a, bound(20), "join", |s| ids(s) == [id(2)]).await;
        let mut watch = b.watch();
        let mut events = b.subscribe();
        let probe = b.clone();
        drop(b);
        assert!(!probe.is_stopped());
        probe.shutdown().await.unwrap();
        assert!(probe.is_stopped());
        assert!(!watch.changed().await);
        assert!(events.recv().await.is_none());
        assert!(matches!(
            probe.add_broadcast(vec![1]).await,
            Err(foca_embassy::AgentError::Stopped)
        ));
        probe.shutdown().await.unwrap();
        // `a` stops when its only handle goes.
        let watcher = a.clone();
        drop(a);
        assert!(!watcher.is_stopped());
        drop(watcher);
    });
}
