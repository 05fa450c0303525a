//! Planned moves keep established connections (issue 9), on real agents in network
//! namespaces. A bucket that moves because a node is drained, undrained, reweighed, joins
//! or rejoins is handed over: the old owner keeps the TCP connections and active UDP
//! flows it holds there until they end, and new ones go to the new owner at once. What a
//! user would see: 50 long-lived connections, each sending a line every 50 ms, are
//! neither reset nor stalled by any of these moves; connections opened meanwhile are
//! answered by the new owner; numbered UDP datagrams never reach two nodes, an active
//! flow stays where it was until idle; and `farm drain --wait` returns once the drained
//! node's connections are closed, or at its timeout saying how many remain.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::{SocketAddr, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use farm_common::{bucket_of, flow_hash};
use farm_tests::{
    agents::SETTLE,
    conns::{EVERY, Pool, Seen},
    farm::{Node, NsFarm, Ownership, SPREAD_PORT, UDP_PORT, VIP, farm_bin},
    netns::{command_in, enter, wait_for},
    serial::one_at_a_time,
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

/// The flows node `i` says it still holds on buckets it gave away (None until counted).
fn flows_kept(farm: &NsFarm, i: usize) -> Option<u64> {
    handover(farm, i)["flows_kept"].as_u64()
}

/// Whether node `i` says it keeps no flow: none counted, or no bucket given away still
/// in handover.
fn keeps_nothing(farm: &NsFarm, i: usize) -> bool {
    let said = handover(farm, i);
    said["flows_kept"] == 0 || said["out"] == 0
}

/// A planned move: node 2 is drained, undrained or reweighed, or node 3 joins or
/// rejoins.
#[derive(Clone, Copy, Debug)]
enum Move {
    Drain,
    Undrain,
    Weight,
    Join,
    Rejoin,
}

impl Move {
    /// A farm settled in the state the move starts from, its echo servers and its members.
    fn prepare(self) -> (NsFarm, Vec<EchoServer>, Vec<u16>) {
        let (mut farm, echo) = echo_farm(&[1, 1, 1]);
        let members = match self {
            // Node 3's agent is not started yet.
            Move::Join => {
                farm.start_agent(0).unwrap();
                farm.start_agent(1).unwrap();
                vec![1, 2]
            }
            Move::Drain | Move::Weight => {
                farm.start_agents().unwrap();
                vec![1, 2, 3]
            }
            Move::Undrain => {
                farm.start_agents().unwrap();
                farm.wait_converged(&[1, 2, 3]).unwrap();
                let slot = farm.slot("spread");
                let whole = agreed_row(&farm, &[1, 2, 3], slot).unwrap();
                steer(&farm, 1, &["drain"]);
                moved_row(&farm, &[1, 2, 3], slot, &whole);
                vec![1, 2, 3]
            }
            // Node 3 was there and left (SIGTERM).
            Move::Rejoin => {
                farm.start_agents().unwrap();
                farm.wait_converged(&[1, 2, 3]).unwrap();
                let status = farm.stop_agent(2).unwrap();
                assert!(status.success(), "node 3 leaves cleanly on SIGTERM: {status}");
                vec![1, 2]
            }
        };
        farm.wait_converged(&members).unwrap();
        (farm, echo, members)
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

/// `count` client endpoints on `ports` (fixed ports, outside the kernel's range for its
/// own choices) whose buckets `pick` picks.
fn endpoints(
    farm: &NsFarm,
    ports: std::ops::Range<u16>,
    count: usize,
    pick: impl Fn(usize) -> bool,
) -> Vec<SocketAddr> {
    let found: Vec<SocketAddr> = ports
        .flat_map(|port| farm.clients.iter().map(move |&c| SocketAddr::new(c, port)))
        .filter(|&p| pick(bucket(farm, p)))
        .take(count)
        .collect();
    assert_eq!(found.len(), count, "too few client endpoints in the buckets wanted");
    found
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
    let from: Vec<SocketAddr> = pool.conns.iter().map(|c| c.from).collect();
    // Each connection is held by the node the table gives its bucket.
    for (c, s) in pool.seen().iter().enumerate() {
        let owner = name(&farm, before[bucket(&farm, from[c])]);
        assert!(
            s.error.is_none() && s.nodes == [owner.clone()],
            "{}: {s:?}, want {owner}",
            from[c]
        );
    }

    mv.perform(&mut farm);
    let after = moved_row(&farm, &[1, 2, 3], slot, &before);
    let installed = pool.seen();
    let moved: Vec<usize> = (0..CONNS)
        .filter(|&c| before[bucket(&farm, from[c])] != after[bucket(&farm, from[c])])
        .collect();
    assert!(!moved.is_empty(), "{step}: none of the {CONNS} connections' buckets moved");
    // New connections on moved buckets, while the kept ones hold the handover open.
    let probes = endpoints(&farm, 20_000..30_000, NEW_CONNS, |b| before[b] != after[b]);
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
    // The slowest connections first: where they were, and whether their bucket moved.
    let mut slowest: Vec<usize> = (0..CONNS).collect();
    slowest.sort_by_key(|&c| std::cmp::Reverse(seen[c].longest));
    let wait = |c: usize| {
        let b = bucket(&farm, from[c]);
        format!(
            "{} ms ({}, node {} -> {})",
            seen[c].longest.as_millis(),
            from[c],
            before[b],
            after[b]
        )
    };
    let stalled: Vec<String> =
        slowest.iter().take_while(|&&c| seen[c].longest > STALL).map(|&c| wait(c)).collect();
    let longest: Vec<String> = slowest.iter().take(3).map(|&c| wait(c)).collect();
    let answered: Vec<&[String]> = fresh.iter().map(|s| s.nodes.as_slice()).collect();
    eprintln!(
        "{step}: {CONNS} connections, {} on moved buckets: {} reset or ended, {} kept; longest waits for an echo {longest:?}; flows kept per node {kept:?}; {} new connections on moved buckets answered by {answered:?}",
        moved.len(),
        ended.len(),
        moved.iter().filter(|&&c| seen[c].error.is_none()).count(),
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
    assert!(
        counted.is_some(),
        "{step}: the old owners say they keep {kept:?} flows, not the {} connections on moved buckets",
        moved.len()
    );
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agents"]
fn a_drain_keeps_established_connections() {
    let _one = one_at_a_time();
    a_planned_move_keeps_connections(Move::Drain);
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agents"]
fn an_undrain_keeps_established_connections() {
    let _one = one_at_a_time();
    a_planned_move_keeps_connections(Move::Undrain);
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agents"]
fn a_weight_change_keeps_established_connections() {
    let _one = one_at_a_time();
    a_planned_move_keeps_connections(Move::Weight);
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agents"]
fn a_node_joining_keeps_established_connections() {
    let _one = one_at_a_time();
    a_planned_move_keeps_connections(Move::Join);
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agents"]
fn a_node_rejoining_keeps_established_connections() {
    let _one = one_at_a_time();
    a_planned_move_keeps_connections(Move::Rejoin);
}

/// UDP clients: each holds an old flow (active before the move) and a new one (from the
/// moment the move installed), one socket each.
const UDP_CLIENTS: usize = 16;
/// At most 500 datagrams a second, over the sockets in turn.
const UDP_GAP: Duration = Duration::from_millis(2);
/// The longest the datagrams run, whatever the test does.
const UDP_LONGEST: Duration = Duration::from_secs(120);
/// `cluster.flow_idle_ms`'s default: a UDP flow idle this long has ended.
const FLOW_IDLE: Duration = Duration::from_secs(30);
/// Datagrams each flow must have had received in a phase before it is judged.
const PER_PHASE: usize = 20;

/// What the UDP clients send, as the test moves on: the old flows alone, then old and
/// new, then the new alone (the old go idle), then both again.
const BEFORE: u8 = 0;
const MOVED: u8 = 1;
const OLD_IDLE: u8 = 2;
const RESUMED: u8 = 3;

/// A datagram's number: its phase, its place in the stream and its socket (old flows
/// 0..16, new 16..32), so that what a node received says whose it was and when.
fn numbered(phase: u8, seq: u64, socket: usize) -> u64 {
    (u64::from(phase) << 56) | (seq << 8) | socket as u64
}

/// The numbered datagrams of the 32 flows, sent from the client's namespace by a thread
/// of their own until finished (or `UDP_LONGEST`); stopped on drop.
struct Flows {
    /// Each socket's address, old flows first.
    from: Vec<SocketAddr>,
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Flows {
    fn start(farm: &NsFarm) -> Flows {
        let (phase, stop) = (Arc::new(AtomicU8::new(BEFORE)), Arc::new(AtomicBool::new(false)));
        let (ns, clients) = (farm.client.ns.name.clone(), farm.clients.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let (now, until) = (phase.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            enter(&ns).expect("enter the client's namespace");
            let sockets: Vec<UdpSocket> = (0..2 * UDP_CLIENTS)
                .map(|i| UdpSocket::bind(SocketAddr::new(clients[i % UDP_CLIENTS], 0)).unwrap())
                .collect();
            let _ = tx.send(sockets.iter().map(|s| s.local_addr().unwrap()).collect());
            let vip = SocketAddr::new(VIP.into(), UDP_PORT);
            let end = Instant::now() + UDP_LONGEST;
            let mut seq = 0;
            while Instant::now() < end && !until.load(Ordering::Relaxed) {
                let phase = now.load(Ordering::Relaxed);
                let active = match phase {
                    BEFORE => 0..UDP_CLIENTS,
                    OLD_IDLE => UDP_CLIENTS..2 * UDP_CLIENTS,
                    _ => 0..2 * UDP_CLIENTS,
                };
                let socket = active.start + seq as usize % active.len();
                // A full socket buffer drops the datagram: its number is never seen.
                let _ = sockets[socket].send_to(&numbered(phase, seq, socket).to_be_bytes(), vip);
                seq += 1;
                // Paces the traffic on purpose: a test sees what happens in between.
                std::thread::sleep(UDP_GAP);
            }
            seq
        });
        let from = rx.recv().expect("the client sockets");
        Flows { from, phase, stop, thread: Some(thread) }
    }

    fn set(&self, phase: u8) {
        self.phase.store(phase, Ordering::Relaxed);
    }

    /// Ends the datagrams: how many were sent.
    fn finish(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(0, |t| t.join().expect("the sender panicked"))
    }
}

impl Drop for Flows {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Per (phase, socket), the datagrams each node received.
type PerFlow = BTreeMap<(u8, usize), BTreeMap<u16, usize>>;

/// What the nodes received, per flow and phase; and the numbers two nodes received.
fn received(farm: &NsFarm) -> (PerFlow, BTreeSet<u64>) {
    let (mut got, mut by) = (BTreeMap::new(), BTreeMap::<u64, BTreeSet<u16>>::new());
    for n in &farm.nodes {
        for number in n.udp.numbers() {
            by.entry(number).or_default().insert(n.id);
            let flow = ((number >> 56) as u8, (number & 0xff) as usize);
            *got.entry(flow).or_insert_with(BTreeMap::new).entry(n.id).or_insert(0) += 1;
        }
    }
    let twice = by.into_iter().filter(|(_, nodes)| nodes.len() > 1).map(|(n, _)| n).collect();
    (got, twice)
}

/// Waits until each of `sockets` has `PER_PHASE` datagrams received in `phase`.
fn until_received(farm: &NsFarm, flows: &Flows, phase: u8, sockets: std::ops::Range<usize>) {
    let mut short = Vec::new();
    let enough = wait_for(SETTLE, || {
        let (got, _) = received(farm);
        let count = |s| got.get(&(phase, s)).map_or(0, |n| n.values().sum::<usize>());
        short = sockets
            .clone()
            .filter(|&s| count(s) < PER_PHASE)
            .map(|s| (if s < UDP_CLIENTS { "old" } else { "new" }, flows.from[s], count(s)))
            .collect();
        short.is_empty().then_some(())
    });
    if enough.is_none() {
        panic!(
            "phase {phase}: flows with fewer than {PER_PHASE} datagrams received: {short:?}\ncounters of the numbered service: {:#?}\n{}",
            udp_counters(farm),
            farm.report()
        );
    }
}

/// What each node's program did with the numbered service's datagrams.
fn udp_counters(farm: &NsFarm) -> Vec<String> {
    let slot = farm.slot("numbered") as u32;
    let counters = |n: &Node| farm.dataplane(n).and_then(|dp| Ok(dp.counters(slot)?));
    farm.nodes.iter().map(|n| format!("{}: {:?}", n.name, counters(n))).collect()
}

/// Asserts that each of `sockets`' datagrams of `phase` reached the node `owner` gives
/// its flow, and that one only; names every flow that did not.
fn assert_served(
    farm: &NsFarm,
    flows: &Flows,
    phase: u8,
    sockets: std::ops::Range<usize>,
    owner: impl Fn(usize) -> u16,
    what: &str,
) {
    let (got, _) = received(farm);
    let count = sockets.len();
    let wrong: Vec<String> = sockets
        .filter_map(|s| {
            let nodes = got.get(&(phase, s)).cloned().unwrap_or_default();
            let from = flows.from[s];
            (!nodes.keys().eq([owner(s)].iter())).then(|| {
                format!(
                    "{from} (bucket {}): datagrams per node {nodes:?}, want only node {}",
                    bucket(farm, from),
                    owner(s)
                )
            })
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{what}: {} of {count} flows misplaced:\n{}\ncounters of the numbered service: {:#?}\n{}",
        wrong.len(),
        wrong.join("\n"),
        udp_counters(farm),
        farm.report()
    );
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agents"]
fn a_drain_keeps_active_udp_flows_until_idle_and_new_flows_go_to_the_new_owner() {
    let _one = one_at_a_time();
    // Node 2 weighs 3 of 5, so that some of the 16 old flows are its own before the drain
    // (none is a chance of (2/5)^16).
    let (mut farm, _echo) = echo_farm(&[1, 3, 1]);
    farm.start_agents().unwrap();
    farm.wait_converged(&[1, 2, 3]).unwrap();
    let slot = farm.slot("numbered");
    let before = agreed_row(&farm, &[1, 2, 3], slot).unwrap();
    let mut flows = Flows::start(&farm);
    let old = 0..UDP_CLIENTS;
    let new = UDP_CLIENTS..2 * UDP_CLIENTS;
    until_received(&farm, &flows, BEFORE, old.clone());
    let from = flows.from.clone();
    let owner_before = |s: usize| before[bucket(&farm, from[s])];
    assert_served(&farm, &flows, BEFORE, old.clone(), owner_before, "before the drain");
    let kept: Vec<usize> = old.clone().filter(|&s| owner_before(s) == 2).collect();
    assert!(!kept.is_empty(), "none of the old flows is node 2's");

    steer(&farm, 1, &["drain"]);
    let after = moved_row(&farm, &[1, 2, 3], slot, &before);
    assert!(!after.contains(&2), "node 2 drained owns buckets");
    let owner_after = |s: usize| after[bucket(&farm, from[s])];
    // Old and new flows together: the old stay where they were, node 2's included; the
    // new go to the new owners.
    flows.set(MOVED);
    // The new flows' datagrams pace the verdict: each old flow sent as many meanwhile.
    until_received(&farm, &flows, MOVED, new.clone());
    let (got, _) = received(&farm);
    let old_after: Vec<String> = old
        .clone()
        .map(|s| {
            let nodes = got.get(&(MOVED, s)).cloned().unwrap_or_default();
            format!("{} node {} -> {}: {nodes:?}", from[s], owner_before(s), owner_after(s))
        })
        .collect();
    eprintln!(
        "old flows after the drain (owner before -> after: datagrams per node): {old_after:#?}"
    );
    let kept_by_2 = wait_for(Duration::from_secs(5), || {
        (flows_kept(&farm, 1) == Some(kept.len() as u64)).then_some(())
    });
    let said = handover(&farm, 1);
    assert_served(&farm, &flows, MOVED, old.clone(), owner_before, "active flows after the drain");
    assert_served(&farm, &flows, MOVED, new.clone(), owner_after, "new flows after the drain");
    assert!(kept_by_2.is_some(), "node 2 keeps {} active flows, but says {said}", kept.len());
    // The old flows go quiet: once idle they have ended, and node 2 keeps none.
    flows.set(OLD_IDLE);
    let quiet = Instant::now();
    let idle = wait_for(FLOW_IDLE + SETTLE, || keeps_nothing(&farm, 1).then_some(()));
    assert!(
        idle.is_some(),
        "node 2 still keeps flows idle since {quiet:?}: {}",
        handover(&farm, 1)
    );
    let ended = quiet.elapsed();
    // Back from the same ports: new flows now, for the new owners.
    flows.set(RESUMED);
    until_received(&farm, &flows, RESUMED, 0..2 * UDP_CLIENTS);
    let sent = flows.finish();
    for phase in [OLD_IDLE, RESUMED] {
        assert_served(&farm, &flows, phase, new.clone(), owner_after, "new flows");
    }
    assert_served(&farm, &flows, RESUMED, old, owner_after, "old flows back after idling");
    let (got, twice) = received(&farm);
    let received: usize = got.values().flat_map(|n| n.values()).sum::<usize>() - twice.len();
    eprintln!(
        "udp drain: {} of the 16 old flows node 2's, kept by it after the drain; they ended {} ms after going quiet; {sent} datagrams sent, {received} received, {} by two nodes",
        kept.len(),
        ended.as_millis(),
        twice.len()
    );
    assert!(twice.is_empty(), "datagrams received by two nodes: {twice:?}");
}

/// `farm drain ARGS --config FILE` on node `i`, run to its end: its exit status and
/// what it said on stderr.
fn drain_on(farm: &NsFarm, i: usize, args: &[&str]) -> (std::process::ExitStatus, String) {
    let node = &farm.nodes[i];
    let out = command_in(&node.host.ns.name, farm_bin().unwrap().to_str().unwrap())
        .arg("drain")
        .args(args)
        .args(["--config", node.config.to_str().unwrap()])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    (out.status, String::from_utf8_lossy(&out.stderr).trim().to_string())
}

/// Connections open on node 2's buckets of the spread service, then `farm drain --wait`
/// on node 2 with `how` (the whole node, or one service): at its timeout it fails saying
/// how many remain; again, it waits while they are open and returns once they are
/// closed. Node 2 is undrained at the end. The client ports come from `ports`.
fn drain_wait(farm: &NsFarm, how: &[&str], ports: std::ops::Range<u16>) {
    let slot = farm.slot("spread");
    let before = agreed_row(farm, &[1, 2, 3], slot).unwrap();
    // A count no other number in its message is likely to be (node 2, 2 s, 0 UDP flows).
    let on_2 = 7;
    let sources = [
        endpoints(farm, ports.clone(), on_2, |b| before[b] == 2),
        endpoints(farm, ports, 9, |b| before[b] != 2),
    ]
    .concat();
    let pool = Pool::open(&farm.client.ns.name, &sources, spread(), SETTLE);

    // Open connections: it gives up at its timeout, saying how many remain.
    let timed_out = Instant::now();
    let (status, said) = drain_on(farm, 1, &[how, &["--wait", "--timeout", "2"]].concat());
    let took = timed_out.elapsed();
    eprintln!(
        "drain {how:?} --wait --timeout 2, {on_2} connections open: {status}, {said:?} after {} ms",
        took.as_millis()
    );
    assert!(!status.success(), "drain {how:?} --wait returned with {on_2} connections open");
    assert!(said.starts_with("farm: ") && said.lines().count() == 1, "one line: {said:?}");
    let numbers: Vec<usize> =
        said.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
    assert!(numbers.contains(&on_2), "{said:?}: want the {on_2} connections node 2 keeps");
    let after = moved_row(farm, &[1, 2, 3], slot, &before);
    assert!(!after.contains(&2), "node 2 drained ({how:?}) owns buckets of the spread service");

    // Again, with a timeout that does not matter: it waits while they are open, and
    // returns once they are closed.
    let bin = farm_bin().unwrap();
    let mut wait = command_in(&farm.nodes[1].host.ns.name, bin.to_str().unwrap())
        .arg("drain")
        .args(how)
        .args(["--wait", "--timeout", "60", "--config", farm.nodes[1].config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    pool.wait_lines(&pool.seen(), AFTER_MOVE, SETTLE);
    let early = wait.try_wait().unwrap();
    let closed = Instant::now();
    let seen = pool.close();
    let status = wait_for(SETTLE, || wait.try_wait().ok().flatten());
    if status.is_none() {
        let _ = wait.kill();
    }
    let _ = wait.wait();
    let ended: Vec<&Seen> = seen.iter().filter(|s| s.error.is_some()).collect();
    assert!(ended.is_empty(), "connections ended while node 2 drained: {ended:?}");
    assert!(
        early.is_none(),
        "drain {how:?} --wait returned with {on_2} connections open: {early:?}"
    );
    let status =
        status.unwrap_or_else(|| panic!("drain {how:?} --wait still waits\n{}", farm.report()));
    assert!(status.success(), "drain {how:?} --wait: {status}");
    eprintln!(
        "drain {how:?} --wait returned {} ms after the {on_2} connections closed",
        closed.elapsed().as_millis()
    );
    assert!(keeps_nothing(farm, 1), "node 2 says it keeps flows: {}", handover(farm, 1));
    steer(farm, 1, &[&["undrain"], how].concat());
    moved_row(farm, &[1, 2, 3], slot, &after);
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agents"]
fn drain_wait_returns_once_the_kept_connections_close_or_at_its_timeout() {
    let _one = one_at_a_time();
    let (mut farm, _echo) = echo_farm(&[1, 1, 1]);
    farm.start_agents().unwrap();
    farm.wait_converged(&[1, 2, 3]).unwrap();
    // Each with client ports of its own: the last one's are in TIME_WAIT.
    drain_wait(&farm, &[], 20_000..25_000);
    drain_wait(&farm, &["--service", "spread"], 25_000..30_000);
}
