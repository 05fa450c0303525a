//! The status page, in the spirit of HAProxy's: one HTML document with no script and no
//! external asset (farm's hosts may have no internet), that the browser reloads every
//! `REFRESH_SECS`. It shows the members and how this node sees them, the buckets each
//! node owns against its quota in every VIP and service, the packet counters with their
//! rates since the page before, the table drawn as a picture coloured by node, and the
//! newest events. Elements carry ids and `data-` attributes, so that tests (and
//! scripts) read it without parsing text.
use std::{
    collections::BTreeSet,
    fmt::{Display, Write},
    time::Instant,
};

use farm_common::{Counters, NO_OWNER};

use super::{
    membership::PeerState,
    snapshot::{Counted, Snapshot},
    tables,
    wire::Phase,
    wire::{ServiceBits, bit},
};
use crate::{
    assign::{NodeShare, shares},
    picture::Grid,
};

const REFRESH_SECS: u32 = 2;
/// One colour per node, in id order (cycled past the last); no red or green, which
/// the page keeps for failed and alive.
const NODE_COLOURS: [&str; 12] = [
    "#4e79a7", "#f28e2b", "#76b7b2", "#b07aa1", "#edc948", "#9c755f", "#ff9da7", "#bab0ac",
    "#a0cbe8", "#ffbe7d", "#d4a6c8", "#86bcb6",
];
/// Pixels a side of one cell of a table's picture.
const CELL: usize = 6;
/// Lines of a table's picture: with 64 columns, a bucket a cell up to 4,096 buckets.
const PICTURE_LINES: usize = 64;

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;background:#fff}th,td{padding:.2em .7em;border:1px solid #ddd;text-align:right}
th{background:#eee}td.name,th.name{text-align:left}
.summary{margin:.3em 0}.badge{display:inline-block;padding:0 .5em;border-radius:3px;color:#fff}
.ok{background:#2a9d3a}.warn{background:#e08a00}.bad{background:#c62828}
tr.alive td.state{background:#c8f0c8}tr.failed td.state{background:#f6b6b6}
tr.left td.state{background:#c9d3ea}tr.unknown td.state{background:#e4e4e4}tr.drained td.state{background:#b9dcf5}
.bar{display:inline-block;height:.6em;background:#4e79a7;vertical-align:middle;margin-left:.4em}
.swatch{display:inline-block;width:.9em;height:.9em;vertical-align:middle;margin:0 .3em 0 .8em}
tr.warn td{background:#fff3d6}tr.error td{background:#fbd3d3}tr.debug td{color:#777}
.picture{display:inline-block;vertical-align:top;margin:0 2em 1em 0}.muted{color:#777}
";

/// The counters of one page, for the next page's rates.
pub struct Sample {
    at: Instant,
    counts: Vec<[u64; Counters::LEN]>,
}

impl Sample {
    pub fn of(snap: &Snapshot) -> Sample {
        Sample { at: snap.taken, counts: snap.counters.iter().map(|c| c.counts).collect() }
    }
}

pub fn render(snap: &Snapshot, before: Option<&Sample>) -> String {
    let s = &snap.status;
    let mut out = String::with_capacity(64 * 1024);
    let title = format!("farm: node {} of cluster {}", s.node_id, snap.config.cluster.name);
    let _ = write!(
        out,
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta http-equiv=refresh content={REFRESH_SECS}><title>{}</title><style>{STYLE}</style></head><body>",
        escape(&title)
    );
    let _ = write!(out, "<h1>{}</h1>", escape(&title));
    summary(&mut out, snap);
    members(&mut out, snap);
    services(&mut out, snap);
    buckets(&mut out, snap);
    packets(&mut out, snap, before);
    pictures(&mut out, snap);
    events(&mut out, snap);
    let _ = write!(
        out,
        "<p class=muted>farm {} · read-only · Prometheus metrics at <a href=\"/metrics\">/metrics</a> · this page reloads every {REFRESH_SECS} s</p></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    out
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn dash<T: Display>(value: Option<T>) -> String {
    value.map_or("-".into(), |v| v.to_string())
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Proposed => "proposed",
        Phase::Released => "released",
        Phase::Installed => "installed",
    }
}

fn state_name(state: PeerState) -> &'static str {
    match state {
        PeerState::Unknown => "unknown",
        PeerState::Alive => "alive",
        PeerState::Failed => "failed",
        PeerState::Left => "left",
    }
}

/// One line on the whole: is this node serving its share, and on what view.
fn summary(out: &mut String, snap: &Snapshot) {
    let s = &snap.status;
    let (class, word) = match (s.phase, s.converged, snap.lease_left.is_zero()) {
        (_, _, true) => ("bad", "fenced: owns nothing"),
        (Phase::Installed, true, false) => ("ok", "serving its share"),
        _ => ("warn", "converging"),
    };
    let _ = write!(
        out,
        "<p class=summary id=summary data-epoch={} data-phase={}><span class=\"badge {class}\">{word}</span> epoch {}, {}, {}; members {:?}; lease {} ms left; heartbeat every {} ms, failed after {} ms; incarnation {}; pid {}; {}</p>",
        s.epoch,
        phase_name(s.phase),
        s.epoch,
        phase_name(s.phase),
        if s.converged { "converged" } else { "converging" },
        s.members,
        snap.lease_left.as_millis().min(u128::from(u32::MAX)),
        s.heartbeat_ms,
        s.failure_ms,
        s.incarnation,
        s.pid,
        escape(&s.config.display().to_string()),
    );
    if s.held_ports > 0 {
        let _ = write!(
            out,
            "<p class=summary><span class=\"badge warn\">reload</span> {} ports change service and have no owner until every node has the new file</p>",
            s.held_ports
        );
    }
    quorum(out, s);
}

/// Why this node owns nothing, the quorum and the witness, the latest healed splits.
fn quorum(out: &mut String, s: &crate::agent::control::AgentStatus) {
    if let Some(reason) = &s.fenced {
        let _ = write!(
            out,
            "<p class=summary id=fenced><span class=\"badge bad\">fenced</span> {}</p>",
            escape(reason)
        );
    }
    if let Some(q) = s.quorum.as_ref().filter(|q| q.mode != crate::config::QuorumMode::None) {
        let (class, word) = if q.quorate { ("ok", "quorate") } else { ("bad", "no quorum") };
        let _ = write!(
            out,
            "<p class=summary id=quorum data-quorate={}><span class=\"badge {class}\">{word}</span> majority: {}</p>",
            q.quorate,
            escape(&q.describe(&s.members))
        );
    }
    for h in &s.healed {
        let class = if h.double_owned > 0 { "bad" } else { "ok" };
        let _ = write!(
            out,
            "<p class=summary><span class=\"badge {class}\">healed</span> {}</p>",
            escape(&h.to_string())
        );
    }
}

fn members(out: &mut String, snap: &Snapshot) {
    let s = &snap.status;
    out.push_str("<h2>Members</h2><table id=members><tr><th class=name>node</th><th class=name>state</th><th>incarnation</th><th>epoch</th><th class=name>phase</th><th>heartbeat age</th><th>weight</th><th class=name>config</th><th>lease</th></tr>");
    let weight = |w: Option<u32>, drained: bool| match (drained, w) {
        (true, _) => "drained".to_string(),
        (false, w) => w.map_or("file's".into(), |w| w.to_string()),
    };
    let me_class = if s.drained { "drained" } else { "alive" };
    let _ = write!(
        out,
        "<tr id=node-{id} class={me_class} data-state=alive><td class=name>{id} (this node)</td><td class=\"name state\">alive</td><td>{}</td><td>{}</td><td class=name>{}</td><td>-</td><td>{}</td><td class=name>this file</td><td>{} ms left</td></tr>",
        s.incarnation,
        s.epoch,
        phase_name(s.phase),
        weight(s.weight, s.drained),
        snap.lease_left.as_millis().min(u128::from(u32::MAX)),
        id = s.node_id,
    );
    for p in &s.peers {
        let state = state_name(p.state);
        let class = if p.drained && p.state == PeerState::Alive { "drained" } else { state };
        let config = match p.same_config {
            None => "-",
            Some(true) => "same",
            Some(false) => "differs",
        };
        let _ = write!(
            out,
            "<tr id=node-{id} class={class} data-state={state}><td class=name>{id}</td><td class=\"name state\">{state}</td><td>{}</td><td>{}</td><td class=name>{}</td><td>{}</td><td>{}</td><td class=name>{config}</td><td>-</td></tr>",
            dash(p.incarnation),
            dash(p.epoch),
            p.phase.map_or("-", phase_name),
            dash(p.heartbeat_age_ms.map(|ms| format!("{ms} ms"))),
            weight(p.weight, p.drained),
            id = p.id,
        );
    }
    out.push_str("</table>");
}

/// Each service's state on every node as its heartbeats say it (up, DOWN, drained,
/// active), and this node's checkers with their last word.
fn services(out: &mut String, snap: &Snapshot) {
    let s = &snap.status;
    if s.services.is_empty() {
        return;
    }
    let bits: Vec<(u16, ServiceBits)> = std::iter::once((s.node_id, s.service_bits))
        .chain(s.peers.iter().filter(|p| p.state == PeerState::Alive).map(|p| (p.id, p.services)))
        .collect();
    out.push_str("<h2>Services</h2><table id=services><tr><th class=name>service</th>");
    for (id, _) in &bits {
        let _ = write!(out, "<th class=name>node {id}</th>");
    }
    out.push_str("<th class=name>checks on this node</th></tr>");
    for (i, svc) in s.services.iter().enumerate() {
        let _ = write!(
            out,
            "<tr data-service=\"{}\"><td class=name>{}</td>",
            escape(&svc.name),
            escape(&svc.name)
        );
        for (id, b) in &bits {
            let state = match (bit(b.drained, i), bit(b.unhealthy, i), bit(b.active, i)) {
                (true, _, _) => "drained",
                (_, true, _) => "DOWN",
                (_, _, true) => "active",
                _ => "up",
            };
            let _ = write!(
                out,
                "<td class=\"name state-{}\" data-node={id}>{state}</td>",
                state.to_lowercase()
            );
        }
        let checks: Vec<String> = svc
            .checkers
            .iter()
            .map(|c| {
                let verdict = if c.passing { "passing" } else { "failing" };
                match (&c.reason, c.age_ms) {
                    (Some(r), Some(age)) => {
                        format!("{verdict}: {r} ({age} ms ago, {} changes)", c.changes)
                    }
                    _ => format!("{verdict}: no result yet"),
                }
            })
            .collect();
        let held = svc.held_ms.map_or(String::new(), |ms| format!(" held out {ms} ms more;"));
        let _ = write!(out, "<td class=name>{held}{}</td></tr>", escape(&checks.join("; ")));
    }
    out.push_str("</table>");
}

/// Every node of the configuration, and any other a row names, in id order.
fn nodes(snap: &Snapshot) -> Vec<u16> {
    let peers = snap.config.cluster.peers.iter().map(|p| p.id);
    let owners = snap.rows.iter().flatten().copied().filter(|&o| o != NO_OWNER);
    peers.chain(owners).collect::<BTreeSet<u16>>().into_iter().collect()
}

/// How this node sees `node`, in a word.
fn node_state(snap: &Snapshot, node: u16) -> &'static str {
    let s = &snap.status;
    match s.peers.iter().find(|p| p.id == node) {
        _ if node == s.node_id => "this node",
        Some(p) if p.drained && p.state == PeerState::Alive => "drained",
        Some(p) => state_name(p.state),
        None => "not in the file",
    }
}

fn colour(nodes: &[u16], node: u16) -> &'static str {
    let i = nodes.iter().position(|&n| n == node).unwrap_or(usize::from(node));
    NODE_COLOURS[i % NODE_COLOURS.len()]
}

/// `slot`'s name as the page shows it: the service's with its VIP, or the VIP's (its
/// default rule, ICMP echo and fragments).
fn slot_label(snap: &Snapshot, slot: usize) -> String {
    match snap.slot_name(slot) {
        (vip, Some(service)) => format!("{service} ({vip})"),
        (vip, None) => format!("{vip} (VIP)"),
    }
}

fn buckets(out: &mut String, snap: &Snapshot) {
    let nodes = nodes(snap);
    out.push_str("<h2>Buckets per VIP and service</h2><table id=buckets><tr><th class=name>VIP or service</th>");
    for &n in &nodes {
        let _ = write!(
            out,
            "<th data-node={n}>node {n}<br><span class=muted>{}</span></th>",
            node_state(snap, n)
        );
    }
    out.push_str("<th>no owner</th></tr>");
    let members = tables::members(&snap.config, &snap.status.view);
    for (slot, row) in snap.rows.iter().enumerate() {
        let shares = shares(&members[slot], row);
        let (vip, service) = snap.slot_name(slot);
        let _ = write!(
            out,
            "<tr data-slot=\"{}\"><td class=name>{}</td>",
            escape(&service.map_or(vip.to_string(), str::to_string)),
            escape(&slot_label(snap, slot))
        );
        for &node in &nodes {
            let none = NodeShare { node, weight: 0, owned: 0, quota: 0 };
            let share = shares.iter().find(|s| s.node == node).unwrap_or(&none);
            // The bar is the share of the quota owned, at 3 px a percent, capped.
            let width = match share.quota {
                0 => 0,
                q => (u64::from(share.owned) * 100 / u64::from(q)).min(150) * 3 / 5,
            };
            let _ = write!(
                out,
                "<td data-node={node} data-owned={} data-quota={}>{} / {}<span class=bar style=\"width:{width}px;background:{}\"></span></td>",
                share.owned,
                share.quota,
                share.owned,
                share.quota,
                colour(&nodes, node)
            );
        }
        let unowned = row.iter().filter(|&&o| o == NO_OWNER).count();
        let _ = write!(out, "<td data-node=none data-owned={unowned}>{unowned}</td></tr>");
    }
    out.push_str("</table><p class=muted>owned / quota: a quota is the node's weight-proportional share of the buckets among the live members of this node's view</p>");
}

fn counted_label(snap: &Snapshot, i: usize, c: &Counted) -> String {
    match (i < snap.slots.len(), &c.service) {
        (true, _) => slot_label(snap, i),
        (false, Some(held)) => held.clone(),
        (false, None) => "(not for a VIP)".into(),
    }
}

fn packets(out: &mut String, snap: &Snapshot, before: Option<&Sample>) {
    let dt = before.map(|b| snap.taken.saturating_duration_since(b.at).as_secs_f64());
    let rates = before
        .filter(|b| b.counts.len() == snap.counters.len() && dt.is_some_and(|dt| dt > 0.0))
        .map(|b| &b.counts);
    let _ = write!(
        out,
        "<h2>Packets</h2><table id=packets><tr><th class=name>VIP or service</th>{}</tr>",
        Counters::NAMES.iter().map(|n| format!("<th>{n}</th>")).collect::<String>()
    );
    for (i, c) in snap.counters.iter().enumerate() {
        // Ports held by a reload are rare: their line shows only when it counted some.
        let held = i == snap.slots.len();
        if held && c.counts.iter().all(|&n| n == 0) {
            continue;
        }
        let _ = write!(out, "<tr><td class=name>{}</td>", escape(&counted_label(snap, i, c)));
        for (k, &count) in c.counts.iter().enumerate() {
            let rate = rates.zip(dt).map(|(then, dt)| count.saturating_sub(then[i][k]) as f64 / dt);
            let _ = write!(
                out,
                "<td data-counter={}>{}<br><span class=muted>{count}</span></td>",
                Counters::NAMES[k],
                rate.map_or("-".into(), |r| format!("{r:.1}/s"))
            );
        }
        out.push_str("</tr>");
    }
    let when = match dt.filter(|_| rates.is_some()) {
        Some(dt) => format!("per second over the {dt:.1} s since the page before"),
        None => "per second from the next reload of the page on".into(),
    };
    let _ = write!(
        out,
        "</table><p class=muted>each cell: {when}; below, the count since the program was loaded</p>"
    );
}

/// A picture per distinct row (slots that weigh their members alike share one), with a
/// legend of the nodes' colours and what they own.
fn pictures(out: &mut String, snap: &Snapshot) {
    let nodes = nodes(snap);
    out.push_str("<h2>Bucket table</h2><div id=pictures>");
    let mut drawn: Vec<usize> = Vec::new();
    for (slot, row) in snap.rows.iter().enumerate() {
        if drawn.iter().any(|&d| snap.rows[d] == *row) {
            continue;
        }
        drawn.push(slot);
        let same: Vec<String> = (slot..snap.rows.len())
            .filter(|&s| snap.rows[s] == *row)
            .map(|s| escape(&slot_label(snap, s)))
            .collect();
        let _ = write!(out, "<div class=picture><p>{}</p>", same.join(", "));
        svg(out, row, &nodes);
        out.push_str("<p>");
        for &n in nodes.iter().filter(|&&n| row.contains(&n)) {
            let owned = row.iter().filter(|&&o| o == n).count();
            let _ = write!(
                out,
                "<span class=swatch style=\"background:{}\"></span>node {n} ({owned})",
                colour(&nodes, n)
            );
        }
        let unowned = row.iter().filter(|&&o| o == NO_OWNER).count();
        let _ = write!(
            out,
            "<span class=swatch style=\"background:#e8e8e8\"></span>no owner ({unowned})</p></div>"
        );
    }
    out.push_str("</div>");
}

/// `row` as an SVG: a square a cell, left to right and top to bottom, one path per
/// node (a rectangle per run of its cells on a line), over a grey for no owner.
fn svg(out: &mut String, row: &[u16], nodes: &[u16]) {
    let grid = Grid::fit(row, PICTURE_LINES);
    let lines = grid.cells.len().div_ceil(grid.columns);
    let (width, height) = (grid.columns * CELL, lines * CELL);
    let mut paths: Vec<(u16, String)> = Vec::new();
    for (line, (_, cells)) in grid.lines().enumerate() {
        for (x, run) in runs(cells) {
            if run.owner == NO_OWNER {
                continue;
            }
            let d = format!(
                "M{} {}h{}v{CELL}h-{}z",
                x * CELL,
                line * CELL,
                run.len * CELL,
                run.len * CELL
            );
            match paths.iter_mut().find(|(o, _)| *o == run.owner) {
                Some((_, path)) => path.push_str(&d),
                None => paths.push((run.owner, d)),
            }
        }
    }
    let each = match grid.group {
        1 => "one bucket".to_string(),
        g => format!("{g} buckets (the node owning most of them)"),
    };
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width={width} height={height} viewBox=\"0 0 {width} {height}\"><title>each square is {each}; lines of {} squares, bucket 0 top left</title><rect width={width} height={height} fill=\"#e8e8e8\"/>",
        grid.columns
    );
    paths.sort_by_key(|(owner, _)| *owner);
    for (owner, d) in paths {
        let _ = write!(
            out,
            "<path fill=\"{}\" d=\"{d}\"><title>node {owner}</title></path>",
            colour(nodes, owner)
        );
    }
    out.push_str("</svg>");
}

struct Run {
    owner: u16,
    len: usize,
}

/// The runs of equal owners in `cells`, each with the column it starts at.
fn runs(cells: &[u16]) -> Vec<(usize, Run)> {
    let mut runs: Vec<(usize, Run)> = Vec::new();
    for (x, &owner) in cells.iter().enumerate() {
        match runs.last_mut() {
            Some((_, run)) if run.owner == owner => run.len += 1,
            _ => runs.push((x, Run { owner, len: 1 })),
        }
    }
    runs
}

fn events(out: &mut String, snap: &Snapshot) {
    out.push_str("<h2>Recent events</h2><table id=events><tr><th class=name>time</th><th class=name>level</th><th class=name>kind</th><th class=name>what</th></tr>");
    for e in &snap.events {
        let _ = write!(
            out,
            "<tr class={} data-kind={}><td class=name>{}</td><td class=name>{}</td><td class=name>{}</td><td class=name>{}</td></tr>",
            escape(&e.level),
            escape(&e.kind),
            escape(&e.time),
            escape(&e.level),
            escape(&e.kind),
            escape(&e.message)
        );
    }
    out.push_str("</table><p class=muted>the newest first; <code>farm events</code> prints the whole history</p>");
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::agent::snapshot::example;

    #[test]
    fn the_page_shows_members_shares_and_events() {
        let html = render(&example(), None);
        for part in [
            "<meta http-equiv=refresh content=2>",
            "<title>farm: node 1 of cluster demo</title>",
            "<tr id=node-1 class=alive data-state=alive>",
            "<tr id=node-2 class=alive data-state=alive>",
            "<tr id=node-3 class=failed data-state=failed>",
            "<td>912 ms</td>",
            "187 ms left",
            // web: 64 buckets at weights 3:1 between nodes 1 and 2; node 3 failed.
            "<tr data-slot=\"web\"><td class=name>web (198.18.0.100)</td>",
            "<td data-node=1 data-owned=48 data-quota=48>48 / 48",
            "<td data-node=3 data-owned=0 data-quota=0>0 / 0",
            "node 3 failed: no heartbeat for 312 ms &lt;script&gt;",
            "<td data-counter=accepted>-<br><span class=muted>40</span></td>",
            "per second from the next reload of the page on",
        ] {
            assert!(html.contains(part), "{part:?} missing from\n{html}");
        }
        assert!(!html.contains("<script"), "no script, and text is escaped");
        assert!(!html.contains("http://") || html.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    }

    #[test]
    fn rows_alike_share_one_picture_coloured_by_node() {
        let html = render(&example(), None);
        // The VIP's own table and dns weigh nodes 1 and 2 alike; web does not.
        assert_eq!(html.matches("<svg").count(), 2, "{html}");
        assert!(html.contains("<p>198.18.0.100 (VIP), dns (198.18.0.100)</p>"), "{html}");
        assert!(html.contains(&format!("<path fill=\"{}\" d=\"M", NODE_COLOURS[0])), "{html}");
        assert!(html.contains("node 3") && !html.contains("<title>node 3</title>"));
    }

    #[test]
    fn rates_are_against_the_page_before() {
        let snap = example();
        let mut before = Sample::of(&snap);
        before.at = snap.taken - Duration::from_secs(2);
        before.counts[1][0] -= 20;
        let html = render(&snap, Some(&before));
        assert!(
            html.contains("<td data-counter=accepted>10.0/s<br><span class=muted>40</span></td>"),
            "{html}"
        );
        assert!(html.contains("per second over the 2.0 s since the page before"), "{html}");
    }

    #[test]
    fn runs_merge_equal_neighbours() {
        let runs: Vec<(usize, u16, usize)> = runs(&[1, 1, 2, NO_OWNER, NO_OWNER, 1])
            .into_iter()
            .map(|(x, r)| (x, r.owner, r.len))
            .collect();
        assert_eq!(runs, [(0, 1, 2), (2, 2, 1), (3, NO_OWNER, 2), (5, 1, 1)]);
    }
}
