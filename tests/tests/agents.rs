//! Farms run by `farm agent`: three node namespaces and a client on a bridge, each node
//! with its own YAML file, the shared key and real TCP and UDP servers. What a user would
//! see: one table all nodes agree on, every connection answered by exactly one node,
//! failures and leaves healed by the survivors, and never two nodes answering one flow.
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use farm_common::{NO_OWNER, bucket_of, flow_hash};
use farm_tests::{
    agents::SETTLE,
    farm::UDP_PORT,
    farm::{CLIENT6, Node, NsFarm, Ownership, SPREAD_PORT, VIP, VIP6},
    netns::{in_ns, ip, wait_for},
    traffic::{ask_tcp, send_numbered},
};
use farm_userspace::rules::addr_key;

const CLIENTS: usize = 12;
const BUCKETS: u32 = 4096;
/// Slots: the two VIPs' own, then spread (tcp 80), sticky (tcp 8080), numbered (udp
/// 5353), as `NsFarm::slot` finds them.
const SLOTS: usize = 5;
const VIP6_SLOT: usize = 1;
const SPREAD_SLOT: usize = 2;
const UDP_SLOT: usize = 4;

fn agent_farm(weights: &[u32]) -> NsFarm {
    let mut farm = NsFarm::new(
        weights.len(),
        CLIENTS,
        BUCKETS,
        Ownership::Agents { weights: weights.to_vec() },
    )
    .expect("build the namespace farm");
    farm.start_agents().expect("start the agents");
    farm
}

/// Every node's table, slot by slot; they must all be the same (polled: nodes converged
/// on a view may still be an install or a handover's phase apart).
fn agreed_rows(farm: &NsFarm, nodes: &[usize]) -> Vec<Vec<u16>> {
    let agreed = wait_for(SETTLE, || same_rows(farm, nodes).ok());
    agreed.unwrap_or_else(|| {
        let i = same_rows(farm, nodes).err().unwrap_or(nodes[0]);
        panic!("node {} holds another table than node {}", i + 1, nodes[0] + 1)
    })
}

/// Every node's table, if they are all the same; else the first node that differs. A
/// poll asks this: nodes read one after another may be an install apart.
fn same_rows(farm: &NsFarm, nodes: &[usize]) -> Result<Vec<Vec<u16>>, usize> {
    let tables: Vec<Vec<Vec<u16>>> = nodes
        .iter()
        .map(|&i| {
            let dp = farm.dataplane(&farm.nodes[i]).expect("pinned maps");
            (0..SLOTS).map(|s| dp.row(s).expect("row")).collect()
        })
        .collect();
    match tables.iter().zip(nodes).skip(1).find(|(t, _)| **t != tables[0]) {
        Some((_, &i)) => Err(i),
        None => Ok(tables[0].clone()),
    }
}

/// Connects from every client address to the spread service; checks each answer came
/// from the node `row` names; returns connections answered per node.
fn check_answers(farm: &NsFarm, row: &[u16]) -> BTreeMap<u16, usize> {
    let clients = farm.clients.clone();
    let answers = in_ns(&farm.client.ns.name, move || {
        clients
            .iter()
            .flat_map(|&c| {
                (0..4).map(move |_| ask_tcp(c, SocketAddr::new(VIP.into(), SPREAD_PORT)))
            })
            .collect::<Vec<_>>()
    })
    .unwrap();
    let mut per_node = BTreeMap::new();
    for a in answers {
        let reply =
            a.reply.unwrap_or_else(|e| panic!("{}: no answer: {e}\n{}", a.from, farm.report()));
        let node = farm.node_named(&reply).unwrap_or_else(|| panic!("unknown reply {reply:?}"));
        let bucket =
            bucket_of(flow_hash(&addr_key(a.from.ip()), a.from.port(), farm.seed), BUCKETS);
        assert_eq!(
            node.id, row[bucket as usize],
            "{}: bucket {bucket} answered by {}",
            a.from, node.name
        );
        *per_node.entry(node.id).or_default() += 1;
    }
    per_node
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agent"]
fn agents_agree_on_one_table_and_the_vip_is_theirs() {
    let farm = agent_farm(&[1, 1, 1]);
    let epoch = farm.wait_converged(&[1, 2, 3]).unwrap();
    let rows = agreed_rows(&farm, &[0, 1, 2]);
    for (slot, row) in rows.iter().enumerate() {
        let mut counts: BTreeMap<u16, usize> = BTreeMap::new();
        for &o in row {
            assert_ne!(o, NO_OWNER, "slot {slot}: a bucket with no owner");
            *counts.entry(o).or_default() += 1;
        }
        assert_eq!(counts.keys().copied().collect::<Vec<_>>(), [1, 2, 3], "slot {slot}");
        assert!(
            counts.values().all(|&c| c.abs_diff(BUCKETS as usize / 3) <= 1),
            "slot {slot}: {counts:?}"
        );
    }
    eprintln!("all three nodes on epoch {epoch}, one table");
    // A second agent on the same interface is refused, and the first carries on.
    let n1 = &farm.nodes[0];
    let farm_bin = farm_tests::farm::farm_bin().unwrap();
    let second = farm_tests::netns::command_in(&n1.host.ns.name, farm_bin.to_str().unwrap())
        .args(["agent", "--config", n1.config.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success() && err.contains("already runs on"), "{err}");
    assert_eq!(farm.wait_converged(&[1, 2, 3]).unwrap(), epoch);
    // The agent put the VIP on lo and the ARP sysctls in place.
    for n in &farm.nodes {
        let lo = ip(&["-n", &n.host.ns.name, "addr", "show", "dev", "lo"]).unwrap();
        assert!(lo.contains(&format!("{VIP}/32")), "{}: VIP not on lo: {lo}", n.name);
    }
    assert_eq!(
        [VIP6_SLOT, SPREAD_SLOT, UDP_SLOT],
        [farm.slot("2001:db8::100"), farm.slot("spread"), farm.slot("numbered")]
    );
    let per_node = check_answers(&farm, &rows[SPREAD_SLOT]);
    eprintln!("connections answered per node: {per_node:?}");

    // IPv6: the VIP's neighbour solicitation is answered with the cluster MAC, and a
    // connection to a port no service claims follows the VIP's default rule: the owner
    // of the client address's bucket in the VIP's own table answers.
    let vip6 = SocketAddr::new(VIP6.into(), SPREAD_PORT);
    let answer = in_ns(&farm.client.ns.name, move || ask_tcp(CLIENT6.into(), vip6)).unwrap();
    let reply =
        answer.reply.unwrap_or_else(|e| panic!("[{VIP6}]:80: no answer: {e}\n{}", farm.report()));
    let bucket = bucket_of(flow_hash(&addr_key(CLIENT6.into()), 0, farm.seed), BUCKETS);
    let owner = rows[VIP6_SLOT][bucket as usize];
    assert_eq!(farm.node_named(&reply).map(|n| n.id), Some(owner), "answered by {reply}");
    let neigh =
        ip(&["-n", &farm.client.ns.name, "-6", "neigh", "show", &VIP6.to_string()]).unwrap();
    let cfg = farm_userspace::config::load(&farm.nodes[0].config).unwrap();
    let cluster_mac = farm_userspace::nic::format_mac(&cfg.cluster.cluster_mac);
    assert!(
        neigh.contains(&cluster_mac),
        "ND for the VIP resolved to {neigh:?}, want {cluster_mac}"
    );
    for n in &farm.nodes {
        let lo = ip(&["-n", &n.host.ns.name, "-6", "addr", "show", "dev", "lo"]).unwrap();
        assert!(lo.contains(&format!("{VIP6}/128")), "{}: VIP6 not on lo: {lo}", n.name);
    }
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agent"]
fn a_failed_node_is_replaced_then_gets_its_share_back() {
    let mut farm = agent_farm(&[1, 1, 1]);
    let epoch = farm.wait_converged(&[1, 2, 3]).unwrap();
    let before = agreed_rows(&farm, &[0, 1, 2]);
    let probes = farm.probes_owned_by(&before[SPREAD_SLOT], 3, 8);
    let answers = farm.ask_from(&probes, Duration::from_secs(3));
    assert!(answers.iter().all(|a| a.as_deref() == Some("n3")), "{answers:?}");

    // Node 3 fails: its cable is pulled and its agent dies.
    farm.link(2, false).unwrap();
    let failed = Instant::now();
    farm.kill_agent(2).unwrap();
    // Its clients are answered by the survivors again.
    let took = farm.served_after(failed, &probes, &["n1", "n2"]).unwrap();
    let after = farm.wait_converged(&[1, 2]).unwrap();
    assert!(after > epoch);
    eprintln!(
        "node 3 failed: its clients answered by the survivors {} ms later (epoch {epoch} -> {after})",
        took.as_millis()
    );
    let rows = agreed_rows(&farm, &[0, 1]);
    assert!(rows.iter().flatten().all(|&o| o == 1 || o == 2), "a bucket left to node 3 or nobody");

    // It comes back and owns a share again.
    farm.link(2, true).unwrap();
    farm.start_agent(2).unwrap();
    farm.wait_converged(&[1, 2, 3]).unwrap();
    let rows = agreed_rows(&farm, &[0, 1, 2]);
    let owned = rows[SPREAD_SLOT].iter().filter(|&&o| o == 3).count();
    assert!(owned.abs_diff(BUCKETS as usize / 3) <= 1, "node 3 owns {owned} buckets on its return");
    assert_eq!(rows, before, "the same members give the same table");
    check_answers(&farm, &rows[SPREAD_SLOT]);
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agent"]
fn a_killed_agent_fences_its_node_before_anyone_takes_over() {
    let mut farm = agent_farm(&[1, 1, 1]);
    farm.wait_converged(&[1, 2, 3]).unwrap();
    let udp_row = agreed_rows(&farm, &[0, 1, 2])[UDP_SLOT].clone();
    // Numbered datagrams from every client address, one per millisecond, while node 2's
    // agent is SIGKILLed with its program left attached.
    const COUNT: u64 = 2500;
    let clients = farm.clients.clone();
    let ns = farm.client.ns.name.clone();
    let sender = std::thread::spawn(move || {
        in_ns(&ns, move || {
            send_numbered(
                &clients,
                SocketAddr::new(VIP.into(), UDP_PORT),
                COUNT,
                Duration::from_millis(1),
            )
        })
    });
    // Node 2 serves its clients' datagrams before its agent dies.
    wait_for(SETTLE, || (!farm.nodes[1].udp.numbers().is_empty()).then_some(()))
        .unwrap_or_else(|| panic!("node 2 received no datagram\n{}", farm.report()));
    farm.kill_agent(1).unwrap();
    let sent_from = sender.join().unwrap().unwrap().unwrap();
    farm.wait_converged(&[1, 3]).unwrap();
    // Every datagram is sent, but the servers may still be reading theirs: wait until each
    // has recorded as many as its program accepted for the UDP service.
    let caught_up = |n: &Node| {
        let accepted = farm.dataplane(n).unwrap().counters(UDP_SLOT as u32).unwrap().accepted;
        accepted == n.udp.numbers().len() as u64
    };
    if wait_for(SETTLE, || farm.nodes.iter().all(caught_up).then_some(())).is_none() {
        // A full socket buffer drops datagrams after the program accepted them: those
        // count as lost below.
        eprintln!("the servers recorded fewer datagrams than their programs accepted");
    }

    let mut receiver: BTreeMap<u64, Vec<u16>> = BTreeMap::new();
    for n in &farm.nodes {
        for number in n.udp.numbers() {
            receiver.entry(number).or_default().push(n.id);
        }
    }
    let twice: Vec<_> = receiver.iter().filter(|(_, nodes)| nodes.len() > 1).collect();
    assert!(twice.is_empty(), "datagrams received by two nodes: {twice:?}");
    // Node 2's clients were served before the kill and, by the others, after it.
    let owner = |n: u64| {
        let from = sent_from[n as usize];
        udp_row
            [bucket_of(flow_hash(&addr_key(from.ip()), from.port(), farm.seed), BUCKETS) as usize]
    };
    let of_node_2: Vec<u64> = (0..COUNT).filter(|&n| owner(n) == 2).collect();
    assert!(!of_node_2.is_empty(), "some client sockets hash to node 2");
    let by_node_2 = of_node_2.iter().filter(|n| receiver.get(n).is_some_and(|r| r == &[2])).count();
    let by_others = of_node_2.iter().filter(|n| receiver.get(n).is_some_and(|r| r != &[2])).count();
    let lost = COUNT as usize - receiver.len();
    eprintln!(
        "{COUNT} datagrams: {} received once, none twice; of node 2's {}: {by_node_2} by node 2, then {by_others} by the survivors; {lost} lost around the kill",
        receiver.len(),
        of_node_2.len()
    );
    assert!(by_node_2 > 0 && by_others > 0, "node 2 served its clients, then the survivors did");
    let last = of_node_2.iter().rev().find_map(|n| receiver.get(n)).unwrap();
    assert!(last != &[2], "node 2's last datagrams went to a survivor");
}

/// Buckets each node owns in `slot`, from an agreed table.
fn shares(rows: &[Vec<u16>], slot: usize) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for &o in &rows[slot] {
        *counts.entry(o).or_default() += 1;
    }
    counts
}

fn log_of(farm: &NsFarm, i: usize) -> String {
    std::fs::read_to_string(&farm.nodes[i].log).unwrap_or_default()
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agent"]
fn sigterm_hands_over_at_once_and_cleans_up() {
    let mut farm = agent_farm(&[1, 1, 1]);
    farm.wait_converged(&[1, 2, 3]).unwrap();
    let ns3 = farm.nodes[2].host.ns.name.clone();
    let stopped = Instant::now();
    let status = farm.stop_agent(2).unwrap();
    assert!(status.success(), "the agent exits cleanly on SIGTERM: {status}");
    farm.wait_converged(&[1, 2]).unwrap();
    eprintln!("node 3 left: survivors installed within {} ms", stopped.elapsed().as_millis());
    for i in [0, 1] {
        let log = log_of(&farm, i);
        assert!(log.contains("node 3 left the farm"), "node {}: {log}", i + 1);
        assert!(!log.contains("node 3 failed"), "node {} waited for the failure timeout", i + 1);
        let peers = farm.status(i).unwrap()["agent"]["peers"].clone();
        let three = peers.as_array().unwrap().iter().find(|p| p["id"] == 3).unwrap().clone();
        assert_eq!(three["state"], "left");
    }
    // Node 3 let go of everything: program, pins, VIP, sysctls, socket.
    assert!(!farm_userspace::loader::pin_dir(&farm.nodes[2].host.iface).exists());
    let lo = ip(&["-n", &ns3, "addr", "show", "dev", "lo"]).unwrap();
    assert!(!lo.contains(&VIP.to_string()), "VIP still on node 3's lo: {lo}");
    let link = ip(&["-n", &ns3, "link", "show", "dev", &farm.nodes[2].host.iface]).unwrap();
    assert!(!link.contains("xdp"), "program still attached: {link}");
    let arp_ignore =
        in_ns(&ns3, || std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/arp_ignore"))
            .unwrap()
            .unwrap();
    assert_eq!(arp_ignore.trim(), "0", "arp_ignore restored");
    let rows = agreed_rows(&farm, &[0, 1]);
    check_answers(&farm, &rows[SPREAD_SLOT]);
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agent"]
fn weights_one_two_one_give_quarter_half_quarter() {
    let farm = agent_farm(&[1, 2, 1]);
    farm.wait_converged(&[1, 2, 3]).unwrap();
    let rows = agreed_rows(&farm, &[0, 1, 2]);
    for slot in 0..SLOTS {
        let s = shares(&rows, slot);
        let want = [(1, 1024), (2, 2048), (3, 1024)];
        for (node, quota) in want {
            assert!(s[&node].abs_diff(quota) <= 1, "slot {slot}: {s:?}");
        }
    }
    eprintln!("weights 1:2:1 -> {:?} of {BUCKETS}", shares(&rows, SPREAD_SLOT));
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agent"]
fn forged_replayed_and_garbage_heartbeats_change_nothing() {
    use farm_userspace::agent::wire::{Heartbeat, Kind, Phase};
    let farm = agent_farm(&[1, 1, 1]);
    let epoch = farm.wait_converged(&[1, 2, 3]).unwrap();
    let cfg = farm_userspace::config::load(&farm.nodes[0].config).unwrap();
    let leave = |incarnation| Heartbeat {
        kind: Kind::Leave,
        cluster: farm_userspace::config::cluster_id(&cfg.cluster.name),
        node: 2,
        incarnation,
        seq: 1,
        epoch: epoch + 1,
        view: 0,
        phase: Phase::Installed,
        config: farm_userspace::config::shared_digest(&cfg),
        weight: None,
        drained: false,
        reply: false,
        ask: false,
        services: Default::default(),
        members: vec![1, 3],
        acks: vec![],
        votes_epoch: 0,
        votes: vec![],
        apart: vec![],
    };
    // "Node 2 leaves": signed with another key, then with the right key but an
    // incarnation older than node 2's, then bytes that are no heartbeat at all.
    let forged = leave(u64::MAX).encode(b"not the farm's key, though 32 by");
    let stale = leave(1).encode(farm_tests::farm::KEY);
    let garbage = vec![0x55u8; 40];
    let to =
        SocketAddr::new(farm_tests::farm::node_addr(1).into(), farm_tests::farm::HEARTBEAT_PORT);
    let src = farm.clients[0];
    in_ns(&farm.client.ns.name, move || {
        let s = std::net::UdpSocket::bind(SocketAddr::new(src, 0)).unwrap();
        for d in [&forged, &stale, &garbage] {
            for _ in 0..3 {
                s.send_to(d, to).unwrap();
            }
        }
    })
    .unwrap();
    let counted = wait_for(Duration::from_secs(10), || {
        let h = farm.status(0).ok()?["agent"]["heartbeats"].clone();
        (h["forged"] == 3 && h["stale"] == 3 && h["malformed"] == 3).then_some(h)
    });
    assert!(counted.is_some(), "node 1 counts 3 forged, 3 stale, 3 malformed\n{}", farm.report());
    assert_eq!(farm.wait_converged(&[1, 2, 3]).unwrap(), epoch, "the view did not change");
    assert!(!log_of(&farm, 0).contains("node 2 left"));
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agent"]
fn a_bad_config_is_refused_at_start_and_on_reload() {
    let mut farm = agent_farm(&[1, 1, 1]);
    let epoch = farm.wait_converged(&[1, 2, 3]).unwrap();
    let good: Vec<String> =
        farm.nodes.iter().map(|n| std::fs::read_to_string(&n.config).unwrap()).collect();
    // A service on a VIP nobody declared.
    let bad = good[0].replace(
        "  - name: sticky\n    vip: 198.18.0.100",
        "  - name: sticky\n    vip: 198.18.0.200",
    );
    let line = bad.lines().position(|l| l.contains("198.18.0.200")).unwrap() + 1;
    let bad_file = farm.dir.join("bad.yaml");
    std::fs::write(&bad_file, &bad).unwrap();
    let out = farm_tests::netns::command_in(
        &farm.nodes[0].host.ns.name,
        farm_tests::farm::farm_bin().unwrap().to_str().unwrap(),
    )
    .args(["agent", "--config", bad_file.to_str().unwrap()])
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let want = format!("bad.yaml:{line}: services[1].vip:");
    assert!(
        err.contains(&want) && err.trim().lines().count() == 1,
        "want one line with {want:?}, got {err:?}"
    );

    // The running agent on node 1 is handed the bad file and keeps its configuration.
    std::fs::write(&farm.nodes[0].config, &bad).unwrap();
    farm.signal_agent(0, libc::SIGHUP).unwrap();
    let refused = wait_for(Duration::from_secs(10), || {
        log_of(&farm, 0).contains("reload refused").then_some(())
    });
    assert!(refused.is_some(), "{}", log_of(&farm, 0));
    assert!(
        log_of(&farm, 0)
            .contains(&format!("bad.yaml:{line}: services[1].vip:").replace("bad.yaml", "n1.yaml"))
    );
    assert!(farm.agent_running(0));
    // (The read commands read the file too: put the good one back to ask.)
    std::fs::write(&farm.nodes[0].config, &good[0]).unwrap();
    assert_eq!(farm.wait_converged(&[1, 2, 3]).unwrap(), epoch, "nothing changed");

    // A good change reaches every node by SIGHUP: node 1 weighs 2, and a third VIP
    // (which moves the services one slot on).
    for (i, text) in good.iter().enumerate() {
        let changed = text
            .replacen(
                "address: \"198.18.0.11:7400\"\n      weight: 1",
                "address: \"198.18.0.11:7400\"\n      weight: 2",
                1,
            )
            .replacen("services:\n", "  - address: 198.18.0.101\nservices:\n", 1);
        assert_ne!(&changed, text);
        std::fs::write(&farm.nodes[i].config, changed).unwrap();
        farm.signal_agent(i, libc::SIGHUP).unwrap();
    }
    let after = farm.wait_converged(&[1, 2, 3]).unwrap();
    assert!(after > epoch);
    let spread = farm.slot("spread");
    assert_eq!(spread, SPREAD_SLOT + 1);
    let dp = farm.dataplane(&farm.nodes[0]).unwrap();
    let s = shares(&[dp.row(spread).unwrap()], 0);
    assert!(s[&1].abs_diff(2048) <= 1 && s[&2].abs_diff(1024) <= 1, "{s:?}");
    for n in &farm.nodes {
        let lo = ip(&["-n", &n.host.ns.name, "addr", "show", "dev", "lo"]).unwrap();
        assert!(lo.contains("198.18.0.101/32"), "{}: the new VIP is not on lo: {lo}", n.name);
    }
    check_answers(&farm, &dp.row(spread).unwrap());
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agent"]
fn the_agent_adopts_what_farm_load_attached() {
    let mut farm = NsFarm::new(3, CLIENTS, BUCKETS, Ownership::Agents { weights: vec![1, 1, 1] })
        .expect("build the namespace farm");
    farm.load_all().expect("farm load on every node");
    let prog_before: Vec<String> = farm
        .nodes
        .iter()
        .map(|n| ip(&["-n", &n.host.ns.name, "link", "show", &n.host.iface]).unwrap())
        .collect();
    farm.start_agents().unwrap();
    farm.wait_converged(&[1, 2, 3]).unwrap();
    for (i, n) in farm.nodes.iter().enumerate() {
        let log = log_of(&farm, i);
        assert!(log.contains("adopted the program pinned"), "{}: {log}", n.name);
        let link = ip(&["-n", &n.host.ns.name, "link", "show", &n.host.iface]).unwrap();
        assert_eq!(
            prog_id(&link),
            prog_id(&prog_before[i]),
            "{}: the same program stays attached",
            n.name
        );
        assert!(
            farm.status(i).unwrap()["lease_never_expires"] == false,
            "the agent's lease is finite"
        );
    }
    let rows = agreed_rows(&farm, &[0, 1, 2]);
    check_answers(&farm, &rows[SPREAD_SLOT]);
}

/// The id of the XDP program `ip link show` reports on an interface.
fn prog_id(link: &str) -> Option<&str> {
    link.split_whitespace().skip_while(|w| *w != "id").nth(1)
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agent"]
fn drain_undrain_and_weight_through_the_cli() {
    let farm = agent_farm(&[1, 1, 1]);
    farm.wait_converged(&[1, 2, 3]).unwrap();
    let n2 = &farm.nodes[1];
    let config = n2.config.to_str().unwrap();
    let said = farm.farm(n2, &["drain", "--config", config]).unwrap();
    assert!(said.contains("node 2 drained"), "{said}");
    let drained = wait_for(Duration::from_secs(20), || {
        farm.wait_converged(&[1, 2, 3]).ok()?;
        let s = shares(&same_rows(&farm, &[0, 1, 2]).ok()?, SPREAD_SLOT);
        (!s.contains_key(&2)).then_some(s)
    });
    let s = drained.unwrap_or_else(|| panic!("node 2 kept buckets after drain\n{}", farm.report()));
    assert!(s[&1].abs_diff(2048) <= 1 && s[&3].abs_diff(2048) <= 1, "{s:?}");
    assert_eq!(farm.status(1).unwrap()["agent"]["drained"], true);

    farm.farm(n2, &["undrain", "--config", config]).unwrap();
    farm.farm(n2, &["weight", "2", "--config", config]).unwrap();
    let reweighed = wait_for(Duration::from_secs(20), || {
        farm.wait_converged(&[1, 2, 3]).ok()?;
        let s = shares(&same_rows(&farm, &[0, 1, 2]).ok()?, SPREAD_SLOT);
        (s.get(&2).is_some_and(|&c| c.abs_diff(2048) <= 1)).then_some(s)
    });
    assert!(reweighed.is_some(), "node 2 undrained with weight 2\n{}", farm.report());
    let rows = agreed_rows(&farm, &[0, 1, 2]);
    check_answers(&farm, &rows[SPREAD_SLOT]);
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agent"]
fn a_node_whose_link_drops_fences_then_rejoins() {
    let farm = agent_farm(&[1, 1, 1]);
    let epoch = farm.wait_converged(&[1, 2, 3]).unwrap();
    let before = agreed_rows(&farm, &[0, 1, 2]);
    // The cable is pulled; the agent lives on, alone on its side.
    farm.link(2, false).unwrap();
    farm.wait_converged(&[1, 2]).unwrap();
    // It does not settle alone: for 800 ms, long past its failure time, it owns nothing.
    let owned = wait_for(Duration::from_millis(800), || {
        let dp = farm.dataplane(&farm.nodes[2]).unwrap();
        let mine = (0..SLOTS).flat_map(|s| dp.row(s).unwrap()).filter(|&o| o == 3).count();
        (mine > 0).then_some(mine)
    });
    assert_eq!(owned, None, "node 3 owns buckets with its link down\n{}", farm.report());
    assert!(log_of(&farm, 2).contains("is down"), "{}", log_of(&farm, 2));
    // Back: a new incarnation, the same table as before.
    farm.link(2, true).unwrap();
    let after = farm.wait_converged(&[1, 2, 3]).unwrap();
    assert!(after > epoch);
    assert!(log_of(&farm, 2).contains("rejoining the farm as incarnation"));
    let rows = agreed_rows(&farm, &[0, 1, 2]);
    assert_eq!(rows, before, "the same members give the same table");
    check_answers(&farm, &rows[SPREAD_SLOT]);
}

/// A node whose heartbeats to its peers are lost (a quarter of them, at random, by an
/// nftables rule in its namespace) is acknowledged late: a peer's heartbeat then
/// acknowledges one sent before a lost one. It asks that peer for a fresh
/// acknowledgement (`heartbeats.asked` in its status); the peers take the asks as
/// heartbeats (none counted malformed), and the farm agrees again once the loss ends.
#[test]
#[ignore = "needs root: network namespaces, nftables, XDP and farm agent"]
fn a_node_whose_heartbeats_are_lost_asks_for_fresh_acknowledgements() {
    let farm = agent_farm(&[1, 1, 1]);
    farm.wait_converged(&[1, 2, 3]).unwrap();
    let heartbeats = |i: usize| farm.status(i).ok().map(|s| s["agent"]["heartbeats"].clone());
    let count = |i: usize, what: &str| heartbeats(i).and_then(|h| h[what].as_u64());
    let before = count(0, "asked").expect("node 1's status counts asks");
    {
        let _loss = farm_tests::chaos::loss::Loss::new(&farm, 0, 25).unwrap();
        let asked =
            wait_for(Duration::from_secs(30), || count(0, "asked").filter(|&n| n >= before + 3));
        assert!(asked.is_some(), "node 1 asked no peer again: {:?}", heartbeats(0));
    }
    for i in 1..3 {
        let h = heartbeats(i).expect("a peer's status");
        assert_eq!(h["malformed"], 0, "node {} took an ask as malformed: {h}", i + 1);
    }
    farm.wait_converged(&[1, 2, 3]).unwrap();
}
