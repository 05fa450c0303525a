//! Digests of the configuration that nodes compare in their heartbeats: the cluster's
//! name (a heartbeat of another farm sharing a key and port is not ours) and the part of
//! the file that every node must hold alike for all of them to compute the same tables.
use std::net::SocketAddr;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Cluster, Config, L2Mode, Peer, QuorumMode, Service, Vip};

fn digest(value: &impl Serialize) -> u64 {
    let bytes = serde_json::to_vec(value).expect("plain data");
    let hash = Sha256::digest(bytes);
    u64::from_be_bytes(hash[..8].try_into().expect("8 bytes"))
}

/// Identifies the cluster in every heartbeat.
pub fn cluster_id(name: &str) -> u64 {
    digest(&name)
}

/// Everything that shapes the tables or the timing, and nothing that is per node
/// (`node_id`, `interface`, `key_file`, `static_owners`, the services' checkers: each
/// node checks its own instance its own way, and only the outcome, in its heartbeats,
/// shapes the tables).
pub fn shared_digest(cfg: &Config) -> u64 {
    #[derive(Serialize)]
    struct Shared<'a> {
        name: &'a str,
        peers: &'a [Peer],
        heartbeat_ms: u64,
        failure_threshold: u32,
        buckets: u32,
        seed: u32,
        handover_timeout_ms: u64,
        flow_idle_ms: u64,
        l2_mode: L2Mode,
        quorum: QuorumMode,
        witness: Option<SocketAddr>,
        cluster_mac: [u8; 6],
        vips: &'a [Vip],
        services: &'a [Service],
    }
    let Cluster {
        name,
        peers,
        heartbeat_ms,
        failure_threshold,
        buckets,
        seed,
        handover_timeout_ms,
        flow_idle_ms,
        l2_mode,
        quorum,
        witness,
        ..
    } = &cfg.cluster;
    let services: Vec<Service> =
        cfg.services.iter().map(|s| Service { health: vec![], ..s.clone() }).collect();
    digest(&Shared {
        name,
        peers,
        heartbeat_ms: *heartbeat_ms,
        failure_threshold: *failure_threshold,
        buckets: *buckets,
        seed: *seed,
        handover_timeout_ms: *handover_timeout_ms,
        flow_idle_ms: *flow_idle_ms,
        l2_mode: *l2_mode,
        quorum: *quorum,
        witness: *witness,
        cluster_mac: cfg.cluster.cluster_mac,
        vips: &cfg.vips,
        services: &services,
    })
}
