//! What the agent shows of itself over HTTP, taken by its loop when a scrape or a page
//! asks: the core's status, the rows the data plane holds (shared, not copied), the data
//! plane's counters and lease, and the newest events. Taking one costs a few map reads;
//! turning it into metrics or a page, which at 65,536 buckets and dozens of slots takes
//! milliseconds, happens off the loop.
use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Result;
use farm_common::{Counters, GLOBAL_SLOT, LIMBO_SLOT};

use super::{control::AgentStatus, events::Entry, tables::Rows};
use crate::{
    config::Config,
    dataplane::Dataplane,
    rules::{self, SlotUse},
};

/// Events a page shows.
pub const PAGE_EVENTS: usize = 20;

pub struct Snapshot {
    pub status: AgentStatus,
    pub config: Config,
    /// What each table slot serves, slot `i` at index `i`.
    pub slots: Vec<SlotUse>,
    /// The table the data plane holds, one row per slot.
    pub rows: Arc<Rows>,
    /// The data plane's counters, summed over CPUs: each table slot's, then the limbo
    /// slot's (ports a reload holds), then those of frames for no VIP.
    pub counters: Vec<Counted>,
    /// Time left on the lease; zero once it ended.
    pub lease_left: Duration,
    /// The newest events, newest first.
    pub events: Vec<Entry>,
    pub taken: Instant,
}

/// One counter record, and what it counts: the labels the metrics give it.
pub struct Counted {
    /// The VIP, or none for the limbo slot and frames for no VIP.
    pub vip: Option<IpAddr>,
    /// The service; `HELD` for the limbo slot; none for a VIP's own traffic and frames
    /// for no VIP.
    pub service: Option<String>,
    pub counts: [u64; Counters::LEN],
}

/// How the limbo slot's record is named: ports a reload holds with no owner.
pub const HELD: &str = "(held by a reload)";

impl Snapshot {
    pub fn take(
        status: AgentStatus,
        config: &Config,
        rows: Arc<Rows>,
        dp: &Dataplane,
        events: Vec<Entry>,
    ) -> Result<Snapshot> {
        let slots = rules::slots(config);
        let mut counters = Vec::with_capacity(slots.len() + 2);
        for (slot, serves) in slots.iter().enumerate() {
            let (vip, service) = named(config, serves);
            let (vip, service) = (Some(vip), service.map(str::to_string));
            counters.push(Counted { vip, service, counts: dp.counters(slot as u32)?.values() });
        }
        let held = dp.counters(LIMBO_SLOT)?.values();
        counters.push(Counted { vip: None, service: Some(HELD.into()), counts: held });
        let other = dp.counters(GLOBAL_SLOT)?.values();
        counters.push(Counted { vip: None, service: None, counts: other });
        // The agent always sets a lease that ends: `None` (never) is `farm load`'s.
        let lease_left = dp.lease()?.unwrap_or(Duration::MAX);
        let config = config.clone();
        let taken = Instant::now();
        Ok(Snapshot { status, config, slots, rows, counters, lease_left, events, taken })
    }

    /// Slot `slot`'s VIP, and its service (none for the VIP's own slot).
    pub fn slot_name(&self, slot: usize) -> (IpAddr, Option<&str>) {
        named(&self.config, &self.slots[slot])
    }
}

fn named<'a>(config: &'a Config, serves: &SlotUse) -> (IpAddr, Option<&'a str>) {
    match serves {
        SlotUse::Vip(addr) => (*addr, None),
        SlotUse::Service(i) => {
            let svc = &config.services[*i];
            (svc.vip, Some(svc.name.as_str()))
        }
    }
}

/// A snapshot of node 1 of three, after node 3 failed: the page's and the metrics'
/// tests render it.
#[cfg(test)]
pub(super) fn example() -> Snapshot {
    use super::{
        core::{Core, Identity},
        membership::{PeerState, View},
        tables,
    };
    let text = "cluster:\n  name: demo\n  node_id: 1\n  interface: eth0\n  buckets: 64\n  peers:\n    - {id: 1, address: \"198.18.0.11:7400\"}\n    - {id: 2, address: \"198.18.0.12:7400\"}\n    - {id: 3, address: \"198.18.0.13:7400\"}\nvips:\n  - address: 198.18.0.100\nservices:\n  - {name: web, vip: 198.18.0.100, protocol: tcp, ports: [80], weights: {1: 3}}\n  - {name: dns, vip: 198.18.0.100, protocol: udp, ports: [53]}\n";
    let config = crate::config::parse(text, "demo.yaml").expect("a valid file");
    let id = Identity { path: "/etc/farm/farm.yaml".into(), pid: 4242 };
    let now = Instant::now();
    let (core, _) = Core::start(config.clone(), vec![7; 32], id, now, 1_700_000_000_000_000);
    let mut status = core.status(now);
    let everyone = tables::everyone(&config);
    let view = View { members: everyone.members[..2].to_vec(), config: everyone.config };
    status.members = view.ids();
    status.epoch = 7;
    status.converged = true;
    status.phase = super::wire::Phase::Installed;
    status.heartbeats.sent = 120;
    status.heartbeats.accepted = 100;
    status.heartbeats.forged = 2;
    for (peer, (state, age)) in
        status.peers.iter_mut().zip([(PeerState::Alive, 40), (PeerState::Failed, 912)])
    {
        (peer.state, peer.heartbeat_age_ms, peer.epoch) = (state, Some(age), Some(6));
    }
    let rows = Arc::new(tables::rows(&config, &view));
    status.view = view;
    let counted = |vip: Option<&str>, service: Option<&str>, counts| Counted {
        vip: vip.map(|v| v.parse().expect("an address")),
        service: service.map(str::to_string),
        counts,
    };
    let counters = vec![
        counted(Some("198.18.0.100"), None, [3, 6, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]),
        counted(Some("198.18.0.100"), Some("web"), [40, 80, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        counted(Some("198.18.0.100"), Some("dns"), [10, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        counted(None, Some(HELD), [0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        counted(None, None, [0, 0, 0, 0, 0, 0, 1, 900, 0, 0, 0, 0]),
    ];
    let entry = |seq, level: &str, kind: &str, message: &str| Entry {
        seq,
        time: "2026-11-28T10:34:20.123Z".into(),
        level: level.into(),
        kind: kind.into(),
        message: message.into(),
    };
    let events = vec![
        entry(
            2,
            "info",
            "installed",
            "installed epoch 7: members [1, 2], 22 buckets moved, this node owns 48 of 192",
        ),
        entry(1, "warn", "peer-failed", "node 3 failed: no heartbeat for 312 ms <script>"),
    ];
    Snapshot {
        status,
        slots: rules::slots(&config),
        config,
        rows,
        counters,
        lease_left: Duration::from_millis(187),
        events,
        taken: now,
    }
}
