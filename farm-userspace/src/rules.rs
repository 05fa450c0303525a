//! From a validated configuration to the entries of the data plane's maps: which table
//! slot each VIP and service gets, the keys the XDP program looks up, and this node's
//! record. Pure, so it is tested without a kernel.
use std::net::IpAddr;

use farm_common::{
    MODE_CLIENT_IP, MODE_CLIENT_IP_PORT, MODE_DROP, NO_OWNER, NodeConfig, ServiceKey, Target,
    VipKey, client_key_v4,
};

use crate::config::{Affinity, Config, DefaultAction};

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
    pub vips: Vec<(VipKey, Target)>,
    pub services: Vec<(ServiceKey, Target)>,
    /// `slots[i]` is what slot `i` serves: VIPs first, then services, in file order.
    pub slots: Vec<SlotUse>,
}

/// The 16-byte key form of an address (IPv4 as `::ffff:a.b.c.d`), as the program sees it.
pub fn addr_key(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => client_key_v4(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    }
}

pub fn rules(cfg: &Config) -> Rules {
    let mut slots: Vec<SlotUse> = cfg.vips.iter().map(|v| SlotUse::Vip(v.address)).collect();
    let vips = cfg
        .vips
        .iter()
        .enumerate()
        .map(|(slot, v)| {
            let mode = match v.default {
                DefaultAction::Drop => MODE_DROP,
                DefaultAction::ClientIp => MODE_CLIENT_IP,
            };
            (VipKey { addr: addr_key(v.address) }, target(slot, mode))
        })
        .collect();
    let mut services = Vec::new();
    for (i, svc) in cfg.services.iter().enumerate() {
        let slot = slots.len();
        slots.push(SlotUse::Service(i));
        let mode = match svc.affinity {
            Affinity::ClientIp => MODE_CLIENT_IP,
            Affinity::ClientIpPort => MODE_CLIENT_IP_PORT,
        };
        for range in &svc.ports {
            for port in range.first..=range.last {
                let key = ServiceKey {
                    vip: addr_key(svc.vip),
                    port,
                    protocol: svc.protocol.number(),
                    _pad: 0,
                };
                services.push((key, target(slot, mode)));
            }
        }
    }
    Rules { vips, services, slots }
}

fn target(slot: usize, mode: u8) -> Target {
    Target { slot: slot as u16, mode, _pad: 0 }
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
