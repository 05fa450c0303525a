//! A reload, from the moment one node takes the new file until every node holds it: what
//! that node's data plane may keep meanwhile. Nodes reload one after another, so for a
//! while some hash clients under the old file and some under the new; whatever the new
//! file moves must have no owner on the reloaded nodes until the farm agrees on the new
//! file and installs its table in the two phases. Pure.
//!
//! - Rows: each VIP's and service's rows follow it to its new slot; a slot whose table
//!   the new file changes (other weights, another seed) keeps only the buckets the new
//!   table leaves with their owner once that table is computed, and none before.
//! - Ports: a (VIP, protocol, port) whose service or affinity the new file changes is
//!   pointed at the limbo slot, which no node owns. Otherwise a node that reloaded would
//!   take the port through its new service's table while one that has not took it
//!   through the old one, two tables that give its clients to different nodes. "The
//!   old one" is any file a peer may still serve with: that of this node's last
//!   install, and any it reloaded since (a peer may have installed one of those while
//!   this node was still releasing).
//! - Seed: another seed hashes every client into another bucket, so nothing is kept.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use farm_common::{LIMBO_SLOT, MODE_CLIENT_IP, port_rule};

use super::{
    membership::View,
    tables::{self, Rows},
};
use crate::{
    config::{Affinity, Config, Protocol},
    rules::{self, PortRule, Rules},
};

/// Where a claimed port goes: its service's name and affinity.
type Route = (String, Affinity);
type PortKey = (IpAddr, Protocol, u16);

fn routes(cfg: &Config) -> BTreeMap<PortKey, Route> {
    let mut routes = BTreeMap::new();
    for svc in &cfg.services {
        for range in &svc.ports {
            for port in range.first..=range.last {
                let route = (svc.name.clone(), svc.affinity);
                routes.insert((svc.vip, svc.protocol, port), route);
            }
        }
    }
    routes
}

/// `new`'s rules with every port whose route under any of `served` differs from its
/// route under `new` held in the limbo slot, and how many ports that is.
pub fn transition_rules(served: &[std::sync::Arc<Config>], new: &Config) -> (Rules, usize) {
    let after = routes(new);
    let mut changed = BTreeSet::new();
    for before in served.iter().map(|old| routes(old)) {
        let keys: BTreeSet<&PortKey> = before.keys().chain(after.keys()).collect();
        changed.extend(keys.into_iter().filter(|k| before.get(*k) != after.get(*k)).copied());
    }
    let mut rules = rules::rules(new);
    let vip_index = |addr: IpAddr| new.vips.iter().position(|v| v.address == addr);
    let proto = |udp: bool| if udp { Protocol::Udp } else { Protocol::Tcp };
    rules
        .ports
        .retain(|p| !changed.contains(&(new.vips[p.vip as usize].address, proto(p.udp), p.port)));
    // A port of a VIP the new file drops is no VIP's any more: nothing to hold.
    let held: Vec<PortRule> = changed
        .iter()
        .filter_map(|&(addr, protocol, port)| {
            Some(PortRule {
                vip: vip_index(addr)? as u32,
                udp: protocol == Protocol::Udp,
                port,
                rule: port_rule(LIMBO_SLOT as u16, MODE_CLIENT_IP),
            })
        })
        .collect();
    let count = held.len();
    rules.ports.extend(held);
    (rules, count)
}

/// What this node keeps of `rows` (laid out for `old`) on taking `new`, before the new
/// table of `view` is known: the rows of VIPs and services the new file leaves alone.
pub fn kept(old: &Config, rows: &Rows, new: &Config, view: &View) -> Rows {
    let held = tables::remap(old, rows, new);
    let unchanged = tables::unchanged(old, new, view);
    let buckets = new.cluster.buckets as usize;
    held.into_iter()
        .zip(unchanged)
        .map(|(row, same)| if same { row } else { vec![farm_common::NO_OWNER; buckets] })
        .collect()
}

/// `rows` (laid out for `old`) moved to `new`'s slots, for releasing against `new`'s
/// table once known; nothing at all where the seed changed.
pub fn remapped(old: &Config, rows: &Rows, new: &Config) -> Rows {
    match old.cluster.seed == new.cluster.seed {
        true => tables::remap(old, rows, new),
        false => tables::empty(rules::rules(new).slots.len(), new.cluster.buckets),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::parse;

    fn config(services: &str) -> Config {
        let text = format!(
            "cluster:\n  name: t\n  node_id: 1\n  interface: eth0\n  peers:\n    - {{id: 1, address: \"198.18.0.1:7400\"}}\n    - {{id: 2, address: \"198.18.0.2:7400\"}}\nvips:\n  - address: 198.18.0.100\nservices:\n{services}"
        );
        parse(&text, "t.yaml").unwrap()
    }

    fn limbo_ports(rules: &Rules) -> Vec<u16> {
        let limbo = port_rule(LIMBO_SLOT as u16, MODE_CLIENT_IP);
        let mut ports: Vec<u16> =
            rules.ports.iter().filter(|p| p.rule == limbo).map(|p| p.port).collect();
        ports.sort();
        ports
    }

    #[test]
    fn ports_that_change_service_or_affinity_are_held() {
        let old = config(
            "  - {name: web, vip: 198.18.0.100, protocol: tcp, ports: [80, 8080]}\n  - {name: dns, vip: 198.18.0.100, protocol: udp, ports: [53]}\n",
        );
        let new = config(
            "  - {name: web, vip: 198.18.0.100, protocol: tcp, ports: [80]}\n  - {name: alt, vip: 198.18.0.100, protocol: tcp, ports: [8080, 8081]}\n  - {name: dns, vip: 198.18.0.100, protocol: udp, ports: [53], affinity: client-ip-port}\n",
        );
        let (old, new) = (Arc::new(old), Arc::new(new));
        let (rules, held) = transition_rules(std::slice::from_ref(&old), &new);
        // 8080 moves to alt, 8081 leaves the VIP's default, 53 changes affinity.
        assert_eq!((limbo_ports(&rules), held), (vec![53, 8080, 8081], 3));
        assert!(rules.ports.iter().any(|p| p.port == 80 && p.rule != 0));
        // And back: 8081 goes back to the VIP's default, which the limbo holds too.
        let (rules, held) = transition_rules(std::slice::from_ref(&new), &old);
        assert_eq!((limbo_ports(&rules), held), (vec![53, 8080, 8081], 3));
        let (rules, held) = transition_rules(std::slice::from_ref(&old), &old);
        assert_eq!((rules, held), (rules::rules(&old), 0));
        // Back to the old file while a peer may serve the new one: held all the same.
        let (rules, held) = transition_rules(&[old.clone(), new.clone()], &old);
        assert_eq!((limbo_ports(&rules), held), (vec![53, 8080, 8081], 3));
    }

    #[test]
    fn a_new_seed_keeps_nothing_and_reweighed_slots_wait_for_their_table() {
        let svc = "  - {name: web, vip: 198.18.0.100, protocol: tcp, ports: [80]}\n";
        let old = config(svc);
        let view = tables::everyone(&old);
        let rows = tables::rows(&old, &view);
        let reweighed = config(&svc.replace("[80]}", "[80], weights: {2: 3}}"));
        let kept = kept(&old, &rows, &reweighed, &view);
        assert_eq!(kept[0], rows[0], "the VIP's own row is the same table");
        assert!(kept[1].iter().all(|&o| o == farm_common::NO_OWNER), "web is reweighed");
        let mut reseeded = old.clone();
        reseeded.cluster.seed = 7;
        assert!(
            remapped(&old, &rows, &reseeded).iter().flatten().all(|&o| o == farm_common::NO_OWNER)
        );
        assert_eq!(remapped(&old, &rows, &reweighed), rows);
    }
}
