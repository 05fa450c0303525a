//! Handovers (`crate::handover`): decided at each release and install of a view, ended
//! at their timeout, cleared when this node stops owning anything.
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use farm_common::{HANDOVER_LEARNING, NO_OWNER};

use super::{Core, Note, interval};
use crate::{
    agent::{control::HandoverStatus, membership::View},
    handover::{self, Change, Kept, Moving, Timed},
};

impl Core {
    /// The handovers of the move to `view`'s table `next`, in `phase`: planned when the
    /// table is ready (learning), then at its release and its install. Written with the
    /// next rows.
    pub(super) fn hand_over(&mut self, now: Instant, view: &View, next: &[Vec<u16>], phase: u8) {
        let timeout = Duration::from_millis(self.cfg.cluster.handover_timeout_ms);
        if timeout.is_zero() {
            self.handing = Timed::default();
            return;
        }
        let me = self.cfg.cluster.node_id;
        // A node that has not installed since it owned nothing knows not who holds the
        // buckets it takes, when the farm served without it: it rejoins after a fence,
        // or starts while others serve (not in a cold start, whose first install,
        // perhaps a peer's, has this node).
        let (epoch, served_by) = self.membership.quorum().installed();
        let fenced = self.installed.iter().flatten().any(|&o| o != NO_OWNER);
        let joining = !self.joined && (fenced || (epoch > 0 && !served_by.contains(&me)));
        // Nothing installed, nothing joined, nothing under way: nothing to hand over (a
        // cold start, whose tables may be millions of buckets).
        if !joining && self.installed_view.is_empty() && self.handing.is_empty() {
            return;
        }
        let empty;
        let current: &[Vec<u16>] = match joining {
            true => {
                empty = vec![vec![NO_OWNER; self.cfg.cluster.buckets as usize]; next.len()];
                &empty
            }
            false => &self.installed,
        };
        let members = view.ids();
        let until = now + timeout;
        let learns = !handover::loses_a_node(&self.installed, next, &members);
        let installed = &self.installed_view;
        let joiners: Vec<u16> = (view.members.iter())
            .filter(|m| !installed.iter().any(|i| (i.id, i.incarnation) == (m.id, m.incarnation)))
            .map(|m| m.id)
            .collect();
        let joiners = &joiners;
        let change =
            Change { current, next, members: &members, me, joining, joiners, learns, phase, until };
        let planned = handover::plan(&self.handing, &change);
        if handover::given(&planned, me) != handover::given(&self.handing, me) {
            // What was counted was of other buckets.
            self.kept = None;
        }
        self.handing = planned;
    }

    /// The table of the view the membership holds is ready: if the move hands buckets
    /// over to or from this node, both nodes of each must learn the UDP flows of those
    /// buckets before the old owner releases them, for long enough to see a datagram of
    /// every active flow (their learning starts within a heartbeat of each other). So
    /// the release waits `learning` while the data plane learns. A move that loses a
    /// node is a failover, and waits for nothing.
    pub(super) fn learn(&mut self, now: Instant, rows: &[Vec<u16>]) -> Option<Instant> {
        let view = self.membership.view().clone();
        if handover::loses_a_node(&self.installed, rows, &view.ids()) {
            return None;
        }
        let before = self.handing.clone();
        self.hand_over(now, &view, rows, HANDOVER_LEARNING);
        let current = self.rows.as_ref().clone();
        self.write_rows(current);
        // The moves this change starts, this node on either side.
        let me = self.cfg.cluster.node_id;
        let fresh = |k: &(usize, u32), h: &farm_common::Handover| {
            before.get(k).is_none_or(|(b, _)| (b.old, b.new) != (h.old, h.new))
        };
        let started: Vec<_> =
            self.handing.iter().filter(|(k, (h, _))| fresh(k, h)).map(|(_, (h, _))| *h).collect();
        let given = started.iter().filter(|h| h.old == me).count();
        let taken = started.iter().filter(|h| h.new == me).count();
        if given + taken == 0 {
            return None;
        }
        let epoch = self.membership.epoch();
        let timeout = Duration::from_millis(self.cfg.cluster.handover_timeout_ms);
        self.note(Note::HandingOver { epoch, given, taken, timeout });
        Some(now + learning(&self.cfg))
    }

    /// Ends the handovers whose time is up.
    pub(super) fn expire_handovers(&mut self, now: Instant) {
        let ended = self.handing.expire(now);
        if ended > 0 {
            self.note(Note::HandoverEnded { buckets: ended });
            let rows = self.rows.as_ref().clone();
            self.push_rows(rows);
        }
    }

    /// When the next handover ends.
    pub(super) fn next_handover_end(&self) -> Option<Instant> {
        self.handing.soonest()
    }

    /// Whether this node gave buckets away that keep its flows.
    pub fn handing_out(&self) -> bool {
        let me = self.cfg.cluster.node_id;
        self.written.values().any(|h| h.old == me)
    }

    /// The handovers the data plane holds.
    pub fn handovers(&self) -> Arc<Moving> {
        self.written.clone()
    }

    /// The handovers as they stand, to write.
    pub(super) fn moving(&self) -> Arc<Moving> {
        Arc::new(handover::moving(&self.handing))
    }

    /// Whether the flows kept on the buckets this node gives away now were counted.
    pub fn counted(&self) -> bool {
        self.kept.is_some()
    }

    /// The runtime counted the flows this node keeps on the buckets it gave away, as
    /// `moving` had them: a count of handovers written over since is of other buckets.
    pub(super) fn kept(&mut self, moving: &Arc<Moving>, kept: Kept) {
        if Arc::ptr_eq(moving, &self.written) {
            self.kept = Some(kept);
        }
    }

    pub(super) fn handover_status(&self, now: Instant) -> HandoverStatus {
        let me = self.cfg.cluster.node_id;
        let out = self.handing.iter().filter(|(_, (h, _))| h.old == me).count();
        let r#in = self.handing.iter().filter(|(_, (h, _))| h.new == me).count();
        let until_ms =
            self.handing.last().map(|last| last.saturating_duration_since(now).as_millis() as u64);
        let kept = if out > 0 { self.kept } else { Some(Kept::default()) };
        HandoverStatus {
            out,
            r#in,
            flows_kept: kept.map(|k| k.tcp + k.udp),
            tcp_kept: kept.map(|k| k.tcp),
            udp_kept: kept.map(|k| k.udp),
            until_ms,
            timeout_ms: self.cfg.cluster.handover_timeout_ms,
        }
    }
}

/// How long a move that hands buckets over learns UDP flows before its release: two
/// heartbeats, as the two nodes start learning up to a heartbeat apart (each when it
/// has computed the table), so that a flow sending more often than every heartbeat is
/// seen by both.
fn learning(cfg: &crate::config::Config) -> Duration {
    2 * interval(cfg)
}
