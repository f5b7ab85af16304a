//! foca-embassy on a Cortex-M4F (QEMU `mps2-an386`): four agents, each on
//! its own embassy-net stack, the stacks joined by foca-embassy's in-memory
//! `loopback` hub, all on embassy's Cortex-M thread executor with a
//! SysTick time driver. It prints membership events over semihosting,
//! stops one member without a word, waits until the others detect it, and
//! exits with status 0 if the cluster formed and the stop was detected,
//! 1 otherwise. It also prints the heap in use per member and the cost of
//! one known member in the core's member table.
#![no_std]
#![no_main]
// Unsafe only where the board demands it, each site allowed by name:
// the heap (board.rs) and the LAN9118 registers (lan9118.rs).
#![deny(unsafe_code)]

extern crate alloc;

mod board;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddr};
use core::time::Duration;

use cortex_m as _;
use cortex_m_semihosting::hprintln;
use embassy_executor::Spawner;
use embassy_net::{Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_time::with_timeout;
use foca_codec::{Envelope, PostcardCodec};
use foca_core::{Config, Event, GenerationalId, Identity, Snapshot};
use foca_embassy::loopback::{Hub, Port};
use foca_embassy::{Builder, Handle, SocketBuffers};

type Id = GenerationalId<SocketAddr>;
type Agent = foca_embassy::Runner<'static, Id, PostcardCodec<Id>>;
/// 4 datagrams (of up to 1 KiB here) each way: 2 × (4 × 16 + 4096) = 8,320 bytes.
type Buffers = SocketBuffers<4, 4096>;

const MEMBERS: usize = 4;
const PORT: u16 = 7000;
// ---- tasks ----

#[embassy_executor::task(pool_size = MEMBERS)]
async fn net_task(mut runner: embassy_net::Runner<'static, Port>) -> ! {
    runner.run().await
}

#[embassy_executor::task(pool_size = MEMBERS)]
async fn agent_task(runner: Agent) {
    runner.run().await;
}

fn config() -> Config {
    let mut c = Config::new_lan(MEMBERS);
    c.probe_period = Duration::from_millis(500);
    c.probe_rtt = Duration::from_millis(200);
    c.max_packet_size = 1024;
    c
}

fn id(i: u8) -> Id {
    GenerationalId::new(SocketAddr::from((Ipv4Addr::new(10, 0, 0, i), PORT)), 1)
}

fn ids(s: &Snapshot<Id>) -> Vec<Id> {
    let mut v: Vec<Id> = s.members.iter().map(|m| *m.id()).collect();
    v.sort();
    v
}

/// Waits up to `secs` for `check` on `agent`.
async fn wait(agent: &Handle<Id>, secs: u64, check: impl FnMut(&Snapshot<Id>) -> bool) -> bool {
    let limit = embassy_time::Duration::from_secs(secs);
    matches!(with_timeout(limit, agent.wait_for(check)).await, Ok(Ok(_)))
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    board::init();
    hprintln!("foca-embassy firmware: {} members on mps2-an386", MEMBERS);
    table_cost();

    let heap_start = board::HEAP.used();
    let hub = Hub::new(16);
    let mut agents = Vec::new();
    for i in 1..=MEMBERS as u8 {
        let addr = Ipv4Addr::new(10, 0, 0, i);
        let net = embassy_net::Config::ipv4_static(StaticConfigV4 {
            address: Ipv4Cidr::new(addr, 24),
            gateway: None,
            dns_servers: Default::default(),
        });
        let resources = Box::leak(Box::new(StackResources::<1>::new()));
        let (stack, runner) = embassy_net::new(hub.port(addr), net, resources, u64::from(i));
        spawner.spawn(net_task(runner).unwrap());
        let buffers = Box::leak(Box::new(Buffers::new()));
        let envelope = Envelope::insecure_plaintext(b"foca-qemu");
        let (runner, handle) = Builder::new(id(i), config(), PostcardCodec::new(), envelope)
            .seeds([id(1).addr()])
            .rng_seed(u64::from(i) * 7919)
            .event_capacity(16)
            .build(stack, buffers)
            .unwrap();
        spawner.spawn(agent_task(runner).unwrap());
        agents.push(handle);
    }
    let fixed = board::HEAP.used() - heap_start;
    let mut events = agents[0].subscribe();

    let all: Vec<Id> = (1..=MEMBERS as u8).map(id).collect();
    let mut formed = true;
    for (i, a) in agents.iter().enumerate() {
        let others: Vec<Id> = all.iter().copied().filter(|m| *m != all[i]).collect();
        formed &= wait(a, 30, |s| ids(s) == others).await;
    }
    print_events(&mut events);
    hprintln!("cluster formed: {}", formed);
    let used = board::HEAP.used() - heap_start;
    hprintln!(
        "heap in use: {} B for {} members ({} B each): {} B at start (socket buffers {} B, stack resources {} B each), {} B each once formed",
        used,
        MEMBERS,
        used / MEMBERS,
        fixed,
        core::mem::size_of::<Buffers>(),
        core::mem::size_of::<StackResources<1>>(),
        (used - fixed) / MEMBERS
    );
    if !formed {
        board::exit(false);
    }

    // The last member stops without a word.
    let stopped = agents.pop().map(|a| (a.identity(), a));
    let Some((gone, handle)) = stopped else {
        board::exit(false)
    };
    let t0 = embassy_time::Instant::now();
    hprintln!("stopping {:?}", gone);
    let _ = handle.shutdown().await;
    drop(handle);
    let mut detected = true;
    for a in &agents {
        detected &= wait(a, 60, |s| !ids(s).contains(&gone)).await;
    }
    print_events(&mut events);
    hprintln!(
        "stop detected by all: {} (after {} ms)",
        detected,
        t0.elapsed().as_millis()
    );
    let stats = hub.stats();
    hprintln!(
        "hub: {} delivered, {} lost, {} overflowed, {} unroutable",
        stats.delivered,
        stats.lost,
        stats.overflowed,
        stats.unroutable
    );
    board::exit(formed && detected);
}

fn print_events(events: &mut foca_embassy::Subscription<Id>) {
    while let Some(event) = events.try_recv() {
        match event {
            Ok(Event::Membership(n)) => hprintln!("member 1 event: {:?}", n),
            Ok(Event::Broadcast { .. }) => {}
            Err(lagged) => hprintln!("{}", lagged),
        }
    }
}

/// The heap one known member costs in the core's member table, on this
/// target: 500 members applied to a standalone `Foca`.
fn table_cost() {
    use foca_core::{Foca, Member, Notification, Runtime, Timer};
    struct NoRuntime;
    impl Runtime<Id> for NoRuntime {
        fn notify(&mut self, _: Notification<Id>) {}
        fn send_to(&mut self, _: Id, _: &[u8]) {}
        fn submit_after(&mut self, _: Timer<Id>, _: Duration) {}
    }
    const N: usize = 500;
    let mut c = Config::new_lan(N);
    c.max_members = N + 1;
    c.max_updates_backlog = 1;
    let rng = rand::SeedableRng::seed_from_u64(1);
    let Ok(mut foca) =
        Foca::<_, _, rand::rngs::Xoshiro128PlusPlus>::new(id(200), c, rng, PostcardCodec::new())
    else {
        return;
    };
    let before = board::HEAP.used();
    for k in 0..N as u32 {
        let addr = SocketAddr::from((Ipv4Addr::from(0x0b00_0000 + k), PORT));
        let _ = foca.apply_many([Member::alive(GenerationalId::new(addr, 1), 0)], NoRuntime);
    }
    let grown = board::HEAP.used() - before;
    let table = foca.member_table_heap_bytes();
    hprintln!(
        "member table: {} B for {} members: {} B per member with a {} B identity ({} B beyond it); whole heap growth {} B per member",
        table,
        N,
        table / N,
        core::mem::size_of::<Id>(),
        (table / N).saturating_sub(core::mem::size_of::<Id>()),
        grown / N
    );
}
