//! The slots of the owner table and counters, named as the user knows them: a VIP by its
//! address, a service by its name, in the order `rules::slots` gives them.
use std::{net::IpAddr, path::Path};

use anyhow::{Result, bail};
use farm_common::GLOBAL_SLOT;
use farm_userspace::{
    agent::{membership::View, tables},
    assign::Member,
    config::{Affinity, Config},
    rules::{self, SlotUse},
};
use serde::Serialize;

/// What a slot counts or owns: the three fields every JSON row starts with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotId {
    pub slot: u32,
    pub kind: Kind,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Vip,
    Service,
    /// The counters of traffic for no VIP; it has no table row.
    Global,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Vip => "vip",
            Kind::Service => "service",
            Kind::Global => "global",
        }
    }
}

/// A table slot and what hashing into it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub id: SlotId,
    /// Whether the client's source port is hashed (`client-ip-port` services). A VIP's
    /// own slot hashes the address alone: its default rule is client-ip, and fragments
    /// and ICMP carry no port to hash.
    pub hashes_port: bool,
    /// Every member with its weight here (see `agent::tables::members`): the agent's
    /// view when it answers, else every peer at the file's weights.
    pub members: Vec<Member>,
}

/// Every table slot of `cfg` with every peer alive at the file's weights, slot `i` at
/// index `i`.
pub fn table_slots(cfg: &Config) -> Vec<Slot> {
    slots_of(cfg, &tables::everyone(cfg))
}

/// Every table slot of `cfg` with the members of `view` at their weights there.
pub fn slots_of(cfg: &Config, view: &View) -> Vec<Slot> {
    rules::slots(cfg)
        .iter()
        .zip(tables::members(cfg, view))
        .enumerate()
        .map(|(i, (serves, members))| slot(cfg, i as u32, serves, members))
        .collect()
}

fn slot(cfg: &Config, index: u32, serves: &SlotUse, members: Vec<Member>) -> Slot {
    let (kind, name, hashes_port) = match serves {
        SlotUse::Vip(addr) => (Kind::Vip, addr.to_string(), false),
        SlotUse::Service(i) => {
            let svc = &cfg.services[*i];
            (Kind::Service, svc.name.clone(), svc.affinity == Affinity::ClientIpPort)
        }
    };
    Slot { id: SlotId { slot: index, kind, name }, hashes_port, members }
}

/// The counter record of traffic for no VIP.
pub fn global() -> SlotId {
    SlotId { slot: GLOBAL_SLOT, kind: Kind::Global, name: "(not a VIP)".into() }
}

/// The slot of `slots` that `name` designates: a service by name, or a VIP (by address)
/// for its own slot.
pub fn find(slots: &[Slot], file: &Path, name: &str) -> Result<Slot> {
    let by_name = slots.iter().find(|s| s.id.kind == Kind::Service && s.id.name == name);
    let by_vip = || {
        let addr: IpAddr = name.parse().ok()?;
        slots.iter().find(|s| s.id.kind == Kind::Vip && s.id.name == addr.to_string())
    };
    if let Some(s) = by_name.or_else(by_vip) {
        return Ok(s.clone());
    }
    let names = |kind| {
        slots
            .iter()
            .filter(|s| s.id.kind == kind)
            .map(|s| s.id.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    bail!(
        "{}: no service named {name:?}: pick one of {} (or a VIP address for the VIP's own slot: {})",
        file.display(),
        names(Kind::Service),
        names(Kind::Vip)
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Two peers (weights 2 and 1), two VIPs, one service over 12 buckets.
    pub(crate) fn config() -> Config {
        let text = "cluster:\n  name: t\n  node_id: 1\n  interface: eth0\n  buckets: 12\n  seed: 7\n  peers:\n    - id: 1\n      address: \"198.18.0.11:7400\"\n      weight: 2\n    - id: 2\n      address: \"198.18.0.12:7400\"\nvips:\n  - address: 198.18.0.100\n  - address: 2001:db8::100\nservices:\n  - name: web\n    vip: 198.18.0.100\n    protocol: tcp\n    ports: [80]\n    affinity: client-ip-port\n    weights: {2: 3}\n";
        farm_userspace::config::parse(text, "t.yaml").unwrap()
    }

    #[test]
    fn vips_come_first_then_services_with_their_weights() {
        let slots = table_slots(&config());
        let names: Vec<_> = slots
            .iter()
            .map(|s| (s.id.slot, s.id.kind, s.id.name.as_str(), s.hashes_port))
            .collect();
        assert_eq!(
            names,
            [
                (0, Kind::Vip, "198.18.0.100", false),
                (1, Kind::Vip, "2001:db8::100", false),
                (2, Kind::Service, "web", true)
            ]
        );
        let weights = |s: &Slot| s.members.iter().map(|m| (m.id, m.weight)).collect::<Vec<_>>();
        assert_eq!(weights(&slots[0]), [(1, 2), (2, 1)], "a VIP's slot takes the peer weights");
        assert_eq!(weights(&slots[2]), [(1, 2), (2, 3)], "a service's override wins");
    }

    #[test]
    fn find_takes_a_service_name_or_a_vip_address() {
        let slots = table_slots(&config());
        let file = Path::new("t.yaml");
        assert_eq!(find(&slots, file, "web").unwrap().id.slot, 2);
        assert_eq!(find(&slots, file, "2001:0db8::0100").unwrap().id.slot, 1);
        let err = find(&slots, file, "mail").unwrap_err().to_string();
        assert_eq!(
            err,
            "t.yaml: no service named \"mail\": pick one of web (or a VIP address for the VIP's own slot: 198.18.0.100, 2001:db8::100)"
        );
    }
}
