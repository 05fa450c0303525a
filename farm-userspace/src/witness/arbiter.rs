//! The witness's decision, with no I/O: which view of each farm holds the tie-breaking
//! vote. Pure, so the simulation runs it as the `farm witness` process does.
//!
//! - The vote goes to the first view that asks while nobody holds it (or the holder's
//!   lease ran out), for the lease asked (at most `max_lease`), and stays with it while a
//!   member of the holding view keeps asking: a member may move it to its own new view
//!   (a node of the winning half that failed the other half asks with the half).
//! - A node of another view is told who holds it and granted nothing: two halves that
//!   both reach the witness never both hold the vote.
//! - A node's grant ends, by its own clock, before the witness's (it counts from when it
//!   asked, the witness from when the ask arrived), so once the witness would give the
//!   vote to another view, no node of the old holder still counts on it.
//! - A witness that restarts knows no holder: it grants nothing for `max_lease`, so every
//!   grant it gave before is over.
//! - Asks replayed (an older or equal sequence of a node's incarnation) are refused.
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use super::wire::{Ballot, Kind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub members: Vec<u16>,
    pub until: Instant,
}

/// What the witness did with an ask, for its log and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The asker's view holds the vote (now or still).
    Granted { moved: bool },
    /// Another view holds it.
    Refused,
    /// The witness started within `max_lease`: it grants nothing yet.
    Quiet,
    /// Not an ask, or a repeat of an older one: not answered.
    Ignored,
}

pub struct Arbiter {
    max_lease: Duration,
    quiet_until: Instant,
    /// By farm (cluster id): the view holding the vote.
    holders: BTreeMap<u64, Holder>,
    /// By (farm, node): the newest (incarnation, sequence) asked.
    seen: BTreeMap<(u64, u16), (u64, u64)>,
}

impl Arbiter {
    pub fn new(max_lease: Duration, now: Instant) -> Arbiter {
        Arbiter {
            max_lease,
            quiet_until: now + max_lease,
            holders: BTreeMap::new(),
            seen: BTreeMap::new(),
        }
    }

    /// The answer to `ask`, if any, and what was decided.
    pub fn ask(&mut self, ask: &Ballot, now: Instant) -> (Option<Ballot>, Verdict) {
        let newest = self.seen.entry((ask.cluster, ask.node)).or_insert((0, 0));
        if ask.kind != Kind::Ask || (ask.incarnation, ask.seq) <= *newest {
            return (None, Verdict::Ignored);
        }
        *newest = (ask.incarnation, ask.seq);
        let lease = Duration::from_millis(u64::from(ask.lease_ms)).min(self.max_lease);
        let answer = |members: Vec<u16>, lease: Duration| Ballot {
            kind: Kind::Answer,
            lease_ms: lease.as_millis() as u32,
            members,
            ..ask.clone()
        };
        if now < self.quiet_until {
            return (Some(answer(vec![], Duration::ZERO)), Verdict::Quiet);
        }
        let holder = self.holders.get(&ask.cluster).filter(|h| now < h.until);
        let verdict = match holder {
            Some(h) if !h.members.contains(&ask.node) => Verdict::Refused,
            Some(h) => Verdict::Granted { moved: h.members != ask.members },
            None => Verdict::Granted { moved: true },
        };
        if verdict == Verdict::Refused {
            let members = holder.map(|h| h.members.clone()).unwrap_or_default();
            return (Some(answer(members, Duration::ZERO)), verdict);
        }
        let holder = Holder { members: ask.members.clone(), until: now + lease };
        self.holders.insert(ask.cluster, holder);
        (Some(answer(ask.members.clone(), lease)), verdict)
    }

    /// Who holds each farm's vote now.
    pub fn holders(&self, now: Instant) -> impl Iterator<Item = (u64, &Holder)> {
        self.holders.iter().filter(move |(_, h)| now < h.until).map(|(&c, h)| (c, h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_millis(300);

    fn ask(node: u16, seq: u64, members: &[u16]) -> Ballot {
        Ballot {
            kind: Kind::Ask,
            cluster: 7,
            node,
            incarnation: 1,
            seq,
            lease_ms: 300,
            members: members.to_vec(),
        }
    }

    fn started(at: Instant) -> Arbiter {
        Arbiter::new(Duration::from_secs(1), at - Duration::from_secs(1))
    }

    #[test]
    fn two_halves_never_both_hold_the_vote() {
        let t = Instant::now();
        let mut w = started(t);
        // The whole farm holds it; then each half asks for itself: the first wins.
        assert_eq!(w.ask(&ask(1, 1, &[1, 2, 3, 4]), t).1, Verdict::Granted { moved: true });
        let (answer, verdict) = w.ask(&ask(3, 1, &[3, 4]), t);
        assert_eq!(verdict, Verdict::Granted { moved: true });
        assert_eq!(answer.expect("answered").lease_ms, 300);
        let (answer, verdict) = w.ask(&ask(1, 2, &[1, 2]), t);
        assert_eq!(verdict, Verdict::Refused);
        let answer = answer.expect("answered");
        assert_eq!((answer.lease_ms, answer.members), (0, vec![3, 4]));
        // Renewed by its members; free once they stop asking for a lease.
        assert_eq!(w.ask(&ask(4, 1, &[3, 4]), t + LEASE / 2).1, Verdict::Granted { moved: false });
        assert_eq!(w.ask(&ask(2, 1, &[1, 2]), t + LEASE).1, Verdict::Refused);
        let after = t + LEASE / 2 + LEASE;
        assert_eq!(w.ask(&ask(2, 2, &[1, 2]), after).1, Verdict::Granted { moved: true });
    }

    #[test]
    fn a_restarted_witness_grants_nothing_for_the_longest_lease() {
        let t = Instant::now();
        let mut w = Arbiter::new(Duration::from_secs(1), t);
        let (answer, verdict) = w.ask(&ask(1, 1, &[1, 2]), t + LEASE);
        assert_eq!((verdict, answer.expect("answered").lease_ms), (Verdict::Quiet, 0));
        let late = t + Duration::from_secs(1);
        assert_eq!(w.ask(&ask(1, 2, &[1, 2]), late).1, Verdict::Granted { moved: true });
    }

    #[test]
    fn replays_and_answers_are_ignored_and_leases_capped() {
        let t = Instant::now();
        let mut w = started(t);
        assert!(matches!(w.ask(&ask(1, 5, &[1]), t).1, Verdict::Granted { .. }));
        assert_eq!(w.ask(&ask(1, 5, &[1]), t).1, Verdict::Ignored);
        assert_eq!(w.ask(&ask(1, 4, &[1, 2]), t).1, Verdict::Ignored);
        let answer = Ballot { kind: Kind::Answer, ..ask(2, 1, &[2]) };
        assert_eq!(w.ask(&answer, t).1, Verdict::Ignored);
        let greedy = Ballot { lease_ms: 60_000, ..ask(1, 6, &[1]) };
        assert_eq!(w.ask(&greedy, t).0.expect("answered").lease_ms, 1000);
    }
}
