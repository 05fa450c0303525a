//! The whole reading, file text in, model or error out: the examples, the defaults and
//! every refusal with its line, field and reason.
use std::{collections::BTreeMap, path::Path};

use proptest::prelude::*;

use super::*;

/// Line numbers in the assertions below count from here.
const BASE: &str = "\
cluster:
  name: demo
  node_id: 1
  interface: eth0
  peers:
    - id: 1
      address: 198.18.0.11:7400
    - id: 2
      address: 198.18.0.12:7400
vips:
  - address: 198.18.0.100
services:
  - name: web
    vip: 198.18.0.100
    protocol: tcp
    ports: [80]
  - name: dns
    vip: 198.18.0.100
    protocol: udp
    ports: [53]
";

const FARM: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/farm.yaml"));
const NODES: [&str; 3] = [
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/node1.yaml")),
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/node2.yaml")),
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/node3.yaml")),
];

/// BASE with its one occurrence of `from` replaced by `to`.
fn edit(from: &str, to: &str) -> String {
    assert_eq!(BASE.matches(from).count(), 1, "{from:?} must occur once in BASE");
    BASE.replacen(from, to, 1)
}

fn parsed(text: &str) -> Config {
    parse(text, "t.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Asserts that `text` is refused at `line`, on `field`, with a reason containing `part`.
#[track_caller]
fn refused(text: &str, line: usize, field: &str, part: &str) {
    let err = parse(text, "t.yaml").expect_err(text);
    assert_eq!((err.line, err.field.as_str()), (line, field), "{err}");
    assert!(err.reason.contains(part), "{err}\nshould contain {part:?}");
    assert_eq!(err.file, "t.yaml");
}

#[test]
fn examples_parse_and_describe_one_farm() {
    // farm.yaml leaves node_id out (each node finds its own), so it is read as node 1's.
    let farm = parsed(&FARM.replace("  # node_id: 1", "  node_id: 1"));
    assert_eq!(farm.cluster.peers.len(), 3);
    assert_eq!(farm.vips.len(), 2);
    assert_eq!(farm.services[0].weights, BTreeMap::from([(1, 2), (2, 1), (3, 1)]));
    for (i, text) in NODES.into_iter().enumerate() {
        let node = parsed(text);
        assert_eq!(usize::from(node.cluster.node_id), i + 1);
        let as_node = Config {
            cluster: Cluster { node_id: node.cluster.node_id, ..farm.cluster.clone() },
            ..farm.clone()
        };
        assert_eq!(node, as_node, "node{}.yaml differs from farm.yaml beyond node_id", i + 1);
    }
}

#[test]
fn defaults_fill_in() {
    let cfg = parsed(BASE);
    let c = &cfg.cluster;
    assert_eq!((c.heartbeat_ms, c.failure_threshold, c.buckets, c.seed), (100, 3, 4096, 0));
    assert_eq!((c.l2_mode, c.key_file.as_ref()), (L2Mode::Multicast, None));
    assert_eq!(c.cluster_mac, mac::derive("demo", L2Mode::Multicast));
    assert_eq!((c.peers[1].weight, c.peers[1].priority), (1, 0));
    assert_eq!(cfg.vips[0].default, DefaultAction::Drop);
    assert_eq!(cfg.services[0].affinity, Affinity::ClientIp);
    assert!(cfg.services[0].weights.is_empty());
    assert_eq!(cfg.static_owners, None);
    let unicast = parsed(&edit("  interface: eth0\n", "  interface: eth0\n  l2_mode: unicast\n"));
    assert_eq!(unicast.cluster.cluster_mac, mac::derive("demo", L2Mode::Unicast));
    let no_services = parsed(BASE.split("services:").next().expect("BASE has services"));
    assert!(no_services.services.is_empty());
}

#[test]
fn reads_every_field_as_written() {
    let cfg = parsed(&edit(
        "  interface: eth0\n",
        "  interface: eth0\n  heartbeat_ms: 50\n  failure_threshold: 5\n  buckets: 256\n  key_file: /etc/farm/key\n  cluster_mac: \"03:00:5e:00:00:01\"\n",
    ));
    let c = &cfg.cluster;
    assert_eq!((c.heartbeat_ms, c.failure_threshold, c.buckets), (50, 5, 256));
    assert_eq!(c.key_file.as_deref(), Some(Path::new("/etc/farm/key")));
    assert_eq!(c.cluster_mac, [0x03, 0, 0x5e, 0, 0, 1]);
    let cfg = parsed(&edit(
        "    ports: [80]\n",
        "    ports: [80, 443, \"8000-8100\"]\n    affinity: client-ip-port\n    weights:\n      2: 0\n",
    ));
    let web = &cfg.services[0];
    let ranges: Vec<_> = web.ports.iter().map(|p| (p.first, p.last)).collect();
    assert_eq!(ranges, [(80, 80), (443, 443), (8000, 8100)]);
    assert_eq!(
        (web.affinity, cfg.weight(web, 2), cfg.weight(web, 1)),
        (Affinity::ClientIpPort, 0, 1)
    );
    let v6 = parsed(&edit("198.18.0.12:7400", "\"[2001:db8::12]:7400\""));
    assert_eq!(v6.cluster.peers[1].address, "[2001:db8::12]:7400".parse().expect("literal"));
}

#[test]
fn seed_is_decimal_or_hex() {
    let seed = |text: &str| {
        parsed(&edit("  node_id: 1\n", &format!("  node_id: 1\n  seed: {text}\n"))).cluster.seed
    };
    assert_eq!(seed("0xdeadbeef"), 0xdead_beef);
    assert_eq!(seed("1234"), 1234);
    refused(
        &edit("  node_id: 1\n", "  node_id: 1\n  seed: 0x100000000\n"),
        4,
        "cluster.seed",
        "use 0..=4294967295",
    );
}

#[test]
fn error_displays_on_one_line() {
    let err =
        parse(&edit("  name: demo", "  \"na\\nme\": demo"), "t.yaml").expect_err("unknown field");
    let shown = err.to_string();
    assert!(!shown.contains('\n'), "{shown}");
    assert!(shown.starts_with("t.yaml:2: cluster.na\\nme: unknown field `na\\nme`"), "{shown}");
}

#[test]
fn load_reads_a_file_and_says_when_it_cannot() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/node1.yaml");
    assert_eq!(load(&path).expect("example loads"), parsed(NODES[0]));
    let err = load(Path::new("/nonexistent/farm.yaml")).expect_err("no such file");
    assert_eq!((err.line, err.field.as_str()), (0, "(file)"));
    assert!(err.reason.contains("cannot read") && err.reason.contains("check the path"), "{err}");
}

/// Each `(from, to, line, field, reason)`: BASE with `from` replaced by `to` is refused
/// at `line`, on `field`, with a reason containing `reason`.
type Edits<'a> = [(&'a str, &'a str, usize, &'a str, &'a str)];

#[track_caller]
fn refuses_edits(cases: &Edits) {
    for &(from, to, line, field, reason) in cases {
        refused(&edit(from, to), line, field, reason);
    }
}

#[test]
#[rustfmt::skip]
fn refuses_syntax_errors() {
    refuses_edits(&[
        ("    ports: [53]\n", "    ports: [53\n", 21, "services[1].ports", "did not find expected"),
        ("  node_id: 1\n", "  node_id: 1\n  - 2\n", 4, "cluster", "did not find expected key, while parsing a block mapping"),
    ]);
    refused("", 1, "(file)", "missing field `cluster`");
}

#[test]
#[rustfmt::skip]
fn refuses_unknown_fields_at_every_level() {
    refused(&format!("{BASE}colour: red\n"), 21, "colour", "unknown field `colour`, expected one of `cluster`");
    refuses_edits(&[
        ("  node_id: 1\n", "  node_id: 1\n  colour: red\n", 4, "cluster.colour", "expected one of `name`"),
        ("      address: 198.18.0.12:7400\n", "      address: 198.18.0.12:7400\n      colour: red\n", 10, "cluster.peers[1].colour", "expected one of `id`"),
        ("  - address: 198.18.0.100\n", "  - address: 198.18.0.100\n    colour: red\n", 12, "vips[0].colour", "expected `address` or `default`"),
        ("    ports: [53]\n", "    ports: [53]\n    colour: red\n", 21, "services[1].colour", "expected one of `name`"),
    ]);
}

#[test]
#[rustfmt::skip]
fn refuses_missing_fields_and_wrong_types() {
    refuses_edits(&[
        ("  name: demo\n", "", 2, "cluster", "missing field `name`"),
        // Left out, node_id and interface are found by address: 198.18.0.11 is no test's.
        ("  interface: eth0\n", "", 1, "cluster.interface", "is left out, and node 1's address 198.18.0.11 is on no interface of this host; set it"),
        ("  node_id: 1\n", "", 1, "cluster.node_id", "is left out, and no peer's address is on this host"),
        ("  node_id: 1\n", "  node_id: one\n", 3, "cluster.node_id", "invalid type: string \"one\""),
        ("  node_id: 1\n", "  node_id: -1\n", 3, "cluster.node_id", "invalid type: integer `-1`"),
        ("    protocol: udp\n", "    protocol: sctp\n", 19, "services[1].protocol", "unknown variant `sctp`, expected `tcp` or `udp`"),
        ("    ports: [80]\n", "    ports: [80, true]\n", 16, "services[0].ports[1]", "expected a number or a \"first-last\" range"),
        ("    ports: [80]\n", "    ports: [80]\n    weights: {x: 1}\n", 17, "services[0].weights", "invalid type: string \"x\", expected u64"),
        ("vips:\n  - address: 198.18.0.100\n", "vips: {address: 198.18.0.100}\n", 10, "vips", "invalid type: map, expected a sequence"),
    ]);
}

#[test]
#[rustfmt::skip]
fn refuses_bad_names_and_interfaces() {
    let long = format!("  name: {}\n", "a".repeat(33));
    refuses_edits(&[
        ("  name: demo\n", "  name: my farm\n", 2, "cluster.name", "\"my farm\" is not a valid name"),
        ("  name: demo\n", &long, 2, "cluster.name", "use 1 to 32"),
        ("  name: demo\n", "  name: \"\"\n", 2, "cluster.name", "not a valid name"),
        ("  - name: dns\n", "  - name: dns.udp\n", 17, "services[1].name", "not a valid name"),
    ]);
    for bad in ["eth/0", "\"eth 0\"", "eth0:1", "abcdefghijklmnop", "\"\"", "\"..\""] {
        let text = edit("  interface: eth0\n", &format!("  interface: {bad}\n"));
        refused(&text, 4, "cluster.interface", "not a Linux interface name");
    }
}

#[test]
#[rustfmt::skip]
fn refuses_numbers_out_of_range() {
    let after_interface = ["handover_timeout_ms: 86400001", "flow_idle_ms: 0", "heartbeat_ms: 5", "failure_threshold: 1", "buckets: 0", "buckets: 65537", "seed: 0x100000000"];
    let ranges = ["use 0..=86400000", "0 is out of range; use 1..=3600000", "5 is out of range; use 10..=10000", "use 2..=100", "use 1..=65536", "use 1..=65536", "use 0..=4294967295"];
    for (line, range) in after_interface.into_iter().zip(ranges) {
        let text = edit("  interface: eth0\n", &format!("  interface: eth0\n  {line}\n"));
        let field = format!("cluster.{}", line.split(':').next().expect("key"));
        refused(&text, 5, &field, range);
    }
    refuses_edits(&[
        ("    - id: 2\n", "    - id: 65535\n", 8, "cluster.peers[1].id", "use 0..=65533"),
        ("      address: 198.18.0.12:7400\n", "      address: 198.18.0.12:7400\n      weight: 1001\n", 10, "cluster.peers[1].weight", "use 0..=1000"),
        ("    ports: [80]\n", "    ports: [80]\n    weights: {2: 1001}\n", 17, "services[0].weights.2", "use 0..=1000"),
        ("    ports: [80]\n", "    ports: [0]\n", 16, "services[0].ports[0]", "port 0 is out of range; use 1..=65535"),
        ("    ports: [80]\n", "    ports: [\"80-65536\"]\n", 16, "services[0].ports[0]", "port 65536 is out of range"),
    ]);
}

#[test]
#[rustfmt::skip]
fn refuses_bad_addresses() {
    refuses_edits(&[
        ("198.18.0.12:7400", "198.18.0.12", 9, "cluster.peers[1].address", "is not an address:port"),
        ("198.18.0.12:7400", "198.18.0.12:0", 9, "cluster.peers[1].address", "port 0 cannot receive heartbeats"),
        ("  - address: 198.18.0.100\n", "  - address: 198.18.0.300\n", 11, "vips[0].address", "is not an IP address"),
    ]);
}

#[test]
#[rustfmt::skip]
fn refuses_wrong_list_lengths() {
    let two_peers = "    - id: 1\n      address: 198.18.0.11:7400\n    - id: 2\n      address: 198.18.0.12:7400\n";
    let peers: String = (0..64).map(|i| format!("    - {{id: {}, address: \"198.18.1.{i}:7400\"}}\n", i + 10)).collect();
    let vips: String = (0..33).map(|i| format!("  - address: 198.18.1.{i}\n")).collect();
    let vips = format!("  - address: 198.18.0.100\n{vips}");
    refuses_edits(&[
        (&format!("  peers:\n{two_peers}"), "  peers: []\n", 5, "cluster.peers", "has 0 entries; give 1 to 64"),
        (two_peers, &format!("{two_peers}{peers}"), 5, "cluster.peers", "has 66 entries"),
        ("  - address: 198.18.0.100\n", "  []\n", 10, "vips", "has 0 entries; give 1 to 32"),
        ("  - address: 198.18.0.100\n", &vips, 10, "vips", "has 34 entries; give 1 to 32"),
        ("    ports: [80]\n", "    ports: []\n", 16, "services[0].ports", "list at least one port"),
    ]);
}

#[test]
#[rustfmt::skip]
fn refuses_duplicates() {
    refuses_edits(&[
        ("    - id: 2\n", "    - id: 1\n", 8, "cluster.peers[1].id", "1 is already the id of cluster.peers[0]"),
        ("198.18.0.12:7400", "198.18.0.11:7400", 9, "cluster.peers[1].address", "is already the address of cluster.peers[0]"),
        ("  - address: 198.18.0.100\n", "  - address: 198.18.0.100\n  - address: 198.18.0.100\n", 12, "vips[1].address", "each address must be unique"),
        ("  - name: dns\n", "  - name: web\n", 17, "services[1].name", "web is already the name of services[0]"),
        ("    ports: [80]\n", "    ports: [80]\n    weights:\n      2: 1\n      2: 3\n", 19, "services[0].weights.2", "appears twice"),
    ]);
}

#[test]
#[rustfmt::skip]
fn refuses_unknown_references() {
    refuses_edits(&[
        ("  node_id: 1\n", "  node_id: 3\n", 3, "cluster.node_id", "node 3 is not in cluster.peers; use one of the peer ids: 1, 2"),
        ("    vip: 198.18.0.100\n    protocol: udp\n", "    vip: 198.18.0.101\n    protocol: udp\n", 18, "services[1].vip", "198.18.0.101 is not in vips; declare it there or use one of: 198.18.0.100"),
        ("    ports: [80]\n", "    ports: [80]\n    weights:\n      1: 1\n      9: 2\n", 19, "services[0].weights.9", "node 9 is not in cluster.peers"),
    ]);
}

#[test]
#[rustfmt::skip]
fn refuses_overlapping_ports() {
    refuses_edits(&[
        ("    protocol: udp\n    ports: [53]\n", "    protocol: tcp\n    ports: [\"53-80\"]\n", 20, "services[1].ports[0]", "ports 53-80 overlap 80 at services[0].ports[0] (same vip and protocol)"),
        ("    ports: [80]\n", "    ports: [80, 443, \"70-90\"]\n", 16, "services[0].ports[2]", "ports 70-90 overlap 80 at services[0].ports[0]"),
        ("    ports: [80]\n", "    ports: [\"90-80\"]\n", 16, "services[0].ports[0]", "range 90-80 runs backwards; write it as 80-90"),
        ("    ports: [80]\n", "    ports: [\"80-\"]\n", 16, "services[0].ports[0]", "is not a port number or a \"first-last\" range"),
    ]);
    // The same port on another protocol is another rule.
    parsed(&edit("    ports: [53]\n", "    ports: [80]\n"));
}

#[test]
#[rustfmt::skip]
fn refuses_more_than_the_data_plane_holds() {
    let head = BASE.split("services:").next().expect("BASE has services");
    let services: String = (0..64).map(|i| format!("  - {{name: s{i}, vip: 198.18.0.100, protocol: tcp, ports: [{}]}}\n", 1000 + i)).collect();
    refused(&format!("{head}services:\n{services}"), 12, "services", "64 services and 1 VIPs need 65 table slots");
    // Ports have no limit: every port of every VIP has its rule in the data plane.
    parsed(&edit("    ports: [80]\n", "    ports: [\"1-65535\"]\n"));
}

#[test]
#[rustfmt::skip]
fn refuses_bad_cluster_macs() {
    let mac = |mode: &str, mac: &str| format!("  interface: eth0\n  l2_mode: {mode}\n  cluster_mac: \"{mac}\"\n");
    refuses_edits(&[
        ("  interface: eth0\n", &mac("multicast", "03:bf:00:00:01"), 6, "cluster.cluster_mac", "is not a MAC address; write 6 hex octets"),
        ("  interface: eth0\n", &mac("multicast", "03:bf:00:00:01:zz"), 6, "cluster.cluster_mac", "is not a MAC address"),
        ("  interface: eth0\n", &mac("multicast", "02:bf:00:00:00:01"), 6, "cluster.cluster_mac", "the first octet must be odd"),
        ("  interface: eth0\n", &mac("unicast", "03:bf:00:00:00:01"), 6, "cluster.cluster_mac", "the first octet must be even"),
        ("  interface: eth0\n", "  interface: eth0\n  l2_mode: broadcast\n", 5, "cluster.l2_mode", "expected `multicast` or `unicast`"),
    ]);
}

#[test]
#[rustfmt::skip]
fn reads_and_checks_static_owners() {
    let owners = |body: &str| format!("{BASE}static_owners:\n{body}");
    let cfg = parsed(&owners("  1: [\"0-2047\"]\n  2: [2048, \"2049-4095\"]\n"));
    let two = &cfg.static_owners.expect("given")[&2];
    assert_eq!(two.iter().map(|r| (r.first, r.last)).collect::<Vec<_>>(), [(2048, 2048), (2049, 4095)]);
    refused(&owners("  1: [\"0-10\"]\n  7: [\"11-20\"]\n"), 23, "static_owners.7", "node 7 is not in cluster.peers");
    refused(&owners("  1: [\"0-4096\"]\n"), 22, "static_owners.1[0]", "bucket 4096 is out of range; use 0..=4095");
    refused(&owners("  1: [\"0-10\"]\n  2:\n    - 30\n    - \"10-20\"\n"), 25, "static_owners.2[1]", "buckets 10-20 overlap 0-10 at static_owners.1[0]; give each bucket one owner");
    refused(&owners("  1: [\"0-10\", 5]\n"), 22, "static_owners.1[1]", "buckets 5 overlap 0-10");
    refused(&owners("  1: [\"20-10\"]\n"), 22, "static_owners.1[0]", "runs backwards");
    refused(&owners("  1: [1]\n  1: [2]\n"), 23, "static_owners.1", "appears twice");
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC*") {
        let _ = parse(&text, "fuzz.yaml");
    }

    /// Text close to a valid file reaches the validation and the line map, which
    /// arbitrary text rarely does.
    #[test]
    fn damaged_examples_never_panic(at in 0..FARM.len(), cut in 0..40usize, patch in "[ -~\n]{0,12}") {
        let (at, end) = (floor(at), floor((at + cut).min(FARM.len())));
        let text = format!("{}{patch}{}", &FARM[..at], &FARM[end..]);
        if let Err(e) = parse(&text, "fuzz.yaml") {
            prop_assert!(!e.to_string().contains('\n'));
        }
    }
}

/// The nearest char boundary at or below `i` in FARM.
fn floor(mut i: usize) -> usize {
    while !FARM.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[test]
fn reads_health_checkers_and_failback() {
    let text = edit(
        "    ports: [80]\n",
        "    ports: [80]\n    affinity: active-backup\n    failback: manual\n    health:\n      - tcp: 127.0.0.1:80\n      - http: \"[::1]:8080\"\n        path: /healthz\n        status: 200-204\n        body: ok\n        interval_ms: 500\n        timeout_ms: 200\n        rise: 3\n        fall: 1\n      - exec: [/usr/bin/test, -e, /run/web.up]\n",
    );
    let web = &parsed(&text).services[0];
    assert_eq!((web.affinity, web.failback), (Affinity::ActiveBackup, Failback::Manual));
    let defaults = Checker {
        kind: CheckKind::Tcp { address: "127.0.0.1:80".parse().unwrap() },
        interval_ms: 1000,
        timeout_ms: 1000,
        rise: 2,
        fall: 2,
    };
    let http = Checker {
        kind: CheckKind::Http {
            address: "[::1]:8080".parse().unwrap(),
            path: "/healthz".into(),
            status: (200, 204),
            body: Some("ok".into()),
        },
        interval_ms: 500,
        timeout_ms: 200,
        rise: 3,
        fall: 1,
    };
    let exec = Checker {
        kind: CheckKind::Exec {
            command: vec!["/usr/bin/test".into(), "-e".into(), "/run/web.up".into()],
        },
        ..defaults.clone()
    };
    assert_eq!(web.health, [defaults, http, exec]);
    // A plain service fails back on its own after the default delay (and has no use for it).
    assert_eq!(parsed(BASE).services[0].failback, Failback::Auto { delay_ms: 10_000 });
}

#[test]
#[rustfmt::skip]
fn refuses_bad_health_checkers() {
    let health = |lines: &str| format!("    ports: [80]\n    health:\n{lines}");
    refuses_edits(&[
        ("    ports: [80]\n", &health("      - interval_ms: 100\n"), 18, "services[0].health[0]", "give exactly one of tcp"),
        ("    ports: [80]\n", &health("      - tcp: 127.0.0.1:80\n        exec: [true]\n"), 18, "services[0].health[0]", "exactly one"),
        ("    ports: [80]\n", &health("      - tcp: localhost:80\n"), 18, "services[0].health[0].tcp", "is not an address:port"),
        ("    ports: [80]\n", &health("      - tcp: 127.0.0.1:80\n        path: /x\n"), 19, "services[0].health[0].path", "http checkers only"),
        ("    ports: [80]\n", &health("      - http: 127.0.0.1:80\n        path: health\n"), 19, "services[0].health[0].path", "is not a request path"),
        ("    ports: [80]\n", &health("      - http: 127.0.0.1:80\n        status: 700\n"), 19, "services[0].health[0].status", "status 700 is out of range"),
        ("    ports: [80]\n", &health("      - exec: []\n"), 18, "services[0].health[0].exec", "names no command"),
        ("    ports: [80]\n", &health("      - tcp: 127.0.0.1:80\n        interval_ms: 200\n        timeout_ms: 500\n"), 20, "services[0].health[0].timeout_ms", "use 10..=200"),
        ("    ports: [80]\n", "    ports: [80]\n    failback: manual\n", 17, "services[0].failback", "active-backup only"),
        ("    ports: [80]\n", "    ports: [80]\n    affinity: active-backup\n    failback: manual\n    failback_delay_ms: 5\n", 19, "services[0].failback_delay_ms", "failback: auto only"),
    ]);
}

#[test]
#[rustfmt::skip]
fn http_listens_on_loopback_unless_told_otherwise() {
    assert_eq!(parsed(BASE).http.listen, Some(DEFAULT_LISTEN));
    let listen = |value: &str| parsed(&format!("{BASE}http:\n  listen: {value}\n")).http.listen;
    assert_eq!(listen("\"[2001:db8::11]:9100\""), Some("[2001:db8::11]:9100".parse().expect("literal")));
    assert_eq!(listen("0.0.0.0:9740"), Some("0.0.0.0:9740".parse().expect("literal")));
    assert_eq!(listen("off"), None);
    refused(&format!("{BASE}http:\n  listen: 198.18.0.11\n"), 22, "http.listen", "is not an address:port");
    refused(&format!("{BASE}http:\n  listen: 127.0.0.1:0\n"), 22, "http.listen", "port 0 cannot serve the metrics");
    refused(&format!("{BASE}http:\n  port: 80\n"), 22, "http.port", "unknown field `port`, expected `listen`");
}

#[test]
#[rustfmt::skip]
fn the_agent_runs_real_time_with_its_memory_locked_unless_told_otherwise() {
    let agent = |section: &str| parsed(&format!("{BASE}{section}")).agent;
    assert_eq!(agent(""), Agent { realtime_priority: Some(DEFAULT_REALTIME_PRIORITY), lock_memory: true });
    assert_eq!(agent("agent:\n  realtime_priority: 99\n"), Agent { realtime_priority: Some(99), lock_memory: true });
    assert_eq!(agent("agent:\n  realtime_priority: off\n  lock_memory: false\n"), Agent { realtime_priority: None, lock_memory: false });
    refused(&format!("{BASE}agent:\n  realtime_priority: 0\n"), 22, "agent.realtime_priority", "0 is out of range; use 1..=99");
    refused(&format!("{BASE}agent:\n  realtime_priority: max\n"), 22, "agent.realtime_priority", "\"max\" is not a priority; give 1..=99, or off");
    refused(&format!("{BASE}agent:\n  lock_memory: yes please\n"), 22, "agent.lock_memory", "invalid type");
}
