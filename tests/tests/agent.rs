//! The sans-IO agent every driver runs, driven by hand: seeds and their
//! host-name lookups, requests and their replies (a leave that lingers, a
//! rejoin without seeds), the counters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foca_codec::{Envelope, PostcardCodec};
use foca_core::agent::Reply;
use foca_core::{
    Agent, AgentError, Command, Config, Endpoint, Foca, GenerationalId, NoCustomBroadcast, Request,
    Seed,
};
use rand::SeedableRng;
use rand::rngs::Xoshiro128PlusPlus;

type Id = GenerationalId<SocketAddr>;
type TestAgent = Agent<Id, PostcardCodec<Id>, Xoshiro128PlusPlus, NoCustomBroadcast, Envelope>;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn agent(port: u16, seeds: Vec<Seed>) -> TestAgent {
    let rng = Xoshiro128PlusPlus::seed_from_u64(u64::from(port));
    let id = GenerationalId::new(addr(port), 1);
    let foca = Foca::new(id, Config::new_lan(4), rng, PostcardCodec::new()).unwrap();
    let endpoint =
        Endpoint::new(foca, Envelope::insecure_plaintext(b"agent"), Duration::ZERO).unwrap();
    Agent::new(endpoint, seeds)
}

/// Where a reply keeps what it was given.
type Kept<X> = Arc<Mutex<Option<Result<X, AgentError>>>>;

/// A reply that keeps what it was given.
fn reply<X: Send + 'static>() -> (Reply<X>, Kept<X>) {
    let slot = Arc::new(Mutex::new(None));
    let kept = Arc::clone(&slot);
    (Box::new(move |r| *kept.lock().unwrap() = Some(r)), slot)
}

/// Moves every queued datagram between the agents (at `now`).
fn shuttle(agents: &mut [(u16, &mut TestAgent)], now: Duration) {
    loop {
        let mut moved = false;
        for i in 0..agents.len() {
            let from = addr(agents[i].0);
            while let Some(t) = agents[i].1.poll_transmit() {
                moved = true;
                let data = t.data.clone();
                agents[i].1.sent(t.data, Some(data.len()));
                if let Some((_, to)) = agents.iter_mut().find(|(p, _)| addr(*p) == t.to) {
                    to.handle_datagram(now, from, &mut data.clone());
                }
            }
        }
        if !moved {
            return;
        }
    }
}

#[test]
fn seeds_requests_and_counters() {
    let mut a = agent(7000, vec![]);
    let seeds = vec![Seed::Addr(addr(7000)), Seed::from("seed.invalid:7000")];
    let mut b = agent(7001, seeds);
    let t0 = Duration::ZERO;
    b.join(t0).unwrap();
    // The address seed is announced to at once; the host name is due for
    // a lookup.
    assert_eq!(b.next_wake(), Some(t0));
    let hosts = b.handle_timeouts(t0).unwrap();
    assert_eq!(hosts, vec![String::from("seed.invalid:7000")]);
    shuttle(&mut [(7000, &mut a), (7001, &mut b)], t0);
    assert_eq!(a.endpoint().foca().num_members(), 1);
    assert_eq!(b.endpoint().foca().num_members(), 1);
    // The lookup failed: counted; connected, so no further lookup.
    b.looked_up(t0, vec![], 1);
    let m = b.metrics();
    assert_eq!(m.dns_failures, 1);
    assert!(m.datagrams_received >= 1 && m.datagrams_sent >= 1, "{m:?}");
    assert_eq!(m.protocol.datagrams_in, m.datagrams_received);
    assert!(b.handle_timeouts(t0 + Duration::from_secs(60)).is_none());

    // A rejoin needs seeds.
    let (r, got) = reply();
    assert!(a.handle_request(t0, Request::Rejoin(r)).is_none());
    assert!(matches!(
        *got.lock().unwrap(),
        Some(Err(AgentError::NoSeeds))
    ));

    // A leave answers once its linger is over.
    let t1 = Duration::from_secs(61);
    let (r, left) = reply();
    assert!(
        b.handle_request(t1, Request::Leave(Duration::from_secs(2), r))
            .is_none()
    );
    assert!(left.lock().unwrap().is_none());
    assert_eq!(
        b.next_wake().map(|w| w <= t1 + Duration::from_secs(2)),
        Some(true)
    );
    shuttle(&mut [(7000, &mut a), (7001, &mut b)], t1);
    assert_eq!(a.endpoint().foca().num_members(), 0, "the leave reached a");
    let _ = b.handle_timeouts(t1 + Duration::from_secs(1));
    assert!(
        left.lock().unwrap().is_none(),
        "answered before the linger ended"
    );
    let _ = b.handle_timeouts(t1 + Duration::from_secs(2));
    assert!(matches!(*left.lock().unwrap(), Some(Ok(()))));

    // A core command as it is; and shutting down hands its reply back.
    let (r, cmd) = reply();
    let join = Command::Announce(GenerationalId::seed(addr(7000)));
    assert!(b.handle_request(t1, Request::Command(join, r)).is_none());
    assert!(matches!(*cmd.lock().unwrap(), Some(Ok(true))));
    let (r, stopped) = reply();
    let done = b
        .handle_request(t1, Request::Shutdown(r))
        .expect("handed back");
    assert!(stopped.lock().unwrap().is_none());
    done(Ok(()));
    assert!(matches!(*stopped.lock().unwrap(), Some(Ok(()))));
}
