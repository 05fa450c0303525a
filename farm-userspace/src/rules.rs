//! From a validated configuration to the entries of the data plane's maps: which table
//! slot each VIP and service gets, the keys the XDP program looks up, and this node's
//! record. Pure, so it is tested without a kernel.
use std::net::IpAddr;

use farm_common::{
    Addr, MODE_CLIENT_IP, MODE_CLIENT_IP_PORT, MODE_DROP, NO_OWNER, NodeConfig, VIP_IN_USE,
    VIP_INDEX_SHARED, VipEntry, port_position, port_rule, v4_addr, v6_addr, vip_fold,
};

use crate::config::{Affinity, Config, DefaultAction, Protocol};

/// What one slot of the owner table and counters serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotUse {
    /// A VIP's own table: its default rule, ICMP echo and fragments.
    Vip(IpAddr),
    /// A service, by its index in `Config::services`.
    Service(usize),
}

/// The data plane's view of a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// `vips[i]` is VIP `i`, which is also slot `i`.
    pub vips: Vec<VipEntry>,
    /// Every (VIP index, UDP?, port) a service claims, with its rule byte.
    pub ports: Vec<PortRule>,
    /// `slots[i]` is what slot `i` serves: VIPs first, then services, in file order.
    pub slots: Vec<SlotUse>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRule {
    pub vip: u32,
    pub udp: bool,
    pub port: u16,
    pub rule: u8,
}

/// An address in the data plane's form (IPv4 as `::ffff:a.b.c.d`), as the program
/// hashes and looks it up.
pub fn addr_key(addr: IpAddr) -> Addr {
    match addr {
        IpAddr::V4(v4) => v4_addr(v4.to_bits()),
        IpAddr::V6(v6) => v6_addr(v6.octets()),
    }
}

/// What each slot serves: VIP `i` has slot `i`, services follow in file order.
pub fn slots(cfg: &Config) -> Vec<SlotUse> {
    let vips = cfg.vips.iter().map(|v| SlotUse::Vip(v.address));
    vips.chain((0..cfg.services.len()).map(SlotUse::Service)).collect()
}

pub fn rules(cfg: &Config) -> Rules {
    let vips = cfg
        .vips
        .iter()
        .enumerate()
        .map(|(i, v)| VipEntry {
            addr: addr_key(v.address),
            mode: match v.default {
                DefaultAction::Drop => MODE_DROP,
                // The table gives every bucket to the one node (`agent::tables`).
                DefaultAction::ClientIp | DefaultAction::Priority => MODE_CLIENT_IP,
            },
            in_use: VIP_IN_USE,
            index: i as u8,
            _pad: 0,
        })
        .collect();
    let mut ports = Vec::new();
    for (i, svc) in cfg.services.iter().enumerate() {
        let slot = (cfg.vips.len() + i) as u16;
        let mode = match svc.affinity {
            // One node owns every bucket of an active-backup table: any hash will do.
            Affinity::ClientIp | Affinity::ActiveBackup => MODE_CLIENT_IP,
            Affinity::ClientIpPort => MODE_CLIENT_IP_PORT,
        };
        let vip = cfg.vips.iter().position(|v| v.address == svc.vip).expect("validated") as u32;
        let udp = svc.protocol == Protocol::Udp;
        for range in &svc.ports {
            ports.extend((range.first..=range.last).map(|port| PortRule {
                vip,
                udp,
                port,
                rule: port_rule(slot, mode),
            }));
        }
    }
    Rules { vips, ports, slots: slots(cfg) }
}

impl Rules {
    /// `FARM_VIP_INDEX`'s non-empty entries: each VIP at its fold, a `VIP_INDEX_SHARED`
    /// marker where several VIPs fold alike.
    pub fn vip_index(&self) -> std::collections::BTreeMap<u32, VipEntry> {
        let mut index = std::collections::BTreeMap::new();
        for v in &self.vips {
            index
                .entry(vip_fold(&v.addr))
                .and_modify(|e: &mut VipEntry| {
                    *e = VipEntry { in_use: VIP_INDEX_SHARED, ..VipEntry::default() }
                })
                .or_insert(*v);
        }
        index
    }

    /// `FARM_SERVICES`'s non-zero elements: element index -> its 8 rule bytes.
    pub fn port_elements(&self) -> std::collections::BTreeMap<u32, u64> {
        let mut elements = std::collections::BTreeMap::new();
        for p in &self.ports {
            let (element, shift) = port_position(p.vip, p.udp, p.port);
            *elements.entry(element).or_insert(0u64) |= u64::from(p.rule) << shift;
        }
        elements
    }
}

/// This node's record for `FARM_CONFIG`; `own_mac` is the NIC's address.
pub fn node_config(cfg: &Config, own_mac: [u8; 6]) -> NodeConfig {
    NodeConfig {
        own_mac,
        cluster_mac: cfg.cluster.cluster_mac,
        node_id: cfg.cluster.node_id,
        _pad: 0,
        bucket_count: cfg.cluster.buckets,
        seed: cfg.cluster.seed,
    }
}

/// The owner row `static_owners` describes (the same for every slot), if the file has one.
pub fn static_row(cfg: &Config) -> Option<Vec<u16>> {
    let owners = cfg.static_owners.as_ref()?;
    let mut row = vec![NO_OWNER; cfg.cluster.buckets as usize];
    for (&node, ranges) in owners {
        for r in ranges {
            row[r.first as usize..=r.last as usize].fill(node);
        }
    }
    Some(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(addr: [u8; 4], index: u8) -> VipEntry {
        VipEntry {
            addr: v4_addr(u32::from_be_bytes(addr)),
            mode: 0,
            in_use: VIP_IN_USE,
            index,
            _pad: 0,
        }
    }

    #[test]
    fn vips_folding_alike_share_a_marked_index_entry() {
        let rules = Rules {
            vips: vec![
                entry([198, 18, 0, 100], 0),
                entry([198, 19, 0, 101], 1),
                entry([198, 18, 0, 7], 2),
            ],
            ports: vec![],
            slots: vec![],
        };
        let index = rules.vip_index();
        assert_eq!(index.len(), 2);
        assert_eq!(index[&vip_fold(&rules.vips[0].addr)].in_use, VIP_INDEX_SHARED);
        assert_eq!(index[&vip_fold(&rules.vips[2].addr)], rules.vips[2]);
    }
}
