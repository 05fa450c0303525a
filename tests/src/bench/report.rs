//! The five tables as text for people, or as JSON (`--json`) for scripts; `markdown`
//! prints them for the README.
use serde_json::{Value, json};

use super::{
    busy::BusyRow,
    compare::{self, PeerRow, Side},
    cost::{self, CostRow},
    failover::FailoverRow,
    peer,
    scale::{self, ScaleRow},
};

/// Everything one run of the bench measured, and how.
pub struct Measured {
    pub repeat: u32,
    pub live_repeat: u32,
    pub rounds: u32,
    pub cost: Vec<CostRow>,
    pub peer: Vec<PeerRow>,
    pub failover: Vec<FailoverRow>,
    /// Table D, and how long each of its rounds kept the machine busy.
    pub busy: Vec<BusyRow>,
    pub busy_seconds: u64,
    /// Table E, one row per farm size.
    pub scale: Vec<ScaleRow>,
}

fn verdict(met: bool) -> &'static str {
    if met { "PASS" } else { "over goal" }
}

pub(super) fn cost_met(r: &CostRow) -> bool {
    r.ratio() <= cost::GOAL
}

pub(super) fn peer_met(r: &PeerRow) -> bool {
    r.ratio() >= r.goal
}

pub(super) fn failover_met(r: &FailoverRow) -> bool {
    r.median < r.goal_ms
}

/// Table D's goal: not one false failover.
pub(super) fn busy_met(r: &BusyRow) -> bool {
    r.per_minute() == 0.0
}

/// The least and the most milliseconds of the rounds.
pub(super) fn range(r: &FailoverRow) -> (f64, f64) {
    r.ms.iter().fold((f64::MAX, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

type Table = fn(&Measured, &mut dyn FnMut(String));

/// The tables measured (`--tables` may leave some out), one after another.
pub fn text(m: &Measured) -> String {
    let tables: [(bool, Table); 5] = [
        (m.cost.is_empty(), cost_text),
        (m.peer.is_empty(), peer_text),
        (m.failover.is_empty(), failover_text),
        (m.busy.is_empty(), busy_text),
        (m.scale.is_empty(), scale_text),
    ];
    let mut out = Vec::new();
    for (_, table) in tables.into_iter().filter(|(empty, _)| !empty) {
        let mut s = String::new();
        table(m, &mut |text| {
            s.push_str(&text);
            s.push('\n');
        });
        out.push(s);
    }
    out.join("\n")
}

fn cost_text(m: &Measured, line: &mut dyn FnMut(String)) {
    line(format!(
        "A) Per-packet cost under BPF_PROG_TEST_RUN (repeat {}, median of {} rounds)",
        m.repeat, m.rounds
    ));
    line(format!(
        "   goal: every path within {}x of the baseline program (count one counter, pass) on the same packet",
        cost::GOAL
    ));
    let width = m.cost.iter().map(|r| r.name.len() + 1).max().unwrap_or(0);
    line(format!(
        "   {:<width$} {:>10} {:>12} {:>7}  goal",
        "path", "ns/packet", "baseline ns", "ratio"
    ));
    for r in &m.cost {
        let name = format!("{}{}", r.name, if r.fresh { "*" } else { "" });
        let met = verdict(cost_met(r));
        line(format!(
            "   {name:<width$} {:>10.1} {:>12.1} {:>6.2}x  {met}",
            r.ns,
            r.baseline_ns,
            r.ratio()
        ));
    }
    if m.cost.iter().any(|r| r.fresh) {
        line("   * one packet per call: the program rewrites the request into a reply in place, and a".into());
        line("     repeated run would time the reply; the call's own cost (measured on the baseline) is".into());
        line("     taken off".into());
    }
}

fn peer_text(m: &Measured, line: &mut dyn FnMut(String)) {
    line(format!(
        "B) Against the nftables successor of CLUSTERIP (netdev ingress, {})",
        peer::describe()
    ));
    let (repeat, rounds) = (m.live_repeat, m.rounds);
    line(format!(
        "   live frames into a namespace of the bench's own (repeat {repeat}, median of {rounds} rounds)"
    ));
    line(format!(
        "   goals: farm's drop path at least {}x cheaper than the peer's, its accept path no dearer",
        compare::DROP_GOAL
    ));
    line(format!("   {:<8} {:>8} {:>8} {:>10}  goal", "path", "farm ns", "peer ns", "peer/farm"));
    for r in &m.peer {
        let met = verdict(peer_met(r));
        line(format!(
            "   {:<8} {:>8.1} {:>8.1} {:>9.2}x  >= {}x {met}",
            r.name,
            r.farm.ns,
            r.peer.ns,
            r.ratio(),
            r.goal
        ));
    }
    line(
        "   the peer's frames also run the baseline program (live frames need one), as in table A"
            .into(),
    );
    line(
        "   the socket is never read during a run: once full, it drops each datagram at its door"
            .into(),
    );
    line("   where the frames went (all rounds):".into());
    for r in &m.peer {
        let side = |who: &str, s: &Side| {
            let d = s.delivered;
            let (counted, frames) = (s.counted, r.frames);
            format!(
                "{who} counted {counted} of {frames}, socket received {} overflowed {}",
                d.received, d.overflowed
            )
        };
        line(format!(
            "   {:<6} from {}: {}; {}",
            r.name,
            r.client,
            side("farm", &r.farm),
            side("peer", &r.peer)
        ));
    }
}

fn failover_text(m: &Measured, line: &mut dyn FnMut(String)) {
    line(format!(
        "C) Failover in a three-node farm of agents (defaults: heartbeat 100 ms, failed after 3 missed; {} rounds)",
        m.rounds
    ));
    line("   from the event to every probe client of the node answered by a survivor".into());
    line(format!("   {:<8} {:>10} {:>18}  goal", "event", "median ms", "range ms"));
    for r in &m.failover {
        let (lo, hi) = range(r);
        let met = verdict(failover_met(r));
        line(format!(
            "   {:<8} {:>10.0} {:>18}  < {} ms {met}",
            r.name,
            r.median,
            format!("{lo:.0}-{hi:.0}"),
            r.goal_ms
        ));
    }
    for r in &m.failover {
        line(format!("   {}: {}", r.name, r.about));
    }
}

fn busy_text(m: &Measured, line: &mut dyn FnMut(String)) {
    line(format!(
        "D) False failovers on a busy machine: a three-node farm, no node failing, {} busy loops per CPU for {} s ({} rounds)",
        super::busy::HOGS_PER_CPU,
        m.busy_seconds,
        m.busy.first().map_or(0, |r| r.rounds.len())
    ));
    line("   goal: none (peers failed by a survivor, summed over the nodes)".into());
    line(format!(
        "   {:<9} {:>14} {:>7} {:>7} {:>15} {:>14}  goal",
        "agent", "failovers/min", "fences", "stalls", "worst delay ms", "load at end"
    ));
    for r in &m.busy {
        let (fences, stalls) = r.fences();
        let loads: Vec<String> = r.rounds.iter().map(|x| format!("{:.1}", x.load)).collect();
        line(format!(
            "   {:<9} {:>14.2} {:>7} {:>7} {:>15} {:>14}  {}",
            r.name,
            r.per_minute(),
            fences,
            stalls,
            format!("<= {}", r.worst_delay_ms()),
            loads.join(" "),
            verdict(busy_met(r))
        ));
    }
    for r in &m.busy {
        line(format!("   {}: {}", r.name, r.about));
    }
    line("   worst delay: how late the agents' loops stepped (a bound of their histogram); load: the 1-minute average, the loops included".into());
}

/// Table E's verdict: goals only up to `scale::GOAL_NODES` nodes.
pub(super) fn scale_verdict(r: &ScaleRow) -> &'static str {
    r.met().map_or("reported", verdict)
}

fn scale_text(m: &Measured, line: &mut dyn FnMut(String)) {
    line("E) Farms of N agents on this machine (heartbeat 100 ms, failed after 3 missed, 4096 buckets)".into());
    line(format!(
        "   goals up to {} nodes: cold start < {} ms from the last agent up, failover (view agreed, probe clients served) < {} ms, rejoin < {} ms, CPU <= {}% of a core per agent",
        scale::GOAL_NODES,
        scale::COLD_GOAL_MS,
        scale::FAILOVER_GOAL_MS,
        scale::REJOIN_GOAL_MS,
        scale::CPU_GOAL_PERCENT
    ));
    line(format!(
        "   {:>5} {:>7} {:>8} {:>15} {:>9} {:>17} {:>15} {:>8} {:>10}  goal",
        "nodes",
        "up ms",
        "cold ms",
        "failover ms",
        "rejoin ms",
        "CPU %",
        "sent/accepted/s",
        "RSS MiB",
        "overflowed"
    ));
    for r in &m.scale {
        line(format!(
            "   {:>5} {:>7.0} {:>8.0} {:>15} {:>9.0} {:>17} {:>15} {:>8.1} {:>10}  {}",
            r.nodes,
            r.up_ms,
            r.cold_ms,
            format!("{:.0} / {:.0}", r.failover_view_ms, r.failover_served_ms),
            r.rejoin_ms,
            format!("{:.2} ({:.2} sys)", r.cpu_percent, r.system_percent),
            format!("{:.0} / {:.0}", r.sent_per_s, r.accepted_per_s),
            r.rss_kib as f64 / 1024.0,
            r.overflowed,
            scale_verdict(r)
        ));
    }
    line("   up: from the first agent's start until every agent answers (its program loaded: the verifier's work for every node on this machine's cores); cold: from then until all agree".into());
    line("   failover: until the survivors agree / until every probe client of the failed node is answered by one".into());
    line("   CPU: user and system time of an agent's process, as a share of one core; system time includes delivering its heartbeats through the namespaces to every receiver".into());
    line("   sent/accepted: heartbeats per node per second in steady state; overflowed: dropped by the kernel (receive buffer full), whole run".into());
}

pub fn json(m: &Measured) -> Value {
    let side = |s: &Side| {
        json!({
            "counted": s.counted,
            "socket_received": s.delivered.received,
            "socket_overflowed": s.delivered.overflowed,
        })
    };
    json!({
        "cost": {
            "repeat": m.repeat,
            "rounds": m.rounds,
            "goal_max_ratio": cost::GOAL,
            "paths": m.cost.iter().map(|r| json!({
                "name": r.name,
                "ns_per_packet": r.ns,
                "baseline_ns_per_packet": r.baseline_ns,
                "ratio": r.ratio(),
                "one_packet_per_call": r.fresh,
                "within_goal": cost_met(r),
            })).collect::<Vec<_>>(),
        },
        "peer": {
            "filter": peer::describe(),
            "repeat": m.live_repeat,
            "rounds": m.rounds,
            "paths": m.peer.iter().map(|r| json!({
                "name": r.name,
                "client": r.client.to_string(),
                "frames": r.frames,
                "farm_ns_per_packet": r.farm.ns,
                "peer_ns_per_packet": r.peer.ns,
                "ratio": r.ratio(),
                "goal_min_ratio": r.goal,
                "within_goal": peer_met(r),
                "farm": side(&r.farm),
                "peer": side(&r.peer),
            })).collect::<Vec<_>>(),
        },
        "failover": {
            "rounds": m.rounds,
            "events": m.failover.iter().map(|r| json!({
                "name": r.name,
                "goal_max_ms": r.goal_ms,
                "median_ms": r.median,
                "ms": r.ms,
                "within_goal": failover_met(r),
            })).collect::<Vec<_>>(),
        },
        "scale": m.scale.iter().map(|r| json!({
            "nodes": r.nodes,
            "all_up_ms": r.up_ms,
            "cold_start_ms": r.cold_ms,
            "failover_view_ms": r.failover_view_ms,
            "failover_served_ms": r.failover_served_ms,
            "rejoin_ms": r.rejoin_ms,
            "cpu_percent_per_agent": r.cpu_percent,
            "cpu_system_percent_per_agent": r.system_percent,
            "heartbeats_sent_per_node_per_s": r.sent_per_s,
            "heartbeats_accepted_per_node_per_s": r.accepted_per_s,
            "rss_kib_per_agent": r.rss_kib,
            "overflowed": r.overflowed,
            "within_goal": r.met(),
        })).collect::<Vec<_>>(),
        "busy": {
            "hogs_per_cpu": super::busy::HOGS_PER_CPU,
            "seconds": m.busy_seconds,
            "settings": m.busy.iter().map(|r| json!({
                "name": r.name,
                "about": r.about,
                "failovers_per_minute": r.per_minute(),
                "within_goal": busy_met(r),
                "rounds": r.rounds.iter().map(|x| json!({
                    "seconds": x.seconds,
                    "failovers": x.failovers,
                    "fences": x.fences,
                    "stalls": x.stalls,
                    "worst_delay_ms": x.worst_delay_ms,
                    "p99_delay_ms": x.p99_delay_ms,
                    "load": x.load,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        },
    })
}
