//! Cargo in the workspace, and the tasks that are one cargo run: build, bench, soak.
use std::{env, path::PathBuf, process::Command};

use anyhow::{Result, bail};

use crate::process::{root, run};

/// Cargo at the workspace root: the same cargo (and toolchain) that runs xtask.
pub fn cargo() -> Command {
    let mut cargo = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo.current_dir(root());
    cargo
}

/// Builds the `farm` binary; its build.rs builds the XDP program with the nightly.
/// Returns where the binary is.
pub fn build() -> Result<PathBuf> {
    run(
        cargo().args(["build", "--release", "-p", "farm-userspace"]),
        "cargo build",
        "fix the errors above",
    )?;
    Ok(release_dir().join("farm"))
}

/// The release profile's output directory (`CARGO_TARGET_DIR` moves it, as it moves cargo's).
pub fn release_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root().join("target"), PathBuf::from)
        .join("release")
}

/// Every member but the eBPF crate, which builds only for bpfel-unknown-none
/// (farm-userspace's build.rs builds it): on the host it does not compile.
pub const HOST_CRATES: [&str; 3] = ["--workspace", "--exclude", "farm-ebpf"];

/// The benchmark binary (farm-tests' farm-bench); `args` go to it.
pub fn bench(args: &[String]) -> Result<()> {
    build()?;
    tests_bin("farm-bench", args, "the benchmark")
}

/// The simulation's soak (farm-tests' farm-soak), or with `--minutes` the chaos soak of
/// a namespace farm (farm-chaos, which runs the `farm` binary); `args` go to it.
pub fn soak(args: &[String]) -> Result<()> {
    let given = |flag: &str| args.iter().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    match (given("--minutes"), given("--runs")) {
        (true, true) => bail!(
            "--minutes (the chaos soak of a namespace farm) and --runs (the simulation) are two soaks: give one"
        ),
        (true, false) => {
            build()?;
            tests_bin("farm-chaos", args, "the chaos soak")
        }
        (false, _) => tests_bin("farm-soak", args, "the soak"),
    }
}

/// Runs one of farm-tests' binaries, built in release mode, with `args`.
fn tests_bin(bin: &str, args: &[String], what: &str) -> Result<()> {
    run(
        cargo().args(["run", "--release", "-p", "farm-tests", "--bin", bin, "--"]).args(args),
        what,
        "see its output above",
    )
}
