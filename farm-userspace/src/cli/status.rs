//! `farm status`: what the data plane on an interface holds now (this node's record, the
//! active table half, the lease, how many buckets each node owns in each slot) and, when
//! the agent runs, what it knows: members, their state, incarnation, epoch and heartbeat
//! age, and the heartbeats it took and ignored.
use std::{path::PathBuf, time::Duration};

use anyhow::Result;
use clap::Args;
use farm_userspace::{
    agent::{
        apart::Healed,
        control::{AgentStatus, HandoverStatus},
        quorum::QuorumStatus,
        wire::{ServiceBits, bit},
    },
    config::QuorumMode,
    nic::format_mac,
};
use serde::Serialize;

use super::{
    buckets::{self, SlotBuckets},
    slots,
    target::Common,
};

pub const JSON_HELP: &str = "JSON (--json): {interface, pin_dir, config, node_id, bucket_count, seed, own_mac, \
cluster_mac, active_half, lease_never_expires, lease_left_secs (null when it never expires; 0 once expired), slots: \
[{slot, kind (vip|service), name, nodes: [{node, weight, owned, quota}], no_owner}], agent (null when none \
answers; then agent_error says why): {node_id, pid, config, incarnation, epoch, phase (proposed|released|installed), \
converged, members, weight (null: the file's), drained, heartbeat_ms, failure_ms, lease_ms, peers: [{id, state \
(unknown|alive|failed|left), incarnation, epoch, phase, heartbeat_age_ms, weight, drained, same_config}], \
held_ports (ports a reload holds with no owner until every node has the new file), services (this node's): [{name, \
healthy, withdrawn, drained, flaps, held_ms, checkers: [{passing, last_ok, reason, age_ms, changes}]}], service_bits \
and peers[].services: {unhealthy, drained, active, takes_back} (bit i: service i), heartbeats: {sent, early, answered, asked, deferred, accepted, \
overflowed, forged, replayed, stale, malformed, foreign}, view, http (where the metrics and status page are served; null when \
off), handover: {out (buckets this node gave away that keep its flows), in (buckets it took whose old owner keeps \
its flows), flows_kept, tcp_kept, udp_kept (flows kept on the buckets given away, as last counted: each status asks for a \
new count, at most every 500 ms; null until the first), until_ms \
(until the last handover ends; null: none), timeout_ms}}, agent_error}.";

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub interface: String,
    pub pin_dir: PathBuf,
    pub config: PathBuf,
    pub node_id: u16,
    pub bucket_count: u32,
    pub seed: u32,
    pub own_mac: String,
    pub cluster_mac: String,
    pub active_half: u32,
    pub lease_never_expires: bool,
    pub lease_left_secs: Option<f64>,
    pub slots: Vec<SlotBuckets>,
    pub agent: Option<AgentStatus>,
    pub agent_error: Option<String>,
}

pub fn run(args: &StatusArgs) -> Result<String> {
    let loaded = args.common.open()?;
    let lease = loaded.dp.lease()?;
    let slots = buckets::read(&loaded, &slots::slots_of(&loaded.cfg, &loaded.view()))?;
    let (agent, agent_error) = match loaded.agent.clone() {
        Ok(agent) => (Some(agent), None),
        Err(e) => (None, Some(e)),
    };
    let status = Status {
        node_id: loaded.node.node_id,
        bucket_count: loaded.node.bucket_count,
        seed: loaded.node.seed,
        own_mac: format_mac(&loaded.node.own_mac),
        cluster_mac: format_mac(&loaded.node.cluster_mac),
        active_half: loaded.dp.active_half()?,
        lease_never_expires: lease.is_none(),
        lease_left_secs: lease.as_ref().map(Duration::as_secs_f64),
        slots,
        agent,
        agent_error,
        interface: loaded.iface,
        pin_dir: loaded.pin_dir,
        config: loaded.config,
    };
    Ok(match args.common.json {
        true => format!("{:#}\n", serde_json::to_value(&status).expect("plain data")),
        false => text(&status),
    })
}

pub fn text(s: &Status) -> String {
    let lease = match s.lease_left_secs {
        None => "never expires".to_string(),
        Some(0.0) => "expired: this node drops all VIP traffic".to_string(),
        Some(left) => format!("{left:.1} s left"),
    };
    let lines = [
        ("interface", format!("{} (pins in {})", s.interface, s.pin_dir.display())),
        ("node", s.node_id.to_string()),
        ("buckets", format!("{} per slot, seed {:#x}", s.bucket_count, s.seed)),
        ("MACs", format!("own {}, cluster {}", s.own_mac, s.cluster_mac)),
        ("table half", format!("{} active", s.active_half)),
        ("lease", lease),
    ];
    let mut out: String = lines.iter().map(|(k, v)| format!("{k:<11} {v}\n")).collect();
    out.push_str(&match (&s.agent, &s.agent_error) {
        (Some(a), _) => agent_text(a),
        (None, e) => format!("{:<11} {}\n", "agent", e.as_deref().unwrap_or("not running")),
    });
    out.push_str("\nbuckets owned per slot:\n");
    out + &buckets::per_node_table(&s.slots, |n| n.owned.to_string())
}

fn agent_text(a: &AgentStatus) -> String {
    let weight = match (a.drained, a.weight) {
        (true, _) => "drained".to_string(),
        (false, Some(w)) => format!("weight {w} (farm weight)"),
        (false, None) => "the file's weights".to_string(),
    };
    let h = &a.heartbeats;
    let lines = [
        ("agent", format!("pid {}, config {}", a.pid, a.config.display())),
        (
            "membership",
            format!(
                "epoch {}, {}, {}, members {:?}",
                a.epoch,
                phase_name(Some(a.phase)),
                if a.converged { "converged" } else { "converging" },
                a.members
            ),
        ),
        ("this node", format!("incarnation {}, {weight}", a.incarnation)),
        (
            "timing",
            format!(
                "heartbeat {} ms, failure after {} ms, lease {} ms",
                a.heartbeat_ms, a.failure_ms, a.lease_ms
            ),
        ),
        (
            "http",
            a.http.map_or("off".into(), |at| {
                format!("metrics at http://{at}/metrics, status page at http://{at}/")
            }),
        ),
        (
            "heartbeats",
            format!(
                "sent {} ({} rounds early, {} answers, {} asks), accepted {}, dropped (receive buffer full) {}, ignored: forged {}, replayed {}, stale {}, malformed {}, foreign {}",
                h.sent,
                h.early,
                h.answered,
                h.asked,
                h.accepted,
                h.overflowed,
                h.forged,
                h.replayed,
                h.stale,
                h.malformed,
                h.foreign
            ),
        ),
    ];
    let mut out: String = lines.iter().map(|(k, v)| format!("{k:<11} {v}\n")).collect();
    out += &quorum_text(a.fenced.as_deref(), a.quorum.as_ref(), &a.members, &a.healed);
    if a.held_ports > 0 {
        out += &format!(
            "{:<11} {} ports change service and have no owner until every node has the reloaded file\n",
            "reload", a.held_ports
        );
    }
    out += &handover_text(&a.handover);
    let dash = || "-".to_string();
    let mut rows = vec![vec![
        a.node_id.to_string(),
        "self".into(),
        a.incarnation.to_string(),
        a.epoch.to_string(),
        phase_name(Some(a.phase)).into(),
        dash(),
        a.weight.map_or(dash(), |w| w.to_string()),
        a.drained.to_string(),
    ]];
    rows.extend(a.peers.iter().map(|p| {
        vec![
            p.id.to_string(),
            format!("{:?}", p.state).to_lowercase(),
            p.incarnation.map_or(dash(), |i| i.to_string()),
            p.epoch.map_or(dash(), |e| e.to_string()),
            phase_name(p.phase).into(),
            p.heartbeat_age_ms.map_or(dash(), |ms| format!("{ms} ms")),
            p.weight.map_or(dash(), |w| w.to_string()),
            p.drained.to_string(),
        ]
    }));
    let header =
        ["NODE", "STATE", "INCARNATION", "EPOCH", "PHASE", "HEARTBEAT AGE", "WEIGHT", "DRAINED"];
    out.push('\n');
    out += &super::table::render(&header, &rows, 2);
    out + &services_text(a)
}

/// Buckets in handover, if any: what this node keeps and for how long.
fn handover_text(h: &HandoverStatus) -> String {
    let Some(until) = h.until_ms else {
        return String::new();
    };
    let kept = match (h.tcp_kept, h.udp_kept) {
        (Some(tcp), Some(udp)) => {
            format!("keeps {tcp} TCP connections and {udp} UDP flows on them")
        }
        _ => "its flows on them not counted yet".into(),
    };
    format!(
        "{:<11} gave away {} buckets ({kept}), took {} whose old owner keeps its flows; ends within {:.1} s\n",
        "handover",
        h.out,
        h.r#in,
        until as f64 / 1000.0
    )
}

/// Why this node owns nothing, if so; the quorum and the witness; the latest healed
/// splits: why this node serves or does not.
fn quorum_text(
    fenced: Option<&str>,
    quorum: Option<&QuorumStatus>,
    members: &[u16],
    healed: &[Healed],
) -> String {
    let mut out = String::new();
    if let Some(reason) = fenced {
        out += &format!("{:<11} owns nothing: {reason}\n", "fenced");
    }
    if let Some(q) = quorum.filter(|q| q.mode != QuorumMode::None) {
        let state = if q.quorate { "quorate" } else { "NOT quorate, serves nothing" };
        out += &format!("{:<11} majority, {state}: {}\n", "quorum", q.describe(members));
        if let Some(w) = &q.witness {
            let answered = w
                .answered_ms_ago
                .map_or("never answered".into(), |ms| format!("answered {ms} ms ago"));
            out += &format!("{:<11} {}: {answered}\n", "witness", w.address);
        }
    }
    for h in healed {
        out += &format!("{:<11} {h}\n", "healed");
    }
    out
}

/// Each service: this node's checks in words, then every node's state of it.
fn services_text(a: &AgentStatus) -> String {
    if a.services.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nservices on this node:\n");
    for s in &a.services {
        let state = match (s.drained, s.healthy, s.withdrawn) {
            (true, _, _) => "drained".to_string(),
            (_, true, false) => "healthy".into(),
            (_, true, true) => {
                format!("healthy, held out {} ms more after flapping", s.held_ms.unwrap_or(0))
            }
            (_, false, _) => "FAILING its checks, out of its table".into(),
        };
        let flaps = match s.flaps {
            0 => String::new(),
            n => format!(", {n} withdrawals lately"),
        };
        out += &format!("  {}: {state}{flaps}\n", s.name);
        for (i, c) in s.checkers.iter().enumerate() {
            let last = match (&c.reason, c.age_ms, c.last_ok) {
                (Some(reason), Some(age), Some(ok)) => {
                    format!("{} {age} ms ago: {reason}", if ok { "passed" } else { "failed" })
                }
                _ => "no result yet".into(),
            };
            let passing = if c.passing { "passing" } else { "failing" };
            out += &format!("    checker {i}: {passing}, {last}; {} changes\n", c.changes);
        }
    }
    let nodes: Vec<(u16, ServiceBits)> = std::iter::once((a.node_id, a.service_bits))
        .chain(a.peers.iter().map(|p| (p.id, p.services)))
        .collect();
    let mut header = vec!["SERVICE".to_string()];
    header.extend(nodes.iter().map(|(id, _)| format!("NODE {id}")));
    let rows: Vec<Vec<String>> = a
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let cells = nodes.iter().map(|(_, b)| {
                match (bit(b.drained, i), bit(b.unhealthy, i), bit(b.active, i)) {
                    (true, _, _) => "drained",
                    (_, true, _) => "DOWN",
                    (_, _, true) => "active",
                    _ => "up",
                }
                .to_string()
            });
            std::iter::once(s.name.clone()).chain(cells).collect()
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    out += "\nservices per node (as each node's heartbeats say):\n";
    out + &super::table::render(&header, &rows, 2)
}

fn phase_name(phase: Option<farm_userspace::agent::wire::Phase>) -> &'static str {
    use farm_userspace::agent::wire::Phase;
    match phase {
        None => "-",
        Some(Phase::Proposed) => "proposed",
        Some(Phase::Released) => "released",
        Some(Phase::Installed) => "installed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::slots::{table_slots, tests::config};
    use farm_common::NO_OWNER;

    fn status(lease_left_secs: Option<f64>) -> Status {
        let web = buckets::summarize(&table_slots(&config())[2], vec![1, 1, 2, NO_OWNER]);
        Status {
            interface: "eth0".into(),
            pin_dir: "/sys/fs/bpf/farm/eth0".into(),
            config: "/etc/farm/farm.yaml".into(),
            node_id: 1,
            bucket_count: 4,
            seed: 0x5eed,
            own_mac: "02:00:00:00:00:01".into(),
            cluster_mac: "03:bf:00:00:00:01".into(),
            active_half: 1,
            lease_never_expires: lease_left_secs.is_none(),
            lease_left_secs,
            slots: vec![web],
            agent: None,
            agent_error: Some("no farm agent is running on eth0".into()),
        }
    }

    #[test]
    fn text_shows_what_is_loaded() {
        let want = "interface   eth0 (pins in /sys/fs/bpf/farm/eth0)\n\
                    node        1\n\
                    buckets     4 per slot, seed 0x5eed\n\
                    MACs        own 02:00:00:00:00:01, cluster 03:bf:00:00:00:01\n\
                    table half  1 active\n\
                    lease       never expires\n\
                    agent       no farm agent is running on eth0\n\
                    \n\
                    buckets owned per slot:\n\
                    SLOT  KIND     NAME  NODE 1  NODE 2  NO OWNER\n\
                    2     service  web        2       1         1\n";
        assert_eq!(text(&status(None)), want);
        assert!(
            text(&status(Some(0.0)))
                .contains("lease       expired: this node drops all VIP traffic\n")
        );
        assert!(text(&status(Some(0.26))).contains("lease       0.3 s left\n"));
    }

    #[test]
    fn quorum_says_why_a_node_serves_or_not() {
        use farm_userspace::agent::quorum::WitnessStatus;
        let witness = WitnessStatus {
            address: "198.18.0.9:7402".parse().unwrap(),
            held: false,
            holder: vec![3, 4],
            answered_ms_ago: Some(40),
        };
        let q = QuorumStatus {
            mode: QuorumMode::Majority,
            quorate: false,
            votes: vec![1, 2, 3, 4],
            held: 2,
            excluded: vec![],
            witness: Some(witness),
        };
        let healed = Healed {
            peer: 3,
            apart_ms: 5000,
            served_ms: 0,
            owned: 0,
            peer_served_ms: Some(4800),
            peer_owned: Some(192),
            double_owned: 0,
        };
        let text = quorum_text(Some("no quorum: ..."), Some(&q), &[1, 2], &[healed]);
        let want = "fenced      owns nothing: no quorum: ...\n\
                    quorum      majority, NOT quorate, serves nothing: its view [1, 2] holds 2 of the 4 votes [1, 2, 3, 4] (the witness at 198.18.0.9:7402 gives it to view [3, 4])\n\
                    witness     198.18.0.9:7402: answered 40 ms ago\n\
                    healed      together again with node 3 after 5000 ms apart: this node served 0 ms (up to 0 buckets), node 3 served 4800 ms (up to 192); no bucket had two owners\n";
        assert_eq!(text, want);
        let none = QuorumStatus { mode: QuorumMode::None, quorate: true, witness: None, ..q };
        assert_eq!(quorum_text(None, Some(&none), &[1, 2], &[]), "");
    }

    #[test]
    fn json_fields() {
        let v = serde_json::to_value(status(Some(1.5))).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let want = [
            "active_half",
            "agent",
            "agent_error",
            "bucket_count",
            "cluster_mac",
            "config",
            "interface",
            "lease_left_secs",
            "lease_never_expires",
            "node_id",
            "own_mac",
            "pin_dir",
            "seed",
            "slots",
        ];
        assert_eq!(keys, want);
        assert_eq!(
            v["slots"][0]["nodes"][1],
            serde_json::json!({"node": 2, "weight": 3, "owned": 1, "quota": 2})
        );
    }
}
