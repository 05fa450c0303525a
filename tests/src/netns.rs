//! Network namespaces for tests: hosts on a Linux bridge, commands and threads run inside
//! a namespace, and guards that delete every namespace a test made, on success and on
//! failure alike. The root namespace's interfaces, addresses, routes and sysctls are
//! never touched: even the bridge lives in a namespace of its own.
use std::{
    fs::File,
    io,
    os::fd::AsRawFd,
    os::unix::process::CommandExt,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

/// A short id unique among the test runs on this machine now (process id) and the farms
/// of this run (a counter): interface names have 15 characters at most.
pub fn unique_id() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{:x}{}", std::process::id() & 0xfffff, NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Runs a command to completion; a non-zero exit is an error quoting its stderr.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("spawn {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(out)
}

/// `ip ARGS`.
pub fn ip(args: &[&str]) -> Result<String> {
    Ok(String::from_utf8_lossy(&run(Command::new("ip").args(args))?.stdout).into_owned())
}

/// Moves the calling thread into namespace `ns`. Threads only: the process stays put.
pub fn enter(ns: &str) -> io::Result<()> {
    let f = File::open(format!("/run/netns/{ns}"))?;
    // SAFETY: setns on an fd we own; affects the calling thread only.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A command that runs in network namespace `ns` but keeps this mount namespace, so
/// it sees the same /sys/fs/bpf as the test (`ip netns exec` would hide it).
pub fn command_in(ns: &str, program: &str) -> Command {
    let mut cmd = Command::new(program);
    let path = format!("/run/netns/{ns}");
    // SAFETY: between fork and exec only async-signal-safe calls (open, setns) are made.
    unsafe {
        cmd.pre_exec(move || {
            let f = File::open(&path)?;
            if libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Runs `f` on a thread inside namespace `ns` and waits for its result.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let ns = ns.to_string();
    thread::spawn(move || -> Result<T> {
        enter(&ns).with_context(|| format!("setns {ns}"))?;
        Ok(f())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("thread in namespace panicked"))?
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> Result<Netns> {
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Sets a sysctl inside this namespace (/proc/sys/net follows the thread's namespace).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = sysctl_path(key);
        let value = value.to_string();
        in_ns(&self.name, move || {
            std::fs::write(&path, value).with_context(|| format!("write {path}"))
        })?
    }

    /// Whether this namespace has the sysctl `key` (a module may add it, or not).
    pub fn has_sysctl(&self, key: &str) -> Result<bool> {
        let path = sysctl_path(key);
        in_ns(&self.name, move || std::path::Path::new(&path).exists())
    }
}

fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// A host on the bridge: its namespace, its interface (named uniquely, since pins
/// under /sys/fs/bpf/farm are named after it and bpffs is shared) and its address.
pub struct Host {
    pub ns: Netns,
    pub iface: String,
}

/// Hosts joined by veth pairs to a bridge that floods multicast (snooping off), the
/// way a switch floods a cluster MAC. A switch filters nothing: where br_netfilter is
/// loaded (as on hosts that run containers), each namespace starts with the bridge
/// calling iptables' hooks on every frame, a cost no switch has, charged here to the
/// senders (at 32 nodes, a tenth of an agent's CPU): the switch's namespace turns it off.
pub struct Lan {
    pub id: String,
    bridge: String,
    pub switch: Netns,
}

impl Lan {
    pub fn new(id: &str) -> Result<Lan> {
        let switch = Netns::new(format!("farm-{id}-sw"))?;
        for family in ["iptables", "ip6tables", "arptables"] {
            let key = format!("net.bridge.bridge-nf-call-{family}");
            if switch.has_sysctl(&key)? {
                switch.sysctl(&key, "0")?;
            }
        }
        let bridge = format!("fb{id}");
        ip(&["-n", &switch.name, "link", "add", &bridge, "type", "bridge", "mcast_snooping", "0"])?;
        ip(&["-n", &switch.name, "link", "set", &bridge, "up"])?;
        Ok(Lan { id: id.into(), bridge, switch })
    }

    /// Adds host `name` with `addrs` (CIDR) on an interface `f<id><name>`.
    pub fn host(&self, name: &str, addrs: &[String]) -> Result<Host> {
        let ns = Netns::new(format!("farm-{}-{name}", self.id))?;
        let iface = format!("f{}{name}", self.id);
        let port = format!("p{}{name}", self.id);
        let sw = &self.switch.name;
        ip(&[
            "-n", sw, "link", "add", &port, "type", "veth", "peer", "name", &iface, "netns",
            &ns.name,
        ])?;
        ip(&["-n", sw, "link", "set", &port, "master", &self.bridge, "up"])?;
        for a in addrs {
            // No duplicate address detection: the address is usable at once.
            let nodad = if a.contains(':') { &["nodad"][..] } else { &[] };
            ip(&[&["-n", &ns.name, "addr", "add", a, "dev", &iface][..], nodad].concat())?;
        }
        ip(&["-n", &ns.name, "link", "set", &iface, "up"])?;
        Ok(Host { ns, iface })
    }
}

/// Polls `f` every 50 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}
