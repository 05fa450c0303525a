//! Agent farms (`Ownership::Agents`): start, kill, stop and question each node's
//! `farm agent`, and wait until the farm agrees. Every wait is bounded; a wait that runs
//! out says what each node believed and shows the end of its log.
use std::{
    fs::File,
    net::SocketAddr,
    process::{Child, Command, ExitStatus},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use farm_common::{bucket_of, flow_hash};
use farm_userspace::rules::addr_key;
use serde_json::Value;

use crate::{
    farm::{NsFarm, SPREAD_PORT, VIP, farm_bin},
    netns::{command_in, enter, in_ns, ip, wait_for},
    traffic::ask_tcp_from,
};

/// Longest any wait for the farm to settle may take (generous: machines are shared).
pub const SETTLE: Duration = Duration::from_secs(20);

impl NsFarm {
    /// Starts `farm agent` on node `i` (an index into `nodes`), logging at info level.
    pub fn start_agent(&mut self, i: usize) -> Result<()> {
        let farm = command_in(&self.nodes[i].host.ns.name, farm_bin()?.to_str().context("path")?);
        self.spawn_agent(i, farm)
    }

    /// Starts `farm agent` on node `i` with `farm`, a command in its namespace that runs
    /// some `farm` binary (another build, or this one through a wrapper).
    pub fn spawn_agent(&mut self, i: usize, mut farm: Command) -> Result<()> {
        let node = &self.nodes[i];
        let log = File::options().create(true).append(true).open(&node.log)?;
        let child = farm
            .args(["agent", "--config", node.config.to_str().context("path")?])
            .env("RUST_LOG", "info")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn farm agent")?;
        self.nodes[i].agent = Some(child);
        Ok(())
    }

    pub fn start_agents(&mut self) -> Result<()> {
        (0..self.nodes.len()).try_for_each(|i| self.start_agent(i))
    }

    fn take_agent(&mut self, i: usize) -> Result<Child> {
        self.nodes[i].agent.take().with_context(|| format!("node {} runs no agent", i + 1))
    }

    /// SIGKILL: the agent dies at once, the program stays attached with its table.
    pub fn kill_agent(&mut self, i: usize) -> Result<()> {
        let mut agent = self.take_agent(i)?;
        agent.kill()?;
        agent.wait()?;
        Ok(())
    }

    /// SIGTERM, and the agent's exit status (it must leave within `SETTLE`).
    pub fn stop_agent(&mut self, i: usize) -> Result<ExitStatus> {
        let mut agent = self.take_agent(i)?;
        signal(&agent, libc::SIGTERM)?;
        let end = Instant::now() + SETTLE;
        loop {
            if let Some(status) = agent.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > end {
                let _ = agent.kill();
                bail!("node {} ignored SIGTERM for {SETTLE:?}", i + 1);
            }
            // Finer than `wait_for`: the benchmark times a leave from this return.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `sig` to node `i`'s agent.
    pub fn signal_agent(&self, i: usize, sig: libc::c_int) -> Result<()> {
        signal(self.nodes[i].agent.as_ref().context("no agent")?, sig)
    }

    /// Whether node `i`'s agent is still running.
    pub fn agent_running(&mut self, i: usize) -> bool {
        self.nodes[i].agent.as_mut().is_some_and(|a| matches!(a.try_wait(), Ok(None)))
    }

    /// `farm status --json` on node `i`.
    pub fn status(&self, i: usize) -> Result<Value> {
        let node = &self.nodes[i];
        let out = self
            .farm(node, &["status", "--json", "--config", node.config.to_str().context("path")?])?;
        Ok(serde_json::from_str(&out)?)
    }

    /// Takes node `i`'s link down or up (the switch side of its veth, as a pulled cable).
    pub fn link(&self, i: usize, up: bool) -> Result<()> {
        let port = self.nodes[i].host.iface.replacen('f', "p", 1);
        ip(&["-n", &self.switch_ns(), "link", "set", &port, if up { "up" } else { "down" }])?;
        Ok(())
    }

    /// Waits until the agents of exactly `members` (node ids) all report the view
    /// `members`, converged and installed, on one epoch; returns that epoch.
    pub fn wait_converged(&self, members: &[u16]) -> Result<u64> {
        let want: Vec<Value> = members.iter().map(|&m| m.into()).collect();
        let agreed = wait_for(SETTLE, || {
            let epochs: Vec<u64> = members
                .iter()
                .map(|&m| {
                    let a = self.status(usize::from(m) - 1).ok()?["agent"].clone();
                    let settled = a["converged"] == true
                        && a["phase"] == "installed"
                        && a["members"].as_array() == Some(&want);
                    settled.then(|| a["epoch"].as_u64()).flatten()
                })
                .collect::<Option<_>>()?;
            epochs.windows(2).all(|w| w[0] == w[1]).then(|| epochs[0])
        });
        agreed.with_context(|| {
            format!("the farm did not settle on members {members:?}:\n{}", self.report())
        })
    }

    /// Waits until every node's checkers pass `service` and the farm has installed the
    /// table of that (`wait_converged` of every node).
    pub fn wait_healthy(&self, service: &str) -> Result<u64> {
        let members: Vec<u16> = self.nodes.iter().map(|n| n.id).collect();
        let passes = |i: usize| -> Option<()> {
            let services = self.status(i).ok()?["agent"]["services"].clone();
            let s = services.as_array()?.iter().find(|s| s["name"] == service)?.clone();
            (s["healthy"] == true && s["withdrawn"] == false).then_some(())
        };
        let healthy = wait_for(SETTLE, || (0..self.nodes.len()).try_for_each(passes));
        healthy.with_context(|| {
            format!("{service} never passed its checks everywhere:\n{}", self.report())
        })?;
        self.wait_converged(&members)
    }

    /// Up to `count` client endpoints of the spread service (client-ip-port) whose bucket
    /// `row` gives to `node`: fixed (address, port) pairs, so their owner is known.
    pub fn probes_owned_by(&self, row: &[u16], node: u16, count: usize) -> Vec<SocketAddr> {
        let buckets = row.len() as u32;
        (20_000u16..30_000)
            .flat_map(|port| self.clients.iter().map(move |&c| SocketAddr::new(c, port)))
            .filter(|p| {
                let bucket = bucket_of(flow_hash(&addr_key(p.ip()), p.port(), self.seed), buckets);
                row[bucket as usize] == node
            })
            .take(count)
            .collect()
    }

    /// Connects to the spread service once from each probe; the name of the node that
    /// answered each (None: no answer within `timeout`).
    pub fn ask_from(&self, probes: &[SocketAddr], timeout: Duration) -> Vec<Option<String>> {
        let (owned, count) = (probes.to_vec(), probes.len());
        let vip = SocketAddr::new(VIP.into(), SPREAD_PORT);
        in_ns(&self.client.ns.name, move || {
            owned.iter().map(|&p| ask_tcp_from(p, vip, timeout)).collect()
        })
        .unwrap_or_else(|_| vec![None; count])
    }

    /// How long after `since` every probe was answered by one of the nodes named `by`:
    /// each probe retries on a thread of its own with short connects, so the figure is
    /// within a few tens of milliseconds of the moment service came back.
    pub fn served_after(
        &self,
        since: Instant,
        probes: &[SocketAddr],
        by: &[&str],
    ) -> Result<Duration> {
        let vip = SocketAddr::new(VIP.into(), SPREAD_PORT);
        let end = Instant::now() + SETTLE;
        let threads: Vec<_> = probes
            .iter()
            .map(|&probe| {
                let ns = self.client.ns.name.clone();
                let by: Vec<String> = by.iter().map(|s| s.to_string()).collect();
                thread::spawn(move || -> Option<Instant> {
                    enter(&ns).ok()?;
                    while Instant::now() < end {
                        let answer = ask_tcp_from(probe, vip, Duration::from_millis(20));
                        if answer.is_some_and(|a| by.contains(&a)) {
                            return Some(Instant::now());
                        }
                    }
                    None
                })
            })
            .collect();
        let mut last = since;
        for t in threads {
            let served = t.join().ok().flatten().with_context(|| {
                format!("a client was not served by {by:?} within {SETTLE:?}\n{}", self.report())
            })?;
            last = last.max(served);
        }
        Ok(last.duration_since(since))
    }

    /// What each node's agent says, and the end of its log: for failure messages.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let agent = self.status(i).map(|s| s["agent"].clone());
            let brief = match agent {
                Ok(a) => format!(
                    "epoch {} phase {} converged {} members {}",
                    a["epoch"], a["phase"], a["converged"], a["members"]
                ),
                Err(e) => format!("no status: {e:#}"),
            };
            let log = std::fs::read_to_string(&n.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            out += &format!("--- {} ({brief})\n", n.name);
            for line in tail.iter().rev() {
                out += &format!("    {line}\n");
            }
        }
        out
    }
}

fn signal(agent: &Child, sig: libc::c_int) -> Result<()> {
    // SAFETY: kill(2) on a child this process spawned and has not reaped.
    if unsafe { libc::kill(agent.id() as libc::pid_t, sig) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}
