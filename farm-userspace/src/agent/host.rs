//! What the agent changes on the host while it runs, as keepalived does, and undoes when
//! it stops: the VIPs on `lo`, so the kernel takes the traffic the program accepts, and
//! the sysctls that keep the kernel from answering ARP for a VIP with the NIC's own MAC
//! or using a VIP as the source of its own ARP requests. (The program answers ARP and
//! neighbour solicitations for the VIPs and drops them before the kernel sees them; the
//! sysctls cover the moments the program is not attached. IPv6 has no such sysctl: the
//! VIPs are only on the host while the program is attached.)
//!
//! The VIPs it added are listed in a file under /run, so an agent restarted after a
//! crash knows which VIPs on lo are farm's to remove, and which an operator put there.
use std::{
    fs,
    net::IpAddr,
    path::{Path, PathBuf},
};

use log::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("`{cmd}` failed: {reason}")]
    Command { cmd: String, reason: String },
    #[error("write {path}: {error}")]
    Write { path: String, error: std::io::Error },
}

pub struct Host {
    iface: String,
    /// VIPs farm added (a VIP an operator put on the host stays when the agent stops).
    added: Vec<IpAddr>,
    /// Where `added` is kept across a crash.
    record: PathBuf,
    /// Sysctls this agent raised, with the value to put back.
    raised: Vec<(PathBuf, String)>,
}

impl Host {
    pub fn setup(iface: &str, vips: &[IpAddr], run_dir: &Path) -> Result<Host, HostError> {
        let record = run_dir.join(format!("{iface}.vips"));
        // A crashed agent's VIPs: still on lo, and still farm's.
        let added = fs::read_to_string(&record)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect();
        let mut host = Host { iface: iface.into(), added, record, raised: vec![] };
        for dev in ["all", iface] {
            host.raise(&format!("net/ipv4/conf/{dev}/arp_ignore"), 1)?;
            host.raise(&format!("net/ipv4/conf/{dev}/arp_announce"), 2)?;
        }
        host.set_vips(vips)?;
        Ok(host)
    }

    /// Makes the VIPs on `lo` the ones given: adds the new, removes the ones this agent
    /// added that are gone (after a reload).
    pub fn set_vips(&mut self, vips: &[IpAddr]) -> Result<(), HostError> {
        for &vip in vips {
            // Already there: farm's if the record says so, else the operator's.
            if add(vip)? {
                info!("VIP {vip} added to lo");
                if !self.added.contains(&vip) {
                    self.added.push(vip);
                }
            }
        }
        let (keep, gone): (Vec<IpAddr>, Vec<IpAddr>) =
            self.added.iter().partition(|vip| vips.contains(vip));
        self.added = keep;
        for vip in gone {
            remove(vip);
        }
        let list: String = self.added.iter().map(|v| format!("{v}\n")).collect();
        fs::write(&self.record, list)
            .map_err(|error| HostError::Write { path: self.record.display().to_string(), error })
    }

    /// Sets a sysctl to at least `want` (the kernel uses the larger of `all` and the
    /// interface's value for these two).
    fn raise(&mut self, key: &str, want: u32) -> Result<(), HostError> {
        let path = PathBuf::from("/proc/sys").join(key);
        let err = |error| HostError::Write { path: path.display().to_string(), error };
        let old = fs::read_to_string(&path).map_err(err)?.trim().to_string();
        if old.parse::<u32>().is_ok_and(|v| v >= want) {
            return Ok(());
        }
        fs::write(&path, want.to_string()).map_err(err)?;
        self.raised.push((path, old));
        Ok(())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for vip in std::mem::take(&mut self.added) {
            remove(vip);
        }
        let _ = fs::remove_file(&self.record);
        for (path, old) in self.raised.drain(..).rev() {
            if let Err(e) = fs::write(&path, &old) {
                warn!("restoring {} to {old}: {e}", path.display());
            }
        }
        info!("VIPs removed from lo and sysctls of {} restored", self.iface);
    }
}

fn prefix(vip: IpAddr) -> String {
    match vip {
        IpAddr::V4(a) => format!("{a}/32"),
        IpAddr::V6(a) => format!("{a}/128"),
    }
}

/// Adds `vip` to lo; false if it was there already.
fn add(vip: IpAddr) -> Result<bool, HostError> {
    let p = prefix(vip);
    let mut args = vec!["addr", "add", p.as_str(), "dev", "lo"];
    if vip.is_ipv6() {
        args.push("nodad");
    }
    match ip(&args) {
        Ok(()) => Ok(true),
        Err(HostError::Command { reason, .. })
            if reason.contains("File exists") || reason.contains("already assigned") =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

fn remove(vip: IpAddr) {
    match ip(&["addr", "del", &prefix(vip), "dev", "lo"]) {
        Ok(()) => info!("VIP {vip} removed from lo"),
        Err(e) => warn!("{e}"),
    }
}

fn ip(args: &[&str]) -> Result<(), HostError> {
    crate::nic::run_ip(args)
        .map_err(|reason| HostError::Command { cmd: format!("ip {}", args.join(" ")), reason })
}
