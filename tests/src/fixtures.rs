//! The standard fixture farm the verdict tests and the benchmark share: node 1 of three,
//! three VIPs (IPv4 with default drop, IPv6 with default client-ip, IPv6 with default
//! drop and no services) and four services, and the addresses of its clients.
use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use farm_userspace::config::{
    Affinity, Agent, Cluster, Config, DefaultAction, Failback, Http, L2Mode, NodeSource, Peer,
    PortRange, Protocol, QuorumMode, Service, Vip,
};

use crate::packet::CLUSTER_MAC;

pub const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
/// An IPv6 VIP whose default is drop, with no services.
pub const VIP6_DROP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x101);
pub const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 7);
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 7);
/// An address that is no VIP.
pub const OTHER4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 200);
pub const OTHER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x200);
/// This node's peer that owns the buckets this node does not, in the tests' tables.
pub const PEER: u16 = 2;
pub const SEED: u32 = 0x5eed_f00d;
pub const BUCKETS: u32 = 4096;

/// Slots as `rules` numbers them: VIPs first, then services in file order.
pub const SLOT_VIP4: u32 = 0;
pub const SLOT_VIP6: u32 = 1;
pub const SLOT_VIP6_DROP: u32 = 2;
/// tcp/80 on VIP4, client-ip.
pub const SLOT_WEB4: u32 = 3;
/// udp/53, 5353 and 6000-6009 on VIP4, client-ip-port.
pub const SLOT_DNS4: u32 = 4;
/// tcp/80 on VIP6, client-ip.
pub const SLOT_WEB6: u32 = 5;
/// udp/53 on VIP6, client-ip-port.
pub const SLOT_DNS6: u32 = 6;

pub fn config() -> Config {
    let peer = |id: u16| Peer {
        id,
        address: format!("198.18.0.{}:7400", 10 + id).parse().expect("literal"),
        weight: 1,
        priority: 0,
    };
    let service = |name: &str, vip: IpAddr, protocol, ports: Vec<PortRange>, affinity| Service {
        name: name.into(),
        vip,
        protocol,
        ports,
        affinity,
        weights: BTreeMap::new(),
        health: vec![],
        failback: Failback::Auto { delay_ms: 0 },
    };
    let port = |p: u16| PortRange { first: p, last: p };
    Config {
        cluster: Cluster {
            name: "fixture".into(),
            node_id: 1,
            node_source: NodeSource::File,
            interface: "eth0".into(),
            peers: vec![peer(1), peer(2), peer(3)],
            heartbeat_ms: 100,
            failure_threshold: 3,
            buckets: BUCKETS,
            seed: SEED,
            handover_timeout_ms: 60_000,
            flow_idle_ms: 30_000,
            key_file: None,
            l2_mode: L2Mode::Multicast,
            quorum: QuorumMode::None,
            witness: None,
            cluster_mac: CLUSTER_MAC,
        },
        vips: vec![
            Vip { address: VIP4.into(), default: DefaultAction::Drop },
            Vip { address: VIP6.into(), default: DefaultAction::ClientIp },
            Vip { address: VIP6_DROP.into(), default: DefaultAction::Drop },
        ],
        services: vec![
            service("web4", VIP4.into(), Protocol::Tcp, vec![port(80)], Affinity::ClientIp),
            service(
                "dns4",
                VIP4.into(),
                Protocol::Udp,
                vec![port(53), port(5353), PortRange { first: 6000, last: 6009 }],
                Affinity::ClientIpPort,
            ),
            service("web6", VIP6.into(), Protocol::Tcp, vec![port(80)], Affinity::ClientIp),
            service("dns6", VIP6.into(), Protocol::Udp, vec![port(53)], Affinity::ClientIpPort),
        ],
        static_owners: None,
        http: Http { listen: None },
        // No agent runs on the fixture configuration.
        agent: Agent { realtime_priority: None, lock_memory: false },
    }
}
