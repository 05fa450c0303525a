//! The farm a simulation runs: one file for every node (but `node_id`), and the changes a
//! reload may bring to it: weights, the seed, a VIP's default, a port moving from one
//! service to another, a service's affinity, a service added or removed. Parsed by the
//! agent's own configuration reader, so every variant is a file a user could write.
use std::{fmt::Write as _, net::IpAddr, net::SocketAddr};

use farm_userspace::{
    classify::Flow,
    config::{self, Config, Protocol},
};

use super::rng::Rng;

/// Buckets per table: few, so a run is quick, and each node still holds many.
pub const BUCKETS: u32 = 64;
pub const HEARTBEAT_MS: u64 = 100;
pub const THRESHOLD: u32 = 3;
/// The checker of `web` and `db`, every `CHECK_MS`.
pub const CHECK_MS: u64 = 200;
/// Rise and fall 1: every result counts, so flapping is damped by the hold-down alone.
const CHECKER: &str = "{exec: [\"true\"], interval_ms: 200, timeout_ms: 100, rise: 1, fall: 1}";
pub const FAILBACK_MS: u64 = 500;
/// Services with a checker: `web` and `db`, the first two of the file.
pub const CHECKED: [usize; 2] = [0, 1];

/// Where port 8080 goes: the `web` service, a service `alt` of its own, or nowhere (the
/// VIP's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alt {
    InWeb,
    Own,
    Unclaimed,
}

/// `cluster.quorum`, and whether a witness breaks ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quorum {
    None,
    Majority,
    /// `majority`, with the simulation's witness (`WITNESS`).
    Witness,
}

/// Where the simulated witness answers.
pub fn witness_address() -> SocketAddr {
    SocketAddr::new(IpAddr::from([198, 18, 0, 250]), 7402)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub nodes: u16,
    /// Fixed for a run: reloads keep it.
    pub quorum: Quorum,
    pub seed: u32,
    /// Each node's weight, node `i` at `i - 1`.
    pub weights: Vec<u32>,
    /// Node 1's weight in `web` alone.
    pub web_weight: Option<u32>,
    pub alt: Alt,
    /// `dns` hashes the client's port too (`client-ip-port`).
    pub dns_by_port: bool,
    /// The second VIP drops what no service claims (else it hashes the client).
    pub vip2_drops: bool,
    /// A service `extra` on the second VIP, port 9000.
    pub extra: bool,
    /// `db` fails back only on `farm failback` (else after `FAILBACK_MS`).
    pub manual_failback: bool,
}

pub fn address(id: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::from([198, 18, 0, id as u8]), 7400)
}

const VIP1: [u8; 4] = [198, 18, 0, 100];
const VIP2: [u8; 4] = [198, 18, 0, 101];

impl Spec {
    pub fn new(nodes: u16) -> Spec {
        Spec {
            nodes,
            quorum: Quorum::None,
            seed: 7,
            weights: vec![1; usize::from(nodes)],
            web_weight: None,
            alt: Alt::InWeb,
            dns_by_port: false,
            vip2_drops: true,
            extra: false,
            manual_failback: false,
        }
    }

    /// The file as node `id` reads it.
    pub fn yaml(&self, id: u16) -> String {
        let mut y = format!(
            "cluster:\n  name: sim\n  node_id: {id}\n  interface: sim0\n  heartbeat_ms: {HEARTBEAT_MS}\n  failure_threshold: {THRESHOLD}\n  buckets: {BUCKETS}\n  seed: {}\n  peers:\n",
            self.seed
        );
        match self.quorum {
            Quorum::None => {}
            Quorum::Majority => {
                y.insert_str(y.find("  peers:").expect("written"), "  quorum: majority\n")
            }
            Quorum::Witness => {
                let line = format!("  quorum: majority\n  witness: \"{}\"\n", witness_address());
                y.insert_str(y.find("  peers:").expect("written"), &line)
            }
        }
        // Priority by id: node 1 is the best for the active-backup service.
        for (i, w) in self.weights.iter().enumerate() {
            let n = i as u16 + 1;
            let address = address(n);
            let _ = writeln!(
                y,
                "    - {{id: {n}, address: \"{address}\", weight: {w}, priority: {n}}}"
            );
        }
        let vip2 = if self.vip2_drops { "drop" } else { "client-ip" };
        let _ = write!(
            y,
            "vips:\n  - {{address: 198.18.0.100, default: client-ip}}\n  - {{address: 198.18.0.101, default: {vip2}}}\nservices:\n"
        );
        let web_ports = if self.alt == Alt::InWeb { "[80, 8080]" } else { "[80]" };
        let web_weights =
            self.web_weight.map_or(String::new(), |w| format!(", weights: {{1: {w}}}"));
        // The simulation gives the checkers' results itself (`Sim::app`): the command
        // is never run.
        let _ = writeln!(
            y,
            "  - {{name: web, vip: 198.18.0.100, protocol: tcp, ports: {web_ports}, affinity: client-ip-port{web_weights}, health: [{CHECKER}]}}"
        );
        let failback = match self.manual_failback {
            true => "failback: manual".to_string(),
            false => format!("failback_delay_ms: {FAILBACK_MS}"),
        };
        let _ = writeln!(
            y,
            "  - {{name: db, vip: 198.18.0.100, protocol: tcp, ports: [5432], affinity: active-backup, {failback}, health: [{CHECKER}]}}"
        );
        if self.alt == Alt::Own {
            y += "  - {name: alt, vip: 198.18.0.100, protocol: tcp, ports: [8080]}\n";
        }
        let dns = if self.dns_by_port { "client-ip-port" } else { "client-ip" };
        let _ = writeln!(
            y,
            "  - {{name: dns, vip: 198.18.0.100, protocol: udp, ports: [53], affinity: {dns}}}"
        );
        y += "  - {name: mail, vip: 198.18.0.101, protocol: tcp, ports: [25]}\n";
        if self.extra {
            y += "  - {name: extra, vip: 198.18.0.101, protocol: tcp, ports: [9000]}\n";
        }
        y
    }

    pub fn config(&self, id: u16) -> Config {
        config::parse(&self.yaml(id), "sim.yaml").expect("the simulation writes valid files")
    }

    /// This file with one random change, as an operator's edit before a reload.
    pub fn changed(&self, rng: &mut Rng) -> Spec {
        let mut s = self.clone();
        match rng.below(7) {
            0 => s.seed = rng.below(1000) as u32,
            1 => {
                let i = rng.below(u64::from(s.nodes)) as usize;
                s.weights[i] = rng.below(4) as u32;
            }
            2 => s.web_weight = [None, Some(0), Some(3)][rng.below(3) as usize],
            3 => s.alt = [Alt::InWeb, Alt::Own, Alt::Unclaimed][rng.below(3) as usize],
            4 => s.dns_by_port = !s.dns_by_port,
            5 => s.vip2_drops = !s.vip2_drops,
            _ => s.extra = !s.extra,
        }
        s
    }
}

/// The packets whose fate is checked: to both VIPs, on every port any variant of the
/// file claims and one none does, from clients with two source ports each.
pub fn flows() -> Vec<Flow> {
    let ports = [
        (Protocol::Tcp, 80),
        (Protocol::Tcp, 8080),
        (Protocol::Tcp, 5432),
        (Protocol::Tcp, 25),
        (Protocol::Tcp, 9000),
        (Protocol::Tcp, 7),
        (Protocol::Udp, 53),
        (Protocol::Udp, 7),
    ];
    let mut flows = Vec::new();
    for vip in [VIP1, VIP2] {
        for &(protocol, port) in &ports {
            for c in 1..=6u8 {
                for client_port in [40000 + u16::from(c), 50000 + u16::from(c)] {
                    flows.push(Flow {
                        vip: IpAddr::from(vip),
                        protocol,
                        port,
                        client: IpAddr::from([198, 18, 1, c]),
                        client_port,
                    });
                }
            }
        }
    }
    flows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_is_a_valid_file() {
        let mut rng = Rng::new(1);
        let mut spec = Spec::new(4);
        for _ in 0..200 {
            spec = spec.changed(&mut rng);
            spec.config(2);
        }
    }
}
