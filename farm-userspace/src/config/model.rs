//! The configuration as the rest of farm sees it, after parsing and validation: every
//! default filled in, every cross-reference checked. One file per node.
use std::{collections::BTreeMap, net::IpAddr, net::SocketAddr, path::PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub cluster: Cluster,
    pub vips: Vec<Vip>,
    pub services: Vec<Service>,
    /// A fixed owner table, for running the data plane without the agent
    /// (`farm load`): node id -> bucket ranges it owns, in every table. Buckets no
    /// range names have no owner.
    pub static_owners: Option<BTreeMap<u16, Vec<BucketRange>>>,
    pub http: Http,
    pub agent: Agent,
}

/// Where this node's agent serves its Prometheus metrics and status page. Per node, like
/// `node_id`: not part of what nodes compare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Http {
    /// `None`: no listener (`listen: off`).
    pub listen: Option<SocketAddr>,
}

/// How this node's agent claims the CPU and memory, so that a busy machine does not
/// delay its heartbeats past the failure time. Per node, like `http`: not part of what
/// nodes compare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// The SCHED_RR priority of the agent's loop; `None`: the normal scheduler
    /// (`realtime_priority: off`).
    pub realtime_priority: Option<u8>,
    /// Whether the agent locks its memory (mlockall), so that no page it touches on its
    /// loop waits for the disk.
    pub lock_memory: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub name: String,
    /// This node's id: one of `peers`.
    pub node_id: u16,
    /// How `node_id` was found.
    pub node_source: NodeSource,
    /// The NIC that receives the VIPs' traffic.
    pub interface: String,
    /// Every node of the farm, this one included.
    pub peers: Vec<Peer>,
    pub heartbeat_ms: u64,
    pub failure_threshold: u32,
    pub buckets: u32,
    pub seed: u32,
    /// How long a bucket moving between two live nodes keeps its flows on the old owner
    /// (`crate::handover`); 0 moves buckets as a failure does, dropping their flows.
    pub handover_timeout_ms: u64,
    /// How long a UDP flow lives without a datagram, for a bucket in handover.
    pub flow_idle_ms: u64,
    pub key_file: Option<PathBuf>,
    pub l2_mode: L2Mode,
    /// The MAC every node answers ARP/ND for a VIP with; derived from `name` and
    /// `l2_mode` when not given.
    pub cluster_mac: [u8; 6],
    /// Whether a side of a split needs a majority to serve.
    pub quorum: QuorumMode,
    /// A `farm witness` that breaks ties between two halves (with `quorum: majority`).
    pub witness: Option<SocketAddr>,
}

/// Who may serve when the farm is split (see `agent::quorum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuorumMode {
    /// Every side serves what it sees (as Windows NLB and SafeKit farm do).
    None,
    /// Only the side holding a strict majority of the last agreed view (half, with its
    /// lowest node id) serves.
    Majority,
}

/// Where a node's id comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeSource {
    /// `cluster.node_id` in the file.
    File,
    /// The file leaves `node_id` out, and this peer address is the one on this host.
    Address(IpAddr),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub id: u16,
    /// Where its agent listens for heartbeats.
    pub address: SocketAddr,
    pub weight: u32,
    pub priority: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum L2Mode {
    /// A multicast cluster MAC every NIC joins; switches flood it.
    Multicast,
    /// A unicast cluster MAC no switch ever learns, so it floods (NLB's unicast mode).
    Unicast,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vip {
    pub address: IpAddr,
    /// What happens to traffic for this VIP that no service matches.
    pub default: DefaultAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DefaultAction {
    Drop,
    ClientIp,
    /// All of it to one node: the live node with the lowest `priority` (then the lowest
    /// id) among those with weight > 0, as Windows NLB's default host.
    Priority,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub vip: IpAddr,
    pub protocol: Protocol,
    pub ports: Vec<PortRange>,
    pub affinity: Affinity,
    /// Per node weight for this service; nodes not named use their peer weight.
    pub weights: BTreeMap<u16, u32>,
    /// What this node checks of its own instance of the service: failing, it leaves the
    /// service's table (the others keep serving it).
    pub health: Vec<Checker>,
    /// When an `active-backup` service goes back to a better node that returns.
    pub failback: Failback,
}

/// One health checker of a service, run by every node against its own instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checker {
    pub kind: CheckKind,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Successes in a row that make a failing checker pass again.
    pub rise: u32,
    /// Failures in a row that make a passing checker fail.
    pub fall: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    /// Connects to the address; healthy once the connection is made.
    Tcp { address: SocketAddr },
    /// GETs `path`; healthy on a status within `status` and, if given, a body holding
    /// `body`.
    Http { address: SocketAddr, path: String, status: (u16, u16), body: Option<String> },
    /// Runs the command (no shell); healthy on exit 0. Its first line of output is the
    /// reason shown.
    Exec { command: Vec<String> },
}

/// When an `active-backup` service returns to the better node (lower `priority`) that
/// came back while another node was serving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failback {
    /// Once that node has been healthy and in the farm for this long.
    Auto { delay_ms: u64 },
    /// Only when `farm failback SERVICE` is run on that node.
    Manual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The IP protocol number the data plane matches.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Affinity {
    ClientIp,
    ClientIpPort,
    /// Every client to one node: the healthy live one with the lowest `priority`.
    ActiveBackup,
}

/// Inclusive port range; a single port has `first == last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// Inclusive bucket range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRange {
    pub first: u32,
    pub last: u32,
}

impl Config {
    /// The VIPs' addresses, in file order.
    pub fn vip_addresses(&self) -> Vec<std::net::IpAddr> {
        self.vips.iter().map(|v| v.address).collect()
    }

    /// This node's peer entry (validation guarantees there is one).
    pub fn this_node(&self) -> &Peer {
        self.cluster.peers.iter().find(|p| p.id == self.cluster.node_id).expect("validated")
    }

    /// A service's weight for a node: its own override, else the node's peer weight.
    pub fn weight(&self, service: &Service, node: u16) -> u32 {
        service.weights.get(&node).copied().unwrap_or_else(|| {
            self.cluster.peers.iter().find(|p| p.id == node).map_or(0, |p| p.weight)
        })
    }
}
