//! The nightly toolchain that builds the eBPF crate (`-Z build-std=core` for
//! bpfel-unknown-none, which has no prebuilt core, hence rust-src).
use std::{path::PathBuf, process::Command};

use anyhow::{Context, Result, bail};

use crate::{
    process::{quietly, stdout, which},
    report::Report,
};

pub struct Nightly {
    /// `1.97.0-nightly`: names the LLVM prefix bpf-linker is built against.
    pub release: String,
    /// The LLVM major bpf-linker must be linked against to read the nightly's bitcode.
    pub llvm_major: u32,
    pub sysroot: PathBuf,
}

pub fn nightly(report: &Report) -> Result<Nightly> {
    if which("rustup").is_none() {
        bail!(
            "rustup not found: install it from https://rustup.rs (the XDP program builds with a nightly toolchain)"
        );
    }
    let version = match stdout(nightly_cmd("rustc").arg("-vV"))? {
        Some(version) => version,
        None => {
            report.doing("nightly toolchain", "installing with rustup");
            quietly(
                Command::new("rustup").args([
                    "toolchain",
                    "install",
                    "nightly",
                    "--profile",
                    "minimal",
                ]),
                "rustup toolchain install nightly",
                "check the network to static.rust-lang.org",
            )?;
            report.done("nightly toolchain", "installed");
            stdout(nightly_cmd("rustc").arg("-vV"))?
                .context("the nightly's rustc does not run after installing it: try `rustup toolchain install nightly --force`")?
        }
    };
    let field = |name: &str| {
        version.lines().find_map(|line| line.strip_prefix(name)).map(str::trim).with_context(|| {
            format!("`rustc +nightly -vV` has no `{name}` line: update rustup and the nightly")
        })
    };
    let release = field("release:")?.to_owned();
    let llvm = field("LLVM version:")?;
    let llvm_major =
        llvm.split('.').next().and_then(|major| major.parse().ok()).with_context(|| {
            format!(
                "cannot read LLVM version `{llvm}` from `rustc +nightly -vV`: update the nightly"
            )
        })?;
    report.ok("nightly toolchain", &format!("{release}, LLVM {llvm}"));

    let sysroot = stdout(nightly_cmd("rustc").args(["--print", "sysroot"]))?
        .context("`rustc +nightly --print sysroot` failed: reinstall with `rustup toolchain install nightly --force`")?;
    let sysroot = PathBuf::from(sysroot.trim());
    if sysroot.join("lib/rustlib/src/rust/library").is_dir() {
        report.ok("rust-src", "");
    } else {
        report.doing("rust-src", "installing with rustup");
        quietly(
            Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]),
            "rustup component add rust-src",
            "check the network to static.rust-lang.org",
        )?;
        report.done("rust-src", "installed");
    }
    Ok(Nightly { release, llvm_major, sysroot })
}

/// `program` from the nightly: what `program +nightly` runs.
pub fn nightly_cmd(program: &str) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", program]);
    cmd
}
