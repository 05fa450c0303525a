//! The Debian package `cargo xtask package` built, unpacked into a throwaway directory:
//! what it holds and declares, and a farm of its own `farm` binaries, each agent run as
//! the packaged unit runs it (not root, the unit's capabilities alone), all three nodes
//! reading one byte-identical file that leaves `node_id` out.
use std::{process::Command, time::Instant};

use farm_tests::{
    farm::{NsFarm, Ownership},
    netns::run,
    package::{AgentDirs, Unpacked, give_file},
};
use farm_userspace::{agent::control::RUN_DIR, loader::PIN_ROOT};

const BUCKETS: u32 = 1024;
/// The spread service's slot: the two VIPs' own come first.
const SPREAD_SLOT: usize = 2;

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).unwrap().stdout).into_owned()
}

#[test]
#[ignore = "needs root: network namespaces and XDP"]
fn the_package_holds_farm_its_unit_pages_and_an_example_that_checks() {
    let deb = Unpacked::new().expect("unpack the package");
    let depends = deb.field("Depends").unwrap();
    for needed in ["libc6", "iproute2"] {
        assert!(depends.contains(needed), "Depends: {depends}");
    }
    for tool in ["rustc", "cargo", "gcc", "clang", "llvm", "bpf-linker"] {
        assert!(!depends.contains(tool), "Depends names {tool}: {depends}");
    }
    let farm = deb.path("/usr/sbin/farm");
    let help = stdout(Command::new(&farm).arg("--help"));
    assert!(help.contains("agent") && help.contains("keygen"), "{help}");
    for file in [
        "/usr/share/man/man8/farm.8.gz",
        "/usr/share/man/man8/farm-agent.8.gz",
        "/usr/share/man/man8/farm-witness.8.gz",
        "/usr/share/bash-completion/completions/farm",
        "/usr/share/zsh/vendor-completions/_farm",
        "/usr/share/fish/vendor_completions.d/farm.fish",
        "/usr/lib/sysusers.d/farm.conf",
    ] {
        assert!(deb.path(file).is_file(), "{file} is not in the package");
    }
    let page = stdout(Command::new("zcat").arg(deb.path("/usr/share/man/man8/farm-agent.8.gz")));
    assert!(page.contains(".TH farm-agent 8"), "{page}");
    // The example is a conffile: an upgrade keeps the operator's edits.
    let conffiles = stdout(Command::new("dpkg-deb").arg("-I").arg(&deb.deb).arg("conffiles"));
    assert_eq!(conffiles.trim(), "/etc/farm/farm.yaml");
    let unit = std::fs::read_to_string(deb.path("/usr/lib/systemd/system/farm.service")).unwrap();
    for line in [
        "ExecStart=/usr/sbin/farm agent --config /etc/farm/farm.yaml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillSignal=SIGTERM",
        "User=farm",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
    let witness = deb.path("/usr/lib/systemd/system/farm-witness.service");
    let witness = std::fs::read_to_string(witness).expect("the witness's unit is in the package");
    let start = "ExecStart=/usr/sbin/farm witness --listen 0.0.0.0:7402 --key /etc/farm/key";
    assert!(witness.lines().any(|l| l == start), "the witness's unit lacks {start}");

    // The example leaves node_id out: on the host holding node 1's address, it is node 1.
    let farm_ns = NsFarm::new(1, 1, 64, Ownership::StaticThirds).expect("namespace farm");
    let example = deb.path("/etc/farm/farm.yaml");
    let out =
        farm_ns.farm_at(&farm_ns.nodes[0], &farm, &["check", example.to_str().unwrap()]).unwrap();
    assert!(
        out.contains(": ok (cluster demo, node 1,")
            && out.contains("node 1 is the peer at 198.18.0.11, an address of this host"),
        "{out}"
    );
}

#[test]
#[ignore = "needs root: network namespaces, XDP and farm agent"]
fn packaged_agents_without_root_share_one_file_and_serve() {
    let deb = Unpacked::new().expect("unpack the package");
    let caps = deb.unit_capabilities().unwrap();
    let mut farm = NsFarm::new(3, 8, BUCKETS, Ownership::Agents { weights: vec![1, 1, 1] })
        .expect("build the namespace farm");
    let shared = farm.share_one_file().unwrap();
    give_file(&farm.dir.join("key")).unwrap();
    let _dirs = AgentDirs::give(&[PIN_ROOT, RUN_DIR]).unwrap();

    // One capability fewer is refused up front, naming it.
    let fewer: Vec<String> = caps.iter().filter(|c| *c != "CAP_PERFMON").cloned().collect();
    let out = deb
        .farm_as_agent_user(&farm.nodes[0].host.ns.name, &fewer)
        .args(["agent", "--config", shared.to_str().unwrap()])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("farm agent needs CAP_PERFMON"), "{err}");

    for i in 0..3 {
        let agent = deb.farm_as_agent_user(&farm.nodes[i].host.ns.name, &caps);
        farm.spawn_agent(i, agent).unwrap();
    }
    farm.wait_converged(&[1, 2, 3]).unwrap();
    for node in &farm.nodes {
        let log = std::fs::read_to_string(&node.log).unwrap();
        let found = format!("node {} is the peer at 198.18.0.1{}", node.id, node.id);
        assert!(log.contains(&found), "{}'s log does not say {found:?}:\n{log}", node.name);
    }

    // Each node answers the clients the agreed table gives it.
    let row = farm.dataplane(&farm.nodes[0]).unwrap().row(SPREAD_SLOT).unwrap();
    for node in &farm.nodes {
        let probes = farm.probes_owned_by(&row, node.id, 4);
        assert_eq!(probes.len(), 4, "node {} owns too few buckets", node.id);
        farm.served_after(Instant::now(), &probes, &[&node.name]).unwrap();
    }

    // `systemctl reload` (SIGHUP) rereads the file and the farm carries on.
    farm.signal_agent(0, libc::SIGHUP).unwrap();
    farm.wait_converged(&[1, 2, 3]).unwrap();
    assert!(farm.agent_running(0), "node 1's agent ended on SIGHUP:\n{}", farm.report());
    // `systemctl stop` (SIGTERM) is a clean leave: the peers go on without node 3.
    let status = farm.stop_agent(2).unwrap();
    assert!(status.success(), "node 3's agent left with {status}:\n{}", farm.report());
    farm.wait_converged(&[1, 2]).unwrap();
}
