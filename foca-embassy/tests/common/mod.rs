//! Test support: embassy-net stacks on a loopback [`Hub`], foca-embassy
//! agents on them, all on embassy-executor's std platform (one executor
//! thread per test; the task pools are shared by the tests of a binary,
//! so they are sized for every test of a binary at once).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use embassy_executor::{Executor, Spawner};
use embassy_net::{Ipv4Cidr, StackResources, StaticConfigV4};
use foca_codec::{Envelope, PostcardCodec};
pub use foca_core::Identity;
use foca_core::{Config, GenerationalId, Snapshot};
use foca_embassy::loopback::{Hub, Port};
use foca_embassy::{Builder, Handle, SocketBuffers};

pub type Id = GenerationalId<SocketAddr>;
pub type Agent = foca_embassy::Runner<'static, Id, PostcardCodec<Id>>;
pub type Buffers = SocketBuffers<8, 8192>;

/// Members a test cluster is tuned for.
pub const N: usize = 5;
/// The port every agent uses.
pub const PORT: u16 = 7000;

/// A fast config: 200 ms probes.
pub fn config() -> Config {
    let mut c = Config::new_lan(N);
    c.probe_period = Duration::from_millis(200);
    c.probe_rtt = Duration::from_millis(100);
    c
}

/// Four times what the protocol needs for `periods` probe periods and a
/// suspicion timeout, and at least 10 s (a slow, shared machine stalls).
pub fn bound(periods: u32) -> Duration {
    let c = config();
    ((c.probe_period * periods + c.suspicion_timeout(N)) * 4).max(Duration::from_secs(10))
}

pub fn ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, i)
}

pub fn id(i: u8) -> Id {
    GenerationalId::new(SocketAddr::from((ip(i), PORT)), 1)
}

pub fn ids(s: &Snapshot<Id>) -> Vec<Id> {
    let mut v: Vec<Id> = s.members.iter().map(|m| *m.id()).collect();
    v.sort();
    v
}

#[embassy_executor::task(pool_size = 16)]
async fn net_task(mut runner: embassy_net::Runner<'static, Port>) -> ! {
    runner.run().await
}

#[embassy_executor::task(pool_size = 16)]
async fn agent_task(runner: Agent) {
    runner.run().await;
}

#[embassy_executor::task(pool_size = 4)]
async fn main_task(body: Pin<Box<dyn Future<Output = ()>>>) {
    body.await;
}

/// A stack at 10.0.0.`i`/24 on `hub` (gateway 10.0.0.254: packets
/// elsewhere go to the hub's uplink), its runner spawned.
pub fn stack(spawner: Spawner, hub: &Arc<Hub>, i: u8) -> embassy_net::Stack<'static> {
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(ip(i), 24),
        gateway: Some(ip(254)),
        dns_servers: Default::default(),
    });
    let resources = Box::leak(Box::new(StackResources::<2>::new()));
    let (stack, runner) = embassy_net::new(hub.port(ip(i)), config, resources, u64::from(i));
    spawner.spawn(net_task(runner).unwrap());
    stack
}

/// An agent with identity `id` on `stack`, joining through `seeds`.
pub fn agent(
    spawner: Spawner,
    stack: embassy_net::Stack<'static>,
    id: Id,
    seeds: &[SocketAddr],
) -> Handle<Id> {
    let buffers = Box::leak(Box::new(Buffers::new()));
    let envelope = Envelope::insecure_plaintext(b"foca-embassy-tests");
    let (runner, handle) = Builder::new(id, config(), PostcardCodec::new(), envelope)
        .seeds(seeds.iter().copied())
        .rng_seed(seed_of(&id))
        .event_capacity(64)
        .build(stack, buffers)
        .unwrap();
    spawner.spawn(agent_task(runner).unwrap());
    handle
}

/// Runs `body` (made on the executor's thread) on a new embassy executor
/// thread; panics if it panics or takes longer than `limit`.
pub fn run<F, Fut>(limit: Duration, body: F)
where
    F: FnOnce(Spawner) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let executor = Box::leak(Box::new(Executor::new()));
        executor.run(move |spawner| {
            let fut = body(spawner);
            let body: Pin<Box<dyn Future<Output = ()>>> = Box::pin(async move {
                fut.await;
                done_tx.send(()).unwrap();
            });
            spawner.spawn(main_task(body).unwrap());
        });
    });
    match done_rx.recv_timeout(limit) {
        Ok(()) => {}
        // The executor thread panicked (the sender was dropped with it).
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("the test body panicked"),
        Err(e) => panic!("the test body did not finish within {limit:?}: {e}"),
    }
}

/// Waits (at most `limit`) until `check` holds on `agent`.
pub async fn wait_until(
    agent: &Handle<Id>,
    limit: Duration,
    what: &str,
    check: impl FnMut(&Snapshot<Id>) -> bool,
) {
    let limit_e = embassy_time::Duration::from_millis(limit.as_millis() as u64);
    let done = embassy_time::with_timeout(limit_e, agent.wait_for(check)).await;
    assert!(
        matches!(done, Ok(Ok(_))),
        "{what}: {} did not get there within {limit:?}: {:?}",
        agent.local_addr(),
        agent.snapshot()
    );
}

/// A seed per identity (its address's octets).
fn seed_of(id: &Id) -> u64 {
    match id.addr() {
        SocketAddr::V4(a) => u64::from(u32::from(*a.ip())),
        SocketAddr::V6(_) => 6,
    }
}
