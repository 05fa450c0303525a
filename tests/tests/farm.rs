//! The data plane across a real network: three node namespaces and a client namespace on
//! one bridge, the program loaded on every node by `farm load` with a static table giving
//! each node a third of the buckets, and a TCP server on every node answering with its
//! name. Every connection must be answered by exactly one node, the one the table names.
use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use farm_common::{bucket_of, flow_hash};
use farm_tests::{
    farm::{NsFarm, Ownership, SPREAD_PORT, STICKY_PORT, SentCounter, VIP},
    netns::{in_ns, ip, wait_for},
    traffic::ask_tcp,
};
use farm_userspace::rules::addr_key;

const CLIENTS: usize = 20;
const CONNECTIONS: usize = 320;

#[test]
#[ignore = "needs root: network namespaces and XDP"]
fn every_connection_is_answered_by_exactly_the_owner() {
    let farm =
        NsFarm::new(3, CLIENTS, 4096, Ownership::StaticThirds).expect("build the namespace farm");
    farm.load_all().expect("farm load on every node");
    let sent = SentCounter::install(&farm.client).expect("nft counter in the client namespace");

    let clients = farm.clients.clone();
    let answers = in_ns(&farm.client.ns.name, move || {
        (0..CONNECTIONS)
            .map(|i| {
                let port = if i % 4 == 3 { STICKY_PORT } else { SPREAD_PORT };
                (port, ask_tcp(clients[i % clients.len()], SocketAddr::new(VIP.into(), port)))
            })
            .collect::<Vec<_>>()
    })
    .unwrap();

    // Who should have answered: the owner of the client's bucket in the static thirds.
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for (port, a) in &answers {
        let reply = a
            .reply
            .as_ref()
            .unwrap_or_else(|e| panic!("{} to port {port}: no answer: {e}", a.from));
        let node =
            farm.node_named(reply).unwrap_or_else(|| panic!("{}: unknown reply {reply:?}", a.from));
        let hashed_port = if *port == SPREAD_PORT { a.from.port() } else { 0 };
        let bucket =
            bucket_of(flow_hash(&addr_key(a.from.ip()), hashed_port, farm.seed), farm.buckets);
        assert_eq!(
            node.id,
            farm.static_owner(bucket),
            "{} -> port {port}: bucket {bucket} answered by {}",
            a.from,
            node.name
        );
        *per_node.entry(node.name.clone()).or_default() += 1;
    }
    eprintln!("{CONNECTIONS} connections from {CLIENTS} client addresses answered: {per_node:?}");
    assert_eq!(per_node.len(), 3, "every node answered some clients");

    // Every packet the client sent to the VIP was accepted by exactly one node and
    // dropped by the two others; every ARP request for the VIP was answered by all three
    // (the same answer). Wait for the last FIN/ACKs to settle first.
    let settled = wait_for(Duration::from_secs(10), || {
        let sent = sent.packets().ok()?;
        let counters: Vec<_> =
            farm.nodes.iter().map(|n| farm.counters(n, 3).ok()).collect::<Option<_>>()?;
        let accepted: u64 = counters.iter().map(|c| c.accepted).sum();
        let dropped: u64 = counters.iter().map(|c| c.not_owner).sum();
        let arp: u64 = counters.iter().map(|c| c.arp_replies).sum();
        (accepted == sent && dropped == 2 * sent && arp.is_multiple_of(3))
            .then_some((sent, accepted, dropped))
    });
    let (sent_n, accepted, dropped) = settled.unwrap_or_else(|| {
        let c: Vec<_> = farm.nodes.iter().map(|n| farm.counters(n, 3).unwrap()).collect();
        panic!("client sent {:?} packets; node counters {c:?}", sent.packets())
    });
    eprintln!(
        "client sent {sent_n} packets to the VIP: {accepted} accepted (once each), {dropped} dropped as not-owner"
    );

    // The client's neighbour entry for the VIP is the cluster MAC, answered by the program.
    let neigh = ip(&["-n", &farm.client.ns.name, "neigh", "show", &VIP.to_string()]).unwrap();
    let cfg = farm_userspace::config::load(&farm.nodes[0].config).unwrap();
    let cluster_mac = farm_userspace::nic::format_mac(&cfg.cluster.cluster_mac);
    assert!(
        neigh.contains(&cluster_mac),
        "ARP for the VIP resolved to {neigh:?}, want {cluster_mac}"
    );
    let replies: u64 = farm.nodes.iter().map(|n| farm.counters(n, 3).unwrap().arp_replies).sum();
    assert!(replies >= 1, "the ARP reply came from the XDP program");

    for n in &farm.nodes {
        farm.farm(n, &["unload", "--iface", &n.host.iface, "--config", n.config.to_str().unwrap()])
            .unwrap();
        assert!(
            !farm_userspace::loader::pin_dir(&n.host.iface).exists(),
            "unload removes the pins"
        );
    }
}
