//! The Debian package as the tests see it: the .deb `cargo xtask package` built, unpacked
//! into a directory of its own (removed on drop), and its agent run as the unit runs it:
//! as a user other than root, with the unit's capabilities alone.
use std::{
    os::unix::fs::chown,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::{
    farm::farm_bin,
    netns::{command_in, run, unique_id},
};

/// The user the tests run the packaged agent as: not root, and owning nothing else.
pub const AGENT_UID: u32 = 65534;

/// The package of this version in the target directory (target/debian/).
pub fn deb() -> Result<PathBuf> {
    let target = farm_bin()?.parent().and_then(Path::parent).context("target dir")?.to_path_buf();
    let prefix = format!("farm_{}-", env!("CARGO_PKG_VERSION"));
    let dir = target.join("debian");
    let found = std::fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with(&prefix) && name.ends_with(".deb")
        });
    found.with_context(|| {
        format!("no {prefix}*.deb in {}: build it first (`cargo xtask package`; `cargo xtask test` does)", dir.display())
    })
}

/// The package's files under a directory of their own, removed on drop.
pub struct Unpacked {
    pub deb: PathBuf,
    pub root: PathBuf,
}

impl Unpacked {
    pub fn new() -> Result<Unpacked> {
        let deb = deb()?;
        let root = std::env::temp_dir().join(format!("farm-deb-{}", unique_id()));
        let unpacked = Unpacked { deb, root };
        run(Command::new("dpkg-deb").arg("-x").arg(&unpacked.deb).arg(&unpacked.root))?;
        Ok(unpacked)
    }

    /// One of the package's files, by its installed path (`/usr/sbin/farm`).
    pub fn path(&self, installed: &str) -> PathBuf {
        self.root.join(installed.trim_start_matches('/'))
    }

    /// A control field of the package (`Depends`).
    pub fn field(&self, name: &str) -> Result<String> {
        let out = run(Command::new("dpkg-deb").arg("-f").arg(&self.deb).arg(name))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The capabilities the packaged unit gives the agent (its AmbientCapabilities=).
    pub fn unit_capabilities(&self) -> Result<Vec<String>> {
        let unit = std::fs::read_to_string(self.path("/usr/lib/systemd/system/farm.service"))?;
        let caps = unit
            .lines()
            .find_map(|line| line.strip_prefix("AmbientCapabilities="))
            .context("the unit has no AmbientCapabilities=")?;
        Ok(caps.split_whitespace().map(str::to_string).collect())
    }

    /// The packaged `farm` in namespace `ns`, run as `AGENT_UID` with exactly `caps`
    /// (names as the unit spells them) in its bounding, inheritable and ambient sets: the
    /// ambient set is how a process that is not root holds them, and how `ip` inherits
    /// CAP_NET_ADMIN from it.
    pub fn farm_as_agent_user(&self, ns: &str, caps: &[String]) -> Command {
        let set = caps
            .iter()
            .map(|cap| format!("+{}", cap.trim_start_matches("CAP_").to_lowercase()))
            .collect::<Vec<_>>()
            .join(",");
        let mut cmd = command_in(ns, "setpriv");
        cmd.args([format!("--reuid={AGENT_UID}"), format!("--regid={AGENT_UID}")])
            .arg("--clear-groups")
            .args([format!("--inh-caps=-all,{set}"), format!("--ambient-caps={set}")])
            .arg(format!("--bounding-set=-all,{set}"))
            .arg(self.path("/usr/sbin/farm"));
        cmd
    }
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Directories the unit prepares for the agent's user (ExecStartPre= makes
/// /sys/fs/bpf/farm its own, RuntimeDirectory= /run/farm), given to `AGENT_UID` for as
/// long as this lives and given back to root on drop.
pub struct AgentDirs {
    dirs: Vec<PathBuf>,
}

impl AgentDirs {
    pub fn give(dirs: &[&str]) -> Result<AgentDirs> {
        let mut given = AgentDirs { dirs: Vec::new() };
        for dir in dirs {
            std::fs::create_dir_all(dir)?;
            chown(dir, Some(AGENT_UID), Some(AGENT_UID))?;
            given.dirs.push(dir.into());
        }
        Ok(given)
    }
}

impl Drop for AgentDirs {
    fn drop(&mut self) {
        for dir in &self.dirs {
            let _ = chown(dir, Some(0), Some(0));
        }
    }
}

/// Gives `file` to `AGENT_UID` (the key, which the agent must read).
pub fn give_file(file: &Path) -> Result<()> {
    if !file.exists() {
        bail!("{} is missing", file.display());
    }
    Ok(chown(file, Some(AGENT_UID), Some(AGENT_UID))?)
}
