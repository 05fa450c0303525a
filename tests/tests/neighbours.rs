//! How clients find the VIPs' MAC, in namespace farms: during a failover, every live node
//! answers their ARP requests, so a client whose bucket the failed node still owns is
//! answered at once; after a takeover, `farm_userspace::announce` replaces a client's
//! stale neighbour entry with the cluster MAC, as the agents do after a takeover.
use std::{net::SocketAddr, time::Duration};

use farm_common::{bucket_of, flow_hash};
use farm_tests::{
    agents::SETTLE,
    farm::{NsFarm, Ownership, SPREAD_PORT, VIP, VIP6},
    netns::{in_ns, ip, wait_for},
    traffic::ask_tcp_from,
};
use farm_userspace::{announce::announce, nic, rules::addr_key};

const BUCKETS: u32 = 4096;
/// The IPv4 VIP's own slot, whose table says which node used to answer a client's ARP.
const VIP_SLOT: usize = 0;

/// The cluster MAC of the farm's file, as `ip neigh` prints it.
fn cluster_mac(farm: &NsFarm) -> ([u8; 6], String) {
    let mac = farm_userspace::config::load(&farm.nodes[0].config).unwrap().cluster.cluster_mac;
    (mac, nic::format_mac(&mac))
}

/// `ip neigh show ADDR` on the client's NIC.
fn neighbour(farm: &NsFarm, addr: &str) -> String {
    let (ns, iface) = (&farm.client.ns.name, &farm.client.iface);
    ip(&["-n", ns, "neigh", "show", addr, "dev", iface]).unwrap()
}

/// Gives the client a stale entry for each VIP at a MAC that is not the cluster's (stale,
/// not permanent: the kernel never updates a permanent entry); the VIPs as text.
fn stale_entries(farm: &NsFarm) -> [String; 2] {
    let (ns, iface) = (&farm.client.ns.name, &farm.client.iface);
    let vips = [VIP.to_string(), VIP6.to_string()];
    for vip in &vips {
        ip(&["-n", ns, "neigh", "replace", vip, "lladdr", WRONG, "dev", iface, "nud", "stale"])
            .unwrap();
        assert!(neighbour(farm, vip).contains(WRONG), "{}", neighbour(farm, vip));
    }
    vips
}

/// Until the client's entries for `vips` are at the cluster MAC; fails saying `after` what.
fn wait_replaced(farm: &NsFarm, vips: &[String], after: &str) {
    let (_, mac) = cluster_mac(farm);
    for vip in vips {
        let replaced = wait_for(SETTLE, || neighbour(farm, vip).contains(&mac).then_some(()));
        assert!(
            replaced.is_some(),
            "{vip} still at {:?} after {after}\n{}",
            neighbour(farm, vip),
            farm.report()
        );
    }
}

/// A MAC no node has.
const WRONG: &str = "02:00:00:00:00:99";

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agent"]
fn a_client_resolving_the_vip_during_a_failover_is_answered_by_the_survivors() {
    let mut farm = NsFarm::new(3, 12, BUCKETS, Ownership::Agents { weights: vec![1, 1, 1] })
        .expect("build the namespace farm");
    farm.start_agents().unwrap();
    farm.wait_converged(&[1, 2, 3]).unwrap();
    let dp = farm.dataplane(&farm.nodes[0]).unwrap();
    let (vip_row, spread_row) = (dp.row(VIP_SLOT).unwrap(), dp.row(farm.slot("spread")).unwrap());
    // A client address whose ARP requests node 3 alone used to answer (it owns the
    // address's bucket in the VIP's table), connecting from a port whose connections
    // node 1 serves, before the failure and after.
    let owns_arp = |p: &SocketAddr| {
        vip_row[bucket_of(flow_hash(&addr_key(p.ip()), 0, farm.seed), BUCKETS) as usize] == 3
    };
    let probe = *farm
        .probes_owned_by(&spread_row, 1, 200)
        .iter()
        .find(|p| owns_arp(p))
        .expect("a client address whose ARP node 3 answered");
    // The client asks once and never again: one broadcast request, no retry, so the
    // connection succeeds only if that one request is answered.
    let iface = farm.client.iface.clone();
    for (key, value) in [("mcast_solicit", "1"), ("ucast_solicit", "0"), ("app_solicit", "0")] {
        farm.client.ns.sysctl(&format!("net.ipv4.neigh.{iface}.{key}"), value).unwrap();
    }

    // Node 3 fails (its cable pulled, its agent killed); the client forgets the VIP's MAC
    // at once, before the survivors can have taken node 3's buckets.
    farm.link(2, false).unwrap();
    farm.kill_agent(2).unwrap();
    ip(&["-n", &farm.client.ns.name, "neigh", "flush", "dev", &iface]).unwrap();
    let vip = SocketAddr::new(VIP.into(), SPREAD_PORT);
    let answer = in_ns(&farm.client.ns.name, move || {
        // Generous: the farm may still be moving buckets, and a dropped SYN is resent.
        ask_tcp_from(probe, vip, Duration::from_secs(5))
    })
    .unwrap();
    assert!(
        matches!(answer.as_deref(), Some("n1" | "n2")),
        "{probe}: the one ARP request was not answered (got {answer:?})\n{}",
        farm.report()
    );
    let (_, mac) = cluster_mac(&farm);
    let entry = neighbour(&farm, &VIP.to_string());
    assert!(entry.contains(&mac), "the VIP resolved to {entry:?}, want {mac}");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn announcements_replace_a_clients_stale_entry_with_the_cluster_mac() {
    let farm = NsFarm::new(1, 1, 64, Ownership::StaticThirds).expect("build the namespace farm");
    let (mac, _) = cluster_mac(&farm);
    let vips = stale_entries(&farm);
    let node = &farm.nodes[0];
    let node_iface = node.host.iface.clone();
    in_ns(&node.host.ns.name, move || {
        let own = nic::mac(&node_iface).unwrap();
        announce(&node_iface, own, mac, &[VIP.into(), VIP6.into()]).unwrap();
    })
    .unwrap();
    wait_replaced(&farm, &vips, "the announcement");
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agent"]
fn agents_announce_the_vips_after_a_takeover() {
    let mut farm = NsFarm::new(3, 1, BUCKETS, Ownership::Agents { weights: vec![1, 1, 1] })
        .expect("build the namespace farm");
    farm.start_agents().unwrap();
    farm.wait_converged(&[1, 2, 3]).unwrap();
    // A client that cached another MAC for the VIPs keeps it until it sends there and its
    // probes fail, unless told.
    let vips = stale_entries(&farm);
    farm.kill_agent(2).unwrap();
    farm.wait_converged(&[1, 2]).unwrap();
    wait_replaced(&farm, &vips, "the takeover");
    let log = farm.report();
    assert!(log.contains("announcing the VIPs"), "{log}");
}
