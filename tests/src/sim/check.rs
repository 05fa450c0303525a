//! What the simulation checks, as a client would see it.
//!
//! Safety, after every event that may let a node accept more: no sampled packet is
//! accepted by two nodes. With `quorum: majority`, there is no exception. Without a
//! quorum, one, which the random runs count: a partition (until two failure times after
//! it heals), or loss that cuts two nodes apart both ways as one would. A double acceptance is then excused only where one of
//! the two had failed the other, and the other had not heard from it for half a failure
//! time (past which its lease no longer waits on that node's acknowledgements; see
//! `Membership::lease_deadline`). Loss one way only is never an excuse: the failed
//! node's lease, bounded by the acknowledgements of the node that failed it, ran out
//! first.
//!
//! Settled, once disturbances stop: no node is stalled and every file reloaded; the
//! running nodes hold one view of exactly themselves at one epoch. If that view is
//! quorate (always, without a quorum), it is installed and every sampled packet is
//! accepted by exactly the node that view's table under that file names (by none where
//! the table names none or no service takes it); if not (a minority of the votes
//! survived), no node accepts anything.
use std::time::Instant;

use farm_userspace::{
    agent::{tables, wire::Phase},
    classify::Plane,
    rules,
};

use super::{FAILURE, Node, Run, Sim, spec};
use farm_userspace::agent::membership::View;

/// The services the simulation checks, as bits.
const CHECKED_BITS: u64 = 1 << spec::CHECKED[0] | 1 << spec::CHECKED[1];

impl Sim {
    pub fn check_safety(&mut self) -> Result<(), String> {
        let mut explained = None;
        for flow in &self.flows {
            let mut acceptors = self.nodes.iter().filter(|n| n.accepts(flow, self.now));
            let (Some(a), Some(b)) = (acceptors.next(), acceptors.next()) else { continue };
            let what = format!("{flow:?} accepted by nodes {} and {}", a.id, b.id);
            if !self.excused(a, b) {
                return Err(self.failure(&what));
            }
            explained.get_or_insert(what);
        }
        if let Some(what) = explained {
            self.loss_overlap.get_or_insert(what);
        }
        Ok(())
    }

    /// Whether nodes `a` and `b` may both take a packet: without a quorum, a partition,
    /// or one that healed less than two failure times ago (the sides take that long to
    /// hear each other and agree), serves both sides, as does loss cutting them apart.
    pub fn excused(&self, a: &Node, b: &Node) -> bool {
        let partitioned =
            self.cut.is_some() || self.healed.is_some_and(|t| self.now < t + 2 * FAILURE);
        self.spec.quorum == spec::Quorum::None
            && (partitioned || apart(a, b, self.now) || apart(b, a, self.now))
    }

    /// The nodes `ids` hold one view of exactly them, at one epoch, installed.
    pub fn installed(&mut self, ids: &[u16]) -> bool {
        let cores: Vec<_> = ids.iter().filter_map(|&id| self.node(id).core.as_ref()).collect();
        cores.len() == ids.len()
            && cores.iter().all(|c| {
                let (m, first) = (c.membership(), cores[0].membership());
                m.phase() == Phase::Installed && m.view().ids() == ids && m.epoch() == first.epoch()
            })
    }

    /// See the module's documentation.
    pub fn settled(&mut self) -> bool {
        let files_in = self.nodes.iter().all(|n| n.file == self.spec);
        if !files_in || self.nodes.iter().any(|n| n.run == Run::Stalled) {
            return false;
        }
        let Some(first) = self.running().next() else { return true };
        let m = first.core.as_ref().expect("running").membership();
        let (view, epoch) = (m.view().clone(), m.epoch());
        let ids: Vec<u16> = self.running().map(|n| n.id).collect();
        let quorate = |n: &Node| n.core.as_ref().expect("running").membership().quorate();
        let (all, any) = (self.running().all(quorate), self.running().any(quorate));
        if all != any {
            return false;
        }
        let quorate = all;
        let agree = self.running().all(|n| {
            let m = n.core.as_ref().expect("running").membership();
            let phase = if quorate { m.phase() == Phase::Installed } else { !m.owns() };
            phase && m.epoch() == epoch && *m.view() == view
        });
        if !agree || view.ids() != ids {
            return false;
        }
        if !quorate {
            return self.flows.iter().all(|f| self.nodes.iter().all(|n| !n.accepts(f, self.now)));
        }
        // Nothing left for the clock to change: every node says of its services what
        // its checkers see (no hold-down running), and the active-backup service is on
        // the node it would fail back to.
        let bits = |n: &Node| n.core.as_ref().expect("running").service_bits();
        let says = self.running().all(|n| bits(n).unhealthy & CHECKED_BITS == n.apps_down);
        let mut eventual = view.clone();
        for m in &mut eventual.members {
            m.services.takes_back = u64::MAX;
        }
        let cfg = self.spec.config(1);
        let db = |v: &View| tables::rows(&cfg, v)[cfg.vips.len() + spec::CHECKED[1]].clone();
        if !says || db(&view) != db(&eventual) {
            return false;
        }
        // The table last, and once per view and file: this runs before every event.
        let digest = view.digest();
        if self.expected.as_ref().is_none_or(|(d, s, _)| (*d, s) != (digest, &self.spec)) {
            let rows = tables::rows(&self.spec.config(1), &view);
            self.expected = Some((digest, self.spec.clone(), rows));
        }
        let (_, _, rows) = self.expected.as_ref().expect("just set");
        let cfg = self.spec.config(1);
        // A node that the table makes the active-backup service's only owner says it
        // serves it (its heartbeats set the bit, a view change that moves nothing).
        let db = &rows[cfg.vips.len() + spec::CHECKED[1]];
        let claims = view.members.iter().all(|m| {
            let sole = !db.is_empty() && db.iter().all(|&owner| owner == m.id);
            (m.services.active >> spec::CHECKED[1] & 1 == 1) == sole
        });
        if !claims {
            return false;
        }
        let (rules, node) = (rules::rules(&cfg), rules::node_config(&cfg, [0; 6]));
        let moving = Default::default();
        let agreed = Plane { rules: &rules, node: &node, rows, moving: &moving, lease: None };
        self.flows.iter().all(|flow| {
            let mut acceptors = self.nodes.iter().filter(|n| n.accepts(flow, self.now));
            match (acceptors.next(), agreed.owner(flow)) {
                (None, None) => true,
                (Some(n), Some(owner)) => n.id == owner && acceptors.next().is_none(),
                _ => false,
            }
        })
    }
}

/// `taker` failed `kept`, which had not heard it for half a failure time: cut apart
/// both ways.
fn apart(taker: &Node, kept: &Node, now: Instant) -> bool {
    let (Some(t), Some(k)) = (&taker.core, &kept.core) else { return false };
    !t.membership().view().ids().contains(&kept.id)
        && k.membership().silent_for(taker.id, now).is_none_or(|silent| silent >= FAILURE / 2)
}
