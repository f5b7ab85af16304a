//! Memory budget: the member table costs at most 32 bytes per member,
//! lookup index included, for an 8-byte identity.
//!
//! Measured two ways: what the table reports (`member_table_heap_bytes`) and
//! what a counting global allocator sees. The tests of this binary take a
//! lock, so no other test allocates while one measures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use foca_core::testing::{TestCodec, TestId};
use foca_core::{Config, Foca, GenerationalId, Member, Notification, Runtime, Timer};
use rand::SeedableRng;
use rand::rngs::Xoshiro128PlusPlus;

#[allow(unsafe_code)]
mod counting {
    //! A global allocator that keeps a count of live heap bytes.

    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicIsize, Ordering};

    pub struct Counting;

    static LIVE: AtomicIsize = AtomicIsize::new(0);

    /// Heap bytes allocated and not yet freed, process-wide.
    pub fn live() -> isize {
        LIVE.load(Ordering::SeqCst)
    }

    fn add(n: usize) {
        LIVE.fetch_add(n as isize, Ordering::SeqCst);
    }

    fn sub(n: usize) {
        LIVE.fetch_sub(n as isize, Ordering::SeqCst);
    }

    // SAFETY: every call is forwarded unchanged to `System`; the counter is
    // bookkeeping only.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller upholds `alloc`'s contract, which we forward.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                add(layout.size());
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: as for `alloc`.
            let p = unsafe { System.alloc_zeroed(layout) };
            if !p.is_null() {
                add(layout.size());
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from this allocator, i.e. from `System`.
            unsafe { System.dealloc(ptr, layout) };
            sub(layout.size());
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: `ptr` came from `System` with `layout`; the caller
            // upholds the rest of `realloc`'s contract.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                sub(layout.size());
                add(new_size);
            }
            p
        }
    }
}

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// A runtime that keeps nothing, so it allocates nothing.
struct NoRuntime;

impl<T: foca_core::Identity> Runtime<T> for NoRuntime {
    fn notify(&mut self, _: Notification<T>) {}
    fn send_to(&mut self, _: T, _: &[u8]) {}
    fn submit_after(&mut self, _: Timer<T>, _: Duration) {}
}

const N: u32 = 10_000;

/// Held by every test here: the allocator's count is process-wide.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
const BUDGET: f64 = 32.0;

fn member(max_updates_backlog: usize) -> Foca<TestId, TestCodec, Xoshiro128PlusPlus> {
    let config = Config {
        max_members: 16_384,
        max_updates_backlog,
        ..Config::simple()
    };
    Foca::new(
        GenerationalId::new(0, 1),
        config,
        Xoshiro128PlusPlus::seed_from_u64(1),
        TestCodec,
    )
    .unwrap()
}

/// Inserts `N` alive members (addresses 1..=N) through `apply_many`, from a
/// lazy iterator (nothing allocated outside the member). Returns the live
/// heap delta the allocator saw.
fn fill(foca: &mut Foca<TestId, TestCodec, Xoshiro128PlusPlus>) -> isize {
    let before = counting::live();
    foca.apply_many(
        (1..=N).map(|a| Member::alive(GenerationalId::new(a, 1), 0)),
        NoRuntime,
    )
    .unwrap();
    counting::live() - before
}

#[test]
fn member_table_costs_at_most_32_bytes_per_member() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(size_of::<TestId>(), 8);
    let n = f64::from(N);

    // Updates backlog bounded to one item: the delta is the table, plus one
    // queued update and the member's scratch buffers.
    let mut foca = member(1);
    assert_eq!(foca.member_table_heap_bytes(), 0);
    let delta = fill(&mut foca);
    assert_eq!(foca.num_members(), N as usize);
    assert_eq!(foca.updates_backlog(), 1);
    let reported = foca.member_table_heap_bytes();
    let table_per_member = reported as f64 / n;
    let alloc_per_member = delta as f64 / n;
    println!(
        "size_of::<TestId>() = {}, size_of::<Member<TestId>>() = {}",
        size_of::<TestId>(),
        size_of::<Member<TestId>>()
    );
    println!(
        "member_table_heap_bytes: {reported} B for {N} members = {table_per_member:.2} B/member"
    );
    println!(
        "counting allocator, live delta over {N} inserts (backlog bound 1): {delta} B = {alloc_per_member:.2} B/member \
         (table as reported + {} B of other live data: one queued update, scratch)",
        delta - reported as isize
    );

    // The same inserts with a backlog big enough for every update: the
    // difference is what dissemination costs, which is not the table's.
    let mut big = member(N as usize);
    let delta_big = fill(&mut big);
    assert_eq!(big.updates_backlog(), N as usize);
    println!(
        "with every update queued (backlog bound {N}): {delta_big} B = {:.2} B/member, of which the backlog is about {:.2} B/member",
        delta_big as f64 / n,
        (delta_big - delta) as f64 / n
    );

    assert!(
        table_per_member <= BUDGET,
        "table reports {table_per_member:.2} B/member"
    );
    // The allocator's figure includes the one queued update and scratch: it
    // bounds the table from above.
    assert!(
        alloc_per_member <= BUDGET,
        "allocator sees {alloc_per_member:.2} B/member"
    );
    // The two measures agree (the report is not missing an allocation).
    assert!(delta >= reported as isize);
    assert!(
        delta - (reported as isize) < 16_384,
        "{delta} vs {reported}"
    );
}

/// Not only at 10,000: growth steps (a quarter for the table, doubling for
/// the index) must not push any size past the budget. Checked after every
/// insert from 1,000 to 20,000 members, by the table's own report.
#[test]
fn budget_holds_at_every_size_from_1000_to_20000() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let config = Config {
        max_members: 20_000,
        max_updates_backlog: 1,
        ..Config::simple()
    };
    let mut foca = Foca::new(
        GenerationalId::new(0, 1),
        config,
        Xoshiro128PlusPlus::seed_from_u64(2),
        TestCodec,
    )
    .unwrap();
    let mut worst = (0.0f64, 0usize);
    for a in 1..=20_000u32 {
        foca.apply_many([Member::alive(GenerationalId::new(a, 1), 0)], NoRuntime)
            .unwrap();
        let n = a as usize;
        if n >= 1000 {
            let per = foca.member_table_heap_bytes() as f64 / n as f64;
            if per > worst.0 {
                worst = (per, n);
            }
        }
    }
    println!(
        "worst table cost from 1,000 to 20,000 members: {:.2} B/member at {} members",
        worst.0, worst.1
    );
    assert!(worst.0 <= BUDGET, "{:.2} B/member at {}", worst.0, worst.1);
}
