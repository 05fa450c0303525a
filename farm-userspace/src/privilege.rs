//! The capabilities farm needs, checked before it starts on a task, so that a process
//! without one hears which and what to do instead of a bare EPERM half way. Root has them
//! all; the packaged unit runs the agent as the `farm` user with exactly `AGENT`,
//! CAP_SYS_NICE and CAP_NET_RAW, which the agent does without if it must (see
//! `realtime` and `announce`).
use std::fmt;

/// A Linux capability farm uses, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Reading /proc/timer_list (mode 0400), which the lease clock is calibrated from, and
    /// walking into /sys/fs/bpf (mode 0700 where systemd mounts it) to the pins.
    DacReadSearch,
    /// Attaching XDP, loading a networking program, the VIPs on lo and the cluster MAC
    /// (through `ip`, which inherits it as an ambient capability) and the ARP sysctls of
    /// the network namespace (the kernel gives its network administrator root's access).
    NetAdmin,
    /// Network namespaces and mounts: only the demo, the benchmark and the tests.
    SysAdmin,
    /// Loading the program as root would: without it the verifier also walks the paths a
    /// CPU may take speculatively (Spectre mitigations for untrusted loaders) and gives up
    /// on the program ("the sequence of 8193 jumps is too complex").
    Perfmon,
    /// The bpf() system call itself: maps, programs, pins, links.
    Bpf,
    /// Locking memory beyond RLIMIT_MEMLOCK (`agent.lock_memory`): optional, an
    /// unlimited RLIMIT_MEMLOCK does as well.
    IpcLock,
}

use Capability::*;

/// What `farm agent`, `farm load` and `farm unload` need.
pub const AGENT: &[Capability] = &[Bpf, NetAdmin, Perfmon, DacReadSearch];
/// What the read commands need to open the pinned maps and read the lease clock.
pub const READ: &[Capability] = &[Bpf, DacReadSearch];
/// What the demo and the benchmark need: the agent's, and network namespaces.
pub const NAMESPACE_FARMS: &[Capability] = &[SysAdmin, Bpf, NetAdmin, Perfmon, DacReadSearch];

impl Capability {
    /// Its number in the kernel's capability sets.
    fn bit(self) -> u32 {
        match self {
            DacReadSearch => 2,
            NetAdmin => 12,
            IpcLock => 14,
            SysAdmin => 21,
            Perfmon => 38,
            Bpf => 39,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DacReadSearch => "CAP_DAC_READ_SEARCH",
            NetAdmin => "CAP_NET_ADMIN",
            SysAdmin => "CAP_SYS_ADMIN",
            Perfmon => "CAP_PERFMON",
            Bpf => "CAP_BPF",
            IpcLock => "CAP_IPC_LOCK",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The capabilities of `needed` that a thread whose `/proc/.../status` reads `status`
/// does not have in its effective set (all of them if the set cannot be read).
pub fn lacking(status: &str, needed: &[Capability]) -> Vec<Capability> {
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    needed.iter().copied().filter(|cap| effective & (1 << cap.bit()) == 0).collect()
}

/// The capabilities of `needed` this thread lacks.
pub fn missing(needed: &[Capability]) -> Vec<Capability> {
    lacking(&std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default(), needed)
}

/// Ok when this thread holds every capability of `needed`; otherwise an error naming
/// the task (`what`), the ones it lacks and what to do.
pub fn require(what: &str, needed: &[Capability]) -> Result<(), Missing> {
    let lacks = missing(needed);
    if lacks.is_empty() {
        return Ok(());
    }
    Err(Missing { what: what.to_string(), lacks, needed: needed.to_vec() })
}

/// What a task needed and this process lacks.
#[derive(Debug, thiserror::Error)]
#[error("{what} needs {}, which this process lacks: run it as root, or with {}", names(.lacks), names(.needed))]
pub struct Missing {
    pub what: String,
    pub lacks: Vec<Capability>,
    pub needed: Vec<Capability>,
}

fn names(caps: &[Capability]) -> String {
    caps.iter().map(|cap| cap.name()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_effective_set() {
        let root = "Name:\tfarm\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n";
        assert!(lacking(root, AGENT).is_empty());
        // CAP_DAC_READ_SEARCH, CAP_NET_ADMIN and CAP_BPF, as `setpriv --ambient-caps` gives.
        let partial = "CapEff:\t0000008000001004\n";
        assert_eq!(lacking(partial, AGENT), [Perfmon]);
        assert_eq!(lacking("no such line", READ), READ);
    }

    #[test]
    fn says_what_is_missing_and_what_to_do() {
        let err =
            Missing { what: "farm agent".into(), lacks: vec![Perfmon], needed: AGENT.to_vec() };
        assert_eq!(
            err.to_string(),
            "farm agent needs CAP_PERFMON, which this process lacks: run it as root, or with CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_DAC_READ_SEARCH"
        );
    }
}
