//! Running other programs so that every failure ends as one line: what failed, what to do.
use std::{
    env,
    fmt::Display,
    io::{self, Read, Write},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Output, Stdio},
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
    cmd.output().map_err(|e| could_not_run(cmd, e))
}

fn could_not_run(cmd: &Command, e: io::Error) -> anyhow::Error {
    anyhow!(
        "could not run {}: {e}: install it or put it on PATH",
        cmd.get_program().to_string_lossy()
    )
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
    let status = cmd.status().map_err(|e| could_not_run(cmd, e))?;
    succeeded(status, what, hint)
}

/// Runs `cmd` as `run` does, and returns what it printed on stdout, which is passed on
/// to this process's stdout as it comes (its stderr goes straight to the terminal).
pub fn run_echoed(cmd: &mut Command, what: &str, hint: &str) -> Result<String> {
    let mut child = cmd.stdout(Stdio::piped()).spawn().map_err(|e| could_not_run(cmd, e))?;
    let mut pipe = child.stdout.take().expect("stdout is piped");
    let (mut seen, mut chunk) = (Vec::new(), [0u8; 8192]);
    let mut out = io::stdout().lock();
    loop {
        // Chunks, not lines: a test's "test NAME ... " shows before its outcome does.
        let n = match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => bail!("reading the output of {what}: {e}: rerun it"),
        };
        out.write_all(&chunk[..n])?;
        out.flush()?;
        seen.extend_from_slice(&chunk[..n]);
    }
    succeeded(child.wait()?, what, hint)?;
    Ok(String::from_utf8_lossy(&seen).into_owned())
}

fn succeeded(status: ExitStatus, what: &str, hint: &str) -> Result<()> {
    if !status.success() {
        bail!("{what} failed ({status}): {hint}");
    }
    Ok(())
}
