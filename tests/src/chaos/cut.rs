//! A partition: nftables rules in the namespaces of one side's nodes that drop every
//! heartbeat between them and the other nodes, both ways. Client traffic still reaches
//! every node; only the agents stop hearing each other across the cut. Removed on drop.
use anyhow::Result;

use super::nft::Tables;
use crate::farm::{HEARTBEAT_PORT, NsFarm, node_addr};

pub struct Cut {
    /// Held for its drop, which removes the rules.
    _tables: Tables,
}

impl Cut {
    /// Cuts the nodes at the indexes `side` off the rest of `farm`.
    pub fn new(farm: &NsFarm, side: &[usize]) -> Result<Cut> {
        let others: Vec<String> = (0..farm.nodes.len())
            .filter(|i| !side.contains(i))
            .map(|i| node_addr(i + 1).to_string())
            .collect();
        let others = others.join(", ");
        let mut tables = Tables::new("farmchaos");
        for &i in side {
            tables.add(
                &farm.nodes[i].host.ns.name,
                &[
                    format!("in ip saddr {{ {others} }} udp dport {HEARTBEAT_PORT} drop"),
                    format!("out ip daddr {{ {others} }} udp dport {HEARTBEAT_PORT} drop"),
                ],
            )?;
        }
        Ok(Cut { _tables: tables })
    }
}
