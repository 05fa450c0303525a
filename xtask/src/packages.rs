//! The Debian packages the project and its tests run commands from.
use std::process::Command;

use anyhow::{Result, bail};

use crate::{
    privilege::is_root,
    process::{quietly, which},
    report::Report,
};

/// Each package with a command it provides. The command on PATH is what the tests use,
/// whoever installed it; dpkg is asked only when it is not there, as non-root users'
/// PATH lacks the sbin directories most of these live in.
///
/// `ip` builds the test farms and joins the cluster MAC; `nft` counts a test client's
/// packets and is the benchmark's peer; `bpftool` is how an operator inspects what farm
/// pinned; `dpkg-shlibdeps` tells cargo-deb the package's library dependencies;
/// `promtool` (Prometheus' lint) checks the agent's metrics and `chromium` loads its
/// status page in the tests.
const PACKAGES: &[(&str, &str)] = &[
    ("iproute2", "ip"),
    ("nftables", "nft"),
    ("bpftool", "bpftool"),
    ("dpkg-dev", "dpkg-shlibdeps"),
    ("prometheus", "promtool"),
    ("chromium", "chromium"),
];

pub fn packages(report: &Report) -> Result<()> {
    let mut missing = Vec::new();
    for &(package, command) in PACKAGES {
        if which(command).is_some() || dpkg_installed(package) {
            report.ok(package, "");
        } else {
            missing.push(package);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !is_root() {
        bail!("must run as root to install packages ({list}): rerun as root");
    }
    if which("apt-get").is_none() {
        bail!(
            "{list} missing and no apt-get to install them: install them with this system's package manager"
        );
    }
    report.doing(&list, "installing with apt-get");
    // The package lists on a fresh machine are empty or stale; refreshing them is the
    // slow part, so it happens only when something must be installed.
    quietly(apt().arg("update"), "apt-get update", "check the network to Debian's mirrors")?;
    // What these packages only recommend the tests do not need, and Prometheus' would
    // bring daemons (node-exporter) a test machine has no use for.
    quietly(
        apt().args(["install", "-y", "--no-install-recommends"]).args(&missing),
        format_args!("apt-get install {list}"),
        "check the network to Debian's mirrors",
    )?;
    for package in missing {
        report.done(package, "installed");
    }
    Ok(())
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["--show", "--showformat=${Status}", package])
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.ends_with(b" installed"))
}

/// apt-get that never stops to ask: CI runs with no stdin.
fn apt() -> Command {
    let mut apt = Command::new("apt-get");
    apt.env("DEBIAN_FRONTEND", "noninteractive");
    apt
}
