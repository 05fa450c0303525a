//! `quorum: majority` on real agents: farms in network namespaces cut apart by the chaos
//! soak's nftables rules (heartbeats dropped both ways, clients still reaching every
//! node) while 16 clients send numbered UDP datagrams. What a user would see: the side
//! without a majority fences and `farm status` says why, the other side serves every
//! client, no number ever reaches two nodes, and the farm is whole again once healed; a
//! 2|2 cut goes to the half the witness names; failures one after another leave the last
//! node serving; a node that boots alone serves nothing until a second one is up.
use std::{
    collections::{BTreeMap, BTreeSet},
    fs::File,
    net::{Ipv4Addr, SocketAddr},
    ops::Range,
    process::Child,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use farm_tests::{
    agents::SETTLE,
    chaos::cut::Cut,
    farm::{NsFarm, Ownership, UDP_PORT, VIP, farm_bin},
    netns::{Host, command_in, enter, ip, wait_for},
    traffic::send_numbered_until,
};
use serde_json::{Value, json};

const CLIENTS: usize = 16;
const BUCKETS: u32 = 4096;
/// At most 500 datagrams a second, from the clients in turn: number n from client n % 16.
const GAP: Duration = Duration::from_millis(2);
/// The longest a stream of numbers runs, whatever the test does.
const LONGEST: Duration = Duration::from_secs(120);
/// How long a cut lasts at least, and a node booting alone is watched.
const WHILE: Duration = Duration::from_secs(4);
const MAJORITY: &str = "  quorum: majority\n";
/// The witness: another machine on the farm's segment.
const WITNESS: (Ipv4Addr, u16) = (Ipv4Addr::new(198, 18, 0, 200), 7401);

/// A farm of `nodes` agents (none started) whose files hold `cluster` in their cluster
/// section: the quorum, the witness.
fn quorum_farm(nodes: usize, cluster: &str) -> NsFarm {
    weighted_quorum_farm(vec![1; nodes], cluster)
}

/// The same, with the nodes' weights.
fn weighted_quorum_farm(weights: Vec<u32>, cluster: &str) -> NsFarm {
    let farm = NsFarm::new(weights.len(), CLIENTS, BUCKETS, Ownership::Agents { weights })
        .expect("build the namespace farm");
    for n in &farm.nodes {
        let text = std::fs::read_to_string(&n.config).unwrap();
        let text = text.replacen("  peers:\n", &format!("{cluster}  peers:\n"), 1);
        std::fs::write(&n.config, text).unwrap();
    }
    farm
}

/// `quorum: majority` and the witness, for the cluster section.
fn with_witness() -> String {
    format!("{MAJORITY}  witness: \"{}:{}\"\n", WITNESS.0, WITNESS.1)
}

/// Numbered datagrams to the numbered service from every client in turn, from the
/// client's namespace, until stopped (or `LONGEST`). Stopped on drop.
struct Numbers {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<anyhow::Result<Vec<Instant>>>>,
}

impl Numbers {
    fn start(farm: &NsFarm) -> Numbers {
        let (stop, sent) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (ns, clients) = (farm.client.ns.name.clone(), farm.clients.clone());
        let (until, count) = (stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            enter(&ns)?;
            let vip = SocketAddr::new(VIP.into(), UDP_PORT);
            send_numbered_until(&clients, vip, GAP, LONGEST, &until, &count)
        });
        Numbers { stop, sent, thread: Some(thread) }
    }

    /// How many numbers went out so far: the next ones are sent after this moment.
    fn mark(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Ends the stream and waits for the servers to catch up: what became of the numbers.
    fn finish(mut self, farm: &NsFarm) -> Figures {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().expect("a running stream");
        let sent = thread.join().expect("the sender panicked").expect("send the numbers");
        catch_up(farm);
        Figures::of(farm, sent.len() as u64)
    }
}

impl Drop for Numbers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The nodes that received each number so far.
fn receivers(farm: &NsFarm) -> BTreeMap<u64, BTreeSet<u16>> {
    let mut got: BTreeMap<u64, BTreeSet<u16>> = BTreeMap::new();
    for n in &farm.nodes {
        for number in n.udp.numbers() {
            got.entry(number).or_default().insert(n.id);
        }
    }
    got
}

/// For each client, the nodes that received its numbers among `range`.
fn by_client(got: &BTreeMap<u64, BTreeSet<u16>>, range: Range<u64>) -> Vec<BTreeSet<u16>> {
    let mut per = vec![BTreeSet::new(); CLIENTS];
    for (number, nodes) in got.range(range) {
        per[*number as usize % CLIENTS].extend(nodes);
    }
    per
}

/// Waits until some number of every client sent from `from` on was received: for each
/// client, the nodes that received its numbers from `from` to that moment.
fn until_served(farm: &NsFarm, numbers: &Numbers, from: u64, when: &str) -> Vec<BTreeSet<u16>> {
    let mut last = Vec::new();
    let served = wait_for(SETTLE, || {
        last = by_client(&receivers(farm), from..numbers.mark());
        last.iter().all(|nodes| !nodes.is_empty()).then(|| last.clone())
    });
    served.unwrap_or_else(|| {
        let silent: Vec<usize> = (0..CLIENTS).filter(|&c| last[c].is_empty()).collect();
        panic!("{when}: no number of clients {silent:?} was received\n{}", farm.report())
    })
}

/// Waits until every node's server has recorded what its program accepted for the
/// numbered service (a full socket buffer drops datagrams after that: lost, below).
fn catch_up(farm: &NsFarm) {
    let slot = farm.slot("numbered") as u32;
    let caught_up = |i: usize| {
        let node = &farm.nodes[i];
        // A node whose agent never ran has no program: it accepts nothing.
        let Ok(dp) = farm.dataplane(node) else { return true };
        dp.counters(slot).is_ok_and(|c| c.accepted == node.udp.numbers().len() as u64)
    };
    if wait_for(SETTLE, || (0..farm.nodes.len()).all(caught_up).then_some(())).is_none() {
        eprintln!("the servers recorded fewer datagrams than their programs accepted");
    }
}

/// What became of the numbers, for the closing note.
#[derive(Debug)]
struct Figures {
    sent: u64,
    received: usize,
    twice: usize,
    lost: u64,
}

impl Figures {
    fn of(farm: &NsFarm, sent: u64) -> Figures {
        let got = receivers(farm);
        let twice = got.values().filter(|nodes| nodes.len() > 1).count();
        Figures { sent, received: got.len(), twice, lost: sent - got.len() as u64 }
    }

    fn print(&self, test: &str) {
        eprintln!(
            "{test}: {} numbers sent, {} received, {} by two nodes, {} lost",
            self.sent, self.received, self.twice, self.lost
        );
    }
}

/// What node `i`'s agent says in `farm status --json` (asked again if `farm status`
/// fails, as on a busy machine it may; null if it never answers).
fn agent(farm: &NsFarm, i: usize) -> Value {
    let status = wait_for(Duration::from_secs(5), || farm.status(i).ok());
    status.map_or(Value::Null, |s| s["agent"].clone())
}

/// Why node `i` owns nothing, if its status says it is fenced for want of a quorum.
fn no_quorum(farm: &NsFarm, i: usize) -> Option<String> {
    let reason = agent(farm, i)["fenced"].as_str()?.to_string();
    reason.starts_with("no quorum").then_some(reason)
}

/// Waits until node `i` says it is fenced for want of a quorum: the reason it gives.
fn wait_no_quorum(farm: &NsFarm, i: usize) -> String {
    wait_for(SETTLE, || no_quorum(farm, i))
        .unwrap_or_else(|| panic!("node {} never said it had no quorum\n{}", i + 1, farm.report()))
}

/// Whether node `i` says it serves: quorate, not fenced, installed on `members`.
fn serves_as(farm: &NsFarm, i: usize, members: &[u16]) -> bool {
    let a = agent(farm, i);
    a["quorum"]["quorate"] == true
        && a["fenced"].is_null()
        && a["phase"] == "installed"
        && a["members"] == json!(members)
}

/// Each client's node, from what the numbers in `per` reached: one node each.
fn owners(per: &[BTreeSet<u16>], when: &str) -> Vec<u16> {
    per.iter()
        .enumerate()
        .map(|(c, nodes)| {
            assert_eq!(nodes.len(), 1, "{when}: client {c}'s numbers reached nodes {nodes:?}");
            *nodes.first().unwrap()
        })
        .collect()
}

/// Asserts that no node outside `serving` received a number among `range`.
fn assert_only(farm: &NsFarm, range: Range<u64>, serving: &[u16], when: &str) {
    let got = receivers(farm);
    let outside = |nodes: &&BTreeSet<u16>| nodes.iter().any(|id| !serving.contains(id));
    let strays: Vec<_> = got.range(range).filter(|(_, nodes)| outside(nodes)).take(3).collect();
    assert!(strays.is_empty(), "{when}: numbers reached nodes outside {serving:?}: {strays:?}");
}

/// Calls `check` (which asserts) at every poll until `WHILE` has passed since `since`:
/// what must hold all along.
fn watch(since: Instant, mut check: impl FnMut()) {
    wait_for(WHILE + SETTLE, || {
        check();
        (since.elapsed() >= WHILE).then_some(())
    });
}

/// A three-node farm under numbered UDP, node 3 cut off from nodes 1 and 2 for a while,
/// then healed. `quorum` goes in the files.
struct CutRun {
    farm: NsFarm,
    figures: Figures,
    /// Each client's node before the cut.
    before: Vec<u16>,
    /// Numbers sent from the moment nodes 1 and 2 settled without node 3 to the heal.
    during: Range<u64>,
    /// Why node 3 said it owned nothing, sampled all through the cut (majority).
    fenced: Vec<Option<String>>,
    /// Each client's nodes, for numbers sent once the farm had healed.
    after: Vec<BTreeSet<u16>>,
}

fn cut_node_3(quorum: &str) -> CutRun {
    let majority = quorum == "majority";
    // Node 3 weighs 3 of 5, so that some of the 16 clients' random ports are its own
    // before the cut (none is a chance of (2/5)^16).
    let mut farm = weighted_quorum_farm(vec![1, 1, 3], &format!("  quorum: {quorum}\n"));
    farm.start_agents().unwrap();
    farm.wait_converged(&[1, 2, 3]).unwrap();
    for i in 0..3 {
        let q = agent(&farm, i)["quorum"].clone();
        assert!(q["mode"] == quorum && q["quorate"] == true, "node {}: {q}", i + 1);
    }
    let numbers = Numbers::start(&farm);
    let before = owners(&until_served(&farm, &numbers, 0, "before the cut"), "before the cut");
    let cut = Cut::new(&farm, &[2]).unwrap();
    let cut_at = Instant::now();
    farm.wait_converged(&[1, 2]).unwrap();
    if majority {
        wait_no_quorum(&farm, 2);
    } else {
        farm.wait_converged(&[3]).unwrap();
    }
    let settled = numbers.mark();
    until_served(&farm, &numbers, settled, "during the cut");
    // The cut lasts a while; node 3's status is sampled all along.
    let mut fenced = Vec::new();
    watch(cut_at, || fenced.push(agent(&farm, 2)["fenced"].as_str().map(String::from)));
    let healing = numbers.mark();
    drop(cut);
    farm.wait_converged(&[1, 2, 3]).unwrap();
    let healed = numbers.mark();
    let after = until_served(&farm, &numbers, healed, "after the heal");
    let figures = numbers.finish(&farm);
    CutRun { farm, figures, before, during: settled..healing, fenced, after }
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agents"]
fn majority_a_node_cut_off_fences_and_the_other_two_serve_its_clients() {
    let run = cut_node_3("majority");
    let farm = &run.farm;
    run.figures.print("majority, node 3 cut off");
    assert_eq!(run.figures.twice, 0, "numbers reached two nodes with quorum: majority");
    // Node 3 said all through the cut that it had no quorum, and why.
    let said: BTreeSet<&Option<String>> = run.fenced.iter().collect();
    eprintln!("node 3 during the cut: {said:?}");
    let unsaid =
        run.fenced.iter().find(|r| !r.as_ref().is_some_and(|r| r.starts_with("no quorum")));
    assert!(unsaid.is_none(), "node 3 said {unsaid:?} during the cut\n{}", farm.report());
    assert!(
        said.iter().copied().flatten().any(|r| r.contains("holds 1 of the 3 votes [1, 2, 3]")),
        "{said:?}"
    );
    // Nodes 1 and 2 served every client once they settled, node 3's clients included.
    let during = by_client(&receivers(farm), run.during.clone());
    let of_node_3: Vec<usize> = (0..CLIENTS).filter(|&c| run.before[c] == 3).collect();
    assert!(!of_node_3.is_empty(), "no client of node 3 before the cut: {:?}", run.before);
    for (c, nodes) in during.iter().enumerate() {
        assert!(!nodes.is_empty(), "client {c} was not served during the cut");
    }
    assert_only(farm, run.during.clone(), &[1, 2], "while node 3 was cut off");
    eprintln!(
        "node 3's clients {of_node_3:?} served by nodes {:?} during the cut",
        of_node_3.iter().map(|&c| &during[c]).collect::<Vec<_>>()
    );
    // Healed: all three serve, each client by its node of before.
    for i in 0..3 {
        assert!(serves_as(farm, i, &[1, 2, 3]), "node {}: {}", i + 1, agent(farm, i));
    }
    let after = owners(&run.after, "after the heal");
    assert_eq!(after, run.before, "each client back on its node");
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agents"]
fn without_quorum_a_node_cut_off_serves_on_beside_the_others() {
    let run = cut_node_3("none");
    run.figures.print("quorum: none, node 3 cut off (the comparison)");
    let twice_during =
        receivers(&run.farm).range(run.during.clone()).filter(|(_, n)| n.len() > 1).count();
    eprintln!(
        "quorum: none: {twice_during} of the {} numbers sent while the cut had settled reached two nodes",
        run.during.end - run.during.start
    );
    // Sanity: without a quorum nobody fences for one, and the farm is whole again.
    assert!(run.fenced.iter().flatten().all(|r| !r.starts_with("no quorum")), "{:?}", run.fenced);
    assert!(run.figures.received > 0);
    assert_eq!(owners(&run.after, "after the heal"), run.before, "each client back on its node");
}

/// A `farm witness` on a host of its own on the farm's segment; killed on drop.
struct Witness {
    child: Child,
    log: std::path::PathBuf,
    _host: Host,
}

impl Witness {
    fn start(farm: &NsFarm) -> Witness {
        let host = farm.extra_host("w", &[format!("{}/16", WITNESS.0)]).unwrap();
        let log = farm.dir.join("witness.log");
        let out = File::create(&log).unwrap();
        let (listen, key) = (format!("{}:{}", WITNESS.0, WITNESS.1), farm.dir.join("key"));
        let child = command_in(&host.ns.name, farm_bin().unwrap().to_str().unwrap())
            .args(["witness", "--listen", &listen, "--key", key.to_str().unwrap()])
            // It grants nothing this long after it starts: short, so the farm waits little.
            .args(["--max-lease-ms", "1000"])
            .env("RUST_LOG", "info")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Witness { child, log, _host: host }
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agents"]
fn majority_with_a_witness_a_two_two_cut_is_served_by_one_half() {
    let mut farm = quorum_farm(4, &with_witness());
    let witness = Witness::start(&farm);
    farm.start_agents().unwrap();
    farm.wait_converged(&[1, 2, 3, 4]).unwrap();
    // Every node hears the witness, which gives its vote to the whole farm.
    let whole = wait_for(SETTLE, || {
        (0..4)
            .all(|i| agent(&farm, i)["quorum"]["witness"]["holder"] == json!([1, 2, 3, 4]))
            .then_some(())
    });
    let log = std::fs::read_to_string(&witness.log).unwrap_or_default();
    assert!(whole.is_some(), "the witness never held for [1, 2, 3, 4]: {log}\n{}", farm.report());
    let numbers = Numbers::start(&farm);
    let before = owners(&until_served(&farm, &numbers, 0, "before the cut"), "before the cut");
    let cut = Cut::new(&farm, &[0, 1]).unwrap();
    let cut_at = Instant::now();
    // One half serves, the other says it has no quorum.
    let halves = [[1u16, 2], [3, 4]];
    let split = wait_for(SETTLE, || {
        halves.iter().position(|half| {
            let other = if half[0] == 1 { [3u16, 4] } else { [1, 2] };
            half.iter().all(|&id| serves_as(&farm, usize::from(id) - 1, half))
                && other.iter().all(|&id| no_quorum(&farm, usize::from(id) - 1).is_some())
        })
    });
    let winner = split.unwrap_or_else(|| panic!("no half took the cut\n{}", farm.report()));
    let (won, lost) = (halves[winner], halves[1 - winner]);
    let settled = numbers.mark();
    let during = until_served(&farm, &numbers, settled, "during the cut");
    // The other half hears the witness too: it is told the serving half holds the vote.
    let holder = |id: u16| agent(&farm, usize::from(id) - 1)["quorum"]["witness"]["holder"].clone();
    let told = wait_for(SETTLE, || lost.iter().all(|&id| holder(id) == json!(won)).then_some(()));
    assert!(
        told.is_some(),
        "nodes {lost:?} never heard that {won:?} hold the witness's vote\n{}",
        farm.report()
    );
    // It lasts a while: the winners hold the witness's vote, the others stay out.
    let mut reasons = BTreeSet::new();
    watch(cut_at, || {
        for id in won {
            let w = agent(&farm, usize::from(id) - 1)["quorum"]["witness"].clone();
            assert!(w["held"] == true, "node {id} of the serving half: witness {w}");
        }
        for id in lost {
            let reason = no_quorum(&farm, usize::from(id) - 1);
            assert!(reason.is_some(), "node {id} of the other half serves\n{}", farm.report());
            // The reason names the view the witness gave its vote to, as it is now.
            let named = format!("gives it to view {won:?}");
            let current = reason.as_ref().is_some_and(|r| r.contains(&named));
            assert!(current, "node {id} says {reason:?}, not {named}");
            reasons.extend(reason);
        }
    });
    eprintln!("the cut went to nodes {won:?}; nodes {lost:?} said {reasons:?}");
    let healing = numbers.mark();
    drop(cut);
    farm.wait_converged(&[1, 2, 3, 4]).unwrap();
    let healed = numbers.mark();
    let after = owners(&until_served(&farm, &numbers, healed, "after the heal"), "after the heal");
    let figures = numbers.finish(&farm);
    figures.print("majority and a witness, nodes 1,2 cut from 3,4");
    assert_eq!(figures.twice, 0, "numbers reached two nodes with quorum: majority");
    assert!(during.iter().all(|nodes| nodes.iter().all(|id| won.contains(id))), "{during:?}");
    assert_only(&farm, settled..healing, &won, "while the halves were cut apart");
    assert_eq!(after, before, "each client back on its node");
}

/// A three-node farm under numbered UDP whose agents (by node id) `first`, then
/// `second`, are killed (SIGKILL: their programs stay attached), the second once the
/// other two have agreed on a view without the first and serve every client.
fn kill_in_turn(mut farm: NsFarm, first: u16, second: u16) -> (NsFarm, Numbers) {
    farm.start_agents().unwrap();
    farm.wait_converged(&[1, 2, 3]).unwrap();
    let numbers = Numbers::start(&farm);
    until_served(&farm, &numbers, 0, "with three nodes");
    farm.kill_agent(usize::from(first) - 1).unwrap();
    let pair: Vec<u16> = [1, 2, 3].into_iter().filter(|&id| id != first).collect();
    farm.wait_converged(&pair).unwrap();
    let since = numbers.mark();
    until_served(&farm, &numbers, since, &format!("with nodes {pair:?}"));
    // The agreed failure shrank the votes to the pair.
    let votes = agent(&farm, usize::from(second) - 1)["quorum"]["votes"].clone();
    assert_eq!(votes, json!(pair), "node {second}'s votes");
    farm.kill_agent(usize::from(second) - 1).unwrap();
    (farm, numbers)
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agents"]
fn majority_failures_one_after_another_leave_the_last_node_serving() {
    let (farm, numbers) = kill_in_turn(quorum_farm(3, MAJORITY), 3, 2);
    farm.wait_converged(&[1]).unwrap();
    let alone = numbers.mark();
    until_served(&farm, &numbers, alone, "with node 1 alone");
    // It goes on serving alone: it never fences for want of its peers' votes.
    watch(Instant::now(), || {
        assert!(serves_as(&farm, 0, &[1]), "node 1 alone: {}", agent(&farm, 0));
    });
    assert_eq!(agent(&farm, 0)["quorum"]["votes"], json!([1]), "{}", agent(&farm, 0));
    let figures = numbers.finish(&farm);
    let sent = figures.sent;
    figures.print("majority, node 3 then node 2 killed");
    assert_eq!(figures.twice, 0, "numbers reached two nodes with quorum: majority");
    let served = by_client(&receivers(&farm), alone..sent);
    assert!(served.iter().all(|nodes| nodes == &BTreeSet::from([1])), "{served:?}");
    assert_only(&farm, alone..sent, &[1], "with node 1 alone");
    let got = receivers(&farm);
    eprintln!(
        "node 1 alone received {} of the {} numbers sent after it settled, from all {CLIENTS} clients",
        got.range(alone..sent).count(),
        sent - alone
    );
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agents"]
fn majority_a_node_booting_alone_serves_nothing_until_a_second_is_up() {
    let mut farm = quorum_farm(3, MAJORITY);
    farm.start_agent(0).unwrap();
    let reason = wait_no_quorum(&farm, 0);
    assert!(
        reason.starts_with("no quorum: its view [1] holds 1 of the 3 votes [1, 2, 3]"),
        "{reason}"
    );
    // The client's frames for the VIP go to the cluster MAC whether or not a node answers
    // its ARP requests, so node 1's program sees the numbers and must refuse them.
    let cfg = farm_userspace::config::load(&farm.nodes[0].config).unwrap();
    let mac = farm_userspace::nic::format_mac(&cfg.cluster.cluster_mac);
    let (ns, iface) = (&farm.client.ns.name, &farm.client.iface);
    let vip = VIP.to_string();
    ip(&["-n", ns, "neigh", "replace", &vip, "lladdr", &mac, "dev", iface, "nud", "permanent"])
        .unwrap();
    let slot = farm.slot("numbered") as u32;
    let numbers = Numbers::start(&farm);
    watch(Instant::now(), || {
        let reason = no_quorum(&farm, 0);
        assert!(reason.is_some(), "node 1 alone: {}\n{}", agent(&farm, 0), farm.report());
        assert_only(&farm, 0..numbers.mark(), &[], "with node 1 alone");
    });
    let counters = farm.dataplane(&farm.nodes[0]).unwrap().counters(slot).unwrap();
    let refused = counters.not_owner + counters.lease_expired;
    eprintln!(
        "node 1 alone: {} numbers sent, {refused} refused by its program, {} accepted",
        numbers.mark(),
        counters.accepted
    );
    assert!(refused > 0 && counters.accepted == 0, "node 1 alone: {counters:?}");
    farm.start_agent(1).unwrap();
    farm.wait_converged(&[1, 2]).unwrap();
    let pair = numbers.mark();
    let served = until_served(&farm, &numbers, pair, "with nodes 1 and 2");
    let figures = numbers.finish(&farm);
    eprintln!(
        "{pair} numbers sent before nodes 1 and 2 settled; none received while node 1 was alone"
    );
    figures.print("majority, node 1 booted alone, then node 2");
    assert_eq!(figures.twice, 0, "numbers reached two nodes with quorum: majority");
    assert!(served.iter().all(|nodes| nodes.iter().all(|&id| id <= 2)), "{served:?}");
    for i in 0..2 {
        assert!(serves_as(&farm, i, &[1, 2]), "node {}: {}", i + 1, agent(&farm, i));
    }
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agents"]
fn majority_node_3_left_alone_of_the_pair_2_3_fences() {
    // Node 1 fails, then node 2: node 3 holds half of the votes [2, 3] without the lowest
    // id, so it cannot tell a dead node 2 from one cut off and serving: it serves nothing.
    let (farm, numbers) = kill_in_turn(quorum_farm(3, MAJORITY), 1, 2);
    let reason = wait_no_quorum(&farm, 2);
    assert!(
        reason.starts_with("no quorum: its view [3] holds 1 of the 2 votes [2, 3]"),
        "{reason}"
    );
    let fenced = numbers.mark();
    watch(Instant::now(), || {
        assert!(no_quorum(&farm, 2).is_some(), "node 3 alone: {}", agent(&farm, 2));
        assert_only(&farm, fenced..numbers.mark(), &[], "with node 3 alone and fenced");
    });
    let figures = numbers.finish(&farm);
    figures.print("majority, node 1 then node 2 killed");
    assert_eq!(figures.twice, 0, "numbers reached two nodes with quorum: majority");
    eprintln!(
        "node 3 fenced: {reason}; none of the {} numbers sent since received",
        figures.sent - fenced
    );
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agents"]
fn majority_with_a_witness_node_3_left_alone_of_the_pair_2_3_serves() {
    // The order that fences node 3 without a witness: with one, the tie of [2, 3] is the
    // witness's to give, and node 2 is not there to ask for it.
    let farm = quorum_farm(3, &with_witness());
    let _witness = Witness::start(&farm);
    let (farm, numbers) = kill_in_turn(farm, 1, 2);
    farm.wait_converged(&[3]).unwrap();
    let alone = numbers.mark();
    until_served(&farm, &numbers, alone, "with node 3 alone");
    watch(Instant::now(), || {
        assert!(serves_as(&farm, 2, &[3]), "node 3 alone: {}", agent(&farm, 2));
    });
    assert_eq!(agent(&farm, 2)["quorum"]["witness"]["held"], json!(true), "{}", agent(&farm, 2));
    let figures = numbers.finish(&farm);
    let sent = figures.sent;
    figures.print("majority and a witness, node 1 then node 2 killed");
    assert_eq!(figures.twice, 0, "numbers reached two nodes with quorum: majority");
    assert_only(&farm, alone..sent, &[3], "with node 3 alone");
}
