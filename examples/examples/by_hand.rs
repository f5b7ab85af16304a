//! The core driven by hand: an `Endpoint` over a std `UdpSocket` and
//! `Instant`s in a plain loop, no async runtime. For people who write
//! their own driver (another event loop, another runtime, an RTOS).
//!
//! `cargo run -p foca-examples --example by_hand`
//!
//! Three members, one thread each, on 127.0.0.1. Each thread runs the
//! loop every driver runs (see `foca_core::Endpoint`):
//!
//! ```text
//! wait for a datagram, at most until the next deadline
//! feed it: handle_datagram(now, from, bytes)   (opened in place)
//! handle_timeouts(now)                         (fires what is due)
//! send every poll_transmit()                   (already sealed)
//! read every poll_event(), and poll_snapshot(now)
//! ```
//!
//! and takes commands (join, leave, stop) from the main thread over a
//! channel. The main thread checks the story: members 2 and 3 join
//! through member 1 and everyone sees everyone; member 3 leaves and the
//! others see it leave (not fail). It exits 1 if a step takes more than
//! 10 s.
//!
//! This file is in the public domain (CC0-1.0).

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use foca_codec::{Cipher, Envelope, Key, Keyring, PostcardCodec};
use foca_core::{Clock, Command, Config, Endpoint, Event, Foca, GenerationalId, Notification};
use rand::SeedableRng;
use rand::rngs::Xoshiro128PlusPlus;

type Id = GenerationalId<SocketAddr>;

/// The longest the loop sleeps without checking its command channel.
const MAX_WAIT: Duration = Duration::from_millis(50);
/// The longest a step of the story may take.
const STEP_LIMIT: Duration = Duration::from_secs(10);

/// What the main thread asks of a member thread.
enum Order {
    /// A core command, as it is.
    Core(Command<Id>),
    /// Leave the loop (without leaving the cluster: a crash, to the others).
    Stop,
}

/// What a member thread reports: its number, then what happened.
enum Report {
    /// How many active members it sees now (from a snapshot).
    Members(usize, usize),
    /// A membership event.
    Saw(usize, Notification<Id>),
    /// The loop failed.
    Failed(usize, String),
}

/// One member's loop: the whole driver.
fn run(
    n: usize,
    socket: UdpSocket,
    key: [u8; 32],
    orders: Receiver<Order>,
    report: Sender<Report>,
) {
    if let Err(e) = drive(n, &socket, key, &orders, &report) {
        let _ = report.send(Report::Failed(n, e));
    }
}

fn drive(
    n: usize,
    socket: &UdpSocket,
    key: [u8; 32],
    orders: &Receiver<Order>,
    report: &Sender<Report>,
) -> Result<(), String> {
    let addr = socket.local_addr().map_err(|e| e.to_string())?;
    // Every datagram sealed with the cluster's key.
    let key = Key::new(Cipher::XChaCha20Poly1305, key);
    let envelope = Envelope::encrypted(b"by-hand", Keyring::new(1, key, &mut rand::rng()));
    let mut config = Config::new_lan(3);
    config.probe_period = Duration::from_millis(300);
    config.probe_rtt = Duration::from_millis(100);
    config.max_packet_size = 1400 - envelope.overhead();
    let rng = Xoshiro128PlusPlus::seed_from_u64(n as u64);
    let foca = Foca::new(
        GenerationalId::new(addr, 1),
        config,
        rng,
        PostcardCodec::new(),
    )
    .map_err(|e| e.to_string())?;
    // The core's time: a Duration since this clock's origin.
    let clock = Clock::new();
    let mut ep = Endpoint::new(foca, envelope, clock.now()).map_err(|e| e.to_string())?;
    // One byte more than the largest datagram accepted, to tell oversized
    // ones apart (the endpoint counts them).
    let mut buf = vec![0u8; ep.max_datagram() + 1];
    loop {
        // 1. Commands from the user.
        match orders.try_recv() {
            Ok(Order::Core(command)) => {
                ep.command(clock.now(), command)
                    .map_err(|e| e.to_string())?;
            }
            Ok(Order::Stop) | Err(TryRecvError::Disconnected) => return Ok(()),
            Err(TryRecvError::Empty) => {}
        }
        // 2. Wait for a datagram, at most until the next deadline (or the
        // next snapshot), and at most MAX_WAIT to look at the orders again.
        let now = clock.now();
        let wake = [ep.next_deadline(), ep.snapshot_due()]
            .into_iter()
            .flatten()
            .min()
            .map_or(MAX_WAIT, |at| at.saturating_sub(now));
        // A zero read timeout is an error for std: wait at least 1 ms.
        let wait = wake.clamp(Duration::from_millis(1), MAX_WAIT);
        socket
            .set_read_timeout(Some(wait))
            .map_err(|e| e.to_string())?;
        match socket.recv_from(&mut buf) {
            Ok((len, from)) => {
                // `Err` here is a codec bug, never the network's fault.
                ep.handle_datagram(clock.now(), from, &mut buf[..len])
                    .map_err(|e| e.to_string())?;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            // ICMP port-unreachable from a closed peer, and the like:
            // routine, the protocol copes.
            Err(_) => {}
        }
        // 3. Timers that are due.
        ep.handle_timeouts(clock.now()).map_err(|e| e.to_string())?;
        // 4. Outputs: datagrams (already sealed), events, snapshots.
        while let Some(t) = ep.poll_transmit() {
            // A send error is survived as a lost datagram would be.
            let _ = socket.send_to(&t.data, t.to);
            ep.recycle(t.data);
        }
        while let Some(event) = ep.poll_event() {
            if let Event::Membership(notification) = event {
                let _ = report.send(Report::Saw(n, notification));
            }
        }
        if let Some(snapshot) = ep.poll_snapshot(clock.now()) {
            let _ = report.send(Report::Members(n, snapshot.members.len()));
        }
    }
}

/// Reads reports until `done` holds, for at most [`STEP_LIMIT`].
fn until(
    reports: &Receiver<Report>,
    step: &str,
    mut done: impl FnMut(&Report) -> bool,
) -> Result<(), String> {
    let limit = Instant::now() + STEP_LIMIT;
    loop {
        let left = limit.saturating_duration_since(Instant::now());
        match reports.recv_timeout(left) {
            Ok(Report::Failed(n, e)) => return Err(format!("member {n}: {e}")),
            Ok(report) => {
                if let Report::Saw(n, what) = &report {
                    println!("  member {n}: {what:?}");
                }
                if done(&report) {
                    println!("{step}: done");
                    return Ok(());
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!("{step}: not within {STEP_LIMIT:?}"));
            }
            Err(RecvTimeoutError::Disconnected) => return Err("every member stopped".into()),
        }
    }
}

fn story() -> Result<(), String> {
    let key: [u8; 32] = rand::random();
    let (report_tx, reports) = mpsc::channel();
    let mut members = Vec::new();
    for n in 1..=3 {
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = socket.local_addr().map_err(|e| e.to_string())?;
        let (order_tx, orders) = mpsc::channel();
        let report = report_tx.clone();
        let thread = thread::spawn(move || run(n, socket, key, orders, report));
        println!("member {n} on {addr}");
        members.push((addr, order_tx, thread));
    }
    let seed = GenerationalId::seed(members[0].0);
    for (_, orders, _) in &members[1..] {
        orders
            .send(Order::Core(Command::Join(vec![seed])))
            .map_err(|_| "a member thread ended")?;
    }
    let mut full = [false; 3];
    until(&reports, "everyone sees the two others", |r| {
        if let Report::Members(n, count) = r {
            full[n - 1] = *count == 2;
        }
        full.iter().all(|f| *f)
    })?;
    members[2]
        .1
        .send(Order::Core(Command::Leave))
        .map_err(|_| "member 3's thread ended")?;
    let leaver = members[2].0;
    let mut saw_leave = [false; 2];
    until(&reports, "members 1 and 2 see member 3 leave", |r| {
        match r {
            Report::Saw(n @ 1..=2, Notification::MemberLeft(id)) if *id.address() == leaver => {
                saw_leave[n - 1] = true;
            }
            Report::Saw(n, Notification::MemberDown(id)) => {
                println!("  member {n} saw {id:?} FAIL instead of leave");
            }
            _ => {}
        }
        saw_leave.iter().all(|s| *s)
    })?;
    for (_, orders, thread) in members {
        let _ = orders.send(Order::Stop);
        thread.join().map_err(|_| "a member thread panicked")?;
    }
    Ok(())
}

fn main() -> ExitCode {
    match story() {
        Ok(()) => {
            println!("by_hand: OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("by_hand: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
