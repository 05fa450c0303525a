//! A farm in network namespaces: N nodes and a client host on one bridge, each node with
//! its own YAML file, a TCP server answering with the node's name on two ports and a UDP
//! server recording what it receives. Either `farm load` with a static table runs on
//! each node (and the harness puts the VIP on lo and sets the ARP sysctls, as an
//! operator would), or `farm agent` does (see `agents`), which does both itself.
//! Dropping it kills the agents, unloads every node and deletes every namespace and
//! file it made.
use std::{
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    time::Duration,
};

use anyhow::{Context, Result};
use farm_common::Counters;
use farm_userspace::{dataplane::Dataplane, loader::pin_dir};

use crate::{
    netns::{Host, Lan, command_in, in_ns, ip, run, unique_id},
    traffic::{SERVER_LIFETIME, TcpServer, UdpRecorder},
};

pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
/// The IPv6 VIP of agent farms: no service, its default rule hashes the client address.
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
/// The client's IPv6 address (agent farms).
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, 1);
pub const HEARTBEAT_PORT: u16 = 7400;
/// Services every node runs: one spreading a client's connections, one sticky.
pub const SPREAD_PORT: u16 = 80;
pub const STICKY_PORT: u16 = 8080;
/// A UDP service (client-ip-port): numbered datagrams show who received what.
pub const UDP_PORT: u16 = 5353;
/// The shared heartbeat key of agent farms (written to the farm's directory).
pub const KEY: &[u8] = b"farm test key, 32 bytes long...!";

pub fn node_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 10 + i as u8)
}

pub fn node_addr6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10 + i as u16)
}

pub fn client_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1, 1 + i as u8)
}

pub struct Node {
    pub id: u16,
    pub name: String,
    pub host: Host,
    pub config: PathBuf,
    /// Every datagram to `UDP_PORT` this node's kernel delivered.
    pub udp: UdpRecorder,
    /// The running `farm agent`, if any (agent farms).
    pub agent: Option<std::process::Child>,
    /// Where the agent's log goes.
    pub log: PathBuf,
    /// The TCP servers answering with the node's name, by port.
    servers: Vec<(u16, TcpServer)>,
}

pub struct NsFarm {
    pub id: String,
    pub nodes: Vec<Node>,
    pub client: Host,
    pub clients: Vec<IpAddr>,
    pub buckets: u32,
    pub seed: u32,
    nodes_total: u32,
    /// How long its servers live at most.
    lifetime: Duration,
    pub dir: PathBuf,
    // Dropped last: the namespaces go after the nodes are unloaded.
    _lan: Lan,
}

/// How the farm's owner table is made: fixed in the file, or by the agents.
pub enum Ownership {
    /// `static_owners`: node i gets the i-th contiguous share of the buckets.
    StaticThirds,
    /// `farm agent` on every node (started with `start_agents`), node i with weight
    /// `weights[i - 1]`.
    Agents { weights: Vec<u32> },
}

impl NsFarm {
    /// Builds `nodes` nodes and a client with `clients` addresses; nothing loaded yet.
    pub fn new(nodes: usize, clients: usize, buckets: u32, ownership: Ownership) -> Result<NsFarm> {
        NsFarm::lasting(nodes, clients, buckets, ownership, SERVER_LIFETIME)
    }

    /// `new`, with servers that live `lifetime` at most (a soak's length).
    pub fn lasting(
        nodes: usize,
        clients: usize,
        buckets: u32,
        ownership: Ownership,
        lifetime: Duration,
    ) -> Result<NsFarm> {
        let id = unique_id();
        let lan = Lan::new(&id)?;
        let dir = std::env::temp_dir().join(format!("farm-test-{id}"));
        std::fs::create_dir_all(&dir)?;
        let client_cidrs: Vec<String> = (0..clients)
            .map(|i| format!("{}/16", client_addr(i)))
            .chain([format!("{CLIENT6}/64")])
            .collect();
        let client = lan.host("c", &client_cidrs)?;
        let seed = 0x5eed;
        let mut farm = NsFarm {
            id,
            nodes: Vec::new(),
            client,
            clients: (0..clients).map(|i| client_addr(i).into()).collect(),
            buckets,
            seed,
            nodes_total: nodes as u32,
            lifetime,
            dir,
            _lan: lan,
        };
        let key = farm.dir.join("key");
        std::fs::write(&key, KEY)?;
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        for i in 1..=nodes {
            let node = farm.node(i, nodes, &ownership, &farm._lan)?;
            farm.nodes.push(node);
        }
        Ok(farm)
    }

    fn node(&self, i: usize, count: usize, ownership: &Ownership, lan: &Lan) -> Result<Node> {
        let name = format!("n{i}");
        let host =
            lan.host(&name, &[format!("{}/16", node_addr(i)), format!("{}/64", node_addr6(i))])?;
        let ns = &host.ns.name;
        if let Ownership::StaticThirds = ownership {
            ip(&["-n", ns, "addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
            // The kernel holds the VIP on lo and must never answer ARP for it
            // (arp_ignore) nor use it as the source of its own ARP requests (arp_announce).
            for dev in ["all", host.iface.as_str()] {
                host.ns.sysctl(&format!("net.ipv4.conf.{dev}.arp_ignore"), "1")?;
                host.ns.sysctl(&format!("net.ipv4.conf.{dev}.arp_announce"), "2")?;
            }
        }
        let config = self.dir.join(format!("{name}.yaml"));
        std::fs::write(&config, self.yaml(i, count, &host.iface, ownership))?;
        let servers = [SPREAD_PORT, STICKY_PORT]
            .into_iter()
            .map(|port| Ok((port, TcpServer::start_for(ns, port, name.clone(), self.lifetime)?)))
            .collect::<Result<Vec<_>>>()?;
        let udp = UdpRecorder::start_for(ns, UDP_PORT, self.lifetime)?;
        let log = self.dir.join(format!("{name}.log"));
        Ok(Node { id: i as u16, name, host, config, udp, agent: None, log, servers })
    }

    fn yaml(&self, i: usize, count: usize, iface: &str, ownership: &Ownership) -> String {
        let mut y = format!(
            "cluster:\n  name: t{id}\n  node_id: {i}\n  interface: {iface}\n  buckets: {b}\n  seed: {s}\n  peers:\n",
            id = self.id,
            b = self.buckets,
            s = self.seed
        );
        for n in 1..=count {
            let weight = match ownership {
                Ownership::Agents { weights } => weights[n - 1],
                Ownership::StaticThirds => 1,
            };
            let _ = writeln!(
                y,
                "    - id: {n}\n      address: \"{}:{HEARTBEAT_PORT}\"\n      weight: {weight}",
                node_addr(n)
            );
        }
        let _ = write!(
            y,
            "vips:\n  - address: {VIP}\nservices:\n  - name: spread\n    vip: {VIP}\n    protocol: tcp\n    ports: [{SPREAD_PORT}]\n    affinity: client-ip-port\n  - name: sticky\n    vip: {VIP}\n    protocol: tcp\n    ports: [{STICKY_PORT}]\n    affinity: client-ip\n  - name: numbered\n    vip: {VIP}\n    protocol: udp\n    ports: [{UDP_PORT}]\n    affinity: client-ip-port\n"
        );
        match ownership {
            Ownership::StaticThirds => {
                y.push_str("static_owners:\n");
                for n in 1..=count as u32 {
                    let (first, end) = (self.share_start(n), self.share_start(n + 1));
                    let _ = writeln!(y, "  {n}: [\"{first}-{}\"]", end - 1);
                }
            }
            // The key is relative to the file's directory, where `new` wrote it.
            Ownership::Agents { .. } => {
                y = y.replace("  peers:\n", "  key_file: key\n  peers:\n").replace(
                    "services:\n",
                    &format!("  - address: {VIP6}\n    default: client-ip\nservices:\n"),
                )
            }
        }
        y
    }

    /// First bucket of node `n`'s contiguous share in a static table.
    fn share_start(&self, n: u32) -> u32 {
        self.buckets * (n - 1) / self.nodes_total
    }

    /// The node a static table gives `bucket` to.
    pub fn static_owner(&self, bucket: u32) -> u16 {
        (1..=self.nodes_total).rev().find(|&n| self.share_start(n) <= bucket).unwrap_or(1) as u16
    }

    /// Runs `farm ARGS` inside node `i`'s namespace (keeping this mount namespace, so it
    /// pins where the test can see).
    pub fn farm(&self, node: &Node, args: &[&str]) -> Result<String> {
        self.farm_at(node, &farm_bin()?, args)
    }

    /// As `farm`, with the `farm` binary at `bin` (the packaged one).
    pub fn farm_at(&self, node: &Node, bin: &std::path::Path, args: &[&str]) -> Result<String> {
        let out = run(command_in(&node.host.ns.name, bin.to_str().context("path")?).args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Stops node `i`'s TCP server on `port`, as an application that dies.
    pub fn stop_server(&mut self, i: usize, port: u16) {
        self.nodes[i].servers.retain(|(p, _)| *p != port);
    }

    /// Starts node `i`'s TCP server on `port` again.
    pub fn start_server(&mut self, i: usize, port: u16) -> Result<()> {
        let node = &mut self.nodes[i];
        let server =
            TcpServer::start_for(&node.host.ns.name, port, node.name.clone(), self.lifetime)?;
        node.servers.push((port, server));
        Ok(())
    }

    /// Gives every node one file, node 1's without its `node_id` and `interface` lines,
    /// so that each agent finds its node and NIC by its address; returns the file.
    pub fn share_one_file(&mut self) -> Result<PathBuf> {
        let text = std::fs::read_to_string(&self.nodes[0].config)?;
        let iface = format!("  interface: {}\n", self.nodes[0].host.iface);
        let shared = self.dir.join("farm.yaml");
        std::fs::write(&shared, text.replacen("  node_id: 1\n", "", 1).replacen(&iface, "", 1))?;
        for node in &mut self.nodes {
            node.config = shared.clone();
        }
        Ok(shared)
    }

    /// `farm load` on every node.
    pub fn load_all(&self) -> Result<()> {
        for n in &self.nodes {
            self.farm(n, &["load", "--config", n.config.to_str().context("path")?])?;
        }
        Ok(())
    }

    /// The node's data plane, through its pins.
    pub fn dataplane(&self, node: &Node) -> Result<Dataplane> {
        Ok(Dataplane::open_pinned(&pin_dir(&node.host.iface))?)
    }

    /// The node's counters summed over `slots`.
    pub fn counters(&self, node: &Node, slots: u32) -> Result<Counters> {
        let dp = self.dataplane(node)?;
        (0..slots).try_fold(Counters::default(), |sum, s| Ok(sum + dp.counters(s)?))
    }

    /// The table slot of a VIP (by address) or service (by name), as the agents lay
    /// them out.
    pub fn slot(&self, name: &str) -> usize {
        // In node 1's namespace, where a file without node_id finds node 1.
        let path = self.nodes[0].config.clone();
        let cfg = in_ns(&self.nodes[0].host.ns.name, move || farm_userspace::config::load(&path))
            .and_then(|cfg| Ok(cfg?))
            .expect("the farm's file");
        let index = farm_userspace::rules::rules(&cfg).slots.iter().position(|s| match s {
            farm_userspace::rules::SlotUse::Vip(a) => a.to_string() == name,
            farm_userspace::rules::SlotUse::Service(i) => cfg.services[*i].name == name,
        });
        index.unwrap_or_else(|| panic!("no slot {name}"))
    }

    /// Another machine on the farm's segment (a witness): host `name` with `addrs`
    /// (CIDR) on the bridge. Its namespace goes when the `Host` is dropped.
    pub fn extra_host(&self, name: &str, addrs: &[String]) -> Result<Host> {
        self._lan.host(name, addrs)
    }

    /// The namespace of the switch the nodes hang off.
    pub fn switch_ns(&self) -> String {
        self._lan.switch.name.clone()
    }

    /// Which node a reply names.
    pub fn node_named(&self, reply: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == reply.trim())
    }
}

impl Drop for NsFarm {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut agent) = n.agent.take() {
                let _ = agent.kill();
                let _ = agent.wait();
            }
            let run = std::path::Path::new(farm_userspace::agent::control::RUN_DIR);
            let _ =
                std::fs::remove_file(farm_userspace::agent::control::socket_path(&n.host.iface));
            let _ = std::fs::remove_file(run.join(format!("{}.vips", n.host.iface)));
            let _ = std::fs::remove_dir_all(pin_dir(&n.host.iface));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `farm` binary of this build, beside the running one: tests run from
/// target/PROFILE/deps/, farm-demo and farm-bench from target/PROFILE/.
pub fn farm_bin() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("test binary location")?;
    let profile_dir = if dir.ends_with("deps") { dir.parent().context("deps/..")? } else { dir };
    let bin = profile_dir.join("farm");
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: build it first (`cargo xtask test` and `cargo xtask demo` do)",
        bin.display()
    );
    Ok(bin)
}

/// `farm ARGS` in `node`'s namespace, which must fail with exit code 1, nothing on
/// stdout and one line on stderr: that line.
pub fn failure(node: &Node, args: &[&str]) -> String {
    let bin = farm_bin().unwrap();
    let out = command_in(&node.host.ns.name, bin.to_str().unwrap())
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "farm {args:?} exits 1; stderr: {stderr}");
    assert!(out.stdout.is_empty(), "farm {args:?} prints nothing on stdout");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "farm {args:?}: one line, got {lines:#?}");
    assert!(lines[0].starts_with("farm: "), "{}", lines[0]);
    lines[0].to_string()
}

/// Packets the client sent to the VIP, counted by an nftables rule in its namespace.
pub struct SentCounter {
    ns: String,
}

impl SentCounter {
    pub fn install(client: &Host) -> Result<SentCounter> {
        let ns = client.ns.name.clone();
        for cmd in [
            "add table ip farmtest".to_string(),
            "add chain ip farmtest out { type filter hook output priority 0; }".to_string(),
            format!("add rule ip farmtest out ip daddr {VIP} counter"),
        ] {
            run(command_in(&ns, "nft").arg(cmd))?;
        }
        Ok(SentCounter { ns })
    }

    pub fn packets(&self) -> Result<u64> {
        let out = run(
            command_in(&self.ns, "nft").args(["-j", "list", "chain", "ip", "farmtest", "out"])
        )?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        v["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|e| {
                e["rule"]["expr"].as_array()?.iter().find_map(|x| x["counter"]["packets"].as_u64())
            })
            .context("no counter in nft output")
    }
}
