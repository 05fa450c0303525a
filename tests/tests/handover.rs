//! Planned moves keep established connections (issue 9), on real agents in network
//! namespaces. A bucket that moves because a node is drained, undrained, reweighed, joins
//! or rejoins is handed over: the old owner keeps the TCP connections and active UDP
//! flows it holds there until they end, and new ones go to the new owner at once. What a
//! user would see: 50 long-lived connections, each sending a line every 50 ms, are
//! neither reset nor stalled by any of these moves; connections opened meanwhile are
//! answered by the new owner; numbered UDP datagrams never reach two nodes, an active
//! flow stays where it was until idle; and `farm drain --wait` returns once the drained
//! node's connections are closed, or at its timeout saying how many remain.
use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use farm_common::{bucket_of, flow_hash};
use farm_tests::{
    agents::SETTLE,
    conns::{EVERY, Pool},
    farm::{NsFarm, Ownership, SPREAD_PORT, VIP},
    netns::wait_for,
    traffic::EchoServer,
};
use farm_userspace::rules::addr_key;
use serde_json::Value;

const BUCKETS: u32 = 4096;
/// Client addresses; the long-lived connections take two each.
const CLIENTS: usize = 25;
const CONNS: usize = 50;
/// The longest a kept connection may wait for an echo across a move (the figure).
const STALL: Duration = Duration::from_secs(1);
/// Echoes every connection must have had since the move installed (two seconds' worth)
/// before the verdict: a connection the move broke has long been reset by then.
const AFTER_MOVE: u64 = 2000 / EVERY.as_millis() as u64;
/// Connections opened on moved buckets while the handover lasts.
const NEW_CONNS: usize = 8;

/// A farm of agents with `weights`, none started, every node echoing on the spread
/// service's port.
fn echo_farm(weights: &[u32]) -> (NsFarm, Vec<EchoServer>) {
    let weights = weights.to_vec();
    let mut farm = NsFarm::new(weights.len(), CLIENTS, BUCKETS, Ownership::Agents { weights })
        .expect("build the namespace farm");
    let echo = farm.echo_on(SPREAD_PORT).expect("start the echo servers");
    (farm, echo)
}

fn spread() -> SocketAddr {
    SocketAddr::new(VIP.into(), SPREAD_PORT)
}

/// The row of `slot` that the nodes `members` all hold, if they agree.
fn agreed_row(farm: &NsFarm, members: &[u16], slot: usize) -> Option<Vec<u16>> {
    let rows: Vec<Vec<u16>> = members
        .iter()
        .map(|&m| farm.dataplane(&farm.nodes[usize::from(m) - 1]).ok()?.row(slot).ok())
        .collect::<Option<_>>()?;
    rows.windows(2).all(|w| w[0] == w[1]).then(|| rows[0].clone())
}

/// Waits until `members` have converged on a row of `slot` other than `before`: that row.
fn moved_row(farm: &NsFarm, members: &[u16], slot: usize, before: &[u16]) -> Vec<u16> {
    let row = wait_for(SETTLE, || {
        farm.wait_converged(members).ok()?;
        agreed_row(farm, members, slot).filter(|row| row != before)
    });
    row.unwrap_or_else(|| panic!("the table of slot {slot} never changed\n{}", farm.report()))
}

/// The bucket of a client endpoint in a client-ip-port service.
fn bucket(farm: &NsFarm, from: SocketAddr) -> usize {
    bucket_of(flow_hash(&addr_key(from.ip()), from.port(), farm.seed), BUCKETS) as usize
}

/// The name of node `id`.
fn name(farm: &NsFarm, id: u16) -> String {
    farm.nodes[usize::from(id) - 1].name.clone()
}

/// `farm ARGS --config FILE` on node `i`.
fn steer(farm: &NsFarm, i: usize, args: &[&str]) -> String {
    let node = &farm.nodes[i];
    let config = node.config.to_str().unwrap();
    farm.farm(node, &[args, &["--config", config]].concat())
        .unwrap_or_else(|e| panic!("farm {args:?} on node {}: {e:#}", i + 1))
}

/// What node `i`'s agent says of its handovers (null if it does not answer).
fn handover(farm: &NsFarm, i: usize) -> Value {
    farm.status(i).map_or(Value::Null, |s| s["agent"]["handover"].clone())
}

/// The flows node `i` says it still holds on buckets it gave away.
fn flows_kept(farm: &NsFarm, i: usize) -> Option<u64> {
    handover(farm, i)["flows_kept"].as_u64()
}

/// A planned move of node 3 (an index of 2) or node 2 (1), from a farm in the state the
/// move starts from.
#[derive(Clone, Copy, Debug)]
enum Move {
    Drain,
    Undrain,
    Weight,
    Join,
    Rejoin,
}

impl Move {
    /// The farm, settled in the state before the move; its members.
    fn prepare(self) -> (NsFarm, Vec<EchoServer>, Vec<u16>) {
        let (mut farm, echo) = echo_farm(&[1, 1, 1]);
        match self {
            Move::Join => {
                farm.start_agent(0).unwrap();
                farm.start_agent(1).unwrap();
                farm.wait_converged(&[1, 2]).unwrap();
                return (farm, echo, vec![1, 2]);
            }
            Move::Drain | Move::Weight | Move::Undrain | Move::Rejoin => {
                farm.start_agents().unwrap();
                farm.wait_converged(&[1, 2, 3]).unwrap();
            }
        }
        let slot = farm.slot("spread");
        match self {
            Move::Undrain => {
                let whole = agreed_row(&farm, &[1, 2, 3], slot).unwrap();
                steer(&farm, 1, &["drain"]);
                moved_row(&farm, &[1, 2, 3], slot, &whole);
            }
            Move::Rejoin => {
                let status = farm.stop_agent(2).unwrap();
                assert!(status.success(), "node 3 leaves cleanly on SIGTERM: {status}");
                farm.wait_converged(&[1, 2]).unwrap();
                return (farm, echo, vec![1, 2]);
            }
            Move::Drain | Move::Weight | Move::Join => {}
        }
        (farm, echo, vec![1, 2, 3])
    }

    fn perform(self, farm: &mut NsFarm) {
        match self {
            Move::Drain => drop(steer(farm, 1, &["drain"])),
            Move::Undrain => drop(steer(farm, 1, &["undrain"])),
            Move::Weight => drop(steer(farm, 1, &["weight", "3"])),
            Move::Join | Move::Rejoin => farm.start_agent(2).unwrap(),
        }
    }
}

/// Up to `count` client endpoints (fixed ports, unused by the kernel's own choices) whose
/// bucket moved from `before` to `after`.
fn on_moved_buckets(farm: &NsFarm, before: &[u16], after: &[u16], count: usize) -> Vec<SocketAddr> {
    (20_000u16..30_000)
        .flat_map(|port| farm.clients.iter().map(move |&c| SocketAddr::new(c, port)))
        .filter(|&p| before[bucket(farm, p)] != after[bucket(farm, p)])
        .take(count)
        .collect()
}

/// 50 long-lived connections across `mv`: none reset, none stalled, new ones on the
/// moved buckets answered by the new owner.
fn a_planned_move_keeps_connections(mv: Move) {
    let step = format!("{mv:?}").to_lowercase();
    let (mut farm, _echo, members) = mv.prepare();
    let slot = farm.slot("spread");
    let before = agreed_row(&farm, &members, slot).expect("one table before the move");
    let sources: Vec<SocketAddr> =
        (0..CONNS).map(|i| SocketAddr::new(farm.clients[i % CLIENTS], 0)).collect();
    let pool = Pool::open(&farm.client.ns.name, &sources, spread(), SETTLE);
    // Each connection is held by the node the table gives its bucket.
    for (c, s) in pool.conns.iter().zip(pool.seen()) {
        let owner = name(&farm, before[bucket(&farm, c.from)]);
        assert!(s.error.is_none() && s.nodes == [owner.clone()], "{}: {s:?}, want {owner}", c.from);
    }

    let from: Vec<SocketAddr> = pool.conns.iter().map(|c| c.from).collect();

    mv.perform(&mut farm);
    let after = moved_row(&farm, &[1, 2, 3], slot, &before);
    let installed = pool.seen();
    let moved: Vec<usize> = (0..CONNS)
        .filter(|&c| before[bucket(&farm, from[c])] != after[bucket(&farm, from[c])])
        .collect();
    assert!(!moved.is_empty(), "{step}: none of the {CONNS} connections' buckets moved");
    // New connections on moved buckets, while the kept ones hold the handover open.
    let probes = on_moved_buckets(&farm, &before, &after, NEW_CONNS);
    let fresh = Pool::open(&farm.client.ns.name, &probes, spread(), SETTLE).close();
    pool.wait_lines(&installed, AFTER_MOVE, SETTLE);
    // What the old owners say they keep, while the connections are open.
    let mut kept = BTreeMap::new();
    let counted = wait_for(Duration::from_secs(5), || {
        kept = (0..3).map(|i| (i + 1, flows_kept(&farm, i))).collect::<BTreeMap<_, _>>();
        (kept.values().flatten().sum::<u64>() == moved.len() as u64).then_some(())
    });
    let seen = pool.close();

    let ended: Vec<String> = (0..CONNS)
        .filter_map(|c| {
            let b = bucket(&farm, from[c]);
            let why = seen[c].error.as_ref()?;
            Some(format!("{} (bucket {b}, node {} -> {}): {why}", from[c], before[b], after[b]))
        })
        .collect();
    let longest = seen.iter().map(|s| s.longest).max().unwrap_or_default();
    let stalled: Vec<String> = (0..CONNS)
        .filter(|&c| seen[c].longest > STALL)
        .map(|c| format!("{}: {} ms", from[c], seen[c].longest.as_millis()))
        .collect();
    let answered: Vec<&[String]> = fresh.iter().map(|s| s.nodes.as_slice()).collect();
    eprintln!(
        "{step}: {CONNS} connections, {} on moved buckets: {} reset or ended, {} kept; longest wait for an echo {} ms; flows kept per node {kept:?}; {} new connections on moved buckets answered by {answered:?}",
        moved.len(),
        ended.len(),
        moved.iter().filter(|&&c| seen[c].error.is_none()).count(),
        longest.as_millis(),
        fresh.len()
    );
    assert!(
        ended.is_empty(),
        "{step}: {} of {CONNS} connections ended:\n{}\n{}",
        ended.len(),
        ended.join("\n"),
        farm.report()
    );
    assert!(stalled.is_empty(), "{step}: connections stalled over {STALL:?}: {stalled:?}");
    for (c, s) in seen.iter().enumerate() {
        assert!(s.nodes.len() == 1, "{step}: {} answered by {:?}", from[c], s.nodes);
        assert!(s.echoed > installed[c].echoed, "{step}: {} silent since the move", from[c]);
    }
    for (p, s) in probes.iter().zip(&fresh) {
        let owner = name(&farm, after[bucket(&farm, *p)]);
        assert!(
            s.error.is_none() && s.nodes == [owner.clone()],
            "{step}: new connection from {p}: {s:?}, want {owner}"
        );
    }
    assert_eq!(probes.len(), NEW_CONNS);
    assert!(
        counted.is_some(),
        "{step}: the old owners say they keep {kept:?} flows, not the {} connections on moved buckets",
        moved.len()
    );
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agents"]
fn a_drain_keeps_established_connections() {
    a_planned_move_keeps_connections(Move::Drain);
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agents"]
fn an_undrain_keeps_established_connections() {
    a_planned_move_keeps_connections(Move::Undrain);
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agents"]
fn a_weight_change_keeps_established_connections() {
    a_planned_move_keeps_connections(Move::Weight);
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agents"]
fn a_node_joining_keeps_established_connections() {
    a_planned_move_keeps_connections(Move::Join);
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agents"]
fn a_node_rejoining_keeps_established_connections() {
    a_planned_move_keeps_connections(Move::Rejoin);
}
