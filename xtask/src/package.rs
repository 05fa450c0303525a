//! `cargo xtask package`: the Debian package, made by cargo-deb from farm-userspace's
//! `[package.metadata.deb]`. cargo-deb is the well-kept tool for this: it writes the
//! control file, conffiles and md5sums, the systemd and sysusers maintainer scripts
//! debhelper would, and the shared-library dependencies from dpkg-shlibdeps; the xtask
//! only adds what it cannot: the man pages and completions, which `farm manual` makes
//! from the CLI's own definition.
use std::{fs, io, path::PathBuf, process::Command};

use anyhow::{Context, Result};

use crate::{
    cargo::{self, cargo},
    process::{output, quietly, run},
    report::Report,
};

/// The cargo-deb setup installs: a version known to build with this workspace's Rust.
const CARGO_DEB: &str = "3.8.0";

/// Installs cargo-deb if `cargo deb` does not run.
pub fn cargo_deb(report: &Report) -> Result<()> {
    if let Ok(out) = output(cargo().args(["deb", "--version"]))
        && out.status.success()
    {
        report.ok("cargo-deb", String::from_utf8_lossy(&out.stdout).trim());
        return Ok(());
    }
    report.doing("cargo-deb", "building it, about a minute and a half");
    quietly(
        cargo().args(["install", "cargo-deb", "--locked", "--version", CARGO_DEB]),
        "cargo install cargo-deb",
        "check the network to crates.io and the build errors above",
    )?;
    report.done("cargo-deb", &format!("installed ({CARGO_DEB})"));
    Ok(())
}

/// Builds `farm`, its man pages and completions, and the package; returns its path.
pub fn package() -> Result<PathBuf> {
    let farm = cargo::build()?;
    let manual = cargo::release_dir().join("manual");
    match fs::remove_dir_all(&manual) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("remove {}", manual.display()));
        }
        _ => {}
    }
    quietly(Command::new(&farm).arg("manual").arg(&manual), "farm manual", "see its error above")?;
    // cargo-deb compresses man pages only when they are not built files, as these are.
    let pages = fs::read_dir(manual.join("man8"))?
        .map(|entry| Ok(entry?.path()))
        .collect::<io::Result<Vec<_>>>()?;
    run(
        Command::new("gzip").args(["-9", "-n", "-f"]).args(&pages),
        "gzip of the man pages",
        "is gzip installed?",
    )?;
    let out = output(cargo().args(["deb", "-p", "farm-userspace", "--no-build"]))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        anyhow::bail!(
            "cargo deb failed ({}): {}: see its error, and `cargo xtask setup` installs cargo-deb",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let deb = stdout.lines().last().map(PathBuf::from).filter(|p| p.exists());
    deb.with_context(|| format!("cargo deb named no package it wrote: {stdout}"))
}
