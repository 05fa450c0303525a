//! Running other programs so that every failure ends as one line: what failed, what to do.
use std::{
    env,
    fmt::Display,
    io::{self, Write},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use anyhow::{Result, anyhow, bail};

/// The workspace root. xtask only ever runs from its own source tree (`cargo xtask`), so
/// the directory it was compiled in is the tree it works on.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask/ sits inside the workspace")
}

/// The first executable named `name` on PATH, as `command -v` finds it.
pub fn which(name: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?).map(|dir| dir.join(name)).find(|path| {
        path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Runs `cmd` to completion with its output captured.
pub fn output(cmd: &mut Command) -> Result<Output> {
    cmd.output().map_err(|e| {
        anyhow!(
            "could not run {}: {e}: install it or put it on PATH",
            cmd.get_program().to_string_lossy()
        )
    })
}

/// What `cmd` prints when it succeeds; None when it runs but fails (a probe's "no").
pub fn stdout(cmd: &mut Command) -> Result<Option<String>> {
    let out = output(cmd)?;
    Ok(out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// Runs an install step whose chatter matters only when it fails: then that output is
/// shown, and the error says `what` failed and `hint` what to do.
pub fn quietly(cmd: &mut Command, what: impl Display, hint: &str) -> Result<()> {
    let out = output(cmd)?;
    if !out.status.success() {
        let mut err = io::stderr().lock();
        err.write_all(&out.stdout)?;
        err.write_all(&out.stderr)?;
        bail!("{what} failed ({}): {hint}", out.status);
    }
    Ok(())
}

/// Runs `cmd` on the terminal: builds and tests are run for the output they print.
pub fn run(cmd: &mut Command, what: &str, hint: &str) -> Result<()> {
    let status = cmd.status().map_err(|e| {
        anyhow!(
            "could not run {}: {e}: install it or put it on PATH",
            cmd.get_program().to_string_lossy()
        )
    })?;
    if !status.success() {
        bail!("{what} failed ({status}): {hint}");
    }
    Ok(())
}
