//! The chaos soak (`cargo xtask soak --minutes N`): a farm of agents in namespaces under
//! continuous TCP connections and numbered UDP while random events hit it every few
//! seconds, one at a time (`events`); afterwards, what reached two nodes or none, set
//! against the windows the events explain (`ledger`), the failovers the agents logged,
//! and each agent's memory and open files at the start and the end (`usage`).
//!
//! Each event is a window: from the moment it hits to the moment the farm has settled
//! again on every node (plus a margin for the client's ARP retry). A number lost inside
//! one is explained; outside, it is not. A number that reached two nodes is explained
//! only inside a partition's window, and only without a quorum: with `quorum: majority`
//! any is a failure.
pub mod cut;
pub mod events;
pub mod ledger;
pub mod load;
pub mod loss;
pub mod nft;
pub mod usage;

use std::{
    fmt::Write as _,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use crate::{
    farm::{NsFarm, Ownership},
    sim::rng::Rng,
};
use events::Event;
use ledger::{Ledger, Window};
use usage::Usage;

/// Client addresses the traffic comes from.
const CLIENTS: usize = 16;
/// After an event is undone and the farm has settled: the client's neighbour entry for
/// the VIP may have been re-resolved through an ARP request a node missed, and the
/// kernel retries after 1 s.
const MARGIN: Duration = Duration::from_millis(1500);
/// Quiet time between two events, at least and at most.
const QUIET_MS: (u64, u64) = (2_000, 5_000);
/// The checker of the spread service, so that stopping a node's server withdraws it.
const CHECKER: &str = "    health:\n      - {tcp: \"127.0.0.1:80\", interval_ms: 300}\n";

/// Who may serve a split farm (`cluster.quorum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Quorum {
    /// Each side of a partition serves what it can see: numbers may reach two nodes
    /// while it lasts.
    None,
    /// Only a side holding a majority serves: no number may ever reach two nodes.
    Majority,
}

pub struct Options {
    pub minutes: u64,
    pub nodes: usize,
    pub quorum: Quorum,
    pub seed: u64,
}

/// What the soak saw.
pub struct Outcome {
    pub options_seed: u64,
    pub events: Vec<Window>,
    pub ledger: ledger::Summary,
    /// Failovers the agents logged inside the events' windows, and outside them.
    pub failovers: (usize, usize),
    pub usage: Vec<(Usage, Usage, usize)>,
    pub quorum: Quorum,
}

impl Outcome {
    /// The soak's verdict: what went wrong, one line each (none: it passed).
    pub fn failures(&self) -> Vec<String> {
        let l = &self.ledger;
        let mut out = Vec::new();
        if l.twice_unexplained > 0 {
            out.push(format!(
                "{} numbers reached two nodes outside any partition",
                l.twice_unexplained
            ));
        }
        if self.quorum == Quorum::Majority && l.twice_explained > 0 {
            out.push(format!(
                "{} numbers reached two nodes during partitions, with quorum: majority",
                l.twice_explained
            ));
        }
        if l.lost_unexplained > 0 {
            out.push(format!(
                "{} numbers were lost outside the events' windows",
                l.lost_unexplained
            ));
        }
        if l.tcp_failed_unexplained > 0 {
            out.push(format!(
                "{} TCP connections failed outside the events' windows",
                l.tcp_failed_unexplained
            ));
        }
        if self.failovers.1 > 0 {
            out.push(format!("{} failovers outside the events' windows", self.failovers.1));
        }
        for (i, (start, end, _)) in self.usage.iter().enumerate() {
            if start.pid == end.pid && end.fds > start.fds {
                out.push(format!(
                    "node {}'s agent held {} open files at the start and {} at the end",
                    i + 1,
                    start.fds,
                    end.fds
                ));
            }
        }
        out
    }

    pub fn report(&self) -> String {
        let l = &self.ledger;
        let mut s = String::new();
        let _ =
            writeln!(s, "farm-chaos: seed {}, {} events:", self.options_seed, self.events.len());
        for (kind, count) in events::tally(&self.events) {
            let _ = writeln!(s, "  {kind:<12} {count}");
        }
        let _ = writeln!(
            s,
            "farm-chaos: UDP: {} numbers sent; reached two nodes: {} in partitions, {} elsewhere; lost: {} in the events' windows, {} elsewhere",
            l.sent, l.twice_explained, l.twice_unexplained, l.lost_explained, l.lost_unexplained
        );
        let _ = writeln!(
            s,
            "farm-chaos: TCP: {} connections; failed: {} in the events' windows, {} elsewhere",
            l.tcp_tried, l.tcp_failed_explained, l.tcp_failed_unexplained
        );
        let _ = writeln!(
            s,
            "farm-chaos: failovers logged: {} in the events' windows, {} elsewhere",
            self.failovers.0, self.failovers.1
        );
        for (i, (start, end, restarts)) in self.usage.iter().enumerate() {
            let _ = writeln!(
                s,
                "farm-chaos: node {} agent: RSS {} -> {} KiB, open files {} -> {}{}",
                i + 1,
                start.rss_kib,
                end.rss_kib,
                start.fds,
                end.fds,
                match restarts {
                    0 => " (one process throughout)".to_string(),
                    n => format!(" (killed {n} times: the end is another process)"),
                }
            );
        }
        s
    }
}

/// Runs the soak: builds the farm, starts the traffic, hits the farm until the time is
/// up, then counts.
pub fn run(opts: &Options) -> Result<Outcome> {
    let lasting = Duration::from_secs(opts.minutes * 60);
    // The servers outlive the soak and its last settling.
    let lifetime = lasting + Duration::from_secs(300);
    let weights = vec![1; opts.nodes];
    let mut farm =
        NsFarm::lasting(opts.nodes, CLIENTS, 4096, Ownership::Agents { weights }, lifetime)?;
    for n in &farm.nodes {
        let text = std::fs::read_to_string(&n.config)?;
        std::fs::write(&n.config, configure(&text, opts.quorum))?;
    }
    farm.start_agents()?;
    settle(&farm)?;
    let start_usage = usage::of_agents(&farm)?;
    let traffic = load::Traffic::start(&farm, lasting);
    let mut rng = Rng::new(opts.seed);
    let mut windows = Vec::new();
    let mut restarts = vec![0; opts.nodes];
    let end = Instant::now() + lasting;
    while Instant::now() + Duration::from_secs(10) < end {
        let quiet = QUIET_MS.0 + rng.below(QUIET_MS.1 - QUIET_MS.0);
        std::thread::sleep(Duration::from_millis(quiet));
        let event = Event::pick(&mut rng, &farm);
        if let Event::Kill { node, .. } = event {
            restarts[node] += 1;
        }
        let failed_before = failovers_logged(&farm);
        let started = Instant::now();
        eprintln!("farm-chaos: {:>4} s: {event}", (lasting - (end - started)).as_secs());
        event.hit(&mut farm, &mut rng).with_context(|| format!("{event}"))?;
        settle(&farm).with_context(|| format!("after {event}"))?;
        std::thread::sleep(MARGIN);
        windows.push(Window {
            kind: event.kind(),
            split: event.splits(),
            start: started,
            end: Instant::now(),
            failovers: failovers_logged(&farm) - failed_before,
        });
    }
    let sent = traffic.stop()?;
    let end_usage = usage::of_agents(&farm)?;
    let ledger = Ledger { windows: &windows, udp: &sent.udp, tcp: &sent.tcp };
    let received: Vec<Vec<u64>> = farm.nodes.iter().map(|n| n.udp.numbers()).collect();
    let summary = ledger.summary(&received);
    let inside: usize = windows.iter().map(|w| w.failovers).sum();
    let total = failovers_logged(&farm);
    Ok(Outcome {
        options_seed: opts.seed,
        events: windows,
        ledger: summary,
        failovers: (inside, total - inside),
        usage: start_usage
            .into_iter()
            .zip(end_usage)
            .zip(restarts)
            .map(|((s, e), r)| (s, e, r))
            .collect(),
        quorum: opts.quorum,
    })
}

/// The soak's file: the spread service checked (a stopped server withdraws its node),
/// and the quorum asked for. `none` writes nothing, which is the default.
fn configure(text: &str, quorum: Quorum) -> String {
    let checked = text.replacen("    ports: [80]\n", &format!("    ports: [80]\n{CHECKER}"), 1);
    match quorum {
        Quorum::None => checked,
        Quorum::Majority => checked.replacen("  peers:\n", "  quorum: majority\n  peers:\n", 1),
    }
}

/// Until every node is up, passes its checks and holds one view of all of them,
/// installed.
fn settle(farm: &NsFarm) -> Result<()> {
    farm.wait_healthy("spread").map(drop)
}

/// Peers failed, as all the agents' logs say so far.
fn failovers_logged(farm: &NsFarm) -> usize {
    farm.nodes
        .iter()
        .map(|n| {
            let log = std::fs::read_to_string(&n.log).unwrap_or_default();
            log.lines().filter(|l| l.contains(" failed: no heartbeat for ")).count()
        })
        .sum()
}
