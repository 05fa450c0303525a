//! The XDP program's decisions, in userspace: what it does with any frame on a node whose
//! data plane holds given rules, rows, seed and lease. `farm lookup` answers with its
//! bucket; the simulation asks `Plane::accepts` of every node's modelled data plane (the
//! rules, rows, seed and lease the agent wrote); the fuzzer checks every frame it runs
//! through the program against `Plane::judge`. So what all three say is what farm-ebpf
//! does.
//!
//! `route` steers unfragmented TCP and UDP; `frame` reads headers as the program's
//! `parse` does; `verdict` follows the program through a whole frame (ARP, neighbour
//! solicitations, VLAN tags, IPv6 extension headers, fragments, ICMP errors, the lease)
//! to its action, its counter and the frame it leaves.
use std::time::Instant;

use farm_common::{
    NO_OWNER, NodeConfig,
    handover::{Packet, takes},
};

use crate::{config::Protocol, handover::Moving, rules::Rules};

mod frame;
mod route;
mod verdict;

pub use route::{Flow, Route, bucket, route};
pub use verdict::{Action, Verdict};

/// A flow as a node's handover sees its next packet.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlowState {
    /// A TCP connection is open (its next packet is no SYN).
    pub connected: bool,
    /// This node holds the connection's socket.
    pub held: bool,
    /// Who holds the UDP flow as this node learned it (a datagram seen before the move
    /// was installed, and not idle since).
    pub holder: Option<u16>,
}

/// What a node's data plane holds, as far as the program reads it.
#[derive(Debug, Clone)]
pub struct Plane<'a> {
    pub rules: &'a Rules,
    pub node: &'a NodeConfig,
    /// The active half of the owner table, slot by slot, as the agent's table says (a
    /// bucket in handover shows the owner of its new flows).
    pub rows: &'a [Vec<u16>],
    /// The buckets in handover.
    pub moving: &'a Moving,
    /// The lease's end; `None`: ended.
    pub lease: Option<Instant>,
}

impl Plane<'_> {
    /// Who owns `flow`'s bucket in this table, if anyone.
    pub fn owner(&self, flow: &Flow) -> Option<u16> {
        match route(self.rules, self.node, flow) {
            Route::Table { slot, bucket } => {
                Some(self.owner_of(slot, bucket)).filter(|&o| o != NO_OWNER)
            }
            Route::NotVip | Route::NoService { .. } => None,
        }
    }

    /// Whether this node takes `flow` at `now`: it owns the bucket and its lease runs.
    pub fn accepts(&self, flow: &Flow, now: Instant) -> bool {
        self.leased(now) && self.owner(flow) == Some(self.node.node_id)
    }

    /// Whether this node takes the next packet of `flow` at `now`, `state` saying, for a
    /// bucket in handover, what the flow is and what this node holds of it.
    pub fn takes(&self, flow: &Flow, state: FlowState, now: Instant) -> bool {
        if !self.leased(now) {
            return false;
        }
        let Route::Table { slot, bucket } = route(self.rules, self.node, flow) else {
            return false;
        };
        let Some(h) = self.moving.get(&(usize::from(slot), bucket)) else {
            return self.owner_of(slot, bucket) == self.node.node_id;
        };
        // A service's, or the VIP's default rule's: a flow all the same.
        let packet = match flow.protocol {
            Protocol::Tcp if state.connected => Packet::Segment { held: state.held },
            Protocol::Tcp => Packet::Syn,
            Protocol::Udp => Packet::Datagram { holder: state.holder },
        };
        takes(h, self.node.node_id, packet)
    }

    /// The owner of `bucket` in row `slot` (`NO_OWNER` for none, or a row not written).
    fn owner_of(&self, slot: u16, bucket: u32) -> u16 {
        let row = self.rows.get(usize::from(slot));
        row.and_then(|r| r.get(bucket as usize)).copied().unwrap_or(NO_OWNER)
    }

    /// Whether the lease runs at `now`.
    fn leased(&self, now: Instant) -> bool {
        self.lease.is_some_and(|end| now < end)
    }
}
