//! bpffs on /sys/fs/bpf: farm pins its maps and links there so the CLI and a restarted
//! agent find the loaded program.
use std::{fs, process::Command};

use anyhow::{Context, Result, bail};

use crate::{privilege::is_root, process::quietly, report::Report};

const THING: &str = "bpffs on /sys/fs/bpf";

pub fn bpffs(report: &Report) -> Result<()> {
    let mounts = fs::read_to_string("/proc/self/mounts")
        .context("cannot read /proc/self/mounts: mount /proc")?;
    let mounted = mounts.lines().any(|line| {
        let mut fields = line.split(' ').skip(1);
        fields.next() == Some("/sys/fs/bpf") && fields.next() == Some("bpf")
    });
    if mounted {
        report.ok(THING, "");
        return Ok(());
    }
    if !is_root() {
        bail!("must run as root to mount {THING}: rerun as root");
    }
    quietly(
        Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]),
        "mount -t bpf bpf /sys/fs/bpf",
        "check that the kernel has BPF (CONFIG_BPF_SYSCALL) and /sys is writable",
    )?;
    report.done(THING, "mounted");
    Ok(())
}
