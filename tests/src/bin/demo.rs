//! `farm-demo` (run by `cargo xtask demo`): a three-node farm and a client in network
//! namespaces, each node running `farm agent` with its own YAML file and a TCP server
//! that answers with its name. It shows which node answers which client, fails a node
//! and shows the others take over, brings it back, and removes everything it made.
use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use farm_tests::{
    agents::SETTLE,
    farm::{NsFarm, Ownership, STICKY_PORT, VIP, farm_bin},
    netns::{in_ns, wait_for},
    traffic::ask_tcp_from,
};
use farm_userspace::privilege::{NAMESPACE_FARMS, require};

const CLIENTS: usize = 8;
const STEP: Duration = Duration::from_millis(100);

fn main() -> ExitCode {
    match demo() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("farm-demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn demo() -> Result<()> {
    require("the demo (XDP, network namespaces)", NAMESPACE_FARMS)?;
    let started = Instant::now();
    farm_bin()?;
    println!("== a farm of 3 nodes and a client with {CLIENTS} addresses, in network namespaces");
    let mut farm = NsFarm::new(3, CLIENTS, 4096, Ownership::Agents { weights: vec![1, 1, 1] })?;
    for n in &farm.nodes {
        println!(
            "   {}: namespace {}, interface {}, config {}",
            n.name,
            n.host.ns.name,
            n.host.iface,
            n.config.display()
        );
    }
    println!("   VIP {VIP}, service `sticky` on tcp/{STICKY_PORT} (client-ip affinity)");
    farm.start_agents()?;
    let epoch = farm.wait_converged(&[1, 2, 3])?;
    println!("\n== the agents agree: epoch {epoch}, members [1, 2, 3]; `farm status` on n1 says:");
    let n1 = &farm.nodes[0];
    let status = farm.farm(n1, &["status", "--config", n1.config.to_str().context("path")?])?;
    for line in status.lines() {
        println!("   {line}");
    }
    let before = answers(&farm)?;
    show("which node answers each client", &before, None);

    println!("\n== n3 fails: its cable is pulled and its agent killed");
    farm.link(2, false)?;
    let failed = Instant::now();
    farm.kill_agent(2)?;
    let taken_over = wait_for(SETTLE, || {
        let now = answers_within(&farm, STEP).ok()?;
        now.values().all(|n| matches!(n.as_deref(), Some("n1" | "n2"))).then_some(now)
    })
    .context("the survivors did not take over n3's clients")?;
    println!(
        "   every client answered again {} ms after the failure",
        failed.elapsed().as_millis()
    );
    let epoch = farm.wait_converged(&[1, 2])?;
    show(&format!("after the failure (epoch {epoch})"), &taken_over, Some(&before));

    println!("\n== n3 comes back");
    farm.link(2, true)?;
    farm.start_agent(2)?;
    let epoch = farm.wait_converged(&[1, 2, 3])?;
    let back = answers(&farm)?;
    show(&format!("n3 has its share again (epoch {epoch})"), &back, Some(&taken_over));
    if back != before {
        bail!("the same members should give the same table");
    }
    drop(farm);
    println!(
        "\n== namespaces, pins and files removed; the demo took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Which node answered each client address (the sticky service: one node per address).
type Answers = BTreeMap<IpAddr, Option<String>>;

fn answers(farm: &NsFarm) -> Result<Answers> {
    answers_within(farm, Duration::from_secs(3))
}

fn answers_within(farm: &NsFarm, timeout: Duration) -> Result<Answers> {
    let clients = farm.clients.clone();
    in_ns(&farm.client.ns.name, move || {
        let vip = SocketAddr::new(VIP.into(), STICKY_PORT);
        clients.iter().map(|&c| (c, ask_tcp_from(SocketAddr::new(c, 0), vip, timeout))).collect()
    })
}

fn show(title: &str, now: &Answers, was: Option<&Answers>) {
    println!("   {title}:");
    for (client, node) in now {
        let node = node.as_deref().unwrap_or("(no answer)");
        let moved = match was.and_then(|w| w.get(client)).map(|n| n.as_deref()) {
            Some(Some(old)) if old != node => format!("   (was {old})"),
            _ => String::new(),
        };
        println!("     client {client:<14} -> {node}{moved}");
    }
}
