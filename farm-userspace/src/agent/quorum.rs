//! Majority quorum: only the side of a split that holds a strict majority of the votes
//! serves; the other owns nothing until it hears the farm again. Pure.
//!
//! - The votes are the members of the last view every member agreed on (installed),
//!   so each agreed failure shrinks them: failures one after another keep the service
//!   up down to the last node (Corosync's last man standing).
//! - At start the votes are every node of the file: a node serves nothing until its view
//!   holds a majority of the configured nodes (Corosync's wait_for_all, scaled to a
//!   majority), so a booting minority never serves alone. Half is not enough without a
//!   witness, even with the lowest id: the other half may be a last man standing.
//! - A node that leaves (SIGTERM) gives up its vote at once: it will not serve on any
//!   side, so a clean stop of one of two nodes leaves the other quorate.
//! - An exact half is quorate if it holds the witness's vote (`cluster.witness`, see
//!   `crate::witness`), or, with no witness named, if it holds the lowest node id of the
//!   votes (Corosync's auto_tie_breaker).
//! - Votes never shrink behind a node's back: a peer may have installed any view this
//!   node released (said it was ready for) since its own last install, so each of those
//!   views is a vote set too, and a view serves only if quorate in every set (and the
//!   lease ends before the fewest usurpers of any set could act). Each side of a split
//!   thus counts the votes the other side's last install counted.
//! - A half that won a tie with the witness's vote leaves the other half believing in
//!   the same tie, which the witness would give it once nobody renews it. So the nodes
//!   a tie left out stay `excluded` until a view with them is installed, and meanwhile
//!   the winners serve only while they hold the witness's vote (half or more of their
//!   votes, and the witness). The lowest id needs no such care: it never changes side.
//! - With a witness, a side of at most half the file's nodes serves only with its vote,
//!   even where last man standing shrank its votes: a node restarting cut off from it
//!   counts the file's nodes and asks the witness for the tie. (Without a witness, or
//!   where a majority of the file restarts cut off from a last man standing, nothing
//!   on disk tells the restarted nodes that the votes shrank: see docs/config.md.)
//! - With the lease (`Membership::lease_deadline`), a node's lease ends before any set of
//!   peers that could be quorate without it could have failed it, so a split never has a
//!   moment where both sides accept: the minority stops first.
use std::{collections::BTreeSet, time::Instant};

use serde::{Deserialize, Serialize};

use crate::config::QuorumMode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorum {
    mode: QuorumMode,
    /// Ties go to the witness's holder rather than to the lowest id.
    witness: bool,
    /// The vote sets some node of the farm may count: the last view this node installed
    /// (every node of the file at start) or newer installs of peers it adopted, and each
    /// view it released since,
    /// which a peer may have installed; each with its view's epoch. A view serves only
    /// if quorate in every one.
    sets: Vec<(u64, BTreeSet<u16>)>,
    /// The newest install this node knows of, its own or a peer's: its epoch and
    /// votes, which its heartbeats carry (see `adopt`).
    newest: (u64, BTreeSet<u16>),
    /// Nodes that a tie won with the witness's vote left out, which may still claim it.
    excluded: BTreeSet<u16>,
    /// How many nodes the file names: with a witness, no more than half of them serve
    /// without its vote, whatever their vote sets say.
    configured: usize,
}

/// Whether a set of nodes may serve, and why, for `farm status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumStatus {
    pub mode: QuorumMode,
    pub quorate: bool,
    /// The nodes that vote: the last installed view's members (every node of the file
    /// at start) and those of any view released since.
    pub votes: Vec<u16>,
    /// How many of the votes this node's view holds.
    pub held: usize,
    /// Nodes that a tie won with the witness left out and that have not rejoined: while
    /// there are any, this side serves only with the witness's vote.
    #[serde(default)]
    pub excluded: Vec<u16>,
    /// The witness, if the file names one: whether this node's view holds its vote, and
    /// the view the witness last said holds it.
    pub witness: Option<WitnessStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessStatus {
    pub address: std::net::SocketAddr,
    pub held: bool,
    /// The view holding its vote, as its last answer said (empty: none, or no answer).
    pub holder: Vec<u16>,
    /// How long since it last answered this node.
    pub answered_ms_ago: Option<u64>,
}

impl QuorumStatus {
    /// Why `view` may serve or not, in words: its votes, and the witness's say. The one
    /// wording of the fence reason, `farm status` and the page.
    pub fn describe(&self, view: &[u16]) -> String {
        let (held, n, votes) = (self.held, self.votes.len(), &self.votes);
        let witness = match &self.witness {
            None => String::new(),
            Some(w) if !self.excluded.is_empty() => format!(
                " (nodes {:?}, left out by a tie, may claim the witness at {}: this view {} it)",
                self.excluded,
                w.address,
                if w.held { "holds" } else { "does not hold" }
            ),
            Some(w) if w.held => format!(" (the witness at {} gives it to this view)", w.address),
            Some(w) if w.holder.is_empty() => {
                format!(" (the witness at {} grants it to nobody now)", w.address)
            }
            Some(w) => format!(" (the witness at {} gives it to view {:?})", w.address, w.holder),
        };
        format!("its view {view:?} holds {held} of the {n} votes {votes:?}{witness}")
    }
}

impl Quorum {
    /// At start: every node of the file votes.
    pub fn new(mode: QuorumMode, witness: bool, nodes: &[u16]) -> Quorum {
        let sets = vec![(0, nodes.iter().copied().collect())];
        let newest = sets[0].clone();
        Quorum { mode, witness, sets, newest, excluded: BTreeSet::new(), configured: nodes.len() }
    }

    /// Whether the nodes `ids` may serve: in every vote set, a strict majority, or exactly
    /// half with the tie-breaker: the witness's vote (`witness`: their view holds it)
    /// where one is named, else the set's lowest voter among them. While a won tie left
    /// nodes out (and they are not in `ids`), half or more with the witness's vote. With a witness, a view of half
    /// the file's nodes or fewer also needs its vote: a node that restarts knows only
    /// the file, and asks the witness for the same tie (two nodes: each alone).
    pub fn quorate(&self, ids: &[u16], witness: bool) -> bool {
        match self.mode {
            QuorumMode::None => true,
            QuorumMode::Majority
                if self.witness && 2 * ids.len() <= self.configured && !witness =>
            {
                false
            }
            // A set whose every voter left binds nobody: none of them serves.
            QuorumMode::Majority => {
                self.sets.iter().filter(|(_, set)| !set.is_empty()).all(|(epoch, set)| {
                    let held = held(set, ids);
                    // The file's nodes, never installed (epoch 0): a node that starts
                    // knows no more, and a peer may be serving alone as the last man
                    // standing of a later view. Without a witness, no tie then.
                    let lowest = *epoch > 0 && set.first().is_some_and(|low| ids.contains(low));
                    // Excluded nodes in this view claim nothing elsewhere.
                    let out = self.excluded.iter().any(|id| !ids.contains(id));
                    match (!out, self.witness) {
                        (false, _) => witness && 2 * held >= set.len(),
                        (true, with) => {
                            let tie = if with { witness } else { lowest };
                            2 * held > set.len() || (2 * held == set.len() && tie)
                        }
                    }
                })
            }
        }
    }

    /// Whether `ids` are quorate only with the witness's vote: then they serve only while
    /// their grant lasts.
    pub fn needs_witness(&self, ids: &[u16]) -> bool {
        self.witness && !self.quorate(ids, false) && self.quorate(ids, true)
    }

    /// Every node that votes in some set.
    pub fn votes(&self) -> BTreeSet<u16> {
        self.sets.iter().flat_map(|(_, set)| set).copied().collect()
    }

    /// Node `id` left the farm: it votes no more, and will claim no tie.
    pub fn left(&mut self, id: u16) {
        for (_, set) in self.sets.iter_mut().chain([&mut self.newest]) {
            set.remove(&id);
        }
        self.excluded.remove(&id);
    }

    /// This node released a view of `ids`: a peer may install it, so it is a vote set
    /// until this node installs a view.
    pub fn released(&mut self, ids: &[u16], epoch: u64) {
        let set: BTreeSet<u16> = ids.iter().copied().collect();
        if !self.sets.iter().any(|(_, s)| *s == set) {
            self.sets.push((epoch, set));
        }
    }

    /// Peer `peer`, in this node's view, last installed a view of `votes` at `epoch`.
    /// Every vote set of this node with `peer` in it and from an older epoch is behind
    /// that install: `peer` either never released that set's view (then nobody
    /// installed it) or installed since, quorate in it. Either way the peer's votes
    /// replace it. This is how a node that missed a leave or an agreed failure while cut
    /// off learns that the votes shrank, and rejoins a last man standing. Whether
    /// anything changed.
    pub fn adopt(&mut self, peer: u16, epoch: u64, votes: &[u16]) -> bool {
        let behind = |(at, set): &(u64, BTreeSet<u16>)| *at < epoch && set.contains(&peer);
        if votes.is_empty() || !self.sets.iter().any(behind) {
            return false;
        }
        self.sets.retain(|s| !behind(s));
        let set: BTreeSet<u16> = votes.iter().copied().collect();
        if !self.sets.iter().any(|(_, s)| *s == set) {
            self.sets.push((epoch, set.clone()));
        }
        if epoch > self.newest.0 {
            self.newest = (epoch, set);
        }
        true
    }

    /// The votes of the newest install this node knows of, and its epoch, for its
    /// heartbeats.
    pub fn installed(&self) -> (u64, Vec<u16>) {
        (self.newest.0, self.newest.1.iter().copied().collect())
    }

    /// This node installed a view of `ids`: they are the votes from now, and the nodes it
    /// leaves out are excluded if it took the witness's vote to win.
    pub fn agreed(&mut self, ids: &[u16], epoch: u64) {
        if self.witness && self.mode == QuorumMode::Majority && !self.quorate(ids, false) {
            let left_out = self.votes().into_iter().filter(|id| !ids.contains(id));
            self.excluded.extend(left_out.collect::<Vec<_>>());
        }
        self.excluded.retain(|id| !ids.contains(id));
        self.sets = vec![(epoch, ids.iter().copied().collect())];
        self.newest = self.sets[0].clone();
    }

    /// A reloaded file: its quorum mode, and its nodes among the votes (a node the file
    /// drops votes no more; one it adds votes once a view with it is released).
    pub fn reconfigure(&mut self, mode: QuorumMode, witness: bool, nodes: &[u16]) {
        (self.mode, self.witness) = (mode, witness);
        for (_, set) in self.sets.iter_mut().chain([&mut self.newest]) {
            set.retain(|id| nodes.contains(id));
        }
        self.excluded.retain(|id| witness && nodes.contains(id));
        self.configured = nodes.len();
    }

    /// When this node's lease must end at the latest, given when each peer's
    /// acknowledgements stop keeping it (`ends`): before the fewest peers that could be
    /// quorate without it, in any vote set, could all have failed it. `None` where no
    /// peers are quorate without this node (it is the last, or wins every tie), and
    /// without quorum (any peer may act alone; see `Membership::lease_deadline`).
    pub fn lease_bound(&self, me: u16, ends: impl Fn(u16) -> Instant) -> Option<Instant> {
        if self.mode == QuorumMode::None {
            return None;
        }
        let bound = |(_, set): &(u64, BTreeSet<u16>)| {
            let n = set.len();
            // Half will do with the witness's vote once a won tie left nodes out, and
            // exactly half with the witness's vote or if the lowest voter is not `me`.
            let needed = if !self.excluded.is_empty() {
                n.div_ceil(2).max(1)
            } else if n % 2 == 0 && (self.witness || set.first() != Some(&me)) {
                n / 2
            } else {
                n / 2 + 1
            };
            let mut voters: Vec<Instant> =
                set.iter().filter(|&&id| id != me).map(|&id| ends(id)).collect();
            voters.sort();
            voters.get(needed - 1).copied()
        };
        self.sets.iter().filter(|(_, set)| !set.is_empty()).filter_map(bound).min()
    }

    pub fn status(&self, ids: &[u16], witness: Option<WitnessStatus>) -> QuorumStatus {
        let held_witness = witness.as_ref().is_some_and(|w| w.held);
        let votes = self.votes();
        QuorumStatus {
            mode: self.mode,
            quorate: self.quorate(ids, held_witness),
            held: held(&votes, ids),
            votes: votes.into_iter().collect(),
            excluded: self.excluded.iter().copied().collect(),
            witness,
        }
    }
}

fn held(set: &BTreeSet<u16>, ids: &[u16]) -> usize {
    ids.iter().filter(|id| set.contains(id)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The peer whose acknowledgements bound `me`'s lease, where acknowledgements end in
    /// the order of the ids.
    fn bounding(q: &Quorum, me: u16) -> Option<u16> {
        let t = Instant::now();
        let at = q.lease_bound(me, |id| t + std::time::Duration::from_millis(u64::from(id)))?;
        Some((at - t).as_millis() as u16)
    }

    #[test]
    fn a_strict_majority_or_half_with_the_lowest_node() {
        let q = Quorum::new(QuorumMode::Majority, false, &[1, 2, 3]);
        let quorate = |ids: &[u16]| q.quorate(ids, false);
        assert!(quorate(&[1, 2]) && quorate(&[2, 3]) && quorate(&[1, 2, 3]));
        assert!(!quorate(&[1]) && !quorate(&[3]));
        let mut q = Quorum::new(QuorumMode::Majority, false, &[1, 2, 3, 4]);
        q.agreed(&[1, 2, 3, 4], 1);
        assert!(q.quorate(&[1, 2], false) && !q.quorate(&[3, 4], true), "a tie: the lowest id");
        assert!(Quorum::new(QuorumMode::None, false, &[1, 2, 3]).quorate(&[3], false));
    }

    #[test]
    fn with_a_witness_a_tie_goes_to_the_half_holding_its_vote() {
        let q = Quorum::new(QuorumMode::Majority, true, &[1, 2, 3, 4]);
        assert!(!q.quorate(&[1, 2], false) && q.quorate(&[3, 4], true));
        assert!(q.needs_witness(&[3, 4]) && !q.needs_witness(&[1, 2, 3]));
        assert!(q.quorate(&[1, 2, 3], false), "a majority needs no witness");
        // Any two peers with the witness could take node 1's buckets.
        assert_eq!((bounding(&q, 1), bounding(&q, 4)), (Some(3), Some(2)));
    }

    #[test]
    fn a_set_whose_voters_all_left_binds_nobody() {
        let mut q = Quorum::new(QuorumMode::Majority, false, &[1, 2]);
        assert!(q.adopt(1, 5, &[1]) && !q.quorate(&[2], false));
        q.left(1);
        assert!(q.quorate(&[2], false) && bounding(&q, 2).is_none());
    }

    #[test]
    fn a_node_that_starts_wins_no_tie_without_a_witness() {
        // Node 1 starts cut off from node 2, which may serve alone since node 1 left.
        let q = Quorum::new(QuorumMode::Majority, false, &[1, 2]);
        assert!(!q.quorate(&[1], false) && q.quorate(&[1, 2], false));
        let mut q = Quorum::new(QuorumMode::Majority, false, &[1, 2, 3, 4]);
        assert!(!q.quorate(&[1, 2], false) && q.quorate(&[1, 2, 3], false));
        // Once a view is installed, ties go to the lowest id again.
        q.agreed(&[1, 2, 3, 4], 5);
        assert!(q.quorate(&[1, 2], false));
    }

    #[test]
    fn a_node_that_leaves_gives_up_its_vote() {
        let mut q = Quorum::new(QuorumMode::Majority, false, &[1, 2]);
        assert!(!q.quorate(&[2], false));
        q.left(1);
        assert!(q.quorate(&[2], false));
        assert_eq!(bounding(&q, 2), None);
    }

    #[test]
    fn agreed_failures_shrink_the_votes_down_to_the_last_node() {
        let mut q = Quorum::new(QuorumMode::Majority, false, &[1, 2, 3]);
        assert!(q.quorate(&[1, 3], false));
        q.agreed(&[1, 3], 9);
        // Node 3 fails next: node 1 holds half of {1, 3}, with the lowest id.
        assert!(q.quorate(&[1], false) && !q.quorate(&[3], false));
        q.agreed(&[1], 9);
        assert!(q.quorate(&[1], false));
        // A node that comes back is counted once a view with it is agreed.
        assert!(q.quorate(&[1, 2], false));
        q.agreed(&[1, 2], 9);
        assert_eq!(q.status(&[2], None).held, 1);
    }

    #[test]
    fn a_released_view_votes_before_it_is_installed() {
        // Node 2 installed [1, 2, 3] and released [1, 2], which node 1 may have
        // installed; cut from node 1, nodes 2 and 3 hold one of node 1's two votes
        // without its lowest id, so they must not serve, and node 2's lease must end
        // before node 1 alone could fail it.
        let mut q = Quorum::new(QuorumMode::Majority, false, &[1, 2, 3]);
        assert!(q.quorate(&[2, 3], false));
        q.released(&[1, 2], 8);
        assert!(!q.quorate(&[2, 3], false) && q.quorate(&[1, 2], false));
        assert_eq!(q.status(&[2, 3], None).votes, [1, 2, 3]);
        assert_eq!(bounding(&q, 2), Some(1));
        q.agreed(&[1, 2], 9);
        assert!(q.quorate(&[1], false) && !q.quorate(&[2], false));
    }

    #[test]
    fn a_tie_won_with_the_witness_keeps_needing_it_until_the_others_return() {
        let mut q = Quorum::new(QuorumMode::Majority, true, &[1, 2, 3, 4]);
        assert!(q.quorate(&[1, 2], true));
        q.agreed(&[1, 2], 9);
        // Nodes 3 and 4 still count on the same tie: {1, 2} serve only with the vote,
        // and down to the last of them with it.
        assert!(!q.quorate(&[1, 2], false) && q.quorate(&[1, 2], true) && q.needs_witness(&[1, 2]));
        assert!(q.quorate(&[2], true) && !q.quorate(&[2], false));
        assert_eq!(q.status(&[1, 2], None).excluded, [3, 4]);
        // Any one of them with the witness's vote could take node 1's buckets.
        assert_eq!(bounding(&q, 1), Some(2));
        q.agreed(&[1], 9);
        assert!(q.quorate(&[1], true) && !q.quorate(&[1], false));
        // Node 2, left out of that tie, could claim it too; nodes 3 and 4 are back.
        q.agreed(&[1, 3, 4], 9);
        assert_eq!(q.status(&[1], None).excluded, [2]);
        assert!(!q.quorate(&[1, 3, 4], false) && q.quorate(&[1, 3], true));
        assert!(q.quorate(&[1, 2, 3, 4], false), "node 2 is back in the view");
        // Once all are back in an installed view, a majority serves alone again, and a
        // strict majority's install excludes nobody.
        q.agreed(&[1, 2, 3, 4], 9);
        assert!(q.quorate(&[1, 2, 3], false) && q.status(&[1], None).excluded.is_empty());
        q.agreed(&[1, 2, 3], 9);
        assert!(q.status(&[1], None).excluded.is_empty());
        // Two of them are half the file: they serve with the witness's vote.
        assert!(q.quorate(&[1, 2], true) && !q.quorate(&[1, 2], false));
    }

    #[test]
    fn a_newer_install_by_a_member_replaces_the_votes_it_is_in() {
        // Node 2 missed node 1's leave while cut off; node 3, the last man standing,
        // installed [3] at epoch 20.
        let mut q = Quorum::new(QuorumMode::Majority, false, &[1, 2, 3, 4]);
        q.agreed(&[1, 2, 3, 4], 12);
        assert!(!q.quorate(&[2, 3], false));
        assert!(!q.adopt(3, 12, &[3]) && !q.adopt(5, 20, &[5]), "not newer, or not a voter");
        assert!(q.adopt(3, 20, &[3]) && q.quorate(&[2, 3], false));
        assert_eq!(q.installed(), (20, vec![3]));
        q.released(&[2, 3], 21);
        assert_eq!(q.installed(), (20, vec![3]), "a released view is no install");
        // A set released since, without the peer, stays: the peer knows nothing of it.
        let mut q = Quorum::new(QuorumMode::Majority, false, &[1, 2, 3]);
        q.released(&[1, 2], 8);
        assert!(q.adopt(3, 20, &[2, 3]) && !q.quorate(&[2, 3], false));
    }

    #[test]
    fn with_a_witness_half_the_file_or_fewer_need_its_vote() {
        // Node 2 left; node 1, the last one, still needs the witness: node 2 may restart
        // cut off from it, knowing only the file, and claim the same tie.
        let mut q = Quorum::new(QuorumMode::Majority, true, &[1, 2]);
        q.left(2);
        q.agreed(&[1], 9);
        assert!(!q.quorate(&[1], false) && q.needs_witness(&[1]));
        assert!(Quorum::new(QuorumMode::Majority, true, &[1, 2]).quorate(&[1, 2], false));
        let mut q = Quorum::new(QuorumMode::Majority, true, &[1, 2, 3]);
        q.agreed(&[1, 2], 9);
        assert!(q.quorate(&[1, 2], false) && !q.quorate(&[1], false) && q.quorate(&[1], true));
    }

    #[test]
    fn usurpers_are_the_fewest_peers_quorate_without_this_node() {
        let q = Quorum::new(QuorumMode::Majority, false, &[1, 2, 3]);
        assert_eq!((bounding(&q, 1), bounding(&q, 3)), (Some(3), Some(2)));
        let q = Quorum::new(QuorumMode::Majority, false, &[1, 2, 3, 4]);
        // Node 1 holds every tie: three others must agree; node 4 loses to {1, 2}.
        assert_eq!((bounding(&q, 1), bounding(&q, 4)), (Some(4), Some(2)));
        let q = Quorum::new(QuorumMode::Majority, false, &[1, 2]);
        assert_eq!((bounding(&q, 1), bounding(&q, 2)), (None, Some(1)));
        assert_eq!(bounding(&Quorum::new(QuorumMode::Majority, false, &[1]), 1), None);
        assert_eq!(bounding(&Quorum::new(QuorumMode::None, false, &[1, 2, 3]), 1), None);
    }
}
