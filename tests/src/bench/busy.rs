//! Table D: false failovers on a busy machine. A three-node farm of agents at the default
//! timing (heartbeat 100 ms, failed after 3 missed, lease 200 ms), no node failing,
//! while busy loops, twice as many as the machine has CPUs, take every core for a
//! minute: every peer failed, every fence and every stall the agents count in that
//! minute is false. Measured with the `agent:` settings' defaults (the loop at a
//! real-time priority, memory locked) and with both off.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use crate::{
    farm::{NsFarm, Ownership},
    scrape::{self, Sample},
};

/// What the file says in each setting measured: nothing (the defaults), or both off.
const SETTINGS: [(&str, &str, &str); 2] = [
    ("defaults", "real-time priority 10, memory locked", ""),
    ("off", "normal scheduler, memory not locked", AGENT_OFF),
];
const AGENT_OFF: &str = "agent:\n  realtime_priority: off\n  lock_memory: false\n";
/// Busy loops per CPU.
pub const HOGS_PER_CPU: usize = 2;

pub struct BusyRow {
    pub name: &'static str,
    /// The settings, in a few words.
    pub about: &'static str,
    pub rounds: Vec<BusyRound>,
}

/// What one minute (or `seconds`) under the hog gave, summed over the three agents.
#[derive(Clone, Copy, Default)]
pub struct BusyRound {
    pub seconds: f64,
    /// Peers failed (each survivor that failed a peer counts it once).
    pub failovers: f64,
    /// Times an agent gave up every bucket on its own, and stalls among them.
    pub fences: f64,
    pub stalls: f64,
    /// The least histogram bound no loop step of any agent was later than, in ms.
    pub worst_delay_ms: f64,
    /// The same bound for 99% of the steps.
    pub p99_delay_ms: f64,
    /// The machine's 1-minute load average as the hog ended (the hog's loops included).
    pub load: f64,
}

impl BusyRow {
    /// False failovers per minute over all rounds.
    pub fn per_minute(&self) -> f64 {
        let minutes: f64 = self.rounds.iter().map(|r| r.seconds / 60.0).sum();
        self.rounds.iter().map(|r| r.failovers).sum::<f64>() / minutes
    }

    /// Fences and stalls, all rounds.
    pub fn fences(&self) -> (f64, f64) {
        self.rounds.iter().fold((0.0, 0.0), |(f, s), r| (f + r.fences, s + r.stalls))
    }

    /// The worst of the rounds' worst loop delays.
    pub fn worst_delay_ms(&self) -> f64 {
        self.rounds.iter().map(|r| r.worst_delay_ms).fold(0.0, f64::max)
    }
}

/// `rounds` rounds of `seconds` under the hog for each setting, the settings taking turns
/// within a round so that the machine's other load hits both alike.
pub fn measure(rounds: usize, seconds: u64) -> Result<Vec<BusyRow>> {
    let mut rows: Vec<BusyRow> = SETTINGS
        .iter()
        .map(|&(name, about, _)| BusyRow { name, about, rounds: Vec::new() })
        .collect();
    for _ in 0..rounds {
        for (row, &(_, _, section)) in rows.iter_mut().zip(&SETTINGS) {
            row.rounds.push(round(section, Duration::from_secs(seconds))?);
        }
    }
    Ok(rows)
}

fn round(section: &str, hogged: Duration) -> Result<BusyRound> {
    let mut farm = NsFarm::new(3, 4, 4096, Ownership::Agents { weights: vec![1, 1, 1] })?;
    for n in &farm.nodes {
        let text = std::fs::read_to_string(&n.config)?;
        std::fs::write(&n.config, format!("{text}{section}"))?;
    }
    farm.start_agents()?;
    farm.wait_converged(&[1, 2, 3])?;
    let before = scrape_all(&farm)?;
    let started = Instant::now();
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let hog = Hog::start(HOGS_PER_CPU * cpus, hogged);
    hog.wait();
    let load = load_average()?;
    let seconds = started.elapsed().as_secs_f64();
    // A peer failed in the last moments of the hog is failed by then.
    thread::sleep(Duration::from_secs(1));
    let after = scrape_all(&farm)?;
    let counted = |name: &str| -> f64 {
        after
            .iter()
            .zip(&before)
            .map(|(a, b)| scrape::sum(a, name, &[]) - scrape::sum(b, name, &[]))
            .sum()
    };
    let (worst_delay_ms, p99_delay_ms) = delays(&before, &after);
    Ok(BusyRound {
        seconds,
        failovers: counted("farm_failovers_total"),
        fences: counted("farm_fences_total"),
        stalls: counted("farm_stalls_total"),
        worst_delay_ms,
        p99_delay_ms,
        load,
    })
}

/// Every node's metrics, in node order.
fn scrape_all(farm: &NsFarm) -> Result<Vec<Vec<Sample>>> {
    farm.nodes
        .iter()
        .map(|n| {
            let (status, body) = scrape::get(&n.host.ns.name, "/metrics")?;
            anyhow::ensure!(status == 200, "{}'s /metrics answered {status}", n.name);
            Ok(scrape::samples(&body))
        })
        .collect()
}

/// The loop delay histogram's bounds (ms) under which every step, and 99% of the
/// steps, of all agents fell between the two scrapes.
fn delays(before: &[Vec<Sample>], after: &[Vec<Sample>]) -> (f64, f64) {
    const BUCKET: &str = "farm_loop_delay_seconds_bucket";
    let mut bounds: Vec<(f64, f64)> = Vec::new();
    for (a, b) in after.iter().zip(before) {
        for s in a.iter().filter(|s| s.name == BUCKET) {
            let le = s.labels.get("le").map(String::as_str).unwrap_or("+Inf");
            let bound =
                if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::INFINITY) };
            let earlier = scrape::sum(b, BUCKET, &[("le", le)]);
            match bounds.iter_mut().find(|(b, _)| *b == bound) {
                Some((_, count)) => *count += s.value - earlier,
                None => bounds.push((bound, s.value - earlier)),
            }
        }
    }
    bounds.sort_by(|x, y| x.0.total_cmp(&y.0));
    let total = bounds.last().map_or(0.0, |b| b.1);
    let within = |share: f64| {
        bounds.iter().find(|(_, count)| *count >= share * total).map_or(0.0, |(b, _)| b * 1e3)
    };
    (within(1.0), within(0.99))
}

fn load_average() -> Result<f64> {
    let text = std::fs::read_to_string("/proc/loadavg")?;
    text.split_whitespace().next().and_then(|l| l.parse().ok()).context("/proc/loadavg")
}

/// Busy loops on threads of their own, for a bounded time (or until dropped).
struct Hog {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Hog {
    fn start(count: usize, lasting: Duration) -> Hog {
        let stop = Arc::new(AtomicBool::new(false));
        let end = Instant::now() + lasting;
        let threads = (0..count)
            .map(|_| {
                let stop = stop.clone();
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        Hog { stop, threads }
    }

    /// Until the loops end on their own.
    fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
