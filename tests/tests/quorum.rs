//! `quorum: majority` in the deterministic simulation, on the agent's real core: a split
//! serves on one side only, ties go to the witness (or the lowest id), failures one after
//! another keep the service up down to the last node, and a booting minority waits.
//! Every event also runs the simulation's safety check: no sampled client packet is
//! accepted by two nodes, with no excuse under a quorum.
use std::collections::BTreeSet;

use farm_tests::sim::{
    Cut, Disturbance, RELIABLE, Sim, ms,
    scenario::{acceptors, ok, settle, start},
    spec::{Quorum, Spec},
};

fn spec(nodes: u16, quorum: Quorum) -> Spec {
    Spec { quorum, ..Spec::new(nodes) }
}

/// The nodes that accept some sampled packet now.
fn serving(sim: &Sim) -> BTreeSet<u16> {
    acceptors(sim).into_iter().flatten().collect()
}

/// How many sampled packets some node accepts now.
fn answered(sim: &Sim) -> usize {
    acceptors(sim).iter().filter(|a| a.is_some()).count()
}

/// Runs up to `within` ms until exactly `nodes` serve every packet the farm answered.
fn until_served_by(sim: &mut Sim, nodes: &[u16], all: usize, within: u64) {
    let want: BTreeSet<u16> = nodes.iter().copied().collect();
    let done =
        ok(sim.run_until(sim.now + ms(within), |s| serving(s) == want && answered(s) == all));
    assert!(
        done.is_some(),
        "{}",
        sim.failure(&format!("not served by exactly {want:?}: {:?}", serving(sim)))
    );
}

/// Runs for `time_ms` and checks that nobody accepts anything all along.
fn nobody_serves_for(sim: &mut Sim, time_ms: u64) {
    let end = sim.now + ms(time_ms);
    while sim.now < end {
        ok(sim.run_for(ms(50)));
        assert!(
            serving(sim).is_empty(),
            "{}",
            sim.failure(&format!("served by {:?}", serving(sim)))
        );
    }
}

fn cut(side: &[u16], witness: Option<bool>) -> Disturbance {
    Disturbance::Cut(Cut { side: side.to_vec(), witness })
}

fn said(sim: &Sim, node: u16, what: &str) -> bool {
    let prefix = format!("node {node}: ");
    sim.trace.iter().any(|l| l.contains(&prefix) && l.contains(what))
}

#[test]
fn a_cut_minority_fences_and_the_majority_serves_everything() {
    let (mut sim, _) = start(spec(3, Quorum::Majority));
    let all = answered(&sim);
    ok(sim.disturb(cut(&[3], None)));
    until_served_by(&mut sim, &[1, 2], all, 2000);
    assert!(said(&sim, 3, "no quorum: its view [3] holds 1 of the 3 votes [1, 2, 3]"));
    // The survivors tell the segment where the VIPs are, twice.
    ok(sim.run_for(ms(1500)));
    let sent = |id: u16| {
        let what = format!("node {id}: sends the announcements");
        sim.trace.iter().filter(|l| l.contains(&what)).count()
    };
    assert!(said(&sim, 1, "members now [1, 2]: announcing the VIPs"));
    assert!(sent(1) >= 2 && sent(2) >= 2, "{}", sim.failure("no announcements"));
    // It stays out as long as the cut lasts, and rejoins once healed.
    ok(sim.run_for(ms(3000)));
    assert_eq!(serving(&sim), BTreeSet::from([1, 2]));
    ok(sim.disturb(Disturbance::Heal));
    settle(&mut sim, ms(3000));
    assert_eq!(serving(&sim), BTreeSet::from([1, 2, 3]));
    // Both sides tell what they did while apart: node 3 served nothing.
    ok(sim.run_for(ms(1000)));
    let healed = "together again with node 3 after";
    assert!(
        said(&sim, 1, healed) && said(&sim, 1, "node 3 served 0 ms"),
        "{}",
        sim.failure("no heal report")
    );
    assert!(said(&sim, 3, "this node served 0 ms (up to 0 buckets)"));
    assert!(!sim.trace.iter().any(|l| l.contains("had two owners") && !l.contains("no bucket")));
}

#[test]
fn without_a_quorum_both_sides_serve_and_the_heal_says_how_long() {
    let (mut sim, _) = start(spec(3, Quorum::None));
    let all = answered(&sim);
    ok(sim.disturb(cut(&[3], None)));
    // Node 3 alone serves every client, and so do nodes 1 and 2 together.
    let both = |s: &mut Sim| s.owned(3) == all && s.owned(1) + s.owned(2) == all;
    assert!(ok(sim.run_until(sim.now + ms(2000), both)).is_some(), "{}", sim.failure("one side"));
    ok(sim.run_for(ms(2000)));
    ok(sim.disturb(Disturbance::Heal));
    settle(&mut sim, ms(3000));
    ok(sim.run_for(ms(1000)));
    let line = sim.trace.iter().find(|l| l.contains("node 1: together again with node 3"));
    let line = line.unwrap_or_else(|| panic!("{}", sim.failure("no heal report")));
    assert!(line.contains("both sides served: up to"), "{line}");
}

#[test]
fn a_tie_goes_to_the_lowest_id_or_to_the_half_holding_the_witness() {
    // No witness: nodes 1 and 2 hold the lowest id.
    let (mut sim, _) = start(spec(4, Quorum::Majority));
    let all = answered(&sim);
    ok(sim.disturb(cut(&[1, 2], None)));
    until_served_by(&mut sim, &[1, 2], all, 2000);
    // The witness on the side of nodes 3 and 4: they win, whatever their ids.
    let (mut sim, _) = start(spec(4, Quorum::Witness));
    ok(sim.disturb(cut(&[3, 4], Some(true))));
    until_served_by(&mut sim, &[3, 4], all, 3000);
    assert!(said(&sim, 1, "no quorum: its view [1, 2] holds 2 of the 4 votes"));
    // The witness reachable from both sides: exactly one side holds its vote.
    let (mut sim, _) = start(spec(4, Quorum::Witness));
    ok(sim.disturb(cut(&[1, 2], None)));
    let one_side = |s: &mut Sim| {
        let n = serving(s);
        answered(s) == all && (n == BTreeSet::from([1, 2]) || n == BTreeSet::from([3, 4]))
    };
    assert!(
        ok(sim.run_until(sim.now + ms(3000), one_side)).is_some(),
        "{}",
        sim.failure("no side")
    );
    ok(sim.run_for(ms(3000)));
    assert!(one_side(&mut sim), "{}", sim.failure("the vote moved"));
}

#[test]
fn with_the_witness_down_a_tie_serves_nobody_and_a_majority_serves_on() {
    let (mut sim, _) = start(spec(4, Quorum::Witness));
    let all = answered(&sim);
    ok(sim.disturb(Disturbance::Witness(false)));
    ok(sim.run_for(ms(2000)));
    assert_eq!(answered(&sim), all, "the whole farm needs no witness");
    ok(sim.disturb(cut(&[1, 2], None)));
    ok(sim.run_for(ms(1000)));
    nobody_serves_for(&mut sim, 2000);
    assert!(said(&sim, 1, "grants it to nobody now"));
    // Node 4 dies instead: three of four serve without the witness.
    ok(sim.disturb(Disturbance::Heal));
    settle(&mut sim, ms(3000));
    ok(sim.disturb(Disturbance::Kill(4)));
    until_served_by(&mut sim, &[1, 2, 3], all, 2000);
}

#[test]
fn failures_one_after_another_leave_the_last_node_serving() {
    // Without a witness, the last man is the one with the lowest id of the last pair.
    for (first, second, last) in [(2, 3, 1), (3, 2, 1)] {
        let (mut sim, _) = start(spec(3, Quorum::Majority));
        let all = answered(&sim);
        ok(sim.disturb(Disturbance::Kill(first)));
        let pair: Vec<u16> = [1, 2, 3].into_iter().filter(|&id| id != first).collect();
        until_served_by(&mut sim, &pair, all, 2000);
        ok(sim.disturb(Disturbance::Kill(second)));
        until_served_by(&mut sim, &[last], all, 2000);
    }
    // Node 1 first, then node 2: node 3 alone holds half of {2, 3} without the lowest
    // id, and might be cut from a live node 2: it serves nothing...
    let (mut sim, _) = start(spec(3, Quorum::Majority));
    let all = answered(&sim);
    ok(sim.disturb(Disturbance::Kill(1)));
    until_served_by(&mut sim, &[2, 3], all, 2000);
    ok(sim.disturb(Disturbance::Kill(2)));
    ok(sim.run_for(ms(1000)));
    nobody_serves_for(&mut sim, 2000);
    assert!(said(&sim, 3, "no quorum: its view [3] holds 1 of the 2 votes [2, 3]"));
    // ... unless the witness gives it the tie: any survivor goes on.
    let (mut sim, _) = start(spec(3, Quorum::Witness));
    let all = answered(&sim);
    ok(sim.disturb(Disturbance::Kill(1)));
    until_served_by(&mut sim, &[2, 3], all, 2000);
    ok(sim.disturb(Disturbance::Kill(2)));
    until_served_by(&mut sim, &[3], all, 3000);
}

#[test]
fn a_booting_minority_serves_nothing_until_a_majority_is_up() {
    let mut sim = Sim::new(spec(3, Quorum::Majority), 1, RELIABLE, ms(20));
    // All three start; two die before the first view is agreed.
    ok(sim.run_for(ms(100)));
    ok(sim.disturb(Disturbance::Kill(2)));
    ok(sim.disturb(Disturbance::Kill(3)));
    nobody_serves_for(&mut sim, 3000);
    assert!(said(&sim, 1, "no quorum: its view [1] holds 1 of the 3 votes [1, 2, 3]"));
    ok(sim.disturb(Disturbance::Restart(2)));
    settle(&mut sim, ms(3000));
    assert_eq!(serving(&sim), BTreeSet::from([1, 2]));
}

#[test]
fn two_nodes_and_a_witness_fail_over_either_way_and_never_split() {
    for dead in [1, 2] {
        let (mut sim, _) = start(spec(2, Quorum::Witness));
        let all = answered(&sim);
        ok(sim.disturb(Disturbance::Kill(dead)));
        until_served_by(&mut sim, &[3 - dead], all, 3000);
    }
    // Cut apart, the witness hearing both: one serves, the other fences.
    let (mut sim, _) = start(spec(2, Quorum::Witness));
    let all = answered(&sim);
    ok(sim.disturb(cut(&[1], None)));
    let one = |s: &mut Sim| answered(s) == all && serving(s).len() == 1;
    assert!(ok(sim.run_until(sim.now + ms(3000), one)).is_some(), "{}", sim.failure("nobody"));
    let side = serving(&sim);
    ok(sim.run_for(ms(2000)));
    assert_eq!(serving(&sim), side, "{}", sim.failure("the other side served"));
    // Node 2 leaves cleanly; node 1, alone with the witness, serves.
    let (mut sim, _) = start(spec(2, Quorum::Witness));
    ok(sim.disturb(Disturbance::Leave(2)));
    until_served_by(&mut sim, &[1], all, 2000);
}
