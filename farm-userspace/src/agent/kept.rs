//! Counting the flows this node keeps on the buckets it handed over: its TCP sockets
//! (from /proc/net/tcp and tcp6, in the agent's namespace, where its services run) and
//! the live UDP flows the program learned. `farm drain --wait` waits for none.
use anyhow::{Context, Result};

use crate::{
    dataplane::Dataplane,
    handover::{self, Kept, Moving},
    rules::Rules,
};

/// The flows kept on the buckets `moving` hands from this node to others.
pub fn count(dp: &Dataplane, rules: &Rules, moving: &Moving) -> Result<Kept> {
    let mut sockets = vec![];
    for (path, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        // A kernel without IPv6 has no tcp6.
        if let Ok(text) = std::fs::read_to_string(path) {
            sockets.extend(handover::parse_sockets(&text, v6));
        }
    }
    let flows = dp.live_flows().context("read the learned UDP flows")?;
    let node = dp.node_config().context("read the node's record")?;
    Ok(handover::kept(moving, rules, &node, &sockets, &flows))
}
