//! What the loader asks of and does to the NIC: its MAC and driver (ioctls in this
//! process's network namespace, not /sys, whose view belongs to the namespace that
//! mounted it), and joining the cluster MAC so the NIC receives the VIPs' frames.
use std::{
    io,
    net::IpAddr,
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    process::Command,
};

use log::warn;

use crate::config::{Config, L2Mode};

#[derive(Debug, thiserror::Error)]
pub enum NicError {
    #[error("interface {0} does not exist: check `ip link` and the config's cluster.interface")]
    Unknown(String),
    #[error("{iface}: ioctl {call}: {source}")]
    Ioctl { iface: String, call: &'static str, source: io::Error },
    #[error("`{cmd}` failed: {reason}")]
    Command { cmd: String, reason: String },
}

/// A request about `iface`, zeroed but for its name.
fn named(iface: &str) -> Result<libc::ifreq, NicError> {
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if iface.is_empty() || iface.len() >= req.ifr_name.len() {
        return Err(NicError::Unknown(iface.into()));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(iface.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

/// Runs one ioctl about `iface` with `fill` preparing the request, on a socket of its
/// own; returns the request.
fn ioctl(
    iface: &str,
    call: &'static str,
    request: libc::c_ulong,
    fill: impl FnOnce(&mut libc::ifreq),
) -> Result<libc::ifreq, NicError> {
    let mut req = named(iface)?;
    fill(&mut req);
    // SAFETY: a plain datagram socket, closed when `socket` drops.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(NicError::Ioctl {
            iface: iface.into(),
            call: "socket",
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    ioctl_on(socket.as_fd(), iface, call, request, req)
}

/// The ioctl on `socket`, any AF_INET socket.
fn ioctl_on(
    socket: BorrowedFd<'_>,
    iface: &str,
    call: &'static str,
    request: libc::c_ulong,
    mut req: libc::ifreq,
) -> Result<libc::ifreq, NicError> {
    // SAFETY: the ioctl reads and writes only `req` and what it points at.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), request, &mut req) };
    let err = io::Error::last_os_error();
    match (rc, err.raw_os_error()) {
        (0, _) => Ok(req),
        (_, Some(libc::ENODEV)) => Err(NicError::Unknown(iface.into())),
        _ => Err(NicError::Ioctl { iface: iface.into(), call, source: err }),
    }
}

/// The NIC's own MAC.
pub fn mac(iface: &str) -> Result<[u8; 6], NicError> {
    let req = ioctl(iface, "SIOCGIFHWADDR", libc::SIOCGIFHWADDR, |_| {})?;
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    Ok(std::array::from_fn(|i| data[i] as u8))
}

/// `struct ethtool_drvinfo`, as far as the driver name (the rest is room for the kernel).
#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    rest: [u8; 164],
}
const ETHTOOL_GDRVINFO: u32 = 3;

/// The NIC's driver name (`veth`, `mlx5_core`, ...), if it reports one.
pub fn driver(iface: &str) -> Option<String> {
    let mut info = DrvInfo { cmd: ETHTOOL_GDRVINFO, driver: [0; 32], rest: [0; 164] };
    let ptr = &mut info as *mut DrvInfo as *mut libc::c_char;
    ioctl(iface, "SIOCETHTOOL", libc::SIOCETHTOOL, |req| req.ifr_ifru.ifru_data = ptr).ok()?;
    let len = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    Some(String::from_utf8_lossy(&info.driver[..len]).into_owned())
}

/// Whether the NIC is up with a carrier: a node whose link is down cannot serve, and
/// must not believe itself alone in the farm and take every bucket. Asked through
/// `socket` (any AF_INET socket: the agent's heartbeat socket), as the agent asks at
/// every step: one syscall, not three.
pub fn is_running(socket: BorrowedFd<'_>, iface: &str) -> Result<bool, NicError> {
    let req = ioctl_on(socket, iface, "SIOCGIFFLAGS", libc::SIOCGIFFLAGS, named(iface)?)?;
    let flags = i32::from(unsafe { req.ifr_ifru.ifru_flags });
    let want = libc::IFF_UP | libc::IFF_RUNNING;
    Ok(flags & want == want)
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Makes the NIC accept frames for the cluster MAC (multicast mode: join the group, and
/// the solicited-node groups of IPv6 VIPs; unicast mode: promiscuous) or stop accepting.
pub fn join_cluster_mac(cfg: &Config, join: bool) -> Result<(), NicError> {
    let iface = &cfg.cluster.interface;
    let verb = if join { "add" } else { "del" };
    match cfg.cluster.l2_mode {
        L2Mode::Multicast => {
            let mut macs = vec![cfg.cluster.cluster_mac];
            macs.extend(cfg.vips.iter().filter_map(|v| match v.address {
                IpAddr::V6(a) => {
                    let o = a.octets();
                    Some([0x33, 0x33, 0xff, o[13], o[14], o[15]])
                }
                IpAddr::V4(_) => None,
            }));
            for mac in macs {
                ip(&["maddr", verb, &format_mac(&mac), "dev", iface], join)?;
            }
        }
        L2Mode::Unicast => {
            ip(&["link", "set", iface, "promisc", if join { "on" } else { "off" }], join)?;
        }
    }
    Ok(())
}

/// Runs `ip ARGS`. When leaving (`strict` false), a failure is only logged: the address
/// may already be gone with the interface.
fn ip(args: &[&str], strict: bool) -> Result<(), NicError> {
    let reason = match run_ip(args) {
        Ok(()) => return Ok(()),
        // Joining a group twice (two VIPs in one solicited-node group) is fine.
        Err(reason) if reason.contains("File exists") => return Ok(()),
        Err(reason) => reason,
    };
    let cmd = format!("ip {}", args.join(" "));
    if strict {
        return Err(NicError::Command { cmd, reason });
    }
    warn!("`{cmd}` failed: {reason}");
    Ok(())
}

/// Runs `ip ARGS` in this process's network namespace; on failure, why (its stderr, or
/// why it could not run).
pub(crate) fn run_ip(args: &[&str]) -> Result<(), String> {
    match Command::new("ip").args(args).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Err(format!("{e} (is iproute2 installed?)")),
    }
}
