//! `load` and `unload`: the `farm` binary does the work; xtask only builds it first.
use std::{os::unix::process::CommandExt, process::Command};

use anyhow::{Result, anyhow};

use crate::cargo;

/// Builds, then becomes `farm SUBCOMMAND ARGS`, so farm's output and exit status are the
/// task's own. It runs in the caller's directory, where a relative `--config` points.
pub fn exec(subcommand: &str, args: &[String]) -> Result<()> {
    let farm = cargo::build()?;
    let e = Command::new(&farm).arg(subcommand).args(args).exec();
    Err(anyhow!(
        "could not run {}: {e}: run `cargo xtask build` and check its output",
        farm.display()
    ))
}
