//! What an operator sees when `farm load` cannot do its job: one line that says what is
//! wrong and what to do, a non-zero exit, and nothing left attached or pinned.
use farm_tests::{
    farm::{NsFarm, Ownership, farm_bin},
    netns::command_in,
};
use farm_userspace::loader::pin_dir;

/// Runs `farm ARGS` in node 1's namespace: (exit success, stderr lines).
fn farm_in(farm: &NsFarm, args: &[&str], as_nobody: bool) -> (bool, Vec<String>) {
    let bin = farm_bin().unwrap();
    let mut cmd = if as_nobody {
        let mut c = command_in(&farm.nodes[0].host.ns.name, "setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(&bin);
        c
    } else {
        command_in(&farm.nodes[0].host.ns.name, bin.to_str().unwrap())
    };
    let out = cmd.args(args).env("RUST_LOG", "off").output().unwrap();
    let lines = String::from_utf8_lossy(&out.stderr).lines().map(str::to_string).collect();
    (out.status.success(), lines)
}

fn one_line(lines: &[String], says: &str) {
    assert_eq!(lines.len(), 1, "one line, got {lines:#?}");
    assert!(
        lines[0].starts_with("farm: ") && lines[0].contains(says),
        "{:?} should say {says:?}",
        lines[0]
    );
}

#[test]
#[ignore = "needs root: network namespaces and XDP"]
fn load_failures_say_what_to_do_and_leave_nothing_behind() {
    let farm = NsFarm::new(1, 1, 64, Ownership::StaticThirds).expect("namespace farm");
    let node = &farm.nodes[0];
    let config = node.config.to_str().unwrap();

    let (ok, err) = farm_in(&farm, &["load", "--config", config, "--iface", "nosuch0"], false);
    assert!(!ok);
    one_line(&err, "interface nosuch0 does not exist");
    assert!(!pin_dir("nosuch0").exists(), "nothing pinned for a missing interface");

    let bad = std::env::temp_dir().join(format!("farm-bad-{}.yaml", std::process::id()));
    let text = std::fs::read_to_string(&node.config).unwrap().replace("node_id: 1", "node_id: 9");
    std::fs::write(&bad, text).unwrap();
    let (ok, err) = farm_in(&farm, &["load", "--config", bad.to_str().unwrap()], false);
    std::fs::remove_file(&bad).unwrap();
    assert!(!ok);
    one_line(&err, &format!("{}:3: cluster.node_id:", bad.display()));
    assert!(!pin_dir(&node.host.iface).exists(), "nothing pinned for a bad file");

    let (ok, err) = farm_in(&farm, &["load", "--config", config], true);
    assert!(!ok);
    one_line(&err, "loading XDP needs CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_DAC_READ_SEARCH");
    assert!(!pin_dir(&node.host.iface).exists(), "nothing pinned without privilege");

    // Loaded once, a second load refuses and leaves the first as it was.
    let (ok, err) = farm_in(&farm, &["load", "--config", config], false);
    assert!(ok, "{err:?}");
    let (ok, err) = farm_in(&farm, &["load", "--config", config], false);
    assert!(!ok);
    one_line(&err, "already loaded");
    assert!(pin_dir(&node.host.iface).join("link").exists(), "the first load stays attached");
    let (ok, err) =
        farm_in(&farm, &["unload", "--iface", &node.host.iface, "--config", config], false);
    assert!(ok, "{err:?}");
    assert!(!pin_dir(&node.host.iface).exists());
    let (ok, err) = farm_in(&farm, &["unload", "--iface", &node.host.iface], false);
    assert!(!ok);
    one_line(&err, "not loaded");
}
