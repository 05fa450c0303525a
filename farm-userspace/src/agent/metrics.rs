//! The agent's Prometheus metrics (docs/metrics.md says what each means). Two kinds:
//! - what the agent counts as it goes, fed by the runtime with every note of the core
//!   and the moments it measures (`Metrics`): membership changes, failovers, leaves,
//!   installs and how long they took, fences, stalls, how late the loop ran;
//! - what a snapshot reads at each scrape: the data plane's packet counters per VIP and
//!   service, the heartbeat counters, the epoch, the members by state, the buckets this
//!   node owns against its quota, the lease left.
//!
//! Names follow Prometheus' conventions: the `farm_` prefix, base units, `_total` on
//! counters (prometheus-client adds it), and no label ever holds a client's address.
use std::time::{Duration, Instant};

use farm_common::{Counters, LAYOUT_VERSION};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, prometheus_text},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::ConstGauge,
        histogram::{Histogram, exponential_buckets},
        info::Info,
    },
    registry::{Registry, Unit},
};

use super::{
    membership::{Change, PeerState},
    note::Note,
    snapshot::Snapshot,
};
use crate::{assign::shares, config::Config};

pub use prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Peer {
    peer: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceName {
    service: String,
}

/// What the agent counts as it goes. Clones share the counts: the runtime feeds one,
/// the HTTP listener reads another.
#[derive(Clone, Debug)]
pub struct Instruments {
    view_changes: Counter,
    peer_joins: Family<Peer, Counter>,
    failovers: Family<Peer, Counter>,
    leaves: Family<Peer, Counter>,
    config_mismatches: Family<Peer, Counter>,
    buckets_moved: Counter,
    fences: Counter,
    stalls: Counter,
    link_downs: Counter,
    reloads: Family<Outcome, Counter>,
    service_withdrawals: Family<ServiceName, Counter>,
    service_returns: Family<ServiceName, Counter>,
    fail_opens: Family<ServiceName, Counter>,
    heals: Family<Peer, Counter>,
    double_owned: Counter,
    handovers: Counter,
    handover_timeouts: Counter,
    install_duration: Histogram,
    table_write: Histogram,
    loop_delay: Histogram,
}

/// Bounds from 0.5 ms to 8 s: a table written at 65,536 buckets takes about a
/// millisecond, an install after a failure a few, one held up by a slow peer seconds.
fn seconds_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// The instruments, and what the runtime must remember to measure an install.
pub struct Metrics {
    pub instruments: Instruments,
    /// When the view changed with no table installed since: an install is timed from
    /// there (from the agent's start for the first).
    unsettled_since: Option<Instant>,
}

impl Metrics {
    /// Every peer of `cfg` starts with its counters at 0, so that their series exist
    /// before the first failure.
    pub fn new(cfg: &Config, started: Instant) -> Metrics {
        let instruments = Instruments {
            view_changes: Counter::default(),
            peer_joins: Family::default(),
            failovers: Family::default(),
            leaves: Family::default(),
            config_mismatches: Family::default(),
            buckets_moved: Counter::default(),
            fences: Counter::default(),
            stalls: Counter::default(),
            link_downs: Counter::default(),
            reloads: Family::default(),
            service_withdrawals: Family::default(),
            service_returns: Family::default(),
            fail_opens: Family::default(),
            heals: Family::default(),
            double_owned: Counter::default(),
            handovers: Counter::default(),
            handover_timeouts: Counter::default(),
            install_duration: seconds_buckets(),
            table_write: seconds_buckets(),
            loop_delay: seconds_buckets(),
        };
        let me = cfg.cluster.node_id;
        for peer in cfg.cluster.peers.iter().filter(|p| p.id != me).map(|p| Peer { peer: p.id }) {
            let i = &instruments;
            for family in [&i.peer_joins, &i.failovers, &i.leaves, &i.config_mismatches, &i.heals] {
                family.get_or_create(&peer).inc_by(0);
            }
        }
        for outcome in ["accepted", "refused"] {
            instruments.reloads.get_or_create(&Outcome { outcome }).inc_by(0);
        }
        for service in cfg.services.iter().filter(|s| !s.health.is_empty()) {
            let name = ServiceName { service: service.name.clone() };
            let i = &instruments;
            for family in [&i.service_withdrawals, &i.service_returns, &i.fail_opens] {
                family.get_or_create(&name).inc_by(0);
            }
        }
        Metrics { instruments, unsettled_since: Some(started) }
    }

    /// Counts what `note` says happened, at `now`.
    pub fn note(&mut self, note: &Note, now: Instant) {
        let i = &self.instruments;
        let count = |family: &Family<Peer, Counter>, peer: u16| {
            family.get_or_create(&Peer { peer }).inc();
        };
        let reload = |outcome: &'static str| {
            i.reloads.get_or_create(&Outcome { outcome }).inc();
        };
        match note {
            Note::Membership(Change::ViewChanged { .. }) => {
                i.view_changes.inc();
                self.unsettled_since.get_or_insert(now);
            }
            Note::Membership(Change::PeerUp { id, .. }) => count(&i.peer_joins, *id),
            Note::Membership(Change::PeerFailed { id, .. }) => count(&i.failovers, *id),
            Note::Membership(Change::PeerLeft { id }) => count(&i.leaves, *id),
            Note::Membership(Change::ConfigDiffers { id }) => count(&i.config_mismatches, *id),
            Note::Installed { moved, .. } => {
                i.buckets_moved.inc_by(*moved as u64);
                if let Some(since) = self.unsettled_since.take() {
                    i.install_duration.observe(now.duration_since(since).as_secs_f64());
                }
            }
            Note::Fenced { .. } => {
                i.fences.inc();
            }
            Note::Stalled { .. } => {
                i.stalls.inc();
            }
            Note::LinkDown { .. } => {
                i.link_downs.inc();
            }
            Note::Reloaded { .. } => reload("accepted"),
            Note::ReloadRefused { .. } => reload("refused"),
            Note::ServiceDown { service, .. } => {
                i.service_withdrawals
                    .get_or_create(&ServiceName { service: service.clone() })
                    .inc();
            }
            Note::ServiceUp { service } => {
                i.service_returns.get_or_create(&ServiceName { service: service.clone() }).inc();
            }
            Note::FailOpen { service } => {
                i.fail_opens.get_or_create(&ServiceName { service: service.clone() }).inc();
            }
            Note::Healed(healed) => {
                count(&i.heals, healed.peer);
                i.double_owned.inc_by(u64::from(healed.double_owned));
            }
            // Counted where they are kept (the heartbeat counters), or no count at all.
            Note::Released { .. }
            | Note::NobodyOwns
            | Note::LinkUp { .. }
            | Note::Ignored { .. }
            | Note::Steered { .. }
            | Note::Announced { .. }
            | Note::TransitionDone { .. } => {}
            Note::HandingOver { .. } => {
                i.handovers.inc();
            }
            Note::HandoverEnded { buckets } => {
                i.handover_timeouts.inc_by(*buckets as u64);
            }
        }
    }

    /// The data plane took `took` to write a table.
    pub fn table_written(&self, took: Duration) {
        self.instruments.table_write.observe(took.as_secs_f64());
    }

    /// The loop stepped the core `late` after the moment it was due.
    pub fn loop_ran(&self, late: Duration) {
        self.instruments.loop_delay.observe(late.as_secs_f64());
    }
}

impl Instruments {
    fn register(&self, r: &mut Registry) {
        let s = self.clone();
        r.register(
            "view_changes",
            "Views (sets of live members, weights and file) this node moved to, each under a new epoch",
            s.view_changes,
        );
        r.register(
            "peer_joins",
            "Times a peer was heard alive: first heard, restarted as a new incarnation, or back after failing",
            s.peer_joins,
        );
        r.register(
            "failovers",
            "Times this node failed a peer that went silent for the failure time: the survivors take its buckets",
            s.failovers,
        );
        r.register(
            "leaves",
            "Times a peer said it was leaving (SIGTERM): the others take its buckets at once",
            s.leaves,
        );
        r.register(
            "config_mismatches",
            "Times a peer was heard with another configuration file: no table is installed until all agree",
            s.config_mismatches,
        );
        r.register(
            "buckets_moved",
            "Buckets whose owner the tables this node installed changed, over all VIPs and services",
            s.buckets_moved,
        );
        r.register(
            "fences",
            "Times this node dropped every bucket on its own (link down, lease run out, excluded by a peer, stall)",
            s.fences,
        );
        r.register(
            "stalls",
            "Times the agent did not run for longer than its lease, and rejoined as a new incarnation",
            s.stalls,
        );
        r.register(
            "link_downs",
            "Times the interface went down (the node owns nothing until it is back)",
            s.link_downs,
        );
        r.register(
            "reloads",
            "Configuration reloads (SIGHUP), by outcome: accepted, or refused with the running file kept",
            s.reloads,
        );
        r.register(
            "service_withdrawals",
            "Times this node left a service's table because its instance failed the service's health checks",
            s.service_withdrawals,
        );
        r.register(
            "service_returns",
            "Times this node came back into a service's table, its checks passing again (after any hold-down)",
            s.service_returns,
        );
        r.register(
            "fail_opens",
            "Installs at which every node able to serve a service failed its checks, so all kept serving it",
            s.fail_opens,
        );
        r.register(
            "heals",
            "Splits healed with each peer: both had failed each other, and a view with both was installed",
            s.heals,
        );
        r.register(
            "double_owned_buckets",
            "Buckets that this node and a peer it was apart from may both have owned, as each healed split tells (0 with quorum: majority)",
            s.double_owned,
        );
        r.register(
            "handovers",
            "Moves of buckets between live nodes that kept their flows on the old owner (this node giving or taking)",
            s.handovers,
        );
        r.register(
            "handover_timeouts",
            "Buckets whose handover reached cluster.handover_timeout_ms: flows the old owner still kept on them ended",
            s.handover_timeouts,
        );
        r.register_with_unit(
            "install_duration",
            "From a change of this node's view (or its start) to the install of the table the farm agreed on",
            Unit::Seconds,
            s.install_duration,
        );
        r.register_with_unit(
            "table_write_duration",
            "Time to write an owner table into the data plane",
            Unit::Seconds,
            s.table_write,
        );
        r.register_with_unit(
            "loop_delay",
            "How late the agent's loop stepped its core after the moment it was due (a heartbeat to send, a peer to fail): past the lease, the node rejoins",
            Unit::Seconds,
            s.loop_delay,
        );
    }
}

/// The exposition of a scrape: the instruments, and what `snap` read.
pub fn exposition(instruments: &Instruments, snap: &Snapshot) -> String {
    let mut r = Registry::with_prefix("farm");
    instruments.register(&mut r);
    register_snapshot(&mut r, snap);
    let mut text = String::new();
    prometheus_text::encode(&mut text, &r).expect("writing to a String");
    text
}

/// The labels of one series, in the order they are written.
type Labels = Vec<(&'static str, String)>;

/// A metric read from a snapshot, its series in the order given (slot order, outcome
/// order), where a `Family` writes them in the order of its hash map.
#[derive(Debug)]
struct Series<M> {
    name: &'static str,
    help: String,
    unit: Option<Unit>,
    series: Vec<(Labels, M)>,
}

impl<M: EncodeMetric + std::fmt::Debug + Send + Sync + 'static> Collector for Series<M> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let Some((_, first)) = self.series.first() else { return Ok(()) };
        let kind = first.metric_type();
        let mut metric =
            encoder.encode_descriptor(self.name, &self.help, self.unit.as_ref(), kind)?;
        for (labels, value) in &self.series {
            value.encode(metric.encode_family(labels)?)?;
        }
        Ok(())
    }
}

fn add<M: EncodeMetric + std::fmt::Debug + Send + Sync + 'static>(
    r: &mut Registry,
    name: &'static str,
    help: &str,
    unit: Option<Unit>,
    series: Vec<(Labels, M)>,
) {
    // Registered metrics get their full stop from the registry; collectors do not.
    r.register_collector(Box::new(Series { name, help: format!("{help}."), unit, series }));
}

fn counter(value: u64) -> ConstCounter {
    ConstCounter::new(value)
}

fn gauge(value: i64) -> ConstGauge {
    ConstGauge::new(value)
}

fn seconds(value: f64) -> ConstGauge<f64> {
    ConstGauge::new(value)
}

/// A VIP's or service's labels; `service` is empty for the VIP's own table.
fn slot_labels(vip: String, service: String) -> Labels {
    vec![("vip", vip), ("service", service)]
}

fn register_snapshot(r: &mut Registry, snap: &Snapshot) {
    let status = &snap.status;
    let info = Info::new(vec![
        ("version", env!("CARGO_PKG_VERSION").to_string()),
        ("layout", LAYOUT_VERSION.to_string()),
    ]);
    r.register("build", "The agent's version, and the version of its maps' layout", info);
    let node = Info::new(vec![
        ("cluster", snap.config.cluster.name.clone()),
        ("node", status.node_id.to_string()),
    ]);
    r.register("node", "The cluster this agent is in, and its node id", node);

    let mut packets = Vec::new();
    for c in &snap.counters {
        let vip = c.vip.map(|v| v.to_string()).unwrap_or_default();
        let service = c.service.clone().unwrap_or_default();
        for (verdict, &count) in Counters::NAMES.into_iter().zip(&c.counts) {
            let mut labels = slot_labels(vip.clone(), service.clone());
            labels.push(("verdict", verdict.into()));
            packets.push((labels, counter(count)));
        }
    }
    let help = format!(
        "Frames the XDP program judged, summed over CPUs, by VIP and service (none: the VIP's own traffic; no VIP: frames for none) and verdict: {}",
        Counters::NAMES.join(", ")
    );
    add(r, "packets", &help, None, packets);

    let h = &status.heartbeats;
    add(
        r,
        "heartbeats_sent",
        "Heartbeats this node sent to its peers",
        None,
        vec![(vec![], counter(h.sent))],
    );
    add(
        r,
        "heartbeats_early",
        "Rounds of heartbeats to every peer sent ahead of the interval, for a change peers wait on (a view, a phase reached); at most one a fifth of an interval",
        None,
        vec![(vec![], counter(h.early))],
    );
    add(
        r,
        "heartbeats_asked",
        "Heartbeats sent to one peer asking for an answer at once: its newest acknowledgement of this node dated a heartbeat before a lost one, and would have ended the lease early had it died",
        None,
        vec![(vec![], counter(h.asked))],
    );
    let acknowledged = [("deferred", h.deferred), ("answered", h.answered)];
    add(
        r,
        "heartbeats_acknowledged",
        "Peers' heartbeats accepted, by how this node acknowledged them: deferred (in its next periodic heartbeat) or answered (at once: after a gap in the peer's heartbeats, a peer never heard, the peer asked, or with 2 missed heartbeats to a failure)",
        None,
        acknowledged.map(|(how, n)| (vec![("how", how.into())], counter(n))).into(),
    );
    let received = [
        ("accepted", h.accepted),
        ("overflowed", h.overflowed),
        ("forged", h.forged),
        ("replayed", h.replayed),
        ("stale", h.stale),
        ("malformed", h.malformed),
        ("foreign", h.foreign),
    ];
    add(
        r,
        "heartbeats_received",
        "Datagrams on the heartbeat port, by outcome: accepted, overflowed (dropped by the kernel: the socket's receive buffer was full), or ignored as forged, replayed, stale (an incarnation that is over), malformed or foreign (another cluster's, an unknown node's)",
        None,
        received.map(|(outcome, n)| (vec![("outcome", outcome.into())], counter(n))).into(),
    );

    let one = |value: i64| vec![(vec![], gauge(value))];
    add(r, "epoch", "The epoch of the view this node holds", None, one(status.epoch as i64));
    add(
        r,
        "incarnation",
        "This node's incarnation: when its agent started or rejoined, in microseconds since 1970",
        None,
        one(status.incarnation as i64),
    );
    add(
        r,
        "converged",
        "1 when every member of this node's view holds the same view and epoch",
        None,
        one(status.converged.into()),
    );
    add(
        r,
        "drained",
        "1 while this node is drained (farm drain): weight 0 in every table",
        None,
        one(status.drained.into()),
    );
    if let Some(q) = &status.quorum {
        let witness = q.witness.as_ref().map(|w| i64::from(w.held));
        let quorum = [
            (
                "quorate",
                "1 while this node's view may serve (always without a quorum): see farm status",
                i64::from(q.quorate),
            ),
            (
                "quorum_votes",
                "The nodes whose votes count: the last install's and any view released since",
                q.votes.len() as i64,
            ),
            ("quorum_votes_held", "How many of the votes this node's view holds", q.held as i64),
            (
                "quorum_excluded",
                "Nodes a tie won with the witness left out: while any, ties need the witness",
                q.excluded.len() as i64,
            ),
        ];
        for (name, help, value) in quorum {
            add(r, name, help, None, one(value));
        }
        if let Some(held) = witness {
            add(
                r,
                "witness_held",
                "1 while this node's view holds the witness's vote",
                None,
                one(held),
            );
        }
    }
    let h = &status.handover;
    let handover = [
        ("handover_buckets_out", "Buckets this node gave away that still keep its flows", h.out),
        (
            "handover_buckets_in",
            "Buckets this node took whose old owner still keeps its flows",
            h.r#in,
        ),
        (
            "handover_tcp_kept",
            "TCP connections this node keeps on buckets it gave away",
            h.tcp_kept.unwrap_or(0),
        ),
        (
            "handover_udp_kept",
            "Active UDP flows this node keeps on buckets it gave away",
            h.udp_kept.unwrap_or(0),
        ),
    ];
    for (name, help, value) in handover {
        add(r, name, help, None, one(value as i64));
    }
    add(
        r,
        "held_ports",
        "Ports a reload holds with no owner until every node has the new file",
        None,
        one(status.held_ports as i64),
    );

    let states: Vec<PeerState> =
        std::iter::once(PeerState::Alive).chain(status.peers.iter().map(|p| p.state)).collect();
    let members = [
        (PeerState::Alive, "alive"),
        (PeerState::Failed, "failed"),
        (PeerState::Left, "left"),
        (PeerState::Unknown, "unknown"),
    ]
    .map(|(state, name)| {
        let n = states.iter().filter(|&&s| s == state).count();
        (vec![("state", name.to_string())], gauge(n as i64))
    });
    add(
        r,
        "members",
        "The nodes of the configuration by state as this node sees them (itself alive): alive, failed (silent), left, unknown (never heard)",
        None,
        members.into(),
    );
    let ages = status
        .peers
        .iter()
        .filter_map(|p| {
            Some((vec![("peer", p.id.to_string())], seconds(p.heartbeat_age_ms? as f64 / 1000.0)))
        })
        .collect();
    add(
        r,
        "peer_heartbeat_age",
        "Time since each peer's last heartbeat was taken (peers never heard have none)",
        Some(Unit::Seconds),
        ages,
    );

    let (mut owned, mut quota, mut unowned) = (Vec::new(), Vec::new(), Vec::new());
    let members_of = crate::agent::tables::members(&snap.config, &status.view);
    for (slot, row) in snap.rows.iter().enumerate() {
        let (vip, service) = snap.slot_name(slot);
        let labels = slot_labels(vip.to_string(), service.unwrap_or_default().into());
        let me = shares(&members_of[slot], row).into_iter().find(|s| s.node == status.node_id);
        owned.push((labels.clone(), gauge(me.as_ref().map_or(0, |s| s.owned.into()))));
        quota.push((labels.clone(), gauge(me.as_ref().map_or(0, |s| s.quota.into()))));
        let none = row.iter().filter(|&&o| o == farm_common::NO_OWNER).count();
        unowned.push((labels, gauge(none as i64)));
    }
    add(
        r,
        "buckets_owned",
        "Buckets this node owns in the table its data plane holds, by VIP and service (none: the VIP's own table)",
        None,
        owned,
    );
    add(
        r,
        "buckets_quota",
        "This node's weight-proportional share of the buckets among the members of its view",
        None,
        quota,
    );
    add(
        r,
        "buckets_unowned",
        "Buckets no node owns in the table this node's data plane holds (a fence, a reload under way, every member at weight 0)",
        None,
        unowned,
    );
    let service = |s: &crate::agent::health::ServiceStatus| vec![("service", s.name.clone())];
    let healthy = status.services.iter().map(|s| (service(s), gauge(s.healthy.into()))).collect();
    add(
        r,
        "service_healthy",
        "1 while every health checker of the service passes on this node",
        None,
        healthy,
    );
    let withdrawn =
        status.services.iter().map(|s| (service(s), gauge(s.withdrawn.into()))).collect();
    add(
        r,
        "service_withdrawn",
        "1 while this node is out of the service's table for its health (failing, or held out after flapping)",
        None,
        withdrawn,
    );
    let active = status
        .services
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            snap.config
                .services
                .get(*i)
                .is_some_and(|s| s.affinity == crate::config::Affinity::ActiveBackup)
        })
        .map(|(i, s)| {
            (service(s), gauge(crate::agent::wire::bit(status.service_bits.active, i).into()))
        })
        .collect();
    add(
        r,
        "service_active",
        "1 while this node serves the active-backup service (every client of it)",
        None,
        active,
    );
    add(
        r,
        "lease_remaining",
        "Time left before this node's data plane stops accepting on its own unless the agent renews the lease (0: fenced)",
        Some(Unit::Seconds),
        vec![(vec![], seconds(snap.lease_left.as_secs_f64()))],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::snapshot::example;

    const DOCS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md"));

    fn scrape(metrics: &Metrics) -> String {
        exposition(&metrics.instruments, &example())
    }

    fn sample<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
    }

    #[test]
    fn every_family_is_farm_s_and_documented() {
        let snap = example();
        let text = scrape(&Metrics::new(&snap.config, Instant::now()));
        let families: Vec<(&str, &str)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .collect();
        assert!(families.len() > 25, "{text}");
        for (name, kind) in families {
            assert!(name.starts_with("farm_"), "{name}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{name} is a {kind}");
            assert!(DOCS.contains(&format!("`{name}`")), "docs/metrics.md says nothing of {name}");
        }
        for verdict in Counters::NAMES {
            assert!(DOCS.contains(&format!("`{verdict}`")), "docs/metrics.md: verdict {verdict}");
        }
    }

    #[test]
    fn a_scrape_reads_the_data_plane_and_the_membership() {
        let snap = example();
        let text = scrape(&Metrics::new(&snap.config, Instant::now()));
        let want = [
            ("farm_packets_total{vip=\"198.18.0.100\",service=\"web\",verdict=\"accepted\"}", "40"),
            ("farm_packets_total{vip=\"198.18.0.100\",service=\"\",verdict=\"arp_replies\"}", "2"),
            (
                "farm_packets_total{vip=\"\",service=\"(held by a reload)\",verdict=\"not_owner\"}",
                "5",
            ),
            ("farm_packets_total{vip=\"\",service=\"\",verdict=\"passed\"}", "900"),
            ("farm_heartbeats_received_total{outcome=\"forged\"}", "2"),
            ("farm_heartbeats_sent_total", "120"),
            ("farm_epoch", "7"),
            ("farm_members{state=\"alive\"}", "2"),
            ("farm_members{state=\"failed\"}", "1"),
            ("farm_peer_heartbeat_age_seconds{peer=\"3\"}", "0.912"),
            ("farm_lease_remaining_seconds", "0.187"),
            // 64 buckets among nodes 1 and 2: web weighs node 1 three times.
            ("farm_buckets_owned{vip=\"198.18.0.100\",service=\"web\"}", "48"),
            ("farm_buckets_quota{vip=\"198.18.0.100\",service=\"web\"}", "48"),
            ("farm_buckets_owned{vip=\"198.18.0.100\",service=\"\"}", "32"),
            ("farm_failovers_total{peer=\"3\"}", "0"),
        ];
        for (series, value) in want {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
        assert!(text.contains("farm_build_info{version=\""), "{text}");
        assert!(text.contains("farm_node_info{cluster=\"demo\",node=\"1\"} 1"), "{text}");
    }

    #[test]
    fn notes_count_changes_and_time_installs() {
        let snap = example();
        let start = Instant::now();
        let mut m = Metrics::new(&snap.config, start);
        let at = |ms| start + Duration::from_millis(ms);
        let view = |epoch| Note::Membership(Change::ViewChanged { epoch, members: vec![1, 2] });
        let installed =
            |moved| Note::Installed { epoch: 7, members: vec![1, 2], moved, owned: 48, total: 192 };
        m.note(&installed(192), at(400));
        m.note(
            &Note::Membership(Change::PeerFailed { id: 3, silent: Duration::from_millis(312) }),
            at(1000),
        );
        m.note(&view(6), at(1000));
        m.note(&view(7), at(1002));
        m.note(&installed(22), at(1005));
        m.note(&Note::ReloadRefused { why: "bad file".into() }, at(2000));
        m.loop_ran(Duration::from_millis(3));
        let text = scrape(&m);
        for (series, value) in [
            ("farm_failovers_total{peer=\"3\"}", "1"),
            ("farm_view_changes_total", "2"),
            ("farm_buckets_moved_total", "214"),
            ("farm_reloads_total{outcome=\"refused\"}", "1"),
            ("farm_install_duration_seconds_count", "2"),
            // The first install counts from the start, the second from the first change.
            ("farm_install_duration_seconds_sum", "0.405"),
            ("farm_install_duration_seconds_bucket{le=\"0.008\"}", "1"),
            ("farm_loop_delay_seconds_count", "1"),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
    }
}
