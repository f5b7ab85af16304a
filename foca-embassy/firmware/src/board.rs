//! What both firmware binaries need from the board (QEMU mps2-an386): the
//! heap, a 1 kHz SysTick time driver for embassy-time with its timer
//! queue, the semihosting exit, the panic handler.

use core::cell::{Cell, RefCell};
use core::mem::MaybeUninit;
use core::task::Waker;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use cortex_m_semihosting::{debug, hprintln};
use critical_section::Mutex;
use embassy_sync::waitqueue::AtomicWaker;
use embassy_time_queue_utils::Queue;
use embedded_alloc::LlffHeap as Heap;

/// The Cortex-M4's clock on mps2-an386.
const SYSCLK_HZ: u32 = 25_000_000;

#[global_allocator]
pub static HEAP: Heap = Heap::empty();
const HEAP_SIZE: usize = 256 * 1024;

/// Woken on every tick: a device without interrupts polls on it.
pub static TICK: AtomicWaker = AtomicWaker::new();

/// Sets the heap and the clock up; call first.
pub fn init() {
    {
        static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];
        // SAFETY: called once, before any allocation; the memory is ours.
        #[allow(unsafe_code)]
        unsafe {
            HEAP.init(&raw mut HEAP_MEM as usize, HEAP_SIZE)
        }
    }
    let Some(mut core) = cortex_m::Peripherals::take() else {
        exit(false)
    };
    core.SYST.set_clock_source(SystClkSource::Core);
    core.SYST.set_reload(SYSCLK_HZ / 1000 - 1);
    core.SYST.clear_current();
    core.SYST.enable_interrupt();
    core.SYST.enable_counter();
}

struct SysTickTime {
    millis: Mutex<Cell<u64>>,
    queue: Mutex<RefCell<Queue>>,
}

impl embassy_time_driver::Driver for SysTickTime {
    fn now(&self) -> u64 {
        // embassy-time's default tick rate is 1 MHz.
        critical_section::with(|cs| self.millis.borrow(cs).get()) * 1000
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let now = self.millis.borrow(cs).get() * 1000;
            let mut queue = self.queue.borrow(cs).borrow_mut();
            queue.schedule_wake(at, waker);
            // Already due: wake at once (the next tick would do it too).
            queue.next_expiration(now);
        });
    }
}

embassy_time_driver::time_driver_impl!(static TIME: SysTickTime = SysTickTime {
    millis: Mutex::new(Cell::new(0)),
    queue: Mutex::new(RefCell::new(Queue::new())),
});

#[exception]
fn SysTick() {
    critical_section::with(|cs| {
        let millis = TIME.millis.borrow(cs);
        millis.set(millis.get() + 1);
        TIME.queue
            .borrow(cs)
            .borrow_mut()
            .next_expiration(millis.get() * 1000);
    });
    TICK.wake();
}

/// Prints the verdict and ends QEMU with it (status 0 or 1).
pub fn exit(passed: bool) -> ! {
    hprintln!(
        "foca-embassy firmware: {}",
        if passed { "PASS" } else { "FAIL" }
    );
    debug::exit(if passed {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfe();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("panic: {}", info);
    exit(false)
}
