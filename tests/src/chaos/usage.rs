//! What an agent holds of the machine: its resident memory and its open file
//! descriptors, from /proc. Over a long soak, either growing is a leak.
use anyhow::{Context, Result};

use crate::farm::NsFarm;

#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub pid: u32,
    pub rss_kib: u64,
    pub fds: usize,
}

/// Each node's agent, in node order.
pub fn of_agents(farm: &NsFarm) -> Result<Vec<Usage>> {
    farm.nodes
        .iter()
        .map(|n| {
            let pid = n.agent.as_ref().with_context(|| format!("{} runs no agent", n.name))?.id();
            of(pid).with_context(|| format!("read /proc/{pid} ({}'s agent)", n.name))
        })
        .collect()
}

fn of(pid: u32) -> Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    Ok(Usage { pid, rss_kib, fds })
}
