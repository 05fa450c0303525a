//! `farm lookup`: which bucket a client falls in, computed here with the data plane's
//! own hash (farm-common), and who owns that bucket in the loaded table.
use std::net::IpAddr;

use anyhow::{Result, bail};
use clap::Args;
use farm_common::{NO_OWNER, NodeConfig};
use farm_userspace::classify;
use serde::Serialize;

use super::{
    client,
    slots::{self, Slot},
    target::Common,
};

pub const JSON_HELP: &str = "JSON (--json): {client, port (the source port hashed; null when the service ignores it), \
service, slot, affinity (client-ip|client-ip-port), hash, bucket, bucket_count, seed, owner (null for none), node_id \
(this node), this_node_owns}.";

#[derive(Args)]
pub struct LookupArgs {
    /// The client: IP or IP:PORT; IPv6 as `2001:db8::1` or `[2001:db8::1]:PORT`. The port
    /// counts only for client-ip-port services.
    #[arg(value_name = "CLIENT[:PORT]")]
    pub client: String,
    /// The service the client talks to (or a VIP address, for the VIP's own slot).
    #[arg(long, value_name = "NAME")]
    pub service: String,
    #[command(flatten)]
    pub common: Common,
}

/// Where a client lands, and who owns it there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lookup {
    pub client: IpAddr,
    pub port: Option<u16>,
    pub service: String,
    pub slot: u32,
    pub affinity: &'static str,
    pub hash: u32,
    pub bucket: u32,
    pub bucket_count: u32,
    pub seed: u32,
    pub owner: Option<u16>,
    pub node_id: u16,
    pub this_node_owns: bool,
}

pub fn run(args: &LookupArgs) -> Result<String> {
    let (ip, port) = client::parse(&args.client).map_err(anyhow::Error::msg)?;
    let loaded = args.common.open()?;
    let slot = slots::find(&slots::table_slots(&loaded.cfg), &loaded.config, &args.service)?;
    let found = locate(ip, port, &slot, &loaded.node, &loaded.dp.row(slot.id.slot as usize)?)?;
    Ok(match args.common.json {
        true => format!("{:#}\n", serde_json::to_value(&found).expect("plain data")),
        false => text(&found),
    })
}

/// The client's bucket in `slot` under `node`'s bucket count and seed, and its owner in
/// `row` (the slot's row of the table).
pub fn locate(
    ip: IpAddr,
    port: Option<u16>,
    slot: &Slot,
    node: &NodeConfig,
    row: &[u16],
) -> Result<Lookup> {
    let port = match (slot.hashes_port, port) {
        (true, None) => bail!(
            "{} spreads each client's connections by source port (client-ip-port): give the port too, as {}",
            slot.id.name,
            match ip {
                IpAddr::V4(_) => format!("{ip}:PORT"),
                IpAddr::V6(_) => format!("[{ip}]:PORT"),
            }
        ),
        (true, port) => port,
        (false, _) => None,
    };
    let (hash, bucket) = classify::bucket(node, ip, port.unwrap_or(0));
    let owner = row.get(bucket as usize).copied().filter(|&o| o != NO_OWNER);
    Ok(Lookup {
        client: ip,
        port,
        service: slot.id.name.clone(),
        slot: slot.id.slot,
        affinity: if slot.hashes_port { "client-ip-port" } else { "client-ip" },
        hash,
        bucket,
        bucket_count: node.bucket_count,
        seed: node.seed,
        owner,
        node_id: node.node_id,
        this_node_owns: owner == Some(node.node_id),
    })
}

pub fn text(l: &Lookup) -> String {
    let client = match (l.port, l.client) {
        (Some(p), IpAddr::V6(_)) => format!("[{}]:{p}", l.client),
        (Some(p), IpAddr::V4(_)) => format!("{}:{p}", l.client),
        (None, _) => l.client.to_string(),
    };
    let owner = match l.owner {
        Some(o) if l.this_node_owns => format!("node {o}, this node"),
        Some(o) => format!("node {o} (this is node {}, which drops it)", l.node_id),
        None => "none: every node drops this client".into(),
    };
    format!(
        "{client} -> {} (slot {}, {} affinity)\nbucket {} of {} (hash {:#010x}, seed {:#x})\nowner  {owner}\n",
        l.service, l.slot, l.affinity, l.bucket, l.bucket_count, l.hash, l.seed
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::slots::{table_slots, tests::config};
    use farm_common::{bucket_of, flow_hash};
    use farm_userspace::rules::addr_key;

    fn node() -> NodeConfig {
        NodeConfig { node_id: 2, bucket_count: 4096, seed: 0x5eed, ..NodeConfig::default() }
    }

    #[test]
    fn hashes_as_the_data_plane_does() {
        let web = &table_slots(&config())[2];
        let ip: IpAddr = "198.18.1.1".parse().unwrap();
        let row: Vec<u16> =
            (0..4096u32).map(|b| if b.is_multiple_of(2) { 2 } else { NO_OWNER }).collect();
        let l = locate(ip, Some(40000), web, &node(), &row).unwrap();
        assert_eq!(l.hash, flow_hash(&[0, 0, 0xffff, 0xc612_0101], 40000, 0x5eed));
        assert_eq!(
            (l.bucket, l.port, l.affinity),
            (bucket_of(l.hash, 4096), Some(40000), "client-ip-port")
        );
        let owner = l.bucket.is_multiple_of(2).then_some(2);
        assert_eq!((l.owner, l.this_node_owns), (owner, owner.is_some()));
    }

    #[test]
    fn the_port_counts_only_where_the_service_hashes_it() {
        let slots = table_slots(&config());
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let row = [NO_OWNER; 4096];
        let vip = locate(ip, Some(5000), &slots[0], &node(), &row).unwrap();
        assert_eq!((vip.port, vip.hash), (None, flow_hash(&addr_key(ip), 0, 0x5eed)));
        let err = locate(ip, None, &slots[2], &node(), &row).unwrap_err().to_string();
        assert!(err.ends_with("give the port too, as [2001:db8::1]:PORT"), "{err}");
    }

    #[test]
    fn text_says_who_owns_it() {
        let web = &table_slots(&config())[2];
        let l =
            locate("198.18.1.1".parse().unwrap(), Some(40000), web, &node(), &[1; 4096]).unwrap();
        let text = text(&l);
        assert!(
            text.starts_with("198.18.1.1:40000 -> web (slot 2, client-ip-port affinity)\n"),
            "{text}"
        );
        assert!(text.ends_with("owner  node 1 (this is node 2, which drops it)\n"), "{text}");
    }
}
