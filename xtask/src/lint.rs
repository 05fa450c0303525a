//! The checks `cargo xtask test` runs before the tests: formatting, clippy, rustdoc. The
//! lints themselves are set in the workspace's Cargo.toml (`[workspace.lints]`).
use std::process::Command;

use anyhow::Result;

use crate::{
    cargo::{HOST_CRATES, cargo},
    process::{quietly, run, stdout},
    report::Report,
};

/// Installs rustfmt and clippy for the toolchain that runs xtask, if missing (rustup's
/// minimal profile has neither); setup does this, for `lint`.
pub fn tools(report: &Report) -> Result<()> {
    let mut missing = Vec::new();
    for (component, subcommand) in [("rustfmt", "fmt"), ("clippy", "clippy")] {
        match stdout(cargo().args([subcommand, "--version"]))? {
            Some(version) => report.ok(component, version.trim()),
            None => missing.push(component),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    report.doing(&list, "installing with rustup");
    // rustup picks the toolchain that runs xtask: it set RUSTUP_TOOLCHAIN for it.
    quietly(
        Command::new("rustup").args(["component", "add"]).args(&missing),
        format_args!("rustup component add {list}"),
        "check the network to static.rust-lang.org",
    )?;
    for component in missing {
        report.done(component, "installed");
    }
    Ok(())
}

pub fn lint() -> Result<()> {
    run(
        cargo().args(["fmt", "--all", "--check"]),
        "cargo fmt --check",
        "run `cargo fmt --all` and commit the result",
    )?;
    // In the release profile, like the build and the tests: build scripts (the XDP
    // program's build among them) and proc-macros are built once for all three.
    run(
        cargo()
            .args(["clippy", "--release", "--all-targets"])
            .args(HOST_CRATES)
            .args(["--", "-D", "warnings"]),
        "cargo clippy",
        "fix what clippy reports above, or silence a lint with #[expect(lint, reason = \"...\")]",
    )?;
    run(
        cargo()
            .args(["doc", "--release", "--no-deps"])
            .args(HOST_CRATES)
            .env("RUSTDOCFLAGS", "-D warnings"),
        "cargo doc",
        "fix the doc comments rustdoc reports above",
    )
}
