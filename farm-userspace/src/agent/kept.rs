//! Counting the flows this node keeps on the buckets it handed over: its TCP sockets
//! (from /proc/net/tcp and tcp6, in the agent's namespace, where its services run) and
//! the live UDP flows the program learned. `farm drain --wait` waits for none.
//!
//! The count runs on a thread of its own, at the normal scheduler's priority: reading
//! /proc/net/tcp walks the kernel's whole connection table, however few connections
//! this node has (some 4 ms a file at the default 262,144 entries), and on the loop,
//! at its real-time priority, agents all asked at once (a monitor polling a farm) held
//! each other off the CPU past their leases.
use std::sync::Arc;

use anyhow::{Context, Result};
use farm_common::{FlowKey, NodeConfig};
use log::debug;

use super::worker::Worker;
use crate::{
    dataplane::Dataplane,
    handover::{self, Kept, Moving},
    rules::Rules,
};

/// What a count needs from the loop: the handovers as written, and the data plane's
/// part (read on the loop, which owns the maps).
pub struct Job {
    moving: Arc<Moving>,
    rules: Rules,
    node: NodeConfig,
    flows: Vec<(FlowKey, u16)>,
}

/// The counting thread: jobs in, counts out (with the handovers they are of).
pub struct Counter(pub Worker<Job, (Arc<Moving>, Kept)>);

impl Counter {
    pub fn spawn() -> Result<Counter> {
        let count = |job: Job| {
            let kept = handover::kept(&job.moving, &job.rules, &job.node, &sockets(), &job.flows);
            (job.moving, kept)
        };
        Ok(Counter(Worker::spawn("farm-kept", count)?))
    }

    /// Asks for a count of the flows kept on the buckets `moving` hands from this node.
    pub fn ask(&self, dp: &Dataplane, rules: Rules, moving: Arc<Moving>) -> Result<()> {
        let flows = dp.live_flows().context("read the learned UDP flows")?;
        let node = dp.node_config().context("read the node's record")?;
        self.0.ask(Job { moving, rules, node, flows });
        Ok(())
    }
}

/// This host's TCP sockets, as its namespace lists them.
fn sockets() -> Vec<handover::Socket> {
    let mut sockets = vec![];
    for (path, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        // A kernel without IPv6 has no tcp6.
        match std::fs::read_to_string(path) {
            Ok(text) => sockets.extend(handover::parse_sockets(&text, v6)),
            Err(e) => debug!("{path}: {e}"),
        }
    }
    sockets
}
