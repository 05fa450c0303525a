//! Where steering puts a client's unfragmented TCP or UDP packet to a VIP: the VIP's
//! port rule, else its default, as farm-ebpf's `steer::known_service` and
//! `steer::default_rule` do. The frame model (`verdict`) finds VIPs and services the
//! same way.
use std::net::IpAddr;

use farm_common::{
    Addr, MODE_CLIENT_IP_PORT, MODE_DROP, NodeConfig, VIP_IN_USE, bucket_of, flow_hash,
    frame::{IPPROTO_TCP, IPPROTO_UDP},
    port_rule_parts,
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
    bucket_of_key(node, &addr_key(client), port)
}

/// `bucket` for an address in the data plane's form.
pub(super) fn bucket_of_key(node: &NodeConfig, client: &Addr, port: u16) -> (u32, u32) {
    let hash = flow_hash(client, port, node.seed);
    (hash, bucket_of(hash, node.bucket_count))
}

/// A VIP as steering needs it: its slot and default mode (farm-ebpf's `vip::Vip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Vip {
    pub slot: u16,
    pub mode: u8,
}

/// The VIP `addr` is, if any.
pub(super) fn find_vip(rules: &Rules, addr: &Addr) -> Option<Vip> {
    let v = rules.vips.iter().find(|v| v.in_use == VIP_IN_USE && v.addr == *addr)?;
    Some(Vip { slot: u16::from(v.index), mode: v.mode })
}

/// The (slot, mode) of the service that claims `port` of `proto` on `vip`: TCP and UDP
/// only.
pub(super) fn service(rules: &Rules, vip: Vip, proto: u8, port: u16) -> Option<(u16, u8)> {
    let udp = match proto {
        IPPROTO_TCP => false,
        IPPROTO_UDP => true,
        _ => return None,
    };
    let vip = u32::from(vip.slot);
    let rule = rules.ports.iter().find(|p| p.vip == vip && p.udp == udp && p.port == port)?;
    port_rule_parts(rule.rule)
}

/// Where `rules` put `flow` on a node whose record is `node`.
pub fn route(rules: &Rules, node: &NodeConfig, flow: &Flow) -> Route {
    let Some(vip) = find_vip(rules, &addr_key(flow.vip)) else {
        return Route::NotVip;
    };
    let proto = match flow.protocol {
        Protocol::Tcp => IPPROTO_TCP,
        Protocol::Udp => IPPROTO_UDP,
    };
    let (slot, port) = match service(rules, vip, proto, flow.port) {
        Some((slot, mode)) => {
            (slot, if mode == MODE_CLIENT_IP_PORT { flow.client_port } else { 0 })
        }
        None if vip.mode == MODE_DROP => return Route::NoService { slot: vip.slot },
        None => (vip.slot, 0),
    };
    Route::Table { slot, bucket: bucket(node, flow.client, port).1 }
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
