//! Health checks and active-backup services in farms of agents in namespaces, with real
//! TCP and HTTP servers and real commands: an application that dies takes its node out
//! of that service's table only, and comes back after `rise`; an HTTP checker answered
//! 500 and a command that exits 1 withdraw the node too; a flapping checker moves the
//! tables a bounded number of times; an active-backup service fails over down the
//! priorities and fails back automatically or on `farm failback`.
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use farm_tests::{
    farm::{NsFarm, Ownership, SPREAD_PORT, STICKY_PORT, VIP},
    netns::{in_ns, wait_for},
    traffic::{HttpServer, ask_tcp},
};

const CLIENTS: usize = 8;
const WAIT: Duration = Duration::from_secs(20);

/// A three-node farm whose files `edit` changed before the agents start.
fn farm_with(edit: impl Fn(usize, &str) -> String) -> NsFarm {
    let mut farm = NsFarm::new(3, CLIENTS, 4096, Ownership::Agents { weights: vec![1, 1, 1] })
        .expect("build the namespace farm");
    for (i, n) in farm.nodes.iter().enumerate() {
        let text = std::fs::read_to_string(&n.config).unwrap();
        let changed = edit(i, &text);
        assert_ne!(changed, text, "the edit changes the file");
        std::fs::write(&n.config, changed).unwrap();
    }
    farm.start_agents().unwrap();
    farm.wait_converged(&[1, 2, 3]).unwrap();
    farm
}

/// `text` with `checker` (one YAML flow mapping) as the health of the service whose
/// `ports:` line is `ports`.
fn with_checker(text: &str, ports: &str, checker: &str) -> String {
    text.replacen(ports, &format!("{ports}    health:\n      - {checker}\n"), 1)
}

const SPREAD: &str = "    ports: [80]\n";
const STICKY: &str = "    ports: [8080]\n";

/// Buckets node `id` owns in the slot of `service`, by node 1's table.
fn owned(farm: &NsFarm, service: &str, id: u16) -> usize {
    let row = farm.dataplane(&farm.nodes[0]).unwrap().row(farm.slot(service)).unwrap();
    row.iter().filter(|&&o| o == id).count()
}

/// Waits until node `id` owns buckets of `service` (`owns`) or none (`!owns`), on one
/// agreed table; how long it took.
fn wait_owns(farm: &NsFarm, service: &str, id: u16, owns: bool) -> Duration {
    let start = Instant::now();
    let done = wait_for(WAIT, || {
        farm.wait_converged(&[1, 2, 3]).ok()?;
        ((owned(farm, service, id) > 0) == owns).then_some(())
    });
    assert!(
        done.is_some(),
        "node {id} {} {service}\n{}",
        if owns { "never owns" } else { "keeps" },
        farm.report()
    );
    start.elapsed()
}

/// Which nodes answered connections to the VIP's `port` from every client address (a
/// connection refused or unanswered counts under its error).
fn answers(farm: &NsFarm, port: u16) -> BTreeMap<String, usize> {
    let clients = farm.clients.clone();
    let got = in_ns(&farm.client.ns.name, move || {
        clients.iter().map(|&c| ask_tcp(c, SocketAddr::new(VIP.into(), port))).collect::<Vec<_>>()
    })
    .unwrap();
    let mut by = BTreeMap::new();
    for a in got {
        *by.entry(a.reply.unwrap_or_else(|e| e)).or_default() += 1;
    }
    by
}

fn status_service(farm: &NsFarm, i: usize, name: &str) -> serde_json::Value {
    let services = farm.status(i).unwrap()["agent"]["services"].clone();
    services.as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone()
}

#[test]
#[ignore = "needs root: network namespaces and XDP"]
fn an_application_that_dies_takes_its_node_out_of_that_service_only() {
    let checker = "{tcp: \"127.0.0.1:80\", interval_ms: 300}";
    let mut farm = farm_with(|_, text| with_checker(text, SPREAD, checker));
    farm.wait_healthy("spread").unwrap();
    let sticky = owned(&farm, "sticky", 2);
    farm.stop_server(1, SPREAD_PORT);
    let gone = wait_owns(&farm, "spread", 2, false);
    eprintln!("node 2 left spread {} ms after its server stopped", gone.as_millis());
    assert_eq!(owned(&farm, "sticky", 2), sticky, "node 2 keeps its other services");
    let by = answers(&farm, SPREAD_PORT);
    assert!(!by.contains_key("n2"), "{by:?}");
    let s = status_service(&farm, 1, "spread");
    assert_eq!(
        (s["healthy"].as_bool(), s["withdrawn"].as_bool()),
        (Some(false), Some(true)),
        "{s}"
    );
    let reason = s["checkers"][0]["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("127.0.0.1:80"), "{reason}");
    // Back after `rise` (2) passing checks.
    farm.start_server(1, SPREAD_PORT).unwrap();
    wait_owns(&farm, "spread", 2, true);
    assert!(owned(&farm, "spread", 2).abs_diff(4096 / 3) <= 1);
    // Taking its buckets back is a planned move: the table shows node 2 owning them
    // from the move's start, new connections go to it once every node installed.
    let back =
        wait_for(WAIT, || Some(answers(&farm, SPREAD_PORT)).filter(|by| by.contains_key("n2")));
    assert!(back.is_some(), "node 2 answers no new connection: {:?}", answers(&farm, SPREAD_PORT));
}

#[test]
#[ignore = "needs root: network namespaces and XDP"]
fn an_http_500_and_a_failing_command_withdraw_the_node() {
    let dir = std::env::temp_dir().join(format!("farm-health-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let down = |i: usize| dir.join(format!("n{}.down", i + 1));
    let farm = farm_with(|i, text| {
        let http = "{http: \"127.0.0.1:8081\", path: /ready, interval_ms: 300}";
        let exec =
            format!("{{exec: [test, '!', -e, \"{}\"], interval_ms: 500}}", down(i).display());
        with_checker(&with_checker(text, STICKY, http), SPREAD, &exec)
    });
    let http: Vec<HttpServer> = farm
        .nodes
        .iter()
        .map(|n| HttpServer::start(&n.host.ns.name, 8081, n.name.clone()).unwrap())
        .collect();
    farm.wait_healthy("sticky").unwrap();
    farm.wait_healthy("spread").unwrap();
    http[2].set_status(500);
    wait_owns(&farm, "sticky", 3, false);
    let reason = status_service(&farm, 2, "sticky")["checkers"][0]["reason"].clone();
    assert_eq!(reason, "HTTP 500, want 200-399");
    std::fs::write(down(0), "maintenance").unwrap();
    wait_owns(&farm, "spread", 1, false);
    assert_eq!(status_service(&farm, 0, "spread")["checkers"][0]["reason"], "exit 1: ");
    http[2].set_status(200);
    std::fs::remove_file(down(0)).unwrap();
    wait_owns(&farm, "sticky", 3, true);
    wait_owns(&farm, "spread", 1, true);
    drop(http);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs root: network namespaces and XDP"]
fn a_flapping_checker_moves_the_tables_a_few_times() {
    let dir = std::env::temp_dir().join(format!("farm-flap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let flip = dir.join("n2.flip");
    // Node 2's checker passes and fails by turns; the others always pass.
    let farm = farm_with(|i, text| {
        let script = match i {
            1 => format!("if [ -e {0} ]; then rm {0}; exit 1; fi; touch {0}", flip.display()),
            _ => "true".into(),
        };
        let exec = format!("{{exec: [sh, -c, \"{script}\"], interval_ms: 200, rise: 1, fall: 1}}");
        with_checker(text, SPREAD, &exec)
    });
    let installs = || {
        let log = std::fs::read_to_string(&farm.nodes[0].log).unwrap_or_default();
        log.lines().filter(|l| l.contains("installed epoch")).count()
    };
    let before = installs();
    // Ten seconds of flapping: fifty results each way.
    let end = Instant::now() + Duration::from_secs(10);
    let flaps = wait_for(Duration::from_secs(15), || {
        (Instant::now() >= end)
            .then(|| status_service(&farm, 1, "spread")["flaps"].as_u64().unwrap_or(0))
    });
    let moves = installs() - before;
    eprintln!(
        "10 s of a checker flipping every 200 ms: {moves} installs on node 1, {flaps:?} withdrawals lately on node 2"
    );
    assert!(moves <= 20, "{moves} installs\n{}", farm.report());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A farm whose `sticky` service is active-backup with `failback`, checked by a TCP
/// checker, on nodes of priorities 1, 2, 3.
fn active_backup(failback: &str) -> NsFarm {
    farm_with(|_, text| {
        let mut t = text.to_string();
        for n in 1..=3 {
            let weight = "      weight: 1\n";
            let at = t.match_indices(&weight).nth(n - 1).map(|(i, _)| i).unwrap();
            t.replace_range(at..at + weight.len(), &format!("{weight}      priority: {n}\n"));
        }
        let t = t.replacen(
            "    affinity: client-ip\n",
            &format!("    affinity: active-backup\n    {failback}\n"),
            1,
        );
        with_checker(&t, STICKY, "{tcp: \"127.0.0.1:8080\", interval_ms: 300}")
    })
}

/// The one node answering the active-backup service (every client the same), once
/// it is `want`.
fn serving(farm: &NsFarm, want: &str) {
    let ok = wait_for(WAIT, || {
        let by = answers(farm, STICKY_PORT);
        (by.len() == 1 && by.contains_key(want)).then_some(())
    });
    assert!(ok.is_some(), "{want} does not serve sticky alone\n{}", farm.report());
}

#[test]
#[ignore = "needs root: network namespaces and XDP"]
fn active_backup_fails_over_down_the_priorities_and_fails_back_by_itself() {
    let mut farm = active_backup("failback_delay_ms: 1000");
    farm.wait_healthy("sticky").unwrap();
    serving(&farm, "n1");
    farm.stop_server(0, STICKY_PORT);
    serving(&farm, "n2");
    farm.stop_server(1, STICKY_PORT);
    serving(&farm, "n3");
    farm.start_server(0, STICKY_PORT).unwrap();
    farm.start_server(1, STICKY_PORT).unwrap();
    let back = Instant::now();
    serving(&farm, "n1");
    eprintln!("back on node 1 {} ms after its server came back", back.elapsed().as_millis());
}

#[test]
#[ignore = "needs root: network namespaces and XDP"]
fn manual_failback_waits_for_farm_failback() {
    let mut farm = active_backup("failback: manual");
    farm.wait_healthy("sticky").unwrap();
    serving(&farm, "n1");
    farm.stop_server(0, STICKY_PORT);
    serving(&farm, "n2");
    farm.start_server(0, STICKY_PORT).unwrap();
    // Healthy again, node 1 waits: polled for two seconds, node 2 serves throughout.
    let healthy =
        wait_for(WAIT, || status_service(&farm, 0, "sticky")["withdrawn"].as_bool().filter(|w| !w));
    assert!(healthy.is_some());
    let moved = wait_for(Duration::from_secs(2), || {
        (answers(&farm, STICKY_PORT).get("n2") != Some(&CLIENTS)).then_some(())
    });
    assert!(moved.is_none(), "sticky left node 2 without `farm failback`");
    let node = &farm.nodes[0];
    let said = farm
        .farm(node, &["failback", "sticky", "--config", node.config.to_str().unwrap()])
        .unwrap();
    assert!(said.contains("may come back to node 1"), "{said}");
    serving(&farm, "n1");
}
