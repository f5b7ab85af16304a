//! Seeds: how they are named, and when host names are looked up.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

use crate::{Command, ConnectionState, Notification, SocketIdentity};

/// How often host-name seeds are looked up again while the member is alone.
pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(10);

/// A member to join through: an address, or a host name with a port that a
/// driver with a resolver looks up when it starts, and again whenever it is
/// alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seed {
    /// A socket address.
    Addr(SocketAddr),
    /// `host:port`, resolved by the driver.
    Host(String),
}

impl From<SocketAddr> for Seed {
    fn from(addr: SocketAddr) -> Self {
        Seed::Addr(addr)
    }
}

impl From<&str> for Seed {
    /// An address if `s` parses as one, a host name otherwise.
    fn from(s: &str) -> Self {
        match s.parse() {
            Ok(addr) => Seed::Addr(addr),
            Err(_) => Seed::Host(s.to_string()),
        }
    }
}

impl From<String> for Seed {
    /// An address if `s` parses as one, a host name otherwise.
    fn from(s: String) -> Self {
        match s.parse() {
            Ok(addr) => Seed::Addr(addr),
            Err(_) => Seed::Host(s),
        }
    }
}

impl fmt::Display for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seed::Addr(a) => a.fmt(f),
            Seed::Host(h) => f.write_str(h),
        }
    }
}

/// A driver's seeds, and when to look their host names up: at start (and
/// on every rejoin), then again every [`RESOLVE_INTERVAL`] while the member
/// is alone. The driver does the lookups (they are IO) and reports back;
/// times are the endpoint's.
#[derive(Clone, Debug, Default)]
pub struct Seeds {
    list: Vec<Seed>,
    next_lookup: Option<Duration>,
    looking_up: bool,
}

impl Seeds {
    /// These seeds; nothing is looked up yet.
    pub fn new(list: Vec<Seed>) -> Self {
        Self {
            list,
            next_lookup: None,
            looking_up: false,
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The seeds given as addresses.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        let addr = |s: &Seed| match s {
            Seed::Addr(a) => Some(*a),
            Seed::Host(_) => None,
        };
        self.list.iter().filter_map(addr).collect()
    }

    fn has_hosts(&self) -> bool {
        self.list.iter().any(|s| matches!(s, Seed::Host(_)))
    }

    /// Joining now: the command that announces to the address seeds (none
    /// without one other than `own`); host names are due for a lookup at
    /// once.
    pub fn join<T: SocketIdentity>(
        &mut self,
        now: Duration,
        own: SocketAddr,
    ) -> Option<Command<T>> {
        if self.has_hosts() {
            self.next_lookup = Some(now);
        }
        join_through(self.addrs(), own)
    }

    /// When host names are next due for a lookup (`None` while one runs,
    /// or when none is due).
    pub fn lookup_due(&self) -> Option<Duration> {
        self.next_lookup.filter(|_| !self.looking_up)
    }

    /// Starts a lookup if one is due at `now`: the host names to resolve.
    pub fn start_lookup(&mut self, now: Duration) -> Option<Vec<String>> {
        if self.lookup_due()? > now {
            return None;
        }
        self.looking_up = true;
        let host = |s: &Seed| match s {
            Seed::Host(h) => Some(h.clone()),
            Seed::Addr(_) => None,
        };
        Some(self.list.iter().filter_map(host).collect())
    }

    /// A lookup ended with `found`, while the member (at `own`) was in
    /// `state`: the command that joins through every address seed and what
    /// was found, or `None` if the member left meanwhile. Another lookup
    /// follows in [`RESOLVE_INTERVAL`] while the member is alone.
    pub fn looked_up<T: SocketIdentity>(
        &mut self,
        now: Duration,
        found: Vec<SocketAddr>,
        own: SocketAddr,
        state: ConnectionState,
    ) -> Option<Command<T>> {
        self.looking_up = false;
        let alone = state == ConnectionState::Disconnected;
        self.next_lookup = alone.then(|| now.saturating_add(RESOLVE_INTERVAL));
        if state == ConnectionState::Left {
            return None;
        }
        let mut all = self.addrs();
        all.extend(found);
        join_through(all, own)
    }

    /// Follows the connection state: no lookups while connected, one at
    /// once when the member loses its last peer.
    pub fn notice<T>(&mut self, now: Duration, notification: &Notification<T>) {
        match notification {
            Notification::Active => self.next_lookup = None,
            Notification::Idle if self.has_hosts() => self.next_lookup = Some(now),
            _ => {}
        }
    }
}

/// Looks `hosts` up with the runtime's resolver `lookup`: the addresses
/// found, and how many names failed (for [`Agent::looked_up`](super::Agent::looked_up)).
#[cfg(feature = "std")]
pub async fn look_up<A, F>(
    hosts: Vec<String>,
    mut lookup: impl FnMut(String) -> F,
) -> (Vec<SocketAddr>, u64)
where
    F: core::future::Future<Output = std::io::Result<A>>,
    A: IntoIterator<Item = SocketAddr>,
{
    let (mut addrs, mut failures) = (Vec::new(), 0);
    for host in hosts {
        match lookup(host.clone()).await {
            Ok(found) => addrs.extend(found),
            Err(_e) => {
                failures += 1;
                #[cfg(feature = "tracing")]
                tracing::warn!(%host, error = %_e, "seed did not resolve");
            }
        }
    }
    (addrs, failures)
}

/// A join through `addrs`, without `own` and duplicates; `None` if none
/// is left (a member without seeds waits for others).
fn join_through<T: SocketIdentity>(
    mut addrs: Vec<SocketAddr>,
    own: SocketAddr,
) -> Option<Command<T>> {
    addrs.retain(|a| *a != own);
    addrs.sort_unstable();
    addrs.dedup();
    (!addrs.is_empty()).then(|| Command::Join(addrs.into_iter().map(T::seed_at).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn addr(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last], port))
    }

    #[test]
    fn host_seeds_are_looked_up_at_join_and_again_while_alone() {
        let (own, seed, found) = (addr(9, 7000), addr(1, 7000), addr(2, 7000));
        let mut seeds = Seeds::new(vec![
            Seed::Addr(seed),
            Seed::Addr(own),
            Seed::from("seed.internal:7000"),
        ]);
        assert_eq!(seeds.lookup_due(), None);
        let t = Duration::from_secs(5);
        let join = |addrs: &[SocketAddr]| Some(Command::Join(addrs.to_vec()));
        assert_eq!(seeds.join::<SocketAddr>(t, own), join(&[seed]));
        assert_eq!(
            seeds.start_lookup(t),
            Some(vec![String::from("seed.internal:7000")])
        );
        // One lookup at a time.
        assert_eq!(seeds.lookup_due(), None);
        let alone = ConnectionState::Disconnected;
        let cmd = seeds.looked_up::<SocketAddr>(t, vec![found, seed], own, alone);
        assert_eq!(cmd, join(&[seed, found]));
        assert_eq!(seeds.lookup_due(), Some(t + RESOLVE_INTERVAL));
        // Connected: no more lookups; alone again: one at once.
        seeds.notice::<u8>(t, &Notification::Active);
        assert_eq!(seeds.lookup_due(), None);
        seeds.notice::<u8>(t, &Notification::Idle);
        assert_eq!(seeds.lookup_due(), Some(t));
        let _ = seeds.start_lookup(t);
        let left = ConnectionState::Left;
        assert_eq!(seeds.looked_up::<SocketAddr>(t, vec![], own, left), None);
        // Without seeds, joining announces to nobody.
        assert_eq!(Seeds::new(vec![]).join::<SocketAddr>(t, own), None);
    }
}
