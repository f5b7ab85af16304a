//! Members and their states, and the order in which news about them wins.

use core::cmp::Ordering;

/// A member's incarnation number: raised only by the member itself, to refute
/// a suspicion (SWIM §4.2). Higher incarnations supersede lower ones.
pub type Incarnation = u32;

/// What the cluster believes about a member.
///
/// `Alive` and `Suspect` members are *active*: they are probed and chosen as
/// gossip targets. `Down` (declared failed after an unrefuted suspicion) and
/// `Left` (announced its own graceful departure) are *inactive*; they are kept
/// for a while so that stale news cannot bring them back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[repr(u8)]
pub enum State {
    /// Answered a probe, or said so itself, at this incarnation.
    Alive = 0,
    /// Failed a probe at this incarnation; declared down unless it refutes.
    Suspect = 1,
    /// Failed: suspected and never refuted in time.
    Down = 2,
    /// Left the cluster on purpose.
    Left = 3,
}

impl State {
    /// Whether a member in this state is probed and gossiped to.
    pub const fn is_active(self) -> bool {
        matches!(self, State::Alive | State::Suspect)
    }

    /// Precedence at equal incarnation: news of failure or departure
    /// overrides news of life. `Left` outranks `Down` so that a graceful
    /// departure is reported as such even if a suspicion raced it.
    const fn rank(self) -> u8 {
        self as u8
    }
}

/// One piece of membership news: `id` was in `state` at `incarnation`.
///
/// This is both a row of the member table and the unit of dissemination.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Member<T> {
    id: T,
    incarnation: Incarnation,
    state: State,
}

impl<T> Member<T> {
    /// News that `id` is in `state` at `incarnation`.
    pub const fn new(id: T, incarnation: Incarnation, state: State) -> Self {
        Self {
            id,
            incarnation,
            state,
        }
    }

    /// Shorthand for an `Alive` member.
    pub const fn alive(id: T, incarnation: Incarnation) -> Self {
        Self::new(id, incarnation, State::Alive)
    }

    /// The member's identity.
    pub const fn id(&self) -> &T {
        &self.id
    }

    /// The incarnation this news is about.
    pub const fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    /// The state this news reports.
    pub const fn state(&self) -> State {
        self.state
    }

    /// Whether the member is `Alive` or `Suspect`.
    pub const fn is_active(&self) -> bool {
        self.state.is_active()
    }

    /// Consumes the news, returning the identity.
    pub fn into_id(self) -> T {
        self.id
    }

    /// How two pieces of news about the *same identity* are ordered: higher
    /// incarnation first, then `Left` > `Down` > `Suspect` > `Alive`.
    /// The greater one wins, so merging news in any order converges.
    pub fn precedence(&self, other: &Self) -> Ordering {
        self.incarnation
            .cmp(&other.incarnation)
            .then(self.state.rank().cmp(&other.state.rank()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_orders_by_incarnation_then_state() {
        let a = Member::new(1, 3, State::Alive);
        let s = Member::new(1, 3, State::Suspect);
        let d = Member::new(1, 3, State::Down);
        let l = Member::new(1, 3, State::Left);
        let a4 = Member::new(1, 4, State::Alive);
        assert_eq!(s.precedence(&a), Ordering::Greater);
        assert_eq!(d.precedence(&s), Ordering::Greater);
        assert_eq!(l.precedence(&d), Ordering::Greater);
        assert_eq!(a4.precedence(&l), Ordering::Greater);
        assert_eq!(a.precedence(&a), Ordering::Equal);
    }
}
