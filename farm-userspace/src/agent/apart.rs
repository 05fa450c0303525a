//! What each side did while a peer and this node had failed each other, told once they
//! are together again: whether both sides served, for how long, and how many buckets
//! could have had two owners. With `quorum: majority` the minority serves nothing while
//! apart, so this says 0; without a quorum it says what the split cost. Pure.
//!
//! - An episode opens when this node fails a peer, and closes when both are members of
//!   a view this node installs.
//! - Meanwhile every step adds the time this node owned buckets under a live lease, and
//!   the most buckets it owned.
//! - Heartbeats carry this node's episodes (open, or closed lately), so the peer learns
//!   what this side did; each node reports an episode once it has both sides, or alone
//!   after `ALONE_AFTER` (the peer restarted and remembers nothing, or never failed it).
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use super::wire::ApartReport;

/// How long a closed episode is still told to the peer.
const TOLD_FOR: Duration = Duration::from_secs(10);
/// How long to wait for the peer's side before reporting this side alone.
const ALONE_AFTER: Duration = Duration::from_secs(3);
/// Reports kept for `farm status`.
const KEPT: usize = 8;

#[derive(Debug, Clone)]
struct Episode {
    since: Instant,
    served: Duration,
    owned: u32,
    closed: Option<Instant>,
    reported: bool,
}

/// A healed split as this node tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healed {
    pub peer: u16,
    /// From this node failing the peer to a view with both installed.
    pub apart_ms: u64,
    /// How long this node owned buckets meanwhile, and the most it owned.
    pub served_ms: u64,
    pub owned: u32,
    /// The same of the peer, if it told (it may have restarted, or never failed this
    /// node).
    pub peer_served_ms: Option<u64>,
    pub peer_owned: Option<u32>,
    /// Buckets this node and the peer may both have owned: where both served, the
    /// fewer of the two counts (each side's table covers every bucket); 0 otherwise.
    pub double_owned: u32,
}

impl std::fmt::Display for Healed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "together again with node {} after {} ms apart: this node served {} ms (up to {} buckets)",
            self.peer, self.apart_ms, self.served_ms, self.owned
        )?;
        match (self.peer_served_ms, self.peer_owned) {
            (Some(ms), Some(owned)) => {
                write!(f, ", node {} served {ms} ms (up to {owned})", self.peer)?
            }
            _ => write!(
                f,
                ", node {} told nothing (it restarted, or never failed this node)",
                self.peer
            )?,
        }
        match self.double_owned {
            0 => write!(f, "; no bucket had two owners"),
            n => write!(f, "; both sides served: up to {n} buckets had two owners"),
        }
    }
}

#[derive(Debug, Default)]
pub struct Apart {
    episodes: BTreeMap<u16, Episode>,
    /// The last step, and how many buckets this node owned under a live lease since.
    last: Option<(Instant, u32, Option<Instant>)>,
    recent: Vec<Healed>,
}

impl Apart {
    /// This node failed `peer`.
    pub fn failed(&mut self, peer: u16, now: Instant) {
        let open = self.episodes.get(&peer).is_some_and(|e| e.closed.is_none());
        if !open {
            let episode = Episode {
                since: now,
                served: Duration::ZERO,
                owned: 0,
                closed: None,
                reported: false,
            };
            self.episodes.insert(peer, episode);
        }
    }

    /// A step at `now`: the time since the last one counts as served where this node
    /// owned buckets (`owned`, as it was then) under a lease that had not run out.
    pub fn step(&mut self, now: Instant, owned: u32, lease: Option<Instant>) {
        if let Some((at, owned, lease)) = self.last {
            let until = lease.map_or(at, |l| l.clamp(at, now));
            let served = if owned > 0 { until - at } else { Duration::ZERO };
            for e in self.episodes.values_mut().filter(|e| e.closed.is_none()) {
                e.served += served;
                if served > Duration::ZERO {
                    e.owned = e.owned.max(owned);
                }
            }
        }
        self.last = Some((now, owned, lease));
    }

    /// This node installed a view of `members`: episodes with them are over.
    pub fn installed(&mut self, members: &[u16], now: Instant) {
        for (peer, e) in &mut self.episodes {
            if e.closed.is_none() && members.contains(peer) {
                e.closed = Some(now);
            }
        }
    }

    /// What heartbeats tell: open episodes, and those closed lately.
    pub fn reports(&self, now: Instant) -> Vec<ApartReport> {
        self.episodes
            .iter()
            .filter(|(_, e)| e.closed.is_none_or(|at| now < at + TOLD_FOR))
            .map(|(&peer, e)| ApartReport {
                peer,
                served_ms: e.served.as_millis().min(u128::from(u32::MAX)) as u32,
                owned: e.owned,
            })
            .collect()
    }

    /// A heartbeat of `peer` told its side (`theirs`: its report about `me`, if any):
    /// the closed episode with it, reported now if it was not yet.
    pub fn heard(&mut self, peer: u16, me: u16, theirs: &[ApartReport]) -> Option<Healed> {
        let told = theirs.iter().find(|r| r.peer == me)?;
        self.report(peer, Some(told))
    }

    /// Closed episodes whose peer told nothing for `ALONE_AFTER`, reported alone; and
    /// episodes done telling, forgotten.
    pub fn overdue(&mut self, now: Instant) -> Vec<Healed> {
        let due: Vec<u16> = self
            .episodes
            .iter()
            .filter(|(_, e)| !e.reported && e.closed.is_some_and(|at| now >= at + ALONE_AFTER))
            .map(|(&peer, _)| peer)
            .collect();
        let healed = due.into_iter().filter_map(|peer| self.report(peer, None)).collect();
        self.episodes.retain(|_, e| !e.reported || e.closed.is_some_and(|at| now < at + TOLD_FOR));
        healed
    }

    fn report(&mut self, peer: u16, told: Option<&ApartReport>) -> Option<Healed> {
        let e = self.episodes.get_mut(&peer).filter(|e| !e.reported)?;
        let closed = e.closed?;
        e.reported = true;
        let both = e.served > Duration::ZERO && told.is_some_and(|t| t.served_ms > 0);
        let healed = Healed {
            peer,
            apart_ms: (closed - e.since).as_millis() as u64,
            served_ms: e.served.as_millis() as u64,
            owned: e.owned,
            peer_served_ms: told.map(|t| u64::from(t.served_ms)),
            peer_owned: told.map(|t| t.owned),
            double_owned: if both { e.owned.min(told.map_or(0, |t| t.owned)) } else { 0 },
        };
        if self.recent.len() == KEPT {
            self.recent.remove(0);
        }
        self.recent.push(healed.clone());
        Some(healed)
    }

    /// The latest reports, oldest first.
    pub fn recent(&self) -> &[Healed] {
        &self.recent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn both_sides_served_and_said_so() {
        let t = Instant::now();
        let mut a = Apart::default();
        a.step(t, 100, Some(t + 200 * MS));
        a.failed(3, t);
        // Owning 384 under a lease for 1 s, then fenced for 1 s.
        a.step(t + 10 * MS, 384, Some(t + 2000 * MS));
        a.step(t + 1010 * MS, 0, None);
        a.step(t + 2010 * MS, 0, None);
        a.installed(&[1, 3], t + 2010 * MS);
        assert_eq!(
            a.reports(t + 2010 * MS),
            [ApartReport { peer: 3, served_ms: 1010, owned: 384 }]
        );
        let theirs = [ApartReport { peer: 1, served_ms: 700, owned: 160 }];
        let healed = a.heard(3, 1, &theirs).expect("both sides known");
        assert_eq!((healed.apart_ms, healed.served_ms, healed.double_owned), (2010, 1010, 160));
        assert!(a.heard(3, 1, &theirs).is_none(), "reported once");
        assert!(healed.to_string().contains("both sides served: up to 160 buckets had two owners"));
        assert_eq!(a.recent().len(), 1);
    }

    #[test]
    fn a_fenced_minority_reports_no_double_owner() {
        let t = Instant::now();
        let mut a = Apart::default();
        a.failed(1, t);
        // Its lease ran out before it failed the peer: owning, but past the lease.
        a.step(t, 224, Some(t));
        a.step(t + 500 * MS, 0, None);
        a.installed(&[1, 2], t + 500 * MS);
        let theirs = [ApartReport { peer: 2, served_ms: 500, owned: 384 }];
        let healed = a.heard(1, 2, &theirs).expect("known");
        assert_eq!((healed.served_ms, healed.double_owned), (0, 0));
        assert!(healed.to_string().ends_with("no bucket had two owners"));
    }

    #[test]
    fn a_peer_that_tells_nothing_is_reported_alone_then_forgotten() {
        let t = Instant::now();
        let mut a = Apart::default();
        a.failed(2, t);
        a.installed(&[1, 2], t + 100 * MS);
        assert!(a.overdue(t + 200 * MS).is_empty());
        let healed = a.overdue(t + 100 * MS + ALONE_AFTER);
        assert_eq!(healed.len(), 1);
        assert_eq!(healed[0].peer_served_ms, None);
        assert!(a.reports(t + 100 * MS + TOLD_FOR).is_empty());
        a.overdue(t + 100 * MS + TOLD_FOR);
        assert!(a.episodes.is_empty());
    }
}
