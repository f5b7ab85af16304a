//! Unit tests for every transition of the member state table and for each
//! step of the probe cycle, driving one `Foca` by hand with a recording
//! runtime and hand-built datagrams.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use foca_core::testing::{TestCodec, TestId};
use foca_core::{
    Config, ConnectionState, Foca, GenerationalId, Header, Member, Message, Notification, Opened,
    Runtime, State, Timer,
};
use rand::SeedableRng;
use rand::rngs::Xoshiro128PlusPlus;

#[derive(Default)]
struct Rec {
    sent: Vec<(TestId, Vec<u8>)>,
    timers: Vec<(Timer<TestId>, Duration)>,
    notes: Vec<Notification<TestId>>,
}

impl Runtime<TestId> for Rec {
    fn notify(&mut self, n: Notification<TestId>) {
        self.notes.push(n);
    }
    fn send_to(&mut self, to: TestId, data: &[u8]) {
        self.sent.push((to, data.to_vec()));
    }
    fn submit_after(&mut self, t: Timer<TestId>, after: Duration) {
        self.timers.push((t, after));
    }
}

impl Rec {
    fn clear(&mut self) {
        self.sent.clear();
        self.timers.clear();
        self.notes.clear();
    }

    /// Decoded headers and updates of everything sent.
    fn messages(&self) -> Vec<(TestId, Header<TestId>, Vec<Member<TestId>>)> {
        self.sent
            .iter()
            .map(|(to, data)| {
                let (h, u) = decode(data);
                (*to, h, u)
            })
            .collect()
    }

    fn take_timer(&mut self, pred: impl Fn(&Timer<TestId>) -> bool) -> Timer<TestId> {
        let pos = self
            .timers
            .iter()
            .position(|(t, _)| pred(t))
            .unwrap_or_else(|| panic!("no such timer in {:?}", self.timers));
        self.timers.remove(pos).0
    }
}

type F = Foca<TestId, TestCodec, Xoshiro128PlusPlus>;

fn id(addr: u32) -> TestId {
    GenerationalId::new(addr, 1)
}

fn me() -> TestId {
    id(1)
}

fn foca() -> F {
    foca_with(Config::simple())
}

fn foca_with(config: Config) -> F {
    Foca::new(
        me(),
        config,
        Xoshiro128PlusPlus::seed_from_u64(1),
        TestCodec,
    )
    .unwrap()
}

fn encode(header: &Header<TestId>, updates: &[Member<TestId>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = foca_core::wire::Writer::new(
        &mut out,
        foca_core::MAX_PACKET_SIZE,
        &mut TestCodec,
        header,
        &[],
    )
    .unwrap();
    for u in updates {
        assert!(w.push_update(&mut TestCodec, u).unwrap());
    }
    w.finish(0, &[]); // no custom broadcasts
    if foca_core::wire::is_padded(&header.message) {
        foca_core::wire::pad(&mut out, 0); // the shortest padding
    }
    out
}

fn decode(data: &[u8]) -> (Header<TestId>, Vec<Member<TestId>>) {
    let d = foca_core::wire::parse(&mut TestCodec, data).unwrap();
    (d.header, d.updates)
}

fn datagram(from: TestId, inc: u32, msg: Message<TestId>, updates: &[Member<TestId>]) -> Vec<u8> {
    encode(
        &Header {
            src: from,
            src_incarnation: inc,
            dst: me(),
            message: msg,
        },
        updates,
    )
}

fn state_of(f: &F, addr: u32) -> Option<(u32, u32, State)> {
    f.member(&addr)
        .map(|m| (m.id().generation(), m.incarnation(), m.state()))
}

fn apply(f: &mut F, rt: &mut Rec, m: Member<TestId>) {
    f.apply_many([m], &mut *rt).unwrap();
}

fn has_timer(rt: &Rec, pred: impl Fn(&Timer<TestId>) -> bool) -> bool {
    rt.timers.iter().any(|(t, _)| pred(t))
}

// ---- the member table: news about another member ----

#[test]
fn unknown_alive_joins_and_is_announced_up() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    assert_eq!(state_of(&f, 2), Some((1, 0, State::Alive)));
    assert!(rt.notes.contains(&Notification::MemberUp(id(2))));
    assert!(rt.notes.contains(&Notification::Active));
    assert_eq!(f.connection_state(), ConnectionState::Connected);
    assert_eq!(f.updates_backlog(), 1);
}

#[test]
fn unknown_suspect_joins_with_a_suspicion_timer() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::new(id(2), 3, State::Suspect));
    assert_eq!(state_of(&f, 2), Some((1, 3, State::Suspect)));
    assert!(rt.notes.contains(&Notification::MemberUp(id(2))));
    assert!(has_timer(&rt, |t| matches!(
        t,
        Timer::ChangeSuspectToDown { incarnation: 3, .. }
    )));
}

#[test]
fn unknown_down_or_left_is_recorded_silently() {
    for state in [State::Down, State::Left] {
        let (mut f, mut rt) = (foca(), Rec::default());
        apply(&mut f, &mut rt, Member::new(id(2), 2, state));
        assert_eq!(state_of(&f, 2), Some((1, 2, state)));
        assert_eq!(f.num_members(), 0);
        assert!(rt.notes.is_empty(), "{:?}", rt.notes);
        assert!(has_timer(&rt, |t| matches!(
            t,
            Timer::RemoveDown { incarnation: 2, .. }
        )));
    }
}

#[test]
fn alive_at_same_or_lower_incarnation_changes_nothing() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 5));
    rt.clear();
    let backlog = f.updates_backlog();
    apply(&mut f, &mut rt, Member::alive(id(2), 5));
    apply(&mut f, &mut rt, Member::alive(id(2), 4));
    assert_eq!(state_of(&f, 2), Some((1, 5, State::Alive)));
    assert!(rt.notes.is_empty());
    assert_eq!(f.updates_backlog(), backlog);
}

#[test]
fn alive_at_higher_incarnation_updates_quietly() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 1));
    rt.clear();
    apply(&mut f, &mut rt, Member::alive(id(2), 2));
    assert_eq!(state_of(&f, 2), Some((1, 2, State::Alive)));
    assert!(rt.notes.is_empty());
}

#[test]
fn alive_to_suspect_at_same_incarnation_starts_the_timer() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 1));
    rt.clear();
    apply(&mut f, &mut rt, Member::new(id(2), 0, State::Suspect));
    assert_eq!(
        state_of(&f, 2),
        Some((1, 1, State::Alive)),
        "stale suspicion"
    );
    apply(&mut f, &mut rt, Member::new(id(2), 1, State::Suspect));
    assert_eq!(state_of(&f, 2), Some((1, 1, State::Suspect)));
    assert!(rt.notes.is_empty(), "suspects are still members");
    assert_eq!(f.num_members(), 1);
    let after = rt
        .timers
        .iter()
        .find(|(t, _)| matches!(t, Timer::ChangeSuspectToDown { .. }))
        .unwrap()
        .1;
    assert_eq!(after, Config::simple().suspicion_timeout(2));
}

#[test]
fn suspect_refuted_by_higher_alive_only() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::new(id(2), 1, State::Suspect));
    apply(&mut f, &mut rt, Member::alive(id(2), 1));
    assert_eq!(state_of(&f, 2), Some((1, 1, State::Suspect)));
    apply(&mut f, &mut rt, Member::alive(id(2), 2));
    assert_eq!(state_of(&f, 2), Some((1, 2, State::Alive)));
    assert_eq!(f.metrics().suspicions_refuted, 1);
}

#[test]
fn down_at_current_incarnation_takes_member_down() {
    for from in [State::Alive, State::Suspect] {
        let (mut f, mut rt) = (foca(), Rec::default());
        apply(&mut f, &mut rt, Member::new(id(2), 3, from));
        rt.clear();
        apply(&mut f, &mut rt, Member::new(id(2), 3, State::Down));
        assert_eq!(state_of(&f, 2), Some((1, 3, State::Down)));
        assert!(rt.notes.contains(&Notification::MemberDown(id(2))));
        assert!(rt.notes.contains(&Notification::Idle));
        assert_eq!(f.num_members(), 0);
    }
}

#[test]
fn stale_down_never_overrides_a_refutation() {
    // The original crate's bug: a Down about an old incarnation killed a
    // member that had already refuted.
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::new(id(2), 3, State::Suspect));
    apply(&mut f, &mut rt, Member::alive(id(2), 4));
    rt.clear();
    apply(&mut f, &mut rt, Member::new(id(2), 3, State::Down));
    assert_eq!(state_of(&f, 2), Some((1, 4, State::Alive)));
    assert!(rt.notes.is_empty());
}

#[test]
fn left_is_reported_apart_from_down() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 1));
    rt.clear();
    apply(&mut f, &mut rt, Member::new(id(2), 1, State::Left));
    assert_eq!(state_of(&f, 2), Some((1, 1, State::Left)));
    assert!(rt.notes.contains(&Notification::MemberLeft(id(2))));
    assert!(
        !rt.notes
            .iter()
            .any(|n| matches!(n, Notification::MemberDown(_)))
    );
}

#[test]
fn down_is_undone_only_by_a_higher_incarnation() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 1));
    apply(&mut f, &mut rt, Member::new(id(2), 1, State::Down));
    rt.clear();
    apply(&mut f, &mut rt, Member::alive(id(2), 1));
    apply(&mut f, &mut rt, Member::new(id(2), 1, State::Suspect));
    assert_eq!(state_of(&f, 2), Some((1, 1, State::Down)));
    assert!(rt.notes.is_empty());
    apply(&mut f, &mut rt, Member::alive(id(2), 2));
    assert_eq!(state_of(&f, 2), Some((1, 2, State::Alive)));
    assert!(rt.notes.contains(&Notification::MemberUp(id(2))));
}

#[test]
fn inactive_to_inactive_is_silent_and_left_outranks_down() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::new(id(2), 1, State::Down));
    apply(&mut f, &mut rt, Member::new(id(2), 1, State::Left));
    assert_eq!(state_of(&f, 2), Some((1, 1, State::Left)));
    apply(&mut f, &mut rt, Member::new(id(2), 1, State::Down));
    assert_eq!(state_of(&f, 2), Some((1, 1, State::Left)));
    assert!(rt.notes.is_empty());
}

#[test]
fn newer_generation_replaces_older_and_is_renamed() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 7));
    rt.clear();
    let newer = GenerationalId::new(2, 2);
    apply(&mut f, &mut rt, Member::alive(newer, 0));
    assert_eq!(state_of(&f, 2), Some((2, 0, State::Alive)));
    assert_eq!(rt.notes, vec![Notification::Rename(id(2), newer)]);
    // News about the superseded generation is ignored, whatever it says.
    apply(&mut f, &mut rt, Member::new(id(2), 99, State::Down));
    assert_eq!(state_of(&f, 2), Some((2, 0, State::Alive)));
    // A down old generation replaced by a live new one is a MemberUp.
    let newest = GenerationalId::new(2, 3);
    apply(&mut f, &mut rt, Member::new(newer, 0, State::Down));
    rt.clear();
    apply(&mut f, &mut rt, Member::alive(newest, 0));
    assert_eq!(
        rt.notes,
        vec![Notification::MemberUp(newest), Notification::Active]
    );
}

#[test]
fn table_bound_evicts_inactive_and_counts_drops() {
    let config = Config {
        max_members: 2,
        ..Config::simple()
    };
    let mut f = foca_with(config);
    let mut rt = Rec::default();
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    apply(&mut f, &mut rt, Member::new(id(3), 0, State::Down));
    apply(&mut f, &mut rt, Member::alive(id(4), 0)); // evicts 3
    assert!(f.member(&3).is_none());
    assert_eq!(f.num_members(), 2);
    apply(&mut f, &mut rt, Member::alive(id(5), 0)); // no room
    assert!(f.member(&5).is_none());
    assert_eq!(f.metrics().members_dropped, 1);
}

// ---- news about this member ----

#[test]
fn suspicion_of_self_is_refuted() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    apply(&mut f, &mut rt, Member::new(me(), 0, State::Suspect));
    assert_eq!(f.incarnation(), 1);
    assert_eq!(f.metrics().self_suspicions_refuted, 1);
    // An older suspicion is ignored.
    apply(&mut f, &mut rt, Member::new(me(), 0, State::Suspect));
    assert_eq!(f.incarnation(), 1);
}

#[test]
fn being_declared_down_is_refuted_not_fatal() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    apply(&mut f, &mut rt, Member::new(me(), 4, State::Down));
    assert_eq!(f.incarnation(), 5);
    assert_eq!(f.metrics().self_declared_down, 1);
    assert_eq!(f.connection_state(), ConnectionState::Connected);
    // A stale Down (lower incarnation) is not "being told you are down".
    apply(&mut f, &mut rt, Member::new(me(), 4, State::Down));
    assert_eq!(f.metrics().self_declared_down, 1);
}

#[test]
fn alive_of_self_at_higher_incarnation_is_adopted() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(me(), 9));
    assert_eq!(f.incarnation(), 9);
}

#[test]
fn news_of_another_identity_on_own_address_is_ignored() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(
        &mut f,
        &mut rt,
        Member::new(GenerationalId::new(1, 0), 9, State::Down),
    );
    assert_eq!(f.incarnation(), 0);
    assert_eq!(f.metrics().foreign_self_updates, 1);
    assert!(f.member(&1).is_none());
}

#[test]
fn spent_incarnation_renews_identity() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    apply(&mut f, &mut rt, Member::new(me(), u32::MAX, State::Suspect));
    assert_eq!(*f.identity(), GenerationalId::new(1, 2));
    assert_eq!(f.incarnation(), 0);
    assert!(
        rt.notes
            .contains(&Notification::Rejoin(GenerationalId::new(1, 2)))
    );
}

#[test]
fn spent_incarnation_without_renewal_is_never_defunct_by_news() {
    let top = GenerationalId::new(1, u32::MAX);
    let mut f: F = Foca::new(
        top,
        Config::simple(),
        Xoshiro128PlusPlus::seed_from_u64(1),
        TestCodec,
    )
    .unwrap();
    let mut rt = Rec::default();
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    // A former life got to the last incarnation; then news of it down
    // there. It cannot refute, and stays.
    apply(&mut f, &mut rt, Member::alive(top, u32::MAX));
    apply(&mut f, &mut rt, Member::new(top, u32::MAX, State::Down));
    assert_eq!(f.connection_state(), ConnectionState::Connected);
    assert!(!rt.notes.contains(&Notification::Defunct));
    assert_eq!(f.metrics().unrefutable, 1);
    // Only a rejoin of its own, with nothing left to rejoin at, is.
    f.leave_cluster(&mut rt).unwrap();
    f.announce(id(2), &mut rt).unwrap();
    assert_eq!(f.connection_state(), ConnectionState::Defunct);
    assert!(rt.notes.contains(&Notification::Defunct));
    assert_eq!(
        f.gossip(&mut rt).unwrap_err().to_string(),
        foca_core::Error::Defunct.to_string()
    );
    // A new identity revives it.
    f.change_identity(GenerationalId::new(9, 1), &mut rt)
        .unwrap();
    assert_eq!(f.connection_state(), ConnectionState::Connected);
}

#[test]
fn hearsay_raises_incarnations_by_a_bounded_step() {
    let step = Config::simple().max_incarnation_step;
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    apply(&mut f, &mut rt, Member::alive(id(3), 5));
    let gossip = |news: &[Member<TestId>]| datagram(id(2), 0, Message::Gossip, news);
    // About this member, from 2: beyond the step, ignored.
    let far = Member::new(me(), step + 1, State::Suspect);
    f.handle_data(&gossip(&[far]), &mut rt).unwrap();
    assert_eq!(f.incarnation(), 0);
    assert_eq!(f.metrics().hearsay_ignored, 1);
    // Within it, refuted.
    let near = Member::new(me(), step, State::Suspect);
    f.handle_data(&gossip(&[near]), &mut rt).unwrap();
    assert_eq!(f.incarnation(), step + 1);
    // About 3, from 2: beyond the step above 5, ignored; 3's own word is not.
    let far = Member::new(id(3), 5 + step + 1, State::Down);
    f.handle_data(&gossip(&[far]), &mut rt).unwrap();
    assert_eq!(state_of(&f, 3), Some((1, 5, State::Alive)));
    assert_eq!(f.metrics().hearsay_ignored, 2);
    let own = datagram(id(3), 5000, Message::Gossip, &[]);
    f.handle_data(&own, &mut rt).unwrap();
    assert_eq!(state_of(&f, 3), Some((1, 5000, State::Alive)));
    // A member not known yet: not bounded.
    let new = Member::alive(id(4), 70_000);
    f.handle_data(&gossip(&[new]), &mut rt).unwrap();
    assert_eq!(state_of(&f, 4), Some((1, 70_000, State::Alive)));
}

#[test]
fn a_verdict_heard_about_a_live_member_is_passed_to_it() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    apply(&mut f, &mut rt, Member::alive(id(3), 0));
    rt.clear();
    let down = Member::new(id(3), 0, State::Down);
    f.handle_data(
        &datagram(id(2), 0, Message::Gossip, std::slice::from_ref(&down)),
        &mut rt,
    )
    .unwrap();
    let told: Vec<_> = rt
        .messages()
        .into_iter()
        .filter(|(to, h, _)| *to == id(3) && h.message == Message::TurnUndead)
        .collect();
    assert_eq!(told.len(), 1, "{:?}", rt.messages());
    assert_eq!(told[0].2, vec![down]);
    assert_eq!(f.metrics().verdicts_forwarded, 1);
    // A verdict of our own is not passed on this way.
    rt.clear();
    apply(&mut f, &mut rt, Member::new(id(2), 0, State::Down));
    assert!(
        rt.messages()
            .iter()
            .all(|(_, h, _)| h.message != Message::TurnUndead)
    );
}

#[test]
fn queued_news_goes_out_as_the_table_has_it_and_a_left_identity_too() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    apply(&mut f, &mut rt, Member::alive(id(3), 0));
    // Suspected: the queue sends the table's record of it.
    apply(&mut f, &mut rt, Member::new(id(3), 0, State::Suspect));
    f.change_identity(GenerationalId::new(9, 1), &mut rt)
        .unwrap();
    rt.clear();
    f.gossip(&mut rt).unwrap();
    let sent = rt.messages();
    assert!(!sent.is_empty());
    for (_, _, updates) in &sent {
        let about = |a: u32| updates.iter().find(|m| *m.id().address() == a).cloned();
        // The identity left behind, announced as left; the new one alive.
        assert_eq!(about(1), Some(Member::new(me(), 0, State::Left)));
        assert_eq!(about(9), Some(Member::alive(GenerationalId::new(9, 1), 0)));
        assert_eq!(about(3), Some(Member::new(id(3), 0, State::Suspect)));
    }
}

// ---- timers of the table ----

#[test]
fn suspicion_timeout_declares_down_only_if_unchanged() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(3), 0));
    apply(&mut f, &mut rt, Member::new(id(2), 1, State::Suspect));
    let timer = rt.take_timer(|t| matches!(t, Timer::ChangeSuspectToDown { .. }));
    // Refuted in time: the timer is stale.
    apply(&mut f, &mut rt, Member::alive(id(2), 2));
    rt.clear();
    f.handle_timer(timer.clone(), &mut rt).unwrap();
    assert_eq!(state_of(&f, 2), Some((1, 2, State::Alive)));
    assert!(rt.notes.is_empty());
    // Not refuted: down.
    apply(&mut f, &mut rt, Member::new(id(2), 2, State::Suspect));
    let timer = rt.take_timer(|t| matches!(t, Timer::ChangeSuspectToDown { .. }));
    f.handle_timer(timer, &mut rt).unwrap();
    assert_eq!(state_of(&f, 2), Some((1, 2, State::Down)));
    assert!(rt.notes.contains(&Notification::MemberDown(id(2))));
    assert_eq!(f.metrics().members_declared_down, 1);
}

#[test]
fn remove_down_forgets_unless_alone() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::new(id(2), 1, State::Down));
    let timer = rt.take_timer(|t| matches!(t, Timer::RemoveDown { .. }));
    // Alone: kept as a recovery contact, checked again later.
    rt.clear();
    f.handle_timer(timer.clone(), &mut rt).unwrap();
    assert!(f.member(&2).is_some());
    assert!(has_timer(&rt, |t| *t == timer));
    // With a live peer: forgotten.
    apply(&mut f, &mut rt, Member::alive(id(3), 0));
    f.handle_timer(timer, &mut rt).unwrap();
    assert!(f.member(&2).is_none());
}

// ---- the probe cycle ----

/// A member that knows 2, 3 and 4, with its first probe timer taken.
fn probing() -> (F, Rec, Timer<TestId>) {
    let (mut f, mut rt) = (foca(), Rec::default());
    for a in 2..=4 {
        apply(&mut f, &mut rt, Member::alive(id(a), 0));
    }
    let t = rt.take_timer(|t| matches!(t, Timer::ProbeRandomMember(_)));
    rt.clear();
    (f, rt, t)
}

/// Fires a probe timer; returns (target, probe number, next probe timer,
/// indirect timer).
fn fire_probe(
    f: &mut F,
    rt: &mut Rec,
    t: Timer<TestId>,
) -> (TestId, u32, Timer<TestId>, Timer<TestId>) {
    rt.clear();
    f.handle_timer(t, &mut *rt).unwrap();
    let msgs = rt.messages();
    assert_eq!(msgs.len(), 1, "one ping per probe");
    let (to, h, _) = &msgs[0];
    let Message::Ping(n) = h.message else {
        panic!("expected a ping, got {:?}", h.message)
    };
    assert!(
        rt.timers
            .iter()
            .any(|(t, d)| matches!(t, Timer::ProbeRandomMember(_))
                && *d == Config::simple().probe_period)
    );
    assert!(
        rt.timers
            .iter()
            .any(|(t, d)| matches!(t, Timer::SendIndirectProbe { .. })
                && *d == Config::simple().probe_rtt)
    );
    let next = rt.take_timer(|t| matches!(t, Timer::ProbeRandomMember(_)));
    let indirect = rt.take_timer(|t| matches!(t, Timer::SendIndirectProbe { .. }));
    (*to, n, next, indirect)
}

#[test]
fn probe_round_covers_every_member_once() {
    let (mut f, mut rt, mut t) = probing();
    let mut targets = Vec::new();
    for _ in 0..3 {
        let (to, n, next, indirect) = fire_probe(&mut f, &mut rt, t);
        // Answer each ping so no one is suspected.
        f.handle_data(&datagram(to, 0, Message::Ack(n), &[]), &mut rt)
            .unwrap();
        f.handle_timer(indirect, &mut rt).unwrap();
        targets.push(*to.address());
        t = next;
    }
    targets.sort();
    assert_eq!(targets, vec![2, 3, 4]);
    assert_eq!(f.metrics().probes_sent, 3);
    assert_eq!(f.metrics().probes_failed, 0);
}

#[test]
fn acked_probe_sends_no_ping_req_and_raises_no_suspicion() {
    let (mut f, mut rt, t) = probing();
    let (to, n, next, indirect) = fire_probe(&mut f, &mut rt, t);
    f.handle_data(&datagram(to, 0, Message::Ack(n), &[]), &mut rt)
        .unwrap();
    rt.clear();
    f.handle_timer(indirect, &mut rt).unwrap();
    assert!(rt.sent.is_empty(), "no indirect probe after an ack");
    f.handle_timer(next, &mut rt).unwrap();
    assert_eq!(f.metrics().suspicions_raised, 0);
    assert_eq!(state_of(&f, *to.address()).unwrap().2, State::Alive);
}

#[test]
fn ack_with_wrong_number_or_sender_does_not_count() {
    let (mut f, mut rt, t) = probing();
    let (to, n, next, indirect) = fire_probe(&mut f, &mut rt, t);
    let other = (2..=4).map(id).find(|i| *i != to).unwrap();
    f.handle_data(&datagram(to, 0, Message::Ack(n + 1), &[]), &mut rt)
        .unwrap();
    f.handle_data(&datagram(other, 0, Message::Ack(n), &[]), &mut rt)
        .unwrap();
    f.handle_timer(indirect, &mut rt).unwrap();
    f.handle_timer(next, &mut rt).unwrap();
    assert_eq!(f.metrics().suspicions_raised, 1);
    assert_eq!(state_of(&f, *to.address()).unwrap().2, State::Suspect);
}

#[test]
fn unanswered_probe_asks_helpers_then_suspects() {
    let (mut f, mut rt, t) = probing();
    let (to, n, next, indirect) = fire_probe(&mut f, &mut rt, t);
    rt.clear();
    f.handle_timer(indirect, &mut rt).unwrap();
    let reqs = rt.messages();
    // Two helpers available (the other two members), 3 wanted.
    assert_eq!(reqs.len(), 2);
    for (helper, h, _) in &reqs {
        assert_ne!(*helper, to);
        assert_eq!(
            h.message,
            Message::PingReq {
                target: to,
                probe_number: n
            }
        );
    }
    rt.clear();
    f.handle_timer(next, &mut rt).unwrap();
    assert_eq!(f.metrics().probes_failed, 1);
    assert_eq!(f.metrics().suspicions_raised, 1);
    assert_eq!(state_of(&f, *to.address()).unwrap().2, State::Suspect);
    assert!(has_timer(&rt, |t| matches!(
        t,
        Timer::ChangeSuspectToDown { .. }
    )));
}

#[test]
fn forwarded_ack_saves_the_probe() {
    let (mut f, mut rt, t) = probing();
    let (to, n, next, indirect) = fire_probe(&mut f, &mut rt, t);
    f.handle_timer(indirect, &mut rt).unwrap();
    let helper = (2..=4).map(id).find(|i| *i != to).unwrap();
    let fwd = Message::ForwardedAck {
        target: to,
        probe_number: n,
    };
    f.handle_data(&datagram(helper, 0, fwd, &[]), &mut rt)
        .unwrap();
    f.handle_timer(next, &mut rt).unwrap();
    assert_eq!(f.metrics().indirect_successes, 1);
    assert_eq!(f.metrics().suspicions_raised, 0);
}

/// `Config::simple` with patient probes.
fn patient() -> Config {
    Config {
        patient_probes: true,
        ..Config::simple()
    }
}

/// With `Config::patient_probes`: runs a probe of a member that never
/// answers through its retry (half the probe RTT) and its indirect stage
/// (the probe RTT) to the end of its period, then starts the next probe.
/// Returns (target, probe number, the next probe's target and number, its
/// first indirect-stage timer).
fn patient_probe_to_period_end(
    f: &mut F,
    rt: &mut Rec,
) -> (TestId, u32, (TestId, u32), Timer<TestId>) {
    let rtt = patient().probe_rtt;
    for a in 2..=4 {
        apply(f, rt, Member::alive(id(a), 0));
    }
    let t = rt.take_timer(|t| matches!(t, Timer::ProbeRandomMember(_)));
    rt.clear();
    f.handle_timer(t, &mut *rt).unwrap();
    let (to, h, _) = rt.messages().remove(0);
    let Message::Ping(n) = h.message else {
        panic!("expected a ping, got {:?}", h.message)
    };
    let stage = |rt: &mut Rec, after: Duration| {
        assert!(
            rt.timers
                .iter()
                .any(|(t, d)| matches!(t, Timer::SendIndirectProbe { .. }) && *d == after),
            "an indirect-stage timer after {after:?} in {:?}",
            rt.timers
        );
        rt.take_timer(|t| matches!(t, Timer::SendIndirectProbe { .. }))
    };
    let next = rt.take_timer(|t| matches!(t, Timer::ProbeRandomMember(_)));
    let retry = stage(rt, rtt / 2);
    // Half the probe RTT: the same ping again, no helpers yet.
    rt.clear();
    f.handle_timer(retry, &mut *rt).unwrap();
    let sent: Vec<_> = rt
        .messages()
        .into_iter()
        .map(|(to, h, _)| (to, h.message))
        .collect();
    assert_eq!(sent, vec![(to, Message::Ping(n))]);
    assert_eq!(f.metrics().probes_retried, 1);
    // The probe RTT: helpers.
    let indirect = stage(rt, rtt - rtt / 2);
    rt.clear();
    f.handle_timer(indirect, &mut *rt).unwrap();
    let reqs = rt.messages();
    assert_eq!(reqs.len(), 2, "both other members are asked");
    assert!(reqs.iter().all(|(_, h, _)| matches!(
        h.message,
        Message::PingReq { target, probe_number } if target == to && probe_number == n
    )));
    // The period ends: no verdict yet, and the next probe starts on time.
    rt.clear();
    f.handle_timer(next, &mut *rt).unwrap();
    assert_eq!(f.metrics().probes_failed, 0);
    assert_eq!(f.metrics().suspicions_raised, 0);
    assert_eq!(state_of(f, *to.address()).unwrap().2, State::Alive);
    let (to2, h, _) = rt.messages().remove(0);
    let Message::Ping(n2) = h.message else {
        panic!("expected the next ping, got {:?}", h.message)
    };
    assert_ne!(to2, to, "the round goes on to another member");
    let retry2 = stage(rt, rtt / 2);
    (to, n, (to2, n2), retry2)
}

#[test]
fn patient_probe_takes_an_ack_that_comes_after_its_period() {
    let (mut f, mut rt) = (foca_with(patient()), Rec::default());
    let (to, n, (to2, n2), retry2) = patient_probe_to_period_end(&mut f, &mut rt);
    // The late member answers the first probe during the second, whose
    // target answers at once.
    f.handle_data(&datagram(to, 0, Message::Ack(n), &[]), &mut rt)
        .unwrap();
    f.handle_data(&datagram(to2, 0, Message::Ack(n2), &[]), &mut rt)
        .unwrap();
    rt.clear();
    f.handle_timer(retry2, &mut rt).unwrap();
    assert!(rt.sent.is_empty(), "no retry of an acked probe");
    let indirect2 = rt.take_timer(|t| matches!(t, Timer::SendIndirectProbe { .. }));
    rt.clear();
    f.handle_timer(indirect2, &mut rt).unwrap();
    assert!(rt.sent.is_empty(), "no helpers for an acked probe");
    let m = f.metrics();
    assert_eq!((m.probes_failed, m.suspicions_raised), (0, 0));
    assert_eq!(state_of(&f, *to.address()).unwrap().2, State::Alive);
}

#[test]
fn patient_probe_unanswered_suspects_at_the_next_indirect_stage() {
    let (mut f, mut rt) = (foca_with(patient()), Rec::default());
    let (to, _, _, retry2) = patient_probe_to_period_end(&mut f, &mut rt);
    f.handle_timer(retry2, &mut rt).unwrap();
    assert_eq!(f.metrics().suspicions_raised, 0, "not before the probe RTT");
    let indirect2 = rt.take_timer(|t| matches!(t, Timer::SendIndirectProbe { .. }));
    f.handle_timer(indirect2, &mut rt).unwrap();
    let m = f.metrics();
    assert_eq!((m.probes_failed, m.suspicions_raised), (1, 1));
    assert_eq!(state_of(&f, *to.address()).unwrap().2, State::Suspect);
}

#[test]
fn patient_probe_is_answered_by_an_ack_to_the_next_probe_of_its_member() {
    // A cluster of two: every probe goes to member 2.
    let (mut f, mut rt) = (foca_with(patient()), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    let stage = |rt: &mut Rec| rt.take_timer(|t| matches!(t, Timer::SendIndirectProbe { .. }));
    let period = |rt: &mut Rec| rt.take_timer(|t| matches!(t, Timer::ProbeRandomMember(_)));
    // Probe 1 goes unanswered to the end of its period.
    let t = period(&mut rt);
    f.handle_timer(t, &mut rt).unwrap();
    let next = period(&mut rt);
    let retry = stage(&mut rt);
    f.handle_timer(retry, &mut rt).unwrap();
    let indirect = stage(&mut rt);
    f.handle_timer(indirect, &mut rt).unwrap();
    rt.clear();
    f.handle_timer(next, &mut rt).unwrap();
    let (to, h, _) = rt.messages().remove(0);
    assert_eq!(to, id(2));
    let Message::Ping(n2) = h.message else {
        panic!("expected a ping, got {:?}", h.message)
    };
    // Member 2 answers probe 2 only: alive, so probe 1 raises nothing.
    f.handle_data(&datagram(id(2), 0, Message::Ack(n2), &[]), &mut rt)
        .unwrap();
    let retry2 = stage(&mut rt);
    f.handle_timer(retry2, &mut rt).unwrap();
    let indirect2 = stage(&mut rt);
    f.handle_timer(indirect2, &mut rt).unwrap();
    assert_eq!(f.metrics().suspicions_raised, 0);
    assert_eq!(state_of(&f, 2).unwrap().2, State::Alive);
}

#[test]
fn probe_whose_indirect_stage_never_ran_is_not_a_suspicion() {
    let (mut f, mut rt, t) = probing();
    let (to, _, next, indirect) = fire_probe(&mut f, &mut rt, t);
    // The period ends before the (late) indirect timer.
    f.handle_timer(next, &mut rt).unwrap();
    f.handle_timer(indirect, &mut rt).unwrap();
    assert_eq!(f.metrics().probes_incomplete, 1);
    assert_eq!(f.metrics().suspicions_raised, 0);
    assert_eq!(state_of(&f, *to.address()).unwrap().2, State::Alive);
    assert!(f.metrics().stale_timers >= 1);
}

#[test]
fn stale_or_duplicate_probe_timer_is_ignored() {
    let (mut f, mut rt, t) = probing();
    let (_, _, next, _) = fire_probe(&mut f, &mut rt, t.clone());
    rt.clear();
    f.handle_timer(t, &mut rt).unwrap();
    assert!(
        rt.sent.is_empty(),
        "a duplicate must not start a second cycle"
    );
    assert_eq!(f.metrics().stale_timers, 1);
    f.handle_timer(next, &mut rt).unwrap();
    assert_eq!(
        rt.messages()
            .iter()
            .filter(|(_, h, _)| matches!(h.message, Message::Ping(_)))
            .count(),
        1
    );
}

#[test]
fn probing_stops_when_alone_and_restarts_on_join() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    let t = rt.take_timer(|t| matches!(t, Timer::ProbeRandomMember(_)));
    apply(&mut f, &mut rt, Member::new(id(2), 0, State::Down));
    rt.clear();
    f.handle_timer(t, &mut rt).unwrap();
    assert!(rt.sent.is_empty());
    assert!(!has_timer(&rt, |t| matches!(
        t,
        Timer::ProbeRandomMember(_)
    )));
    apply(&mut f, &mut rt, Member::alive(id(3), 0));
    assert!(has_timer(&rt, |t| matches!(t, Timer::ProbeRandomMember(_))));
}

// ---- the helper's side of an indirect probe, and other requests ----

#[test]
fn helper_relays_ping_req_and_forwards_the_ack() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(3), 0));
    rt.clear();
    let req = Message::PingReq {
        target: id(3),
        probe_number: 42,
    };
    f.handle_data(&datagram(id(2), 0, req, &[]), &mut rt)
        .unwrap();
    let m = rt.messages();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].0, id(3));
    assert_eq!(
        m[0].1.message,
        Message::IndirectPing {
            origin: id(2),
            probe_number: 42
        }
    );
    // The nack waits for four fifths of what is left of the period (the
    // prober's probe RTT is 300 ms of its 1 s period).
    let (nack, after) = rt
        .timers
        .iter()
        .find(|(t, _)| matches!(t, Timer::SendNack { .. }))
        .cloned()
        .unwrap();
    assert_eq!(
        nack,
        Timer::SendNack {
            origin: id(2),
            probe_number: 42
        }
    );
    assert_eq!(after, Duration::from_millis(560));
    rt.clear();
    let ack = Message::IndirectAck {
        origin: id(2),
        probe_number: 42,
    };
    f.handle_data(&datagram(id(3), 0, ack, &[]), &mut rt)
        .unwrap();
    let m = rt.messages();
    assert_eq!(m[0].0, id(2));
    assert_eq!(
        m[0].1.message,
        Message::ForwardedAck {
            target: id(3),
            probe_number: 42
        }
    );
    // Answered: the nack timer, if a runtime still delivers it, sends
    // nothing.
    rt.clear();
    f.handle_timer(nack, &mut rt).unwrap();
    assert!(rt.sent.is_empty());

    // A target that stays silent: the prober gets a bare nack.
    let req = Message::PingReq {
        target: id(3),
        probe_number: 43,
    };
    f.handle_data(&datagram(id(2), 0, req, &[]), &mut rt)
        .unwrap();
    let nack = rt.take_timer(|t| matches!(t, Timer::SendNack { .. }));
    rt.clear();
    f.handle_timer(nack, &mut rt).unwrap();
    let m = rt.messages();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].0, id(2));
    assert_eq!(m[0].1.message, Message::Nack(43));
    assert!(m[0].2.is_empty(), "bare");

    // A request about a member this helper does not hold active is
    // nacked at once, and relayed to nobody.
    rt.clear();
    let req = Message::PingReq {
        target: id(9),
        probe_number: 44,
    };
    f.handle_data(&datagram(id(2), 0, req, &[]), &mut rt)
        .unwrap();
    let m = rt.messages();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].1.message, Message::Nack(44));
}

#[test]
fn a_rename_heard_from_others_is_checked_with_the_address_first() {
    // Member 3 runs at generation 1. Member 2 says it restarted as
    // generation u32::MAX (a forger could): not believed, but member 3's
    // address is pinged, under the identity held.
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(3), 0));
    rt.clear();
    let forged = GenerationalId::new(3, u32::MAX);
    let news = [Member::alive(forged, 0)];
    f.handle_data(&datagram(id(2), 0, Message::Gossip, &news), &mut rt)
        .unwrap();
    assert_eq!(f.member(&3).map(|m| *m.id()), Some(id(3)), "not renamed");
    let pings: Vec<_> = rt
        .messages()
        .into_iter()
        .filter(|m| matches!(m.1.message, Message::Ping(_)))
        .collect();
    assert_eq!(pings.len(), 1);
    assert_eq!(pings[0].0, id(3));
    assert_eq!(f.metrics().renames_checked, 1);
    // Heard again in the same period: one check per address.
    f.handle_data(&datagram(id(2), 0, Message::Gossip, &news), &mut rt)
        .unwrap();
    assert_eq!(f.metrics().renames_checked, 1);
    // A real restart answers for itself: its own word is applied.
    let restarted = GenerationalId::new(3, 2);
    f.handle_data(&datagram(restarted, 0, Message::Gossip, &[]), &mut rt)
        .unwrap();
    assert_eq!(f.member(&3).map(|m| *m.id()), Some(restarted));
    // A member held down may be renamed by hearsay (its process is gone).
    apply(&mut f, &mut rt, Member::alive(id(4), 0));
    apply(&mut f, &mut rt, Member::new(id(4), 0, State::Down));
    let news = [Member::alive(GenerationalId::new(4, 5), 0)];
    f.handle_data(&datagram(id(2), 0, Message::Gossip, &news), &mut rt)
        .unwrap();
    assert_eq!(f.member(&4).map(|m| m.id().generation()), Some(5));
}

#[test]
fn a_member_heard_of_from_others_is_pinged_and_added_when_it_answers() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    rt.clear();
    // Member 2 (from its own address) tells of member 7: not believed.
    let news = [Member::alive(id(7), 3)];
    let told = datagram(id(2), 0, Message::Gossip, &news);
    f.handle_data_from(Opened::plain(&told), 2, &mut rt)
        .unwrap();
    assert!(f.member(&7).is_none(), "not added on hearsay");
    let m = rt.messages();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].0, id(7));
    assert!(matches!(m[0].1.message, Message::Ping(_)));
    assert!(m[0].2.is_empty(), "a bare ping");
    assert!(m[0].1.src == me());
    assert_eq!(f.metrics().newcomers_checked, 1);
    // It answers for itself: added, at the incarnation it gives.
    let ack = datagram(id(7), 3, Message::Ack(0), &[]);
    f.handle_data_from(Opened::plain(&ack), 7, &mut rt).unwrap();
    assert_eq!(state_of(&f, 7), Some((1, 3, State::Alive)));
    // Without a known source (the plain callback API), hearsay is believed.
    let (mut g, mut rt) = (foca(), Rec::default());
    g.handle_data(&told, &mut rt).unwrap();
    assert_eq!(state_of(&g, 7), Some((1, 3, State::Alive)));
}

#[test]
fn checks_cost_at_most_three_times_the_news_that_asked_for_them() {
    // One datagram telling of 80 members that do not exist: the pings
    // checking them total at most 3x its bytes.
    let (mut f, mut rt) = (foca(), Rec::default());
    let fakes: Vec<_> = (100..180).map(|a| Member::alive(id(a), 0)).collect();
    let told = datagram(id(2), 0, Message::Gossip, &fakes);
    f.handle_data_from(Opened::plain(&told), 2, &mut rt)
        .unwrap();
    let to_fakes: usize = rt
        .sent
        .iter()
        .filter(|(to, _)| *to.address() >= 100)
        .map(|(_, d)| d.len())
        .sum();
    assert!(to_fakes > 0);
    assert!(to_fakes <= 3 * told.len(), "{to_fakes} for {}", told.len());
    assert_eq!(f.num_members(), 1, "only the sender");
}

#[test]
fn a_ping_request_for_a_stranger_is_refused() {
    // A forger names a third party as the target: pinging it for them
    // would aim this member's datagrams at anyone.
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(3), 0));
    apply(&mut f, &mut rt, Member::new(id(4), 0, State::Down));
    rt.clear();
    for target in [id(9), id(4), GenerationalId::new(3, 7)] {
        let req = Message::PingReq {
            target,
            probe_number: 42,
        };
        f.handle_data(&datagram(id(2), 0, req, &[]), &mut rt)
            .unwrap();
    }
    assert!(
        rt.messages().iter().all(|m| m.0 == id(2)),
        "{:?}",
        rt.messages()
    );
    assert_eq!(f.metrics().ping_requests_refused, 3);
}

#[test]
fn target_answers_indirect_ping_to_the_helper() {
    let (mut f, mut rt) = (foca(), Rec::default());
    let ping = Message::IndirectPing {
        origin: id(2),
        probe_number: 7,
    };
    f.handle_data(&datagram(id(3), 0, ping, &[]), &mut rt)
        .unwrap();
    let m = rt.messages();
    assert_eq!(m[0].0, id(3));
    assert_eq!(
        m[0].1.message,
        Message::IndirectAck {
            origin: id(2),
            probe_number: 7
        }
    );
}

#[test]
fn ping_is_acked_with_its_number() {
    let (mut f, mut rt) = (foca(), Rec::default());
    f.handle_data(&datagram(id(2), 3, Message::Ping(11), &[]), &mut rt)
        .unwrap();
    let m = rt.messages();
    assert_eq!(m[0].1.message, Message::Ack(11));
    assert_eq!(
        state_of(&f, 2),
        Some((1, 3, State::Alive)),
        "sender learned alive"
    );
}

#[test]
fn announce_to_any_generation_is_answered_with_a_feed() {
    let (mut f, mut rt) = (foca(), Rec::default());
    for a in 3..=6 {
        apply(&mut f, &mut rt, Member::alive(id(a), 0));
    }
    rt.clear();
    let mut h = Header {
        src: id(2),
        src_incarnation: 0,
        dst: GenerationalId::seed(1),
        message: Message::Announce,
    };
    f.handle_data(&encode(&h, &[]), &mut rt).unwrap();
    let m = rt.messages();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].1.message, Message::Feed);
    let mut fed: Vec<u32> = m[0].2.iter().map(|u| *u.id().address()).collect();
    fed.sort();
    assert_eq!(
        fed,
        vec![3, 4, 5, 6],
        "every other active member, not the joiner"
    );
    // Other messages to a wrong generation are dropped (a ping of an older
    // one is answered with our current identity only).
    h.message = Message::Gossip;
    rt.clear();
    f.handle_data(&encode(&h, &[]), &mut rt).unwrap();
    assert!(rt.sent.is_empty());
    assert_eq!(f.metrics().dropped.wrong_destination, 1);
}

#[test]
fn talk_from_a_down_member_is_answered_with_turn_undead() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(3), 0));
    apply(&mut f, &mut rt, Member::new(id(2), 4, State::Down));
    rt.clear();
    f.handle_data(&datagram(id(2), 4, Message::Ping(1), &[]), &mut rt)
        .unwrap();
    assert_eq!(f.metrics().dropped.from_down_member, 1);
    let m = rt.messages();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].1.message, Message::TurnUndead);
    assert_eq!(m[0].2, vec![Member::new(id(2), 4, State::Down)]);
    assert_eq!(state_of(&f, 2), Some((1, 4, State::Down)));
    // At a higher incarnation it is back.
    rt.clear();
    f.handle_data(&datagram(id(2), 5, Message::Ping(2), &[]), &mut rt)
        .unwrap();
    assert_eq!(state_of(&f, 2), Some((1, 5, State::Alive)));
    assert!(rt.notes.contains(&Notification::MemberUp(id(2))));
}

#[test]
fn turn_undead_makes_the_member_refute_and_announce() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(3), 0));
    rt.clear();
    let verdict = Member::new(me(), 0, State::Down);
    f.handle_data(
        &datagram(id(2), 0, Message::TurnUndead, &[verdict]),
        &mut rt,
    )
    .unwrap();
    assert_eq!(f.incarnation(), 1);
    let m = rt.messages();
    assert!(m.iter().any(|(to, h, _)| *to == id(2)
        && h.message == Message::Announce
        && h.src_incarnation == 1));
}

#[test]
fn noise_is_dropped_and_counted() {
    let (mut f, mut rt) = (foca(), Rec::default());
    f.handle_data(&[1, 2, 3], &mut rt).unwrap();
    assert_eq!(f.metrics().dropped.decode, 1);
    f.handle_data(&datagram(me(), 0, Message::Ping(1), &[]), &mut rt)
        .unwrap();
    assert_eq!(f.metrics().dropped.from_self, 1);
    f.handle_data(&vec![0; 2000], &mut rt).unwrap();
    assert_eq!(f.metrics().dropped.oversized, 1);
    let mut trailing = datagram(id(2), 0, Message::Ping(1), &[]);
    trailing.push(0);
    f.handle_data(&trailing, &mut rt).unwrap();
    assert_eq!(f.metrics().dropped.decode, 2);
    assert!(rt.sent.is_empty() && rt.notes.is_empty() && f.member(&2).is_none());
}

#[test]
fn leave_tells_peers_and_stops() {
    let (mut f, mut rt) = (foca(), Rec::default());
    for a in 2..=5 {
        apply(&mut f, &mut rt, Member::alive(id(a), 0));
    }
    rt.clear();
    f.leave_cluster(&mut rt).unwrap();
    let m = rt.messages();
    assert_eq!(m.len(), 4, "every peer, this few, is told at once");
    for (_, h, updates) in &m {
        assert_eq!(h.message, Message::Gossip);
        assert!(updates.contains(&Member::new(me(), 0, State::Left)));
    }
    assert_eq!(f.connection_state(), ConnectionState::Left);
    // Everything after is ignored; announce rejoins at a higher incarnation.
    rt.clear();
    f.handle_data(&datagram(id(2), 0, Message::Ping(1), &[]), &mut rt)
        .unwrap();
    assert!(rt.sent.is_empty());
    assert_eq!(f.metrics().dropped.not_active, 1);
    f.announce(id(2), &mut rt).unwrap();
    assert_eq!(f.incarnation(), 1);
    assert_eq!(f.connection_state(), ConnectionState::Connected);
}

#[test]
fn a_leave_tells_at_most_leave_fanout_members_directly() {
    let (mut f, mut rt) = (foca(), Rec::default());
    for a in 2..=60 {
        apply(&mut f, &mut rt, Member::alive(id(a), 0));
    }
    rt.clear();
    f.leave_cluster(&mut rt).unwrap();
    let told: std::collections::BTreeSet<_> = rt.messages().iter().map(|(to, _, _)| *to).collect();
    assert_eq!(rt.sent.len(), foca_core::LEAVE_FANOUT);
    assert_eq!(told.len(), foca_core::LEAVE_FANOUT, "distinct members");
}

#[test]
fn set_config_validates_and_rearms_timers() {
    let (mut f, mut rt, old) = probing();
    let bad = Config {
        probe_rtt: Duration::from_secs(5),
        ..Config::simple()
    };
    let e = f.set_config(bad, &mut rt).unwrap_err();
    assert!(e.to_string().contains("probe_rtt"), "{e}");
    let new = Config {
        probe_period: Duration::from_secs(3),
        ..Config::simple()
    };
    f.set_config(new.clone(), &mut rt).unwrap();
    assert_eq!(f.config(), &new);
    let fresh = rt.take_timer(|t| matches!(t, Timer::ProbeRandomMember(_)));
    rt.clear();
    f.handle_timer(old, &mut rt).unwrap();
    assert!(rt.sent.is_empty(), "the old chain is stale");
    f.handle_timer(fresh, &mut rt).unwrap();
    assert!(
        rt.timers
            .iter()
            .any(|(t, d)| matches!(t, Timer::ProbeRandomMember(_)) && *d == Duration::from_secs(3))
    );
}

#[test]
fn new_refuses_invalid_config_and_oversized_header() {
    let bad = Config {
        probe_period: Duration::ZERO,
        ..Config::simple()
    };
    let e = Foca::new(me(), bad, Xoshiro128PlusPlus::seed_from_u64(1), TestCodec).unwrap_err();
    assert!(e.to_string().contains("probe_period"), "{e}");
}

#[test]
fn restarted_member_recorded_as_left_is_told_and_rejoins() {
    // It left at incarnation 2, restarted with the same identity at 0.
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(3), 0));
    apply(&mut f, &mut rt, Member::new(id(2), 2, State::Left));
    rt.clear();
    f.handle_data(&datagram(id(2), 0, Message::Announce, &[]), &mut rt)
        .unwrap();
    let m = rt.messages();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].1.message, Message::TurnUndead);
    assert_eq!(m[0].2, vec![Member::new(id(2), 2, State::Left)]);
    // The restarted member refutes (incarnation 3) and is back.
    f.handle_data(&datagram(id(2), 3, Message::Announce, &[]), &mut rt)
        .unwrap();
    assert_eq!(state_of(&f, 2), Some((1, 3, State::Alive)));
}

#[test]
fn change_identity_rules() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    let e = f
        .change_identity(GenerationalId::new(1, 0), &mut rt)
        .unwrap_err();
    assert_eq!(e, foca_core::Error::IdentityLosesConflict);
    assert_eq!(
        f.change_identity(id(2), &mut rt).unwrap_err(),
        foca_core::Error::IdentityInUse
    );
    assert_eq!(
        f.change_identity(me(), &mut rt).unwrap_err(),
        foca_core::Error::IdentityInUse
    );
    rt.clear();
    let renewed = GenerationalId::new(1, 2);
    f.change_identity(renewed, &mut rt).unwrap();
    assert_eq!(*f.identity(), renewed);
    assert_eq!(f.incarnation(), 0);
    assert!(rt.notes.contains(&Notification::Rejoin(renewed)));
    // The peer is told at once, with an announce from the new identity.
    let m = rt.messages();
    assert!(
        m.iter()
            .any(|(to, h, _)| *to == id(2) && h.src == renewed && h.message == Message::Announce)
    );
}

#[test]
fn flapping_news_keeps_one_timer_per_member_and_refuses_none() {
    use foca_core::testing::NoEnvelope;
    use foca_core::{Command, Endpoint, MAX_CHAIN_TIMERS};
    let config = Config {
        max_members: 8,
        ..Config::simple()
    };
    let f = Foca::new(
        me(),
        config.clone(),
        Xoshiro128PlusPlus::seed_from_u64(1),
        TestCodec,
    )
    .unwrap();
    let mut ep = Endpoint::new(f, NoEnvelope, Duration::ZERO).unwrap();
    let apply = |ep: &mut Endpoint<_, _, _, _, _>, news: Vec<Member<TestId>>| {
        ep.command(Duration::ZERO, Command::Apply(news)).unwrap();
    };
    apply(&mut ep, vec![Member::alive(id(3), 0)]);
    // Each suspicion at a new incarnation sets member 2's suspicion timer,
    // each refutation cancels it: its slot, never a new timer.
    for inc in 0..2_000u32 {
        let news = vec![
            Member::new(id(2), inc, State::Suspect),
            Member::alive(id(2), inc + 1),
        ];
        apply(&mut ep, news);
        let table = ep.foca().iter_membership_state().count();
        assert!(ep.pending_timers() <= MAX_CHAIN_TIMERS + table);
    }
    // A last suspicion, never refuted: it runs its course.
    apply(&mut ep, vec![Member::new(id(2), 2_000, State::Suspect)]);
    let timeout = config.suspicion_timeout(3);
    ep.handle_timeouts(timeout + Duration::from_millis(1))
        .unwrap();
    assert_eq!(state_of(ep.foca(), 2), Some((1, 2_000, State::Down)));
    // The probe chain survived: member 1 still probes.
    while ep.poll_transmit().is_some() {}
    ep.handle_timeouts(timeout + Duration::from_secs(2))
        .unwrap();
    let mut pings = 0;
    while let Some(t) = ep.poll_transmit() {
        if matches!(decode(&t.data).0.message, Message::Ping(_)) {
            pings += 1;
        }
    }
    assert!(pings >= 1);
}

#[test]
fn contradicted_verdict_is_resent_once_per_datagram() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    apply(&mut f, &mut rt, Member::new(id(5), 0, State::Down));
    apply(&mut f, &mut rt, Member::new(id(6), 0, State::Down));
    rt.clear();
    // Member 2 still gossips 5 and 6 alive at the incarnation we declared
    // them down at.
    let news = [Member::alive(id(5), 0), Member::alive(id(6), 0)];
    f.handle_data(&datagram(id(2), 0, Message::Gossip, &news), &mut rt)
        .unwrap();
    let m = rt.messages();
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].1.message, Message::TurnUndead);
    assert!(m[0].0 == id(5) || m[0].0 == id(6));
    assert_eq!(m[0].2, vec![Member::new(m[0].0, 0, State::Down)]);
    assert_eq!(f.metrics().verdicts_resent, 1);
    assert_eq!(state_of(&f, 5).unwrap().2, State::Down);
}

/// This member's own verdict about `addr`: suspected, then its suspicion
/// timer fires.
fn declare_down(f: &mut F, rt: &mut Rec, addr: u32) {
    apply(f, rt, Member::new(id(addr), 0, State::Suspect));
    let timer = rt.take_timer(
        |t| matches!(t, Timer::ChangeSuspectToDown { member_id, .. } if *member_id == id(addr)),
    );
    f.handle_timer(timer, &mut *rt).unwrap();
    assert_eq!(state_of(f, addr).unwrap().2, State::Down);
}

fn told(rt: &Rec) -> Vec<u32> {
    let mut told: Vec<u32> = rt
        .messages()
        .into_iter()
        .filter(|(_, h, _)| h.message == Message::TurnUndead)
        .map(|(to, _, _)| *to.address())
        .collect();
    told.sort();
    told
}

#[test]
fn back_from_isolation_withdraws_its_own_verdicts_and_pulls_a_feed() {
    let (mut f, mut rt) = (foca(), Rec::default());
    for a in 2..=20 {
        apply(&mut f, &mut rt, Member::alive(id(a), 0));
    }
    // Someone else's verdict: not this member's to withdraw.
    apply(&mut f, &mut rt, Member::alive(id(99), 0));
    let others = datagram(
        id(2),
        0,
        Message::Gossip,
        &[Member::new(id(99), 0, State::Down)],
    );
    f.handle_data(&others, &mut rt).unwrap();
    // Cut off: it declares every other member down itself.
    for a in 2..=20 {
        declare_down(&mut f, &mut rt, a);
    }
    assert_eq!(f.connection_state(), ConnectionState::Disconnected);
    rt.clear();
    // Someone reaches it again: its own verdicts are forgotten (nothing
    // is sent for them), the other's stays, and it pulls a feed.
    f.handle_data(&datagram(id(200), 0, Message::Ping(1), &[]), &mut rt)
        .unwrap();
    assert!(told(&rt).is_empty(), "{:?}", rt.messages());
    for a in 2..=20 {
        assert_eq!(state_of(&f, a), None, "member {a}");
    }
    assert_eq!(state_of(&f, 99), Some((1, 0, State::Down)));
    assert_eq!(f.metrics().verdicts_withdrawn, 19);
    assert!(
        rt.messages()
            .iter()
            .any(|(to, h, _)| *to == id(200) && h.message == Message::Announce)
    );
    // A feed brings the members still alive back.
    let feed: Vec<_> = (2..=20).map(|a| Member::alive(id(a), 0)).collect();
    f.handle_data(&datagram(id(200), 0, Message::Feed, &feed), &mut rt)
        .unwrap();
    assert_eq!(f.num_members(), 20);
    // A first join (never cut off) withdraws nothing.
    let (mut g, mut rt2) = (foca(), Rec::default());
    apply(&mut g, &mut rt2, Member::new(id(2), 0, State::Down));
    g.handle_data(&datagram(id(4), 0, Message::Ping(1), &[]), &mut rt2)
        .unwrap();
    assert_eq!(state_of(&g, 2), Some((1, 0, State::Down)));
}

#[test]
fn feeds_with_news_are_followed_by_another_announce() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    apply(&mut f, &mut rt, Member::alive(id(3), 0));
    rt.clear();
    let feed = [Member::alive(id(5), 0), Member::alive(id(6), 0)];
    f.handle_data(&datagram(id(2), 0, Message::Feed, &feed), &mut rt)
        .unwrap();
    let announces: Vec<_> = rt
        .messages()
        .into_iter()
        .filter(|(_, h, _)| h.message == Message::Announce)
        .collect();
    assert_eq!(announces.len(), 1);
    assert_ne!(announces[0].0, id(2), "another member, not the feeder");
    // A feed with nothing new ends the chain.
    rt.clear();
    f.handle_data(&datagram(id(3), 0, Message::Feed, &feed), &mut rt)
        .unwrap();
    assert!(
        rt.messages()
            .iter()
            .all(|(_, h, _)| h.message != Message::Announce)
    );
}

#[test]
fn probe_of_a_former_identity_is_answered_with_the_current_one() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    rt.clear();
    let old_me = GenerationalId::new(1, 0);
    let ping = Header {
        src: id(2),
        src_incarnation: 0,
        dst: old_me,
        message: Message::Ping(3),
    };
    f.handle_data(&encode(&ping, &[]), &mut rt).unwrap();
    assert_eq!(f.metrics().dropped.wrong_destination, 1);
    let m = rt.messages();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].1.message, Message::Gossip);
    assert_eq!(m[0].2, vec![Member::alive(me(), 0)]);
    // A newer identity on our address (not ours to answer for) gets nothing.
    rt.clear();
    let newer = Header {
        dst: GenerationalId::new(1, 9),
        ..ping
    };
    f.handle_data(&encode(&newer, &[]), &mut rt).unwrap();
    assert!(rt.sent.is_empty());
}

#[test]
fn an_ack_withdraws_the_indirect_probe_timer() {
    use foca_core::testing::NoEnvelope;
    use foca_core::{Command, Endpoint};
    let f = foca();
    let mut ep = Endpoint::new(f, NoEnvelope, Duration::ZERO).unwrap();
    ep.command(
        Duration::ZERO,
        Command::Apply(vec![Member::alive(id(2), 0)]),
    )
    .unwrap();
    while ep.poll_transmit().is_some() {}
    // Fire the first probe: a ping, plus the indirect and next-probe timers.
    let first = ep.next_deadline().unwrap();
    ep.handle_timeouts(first).unwrap();
    let ping = std::iter::from_fn(|| ep.poll_transmit())
        .find(|t| matches!(decode(&t.data).0.message, Message::Ping(_)))
        .unwrap();
    let Message::Ping(n) = decode(&ping.data).0.message else {
        unreachable!()
    };
    let pending = ep.pending_timers();
    let mut ack = datagram(id(2), 0, Message::Ack(n), &[]);
    ep.handle_datagram(first, 2, &mut ack).unwrap();
    assert_eq!(ep.pending_timers(), pending - 1, "indirect stage withdrawn");
    // Nothing fires at the probe RTT any more: the next deadline is the
    // next probe.
    assert_eq!(
        ep.next_deadline(),
        Some(first + Config::simple().probe_period)
    );
}

#[test]
fn membership_version_moves_with_the_table_only() {
    let (mut f, mut rt) = (foca(), Rec::default());
    let v0 = f.membership_version();
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    let v1 = f.membership_version();
    assert_ne!(v0, v1, "an insert changes the version");
    // Old news changes nothing, so neither does the version.
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    assert_eq!(f.membership_version(), v1);
    apply(&mut f, &mut rt, Member::new(id(2), 0, State::Suspect));
    assert_ne!(
        f.membership_version(),
        v1,
        "a suspicion changes the version"
    );
}

#[test]
fn a_sealed_datagram_is_accepted_once_per_sender_and_key() {
    use foca_core::{REPLAY_WINDOW, Sequence};
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    apply(&mut f, &mut rt, Member::alive(id(3), 0));
    rt.clear();
    let sealed = |data, key, number| Opened::sequenced(data, Sequence { key, number });
    let ping = datagram(id(2), 0, Message::Ping(1), &[]);
    let base = 1_000_000;
    f.handle_data_from(sealed(&ping, 1, base), 2, &mut rt)
        .unwrap();
    assert_eq!(rt.messages().len(), 1, "acked");
    // The same datagram again: dropped, nothing sent.
    rt.clear();
    f.handle_data_from(sealed(&ping, 1, base), 2, &mut rt)
        .unwrap();
    assert!(rt.messages().is_empty());
    assert_eq!(f.metrics().dropped.replayed, 1);
    // Later numbers, and earlier ones not seen yet inside the window, pass.
    for n in [base + 5, base + 3, base - 1, base + 5 - (REPLAY_WINDOW - 1)] {
        rt.clear();
        f.handle_data_from(sealed(&ping, 1, n), 2, &mut rt).unwrap();
        assert_eq!(rt.messages().len(), 1, "number {n}");
    }
    // Below the window: too old to tell from a replay.
    let old = base + 5 - REPLAY_WINDOW;
    f.handle_data_from(sealed(&ping, 1, old), 2, &mut rt)
        .unwrap();
    assert_eq!(f.metrics().dropped.too_old, 1);
    // Another sender's stream, and another key's, are apart.
    rt.clear();
    let ping3 = datagram(id(3), 0, Message::Ping(1), &[]);
    f.handle_data_from(sealed(&ping3, 1, base), 3, &mut rt)
        .unwrap();
    f.handle_data_from(sealed(&ping, 2, base), 2, &mut rt)
        .unwrap();
    assert_eq!(rt.messages().len(), 2);
    // A replayed datagram changes nothing: news in it is not applied.
    let news = datagram(
        id(2),
        0,
        Message::Gossip,
        &[Member::new(id(3), 0, State::Suspect)],
    );
    let before = f.metrics().dropped.replayed;
    f.handle_data_from(sealed(&news, 1, base), 2, &mut rt)
        .unwrap();
    assert_eq!(f.metrics().dropped.replayed, before + 1);
    assert_eq!(state_of(&f, 3), Some((1, 0, State::Alive)));
    // The same news under a fresh number is applied.
    f.handle_data_from(sealed(&news, 1, base + 6), 2, &mut rt)
        .unwrap();
    assert_eq!(state_of(&f, 3), Some((1, 0, State::Suspect)));
}

// ---- Lifeguard: local health awareness, nacks, the buddy system ----

/// How a probe is answered in [`lifeguard_step`].
#[derive(Clone, Copy)]
enum Answer {
    Ack,
    /// Unanswered, and the helpers asked stay silent.
    Silent,
    /// Unanswered, but every helper asked answers with a nack.
    Nacks,
}

/// Fires probe timer `t` (concluding the previous probe, starting one),
/// answers the new probe as `answer` says; returns the next probe timer
/// and the delays the new probe was scheduled with (period, RTT).
fn lifeguard_step(
    f: &mut F,
    rt: &mut Rec,
    t: Timer<TestId>,
    answer: Answer,
) -> (Timer<TestId>, Duration, Duration) {
    rt.clear();
    f.handle_timer(t, &mut *rt).unwrap();
    let ping = rt
        .messages()
        .into_iter()
        .find_map(|(to, h, _)| match h.message {
            Message::Ping(n) => Some((to, n)),
            _ => None,
        })
        .expect("a ping");
    let delay = |rt: &Rec, pred: fn(&Timer<TestId>) -> bool| {
        rt.timers.iter().find(|(t, _)| pred(t)).unwrap().1
    };
    let period = delay(rt, |t| matches!(t, Timer::ProbeRandomMember(_)));
    let rtt = delay(rt, |t| matches!(t, Timer::SendIndirectProbe { .. }));
    let next = rt.take_timer(|t| matches!(t, Timer::ProbeRandomMember(_)));
    let indirect = rt.take_timer(|t| matches!(t, Timer::SendIndirectProbe { .. }));
    let (to, n) = ping;
    match answer {
        Answer::Ack => {
            f.handle_data(&datagram(to, 0, Message::Ack(n), &[]), &mut *rt)
                .unwrap();
        }
        Answer::Silent | Answer::Nacks => {
            rt.clear();
            f.handle_timer(indirect, &mut *rt).unwrap();
            let helpers: Vec<_> = rt
                .messages()
                .into_iter()
                .filter(|(_, h, _)| matches!(h.message, Message::PingReq { .. }))
                .map(|(helper, _, _)| helper)
                .collect();
            assert!(!helpers.is_empty());
            if matches!(answer, Answer::Nacks) {
                for helper in helpers {
                    let nack = datagram(helper, 0, Message::Nack(n), &[]);
                    f.handle_data(&nack, &mut *rt).unwrap();
                }
            }
        }
    }
    (next, period, rtt)
}

#[test]
fn probes_failing_with_silent_helpers_stretch_the_probe_and_acks_undo_it() {
    let simple = Config::simple();
    let (mut f, mut rt, t) = probing();
    assert_eq!(f.health_multiplier(), 1);
    // A probe fails and both helpers asked stay silent: our links are in
    // doubt, two steps worse.
    let (t, period, _) = lifeguard_step(&mut f, &mut rt, t, Answer::Silent);
    assert_eq!(period, simple.probe_period);
    let (t, period, rtt) = lifeguard_step(&mut f, &mut rt, t, Answer::Nacks);
    assert_eq!(f.health_multiplier(), 3);
    assert_eq!(
        (period, rtt),
        (simple.probe_period * 3, simple.probe_rtt * 3)
    );
    // A probe fails but both helpers answered: the target is gone, our
    // health is not in question.
    let (t, period, _) = lifeguard_step(&mut f, &mut rt, t, Answer::Ack);
    assert_eq!(f.metrics().nacks_received, 2);
    assert_eq!(f.health_multiplier(), 3);
    assert_eq!(period, simple.probe_period * 3);
    // An acked probe: one step better.
    let (mut t, period, _) = lifeguard_step(&mut f, &mut rt, t, Answer::Silent);
    assert_eq!(f.health_multiplier(), 2);
    assert_eq!(period, simple.probe_period * 2);
    // However bad it gets: at most awareness_max_multiplier.
    for _ in 0..6 {
        t = lifeguard_step(&mut f, &mut rt, t, Answer::Silent).0;
    }
    let (_, period, _) = lifeguard_step(&mut f, &mut rt, t, Answer::Silent);
    assert_eq!(f.health_multiplier(), 8);
    assert_eq!(f.metrics().health_multiplier, 8);
    assert_eq!(period, simple.probe_period * 8);
}

#[test]
fn without_local_health_awareness_the_probe_keeps_its_pace() {
    let config = Config {
        awareness_max_multiplier: 1,
        ..Config::simple()
    };
    let (mut f, mut rt) = (foca(), Rec::default());
    f.set_config(config.clone(), &mut rt).unwrap();
    for a in 2..=4 {
        apply(&mut f, &mut rt, Member::alive(id(a), 0));
    }
    let mut t = rt.take_timer(|t| matches!(t, Timer::ProbeRandomMember(_)));
    for _ in 0..4 {
        let (next, period, _) = lifeguard_step(&mut f, &mut rt, t, Answer::Silent);
        assert_eq!(period, config.probe_period);
        t = next;
    }
    assert_eq!(f.health_multiplier(), 1);
}

#[test]
fn a_nack_counts_only_for_the_current_probe_and_once_per_helper() {
    let (mut f, mut rt, t) = probing();
    let (t, _, _) = lifeguard_step(&mut f, &mut rt, t, Answer::Silent);
    // Nacks for another probe number, and more than the helpers asked.
    for _ in 0..5 {
        f.handle_data(&datagram(id(2), 0, Message::Nack(999), &[]), &mut rt)
            .unwrap();
    }
    assert_eq!(f.metrics().nacks_received, 0);
    let (_, _, _) = lifeguard_step(&mut f, &mut rt, t, Answer::Nacks);
    let n = f.metrics().probes_sent as u32;
    for _ in 0..5 {
        f.handle_data(&datagram(id(2), 0, Message::Nack(n), &[]), &mut rt)
            .unwrap();
    }
    assert_eq!(f.metrics().nacks_received, 2, "two helpers asked");
}

#[test]
fn refuting_a_suspicion_of_itself_makes_a_member_probe_more_gently() {
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    let suspected = [Member::new(me(), 0, State::Suspect)];
    f.handle_data(&datagram(id(2), 0, Message::Gossip, &suspected), &mut rt)
        .unwrap();
    assert_eq!(f.incarnation(), 1, "refuted");
    assert_eq!(f.health_multiplier(), 2);
}

#[test]
fn buddy_system_a_suspect_hears_of_its_suspicion_in_the_probe_and_refutes_at_once() {
    // Member 1 suspects member 2; its next probe of 2 carries that first.
    let (mut f, mut rt) = (foca(), Rec::default());
    apply(&mut f, &mut rt, Member::alive(id(2), 0));
    apply(&mut f, &mut rt, Member::new(id(2), 0, State::Suspect));
    let t = rt.take_timer(|t| matches!(t, Timer::ProbeRandomMember(_)));
    rt.clear();
    f.handle_timer(t, &mut rt).unwrap();
    let msgs = rt.messages();
    let (to, h, updates) = &msgs[0];
    assert_eq!(*to, id(2));
    let Message::Ping(n) = h.message else {
        panic!("{:?}", h.message)
    };
    assert_eq!(updates[0], Member::new(id(2), 0, State::Suspect));
    // Member 2 gets the ping: it refutes in its ack, at once.
    let mut two = Foca::new(
        id(2),
        Config::simple(),
        Xoshiro128PlusPlus::seed_from_u64(2),
        TestCodec,
    )
    .unwrap();
    let mut rt2 = Rec::default();
    two.handle_data(&rt.sent[0].1, &mut rt2).unwrap();
    assert_eq!(two.incarnation(), 1);
    let reply = rt2
        .messages()
        .into_iter()
        .find(|(to, h, _)| *to == me() && h.message == Message::Ack(n))
        .expect("an ack");
    assert!(reply.2.contains(&Member::alive(id(2), 1)), "{:?}", reply.2);
    // The ack clears the suspicion at member 1.
    f.handle_data(&rt2.sent[0].1, &mut rt).unwrap();
    assert_eq!(state_of(&f, 2), Some((1, 1, State::Alive)));
}

#[test]
fn a_missed_down_is_repaired_by_the_next_summary_exchange() {
    use foca_core::PeriodicParams;
    let config = Config {
        periodic_sync: Some(PeriodicParams {
            frequency: Duration::from_secs(5),
            num_members: 1,
        }),
        ..Config::simple()
    };
    let new = |me: u32| {
        let rng = Xoshiro128PlusPlus::seed_from_u64(u64::from(me));
        Foca::new(id(me), config.clone(), rng, TestCodec).unwrap()
    };
    // Member 1 missed that member 3 went down; member 2 saw it (at a later
    // incarnation than 1 knows, so the records fall in one bucket only if
    // buckets follow the identity).
    let (mut one, mut rt1) = (new(1), Rec::default());
    one.apply_many([Member::alive(id(2), 0), Member::alive(id(3), 0)], &mut rt1)
        .unwrap();
    let (mut two, mut rt2) = (new(2), Rec::default());
    two.apply_many(
        [Member::alive(id(1), 0), Member::new(id(3), 4, State::Down)],
        &mut rt2,
    )
    .unwrap();
    assert_eq!(state_of(&one, 3), Some((1, 0, State::Alive)));
    // Member 2's periodic summary goes to 1, its only active peer; each
    // answer is delivered to the other side until nobody answers.
    let sync = rt2.take_timer(|t| matches!(t, Timer::PeriodicSync(_)));
    rt2.clear();
    two.handle_timer(sync, &mut rt2).unwrap();
    let (mut to_one, mut to_two) = (rt2.sent.clone(), Vec::new());
    for _ in 0..4 {
        rt1.clear();
        for (_, d) in to_one.drain(..) {
            one.handle_data(&d, &mut rt1).unwrap();
        }
        to_two.extend(rt1.sent.iter().filter(|(to, _)| *to == id(2)).cloned());
        rt2.clear();
        for (_, d) in to_two.drain(..) {
            two.handle_data(&d, &mut rt2).unwrap();
        }
        to_one.extend(rt2.sent.iter().filter(|(to, _)| *to == id(1)).cloned());
    }
    assert_eq!(state_of(&one, 3), Some((1, 4, State::Down)));
}

// ---- Lifeguard: suspicion with independent confirmations ----

/// A member of 6 (so 3 confirmations are possible) whose suspicions last
/// 4 s at the shortest and 24 s unconfirmed.
fn lifeguard_member() -> (F, Rec) {
    let config = Config {
        suspicion_max_multiplier: 6,
        ..Config::simple()
    };
    let mut f = foca_with(config);
    let mut rt = Rec::default();
    for a in 2..=6 {
        apply(&mut f, &mut rt, Member::alive(id(a), 0));
    }
    (f, rt)
}

/// A gossip datagram from `from` whose first update is its own finding:
/// member 2 suspected at incarnation 0.
fn finding_from(from: u32) -> Vec<u8> {
    let header = Header {
        src: id(from),
        src_incarnation: 0,
        dst: me(),
        message: Message::Gossip,
    };
    let mut out = Vec::new();
    let mut w = foca_core::wire::Writer::new(&mut out, 1400, &mut TestCodec, &header, &[]).unwrap();
    let suspect = Member::new(id(2), 0, State::Suspect);
    assert!(w.push_finding(&mut TestCodec, &suspect).unwrap());
    w.finish(0, &[]);
    out
}

/// Fires suspicion checkpoints until member 2 is down; the time waited.
fn wait_until_down(f: &mut F, rt: &mut Rec, mut waited: Duration) -> Duration {
    loop {
        let timer = rt.take_timer(|t| matches!(t, Timer::ChangeSuspectToDown { .. }));
        f.handle_timer(timer, &mut *rt).unwrap();
        if f.member(&2).unwrap().state() == State::Down {
            return waited;
        }
        let (_, after) = rt
            .timers
            .iter()
            .find(|(t, _)| matches!(t, Timer::ChangeSuspectToDown { .. }))
            .expect("the next checkpoint");
        waited += *after;
    }
}

#[test]
fn an_unconfirmed_suspicion_lasts_the_longest_timeout() {
    let (mut f, mut rt) = lifeguard_member();
    rt.clear();
    apply(&mut f, &mut rt, Member::new(id(2), 0, State::Suspect));
    let (_, first) = rt
        .timers
        .iter()
        .find(|(t, _)| matches!(t, Timer::ChangeSuspectToDown { .. }))
        .cloned()
        .unwrap();
    assert_eq!(first, Duration::from_secs(4), "the shortest timeout first");
    let waited = wait_until_down(&mut f, &mut rt, first);
    assert_eq!(waited, f.config().suspicion_timeout_max(6));
    assert_eq!(waited, Duration::from_secs(24));
    assert_eq!(f.metrics().confirmations_received, 0);
}

#[test]
fn confirmations_from_distinct_members_bring_the_verdict_to_the_shortest_timeout() {
    let (mut f, mut rt) = lifeguard_member();
    // Member 3 found it first; 4, 5 and 6 confirm; 4 twice (it counts
    // once), and a plain relay of the suspicion (not a finding) counts
    // for nothing.
    for from in [3, 4, 4, 5] {
        f.handle_data(&finding_from(from), &mut rt).unwrap();
    }
    let relay = datagram(
        id(6),
        0,
        Message::Gossip,
        &[Member::new(id(2), 0, State::Suspect)],
    );
    f.handle_data(&relay, &mut rt).unwrap();
    assert_eq!(f.metrics().confirmations_received, 3);
    // Reporters 3, 4, 5: two confirmations, 24 - 20·ln3/ln4 ≈ 8.14 s
    // (checkpoints at 4 s, then each second, the last one shorter).
    let waited = wait_until_down(&mut f, &mut rt, Duration::from_secs(4));
    assert_eq!(waited.as_millis(), 8141);

    // With a third confirmation, the shortest: 4 s.
    let (mut f, mut rt) = lifeguard_member();
    for from in [3, 4, 5, 6] {
        f.handle_data(&finding_from(from), &mut rt).unwrap();
    }
    assert_eq!(f.metrics().confirmations_received, 4);
    let waited = wait_until_down(&mut f, &mut rt, Duration::from_secs(4));
    assert_eq!(waited, Duration::from_secs(4));
}
