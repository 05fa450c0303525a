//! Announcements after a takeover or a heal: a gratuitous ARP (IPv4) or an unsolicited
//! neighbour advertisement (IPv6) per VIP, telling every host on the segment that the VIP
//! is at the cluster MAC. A client that cached another MAC for a VIP (the NIC's own,
//! answered by a kernel before farm ran, or a MAC an address conflict left) would
//! otherwise keep sending there until its entry expired (keepalived #166).
//!
//! `frame` builds the frames and does no I/O. `announce` sends them through an AF_PACKET
//! socket on the farm's NIC, which takes CAP_NET_RAW: root has it, the packaged unit
//! (packaging/deb/farm.service) does not yet, so an agent that announces needs it added
//! there. Each frame leaves from the NIC's own MAC, as the program's answers do: a switch
//! that saw the cluster MAC as a source would learn it on one port and stop flooding it.
//! One call sends each frame once; a caller that wants to outlast a lost frame calls
//! again (keepalived repeats its announcements a few times).
use std::{
    ffi::CString,
    io,
    net::{IpAddr, Ipv6Addr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use farm_common::frame::{ARPOP_REQUEST, ETH_P_ARP, ETH_P_IPV6, NA_OVERRIDE};

use crate::{neighbour, rules::addr_key};

/// Why announcing failed.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    #[error("interface {0} does not exist: check `ip link` and the config's cluster.interface")]
    NoInterface(String),
    #[error("cannot open a packet socket to announce the VIPs ({0}): announcing needs CAP_NET_RAW")]
    Socket(io::Error),
    #[error("announcing {vip} on {iface}: {source}")]
    Send { iface: String, vip: IpAddr, source: io::Error },
}

/// Every IPv6 node on the link (ff02::1) and its Ethernet multicast address.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
const BROADCAST: [u8; 6] = [0xff; 6];

/// Announces each of `vips` at `cluster_mac` on `iface`, whose own MAC is `own_mac`: one
/// frame per VIP (`frame`).
pub fn announce(
    iface: &str,
    own_mac: [u8; 6],
    cluster_mac: [u8; 6],
    vips: &[IpAddr],
) -> Result<(), AnnounceError> {
    let name = CString::new(iface).map_err(|_| AnnounceError::NoInterface(iface.into()))?;
    // SAFETY: a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(AnnounceError::NoInterface(iface.into()));
    }
    // Protocol 0: a socket that sends and never receives.
    // SAFETY: plain socket(2); the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(AnnounceError::Socket(io::Error::last_os_error()));
    }
    // SAFETY: a fresh fd no one else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    for &vip in vips {
        let frame = frame(own_mac, cluster_mac, vip);
        send(&socket, index, &frame).map_err(|source| AnnounceError::Send {
            iface: iface.into(),
            vip,
            source,
        })?;
    }
    Ok(())
}

/// The frame that announces `vip` at `cluster_mac`, from `own_mac`:
/// - IPv4: a gratuitous ARP request to the broadcast address, sender and target the VIP,
///   the sender's hardware address the cluster MAC (a request rather than a reply: every
///   host takes it, including those that update their entries only on requests);
/// - IPv6: an unsolicited neighbour advertisement from the VIP to every node (ff02::1),
///   with the override flag (replace any cached address), not solicited, its target the
///   VIP and the cluster MAC as its target link-layer address, hop limit 255.
pub fn frame(own_mac: [u8; 6], cluster_mac: [u8; 6], vip: IpAddr) -> Vec<u8> {
    match vip {
        IpAddr::V4(v4) => {
            let a = v4.to_bits();
            let arp = neighbour::arp(ARPOP_REQUEST, cluster_mac, a, [0; 6], a);
            [&neighbour::ethernet(BROADCAST, own_mac, ETH_P_ARP)[..], &arp].concat()
        }
        IpAddr::V6(_) => {
            let (target, all) = (addr_key(vip), addr_key(ALL_NODES.into()));
            let na =
                neighbour::advertisement_packet(NA_OVERRIDE, &target, &cluster_mac, &target, &all);
            [&neighbour::ethernet(ALL_NODES_MAC, own_mac, ETH_P_IPV6)[..], &na].concat()
        }
    }
}

/// Sends one whole Ethernet frame out of interface `index`.
fn send(socket: &OwnedFd, index: u32, frame: &[u8]) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_ifindex = index as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&frame[..6]);
    // SAFETY: `frame` and `to` outlive the call, and the lengths are theirs.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&raw const to).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    match sent {
        n if n < 0 => Err(io::Error::last_os_error()),
        n if n as usize != frame.len() => Err(io::Error::other("the frame went out cut short")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
    const CLUSTER: [u8; 6] = [0x03, 0xbf, 0xc6, 0x12, 0, 0x64];

    /// Ones' complement sum of 16-bit words, folded and complemented: the Internet
    /// checksum, written here apart from the one the frames are made with.
    fn internet_checksum(bytes: &[u8]) -> u16 {
        let mut sum: u32 = bytes.chunks(2).map(|w| u32::from(w[0]) << 8 | u32::from(w[1])).sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn a_gratuitous_arp_request_from_the_nic_names_the_cluster_mac() {
        let f = frame(OWN, CLUSTER, "198.18.0.100".parse().unwrap());
        #[rustfmt::skip]
        let want = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x11, 0x08, 0x06,
            0, 1, 0x08, 0, 6, 4, 0, 1,
            0x03, 0xbf, 0xc6, 0x12, 0, 0x64, 198, 18, 0, 100,
            0, 0, 0, 0, 0, 0, 198, 18, 0, 100,
        ];
        assert_eq!(f, want);
    }

    #[test]
    fn an_unsolicited_advertisement_overrides_for_every_node() {
        let vip: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let f = frame(OWN, CLUSTER, vip.into());
        assert_eq!(f.len(), 14 + 40 + 32);
        assert_eq!(f[..14], [0x33, 0x33, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 0x11, 0x86, 0xdd]);
        let (ip, icmp) = (&f[14..54], &f[54..]);
        // Version 6, payload 32 bytes of ICMPv6, hop limit 255, from the VIP to ff02::1.
        assert_eq!(ip[..8], [0x60, 0, 0, 0, 0, 32, 58, 255]);
        assert_eq!(ip[8..24], vip.octets());
        assert_eq!(ip[24..40], ALL_NODES.octets());
        // Type 136, code 0; flags: override only (R=0, S=0, O=1); the target; option 2
        // (target link-layer address), one 8-byte unit, the cluster MAC.
        assert_eq!(icmp[..2], [136, 0]);
        assert_eq!(icmp[4..8], [0x20, 0, 0, 0]);
        assert_eq!(icmp[8..24], vip.octets());
        assert_eq!(icmp[24..], [[2, 1].as_slice(), &CLUSTER].concat());
        // The checksum covers the pseudo-header: it sums to zero with it.
        let pseudo = [&ip[8..40], &[0, 0, 0, 32, 0, 0, 0, 58], icmp].concat();
        assert_eq!(internet_checksum(&pseudo), 0);
    }

    #[test]
    fn a_missing_interface_is_named() {
        let err = announce("farm-no-such0", OWN, CLUSTER, &[]).unwrap_err().to_string();
        assert!(err.starts_with("interface farm-no-such0 does not exist"), "{err}");
    }
}
