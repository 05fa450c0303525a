//! The nearest real peer of farm: the nftables recipe that replaced iptables' CLUSTERIP.
//! A netdev-ingress chain hashes each client with `jhash`, drops the clients of the other
//! nodes and marks this node's as addressed to the host (they came to a multicast MAC).
//! It runs after the kernel has built an skb, which is what farm's XDP verdict avoids.
use anyhow::{Context, Result};
use serde_json::Value;

use crate::{
    fixtures::VIP4,
    netns::{command_in, run},
};

const TABLE: &str = "farmpeer";
/// Three nodes, as in the fixture farm; this node keeps the clients hashing to 0.
const NODES: u32 = 3;
const SEED: u32 = 0x5eed;
const SHARE: u32 = 0;

/// Installs the filter on `device` in namespace `ns`, with a counter for each verdict.
pub fn install(ns: &str, device: &str) -> Result<()> {
    let rules = format!(
        "table netdev {TABLE} {{
            counter dropped {{ }}
            counter accepted {{ }}
            chain ingress {{
                type filter hook ingress device \"{device}\" priority 0; policy accept;
                ip daddr {VIP4} jhash ip saddr mod {NODES} seed {SEED:#x} != {SHARE} counter name \"dropped\" drop
                ip daddr {VIP4} counter name \"accepted\" meta pkttype set host
            }}
        }}"
    );
    run(command_in(ns, "nft").arg(rules)).context("install the nftables peer")?;
    Ok(())
}

/// Packets the filter has dropped and accepted so far.
pub struct Verdicts {
    pub dropped: u64,
    pub accepted: u64,
}

pub fn verdicts(ns: &str) -> Result<Verdicts> {
    let out =
        run(command_in(ns, "nft").args(["-j", "list", "counters", "table", "netdev", TABLE]))?;
    let json: Value =
        serde_json::from_slice(&out.stdout).context("parse `nft -j list counters`")?;
    let packets = |name: &str| {
        json["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|item| item["counter"]["name"] == name)
            .and_then(|item| item["counter"]["packets"].as_u64())
            .with_context(|| format!("no nft counter {name} in {json}"))
    };
    Ok(Verdicts { dropped: packets("dropped")?, accepted: packets("accepted")? })
}

/// The rule that splits the clients, for the report.
pub fn describe() -> String {
    format!("jhash ip saddr mod {NODES} seed {SEED:#x}, this node keeps {SHARE}")
}
