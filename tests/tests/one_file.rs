//! One file for every node: a file that leaves `cluster.node_id` out names each node by
//! the peer address its host holds, and says so; a host that holds none of them, or
//! several, is refused in one line with the file, line and field. (That three agents
//! reading one such file converge and serve is in `package`, with the packaged binary.)
use farm_tests::{
    farm::{NsFarm, Ownership, failure, node_addr},
    netns::ip,
};

#[test]
#[ignore = "needs root: network namespaces"]
fn a_file_without_node_id_finds_the_node_by_its_address() {
    let farm = NsFarm::new(3, 1, 64, Ownership::StaticThirds).expect("namespace farm");
    let node = &farm.nodes[0];
    let text = std::fs::read_to_string(&node.config).unwrap().replacen("  node_id: 1\n", "", 1);
    let one = farm.dir.join("one.yaml");
    std::fs::write(&one, &text).unwrap();
    let one = one.to_str().unwrap();
    let out = farm.farm(node, &["check", one]).unwrap();
    assert!(out.contains("node 1 is the peer at 198.18.0.11, an address of this host"), "{out}");

    // Node 1 at another address: this host holds none of the peers'.
    let others = text.replace(&format!("{}:", node_addr(1)), &format!("{}:", node_addr(9)));
    let none = farm.dir.join("none.yaml");
    std::fs::write(&none, others).unwrap();
    let err = failure(node, &["check", none.to_str().unwrap()]);
    assert!(
        err.starts_with(&format!(
            "farm: {}:1: cluster.node_id: is left out, and no peer's address is on this host",
            none.display()
        )),
        "{err}"
    );

    // Node 2's address too: two peers are this host.
    let ns = &node.host.ns.name;
    ip(&["-n", ns, "addr", "add", &format!("{}/16", node_addr(2)), "dev", &node.host.iface])
        .unwrap();
    let err = failure(node, &["check", one]);
    assert!(
        err.contains("cluster.node_id: is left out, and the addresses of several peers are on this host (nodes 1 (198.18.0.11), 2 (198.18.0.12)); set it to this node's id"),
        "{err}"
    );
}
