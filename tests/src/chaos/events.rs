//! The events that hit the soak's farm, one at a time: each is done, held for a while
//! and undone by `hit`, and the soak then waits for the farm to settle. Node 1's agent
//! is never killed, so one agent lives through the whole soak and shows what it leaks.
use std::{collections::BTreeMap, fmt, thread, time::Duration};

use anyhow::{Context, Result};

use super::{cut::Cut, ledger::Window};
use crate::{
    farm::{NsFarm, SPREAD_PORT, node_addr},
    sim::rng::Rng,
};

#[derive(Debug, Clone)]
pub enum Event {
    /// SIGKILL, then a new agent.
    Kill { node: usize, down: Duration },
    /// SIGSTOP, then SIGCONT.
    Stall { node: usize, stopped: Duration },
    /// The node's cable pulled and put back.
    LinkFlap { node: usize, down: Duration },
    /// Heartbeats dropped both ways between these nodes and the others.
    Partition { side: Vec<usize>, lasting: Duration },
    /// `farm drain`, then `farm undrain`.
    Drain { node: usize, lasting: Duration },
    /// `farm weight W`, then `farm weight 1`.
    Weight { node: usize, weight: u32, lasting: Duration },
    /// Every node's file changed (the seed, or a peer's weight), then SIGHUP to each in
    /// turn: a rolling reload.
    Reload { change: Change },
    /// The node's server on the spread port stopped (its checker withdraws it), then
    /// started again.
    HealthFlip { node: usize, down: Duration },
}

#[derive(Debug, Clone, Copy)]
pub enum Change {
    Seed,
    PeerWeight { node: usize },
}

const KINDS: usize = 8;

/// Milliseconds between `lo` and `hi`.
fn between(rng: &mut Rng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(lo + rng.below(hi - lo))
}

impl Event {
    pub fn pick(rng: &mut Rng, farm: &NsFarm) -> Event {
        let nodes = farm.nodes.len();
        let node = rng.below(nodes as u64) as usize;
        match rng.below(KINDS as u64) {
            // Any node but node 1.
            0 => Event::Kill {
                node: 1 + rng.below(nodes as u64 - 1) as usize,
                down: between(rng, 300, 3000),
            },
            1 => Event::Stall { node, stopped: between(rng, 100, 2000) },
            2 => Event::LinkFlap { node, down: between(rng, 200, 3000) },
            3 => {
                // Up to half the nodes: a minority, or a tie.
                let size = 1 + rng.below(nodes as u64 / 2) as usize;
                let mut side: Vec<usize> = Vec::new();
                while side.len() < size {
                    let n = rng.below(nodes as u64) as usize;
                    if !side.contains(&n) {
                        side.push(n);
                    }
                }
                side.sort_unstable();
                Event::Partition { side, lasting: between(rng, 500, 4000) }
            }
            4 => Event::Drain { node, lasting: between(rng, 500, 4000) },
            5 => Event::Weight {
                node,
                weight: [0, 2, 3][rng.below(3) as usize],
                lasting: between(rng, 500, 4000),
            },
            6 => Event::Reload {
                change: match rng.chance(500) {
                    true => Change::Seed,
                    false => Change::PeerWeight { node },
                },
            },
            _ => Event::HealthFlip { node, down: between(rng, 500, 4000) },
        }
    }

    /// Does the event, holds it, undoes it.
    pub fn hit(&self, farm: &mut NsFarm, rng: &mut Rng) -> Result<()> {
        match *self {
            Event::Kill { node, down } => {
                farm.kill_agent(node)?;
                thread::sleep(down);
                farm.start_agent(node)
            }
            Event::Stall { node, stopped } => {
                farm.signal_agent(node, libc::SIGSTOP)?;
                thread::sleep(stopped);
                farm.signal_agent(node, libc::SIGCONT)
            }
            Event::LinkFlap { node, down } => {
                farm.link(node, false)?;
                thread::sleep(down);
                farm.link(node, true)
            }
            Event::Partition { ref side, lasting } => {
                let cut = Cut::new(farm, side)?;
                thread::sleep(lasting);
                drop(cut);
                Ok(())
            }
            Event::Drain { node, lasting } => {
                cli(farm, node, &["drain"])?;
                thread::sleep(lasting);
                cli(farm, node, &["undrain"])
            }
            Event::Weight { node, weight, lasting } => {
                cli(farm, node, &["weight", &weight.to_string()])?;
                thread::sleep(lasting);
                cli(farm, node, &["weight", "1"])
            }
            Event::Reload { change } => reload(farm, change, rng),
            Event::HealthFlip { node, down } => {
                farm.stop_server(node, SPREAD_PORT);
                thread::sleep(down);
                farm.start_server(node, SPREAD_PORT)
            }
        }
    }

    /// A word for the kind of event, for the tally.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Kill { .. } => "kill",
            Event::Stall { .. } => "stall",
            Event::LinkFlap { .. } => "link flap",
            Event::Partition { .. } => "partition",
            Event::Drain { .. } => "drain",
            Event::Weight { .. } => "weight",
            Event::Reload { .. } => "reload",
            Event::HealthFlip { .. } => "health flip",
        }
    }

    /// Whether each side may serve alone while it lasts.
    pub fn splits(&self) -> bool {
        matches!(self, Event::Partition { .. })
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let ms = |d: &Duration| d.as_millis();
        match self {
            Event::Kill { node, down } => {
                write!(f, "node {}'s agent killed, restarted {} ms later", node + 1, ms(down))
            }
            Event::Stall { node, stopped } => {
                write!(f, "node {}'s agent stopped for {} ms", node + 1, ms(stopped))
            }
            Event::LinkFlap { node, down } => {
                write!(f, "node {}'s link down for {} ms", node + 1, ms(down))
            }
            Event::Partition { side, lasting } => {
                let side: Vec<String> = side.iter().map(|n| (n + 1).to_string()).collect();
                write!(f, "nodes {} cut off from the others for {} ms", side.join(","), ms(lasting))
            }
            Event::Drain { node, lasting } => {
                write!(f, "node {} drained for {} ms", node + 1, ms(lasting))
            }
            Event::Weight { node, weight, lasting } => {
                write!(f, "node {} at weight {weight} for {} ms", node + 1, ms(lasting))
            }
            Event::Reload { change: Change::Seed } => write!(f, "a rolling reload of a new seed"),
            Event::Reload { change: Change::PeerWeight { node } } => {
                write!(f, "a rolling reload of node {}'s weight", node + 1)
            }
            Event::HealthFlip { node, down } => {
                write!(f, "node {}'s server down for {} ms", node + 1, ms(down))
            }
        }
    }
}

/// How many events of each kind the windows hold.
pub fn tally(windows: &[Window]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for w in windows {
        *counts.entry(w.kind).or_default() += 1;
    }
    counts
}

/// `farm ARGS --config FILE` on node `i`.
fn cli(farm: &NsFarm, i: usize, args: &[&str]) -> Result<()> {
    let node = &farm.nodes[i];
    let config = node.config.to_str().context("path")?;
    farm.farm(node, &[args, &["--config", config]].concat()).map(drop)
}

/// Rewrites every node's file with `change`, then sends each agent SIGHUP in turn, a
/// few hundred milliseconds apart.
fn reload(farm: &NsFarm, change: Change, rng: &mut Rng) -> Result<()> {
    for n in &farm.nodes {
        let text = std::fs::read_to_string(&n.config)?;
        std::fs::write(&n.config, changed(&text, change, farm.seed)?)?;
    }
    for i in 0..farm.nodes.len() {
        farm.signal_agent(i, libc::SIGHUP)?;
        thread::sleep(between(rng, 0, 400));
    }
    Ok(())
}

/// `text` with the seed moved between the farm's `seed` and the next, or a peer's weight
/// between 1 and 2.
fn changed(text: &str, change: Change, seed: u32) -> Result<String> {
    let swap = |text: &str, a: &str, b: &str| -> Option<String> {
        if text.contains(a) {
            Some(text.replacen(a, b, 1))
        } else if text.contains(b) {
            Some(text.replacen(b, a, 1))
        } else {
            None
        }
    };
    let swapped = match change {
        Change::Seed => {
            swap(text, &format!("  seed: {seed}\n"), &format!("  seed: {}\n", seed + 1))
        }
        Change::PeerWeight { node } => {
            let peer = format!("address: \"{}:", node_addr(node + 1));
            let at = text.find(&peer).context("the peer's line")?;
            let (head, tail) = text.split_at(at);
            swap(tail, "      weight: 1\n", "      weight: 2\n").map(|t| format!("{head}{t}"))
        }
    };
    swapped.context("the file has no line to change")
}
