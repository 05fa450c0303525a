//! The five tables as Markdown (`--markdown`), so the README's figures come from a run
//! of the bench, not from hand edits.
use super::{
    busy, cost,
    report::{Measured, busy_met, cost_met, failover_met, peer_met, range},
    scale,
};

/// The tables, after a line naming `command` (what printed them) and the machine.
pub fn markdown(m: &Measured, command: &str) -> String {
    let mut out = format!("Measured with `{command}` on {}:\n", machine());
    let runs = format!("{} runs, median of {}", grouped(m.repeat), m.rounds);
    let header = [
        format!("A: path (BPF_PROG_TEST_RUN, {runs})"),
        "farm ns/packet".into(),
        "trivial program ns".into(),
        "ratio".into(),
        format!("goal {}x", cost::GOAL),
    ];
    let rows = m.cost.iter().map(|r| {
        let call = if r.fresh { " (one packet per call)" } else { "" };
        [
            format!("{}{call}", r.name),
            format!("{:.1}", r.ns),
            format!("{:.1}", r.baseline_ns),
            format!("{:.2}x", r.ratio()),
            met(cost_met(r)).into(),
        ]
    });
    table(&mut out, header, rows);
    let frames = format!("{} frames, median of {}", grouped(m.live_repeat), m.rounds);
    let header = [
        format!("B: path (live frames, {frames})"),
        "farm ns/frame".into(),
        "nftables jhash ns/frame".into(),
        "peer/farm".into(),
        "goal".into(),
    ];
    let rows = m.peer.iter().map(|r| {
        [
            format!("{} ({})", r.name, r.about),
            format!("{:.1}", r.farm.ns),
            format!("{:.1}", r.peer.ns),
            format!("{:.2}x", r.ratio()),
            format!("at least {}x: {}", r.goal, met(peer_met(r))),
        ]
    });
    table(&mut out, header, rows);
    let header = [
        format!(
            "C: event (three-node farm, heartbeat 100 ms, failed after 3 missed; {} rounds)",
            m.rounds
        ),
        "median ms".into(),
        "range ms".into(),
        "goal".into(),
    ];
    let rows = m.failover.iter().map(|r| {
        let (lo, hi) = range(r);
        [
            format!("{} ({})", r.name, r.about),
            format!("{:.0}", r.median),
            format!("{lo:.0}-{hi:.0}"),
            format!("under {} ms: {}", r.goal_ms, met(failover_met(r))),
        ]
    });
    table(&mut out, header, rows);
    let header = [
        format!(
            "D: agent (three-node farm, no node failing, {} busy loops per CPU for {} s; {} rounds)",
            busy::HOGS_PER_CPU,
            m.busy_seconds,
            m.busy.first().map_or(0, |r| r.rounds.len())
        ),
        "false failovers/min".into(),
        "fences, stalls".into(),
        "worst loop delay".into(),
        "goal".into(),
    ];
    let rows = m.busy.iter().map(|r| {
        let (fences, stalls) = r.fences();
        [
            format!("{} ({})", r.name, r.about),
            format!("{:.2}", r.per_minute()),
            format!("{fences}, {stalls}"),
            format!("<= {} ms", r.worst_delay_ms()),
            format!("zero: {}", met(busy_met(r))),
        ]
    });
    table(&mut out, header, rows);
    let header = [
        "E: nodes (all on this machine; heartbeat 100 ms, failed after 3 missed, 4096 buckets)"
            .into(),
        "all up ms (from the first start)".into(),
        "cold start ms (from all up)".into(),
        "failover ms: view / clients".into(),
        "rejoin ms".into(),
        "CPU per agent (of which system)".into(),
        "heartbeats sent / accepted per node per s".into(),
        "RSS per agent".into(),
        "dropped (buffer full)".into(),
        format!(
            "goal up to {} nodes: < {} / {} / {} ms, <= {}% CPU",
            scale::GOAL_NODES,
            scale::COLD_GOAL_MS,
            scale::FAILOVER_GOAL_MS,
            scale::REJOIN_GOAL_MS,
            scale::CPU_GOAL_PERCENT
        ),
    ];
    let rows = m.scale.iter().map(|r| {
        [
            r.nodes.to_string(),
            format!("{:.0}", r.up_ms),
            format!("{:.0}", r.cold_ms),
            format!("{:.0} / {:.0}", r.failover_view_ms, r.failover_served_ms),
            format!("{:.0}", r.rejoin_ms),
            format!("{:.2} % ({:.2} %)", r.cpu_percent, r.system_percent),
            format!("{:.0} / {:.0}", r.sent_per_s, r.accepted_per_s),
            format!("{:.1} MiB", r.rss_kib as f64 / 1024.0),
            r.overflowed.to_string(),
            r.met().map_or("reported", met).into(),
        ]
    });
    table(&mut out, header, rows);
    out
}

fn met(met: bool) -> &'static str {
    if met { "met" } else { "over" }
}

/// A blank line, then the table; nothing for a table not measured (`--tables`).
fn table<const N: usize>(
    out: &mut String,
    header: [String; N],
    rows: impl Iterator<Item = [String; N]>,
) {
    let mut rows = rows.peekable();
    if rows.peek().is_none() {
        return;
    }
    let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
    out.push('\n');
    out.push_str(&line(&header));
    out.push_str(&line(&["---"; N].map(String::from)));
    for row in rows {
        out.push_str(&line(&row));
    }
}

/// `n` with its thousands grouped: 10,000,000.
fn grouped(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// The CPUs and kernel the figures were measured on.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} CPUs, kernel {}", kernel.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(grouped(10_000_000), "10,000,000");
        assert_eq!(grouped(400), "400");
        assert_eq!(grouped(4_000), "4,000");
    }
}
