//! Client traffic on the modelled data planes, for the handover: every `TRAFFIC_EVERY`,
//! each sampled flow sends a packet. A TCP flow opens a connection on the node that
//! takes its SYN and keeps it while that node takes its packets (a packet taken by
//! another node, or by none, ends it: the other's stack resets it, or the client gives
//! up); a UDP flow is learned by each node whose data plane holds its bucket in
//! handover before the install (both nodes see every datagram), and kept learned by its
//! datagrams until idle for the file's flow idle time.
//!
//! The invariant, a client's: no packet of a flow is taken by two nodes (with the
//! excuses of `check_safety` for farms without a quorum); and a connection whose
//! bucket moved between two live nodes is not cut by the move, which the scenario tests
//! assert from `Traffic::cut`.
use std::{collections::BTreeMap, time::Duration};

use farm_common::{FlowSeen, Handover, handover};
use farm_userspace::classify::{FlowState, Route, route};

use super::{Node, Sim};

/// How often each sampled flow sends.
pub const TRAFFIC_EVERY: Duration = Duration::from_millis(50);

/// What the clients' flows hold.
#[derive(Default)]
pub struct Traffic {
    /// Each flow's connection: the node holding its socket.
    pub conns: BTreeMap<usize, u16>,
    /// (node, flow) to the node's record of the flow, as its data plane learned it
    /// (`FARM_FLOWS`), in milliseconds since the simulation started.
    pub learned: BTreeMap<(u16, usize), FlowSeen>,
    /// Connections cut: a packet of theirs taken by a node without their socket, or by
    /// none, as (flow, the node that held it).
    pub cut: Vec<(usize, u16)>,
    /// Packets taken by two nodes that disagreed on their bucket's move.
    pub disagreed: u64,
    /// UDP datagrams taken by two nodes that agreed on the move but learned the flow
    /// differently.
    pub relearned: u64,
    /// The first of those.
    pub first: Option<String>,
}

impl Sim {
    /// Every sampled flow sends a packet.
    pub fn send_traffic(&mut self) -> Result<(), String> {
        let idle = self.spec.config(1).cluster.flow_idle_ms;
        let (now, clock) = (self.now, self.elapsed().as_millis() as u64);
        for (i, flow) in self.flows.iter().enumerate() {
            let home = self.traffic.conns.get(&i).copied();
            // Each node's data plane learns the datagram first (farm-ebpf's
            // `flow_holder`), then decides.
            let mut records = vec![];
            let mut holders = BTreeMap::new();
            for n in &self.nodes {
                let Some(h) = handover_of(n, flow) else { continue };
                let seen = self.traffic.learned.get(&(n.id, i)).copied();
                let (holder, record) = handover::holder(seen, &h, clock, idle);
                holders.insert(n.id, holder);
                records.extend(record.map(|r| ((n.id, i), r)));
            }
            self.traffic.learned.extend(records);
            let state = |n: &Node| FlowState {
                connected: home.is_some(),
                held: home == Some(n.id),
                holder: holders.get(&n.id).copied().flatten(),
            };
            let takers: Vec<&Node> =
                self.nodes.iter().filter(|n| n.model.plane().takes(flow, state(n), now)).collect();
            // Nodes that disagree on the bucket's move (a view changed before every node
            // installed the last, so their last installs differ; a move overtook
            // another) each decide by their own: a flow may then reach both, as without
            // handovers. So may a UDP flow whose datagrams the two nodes learned under
            // different files (a reload during the move). Both are counted; the
            // scenarios of planned moves on a settled farm require none
            // (`docs/config.md#handover`). A TCP packet taken twice by two nodes that
            // agree on the move is a violation.
            let agree = |a: &Node, b: &Node| {
                let (x, y) = (handover_of(a, flow), handover_of(b, flow));
                x.map(|x| (x.old, x.new)) == y.map(|y| (y.old, y.new))
            };
            let udp = flow.protocol == farm_userspace::config::Protocol::Udp;
            if let [a, b, ..] = takers[..] {
                let what = || {
                    let how: Vec<String> = [a, b].iter().map(|n| how(n, flow)).collect();
                    let (x, y) = (a.id, b.id);
                    format!(
                        "{flow:?} (connection on {home:?}): taken by nodes {x} and {y} ({})",
                        how.join("; ")
                    )
                };
                if self.excused(a, b) {
                    // A partition, or loss cutting them apart, without a quorum.
                } else if !agree(a, b) {
                    self.traffic.disagreed += 1;
                    self.traffic.first.get_or_insert_with(what);
                } else if udp {
                    self.traffic.relearned += 1;
                    self.traffic.first.get_or_insert_with(what);
                } else {
                    return Err(self.failure(&what()));
                }
            }
            let taker = takers.first().map(|n| n.id);
            let tcp = flow.protocol == farm_userspace::config::Protocol::Tcp;
            match (home, taker) {
                (Some(h), Some(t)) if h == t => {}
                (Some(h), _) => {
                    self.traffic.cut.push((i, h));
                    self.traffic.conns.remove(&i);
                }
                (None, Some(t)) if tcp => {
                    self.traffic.conns.insert(i, t);
                }
                (None, _) => {}
            }
        }
        Ok(())
    }
}

/// The handover of `flow`'s bucket in node `n`'s data plane, if any.
fn handover_of(n: &Node, flow: &farm_userspace::classify::Flow) -> Option<Handover> {
    let Route::Table { slot, bucket } = route(&n.model.rules, &n.model.node, flow) else {
        return None;
    };
    n.model.moving.get(&(usize::from(slot), bucket)).copied()
}

/// What node `n`'s data plane holds of `flow`'s bucket: its owner, its handover.
fn how(n: &Node, flow: &farm_userspace::classify::Flow) -> String {
    let Route::Table { slot, bucket } = route(&n.model.rules, &n.model.node, flow) else {
        return format!("node {}: no table", n.id);
    };
    let owner = n.model.rows.get(usize::from(slot)).and_then(|r| r.get(bucket as usize));
    let h = n.model.moving.get(&(usize::from(slot), bucket));
    format!("node {}: slot {slot} bucket {bucket}, owner {owner:?}, handover {h:?}", n.id)
}
