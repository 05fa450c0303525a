//! Counting the flows this node keeps on the buckets it handed over: its TCP sockets
//! (from /proc/net/tcp and tcp6, in the agent's namespace, where its services run) and
//! the live UDP flows the program learned. `farm drain --wait` waits for none.
//!
//! The count runs on a thread of its own, at the normal scheduler's priority: reading
//! /proc/net/tcp walks the kernel's whole connection table, however few connections
//! this node has (some 4 ms a file at the default 262,144 entries), and on the loop,
//! at its real-time priority, agents all asked at once (a monitor polling a farm) held
//! each other off the CPU past their leases.
use std::{path::PathBuf, sync::Arc};

use anyhow::{Context, Result};
use log::debug;

use super::worker::Worker;
use crate::{
    dataplane::Dataplane,
    handover::{self, Kept, Moving},
    rules::Rules,
};

/// The counting thread: the handovers as written and the rules in, their count (or why
/// none) out. It reads the learned UDP flows from the pinned maps itself: up to 65,536
/// entries, two syscalls each, are no work for the loop either.
pub type Counter = Worker<(Arc<Moving>, Rules), (Arc<Moving>, Result<Kept, String>)>;

/// Starts the counting thread, which opens the maps pinned in `pins` at its first count.
pub fn counter(pins: PathBuf) -> Result<Counter> {
    let count = move |dp: &mut Option<Dataplane>, (moving, rules): (Arc<Moving>, Rules)| {
        let kept = count(dp, &pins, &moving, &rules).map_err(|e| format!("{e:#}"));
        (moving, kept)
    };
    Worker::spawn_with("farm-kept", || None, count)
}

fn count(
    dp: &mut Option<Dataplane>,
    pins: &std::path::Path,
    moving: &Moving,
    rules: &Rules,
) -> Result<Kept> {
    if dp.is_none() {
        *dp = Some(Dataplane::open_pinned(pins).context("open the pinned maps")?);
    }
    let dp = dp.as_ref().context("opened above")?;
    let flows = dp.live_flows().context("read the learned UDP flows")?;
    let node = dp.node_config().context("read the node's record")?;
    Ok(handover::kept(moving, rules, &node, &sockets(), &flows))
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
