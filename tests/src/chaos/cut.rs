//! A partition: nftables rules in the namespaces of one side's nodes that drop every
//! heartbeat between them and the other nodes, both ways. Client traffic still reaches
//! every node; only the agents stop hearing each other across the cut. Removed on drop.
use anyhow::Result;

use crate::{
    farm::{HEARTBEAT_PORT, NsFarm, node_addr},
    netns::{command_in, run},
};

const TABLE: &str = "farmchaos";

pub struct Cut {
    namespaces: Vec<String>,
}

impl Cut {
    /// Cuts the nodes at the indexes `side` off the rest of `farm`.
    pub fn new(farm: &NsFarm, side: &[usize]) -> Result<Cut> {
        let others: Vec<String> = (0..farm.nodes.len())
            .filter(|i| !side.contains(i))
            .map(|i| node_addr(i + 1).to_string())
            .collect();
        let others = others.join(", ");
        let mut cut = Cut { namespaces: Vec::new() };
        for &i in side {
            let ns = farm.nodes[i].host.ns.name.clone();
            // Kept before the rules go in, so a half-made cut is removed too.
            cut.namespaces.push(ns.clone());
            for rule in [
                format!("add table inet {TABLE}"),
                format!("add chain inet {TABLE} in {{ type filter hook input priority 0; }}"),
                format!("add chain inet {TABLE} out {{ type filter hook output priority 0; }}"),
                format!(
                    "add rule inet {TABLE} in ip saddr {{ {others} }} udp dport {HEARTBEAT_PORT} drop"
                ),
                format!(
                    "add rule inet {TABLE} out ip daddr {{ {others} }} udp dport {HEARTBEAT_PORT} drop"
                ),
            ] {
                run(command_in(&ns, "nft").arg(rule))?;
            }
        }
        Ok(cut)
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = command_in(ns, "nft").args(["delete", "table", "inet", TABLE]).output();
        }
    }
}
