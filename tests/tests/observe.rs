//! What a farm of agents shows of itself, seen the way operators see it: Prometheus
//! scraping a node's metrics (checked by promtool, Prometheus' own lint, and moving with
//! traffic), `farm events`, and the status page in a real browser, before and after a
//! node fails; and an agent whose HTTP port is taken, refused before it touches the host.
use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::Stdio,
    sync::mpsc,
    time::{Duration, Instant},
};

use farm_tests::{
    agents::SETTLE,
    browser::Browser,
    farm::{NsFarm, Ownership, SPREAD_PORT, VIP, failure, farm_bin},
    netns::{command_in, in_ns},
    scrape::{Sample, get, promtool, promtool_queries, request, samples, sum},
    traffic::ask_tcp,
};
use farm_userspace::config::DEFAULT_LISTEN;

const CLIENTS: usize = 8;
const BUCKETS: u32 = 4096;
/// Connections the traffic check makes.
const CONNECTIONS: usize = 24;

fn agent_farm() -> NsFarm {
    let weights = Ownership::Agents { weights: vec![1, 1, 1] };
    let mut farm = NsFarm::new(3, CLIENTS, BUCKETS, weights).expect("build the namespace farm");
    farm.start_agents().expect("start the agents");
    farm
}

/// Node `i`'s metrics, and how long the scrape took.
fn scrape(farm: &NsFarm, i: usize) -> (String, Duration) {
    let started = Instant::now();
    let (status, text) = get(&farm.nodes[i].host.ns.name, "/metrics")
        .unwrap_or_else(|e| panic!("scrape node {}: {e:#}\n{}", i + 1, farm.report()));
    assert_eq!(status, 200, "{text}");
    (text, started.elapsed())
}

/// `count` connections to the spread service from the clients in turn, every one answered.
fn connect(farm: &NsFarm, count: usize) {
    let clients = farm.clients.clone();
    let answers = in_ns(&farm.client.ns.name, move || {
        let vip = SocketAddr::new(VIP.into(), SPREAD_PORT);
        (0..count).map(|k| ask_tcp(clients[k % clients.len()], vip)).collect::<Vec<_>>()
    })
    .unwrap();
    assert!(answers.iter().all(|a| a.reply.is_ok()), "{answers:?}\n{}", farm.report());
}

/// A sum over the farm's three nodes.
fn farm_sum(all: &[Vec<Sample>], name: &str, with: &[(&str, &str)]) -> f64 {
    all.iter().map(|s| sum(s, name, with)).sum()
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agent"]
fn metrics_pass_promtool_and_move_with_traffic() {
    let farm = agent_farm();
    let epoch = farm.wait_converged(&[1, 2, 3]).unwrap();
    // farm status says where to look.
    assert_eq!(farm.status(0).unwrap()["agent"]["http"], DEFAULT_LISTEN.to_string());
    let (text, _) = scrape(&farm, 0);
    promtool(&text).unwrap_or_else(|e| panic!("{e:#}\n{text}"));
    let node1 = samples(&text);
    let value = |name, with: &[(&str, &str)]| sum(&node1, name, with);
    assert_eq!(value("farm_epoch", &[]), epoch as f64);
    assert_eq!(value("farm_members", &[("state", "alive")]), 3.0);
    assert_eq!(value("farm_converged", &[]), 1.0);
    assert!(value("farm_heartbeats_received_total", &[("outcome", "accepted")]) > 0.0);
    assert!(value("farm_lease_remaining_seconds", &[]) > 0.0);
    assert!(value("farm_install_duration_seconds_count", &[]) >= 1.0);
    let spread = [("service", "spread")];
    let owned = value("farm_buckets_owned", &spread);
    assert!((owned - f64::from(BUCKETS) / 3.0).abs() <= 1.0, "{owned}");
    assert_eq!(owned, value("farm_buckets_quota", &spread));

    let before: Vec<Vec<Sample>> = (0..3).map(|i| samples(&scrape(&farm, i).0)).collect();
    connect(&farm, CONNECTIONS);
    let after: Vec<Vec<Sample>> = (0..3).map(|i| samples(&scrape(&farm, i).0)).collect();
    let moved = |verdict| {
        let with = [("service", "spread"), ("verdict", verdict)];
        farm_sum(&after, "farm_packets_total", &with)
            - farm_sum(&before, "farm_packets_total", &with)
    };
    let (accepted, not_owner) = (moved("accepted"), moved("not_owner"));
    eprintln!(
        "{CONNECTIONS} connections: accepted +{accepted}, not_owner +{not_owner} over the farm"
    );
    // Every frame of a connection reaches all three nodes: its owner accepts it, the
    // other two drop it; at least its SYN has been counted by all three.
    assert!(accepted >= CONNECTIONS as f64, "accepted moved by {accepted}");
    assert!(not_owner >= 2.0 * CONNECTIONS as f64, "not_owner moved by {not_owner}");

    // What a scrape costs, for the record.
    let times: Vec<Duration> = (0..10).map(|_| scrape(&farm, 0).1).collect();
    let mut sorted = times.clone();
    sorted.sort();
    eprintln!(
        "a scrape: {} bytes, {} series, median {:.1} ms over 10",
        text.len(),
        node1.len(),
        sorted[5].as_secs_f64() * 1000.0
    );

    // The example dashboard asks Prometheus only for what a node serves, in PromQL.
    dashboard_queries_name_real_metrics(&farm, &text);

    // Read-only: nothing but GET (and HEAD), nothing but the page and the metrics.
    let ns = &farm.nodes[0].host.ns.name;
    assert_eq!(request(ns, "POST", "/metrics").unwrap().0, 405);
    assert_eq!(request(ns, "DELETE", "/").unwrap().0, 405);
    assert_eq!(get(ns, "/drain").unwrap().0, 404);

    // The history says what happened, through the control socket; --follow prints what
    // comes after, as it comes: node 2 drained makes node 1 change its view.
    let n1 = &farm.nodes[0];
    let config = n1.config.to_str().unwrap();
    let lines = farm.farm(n1, &["events", "--json", "--config", config]).unwrap();
    let kinds: Vec<String> = lines.lines().map(kind).collect();
    for kind in ["started", "peer-up", "view-changed", "installed"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in {kinds:?}");
    }
    let mut follow = command_in(ns, farm_bin().unwrap().to_str().unwrap())
        .args(["events", "--follow", "--json", "--config", config])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = BufReader::new(follow.stdout.take().unwrap());
    std::thread::spawn(move || stdout.lines().map_while(Result::ok).try_for_each(|l| tx.send(l)));
    let n2 = &farm.nodes[1];
    farm.farm(n2, &["drain", "--config", n2.config.to_str().unwrap()]).unwrap();
    let end = Instant::now() + SETTLE;
    let mut followed = Vec::new();
    let drain_installed = |f: &[String]| f.iter().skip(kinds.len()).any(|k| k == "installed");
    while !drain_installed(&followed) {
        assert!(Instant::now() < end, "--follow printed {followed:?}\n{}", farm.report());
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            followed.push(kind(&line));
        }
    }
    follow.kill().unwrap();
    follow.wait().unwrap();
    assert!(followed.starts_with(&kinds), "--follow prints the history first: {followed:?}");
    let after = &followed[kinds.len()..];
    assert!(after.iter().any(|k| k == "view-changed"), "what followed: {after:?}");
}

/// An event's kind, from its JSON line.
fn kind(line: &str) -> String {
    let event: serde_json::Value = serde_json::from_str(line).unwrap();
    event["kind"].as_str().unwrap().into()
}

/// Every query of examples/grafana-dashboard.json, with Grafana's variables given values,
/// parses as PromQL, and every metric it names is in `scraped`.
fn dashboard_queries_name_real_metrics(farm: &NsFarm, scraped: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/grafana-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let queries: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| {
            let expr = t["expr"].as_str().unwrap();
            expr.replace("$__rate_interval", "1m")
                .replace("$instance", ".*")
                .replace("$service", ".*")
        })
        .collect();
    promtool_queries(&queries, &farm.dir).unwrap();
    let families: Vec<&str> =
        scraped.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
    for query in &queries {
        for word in query.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            let family = word.strip_suffix("_bucket").unwrap_or(word);
            if word.starts_with("farm_") {
                assert!(
                    families.contains(&family),
                    "the dashboard asks for {word}, which no node serves"
                );
            }
        }
    }
}

/// The first element of `dom` that contains `marker` in its start tag, whole start tag.
fn start_tag<'a>(dom: &'a str, marker: &str) -> &'a str {
    let at = dom.find(marker).unwrap_or_else(|| panic!("no {marker} in the page:\n{dom}"));
    let start = dom[..at].rfind('<').unwrap();
    &dom[start..at + dom[at..].find('>').unwrap()]
}

/// The buckets each node owns, and its quota, in the service's row of the page.
fn shares_on_page(dom: &str, service: &str) -> Vec<(String, String, String)> {
    let row = &dom[dom.find(&format!("<tr data-slot=\"{service}\">")).unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    row.split("<td data-node=\"")
        .skip(1)
        .filter(|cell| !cell.starts_with("none"))
        .map(|cell| {
            let attr = |name: &str| {
                let from = &cell[cell.find(&format!("{name}=\"")).unwrap() + name.len() + 2..];
                from[..from.find('"').unwrap()].to_string()
            };
            (cell[..cell.find('"').unwrap()].to_string(), attr("data-owned"), attr("data-quota"))
        })
        .collect()
}

#[test]
#[ignore = "needs root: network namespaces, XDP, farm agent and chromium"]
fn the_status_page_shows_a_failed_node_in_a_browser() {
    let mut farm = agent_farm();
    farm.wait_converged(&[1, 2, 3]).unwrap();
    let browser = Browser::new(&farm.nodes[0].host.ns.name, &farm.dir);
    let url = format!("http://{DEFAULT_LISTEN}/");
    let dom = browser.dom(&url).unwrap();
    assert!(start_tag(&dom, "id=\"node-3\"").contains("data-state=\"alive\""), "{dom}");
    let third = |n: &str| (n.parse::<u32>().unwrap()).abs_diff(BUCKETS / 3) <= 1;
    let shares = shares_on_page(&dom, "spread");
    assert_eq!(shares.len(), 3, "{shares:?}");
    assert!(shares.iter().all(|(_, owned, quota)| third(owned) && owned == quota), "{shares:?}");

    // Node 3 fails: its cable is pulled and its agent dies.
    farm.link(2, false).unwrap();
    farm.kill_agent(2).unwrap();
    farm.wait_converged(&[1, 2]).unwrap();
    let dom = browser.dom(&url).unwrap();
    assert!(start_tag(&dom, "id=\"node-3\"").contains("data-state=\"failed\""), "{dom}");
    assert!(start_tag(&dom, "id=\"node-2\"").contains("data-state=\"alive\""), "{dom}");
    let half = (BUCKETS / 2).to_string();
    let want = [("1", half.as_str(), half.as_str()), ("2", &half, &half), ("3", "0", "0")];
    let shares = shares_on_page(&dom, "spread");
    let got: Vec<(&str, &str, &str)> =
        shares.iter().map(|(n, o, q)| (n.as_str(), o.as_str(), q.as_str())).collect();
    assert_eq!(got, want, "node 3's buckets went to nodes 1 and 2");
    assert!(dom.contains("node 3 failed: no heartbeat for"), "the events name the failure");

    // The picture operators see, with traffic to show rates for; FARM_PAGE_SCREENSHOT
    // keeps it (docs/status-page.png).
    connect(&farm, CONNECTIONS);
    let png = farm.dir.join("status-page.png");
    browser.screenshot(&url, &png, 1280, 1700).unwrap();
    if let Some(keep) = std::env::var_os("FARM_PAGE_SCREENSHOT") {
        std::fs::copy(&png, &keep).unwrap();
    }
}

#[test]
#[ignore = "needs root: network namespaces and farm agent"]
fn a_taken_port_stops_the_agent_before_it_changes_anything() {
    let farm = NsFarm::new(1, 1, BUCKETS, Ownership::Agents { weights: vec![1] }).unwrap();
    let n1 = &farm.nodes[0];
    // A listener made on a thread in the node's namespace stays in that namespace.
    let taken =
        in_ns(&n1.host.ns.name, || std::net::TcpListener::bind(DEFAULT_LISTEN)).unwrap().unwrap();
    let err = failure(n1, &["agent", "--config", n1.config.to_str().unwrap()]);
    assert!(
        err.contains("listen on 127.0.0.1:9740 for the metrics and status page (http.listen): free that port, or set http.listen to another address or `off`"),
        "{err}"
    );
    assert!(!farm_userspace::loader::pin_dir(&n1.host.iface).exists(), "nothing was loaded");
    drop(taken);
}
