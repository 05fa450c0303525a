//! Farms of many agents (16 to 64) in namespaces, for the scale test and table E of the
//! bench. Two things differ from a three-node farm:
//! - The kernel's neighbour table is shared by all namespaces and holds 1024 entries
//!   (`gc_thresh3`; past it, `neighbor table overflow!`): 32 nodes resolving each other
//!   over one bridge need about 992. So every node gets permanent entries for the other
//!   nodes and for the clients, made in its own namespace (permanent entries are not
//!   counted against that limit), and resolves nothing.
//! - `farm status` is a process per node per poll, too slow to time a farm of 64 by:
//!   statuses come straight from the agents' control sockets, which live in the file
//!   system, not in a namespace.
use std::{
    net::IpAddr,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use farm_userspace::agent::{
    control::{self, AgentStatus, Reply, Request},
    wire::Phase,
};

use crate::{
    farm::{NsFarm, Ownership, client_addr, node_addr},
    netns::{ip, run},
};

/// Client addresses of a big farm: probes need a few.
const CLIENTS: usize = 4;
/// How often a wait asks every agent for its status.
const POLL: Duration = Duration::from_millis(10);

/// `nodes` nodes of weight 1 with 4096 buckets, neighbours pinned; no agent started.
pub fn big_farm(nodes: usize) -> Result<NsFarm> {
    let farm = NsFarm::new(nodes, CLIENTS, 4096, Ownership::Agents { weights: vec![1; nodes] })?;
    farm.pin_neighbours()?;
    Ok(farm)
}

/// The MAC address of `iface` in namespace `ns`.
fn mac(ns: &str, iface: &str) -> Result<String> {
    let out = ip(&["-n", ns, "-j", "link", "show", iface])?;
    let links: serde_json::Value = serde_json::from_str(&out)?;
    let mac = links[0]["address"].as_str().with_context(|| format!("no MAC for {iface}"))?;
    Ok(mac.to_string())
}

impl NsFarm {
    /// Permanent neighbour entries in every node for every other node and every client
    /// address, so that no node resolves anything over the bridge (see the module).
    pub fn pin_neighbours(&self) -> Result<()> {
        let client_mac = mac(&self.client.ns.name, &self.client.iface)?;
        let macs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| mac(&n.host.ns.name, &n.host.iface))
            .collect::<Result<_>>()?;
        let clients = (0..self.clients.len()).map(|i| (IpAddr::from(client_addr(i)), &client_mac));
        for node in &self.nodes {
            let others = self
                .nodes
                .iter()
                .zip(&macs)
                .filter(|(other, _)| other.id != node.id)
                .map(|(other, mac)| (IpAddr::from(node_addr(usize::from(other.id))), mac));
            let batch: String = others
                .chain(clients.clone())
                .map(|(addr, mac)| {
                    format!(
                        "neigh replace {addr} lladdr {mac} dev {} nud permanent\n",
                        node.host.iface
                    )
                })
                .collect();
            let file = self.dir.join(format!("{}.neigh", node.name));
            std::fs::write(&file, batch)?;
            let path = file.to_str().context("path")?;
            run(std::process::Command::new("ip").args(["-n", &node.host.ns.name, "-batch", path]))?;
        }
        Ok(())
    }

    /// Node `i`'s agent's status, from its control socket (None if it does not answer).
    pub fn agent_status(&self, i: usize) -> Option<AgentStatus> {
        match control::ask(&self.nodes[i].host.iface, &Request::Status).ok()? {
            Reply::Status(status) => Some(*status),
            _ => None,
        }
    }

    /// Polls until every agent answers on its control socket (its program loaded, its
    /// sockets open) and returns when all were seen to, or fails after `timeout`.
    pub fn wait_up(&self, timeout: Duration) -> Result<Instant> {
        let end = Instant::now() + timeout;
        let mut up = vec![false; self.nodes.len()];
        loop {
            for (i, up) in up.iter_mut().enumerate().filter(|(_, up)| !**up) {
                *up = self.agent_status(i).is_some();
            }
            if up.iter().all(|&up| up) {
                return Ok(Instant::now());
            }
            if Instant::now() > end {
                let down: Vec<usize> = (1..=up.len()).filter(|&n| !up[n - 1]).collect();
                bail!("the agents of nodes {down:?} did not answer within {timeout:?}");
            }
            thread::sleep(POLL);
        }
    }

    /// Whether the agents of exactly `members` all hold the view `members`, converged and
    /// installed, on one epoch.
    fn agreed(&self, members: &[u16]) -> bool {
        let mut epoch = None;
        members.iter().all(|&m| {
            let Some(s) = self.agent_status(usize::from(m) - 1) else { return false };
            let settled = s.converged
                && s.phase == Phase::Installed
                && s.members == members
                && s.fenced.is_none();
            settled && *epoch.get_or_insert(s.epoch) == s.epoch
        })
    }

    /// Polls until `members` agree (`agreed`) and returns when they were seen to, or
    /// fails after `timeout` saying what each node believed.
    pub fn wait_agreed(&self, members: &[u16], timeout: Duration) -> Result<Instant> {
        let end = Instant::now() + timeout;
        loop {
            if self.agreed(members) {
                return Ok(Instant::now());
            }
            if Instant::now() > end {
                bail!("members {members:?} did not agree within {timeout:?}:\n{}", self.brief());
            }
            thread::sleep(POLL);
        }
    }

    /// One line per node: what its agent believes (a failure message of a big farm).
    fn brief(&self) -> String {
        (0..self.nodes.len())
            .map(|i| match self.agent_status(i) {
                Some(s) => format!(
                    "  n{}: epoch {} {:?} converged {} fenced {:?} members {:?}\n",
                    i + 1,
                    s.epoch,
                    s.phase,
                    s.converged,
                    s.fenced,
                    s.members
                ),
                None => format!("  n{}: no answer\n", i + 1),
            })
            .collect()
    }

    /// The names of every node but the one at index `but`.
    pub fn names_but(&self, but: usize) -> Vec<String> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != but)
            .map(|(_, n)| n.name.clone())
            .collect()
    }

    /// The ids of every node but the one at index `but`.
    pub fn ids_but(&self, but: usize) -> Vec<u16> {
        self.nodes.iter().enumerate().filter(|(i, _)| *i != but).map(|(_, n)| n.id).collect()
    }
}
