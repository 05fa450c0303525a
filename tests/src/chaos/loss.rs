//! Loss one way: an nftables rule in one node's namespace that drops a share of the
//! heartbeats it sends, at random; what it receives still comes. Removed on drop.
use anyhow::Result;

use super::nft::Tables;
use crate::farm::{HEARTBEAT_PORT, NsFarm};

pub struct Loss {
    /// Held for its drop, which removes the rule.
    _tables: Tables,
}

impl Loss {
    /// Drops `percent` of the heartbeats the node at index `i` of `farm` sends.
    pub fn new(farm: &NsFarm, i: usize, percent: u32) -> Result<Loss> {
        let mut tables = Tables::new("farmloss");
        let rule = format!("out udp dport {HEARTBEAT_PORT} numgen random mod 100 < {percent} drop");
        tables.add(&farm.nodes[i].host.ns.name, &[rule])?;
        Ok(Loss { _tables: tables })
    }
}
