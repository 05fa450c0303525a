//! Table E: what a farm of N agents costs and how fast it heals as N grows (4 to 64
//! nodes, all on this machine, at the defaults: heartbeat 100 ms, failed after 3
//! missed, 4096 buckets). For each N, one farm (`scale::big_farm`):
//! - cold start: every agent started one after another; from the moment the last one
//!   is up (answers on its control socket: its program loaded, its sockets open) to
//!   every agent holding one agreed view, installed. Loading N programs takes the
//!   kernel's verifier tens of milliseconds of CPU each, here all on the same two cores
//!   (about 2 s for 32), where real servers load theirs at once, each on its own CPUs:
//!   that time is reported apart (`up_ms`, from the first start);
//! - steady state, over `WINDOW`: CPU per agent (user and system time of its process,
//!   as a share of one core; system time includes delivering what it sends through the
//!   namespaces' veths and bridge to every receiver, the XDP program included, work a
//!   real network does in the NICs and the receivers' kernels), heartbeats sent and accepted per node per second, the
//!   agents' resident memory, and heartbeats the kernel dropped (receive buffer full);
//! - failover: node N's cable pulled and its agent killed; until the survivors agree on
//!   a view without it, and until every probe client of node N is answered by one;
//! - rejoin: its cable back and its agent started; until all N agree again.
use std::{
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use crate::{chaos::usage::of_agents, scale::big_farm};

/// The goals, at 32 nodes.
pub const COLD_GOAL_MS: f64 = 1000.0;
pub const FAILOVER_GOAL_MS: f64 = 500.0;
pub const REJOIN_GOAL_MS: f64 = 1000.0;
pub const CPU_GOAL_PERCENT: f64 = 1.0;
/// The sizes the goals are for; larger ones are reported.
pub const GOAL_NODES: usize = 32;
/// How long steady state is watched.
const WINDOW: Duration = Duration::from_secs(10);
/// The longest any wait may take: past it, the size is reported as not settling.
const SETTLE: Duration = Duration::from_secs(60);
const PROBES: usize = 4;

pub struct ScaleRow {
    pub nodes: usize,
    /// From the first agent's start to every agent up.
    pub up_ms: f64,
    pub cold_ms: f64,
    pub failover_view_ms: f64,
    pub failover_served_ms: f64,
    pub rejoin_ms: f64,
    /// Mean over the agents, percent of one core: user and system time, and system.
    pub cpu_percent: f64,
    pub system_percent: f64,
    pub sent_per_s: f64,
    pub accepted_per_s: f64,
    /// Mean resident memory of an agent.
    pub rss_kib: u64,
    /// Heartbeats the kernel dropped on the agents' sockets over the whole run.
    pub overflowed: u64,
}

impl ScaleRow {
    /// Whether the goals hold (only sizes up to `GOAL_NODES` have them).
    pub fn met(&self) -> Option<bool> {
        (self.nodes <= GOAL_NODES).then(|| {
            self.cold_ms < COLD_GOAL_MS
                && self.failover_view_ms.max(self.failover_served_ms) < FAILOVER_GOAL_MS
                && self.rejoin_ms < REJOIN_GOAL_MS
                && self.cpu_percent <= CPU_GOAL_PERCENT
        })
    }
}

pub fn measure(sizes: &[usize]) -> Result<Vec<ScaleRow>> {
    sizes.iter().map(|&n| one(n).with_context(|| format!("a farm of {n} agents"))).collect()
}

/// CPU ticks a process has used: (user and system, system).
fn ticks(pid: u32) -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command's closing parenthesis: state is field 3, utime 14.
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let (user, system) = (fields[11].parse::<u64>()?, fields[12].parse::<u64>()?);
    Ok((user + system, system))
}

fn one(n: usize) -> Result<ScaleRow> {
    eprintln!("farm-bench: table E, {n} agents...");
    let mut farm = big_farm(n)?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let all: Vec<u16> = (1..=n as u16).collect();
    let first_start = Instant::now();
    farm.start_agents()?;
    let up = farm.wait_up(SETTLE)?;
    let cold = farm.wait_agreed(&all, SETTLE)? - up;

    // Steady state: counters, CPU and memory over the window.
    let pids: Vec<u32> = farm
        .nodes
        .iter()
        .map(|n| n.agent.as_ref().map(|a| a.id()).context("agent"))
        .collect::<Result<_>>()?;
    let counters = |farm: &crate::farm::NsFarm| -> Result<(u64, u64)> {
        (0..n).try_fold((0, 0), |(s, a), i| {
            let h = farm.agent_status(i).context("no status")?.heartbeats;
            Ok((s + h.sent, a + h.accepted))
        })
    };
    let used = |pids: &[u32]| -> Result<(u64, u64)> {
        pids.iter().try_fold((0, 0), |(all, sys), &pid| {
            let (a, s) = ticks(pid)?;
            Ok((all + a, sys + s))
        })
    };
    let (sent0, accepted0, ticks0, t0) = {
        let (s, a) = counters(&farm)?;
        (s, a, used(&pids)?, Instant::now())
    };
    thread::sleep(WINDOW);
    let (sent1, accepted1) = counters(&farm)?;
    let (ticks1, t1) = (used(&pids)?, Instant::now());
    let secs = (t1 - t0).as_secs_f64();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let percent = |ticks: u64| ticks as f64 / hz / secs / n as f64 * 100.0;
    let (cpu_percent, system_percent) =
        (percent(ticks1.0 - ticks0.0), percent(ticks1.1 - ticks0.1));
    let rss = of_agents(&farm)?.iter().map(|u| u.rss_kib).sum::<u64>() / n as u64;
    let per_node = |d: u64| d as f64 / secs / n as f64;

    // Failover of the last node.
    let last = n - 1;
    let row = farm.dataplane(&farm.nodes[0])?.row(farm.slot("spread"))?;
    let probes = farm.probes_owned_by(&row, n as u16, PROBES);
    let before = farm.ask_from(&probes, Duration::from_secs(3));
    let own = farm.nodes[last].name.clone();
    anyhow::ensure!(
        before.iter().all(|a| a.as_deref() == Some(own.as_str())),
        "node {n}'s clients were answered by {before:?}"
    );
    let survivors = farm.ids_but(last);
    let names = farm.names_but(last);
    let by: Vec<&str> = names.iter().map(String::as_str).collect();
    farm.link(last, false)?;
    let failed = Instant::now();
    farm.kill_agent(last)?;
    let (view, served) = thread::scope(|s| {
        let served = s.spawn(|| farm.served_after(failed, &probes, &by));
        let view = farm.wait_agreed(&survivors, SETTLE).map(|at| at - failed);
        (view, served.join().expect("the probes' thread"))
    });
    let (view, served) = (view?, served?);

    farm.link(last, true)?;
    farm.start_agent(last)?;
    let restarted = Instant::now();
    let rejoin = farm.wait_agreed(&all, SETTLE)? - restarted;
    let overflowed =
        (0..n).filter_map(|i| farm.agent_status(i)).map(|s| s.heartbeats.overflowed).sum();
    Ok(ScaleRow {
        nodes: n,
        up_ms: ms(up - first_start),
        cold_ms: ms(cold),
        failover_view_ms: ms(view),
        failover_served_ms: ms(served),
        rejoin_ms: ms(rejoin),
        cpu_percent,
        system_percent,
        sent_per_s: per_node(sent1 - sent0),
        accepted_per_s: per_node(accepted1 - accepted0),
        rss_kib: rss,
        overflowed,
    })
}
