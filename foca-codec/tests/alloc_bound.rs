//! What decoding hostile bytes allocates, per codec and identity type, measured by a counting global allocator.
//!
//! The core's `Codec` contract: decoding "must allocate at most a small
//! multiple of `input.len()`". Checked here as at most 16 × the input plus
//! 256 bytes, counting every byte allocated while one value decodes (a
//! reallocation counts its whole new size), over random bytes, truncations
//! and bit flips of valid encodings, and inputs crafted to claim long
//! lengths. The worst figures are printed (`--nocapture`).
//!
//! Counting is per thread (a thread-local switch), so tests running in
//! parallel do not disturb each other's figures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Debug;
use std::net::SocketAddr;

use foca_codec::{BINCODE_VALUE_LIMIT, BincodeCodec, PostcardCodec};
use foca_core::{Codec, GenerationalId, Header, Member, Message, State};
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

#[allow(unsafe_code)]
mod counting {
    //! A global allocator that counts, on threads that ask it to, the bytes
    //! allocated and the peak of live bytes.

    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    pub struct Counting;

    thread_local! {
        static ARMED: Cell<bool> = const { Cell::new(false) };
        static TOTAL: Cell<usize> = const { Cell::new(0) };
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    fn allocated(n: usize) {
        let _ = ARMED.try_with(|armed| {
            if armed.get() {
                TOTAL.with(|t| t.set(t.get() + n));
                LIVE.with(|l| {
                    l.set(l.get() + n as isize);
                    PEAK.with(|p| p.set(p.get().max(l.get())));
                });
            }
        });
    }

    fn freed(n: usize) {
        let _ = ARMED.try_with(|armed| {
            if armed.get() {
                LIVE.with(|l| l.set(l.get() - n as isize));
            }
        });
    }

    /// Bytes allocated by `f` on this thread: (total, peak live).
    pub fn measure<X>(f: impl FnOnce() -> X) -> (X, usize, usize) {
        TOTAL.with(|t| t.set(0));
        LIVE.with(|l| l.set(0));
        PEAK.with(|p| p.set(0));
        ARMED.with(|a| a.set(true));
        let x = f();
        ARMED.with(|a| a.set(false));
        let peak = PEAK.with(Cell::get);
        (x, TOTAL.with(Cell::get), usize::try_from(peak).unwrap_or(0))
    }

    // SAFETY: every call is forwarded unchanged to `System`; the counters
    // are thread-local `Cell`s with const initialisers (no allocation, no
    // destructor), touched only through `try_with`.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller upholds `alloc`'s contract, which we forward.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                allocated(layout.size());
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: as for `alloc`.
            let p = unsafe { System.alloc_zeroed(layout) };
            if !p.is_null() {
                allocated(layout.size());
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from this allocator, i.e. from `System`.
            unsafe { System.dealloc(ptr, layout) };
            freed(layout.size());
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: `ptr` came from `System` with `layout`; the caller
            // upholds the rest of `realloc`'s contract.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                freed(layout.size());
                allocated(new_size);
            }
            p
        }
    }
}

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// The bound checked: 16 × the input, plus 256 bytes.
fn bound(len: usize) -> usize {
    16 * len + 256
}

/// The worst of many measurements.
#[derive(Debug, Default)]
struct Worst {
    inputs: usize,
    /// Highest total / input length (inputs of at least 1 byte).
    ratio: f64,
    ratio_at: usize,
    /// The same over inputs of at least 64 bytes (where a constant, such
    /// as an error message, no longer dominates).
    ratio_64: f64,
    /// Highest total, and the input length it came from.
    total: usize,
    total_at: usize,
    peak: usize,
    /// Inputs over `bound`, and the worst of them.
    over: usize,
    over_example: Option<(usize, usize)>,
}

impl Worst {
    fn add(&mut self, len: usize, total: usize, peak: usize) {
        self.inputs += 1;
        if len > 0 {
            let r = total as f64 / len as f64;
            if r > self.ratio {
                self.ratio = r;
                self.ratio_at = len;
            }
        }
        if len >= 64 {
            self.ratio_64 = self.ratio_64.max(total as f64 / len as f64);
        }
        if total > self.total {
            self.total = total;
            self.total_at = len;
        }
        self.peak = self.peak.max(peak);
        if total > bound(len) {
            self.over += 1;
            if self.over_example.is_none_or(|(_, t)| total > t) {
                self.over_example = Some((len, total));
            }
        }
    }
}

/// Decodes `bytes` as a header and as an update, measuring each.
fn measure<T, C: Codec<T>>(codec: &mut C, bytes: &[u8], worst: &mut Worst) {
    let mut input = bytes;
    let (_, total, peak) = counting::measure(|| codec.decode_header(&mut input).is_ok());
    worst.add(bytes.len(), total, peak);
    let mut input = bytes;
    let (_, total, peak) = counting::measure(|| codec.decode_member(&mut input).is_ok());
    worst.add(bytes.len(), total, peak);
}

/// Little-endian base-128, as postcard writes lengths.
fn leb128(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// bincode 2's varint, as it writes lengths.
fn bincode_varint(n: u64) -> Vec<u8> {
    if n < 251 {
        vec![n as u8]
    } else if let Ok(n) = u16::try_from(n) {
        let mut v = vec![251];
        v.extend_from_slice(&n.to_le_bytes());
        v
    } else if let Ok(n) = u32::try_from(n) {
        let mut v = vec![252];
        v.extend_from_slice(&n.to_le_bytes());
        v
    } else {
        let mut v = vec![253];
        v.extend_from_slice(&n.to_le_bytes());
        v
    }
}

const CLAIMS: [u64; 14] = [
    1,
    16,
    100,
    250,
    251,
    1000,
    4000,
    4096,
    4097,
    65_535,
    1 << 20,
    1 << 30,
    u32::MAX as u64,
    u64::MAX,
];

/// Runs every kind of hostile input through `codec`: random bytes, every
/// prefix and bit flip of valid encodings of `a` and `b` in headers and
/// updates, and (when `varint` is given: the identity starts with a length)
/// length claims followed by a few bytes.
fn run<T, C>(mut codec: C, a: T, b: T, varint: Option<fn(u64) -> Vec<u8>>, seed: u64) -> Worst
where
    T: Clone + PartialEq + Debug,
    C: Codec<T>,
{
    let mut worst = Worst::default();
    let mut rng = StdRng::seed_from_u64(seed);
    for n in 0..3000 {
        let len = if n % 10 == 0 {
            rng.random_range(64..1500)
        } else {
            rng.random_range(0..64)
        };
        let mut bytes = vec![0; len];
        rng.fill_bytes(&mut bytes);
        measure(&mut codec, &bytes, &mut worst);
    }
    let mut encodings = Vec::new();
    for message in [
        Message::Ping(7),
        Message::PingReq {
            target: b.clone(),
            probe_number: 1 << 30,
        },
        Message::Gossip,
    ] {
        let h = Header {
            src: a.clone(),
            src_incarnation: 9,
            dst: b.clone(),
            message,
        };
        let mut e = Vec::new();
        codec.encode_header(&h, &mut e).unwrap();
        encodings.push(e);
    }
    for m in [
        Member::new(a.clone(), u32::MAX, State::Down),
        Member::new(b, 1, State::Alive),
    ] {
        let mut e = Vec::new();
        codec.encode_member(&m, &mut e).unwrap();
        encodings.push(e);
    }
    for e in &encodings {
        for cut in 0..=e.len() {
            measure(&mut codec, &e[..cut], &mut worst);
        }
        let mut c = e.clone();
        for i in 0..c.len() {
            for bit in 0..8 {
                c[i] ^= 1 << bit;
                measure(&mut codec, &c, &mut worst);
                c[i] ^= 1 << bit;
            }
        }
    }
    if let Some(varint) = varint {
        for claim in CLAIMS {
            for filler in [0, 1, 8, 32, 200] {
                let mut bytes = varint(claim);
                bytes.extend(std::iter::repeat_n(b'a', filler));
                measure(&mut codec, &bytes, &mut worst);
            }
        }
    }
    worst
}

fn report(name: &str, w: &Worst) {
    println!(
        "{name}: {} decodes; worst total/input {:.2} (input {} B), {:.2} for inputs of 64 B or more; largest total {} B (input {} B); largest peak {} B; over 16x+256: {}{}",
        w.inputs,
        w.ratio,
        w.ratio_at,
        w.ratio_64,
        w.total,
        w.total_at,
        w.peak,
        w.over,
        w.over_example.map_or(String::new(), |(len, total)| format!(
            " (worst: {total} B for {len} B)"
        )),
    );
}

type Gen<A> = GenerationalId<A>;

fn v6() -> SocketAddr {
    "[2001:db8::1]:7000".parse().unwrap()
}

fn gen_addr(n: u8) -> Gen<SocketAddr> {
    GenerationalId::new(SocketAddr::from(([10, 0, 0, n], 7000)), u32::from(n))
}

fn gen_string(n: u8) -> Gen<String> {
    GenerationalId::new(format!("node-{n}.cluster.example:7000"), u32::from(n))
}

fn gen_bytes(n: u8) -> Gen<Vec<u8>> {
    GenerationalId::new(vec![n; 24], u32::from(n))
}

/// Fixed-size identities: postcard allocates nothing at all, whatever the
/// input; bincode only its error messages (a constant, under 256 bytes).
#[test]
fn fixed_size_identities_allocate_at_most_an_error_message() {
    let cases = [
        (
            "postcard GenerationalId<SocketAddr>",
            run(
                PostcardCodec::new(),
                gen_addr(1),
                Gen::new(v6(), 2),
                None,
                1,
            ),
        ),
        (
            "bincode  GenerationalId<SocketAddr>",
            run(BincodeCodec::new(), gen_addr(1), Gen::new(v6(), 2), None, 2),
        ),
        (
            "postcard SocketAddr",
            run(PostcardCodec::new(), *gen_addr(1).address(), v6(), None, 3),
        ),
        (
            "bincode  SocketAddr",
            run(BincodeCodec::new(), *gen_addr(1).address(), v6(), None, 4),
        ),
    ];
    for (name, w) in &cases {
        report(name, w);
    }
    for (name, w) in &cases {
        if name.starts_with("postcard") {
            assert_eq!(w.total, 0, "{name}: {w:?}");
        } else {
            assert!(w.total <= 256, "{name}: {w:?}");
        }
        assert_eq!(w.over, 0, "{name}: {w:?}");
    }
}

/// Postcard: bounded by the input for every identity, variable-length
/// fields included (it never trusts a length beyond the bytes left).
#[test]
fn postcard_allocates_in_proportion_to_the_input() {
    let cases = [
        (
            "postcard GenerationalId<String>",
            run(
                PostcardCodec::new(),
                gen_string(1),
                gen_string(2),
                Some(leb128),
                5,
            ),
        ),
        (
            "postcard GenerationalId<Vec<u8>>",
            run(
                PostcardCodec::new(),
                gen_bytes(1),
                gen_bytes(2),
                Some(leb128),
                6,
            ),
        ),
    ];
    for (name, w) in &cases {
        report(name, w);
    }
    for (name, w) in &cases {
        assert_eq!(w.over, 0, "{name}: {w:?}");
    }
}

/// Bincode: bounded by the input as well. Without the codec's adapter,
/// bincode allocated a `String` field's claimed length (up to
/// `BINCODE_VALUE_LIMIT`, 4000 bytes for a 3-byte input) and serde
/// preallocated a `Vec<u8>` field's (up to 1 MiB for a 5-byte input) before
/// reading them. The value limit still holds: a value claiming more is
/// refused.
#[test]
fn bincode_allocates_in_proportion_to_the_input() {
    let cases = [
        (
            "bincode  GenerationalId<String>",
            run(
                BincodeCodec::new(),
                gen_string(1),
                gen_string(2),
                Some(bincode_varint),
                7,
            ),
        ),
        (
            "bincode  GenerationalId<Vec<u8>>",
            run(
                BincodeCodec::new(),
                gen_bytes(1),
                gen_bytes(2),
                Some(bincode_varint),
                8,
            ),
        ),
    ];
    for (name, w) in &cases {
        report(name, w);
    }
    for (name, w) in &cases {
        assert_eq!(w.over, 0, "{name}: {w:?}");
    }

    // Values up to the limit decode; longer ones are refused, even when the
    // bytes are all there.
    let mut codec = BincodeCodec::<Gen<Vec<u8>>>::new();
    for (len, ok) in [(4000, true), (BINCODE_VALUE_LIMIT + 1, false)] {
        let m = Member::alive(GenerationalId::new(vec![7; len], 1), 1);
        let mut bytes = Vec::new();
        codec.encode_member(&m, &mut bytes).unwrap();
        let decoded = codec.decode_member(&mut &bytes[..]);
        assert_eq!(decoded.ok(), ok.then_some(m), "{len}");
    }
    let mut codec = BincodeCodec::<Gen<String>>::new();
    for (len, ok) in [(4000, true), (BINCODE_VALUE_LIMIT + 1, false)] {
        let m = Member::alive(GenerationalId::new("x".repeat(len), 1), 1);
        let mut bytes = Vec::new();
        codec.encode_member(&m, &mut bytes).unwrap();
        let decoded = codec.decode_member(&mut &bytes[..]);
        assert_eq!(decoded.ok(), ok.then_some(m), "{len}");
    }
}
