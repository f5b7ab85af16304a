//! foca-embassy over Ethernet: one agent per QEMU mps2-an386 instance, on
//! an embassy-net stack over the board's LAN9118 (see `lan9118.rs`), the
//! instances joined by a QEMU network (`run-lan.sh`: a multicast socket
//! backend on 127.0.0.1). Member `n` is the instance whose MAC ends in
//! `n`, at 10.0.1.`n`; all join through member 1. Once the cluster has
//! `MEMBERS` members, the last one stops without a word (its QEMU exits)
//! and the others wait until they see it gone. Each instance exits with
//! status 0 if everything it waited for happened, 1 otherwise.
#![no_std]
#![no_main]
// Unsafe only where the board demands it, each site allowed by name:
// the heap (board.rs) and the LAN9118 registers (lan9118.rs, and its
// constructor here).
#![deny(unsafe_code)]

extern crate alloc;

#[path = "../board.rs"]
mod board;
#[path = "../lan9118.rs"]
mod lan9118;

use alloc::boxed::Box;
use core::net::{Ipv4Addr, SocketAddr};

use cortex_m as _;
use cortex_m_semihosting::hprintln;
use embassy_executor::Spawner;
use embassy_net::{Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_time::{Duration, Timer, with_timeout};
use foca_codec::{Envelope, PostcardCodec};
use foca_core::{Config, Event, GenerationalId, Identity, Snapshot};
use foca_embassy::{Builder, Handle, SocketBuffers};
use lan9118::Lan9118;

type Id = GenerationalId<SocketAddr>;
type Agent = foca_embassy::Runner<'static, Id, PostcardCodec<Id>>;

const MEMBERS: u8 = 3;
const PORT: u16 = 7000;

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, Lan9118>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn agent_task(runner: Agent) {
    runner.run().await;
}

fn id(n: u8) -> Id {
    GenerationalId::new(SocketAddr::from((Ipv4Addr::new(10, 0, 1, n), PORT)), 1)
}

async fn wait(agent: &Handle<Id>, secs: u64, check: impl FnMut(&Snapshot<Id>) -> bool) -> bool {
    let limit = Duration::from_secs(secs);
    matches!(with_timeout(limit, agent.wait_for(check)).await, Ok(Ok(_)))
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    board::init();
    // SAFETY: the board's Ethernet controller, used by nothing else.
    #[allow(unsafe_code)]
    let Some(dev) = (unsafe { Lan9118::new(lan9118::MPS2_BASE) }) else {
        hprintln!("no LAN9118 at {:#x}", lan9118::MPS2_BASE);
        board::exit(false)
    };
    let n = dev.mac()[5];
    let addr = Ipv4Addr::new(10, 0, 1, n);
    hprintln!(
        "member {}: LAN9118 with MAC {:02x?}, {}",
        n,
        dev.mac(),
        addr
    );
    let net = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(addr, 24),
        gateway: None,
        dns_servers: Default::default(),
    });
    let resources = Box::leak(Box::new(StackResources::<1>::new()));
    let (stack, runner) = embassy_net::new(dev, net, resources, u64::from(n));
    spawner.spawn(net_task(runner).unwrap());

    let mut config = Config::new_lan(usize::from(MEMBERS));
    config.max_packet_size = 1024;
    let envelope = Envelope::insecure_plaintext(b"foca-qemu-lan");
    let buffers = Box::leak(Box::new(SocketBuffers::<4, 4096>::new()));
    let (runner, agent) = Builder::new(id(n), config, PostcardCodec::new(), envelope)
        .seeds([id(1).addr()])
        .rng_seed(u64::from(n) * 7919)
        .event_capacity(16)
        .build(stack, buffers)
        .unwrap();
    spawner.spawn(agent_task(runner).unwrap());
    let mut events = agent.subscribe();
    let print = |events: &mut foca_embassy::Subscription<Id>| {
        while let Some(Ok(Event::Membership(e))) = events.try_recv() {
            hprintln!("member {}: {:?}", n, e);
        }
    };

    let others = usize::from(MEMBERS - 1);
    let formed = wait(&agent, 60, |s| s.members.len() == others).await;
    print(&mut events);
    hprintln!("member {}: cluster of {} formed: {}", n, MEMBERS, formed);
    if n == MEMBERS {
        // Long enough for every member to hear of this one.
        Timer::after_secs(3).await;
        hprintln!("member {}: stopping without a word", n);
        board::exit(formed);
    }
    let gone = id(MEMBERS);
    let detected = wait(&agent, 60, |s| s.members.iter().all(|m| *m.id() != gone)).await;
    print(&mut events);
    hprintln!(
        "member {}: member {} detected gone: {}",
        n,
        MEMBERS,
        detected
    );
    board::exit(formed && detected);
}
