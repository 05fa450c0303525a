//! Table C: how long a farm of agents leaves a node's clients unanswered, at the default
//! settings (heartbeat 100 ms, failure after 3 missed). Each round builds a three-node
//! farm in namespaces and times, from the event to the moment every probe client of
//! node 3 is answered by a survivor:
//! - failure: node 3's cable pulled and its agent killed (peers must time it out);
//! - leave: node 3's agent stopped with SIGTERM (peers take over at once);
//! - application death: node 3's server on the service's port stopped, its host and
//!   agent up (its checker, at the default settings, must notice).
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::farm::{NsFarm, Ownership};

/// The goal for a failure or a leave, from the event to full service.
pub const GOAL_MS: f64 = 500.0;
/// The goal for an application's death: the default checker notices within two
/// intervals (1 s each, out after 2 failures), then the farm moves as for a failure.
pub const APP_GOAL_MS: f64 = 2500.0;
const PROBES: usize = 6;
const SURVIVORS: [&str; 2] = ["n1", "n2"];

pub struct FailoverRow {
    pub name: &'static str,
    /// What the event is, in a few words.
    pub about: &'static str,
    /// Milliseconds in each round.
    pub ms: Vec<f64>,
    pub median: f64,
    pub goal_ms: f64,
}

pub fn measure(rounds: usize) -> Result<Vec<FailoverRow>> {
    let (mut failure, mut leave, mut app) = (Vec::new(), Vec::new(), Vec::new());
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for _ in 0..rounds {
        let (f, l) = round()?;
        failure.push(ms(f));
        leave.push(ms(l));
        app.push(ms(app_death()?));
    }
    let row = |name, about, ms: Vec<f64>, goal_ms| FailoverRow {
        name,
        about,
        median: super::median(ms.clone()),
        ms,
        goal_ms,
    };
    Ok(vec![
        row("failure", "cable pulled, agent killed", failure, GOAL_MS),
        row("leave", "agent stopped with SIGTERM", leave, GOAL_MS),
        row(
            "app death",
            "server stopped, host and agent up; default checker: tcp every 1 s, out after 2 failures",
            app,
            APP_GOAL_MS,
        ),
    ])
}

/// A farm whose spread service has the default checker (a TCP connect to the node's own
/// server): from stopping node 3's server to its clients answered by the others.
fn app_death() -> Result<Duration> {
    let mut farm = NsFarm::new(3, 8, 4096, Ownership::Agents { weights: vec![1, 1, 1] })?;
    for n in &farm.nodes {
        let text = std::fs::read_to_string(&n.config)?;
        let checked = text.replacen(
            "    ports: [80]\n",
            "    ports: [80]\n    health:\n      - tcp: \"127.0.0.1:80\"\n",
            1,
        );
        std::fs::write(&n.config, checked)?;
    }
    farm.start_agents()?;
    farm.wait_healthy("spread")?;
    let probes = node_3_probes(&farm)?;
    let died = Instant::now();
    farm.stop_server(2, crate::farm::SPREAD_PORT);
    farm.served_after(died, &probes, &SURVIVORS)
}

/// Clients of the spread service that node 3 serves, each served once by it, as a
/// client in steady state is: its neighbour entry for the VIP is resolved.
fn node_3_probes(farm: &NsFarm) -> Result<Vec<std::net::SocketAddr>> {
    let row = farm.dataplane(&farm.nodes[0])?.row(farm.slot("spread"))?;
    let probes = farm.probes_owned_by(&row, 3, PROBES);
    let before = farm.ask_from(&probes, Duration::from_secs(3));
    anyhow::ensure!(
        before.iter().all(|a| a.as_deref() == Some("n3")),
        "node 3's clients were answered by {before:?}"
    );
    Ok(probes)
}

fn round() -> Result<(Duration, Duration)> {
    let mut farm = NsFarm::new(3, 8, 4096, Ownership::Agents { weights: vec![1, 1, 1] })?;
    farm.start_agents()?;
    farm.wait_converged(&[1, 2, 3])?;
    let probes = node_3_probes(&farm)?;

    farm.link(2, false)?;
    let failed = Instant::now();
    farm.kill_agent(2)?;
    let failure = farm.served_after(failed, &probes, &SURVIVORS)?;

    farm.link(2, true)?;
    farm.start_agent(2)?;
    farm.wait_converged(&[1, 2, 3])?;
    let left = Instant::now();
    farm.stop_agent(2)?;
    let leave = farm.served_after(left, &probes, &SURVIVORS)?;
    Ok((failure, leave))
}
