//! An embassy-net driver for the SMSC LAN9118 Ethernet controller (the
//! LAN9220 of mps2-an385/386, at 0x4020_0000, as QEMU models it): PIO
//! through the TX and RX data FIFOs, no DMA. It polls: the board's 1 kHz
//! tick wakes a stack that found nothing to receive or no room to send.
//! Volatile register access needs `unsafe`, which is why this lives in the
//! firmware and not in a library crate.

use core::task::Context;

use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState, RxToken, TxToken};

use crate::board::TICK;

/// The mps2-an386's Ethernet controller.
pub const MPS2_BASE: usize = 0x4020_0000;
/// The largest Ethernet frame (without its CRC) we send or keep.
const FRAME: usize = 1514;

// System control and status registers (byte offsets).
const RX_DATA_FIFO: usize = 0x00;
const TX_DATA_FIFO: usize = 0x20;
const RX_STATUS_FIFO: usize = 0x40;
const TX_STATUS_FIFO: usize = 0x48;
const BYTE_TEST: usize = 0x64;
const TX_CFG: usize = 0x70;
const HW_CFG: usize = 0x74;
const RX_FIFO_INF: usize = 0x7c;
const TX_FIFO_INF: usize = 0x80;
const PMT_CTRL: usize = 0x84;
const MAC_CSR_CMD: usize = 0xa4;
const MAC_CSR_DATA: usize = 0xa8;
// MAC control and status registers (indices, through MAC_CSR_*).
const MAC_CR: u32 = 1;
const ADDRH: u32 = 2;
const ADDRL: u32 = 3;

const MAC_CR_FDPX: u32 = 1 << 20;
const MAC_CR_TXEN: u32 = 1 << 3;
const MAC_CR_RXEN: u32 = 1 << 2;
const CSR_BUSY: u32 = 1 << 31;
const CSR_READ: u32 = 1 << 30;
const TX_CFG_TXSAO: u32 = 1 << 2;
const TX_CFG_TX_ON: u32 = 1 << 1;
const HW_CFG_SRST: u32 = 1;
const PMT_READY: u32 = 1;
const TX_CMD_A_FIRST: u32 = 1 << 13;
const TX_CMD_A_LAST: u32 = 1 << 12;
const RX_STS_ERROR: u32 = 1 << 15;

/// One LAN9118, reset and enabled, with a buffer for the frame received.
pub struct Lan9118 {
    regs: Regs,
    rx: [u8; FRAME + 4],
}

struct Regs {
    base: usize,
    mac: [u8; 6],
    tag: u16,
}

impl Lan9118 {
    /// Resets the controller at `base` and enables its MAC; `None` if no
    /// LAN9118 answers there.
    ///
    /// # Safety
    /// `base` must be the address of a LAN9118's registers, used by nothing
    /// else.
    #[allow(unsafe_code)]
    pub unsafe fn new(base: usize) -> Option<Self> {
        let mut dev = Regs {
            base,
            mac: [0; 6],
            tag: 0,
        };
        if dev.read(BYTE_TEST) != 0x8765_4321 {
            return None;
        }
        dev.write(HW_CFG, HW_CFG_SRST);
        while dev.read(HW_CFG) & HW_CFG_SRST != 0 {}
        while dev.read(PMT_CTRL) & PMT_READY == 0 {}
        let (low, high) = (dev.mac_read(ADDRL), dev.mac_read(ADDRH));
        dev.mac[..4].copy_from_slice(&low.to_le_bytes());
        dev.mac[4..].copy_from_slice(&high.to_le_bytes()[..2]);
        dev.mac_write(MAC_CR, MAC_CR_FDPX | MAC_CR_TXEN | MAC_CR_RXEN);
        // Status words we never read may be overwritten.
        dev.write(TX_CFG, TX_CFG_TX_ON | TX_CFG_TXSAO);
        Some(Self {
            regs: dev,
            rx: [0; FRAME + 4],
        })
    }

    /// The MAC address (QEMU's `-nic ...,mac=`).
    pub fn mac(&self) -> [u8; 6] {
        self.regs.mac
    }
}

impl Regs {
    #[allow(unsafe_code)]
    fn read(&self, offset: usize) -> u32 {
        // SAFETY: a register of the device `new` was given.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }

    #[allow(unsafe_code)]
    fn write(&self, offset: usize, value: u32) {
        // SAFETY: a register of the device `new` was given.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }

    fn mac_read(&self, index: u32) -> u32 {
        self.write(MAC_CSR_CMD, CSR_BUSY | CSR_READ | index);
        while self.read(MAC_CSR_CMD) & CSR_BUSY != 0 {}
        self.read(MAC_CSR_DATA)
    }

    fn mac_write(&self, index: u32, value: u32) {
        self.write(MAC_CSR_DATA, value);
        self.write(MAC_CSR_CMD, CSR_BUSY | index);
        while self.read(MAC_CSR_CMD) & CSR_BUSY != 0 {}
    }

    /// Reads the next good frame into `rx`: its length without CRC.
    fn next_frame(&self, rx: &mut [u8]) -> Option<usize> {
        while (self.read(RX_FIFO_INF) >> 16) & 0xff > 0 {
            let status = self.read(RX_STATUS_FIFO);
            let len = ((status >> 16) & 0x3fff) as usize;
            let mut kept = 0;
            for _ in 0..len.div_ceil(4) {
                let word = self.read(RX_DATA_FIFO).to_le_bytes();
                if let Some(room) = rx.get_mut(kept..kept + 4) {
                    room.copy_from_slice(&word);
                }
                kept += 4;
            }
            if status & RX_STS_ERROR == 0 && (14 + 4..=rx.len()).contains(&len) {
                return Some(len - 4);
            }
        }
        None
    }

    fn send(&mut self, frame: &[u8]) {
        // Statuses are not needed (TXSAO): drop them as they come.
        while (self.read(TX_FIFO_INF) >> 16) & 0xff > 0 {
            self.read(TX_STATUS_FIFO);
        }
        let len = frame.len() as u32;
        self.tag = self.tag.wrapping_add(1);
        self.write(TX_DATA_FIFO, TX_CMD_A_FIRST | TX_CMD_A_LAST | len);
        self.write(TX_DATA_FIFO, u32::from(self.tag) << 16 | len);
        for chunk in frame.chunks(4) {
            let mut word = [0; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write(TX_DATA_FIFO, u32::from_le_bytes(word));
        }
    }

    fn has_room(&self) -> bool {
        (self.read(TX_FIFO_INF) & 0xffff) as usize >= FRAME + 8
    }
}

/// A frame received.
pub struct Rx<'a>(&'a mut [u8]);

/// Room for one frame.
pub struct Tx<'a>(&'a mut Regs);

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = [0; FRAME];
        let frame = &mut frame[..len.min(FRAME)];
        let r = f(frame);
        self.0.send(frame);
        r
    }
}

impl Driver for Lan9118 {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Rx<'_>, Tx<'_>)> {
        TICK.register(cx.waker());
        let len = self.regs.next_frame(&mut self.rx)?;
        Some((Rx(&mut self.rx[..len]), Tx(&mut self.regs)))
    }

    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<Tx<'_>> {
        TICK.register(cx.waker());
        self.regs.has_room().then_some(Tx(&mut self.regs))
    }

    fn link_state(&mut self, _cx: &mut Context<'_>) -> LinkState {
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = FRAME;
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ethernet(self.regs.mac)
    }
}
