//! The read commands as an operator runs them on a loaded farm: three nodes in network
//! namespaces holding the static thirds of 4096 buckets, `farm` run inside node 1's
//! namespace against the maps `farm load` pinned.
use std::{collections::BTreeMap, net::SocketAddr};

use farm_common::{bucket_of, flow_hash};
use farm_tests::{
    farm::{Node, NsFarm, Ownership, SPREAD_PORT, VIP, failure},
    netns::in_ns,
    traffic::ask_tcp,
};
use farm_userspace::rules::addr_key;
use serde_json::{Value, json};

/// `farm ARGS --json` in `node`'s namespace, parsed.
fn json_of(farm: &NsFarm, node: &Node, args: &[&str]) -> Value {
    let out = farm
        .farm(node, &[args, &["--json"]].concat())
        .unwrap_or_else(|e| panic!("farm {args:?}: {e:#}"));
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("farm {args:?} printed no JSON ({e}):\n{out}"))
}

#[test]
#[ignore = "needs root: network namespaces and XDP"]
fn read_commands_show_what_is_loaded() {
    let farm = NsFarm::new(3, 4, 4096, Ownership::StaticThirds).expect("build the namespace farm");
    let node = &farm.nodes[0];
    let (config, iface) = (node.config.to_str().unwrap(), node.host.iface.as_str());

    let err = failure(node, &["status", "--config", config]);
    let remedy =
        format!("run `cargo xtask load --iface {iface} --config {config}` or start the agent");
    assert!(
        err.contains(&format!("farm is not loaded on {iface}")) && err.ends_with(&remedy),
        "{err}"
    );
    let err = failure(node, &["buckets", "--config", "/nonexistent.yaml"]);
    assert!(err.contains("/nonexistent.yaml") && err.contains("cannot read it"), "{err}");

    farm.load_all().expect("farm load on every node");

    // Every slot (the VIP's, then spread, sticky and numbered) holds the static thirds.
    let mut thirds: BTreeMap<u16, u64> = BTreeMap::new();
    for b in 0..farm.buckets {
        *thirds.entry(farm.static_owner(b)).or_default() += 1;
    }
    assert_eq!(thirds.values().copied().collect::<Vec<_>>(), [1365, 1365, 1366]);
    let buckets = json_of(&farm, node, &["buckets", "--config", config]);
    assert_eq!(buckets["bucket_count"], 4096);
    let slots = buckets["slots"].as_array().unwrap();
    let names: Vec<&str> = slots.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, [VIP.to_string().as_str(), "spread", "sticky", "numbered"]);
    for s in slots {
        let owned: BTreeMap<u16, u64> = s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| (n["node"].as_u64().unwrap() as u16, n["owned"].as_u64().unwrap()))
            .collect();
        assert_eq!(owned, thirds, "slot {}", s["name"]);
        assert_eq!(s["no_owner"], 0);
    }

    // The picture: 4096 buckets as 32 lines of 64 characters, a third of them per node.
    let map =
        farm.farm(node, &["buckets", "--config", config, "--service", "spread", "--map"]).unwrap();
    let picture: String = map
        .lines()
        .filter_map(|l| l.trim_start().split_once(' '))
        .map(|(_, cells)| cells)
        .filter(|c| c.len() == 64)
        .collect();
    assert_eq!(picture.len(), 2048, "{map}");
    assert!(!map.contains('\x1b'), "no colours when stdout is not a terminal");
    assert!(picture.starts_with(&"A".repeat(682)) && picture.ends_with(&"C".repeat(682)), "{map}");

    // lookup computes the bucket the test computes and names its static owner.
    let client = farm.clients[0];
    let bucket = bucket_of(flow_hash(&addr_key(client), 40000, farm.seed), farm.buckets);
    let owner = farm.static_owner(bucket);
    let found = json_of(
        &farm,
        node,
        &["lookup", &format!("{client}:40000"), "--service", "spread", "--config", config],
    );
    assert_eq!(found["bucket"], bucket);
    assert_eq!(found["owner"], owner);
    assert_eq!(found["this_node_owns"], owner == node.id);
    assert_eq!(
        (found["seed"].clone(), found["bucket_count"].clone()),
        (json!(farm.seed), json!(4096))
    );

    let status = json_of(&farm, node, &["status", "--config", config]);
    assert_eq!(status["interface"], iface);
    assert_eq!(
        (status["node_id"].clone(), status["bucket_count"].clone()),
        (json!(1), json!(4096))
    );
    assert_eq!(
        (status["lease_never_expires"].clone(), status["lease_left_secs"].clone()),
        (json!(true), json!(null))
    );
    assert_eq!(status["slots"].as_array().unwrap().len(), 4);
    assert!(status["agent"].is_null(), "no agent runs: {status}");
    assert!(status["agent_error"].as_str().unwrap().contains("no farm agent is running"));

    let accepted = |node: &Node| -> Vec<u64> {
        let stats = json_of(&farm, node, &["stats", "--config", node.config.to_str().unwrap()]);
        stats["slots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["counters"]["accepted"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        accepted(node),
        [0, 0, 0, 0, 0],
        "nothing accepted before traffic (4 slots and the global row)"
    );

    // One connection: the node lookup names is the one that answers, and counts it.
    let answer = in_ns(&farm.client.ns.name, move || {
        ask_tcp(client, SocketAddr::new(VIP.into(), SPREAD_PORT))
    })
    .unwrap();
    let reply = answer.reply.as_ref().unwrap_or_else(|e| panic!("{}: no answer: {e}", answer.from));
    let server = farm.node_named(reply).unwrap_or_else(|| panic!("unknown reply {reply:?}"));
    let found = json_of(
        &farm,
        server,
        &[
            "lookup",
            &answer.from.to_string(),
            "--service",
            "spread",
            "--config",
            server.config.to_str().unwrap(),
        ],
    );
    assert_eq!(
        (found["owner"].clone(), found["this_node_owns"].clone()),
        (json!(server.id), json!(true)),
        "{found}"
    );
    assert!(
        accepted(server)[1] >= 1,
        "the spread service counted the connection on {}",
        server.name
    );
}
