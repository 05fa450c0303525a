//! The data plane's steering of TCP and UDP to a VIP, in userspace: which table row and
//! bucket a client's packet falls in, and whether this node takes it. `farm lookup`
//! answers with it, and the simulation asks it of every node's modelled data plane
//! (the rules, rows, seed and lease the agent wrote), so what both say is what
//! farm-ebpf's `steer` does with unfragmented TCP and UDP.
use std::{net::IpAddr, time::Instant};

use farm_common::{
    MODE_CLIENT_IP_PORT, MODE_DROP, NO_OWNER, NodeConfig, bucket_of, flow_hash, port_rule_parts,
};

use crate::{
    config::Protocol,
    rules::{Rules, addr_key},
};

/// A client's packet to a VIP, as steering sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub vip: IpAddr,
    pub protocol: Protocol,
    pub port: u16,
    pub client: IpAddr,
    pub client_port: u16,
}

/// Where steering puts a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Not addressed to a VIP: passed to the stack.
    NotVip,
    /// No service claims the port and the VIP's default drops it, on every node.
    NoService { slot: u16 },
    /// Row `slot` decides, at `bucket`.
    Table { slot: u16, bucket: u32 },
}

/// The hash and bucket of a client (and its port, where the rule hashes it) under
/// `node`'s bucket count and seed.
pub fn bucket(node: &NodeConfig, client: IpAddr, port: u16) -> (u32, u32) {
    let hash = flow_hash(&addr_key(client), port, node.seed);
    (hash, bucket_of(hash, node.bucket_count))
}

/// Where `rules` put `flow` on a node whose record is `node`: the VIP's port rule, else
/// its default, as `steer::known_service` and `steer::default_rule` do.
pub fn route(rules: &Rules, node: &NodeConfig, flow: &Flow) -> Route {
    let key = addr_key(flow.vip);
    let Some((index, vip)) = rules.vips.iter().enumerate().find(|(_, v)| v.addr == key) else {
        return Route::NotVip;
    };
    let udp = flow.protocol == Protocol::Udp;
    let rule = rules
        .ports
        .iter()
        .find(|p| p.vip == index as u32 && p.udp == udp && p.port == flow.port)
        .and_then(|p| port_rule_parts(p.rule));
    let (slot, port) = match rule {
        Some((slot, mode)) => {
            (slot, if mode == MODE_CLIENT_IP_PORT { flow.client_port } else { 0 })
        }
        None if vip.mode == MODE_DROP => return Route::NoService { slot: index as u16 },
        None => (index as u16, 0),
    };
    Route::Table { slot, bucket: bucket(node, flow.client, port).1 }
}

/// What a node's data plane holds, as far as steering reads it.
#[derive(Debug, Clone)]
pub struct Plane<'a> {
    pub rules: &'a Rules,
    pub node: &'a NodeConfig,
    pub rows: &'a [Vec<u16>],
    /// The lease's end; `None`: ended.
    pub lease: Option<Instant>,
}

impl Plane<'_> {
    /// Who owns `flow`'s bucket in this table, if anyone.
    pub fn owner(&self, flow: &Flow) -> Option<u16> {
        match route(self.rules, self.node, flow) {
            Route::Table { slot, bucket } => {
                let row = self.rows.get(usize::from(slot))?;
                row.get(bucket as usize).copied().filter(|&o| o != NO_OWNER)
            }
            Route::NotVip | Route::NoService { .. } => None,
        }
    }

    /// Whether this node takes `flow` at `now`: it owns the bucket and its lease runs.
    pub fn accepts(&self, flow: &Flow, now: Instant) -> bool {
        self.lease.is_some_and(|end| now < end) && self.owner(flow) == Some(self.node.node_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::parse, rules::rules};

    #[test]
    fn routes_by_port_rule_then_the_vips_default() {
        let text = "cluster:\n  name: t\n  node_id: 1\n  interface: eth0\n  peers:\n    - {id: 1, address: \"198.18.0.1:7400\"}\nvips:\n  - {address: 198.18.0.100, default: client-ip}\n  - {address: 198.18.0.101, default: drop}\nservices:\n  - {name: web, vip: 198.18.0.100, protocol: tcp, ports: [80], affinity: client-ip-port}\n  - {name: dns, vip: 198.18.0.101, protocol: udp, ports: [53]}\n";
        let cfg = parse(text, "t.yaml").unwrap();
        let (rules, node) =
            (rules(&cfg), NodeConfig { bucket_count: 64, seed: 9, ..Default::default() });
        let client: IpAddr = "198.18.1.1".parse().unwrap();
        let flow = |vip: &str, protocol, port| Flow {
            vip: vip.parse().unwrap(),
            protocol,
            port,
            client,
            client_port: 40000,
        };
        let at = |slot, port| Route::Table { slot, bucket: bucket(&node, client, port).1 };
        assert_eq!(route(&rules, &node, &flow("198.18.0.100", Protocol::Tcp, 80)), at(2, 40000));
        assert_eq!(route(&rules, &node, &flow("198.18.0.101", Protocol::Udp, 53)), at(3, 0));
        assert_eq!(route(&rules, &node, &flow("198.18.0.100", Protocol::Udp, 80)), at(0, 0));
        assert_eq!(
            route(&rules, &node, &flow("198.18.0.101", Protocol::Tcp, 53)),
            Route::NoService { slot: 1 }
        );
        assert_eq!(route(&rules, &node, &flow("198.18.0.7", Protocol::Tcp, 80)), Route::NotVip);
    }
}
