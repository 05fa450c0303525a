//! A farm of 16 agents in namespaces (issue 13): it agrees on one view, a node's failure
//! moves its clients to the others, and the node comes back to its share. No timing is
//! asserted: the figures at 4 to 64 nodes are table E of `cargo xtask bench`.
use std::time::Duration;

use farm_tests::{agents::SETTLE, scale::big_farm};

const NODES: usize = 16;

#[test]
#[ignore = "needs root: network namespaces and XDP"]
fn sixteen_agents_agree_fail_over_and_take_a_node_back() {
    let mut farm = big_farm(NODES).unwrap();
    farm.start_agents().unwrap();
    let all: Vec<u16> = (1..=NODES as u16).collect();
    farm.wait_agreed(&all, SETTLE).unwrap();
    let last = NODES - 1;
    let row = farm.dataplane(&farm.nodes[0]).unwrap().row(farm.slot("spread")).unwrap();
    let probes = farm.probes_owned_by(&row, NODES as u16, 4);
    let before = farm.ask_from(&probes, Duration::from_secs(3));
    assert!(before.iter().all(|a| a.as_deref() == Some("n16")), "node 16 answers {before:?}");

    // The cable pulled and the agent killed: the others fail it and take its clients.
    farm.link(last, false).unwrap();
    farm.kill_agent(last).unwrap();
    farm.wait_agreed(&farm.ids_but(last), SETTLE).unwrap();
    let survivors = farm.names_but(last);
    let by: Vec<&str> = survivors.iter().map(String::as_str).collect();
    farm.served_after(std::time::Instant::now(), &probes, &by).unwrap();

    // Back: it rejoins, and its clients are its own again.
    farm.link(last, true).unwrap();
    farm.start_agent(last).unwrap();
    farm.wait_agreed(&all, SETTLE).unwrap();
    farm.served_after(std::time::Instant::now(), &probes, &["n16"]).unwrap();
    for i in 0..NODES {
        let h = farm.agent_status(i).unwrap().heartbeats;
        assert_eq!(h.forged + h.malformed + h.foreign, 0, "node {}: {h:?}", i + 1);
    }
}
