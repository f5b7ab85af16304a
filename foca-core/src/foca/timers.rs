//! Timer chains (probe, periodic tasks, recovery) and the probe cycle.
//!
//! Each recurring task is a *chain*: one timer in flight at a time, carrying a
//! token. When it fires with the expected token, the task runs and schedules
//! the next link; any other token is stale (from before a reset, or a
//! duplicate) and is ignored. A chain stops when it has nothing to do (no
//! member to probe, say) and [`Foca::ensure_timers`], run after every input,
//! restarts it when there is. So no input order, timer order or duplication
//! can leave two probe cycles running, or none.

use alloc::vec::Vec;
use core::time::Duration;

use rand::{Rng, RngExt};

use super::send::Pool;
use super::suspicion::{Bounds, Checkpoint};
use super::{DEFAULT_FANOUT, Foca, Round, Status};
use crate::{
    BroadcastHandler, Codec, Error, Identity, Member, Message, Runtime, State, Timer, TimerToken,
};

/// Periodic timers are spread by up to ±1/`JITTER_DIVISOR` of their period
/// (±25%), so that members started together do not act in lockstep.
pub const JITTER_DIVISOR: u64 = 4;

/// Gossip rounds a member may run back to back however rarely its config
/// gossips (see `Foca::gossip_burst`): news such as a member leaving
/// reaches `3 × num_members` members at once, not one round's worth a
/// probe period.
pub const MIN_BURST_ROUNDS: u32 = 3;

/// The in-flight token of each chain (`None`: not running).
pub(super) struct Chains {
    next_token: TimerToken,
    probe: Option<TimerToken>,
    sync: Option<TimerToken>,
    announce_down: Option<TimerToken>,
    gossip: Option<TimerToken>,
    rejoin: Option<TimerToken>,
    /// The next recovery delay (doubles up to the configured maximum).
    pub(super) rejoin_delay: Duration,
}

impl Chains {
    pub(super) fn new() -> Self {
        Self {
            next_token: 0,
            probe: None,
            sync: None,
            announce_down: None,
            gossip: None,
            rejoin: None,
            rejoin_delay: Duration::ZERO,
        }
    }

    /// Forgets every chain: their timers in flight become stale.
    pub(super) fn reset(&mut self) {
        self.probe = None;
        self.sync = None;
        self.announce_down = None;
        self.gossip = None;
        self.rejoin = None;
    }

    fn issue(&mut self) -> TimerToken {
        self.next_token = self.next_token.wrapping_add(1);
        self.next_token
    }
}

/// Takes the chain's token if `token` is the one in flight.
fn claim(slot: &mut Option<TimerToken>, token: TimerToken) -> bool {
    if *slot == Some(token) {
        *slot = None;
        true
    } else {
        false
    }
}

impl<T, C, R, B> Foca<T, C, R, B>
where
    T: Identity,
    C: Codec<T>,
    R: Rng,
    B: BroadcastHandler<T>,
{
    /// `d` with ±1/[`JITTER_DIVISOR`] jitter, so members do not act in
    /// lockstep.
    fn jittered(&mut self, d: Duration) -> Duration {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let spread = nanos / JITTER_DIVISOR;
        if spread == 0 {
            return d;
        }
        let offset = self.rng.random_range(0..=spread * 2);
        Duration::from_nanos(nanos - spread + offset)
    }

    /// Starts every chain that should run and does not.
    pub(super) fn ensure_timers(&mut self, runtime: &mut impl Runtime<T>) {
        if self.status != Status::Running {
            return;
        }
        let has_active = self.members.num_active() > 0;
        let has_down = self.members.num_inactive() > 0;
        if has_active && self.chains.probe.is_none() {
            let token = self.chains.issue();
            self.chains.probe = Some(token);
            let first = self.jittered(self.config.probe_period);
            runtime.submit_after(Timer::ProbeRandomMember(token), first);
        }
        // Gossip only runs while there is news: an idle cluster pays for
        // probes alone. Any input that queues news restarts it.
        if let Some(p) = self.config.periodic_gossip
            && has_active
            && !(self.updates.is_empty() && self.broadcasts.is_empty())
            && self.chains.gossip.is_none()
        {
            let token = self.chains.issue();
            self.chains.gossip = Some(token);
            runtime.submit_after(Timer::PeriodicGossip(token), p.frequency);
        }
        if let Some(p) = self.config.periodic_sync
            && has_active
            && self.chains.sync.is_none()
        {
            let token = self.chains.issue();
            self.chains.sync = Some(token);
            let after = self.jittered(p.frequency);
            runtime.submit_after(Timer::PeriodicSync(token), after);
        }
        if let Some(p) = self.config.periodic_announce_to_down_members
            && has_down
            && self.chains.announce_down.is_none()
        {
            let token = self.chains.issue();
            self.chains.announce_down = Some(token);
            let after = self.jittered(p.frequency);
            runtime.submit_after(Timer::PeriodicAnnounceDown(token), after);
        }
        if !has_active && (has_down || !self.seeds.is_empty()) && self.chains.rejoin.is_none() {
            let token = self.chains.issue();
            self.chains.rejoin = Some(token);
            let delay = self
                .chains
                .rejoin_delay
                .max(self.config.rejoin_backoff_min)
                .min(self.config.rejoin_backoff_max);
            let after = self.jittered(delay);
            runtime.submit_after(Timer::Rejoin(token), after);
        }
    }

    pub(super) fn on_timer(
        &mut self,
        timer: Timer<T>,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        if self.status != Status::Running {
            self.metrics.stale_timers += 1;
            return Ok(());
        }
        let result = match timer {
            Timer::ProbeRandomMember(token) => {
                if claim(&mut self.chains.probe, token) {
                    self.sync_answers = 0;
                    self.refuted_this_period = false;
                    self.guard.new_period();
                    self.end_probe_period(runtime)
                        .and_then(|()| self.start_probe(runtime))
                } else {
                    self.metrics.stale_timers += 1;
                    Ok(())
                }
            }
            Timer::SendIndirectProbe {
                probed_id,
                probe_number,
            } => self.indirect_probe(&probed_id, probe_number, runtime),
            Timer::ChangeSuspectToDown {
                member_id,
                incarnation,
            } => self.suspicion_timeout(member_id, incarnation, runtime),
            Timer::RemoveDown {
                member_id,
                incarnation,
            } => {
                self.remove_down(&member_id, incarnation, runtime);
                Ok(())
            }
            Timer::SendNack {
                origin,
                probe_number,
            } => self.send_nack(&origin, probe_number, runtime),
            Timer::PeriodicSync(token) => {
                if claim(&mut self.chains.sync, token) {
                    self.periodic_sync(runtime)
                } else {
                    self.metrics.stale_timers += 1;
                    Ok(())
                }
            }
            Timer::PeriodicAnnounceDown(token) => {
                if claim(&mut self.chains.announce_down, token) {
                    self.periodic_announce_to_down(runtime)
                } else {
                    self.metrics.stale_timers += 1;
                    Ok(())
                }
            }
            Timer::PeriodicGossip(token) => {
                if claim(&mut self.chains.gossip, token) {
                    self.periodic_gossip(runtime)
                } else {
                    self.metrics.stale_timers += 1;
                    Ok(())
                }
            }
            Timer::Rejoin(token) => {
                if claim(&mut self.chains.rejoin, token) {
                    self.rejoin_attempt(runtime)
                } else {
                    self.metrics.stale_timers += 1;
                    Ok(())
                }
            }
        };
        self.after_change(runtime);
        result
    }

    /// End of a probe period. With `Config::patient_probes`, a probe that
    /// is still unanswered after its indirect stage waits for its verdict
    /// until the next probe's indirect stage; any other is concluded now.
    fn end_probe_period(&mut self, runtime: &mut impl Runtime<T>) -> Result<(), Error> {
        // The next probe's indirect stage never came: conclude now.
        self.conclude_previous(runtime)?;
        let number = self.probe.round.number;
        let round = core::mem::replace(
            &mut self.probe.round,
            Round {
                number,
                ..Round::new()
            },
        );
        if round.target.is_none() {
            return Ok(());
        }
        if self.config.patient_probes && !round.acked && round.indirect_done {
            self.probe.previous = Some(round);
            return Ok(());
        }
        self.conclude_probe(round, runtime)
    }

    /// Concludes the previous period's probe, if one waits.
    fn conclude_previous(&mut self, runtime: &mut impl Runtime<T>) -> Result<(), Error> {
        match self.probe.previous.take() {
            Some(round) => self.conclude_probe(round, runtime),
            None => Ok(()),
        }
    }

    /// A probe's verdict: an unanswered probe whose indirect stage ran
    /// makes its target a suspect (SWIM §4.2). One whose indirect stage never
    /// ran (its timer came late) is dropped without suspicion: the member
    /// is probed again next round anyway, and a late timer is our fault,
    /// not the target's.
    fn conclude_probe(
        &mut self,
        round: Round<T>,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        let Some(target) = round.target else {
            return Ok(());
        };
        if round.acked {
            self.health = self.health.saturating_sub(1);
            return Ok(());
        }
        if !round.indirect_done {
            // Our timer came late: we are the slow one.
            self.metrics.probes_incomplete += 1;
            self.health_worse(1);
            return Ok(());
        }
        self.metrics.probes_failed += 1;
        // Helpers that did not answer point at our own links; when they
        // all did, the target is gone and our health is not in question.
        let silent = if round.helpers > 0 {
            round.helpers.saturating_sub(round.nacks)
        } else {
            1
        };
        self.health_worse(silent);
        let addr = target.id().addr();
        let current = self
            .member(&addr)
            .filter(|m| m.id() == target.id() && m.incarnation() == target.incarnation())
            .map(Member::state);
        if current == Some(State::Alive) {
            self.metrics.suspicions_raised += 1;
            debug_event!(member = ?target.id(), "probe failed: suspecting");
            let suspect = Member::new(target.id().clone(), target.incarnation(), State::Suspect);
            self.apply_update(suspect, runtime)?;
        }
        // Suspect now, by us or already by others: our failed probe is an
        // independent finding, reported to whoever we talk to next.
        let still_suspect = self.member(&addr).is_some_and(|m| {
            m.id() == target.id()
                && m.incarnation() == target.incarnation()
                && m.state() == State::Suspect
        });
        if still_suspect {
            let me = self.identity.addr();
            if current == Some(State::Suspect) && !self.suspicions.reported_by(&addr, &me) {
                self.metrics.suspicions_confirmed += 1;
            }
            let proven = self.guard.is_proven(&addr);
            self.suspicions
                .found(&addr, target.incarnation(), &me, proven);
        }
        Ok(())
    }

    /// A periodic gossip round, if there is news worth it. Membership news
    /// is worth a round while it is *young*: until it was sent as many
    /// times as one round sends it (`num_members`); after that it rides on
    /// probes and their acks alone, which cost nothing extra, until its
    /// transmissions run out. So an update costs each member about one
    /// round. Those rounds also spend credits (see [`Foca::gossip_burst`]),
    /// so that a steady stream of updates (suspicions and refutations
    /// under loss) costs at most one datagram per probe period on average,
    /// beyond the probes. Custom broadcasts, which the application sends
    /// and paces, are not held back: rounds run while any waits, as many
    /// as their transmissions take.
    fn periodic_gossip(&mut self, runtime: &mut impl Runtime<T>) -> Result<(), Error> {
        let Some(p) = self.config.periodic_gossip else {
            return Ok(());
        };
        let fanout = u32::from(p.num_members);
        if self.broadcasts.is_empty() {
            if !self.updates.has_sent_fewer_than(fanout) || self.gossip_credits < fanout {
                return Ok(());
            }
            self.gossip_credits -= fanout;
        }
        self.gossip_to(usize::from(p.num_members), runtime)
    }

    /// The most gossip credits a member holds (one a datagram): one probe
    /// period's worth of rounds, and at least [`MIN_BURST_ROUNDS`], so a
    /// burst of news goes out at the configured pace; they come back at one
    /// a probe period.
    pub(super) fn gossip_burst(&self) -> u32 {
        let Some(p) = self.config.periodic_gossip else {
            return 0;
        };
        let period = self.config.probe_period.as_nanos();
        let rounds = period / p.frequency.as_nanos().max(1);
        let rounds = u32::try_from(rounds)
            .unwrap_or(u32::MAX)
            .max(MIN_BURST_ROUNDS);
        rounds.saturating_mul(u32::from(p.num_members))
    }

    /// The range a suspicion's timeout moves in now (see
    /// `Config::suspicion_max_multiplier`): confirmations come from members
    /// other than the suspect and this one, so a cluster with fewer than
    /// `num_indirect_probes` of them gets the minimum at once.
    pub(super) fn suspicion_bounds(&self) -> Bounds {
        let n = self.members.num_active() + 1;
        let k = usize::from(self.config.num_indirect_probes);
        Bounds {
            min: self.config.suspicion_timeout(n),
            max: self.config.suspicion_timeout_max(n),
            k: if n.saturating_sub(2) < k { 0 } else { k },
        }
    }

    /// Pings the next member in the round and re-arms the probe chain.
    fn start_probe(&mut self, runtime: &mut impl Runtime<T>) -> Result<(), Error> {
        // A suspect heard of and not yet probed by us comes first: our own
        // probe confirms the suspicion, or carries it to the suspect (who
        // refutes).
        let mut verify = None;
        // Every other probe at most: findings, forged or not, cannot stop
        // the round that finds crashes.
        self.probe.verify_turn = !self.probe.verify_turn;
        while self.probe.verify_turn
            && let Some(addr) = self.suspicions.next_to_verify()
        {
            verify = self
                .member(&addr)
                .filter(|m| m.state() == State::Suspect)
                .cloned();
            if verify.is_some() {
                break;
            }
        }
        let Some(target) =
            verify.or_else(|| self.members.next_probe_target(&mut self.rng).cloned())
        else {
            // Nobody to probe: the chain stops; ensure_timers restarts it.
            return self.conclude_previous(runtime);
        };
        let token = self.chains.issue();
        self.chains.probe = Some(token);
        let stretch = self.health_multiplier();
        let period = self.config.probe_period.saturating_mul(stretch);
        runtime.submit_after(Timer::ProbeRandomMember(token), period);
        self.gossip_credits = (self.gossip_credits + 1).min(self.gossip_burst());
        let number = self.probe.round.number.wrapping_add(1);
        self.probe.round = Round {
            number,
            ..Round::new()
        };
        runtime.submit_after(
            Timer::SendIndirectProbe {
                probed_id: target.id().clone(),
                probe_number: number,
            },
            if self.config.patient_probes {
                self.config.probe_rtt.saturating_mul(stretch) / 2
            } else {
                self.config.probe_rtt.saturating_mul(stretch)
            },
        );
        let id = target.id().clone();
        self.probe.round.target = Some(target);
        self.metrics.probes_sent += 1;
        self.send(&id, Message::Ping(number), runtime)
    }

    /// The probe RTT elapsed: ask helpers if the direct probe went
    /// unanswered. With `Config::patient_probes` the same timer fires first
    /// at half the probe RTT (see [`Foca::retry_probe`]), and at the probe
    /// RTT also gives the previous period's probe its verdict.
    fn indirect_probe(
        &mut self,
        probed: &T,
        number: crate::ProbeNumber,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        if self.probe.round.number != number {
            self.metrics.stale_timers += 1;
            return Ok(());
        }
        if self.config.patient_probes && !self.probe.round.retried {
            return self.retry_probe(probed, number, runtime);
        }
        // The previous probe has had its extra time.
        self.conclude_previous(runtime)?;
        let round = &mut self.probe.round;
        let current =
            round.target.as_ref().is_some_and(|t| t.id() == probed) && !round.indirect_done;
        if !current {
            self.metrics.stale_timers += 1;
            return Ok(());
        }
        round.indirect_done = true;
        if round.acked || self.config.num_indirect_probes == 0 {
            return Ok(());
        }
        let probed_addr = probed.addr();
        let message = || Message::PingReq {
            target: probed.clone(),
            probe_number: number,
        };
        let helpers = self.choose_helpers(&probed_addr);
        let result = self.send_each(&helpers, message, runtime);
        let helpers = helpers.len();
        self.probe.round.indirect_sent = helpers > 0;
        self.probe.round.helpers = u8::try_from(helpers).unwrap_or(u8::MAX);
        self.metrics.indirect_probes_sent += helpers as u64;
        result
    }

    /// Half the probe RTT elapsed (with `Config::patient_probes`): pings
    /// the target again if it has not acked, and sets the indirect stage
    /// for the other half. A lost ping or ack then costs one datagram more
    /// instead of the helpers' dozen, and a member that answers late gets
    /// two chances to answer directly before its verdict.
    fn retry_probe(
        &mut self,
        probed: &T,
        number: crate::ProbeNumber,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        let round = &mut self.probe.round;
        round.retried = true;
        let unanswered = round.target.as_ref().is_some_and(|t| t.id() == probed) && !round.acked;
        let rtt = self
            .config
            .probe_rtt
            .saturating_mul(self.health_multiplier());
        runtime.submit_after(
            Timer::SendIndirectProbe {
                probed_id: probed.clone(),
                probe_number: number,
            },
            rtt.saturating_sub(rtt / 2),
        );
        if !unanswered {
            return Ok(());
        }
        self.metrics.probes_retried += 1;
        self.send(probed, Message::Ping(number), runtime)
    }

    /// Up to `num_indirect_probes` random active members other than
    /// `probed`, those that proved themselves to this member first (they
    /// acked its ping directly: reachable, and real; a member made up at a
    /// third party's address would never answer, and its silence would
    /// count against this member's own health).
    fn choose_helpers(&mut self, probed: &T::Addr) -> Vec<T> {
        let wanted = usize::from(self.config.num_indirect_probes);
        let mut helpers = Vec::with_capacity(wanted);
        let guard = &self.guard;
        let proven = |m: &Member<T>| guard.is_proven(&m.id().addr());
        self.members.choose_active(
            wanted,
            &mut self.rng,
            |m| m.id().addr() != *probed && proven(m),
            &mut helpers,
        );
        if helpers.len() < wanted {
            let mut more = Vec::new();
            self.members.choose_active(
                wanted - helpers.len(),
                &mut self.rng,
                |m| m.id().addr() != *probed && !proven(m),
                &mut more,
            );
            helpers.append(&mut more);
        }
        helpers
    }

    /// Lifeguard: raises the local health score by `by`, up to
    /// `awareness_max_multiplier - 1`.
    pub(super) fn health_worse(&mut self, by: u8) {
        let most = self.config.awareness_max_multiplier.saturating_sub(1);
        self.health = self.health.saturating_add(by).min(most);
    }

    /// A suspicion's checkpoint: still suspect at that incarnation, and
    /// waited as long as its confirmations allow, means down; otherwise
    /// the next checkpoint is set.
    fn suspicion_timeout(
        &mut self,
        id: T,
        incarnation: crate::Incarnation,
        runtime: &mut impl Runtime<T>,
    ) -> Result<(), Error> {
        let still_suspect = self.member(&id.addr()).is_some_and(|m| {
            m.id() == &id && m.state() == State::Suspect && m.incarnation() == incarnation
        });
        if !still_suspect {
            self.metrics.stale_timers += 1;
            return Ok(());
        }
        let bounds = self.suspicion_bounds();
        let step = self.config.probe_period;
        let addr = id.addr();
        if let Checkpoint::Wait(next) =
            self.suspicions
                .checkpoint(&addr, incarnation, &bounds, step)
        {
            let timer = Timer::ChangeSuspectToDown {
                member_id: id,
                incarnation,
            };
            runtime.submit_after(timer, next);
            return Ok(());
        }
        self.metrics.members_declared_down += 1;
        debug_event!(member = ?id, incarnation, "suspicion timed out: declaring down");
        self.verdicts.made(id.addr());
        self.apply_update(Member::new(id, incarnation, State::Down), runtime)
    }

    /// Forgets an inactive member, unless it changed since, or this member is
    /// alone: then it is kept as a contact for recovery and checked again later.
    fn remove_down(
        &mut self,
        id: &T,
        incarnation: crate::Incarnation,
        runtime: &mut impl Runtime<T>,
    ) {
        let Some(pos) = self.members.find(&id.addr()) else {
            return;
        };
        let unchanged = self
            .members
            .get(pos)
            .is_some_and(|m| m.id() == id && !m.is_active() && m.incarnation() == incarnation);
        if !unchanged {
            self.metrics.stale_timers += 1;
            return;
        }
        if self.members.num_active() == 0 {
            runtime.submit_after(
                Timer::RemoveDown {
                    member_id: id.clone(),
                    incarnation,
                },
                self.config.remove_down_after,
            );
            return;
        }
        if let Some(gone) = self.members.remove(pos) {
            self.guard.forget(&gone.id().addr());
        }
    }

    fn periodic_sync(&mut self, runtime: &mut impl Runtime<T>) -> Result<(), Error> {
        let Some(params) = self.config.periodic_sync else {
            return Ok(());
        };
        self.kept.tick();
        let wanted = usize::from(params.num_members);
        let ask = || Message::Sync { reply: false };
        self.send_to_random(Pool::Active, wanted, |_| true, ask, runtime)
            .map(drop)
    }

    fn periodic_announce_to_down(&mut self, runtime: &mut impl Runtime<T>) -> Result<(), Error> {
        let Some(params) = self.config.periodic_announce_to_down_members else {
            return Ok(());
        };
        let keep = |m: &Member<T>| m.state() == State::Down;
        let wanted = usize::from(params.num_members);
        self.send_to_random(Pool::Inactive, wanted, keep, || Message::Announce, runtime)
            .map(drop)
    }

    /// No live peer: announce to every seed and a few members recorded down,
    /// then back off (doubling, capped, jittered by `ensure_timers`).
    fn rejoin_attempt(&mut self, runtime: &mut impl Runtime<T>) -> Result<(), Error> {
        if self.members.num_active() > 0 {
            return Ok(());
        }
        let seeds = core::mem::take(&mut self.seeds);
        let to_seeds = self.send_each(&seeds, || Message::Announce, runtime);
        self.seeds = seeds;
        let is_down = |m: &Member<T>| m.state() == State::Down;
        let announce = || Message::Announce;
        let to_down =
            self.send_to_random(Pool::Inactive, DEFAULT_FANOUT, is_down, announce, runtime);
        self.chains.rejoin_delay = self
            .chains
            .rejoin_delay
            .max(self.config.rejoin_backoff_min)
            .saturating_mul(2)
            .min(self.config.rejoin_backoff_max);
        to_seeds.and(to_down.map(drop))
    }
}
