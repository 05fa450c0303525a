//! The `cluster:` section: who this node is, who its peers are, and the farm-wide
//! settings every node must share.
use std::path::PathBuf;

use farm_common::{HANDOVER, MAX_BUCKETS};

use super::{
    Cluster, ConfigError, L2Mode, Peer, QuorumMode,
    check::Ctx,
    mac, node,
    raw::{RawCluster, RawPeer},
};

/// Most peers a farm may have.
const MAX_PEERS: u32 = 64;
/// The longest interface name Linux takes (IFNAMSIZ less the terminating NUL).
const MAX_IFNAME: usize = 15;

pub(super) fn cluster(raw: RawCluster, ctx: &Ctx) -> Result<Cluster, ConfigError> {
    let name = ctx.name("cluster.name", raw.name)?;
    let peers = peers(raw.peers, ctx)?;
    let l2_mode = raw.l2_mode.unwrap_or(L2Mode::Multicast);
    let cluster_mac = match raw.cluster_mac {
        Some(text) => {
            mac::parse(&text, l2_mode).map_err(|reason| ctx.error("cluster.cluster_mac", reason))?
        }
        None => mac::derive(&name, l2_mode),
    };
    let (node_id, node_source, interface) = node::place(ctx, raw.node_id, raw.interface, &peers)?;
    let quorum = raw.quorum.unwrap_or(QuorumMode::None);
    let witness = raw
        .witness
        .map(|text| ctx.socket_address("cluster.witness", &text, "reach a witness"))
        .transpose()?;
    if witness.is_some() && quorum != QuorumMode::Majority {
        let reason = "a witness breaks ties between halves of a farm: it needs `quorum: majority`";
        return Err(ctx.error("cluster.witness", reason));
    }
    Ok(Cluster {
        node_id,
        node_source,
        interface,
        heartbeat_ms: ctx.optional("cluster.heartbeat_ms", raw.heartbeat_ms, 100, 10..=10_000)?,
        failure_threshold: ctx.optional(
            "cluster.failure_threshold",
            raw.failure_threshold,
            3,
            2..=100,
        )?,
        buckets: ctx.optional("cluster.buckets", raw.buckets, 4096, 1..=MAX_BUCKETS)?,
        seed: ctx.optional("cluster.seed", raw.seed, 0, 0..=u32::MAX)?,
        handover_timeout_ms: ctx.optional(
            "cluster.handover_timeout_ms",
            raw.handover_timeout_ms,
            60_000,
            0..=86_400_000,
        )?,
        flow_idle_ms: ctx.optional(
            "cluster.flow_idle_ms",
            raw.flow_idle_ms,
            30_000,
            1..=3_600_000,
        )?,
        key_file: raw.key_file.map(|path| key_file(ctx, path)).transpose()?,
        name,
        peers,
        l2_mode,
        quorum,
        witness,
        cluster_mac,
    })
}

/// `id` if it names one of `peers`; `field` is where the file names it.
pub(super) fn known_node(
    ctx: &Ctx,
    field: &str,
    id: u64,
    peers: &[Peer],
) -> Result<u16, ConfigError> {
    if let Some(peer) = peers.iter().find(|p| u64::from(p.id) == id) {
        return Ok(peer.id);
    }
    let ids: Vec<String> = peers.iter().map(|p| p.id.to_string()).collect();
    Err(ctx.error(
        field,
        format!("node {id} is not in cluster.peers; use one of the peer ids: {}", ids.join(", ")),
    ))
}

pub(super) fn interface(ctx: &Ctx, name: String) -> Result<String, ConfigError> {
    // The kernel's own rule (dev_valid_name).
    let valid = (1..=MAX_IFNAME).contains(&name.len())
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace());
    if valid {
        return Ok(name);
    }
    Err(ctx.error(
        "cluster.interface",
        format!(
            "{name:?} is not a Linux interface name; use 1 to {MAX_IFNAME} bytes without '/', ':' or spaces, e.g. \"eth0\""
        ),
    ))
}

fn key_file(ctx: &Ctx, path: PathBuf) -> Result<PathBuf, ConfigError> {
    if path.as_os_str().is_empty() {
        return Err(ctx.error(
            "cluster.key_file",
            "is empty; give the key file's path or leave key_file out",
        ));
    }
    Ok(path)
}

fn peers(raw: Vec<RawPeer>, ctx: &Ctx) -> Result<Vec<Peer>, ConfigError> {
    ctx.count("cluster.peers", raw.len(), 1..=MAX_PEERS)?;
    let peers = raw
        .into_iter()
        .enumerate()
        .map(|(i, p)| peer(ctx, &format!("cluster.peers[{i}]"), p))
        .collect::<Result<Vec<_>, _>>()?;
    ctx.unique("cluster.peers", "id", peers.iter().map(|p| p.id))?;
    ctx.unique("cluster.peers", "address", peers.iter().map(|p| p.address))?;
    Ok(peers)
}

fn peer(ctx: &Ctx, at: &str, raw: RawPeer) -> Result<Peer, ConfigError> {
    Ok(Peer {
        // NO_OWNER (65535) is how the owner table says "nobody", HANDOVER (65534) "ask
        // the handover map", so no node may have either.
        id: ctx.number(&format!("{at}.id"), raw.id, 0..=HANDOVER - 1)?,
        address: ctx.socket_address(
            &format!("{at}.address"),
            &raw.address,
            "receive heartbeats",
        )?,
        weight: ctx.optional(&format!("{at}.weight"), raw.weight, 1, 0..=1000)?,
        priority: ctx.optional(&format!("{at}.priority"), raw.priority, 0, 0..=u32::MAX)?,
    })
}
