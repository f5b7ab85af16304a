//! An in-process IP network for embassy-net stacks (feature `loopback`,
//! `no_std` + `alloc`): a [`Hub`] routes IPv4 packets by destination
//! address between its [`Port`]s, each an [`embassy_net_driver::Driver`]
//! with `Medium::Ip`, so several stacks (and agents) run in one process,
//! on a host or a microcontroller. Packets to no port go to the
//! [`Uplink`], if one was taken: a test bridges it to a real socket with
//! [`udp_packet`] and [`parse_udp`]. Optional random loss; a port can be
//! cut off. Every queue is bounded (what does not fit is dropped and
//! counted in [`HubStats`]).

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::poll_fn;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::task::{Context, Poll};

use embassy_net_driver::{
    Capabilities, Checksum, Driver, HardwareAddress, LinkState, RxToken, TxToken,
};
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::waitqueue::WakerRegistration;

/// The largest packet a port carries.
pub const MTU: usize = 1500;

/// What a [`Hub`] did with the packets it was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Packets queued for a port or the uplink.
    pub delivered: u64,
    /// Packets dropped by the random loss, or to or from a cut port.
    pub lost: u64,
    /// Packets dropped because the receiver's queue was full.
    pub overflowed: u64,
    /// Packets for no port, without an uplink (or not IPv4).
    pub unroutable: u64,
}

struct Queue {
    addr: Option<Ipv4Addr>,
    packets: VecDeque<Vec<u8>>,
    waker: WakerRegistration,
    up: bool,
}

struct State {
    /// The ports, then the uplink (`addr: None`) if taken.
    queues: Vec<Queue>,
    depth: usize,
    loss_per_mille: u32,
    rng: u32,
    stats: HubStats,
}

/// The network: ports that reach each other by IPv4 address.
pub struct Hub {
    state: Mutex<CriticalSectionRawMutex, RefCell<State>>,
}

impl Hub {
    /// A network whose queues each hold `depth` packets.
    pub fn new(depth: usize) -> Arc<Self> {
        let state = State {
            queues: Vec::new(),
            depth,
            loss_per_mille: 0,
            rng: 0x2545_f491,
            stats: HubStats::default(),
        };
        Arc::new(Self {
            state: Mutex::new(RefCell::new(state)),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.state.lock(|s| f(&mut s.borrow_mut()))
    }

    fn attach(self: &Arc<Self>, addr: Option<Ipv4Addr>) -> usize {
        self.with(|s| {
            s.queues.push(Queue {
                addr,
                packets: VecDeque::new(),
                waker: WakerRegistration::new(),
                up: true,
            });
            s.queues.len() - 1
        })
    }

    /// A new port with address `addr`: the driver of one stack (give the
    /// stack the same address, with `Medium::Ip` there is no ARP).
    pub fn port(self: &Arc<Self>, addr: Ipv4Addr) -> Port {
        let index = self.attach(Some(addr));
        Port {
            hub: Arc::clone(self),
            index,
        }
    }

    /// The uplink: where packets for no port go (take it once).
    pub fn uplink(self: &Arc<Self>) -> Uplink {
        let index = self.attach(None);
        Uplink {
            hub: Arc::clone(self),
            index,
        }
    }

    /// Drops this share of packets (in thousandths), at random from `seed`.
    pub fn set_loss(&self, per_mille: u32, seed: u32) {
        self.with(|s| {
            s.loss_per_mille = per_mille.min(1000);
            s.rng = seed | 1;
        });
    }

    /// Cuts the port at `addr` off (`up = false`: what it sends and what is
    /// sent to it is lost), or connects it again.
    pub fn set_link(&self, addr: Ipv4Addr, up: bool) {
        self.with(|s| {
            for q in s.queues.iter_mut().filter(|q| q.addr == Some(addr)) {
                q.up = up;
            }
        });
    }

    /// The counters so far.
    pub fn stats(&self) -> HubStats {
        self.with(|s| s.stats)
    }

    /// Routes `packet` sent by queue `from` (`None`: injected).
    fn route(&self, from: Option<usize>, packet: Vec<u8>) {
        self.with(|s| {
            if from.is_some_and(|i| s.queues.get(i).is_some_and(|q| !q.up)) {
                s.stats.lost += 1;
                return;
            }
            // xorshift32: loss needs no quality, only a repeatable stream.
            s.rng ^= s.rng << 13;
            s.rng ^= s.rng >> 17;
            s.rng ^= s.rng << 5;
            if s.rng % 1000 < s.loss_per_mille {
                s.stats.lost += 1;
                return;
            }
            let dst = match packet.get(..20) {
                Some(h) if h[0] >> 4 == 4 => Ipv4Addr::new(h[16], h[17], h[18], h[19]),
                _ => {
                    s.stats.unroutable += 1;
                    return;
                }
            };
            let mut to = s.queues.iter().position(|q| q.addr == Some(dst));
            if to.is_none() && from.is_some() {
                to = s.queues.iter().position(|q| q.addr.is_none());
            }
            let depth = s.depth;
            match to.and_then(|i| s.queues.get_mut(i)) {
                None => s.stats.unroutable += 1,
                Some(q) if !q.up => s.stats.lost += 1,
                Some(q) if q.packets.len() >= depth => s.stats.overflowed += 1,
                Some(q) => {
                    q.packets.push_back(packet);
                    q.waker.wake();
                    s.stats.delivered += 1;
                }
            }
        });
    }

    fn poll_take(&self, index: usize, cx: &mut Context<'_>) -> Poll<Vec<u8>> {
        self.with(|s| match s.queues.get_mut(index) {
            Some(q) => match q.packets.pop_front() {
                Some(p) => Poll::Ready(p),
                None => {
                    q.waker.register(cx.waker());
                    Poll::Pending
                }
            },
            None => Poll::Pending,
        })
    }
}

/// One stack's connection to a [`Hub`]: its embassy-net driver.
pub struct Port {
    hub: Arc<Hub>,
    index: usize,
}

/// A packet received by a [`Port`].
pub struct PortRx(Vec<u8>);

/// Room to send one packet through a [`Port`].
pub struct PortTx<'a> {
    hub: &'a Hub,
    index: usize,
}

impl RxToken for PortRx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(mut self, f: F) -> R {
        f(&mut self.0)
    }
}

impl TxToken for PortTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut packet = vec![0; len];
        let r = f(&mut packet);
        self.hub.route(Some(self.index), packet);
        r
    }
}

impl Driver for Port {
    type RxToken<'a> = PortRx;
    type TxToken<'a> = PortTx<'a>;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(PortRx, PortTx<'_>)> {
        match self.hub.poll_take(self.index, cx) {
            Poll::Ready(p) => Some((PortRx(p), self.transmit(cx)?)),
            Poll::Pending => None,
        }
    }

    /// Always room: a full receiver drops (and counts) instead.
    fn transmit(&mut self, _cx: &mut Context<'_>) -> Option<PortTx<'_>> {
        Some(PortTx {
            hub: &self.hub,
            index: self.index,
        })
    }

    fn link_state(&mut self, _cx: &mut Context<'_>) -> LinkState {
        LinkState::Up
    }

    /// IP medium (from the hardware address); no checksums, computed or checked (memory does not flip
    /// bits, and it saves the stacks the work).
    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = MTU;
        caps.checksum.ipv4 = Checksum::None;
        caps.checksum.udp = Checksum::None;
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ip
    }
}

/// Where a [`Hub`] sends packets for no port; packets given to it are
/// routed to the ports by destination.
pub struct Uplink {
    hub: Arc<Hub>,
    index: usize,
}

impl Uplink {
    /// The next packet that left the hub.
    pub async fn recv(&self) -> Vec<u8> {
        poll_fn(|cx| self.hub.poll_take(self.index, cx)).await
    }

    /// Hands `packet` (IPv4) to the port it is addressed to.
    pub fn send(&self, packet: Vec<u8>) {
        self.hub.route(None, packet);
    }
}

/// An IPv4 + UDP packet from `src` to `dst` carrying `payload` (IPv4
/// header checksum set, UDP checksum zero: none). `None` if the payload
/// does not fit in one.
pub fn udp_packet(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Option<Vec<u8>> {
    let total = u16::try_from(28 + payload.len()).ok()?;
    let udp_len = total - 20;
    let mut p = Vec::with_capacity(usize::from(total));
    p.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&src.ip().octets());
    p.extend_from_slice(&dst.ip().octets());
    let mut sum: u32 = p
        .chunks(2)
        .map(|w| u32::from(w[0]) << 8 | u32::from(w[1]))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    Some(p)
}

/// The source, the destination and the payload of an IPv4 + UDP packet;
/// `None` for anything else (or a truncated one).
pub fn parse_udp(packet: &[u8]) -> Option<(SocketAddrV4, SocketAddrV4, &[u8])> {
    let version_ihl = *packet.first()?;
    let header = usize::from(version_ihl & 0x0f) * 4;
    if version_ihl >> 4 != 4 || header < 20 || packet.get(9) != Some(&17) {
        return None;
    }
    let ip = |at: usize| {
        Some(Ipv4Addr::new(
            packet[at],
            packet[at + 1],
            packet[at + 2],
            packet[at + 3],
        ))
    };
    let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    let udp = packet.get(header..total)?;
    let port = |at: usize| Some(u16::from_be_bytes([*udp.get(at)?, *udp.get(at + 1)?]));
    let src = SocketAddrV4::new(ip(12)?, port(0)?);
    let dst = SocketAddrV4::new(ip(16)?, port(2)?);
    Some((src, dst, udp.get(8..)?))
}
